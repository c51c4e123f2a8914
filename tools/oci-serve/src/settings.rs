//! What the server runs with: zot's config file (if any) with the command
//! line on top. Flags always win over the file; what neither says takes the
//! documented default (`./oci-data`, `127.0.0.1:5000`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ocikit::access::AccessControl;
use ocikit::server::auth::Scheme;
use ocikit::server::tls::TlsFiles;
use ocikit::zot_config::ZotConfig;

use crate::{AuthChallenge, LogFormat, ServeArgs};

/// The storage root when neither `--root` nor `storage.rootDirectory` says.
pub const DEFAULT_ROOT: &str = "./oci-data";
/// The listen address when neither `--addr` nor `http.address` says.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";
/// The listen port when neither `--addr` nor `http.port` says.
pub const DEFAULT_PORT: u16 = 5000;
/// The realm of `WWW-Authenticate` challenges when `http.realm` does not say.
pub const DEFAULT_REALM: &str = "oci-serve";

/// Everything a run of the server needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Storage root.
    pub root: PathBuf,
    /// `HOST:PORT` to listen on (a host name is resolved when binding).
    pub addr: String,
    /// Close connections idle this long.
    pub idle_timeout: Duration,
    /// Upload sessions one client may hold open (0: no limit).
    pub max_uploads_per_client: usize,
    /// Share identical blobs between repositories through hard links.
    pub dedupe: bool,
    /// The realm named in authentication challenges.
    pub realm: String,
    /// The log filter used when `RUST_LOG` is not set.
    pub log_level: String,
    /// Append logs to this file instead of stderr.
    pub log_output: Option<PathBuf>,
    /// Text or JSON lines.
    pub log_format: LogFormat,
    /// Only errors on stderr.
    pub quiet: bool,
    /// The htpasswd file of the users (`http.auth.htpasswd.path`).
    pub htpasswd: Option<PathBuf>,
    /// The access rules (`http.accessControl`).
    pub access: Option<AccessControl>,
    /// How long a failed login waits (`http.auth.failDelay`, seconds).
    pub fail_delay: Duration,
    /// The challenge of 401 answers.
    pub scheme: Scheme,
    /// TLS files (`http.tls`); `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Online garbage collection: (grace, interval), from `storage.gc`
    /// (default on, as in zot), `storage.gcDelay` (default 1 h) and
    /// `storage.gcInterval` (default 1 h); `None` when turned off.
    pub gc: Option<(Duration, Duration)>,
}

/// zot's default `storage.gcDelay` and `storage.gcInterval`.
pub const DEFAULT_GC_DELAY: Duration = Duration::from_secs(3600);

impl Settings {
    /// Loads `config` (when given) and lays `args` over it.
    pub fn resolve(config: Option<&Path>, args: &ServeArgs, quiet: bool) -> anyhow::Result<Self> {
        let file = match config {
            Some(path) => ZotConfig::load(path).map_err(ocikit_cli::usage)?,
            None => ZotConfig::default(),
        };
        Settings::merge(&file, args, quiet).with_context(|| match config {
            Some(path) => format!("config {}", path.display()),
            None => "command line".to_owned(),
        })
    }

