//! Registry credentials from a tenant's Secret (the entity's `imagePullSecret`): either `username` and `password`
//! keys, or a `.dockerconfigjson` key as `kubectl create secret docker-registry` makes it (`{"auths": {"<registry>":
//! {"username", "password"} or {"auth": base64("user:password")}}}`, as JSON or base64 of it). The values never
//! appear in `Debug` output, errors or logs: only the Secret's name and keys do.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde_json::Value;

/// The key of a Docker configuration in a Secret.
pub const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// A tenant's Secret named by an entity's `imagePullSecret`, opened on the node for the steps that pull.
#[derive(Clone, PartialEq, Eq)]
pub struct PullSecret {
    /// The Secret's name.
    pub name: String,
    /// Its values by key.
    pub data: BTreeMap<String, String>,
}

impl fmt::Debug for PullSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullSecret").field("name", &self.name).field("keys", &self.data.keys()).finish()
    }
}

/// A user name and password for one registry, and the Secret they come from.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The Secret they were read from (for messages).
    pub secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("secret", &self.secret).finish()
    }
}

impl PullSecret {
    /// The credentials this Secret holds for `registry` (`host[:port]`); an error says what the Secret lacks,
    /// naming keys only.
    pub fn credentials_for(&self, registry: &str) -> Result<Credentials, String> {
        let found = |username: String, password: String| Credentials { username, password, secret: self.name.clone() };
        if let Some(config) = self.data.get(DOCKER_CONFIG_KEY) {
            let doc = parse_docker_config(config)
                .ok_or_else(|| format!("secret {}: `{DOCKER_CONFIG_KEY}` is not a Docker configuration", self.name))?;
            let auths = doc.get("auths").and_then(Value::as_object);
            let entry = auths.and_then(|a| a.iter().find(|(k, _)| registry_of(k) == registry)).map(|(_, v)| v);
            let Some(entry) = entry else {
                let known: Vec<String> = auths.map(|a| a.keys().map(|k| registry_of(k)).collect()).unwrap_or_default();
                return Err(format!(
                    "secret {}: `{DOCKER_CONFIG_KEY}` has no entry for registry {registry} (it has: {})",
                    self.name,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ));
            };
            let text = |k: &str| entry.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
            if let (Some(u), Some(p)) = (text("username"), text("password")) {
                return Ok(found(u, p));
            }
            let pair = text("auth")
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())));
            return pair.map(|(u, p)| found(u, p)).ok_or_else(|| {
                format!(
                    "secret {}: the `{DOCKER_CONFIG_KEY}` entry for {registry} has neither `username` and `password` \
                     nor an `auth` of base64(user:password)",
                    self.name
                )
            });
        }
        match (self.data.get("username"), self.data.get("password")) {
            (Some(u), Some(p)) => Ok(found(u.clone(), p.clone())),
            _ => Err(format!(
                "secret {} holds no registry credentials: it needs the keys `username` and `password`, or \
                 `{DOCKER_CONFIG_KEY}` (it has: {})",
                self.name,
                self.data.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// A Docker configuration given as JSON or as base64 of it.
fn parse_docker_config(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text).ok().filter(Value::is_object).or_else(|| {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
        serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
    })
}

/// The `host[:port]` of a Docker configuration key (`https://host:port/v1/`, `host:port`, `host`).
fn registry_of(key: &str) -> String {
    let key = key.trim();
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    rest.split('/').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(pairs: &[(&str, &str)]) -> PullSecret {
        PullSecret { name: "reg".into(), data: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn username_and_password_keys_are_credentials_for_any_registry() {
        let c = secret(&[("username", "ann"), ("password", "s3cret")]).credentials_for("127.0.0.1:5000").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str(), c.secret.as_str()), ("ann", "s3cret", "reg"));
        assert!(!format!("{c:?}").contains("s3cret"), "Debug hides the password");
        let s = secret(&[("username", "ann"), ("password", "s3cret")]);
        assert!(!format!("{s:?}").contains("s3cret") && format!("{s:?}").contains("password"));
    }

    #[test]
    fn a_docker_config_is_read_by_registry_in_every_spelling() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw:with:colons");
        let config = serde_json::json!({"auths": {
            "https://other.example:443/v1/": {"username": "x", "password": "y"},
            "127.0.0.1:5000": {"auth": auth},
            "reg.example": {"username": "ann", "password": "p"},
        }})
        .to_string();
        let s = secret(&[(DOCKER_CONFIG_KEY, &config)]);
        let c = s.credentials_for("127.0.0.1:5000").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bob", "pw:with:colons"));
        assert_eq!(s.credentials_for("other.example:443").unwrap().username, "x");
        assert_eq!(s.credentials_for("reg.example").unwrap().password, "p");
        let err = s.credentials_for("10.0.0.1:5000").unwrap_err();
        assert!(err.contains("no entry for registry 10.0.0.1:5000") && err.contains("reg.example"), "{err}");
        assert!(!err.contains("pw:with") && !err.contains(&auth), "no value in the message: {err}");

        let encoded = base64::engine::general_purpose::STANDARD.encode(&config);
        assert_eq!(secret(&[(DOCKER_CONFIG_KEY, &encoded)]).credentials_for("reg.example").unwrap().username, "ann");
    }

    #[test]
    fn a_secret_without_credentials_is_refused_naming_its_keys_only() {
        let err = secret(&[("token", "abc123")]).credentials_for("r:1").unwrap_err();
        assert!(err.contains("`username` and `password`") && err.contains("token") && !err.contains("abc123"), "{err}");
        let err = secret(&[(DOCKER_CONFIG_KEY, "not json")]).credentials_for("r:1").unwrap_err();
        assert!(err.contains("not a Docker configuration"), "{err}");
    }
}
