//! Quantities written in manifests: sizes (`512Mi`, `2Gi`, `1G`, `1048576`) and cpu (`2`, `0.5`, `500m`).
//! They keep the text the user wrote (so errors and round-trips show it) and parse on demand; validation calls the
//! same parsers, so a validated manifest never fails to parse later.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a quantity does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The text is not a number followed by a known unit.
    #[error("`{text}` is not a size: use a number with an optional unit (Ki, Mi, Gi, Ti, k, M, G, T), e.g. 512Mi")]
    BadSize {
        /// The text as written.
        text: String,
    },
    /// The text is not a cpu amount.
    #[error("`{text}` is not a cpu amount: use cores (2, 0.5) or millicores (500m)")]
    BadCpu {
        /// The text as written.
        text: String,
    },
    /// The value does not fit in 64 bits.
    #[error("`{text}` is too large")]
    Overflow {
        /// The text as written.
        text: String,
    },
}

/// A size in bytes, written as an integer (bytes) or a number with a binary (`Ki`, `Mi`, `Gi`, `Ti`) or decimal
/// (`k`, `M`, `G`, `T`) unit, as in Kubernetes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ByteSize(String);

impl ByteSize {
    /// A size of exactly `bytes` bytes.
    pub fn from_bytes(bytes: u64) -> Self {
        ByteSize(bytes.to_string())
    }

    /// The text as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The size in bytes.
    pub fn bytes(&self) -> Result<u64, QuantityError> {
        parse_bytes(&self.0)
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteSize({})", self.0)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ByteSize {
    fn from(s: &str) -> Self {
        ByteSize(s.to_string())
    }
}

/// Parses a size such as `512Mi`, `1.5Gi`, `100M` or `4096` into bytes.
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    let t = text.trim();
    let bad = || QuantityError::BadSize { text: text.to_string() };
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let mult: u64 = match unit.trim() {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or(QuantityError::Overflow { text: text.to_string() });
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let v = f * mult as f64;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(QuantityError::Overflow { text: text.to_string() });
    }
    Ok(v.round() as u64)
}

/// Formats bytes with the largest binary unit that divides them evenly (`512Mi`), for display.
pub fn format_bytes(bytes: u64) -> String {
    for (unit, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    if bytes >= 1 << 30 {
        return format!("{:.1}Gi", bytes as f64 / (1u64 << 30) as f64);
    }
    if bytes >= 1 << 20 {
        return format!("{:.1}Mi", bytes as f64 / (1u64 << 20) as f64);
    }
    bytes.to_string()
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.parse::<u64>() {
            Ok(n) => s.serialize_u64(n),
            Err(_) => s.serialize_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ByteSize(number_or_string(d, "a size such as 512Mi")?))
    }
}

/// An amount of cpu, in cores (`2`, `0.5`) or millicores (`500m`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CpuQuantity(String);

impl CpuQuantity {
    /// An amount of exactly `millis` millicores.
    pub fn from_millis(millis: u64) -> Self {
        if millis.is_multiple_of(1000) {
            CpuQuantity((millis / 1000).to_string())
        } else {
            CpuQuantity(format!("{millis}m"))
        }
    }

    /// The text as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The amount in millicores.
    pub fn millis(&self) -> Result<u64, QuantityError> {
        parse_cpu_millis(&self.0)
    }
}

impl fmt::Debug for CpuQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuQuantity({})", self.0)
    }
}

impl fmt::Display for CpuQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for CpuQuantity {
    fn from(s: &str) -> Self {
        CpuQuantity(s.to_string())
    }
}

/// Parses a cpu amount (`2`, `0.25`, `250m`) into millicores.
pub fn parse_cpu_millis(text: &str) -> Result<u64, QuantityError> {
    let t = text.trim();
    let bad = || QuantityError::BadCpu { text: text.to_string() };
    if let Some(m) = t.strip_suffix('m') {
        return m.parse::<u64>().map_err(|_| bad());
    }
    let f: f64 = t.parse().map_err(|_| bad())?;
    if !f.is_finite() || f < 0.0 {
        return Err(bad());
    }
    let v = (f * 1000.0).round();
    if v >= u64::MAX as f64 {
        return Err(QuantityError::Overflow { text: text.to_string() });
    }
    Ok(v as u64)
}

impl Serialize for CpuQuantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Ok(n) = self.0.parse::<u64>() {
            return s.serialize_u64(n);
        }
        if let Ok(f) = self.0.parse::<f64>() {
            return s.serialize_f64(f);
        }
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CpuQuantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(CpuQuantity(number_or_string(d, "a cpu amount such as 2 or 500m")?))
    }
}

/// Reads a YAML/JSON scalar that may be a number or a string, keeping its text.
fn number_or_string<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<String, D::Error> {
    struct V(&'static str);
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("512Mi"), Ok(512 << 20));
        assert_eq!(parse_bytes("2Gi"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("10k"), Ok(10_000));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["", "Mi", "12 MB", "1.2.3Gi", "-1Gi", "1Pi", "abc"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert!(matches!(parse_bytes("99999999999Ti"), Err(QuantityError::Overflow { .. })));
    }

    #[test]
    fn cpu_parses_cores_and_millicores() {
        assert_eq!(parse_cpu_millis("2"), Ok(2000));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("250m"), Ok(250));
        assert!(parse_cpu_millis("two").is_err());
        assert!(parse_cpu_millis("-1").is_err());
        assert!(parse_cpu_millis("1.5m").is_err());
    }

    #[test]
    fn quantities_keep_what_was_written() {
        let s: ByteSize = serde_json::from_str("\"512Mi\"").unwrap();
        assert_eq!(s.as_str(), "512Mi");
        let n: ByteSize = serde_json::from_str("1024").unwrap();
        assert_eq!(n.bytes(), Ok(1024));
        assert_eq!(serde_json::to_string(&n).unwrap(), "1024");
        let c: CpuQuantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(c.millis(), Ok(500));
        assert_eq!(format_bytes(512 << 20), "512Mi");
        assert_eq!(CpuQuantity::from_millis(1500).as_str(), "1500m");
    }
}