    /// Lays `args` over a parsed file.
    pub fn merge(file: &ZotConfig, args: &ServeArgs, quiet: bool) -> anyhow::Result<Self> {
        let root = args
            .root
            .clone()
            .or_else(|| file.storage.root_directory.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        let addr = match args.addr {
            Some(addr) => addr.to_string(),
            None => {
                let host = file.http.address.as_deref().unwrap_or(DEFAULT_ADDRESS);
                let port = file.http.port.unwrap_or(DEFAULT_PORT);
                if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
        };
        let log_level = if quiet {
            "error".to_owned()
        } else {
            match file.log.level.as_deref() {
                // zot's levels above error mean "errors only" to tracing.
                Some("fatal" | "panic") => "error".to_owned(),
                Some(level) => level.to_owned(),
                None => "info".to_owned(),
            }
        };
        let htpasswd = file
            .http
            .auth
            .as_ref()
            .and_then(|a| a.htpasswd.as_ref())
            .map(|h| h.path.clone());
        let tls = file.http.tls.as_ref().map(|t| TlsFiles {
            cert: t.cert.clone(),
            key: t.key.clone(),
            client_ca: t.cacert.clone(),
            // With passwords too, a client may use either.
            client_cert_optional: htpasswd.is_some(),
        });
        Ok(Settings {
            root,
            addr,
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            max_uploads_per_client: args.max_uploads_per_client,
            dedupe: file.storage.dedupe.unwrap_or(true),
            realm: file
                .http
                .realm
                .clone()
                .unwrap_or_else(|| DEFAULT_REALM.to_owned()),
            log_level,
            log_output: file.log.output.clone(),
            log_format: args.log_format,
            quiet,
            htpasswd,
            tls,
            gc: file.storage.gc.unwrap_or(true).then(|| {
                (
                    file.storage.gc_delay.unwrap_or(DEFAULT_GC_DELAY),
                    file.storage
                        .gc_interval
                        .unwrap_or(DEFAULT_GC_DELAY)
                        .max(Duration::from_millis(100)),
                )
            }),
            access: file.http.access_control.clone(),
            fail_delay: Duration::from_secs(
                file.http
                    .auth
                    .as_ref()
                    .and_then(|a| a.fail_delay)
                    .unwrap_or(0),
            ),
            scheme: match args.auth_challenge {
                AuthChallenge::Basic => Scheme::Basic,
                AuthChallenge::Bearer => Scheme::Bearer,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["oci-serve"];
        argv.extend_from_slice(flags);
        crate::Cli::try_parse_from(argv).expect("parse").serve
    }

    #[test]
    fn defaults_without_a_file() {
        let s = Settings::merge(&ZotConfig::default(), &args(&[]), false).expect("settings");
        assert_eq!(s.root, PathBuf::from("./oci-data"));
        assert_eq!(s.addr, "127.0.0.1:5000");
        assert_eq!(s.realm, "oci-serve");
        assert_eq!(s.log_level, "info");
        assert!(s.dedupe);
        assert_eq!((s.htpasswd, s.access), (None, None));
        assert_eq!(s.scheme, Scheme::Basic);
        assert_eq!(s.gc, Some((DEFAULT_GC_DELAY, DEFAULT_GC_DELAY)));
        assert_eq!(s.max_uploads_per_client, 128);
        let s = Settings::merge(
            &ZotConfig::default(),
            &args(&["--max-uploads-per-client", "0"]),
            false,
        )
        .expect("unlimited");
        assert_eq!(s.max_uploads_per_client, 0);
        let off = ZotConfig::parse(r#"{"storage": {"gc": false, "gcDelay": "2h"}}"#, false)
            .expect("json");
        assert_eq!(
            Settings::merge(&off, &args(&[]), false).expect("off").gc,
            None
        );
        let quick = ZotConfig::parse(
            r#"{"storage": {"gc": true, "gcDelay": "30s", "gcInterval": "5m"}}"#,
            false,
        )
        .expect("json");
        assert_eq!(
            Settings::merge(&quick, &args(&[]), false)
                .expect("quick")
                .gc,
            Some((Duration::from_secs(30), Duration::from_secs(300)))
        );
    }

    #[test]
    fn users_and_rules_from_the_file() {
        let file = ZotConfig::parse(
            r#"{"http": {"auth": {"htpasswd": {"path": "/etc/oci-serve/htpasswd"}, "failDelay": 2},
                "accessControl": {"repositories": {"**": {"anonymousPolicy": ["read"]}}}}}"#,
            false,
        )
        .expect("json");
        let s = Settings::merge(&file, &args(&["--auth-challenge", "bearer"]), false)
            .expect("settings");
        assert_eq!(s.htpasswd, Some(PathBuf::from("/etc/oci-serve/htpasswd")));
        assert_eq!(s.fail_delay, Duration::from_secs(2));
        assert!(s.access.is_some());
        assert_eq!(s.scheme, Scheme::Bearer);
        assert_eq!(s.tls, None);
        let file = ZotConfig::parse(
            r#"{"http": {"tls": {"cert": "s.pem", "key": "s.key", "cacert": "ca.pem"}}}"#,
            false,
        )
        .expect("json");
        let s = Settings::merge(&file, &args(&[]), false).expect("settings");
        let tls = s.tls.expect("tls");
        assert_eq!(tls.client_ca, Some(PathBuf::from("ca.pem")));
        assert!(
            !tls.client_cert_optional,
            "certificates are the only way in"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file = ZotConfig::parse(
            "storage:\n  rootDirectory: /srv/zot\n  dedupe: false\nhttp:\n  address: 0.0.0.0\n  port: \"8080\"\n  realm: corp\nlog:\n  level: debug\n  output: /var/log/oci-serve.log\n",
            true,
        )
        .expect("yaml");
        let s = Settings::merge(&file, &args(&[]), false).expect("file only");
        assert_eq!(s.root, PathBuf::from("/srv/zot"));
        assert_eq!(s.addr, "0.0.0.0:8080");
        assert_eq!(s.realm, "corp");
        assert_eq!(s.log_level, "debug");
        assert_eq!(s.log_output, Some(PathBuf::from("/var/log/oci-serve.log")));
        assert!(!s.dedupe);
        let s = Settings::merge(
            &file,
            &args(&["--root", "/tmp/r", "--addr", "127.0.0.1:0"]),
            true,
        )
        .expect("flags");
        assert_eq!(s.root, PathBuf::from("/tmp/r"));
        assert_eq!(s.addr, "127.0.0.1:0");
        assert_eq!(s.log_level, "error", "--quiet wins over log.level");
        let v6 =
            ZotConfig::parse(r#"{"http": {"address": "::1", "port": 5001}}"#, false).expect("json");
        assert_eq!(
            Settings::merge(&v6, &args(&[]), false).expect("v6").addr,
            "[::1]:5001"
        );
    }
}
