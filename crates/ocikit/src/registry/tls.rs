//! TLS for registry connections: rustls with the system roots, plus the CA and
//! client certificates of a `--cert-dir` or of the certs.d directories
//! (`/etc/containers/certs.d/HOST:PORT/`, `/etc/docker/certs.d/HOST:PORT/`), and
//! the insecure-registry rule for loopback hosts.
//!
//! In a certificate directory, `*.crt` files are extra CAs and each `NAME.cert`
//! with its `NAME.key` is a client certificate, as in Docker and
//! containers/image. A loopback registry (`localhost`, `127.0.0.0/8`, `[::1]`)
//! is insecure by default, as Docker treats it: HTTPS is tried first with any
//! certificate accepted, then plain HTTP. `tls_verify = Some(false)` makes any
//! registry insecure that way; `Some(true)` makes even loopback verify.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RegistryError;

/// The certs.d roots read by default, most specific first: the rootless
/// user's, then containers', then Docker's.
pub fn default_certs_d(home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = home {
        dirs.push(home.join(".config/containers/certs.d"));
    }
    dirs.push(PathBuf::from("/etc/containers/certs.d"));
    dirs.push(PathBuf::from("/etc/docker/certs.d"));
    dirs
}

/// Whether `registry` (`host`, `host:port`, `[v6]:port`) is a loopback host.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_part(registry);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host without port or IPv6 brackets.
fn host_part(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    }
}

/// Whether connections to `registry` are insecure (unverified HTTPS, then
/// plain HTTP) under `tls_verify`.
pub fn is_insecure(registry: &str, tls_verify: Option<bool>) -> bool {
    match tls_verify {
        Some(verify) => !verify,
        None => is_loopback(registry),
    }
}

/// The certificate directories for `registry`: the explicit `cert_dir` alone
/// if given, else `ROOT/HOST:PORT` under each certs.d root that exists.
pub fn cert_dirs(registry: &str, cert_dir: Option<&Path>, certs_d: &[PathBuf]) -> Vec<PathBuf> {
    if let Some(dir) = cert_dir {
        return vec![dir.to_path_buf()];
    }
    certs_d
        .iter()
        .map(|root| root.join(registry))
        .filter(|dir| dir.is_dir())
        .collect()
}

/// What a certificate directory holds.
#[derive(Debug, Default)]
pub struct CertFiles {
    /// PEM CA certificates (`*.crt`).
    pub cas: Vec<PathBuf>,
    /// Client certificate and key pairs (`NAME.cert` + `NAME.key`).
    pub clients: Vec<(PathBuf, PathBuf)>,
}

/// Lists a certificate directory, checking every `*.cert` has its `*.key`
/// and the other way round.
pub fn scan_cert_dir(dir: &Path) -> Result<CertFiles, RegistryError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RegistryError::Tls {
        path: dir.to_path_buf(),
        reason: format!("cannot read the certificate directory: {e}"),
    })?;
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    let mut files = CertFiles::default();
    for path in &names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => files.cas.push(path.clone()),
            Some("cert") => {
                let key = path.with_extension("key");
                if !key.is_file() {
                    return Err(RegistryError::Tls {
                        path: path.clone(),
                        reason: format!(
                            "client certificate without its key {}; add it or remove the certificate",
                            key.display()
                        ),
                    });
                }
                files.clients.push((path.clone(), key));
            }
            Some("key") if !path.with_extension("cert").is_file() => {
                return Err(RegistryError::Tls {
                    path: path.clone(),
                    reason: "client key without its certificate (NAME.cert)".into(),
                });
            }
            _ => {}
        }
    }
    Ok(files)
}

