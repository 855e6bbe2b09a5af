//! Object names. Every name that becomes a segment of a store key (application, component, network, node, plugin,
//! image, tenant) is a DNS label, so no name can contain `/`, `*`, `.` or anything else that escapes its place in
//! the key space.

use thiserror::Error;

/// The longest name accepted (a DNS label).
pub const MAX_NAME_LEN: usize = 63;

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("name must not be empty")]
    Empty,
    /// The name is longer than a DNS label allows.
    #[error("name `{name}` is {len} characters long; at most {MAX_NAME_LEN} are allowed")]
    TooLong {
        /// The offending name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a character outside `a-z`, `0-9` and `-`.
    #[error("name `{name}` contains `{ch}`: names may contain only lowercase letters, digits and `-`")]
    BadChar {
        /// The offending name.
        name: String,
        /// The first character not allowed.
        ch: char,
    },
    /// The name starts or ends with `-`.
    #[error("name `{name}` must start and end with a lowercase letter or a digit")]
    BadEdge {
        /// The offending name.
        name: String,
    },
}

/// Checks that `name` is a DNS label: 1 to 63 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { name: name.to_string(), len: name.len() });
    }
    if let Some(ch) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameError::BadChar { name: name.to_string(), ch });
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(NameError::BadEdge { name: name.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "db", "web-1", "0", "a".repeat(63).as_str()] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_anything_that_could_escape_a_key_segment() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert!(matches!(validate_name(&"a".repeat(64)), Err(NameError::TooLong { len: 64, .. })));
        for (bad, ch) in [("a/b", '/'), ("a*", '*'), ("..", '.'), ("Web", 'W'), ("a_b", '_'), ("a b", ' ')] {
            assert_eq!(validate_name(bad), Err(NameError::BadChar { name: bad.into(), ch }), "{bad}");
        }
        assert!(matches!(validate_name("-a"), Err(NameError::BadEdge { .. })));
        assert!(matches!(validate_name("a-"), Err(NameError::BadEdge { .. })));
    }
}
