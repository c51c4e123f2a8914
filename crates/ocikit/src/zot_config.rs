//! oci-serve's configuration file, in zot's format (JSON or YAML), so that an
//! existing zot config works unchanged for every feature the two share.
//!
//! Keys ocikit does not know are an error naming the key and where it is,
//! never silently ignored: a typo in an access rule must not open a registry.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::access::AccessControl;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Bad JSON, or a key or value ocikit does not take.
    #[error("config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// serde's message, with the key and the line.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZotConfig {
    /// The distribution-spec version zot advertises; accepted, and ignored
    /// because oci-serve always speaks v1.1.
    #[serde(default)]
    pub dist_spec_version: Option<String>,
    /// Where and how images are stored.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The HTTP listener, TLS and authentication.
    #[serde(default)]
    pub http: HttpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// `storage`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageConfig {
    /// The root directory (zot's `rootDirectory`).
    #[serde(default)]
    pub root_directory: Option<PathBuf>,
    /// Share identical blobs between repositories (default true).
    #[serde(default)]
    pub dedupe: Option<bool>,
    /// Run garbage collection (default true).
    #[serde(default)]
    pub gc: Option<bool>,
    /// How old an unreferenced blob must be before GC removes it (Go duration).
    #[serde(default, deserialize_with = "go_duration_opt")]
    pub gc_delay: Option<Duration>,
    /// How often GC runs (Go duration).
    #[serde(default, deserialize_with = "go_duration_opt")]
    pub gc_interval: Option<Duration>,
}

/// `http`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpConfig {
    /// Listen address (zot: `address`).
    #[serde(default)]
    pub address: Option<String>,
    /// Listen port; zot writes it as a string.
    #[serde(default, deserialize_with = "port_opt")]
    pub port: Option<u16>,
    /// The realm named in `WWW-Authenticate`.
    #[serde(default)]
    pub realm: Option<String>,
    /// TLS files.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Authentication.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Authorisation rules.
    #[serde(default)]
    pub access_control: Option<AccessControl>,
}

/// `http.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA for client certificates (mutual TLS), if any.
    #[serde(default)]
    pub cacert: Option<PathBuf>,
}

/// `http.auth`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthConfig {
    /// The htpasswd user file.
    #[serde(default)]
    pub htpasswd: Option<HtpasswdConfig>,
    /// Seconds to wait before answering a failed login (zot's `failDelay`).
    #[serde(default)]
    pub fail_delay: Option<u64>,
}

/// `http.auth.htpasswd`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HtpasswdConfig {
    /// Path of the file (bcrypt entries).
    pub path: PathBuf,
}

/// `log`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `debug`, `info`, `warn`, `error`.
    #[serde(default)]
    pub level: Option<String>,
    /// A file to log to instead of stderr.
    #[serde(default)]
    pub output: Option<PathBuf>,
}

impl ZotConfig {
    /// Loads a file: YAML for `.yaml`/`.yml`, JSON otherwise (as zot decides).
    pub fn load(path: &Path) -> Result<ZotConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        ZotConfig::parse(&text, yaml).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses text as YAML or JSON; the error is the parser's message.
    pub fn parse(text: &str, yaml: bool) -> Result<ZotConfig, String> {
        let config: ZotConfig = if yaml {
            serde_yaml::from_str(text).map_err(|e| e.to_string())?
        } else {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        };
        if let Some(level) = &config.log.level {
            if !matches!(
                level.as_str(),
                "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "panic"
            ) {
                return Err(format!(
                    "log.level {level:?} is not one of debug, info, warn, error"
                ));
            }
        }
        Ok(config)
    }
}

/// Parses a Go duration (`300ms`, `1h30m`, `24h`, `1.5s`).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} (expected e.g. 30s, 10m, 1h30m)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let value: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += value * seconds;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

fn go_duration_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| parse_go_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}

fn port_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    match Option::<Port>::deserialize(d)? {
        None => Ok(None),
        Some(Port::Number(n)) => Ok(Some(n)),
        Some(Port::Text(t)) => t
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("http.port {t:?} is not a port number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zot's own example configs, abridged to the shared features.
    const ZOT_JSON: &str = r#"{
      "distSpecVersion": "1.1.0",
      "storage": {"rootDirectory": "/tmp/zot", "dedupe": true, "gc": true, "gcDelay": "1h", "gcInterval": "24h"},
      "http": {
        "address": "127.0.0.1", "port": "8080", "realm": "zot",
        "tls": {"cert": "test/data/server.cert", "key": "test/data/server.key", "cacert": "test/data/ca.crt"},
        "auth": {"htpasswd": {"path": "test/data/htpasswd"}, "failDelay": 5},
        "accessControl": {
          "groups": {"group1": {"users": ["jack", "john", "jane", "ana"]}},
          "repositories": {
            "**": {"policies": [{"users": ["charlie"], "actions": ["read", "create", "update"]}],
                   "defaultPolicy": ["read", "create"]},
            "tmp/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read", "create", "update"]}
          },
          "adminPolicy": {"users": ["admin"], "actions": ["read", "create", "update", "delete"]}
        }
      },
      "log": {"level": "debug", "output": "/tmp/zot.log"}
    }"#;

    const ZOT_YAML: &str = "
distSpecVersion: 1.1.0
storage:
  rootDirectory: /tmp/zot
  gcDelay: 90m
http:
  address: 0.0.0.0
  port: 5000
log:
  level: info
";

    #[test]
    fn reads_zot_configs() {
        let c = ZotConfig::parse(ZOT_JSON, false).expect("json");
        assert_eq!(c.http.port, Some(8080));
        assert_eq!(c.storage.gc_delay, Some(Duration::from_secs(3600)));
        assert_eq!(
            c.http.tls.as_ref().and_then(|t| t.cacert.clone()),
            Some(PathBuf::from("test/data/ca.crt"))
        );
        let ac = c.http.access_control.expect("access control");
        assert!(ac.allows(
            &ac.identify(Some("jack")),
            crate::access::Action::Create,
            "app"
        ));
        let c = ZotConfig::parse(ZOT_YAML, true).expect("yaml");
        assert_eq!(c.http.port, Some(5000));
        assert_eq!(c.storage.gc_delay, Some(Duration::from_secs(5400)));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let cases = [
            (r#"{"http": {"adress": "x"}}"#, "unknown field `adress`"),
            (r#"{"extensions": {}}"#, "unknown field `extensions`"),
            (
                r#"{"storage": {"gcDelay": "soon"}}"#,
                "invalid duration \"soon\"",
            ),
            (r#"{"http": {"port": "http"}}"#, "not a port number"),
            (r#"{"log": {"level": "loud"}}"#, "log.level \"loud\""),
        ];
        for (text, words) in cases {
            let err = ZotConfig::parse(text, false).expect_err(text);
            assert!(err.contains(words), "{text}: {err}");
        }
        let err = ZotConfig::parse("http:\n  realm: x\n  tsl: {}\n", true).expect_err("yaml typo");
        assert!(
            err.contains("unknown field `tsl`") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn go_durations() {
        let cases = [
            ("0", 0.0),
            ("300ms", 0.3),
            ("1h30m", 5400.0),
            ("1.5s", 1.5),
            ("2h45m10s", 9910.0),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_go_duration(text),
                Ok(Duration::from_secs_f64(seconds)),
                "{text}"
            );
        }
        for text in ["", "5", "1d", "h", "1h-2m"] {
            assert!(parse_go_duration(text).is_err(), "{text}");
        }
    }
}