/// Builds the HTTP client for one registry with its trust settings.
pub fn build_http(
    registry: &str,
    user_agent: &str,
    insecure: bool,
    dirs: &[PathBuf],
) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(300))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .danger_accept_invalid_certs(insecure);
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| RegistryError::Tls {
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })
    };
    let mut identity_set = false;
    for dir in dirs {
        let files = scan_cert_dir(dir)?;
        for ca in &files.cas {
            let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?).map_err(|e| {
                RegistryError::Tls {
                    path: ca.clone(),
                    reason: format!("not a PEM CA certificate: {e}"),
                }
            })?;
            if certs.is_empty() {
                return Err(RegistryError::Tls {
                    path: ca.clone(),
                    reason: "holds no PEM certificate".into(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        // One client identity per connection: the first pair wins, as in
        // containers/image.
        if let Some((cert, key)) = files.clients.first().filter(|_| !identity_set) {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| RegistryError::Tls {
                path: cert.clone(),
                reason: format!("not a usable client certificate and key (PEM): {e}"),
            })?;
            builder = builder.identity(identity);
            identity_set = true;
        }
    }
    builder.build().map_err(|e| RegistryError::Setup {
        registry: registry.to_owned(),
        reason: super::client::error_chain(&e),
    })
}

/// Whether a failed HTTPS attempt (its error chain as text) shows that the
/// peer does not speak TLS at all: a plain-HTTP server answers a TLS hello
/// with an HTTP response, which rustls reports as a record of an invalid
/// content type. Such a server cannot be asking for a client certificate,
/// so [`server_wants_client_certificate`] need not be asked.
pub(crate) fn peer_speaks_plain_http(error: &str) -> bool {
    error.contains("InvalidContentType")
}

/// Whether the TLS server at `endpoint` (`host[:port]`, port 443 by default)
/// asks clients for a certificate (mutual TLS). Asked only after a failed
/// connection, to tell the user why: with TLS 1.3 the server's refusal of a
/// client without a certificate arrives after the handshake and reaches the
/// HTTP client as a bare "connection closed". The probe completes a
/// handshake of its own, trusting any server certificate (it sends nothing
/// but the handshake) and noting whether a `CertificateRequest` came.
pub(crate) fn server_wants_client_certificate(endpoint: &str) -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::ResolvesClientCert;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AnyServer(Vec<SignatureScheme>);
    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.clone()
        }
    }

    #[derive(Debug, Default)]
    struct Asked(AtomicBool);
    impl ResolvesClientCert for Asked {
        fn resolve(
            &self,
            _: &[&[u8]],
            _: &[SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            self.0.store(true, Ordering::SeqCst);
            None
        }
        fn has_certs(&self) -> bool {
            true
        }
    }

    let host = host_part(endpoint);
    let has_port = if endpoint.starts_with('[') {
        endpoint.contains("]:")
    } else {
        endpoint.contains(':')
    };
    let addr = if has_port {
        endpoint.to_owned()
    } else {
        format!("{endpoint}:443")
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let asked = Arc::new(Asked::default());
    let Ok(builder) =
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()
    else {
        return false;
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(schemes)))
        .with_client_cert_resolver(asked.clone());
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return false;
    };
    let Ok(mut conn) = rustls::ClientConnection::new(Arc::new(config), name) else {
        return false;
    };
    let Some(socket) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut tcp) = TcpStream::connect_timeout(&socket, Duration::from_secs(5)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(5)));
    while conn.is_handshaking() && !asked.0.load(Ordering::SeqCst) {
        if conn.complete_io(&mut tcp).is_err() {
            break;
        }
    }
    asked.0.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        let cases = [
            ("localhost", true),
            ("localhost:5000", true),
            ("LOCALHOST:5000", true),
            ("127.0.0.1:5000", true),
            ("127.1.2.3", true),
            ("[::1]:5000", true),
            ("[::1]", true),
            ("10.0.0.1:5000", false),
            ("registry.example.com", false),
            ("localhost.example.com:5000", false),
            ("docker.io", false),
        ];
        for (host, want) in cases {
            assert_eq!(is_loopback(host), want, "{host}");
        }
    }

    #[test]
    fn insecure_rule() {
        assert!(is_insecure("127.0.0.1:5000", None));
        assert!(!is_insecure("127.0.0.1:5000", Some(true)));
        assert!(!is_insecure("quay.io", None));
        assert!(is_insecure("quay.io", Some(false)));
    }

    #[test]
    fn cert_dir_lookup_and_scan() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("certs.d");
        let host_dir = root.join("reg:5000");
        std::fs::create_dir_all(&host_dir).expect("mkdir");
        assert_eq!(
            cert_dirs("reg:5000", None, std::slice::from_ref(&root)),
            vec![host_dir.clone()]
        );
        assert!(cert_dirs("other:1", None, std::slice::from_ref(&root)).is_empty());
        let explicit = dir.path().join("explicit");
        assert_eq!(
            cert_dirs("reg:5000", Some(&explicit), &[root]),
            vec![explicit]
        );

        std::fs::write(host_dir.join("ca.crt"), "x").expect("write");
        std::fs::write(host_dir.join("client.cert"), "x").expect("write");
        let err = scan_cert_dir(&host_dir).expect_err("missing key");
        assert!(
            err.to_string()
                .contains("client certificate without its key"),
            "{err}"
        );
        std::fs::write(host_dir.join("client.key"), "x").expect("write");
        let files = scan_cert_dir(&host_dir).expect("scan");
        assert_eq!(files.cas, vec![host_dir.join("ca.crt")]);
        assert_eq!(files.clients.len(), 1);
        std::fs::write(host_dir.join("lonely.key"), "x").expect("write");
        let err = scan_cert_dir(&host_dir).expect_err("lonely key");
        assert!(
            err.to_string()
                .contains("client key without its certificate"),
            "{err}"
        );
    }

    #[test]
    fn bad_ca_names_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("ca.crt"), "not a certificate").expect("write");
        let err = build_http("r", "ua", false, &[dir.path().to_path_buf()]).expect_err("bad ca");
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn a_plain_http_answer_to_a_tls_hello_is_told_apart() {
        for (error, plain) in [
            (
                "client error (Connect): received corrupt message of type InvalidContentType",
                true,
            ),
            (
                "client error (Connect): received fatal alert: CertificateRequired",
                false,
            ),
            ("client error (Connect): connection closed via error", false),
            (
                "client error (Connect): invalid peer certificate: UnknownIssuer",
                false,
            ),
        ] {
            assert_eq!(peer_speaks_plain_http(error), plain, "{error}");
        }
    }
}
