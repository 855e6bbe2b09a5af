//! Secrets: named values of one tenant (`kind: Secret`, `spec.data: {key: value}`) that entities read through
//! their `env` map (`DB_PASSWORD: {secretRef: db/password}`) and that no read of fos shows. Their `Debug` output
//! hides the values, so a secret never reaches a log line by accident.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Secret's spec: its values by key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    /// The values, by key.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSpec").field("keys", &self.data.keys().collect::<Vec<_>>()).finish()
    }
}

/// One `env` value of an entity: a plain string, or a reference to a key of a Secret of the same tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// The value itself.
    Plain(String),
    /// `{secretRef: <secret>/<key>}`: resolved on the node when the process starts.
    Secret(SecretRef),
}

/// A reference to one key of a Secret: `<secret>/<key>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    /// The Secret's name.
    pub secret: String,
    /// The key in its data.
    pub key: String,
}

impl SecretRef {
    /// Parses `<secret>/<key>`.
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        match s.split_once('/') {
            Some((secret, key)) if !secret.is_empty() && !key.is_empty() && !key.contains('/') => {
                Ok(SecretRef { secret: secret.to_string(), key: key.to_string() })
            }
            _ => Err(format!("secretRef `{s}` must be `<secret>/<key>`")),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.secret, self.key)
    }
}

impl EnvValue {
    /// The plain value, when it is one.
    pub fn as_plain(&self) -> Option<&str> {
        match self {
            EnvValue::Plain(s) => Some(s),
            EnvValue::Secret(_) => None,
        }
    }

    /// The secret reference, when it is one.
    pub fn secret_ref(&self) -> Option<&SecretRef> {
        match self {
            EnvValue::Plain(_) => None,
            EnvValue::Secret(r) => Some(r),
        }
    }

    /// Bytes this value takes in the manifest (for the env size limit).
    pub fn len(&self) -> usize {
        match self {
            EnvValue::Plain(s) => s.len(),
            EnvValue::Secret(r) => r.secret.len() + r.key.len() + 1,
        }
    }

    /// Whether the value is an empty string.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for EnvValue {
    fn from(s: &str) -> Self {
        EnvValue::Plain(s.to_string())
    }
}

impl From<String> for EnvValue {
    fn from(s: String) -> Self {
        EnvValue::Plain(s)
    }
}

impl Serialize for EnvValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EnvValue::Plain(v) => s.serialize_str(v),
            EnvValue::Secret(r) => {
                let mut m = BTreeMap::new();
                m.insert("secretRef", r.to_string());
                m.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or {secretRef: <secret>/<key>}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::Plain(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<EnvValue, E> {
                Ok(EnvValue::Plain(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvValue, A::Error> {
                let mut found = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k != "secretRef" {
                        return Err(de::Error::unknown_field(&k, &["secretRef"]));
                    }
                    if found.is_some() {
                        return Err(de::Error::duplicate_field("secretRef"));
                    }
                    let v: String = map.next_value()?;
                    found = Some(SecretRef::parse(&v).map_err(de::Error::custom)?);
                }
                found.map(EnvValue::Secret).ok_or_else(|| de::Error::missing_field("secretRef"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Who a native entity's processes run as (`runAs`): `root`, or a user and group by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunAs {
    /// `runAs: root` (only in tenants an administrator allowed).
    Named(String),
    /// `runAs: {user: www-data, group: www-data}`.
    User(RunAsUser),
}

/// A user (and group) to run as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunAsUser {
    /// A user name or a numeric uid.
    pub user: String,
    /// A group name or a numeric gid (default: the user's primary group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl RunAs {
    /// Whether this asks for root (`root`, `{user: root}` or `{user: "0"}`).
    pub fn is_root(&self) -> bool {
        match self {
            RunAs::Named(n) => n == "root" || n == "0",
            RunAs::User(u) => u.user == "root" || u.user == "0",
        }
    }

    /// The user (`Named` is a user name with its primary group).
    pub fn user(&self) -> &str {
        match self {
            RunAs::Named(n) => n,
            RunAs::User(u) => &u.user,
        }
    }

    /// The group, when one is named.
    pub fn group(&self) -> Option<&str> {
        match self {
            RunAs::Named(_) => None,
            RunAs::User(u) => u.group.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_read_and_write() {
        let v: BTreeMap<String, EnvValue> =
            serde_json::from_str(r#"{"A": "x", "B": {"secretRef": "db/password"}}"#).unwrap();
        assert_eq!(v["A"], EnvValue::Plain("x".into()));
        assert_eq!(v["B"].secret_ref().unwrap().to_string(), "db/password");
        let back = serde_json::to_string(&v).unwrap();
        assert_eq!(back, r#"{"A":"x","B":{"secretRef":"db/password"}}"#);
        for bad in [r#"{"secretRef": "nokey"}"#, r#"{"secret": "a/b"}"#, "{}", "3"] {
            assert!(serde_json::from_str::<EnvValue>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_secret_values() {
        let spec = SecretSpec { data: [("password".to_string(), "hunter2".to_string())].into() };
        let shown = format!("{spec:?}");
        assert!(shown.contains("password") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn run_as_forms() {
        let root: RunAs = serde_json::from_str(r#""root""#).unwrap();
        assert!(root.is_root());
        let u: RunAs = serde_json::from_str(r#"{"user": "www-data", "group": "www-data"}"#).unwrap();
        assert!(!u.is_root());
        assert_eq!((u.user(), u.group()), ("www-data", Some("www-data")));
    }
}
