//! TLS for the registry server with rustls: the certificate and key come from
//! PEM files and are reloaded when they change on disk (a renewed
//! certificate needs no restart), and an optional CA file turns on client
//! certificates (mutual TLS), whose subject's common name is then the user.
//!
//! The files are checked at most once a second, when a handshake asks for
//! the certificate ([`crate::watch`]); a file that fails to load (a renewal
//! half written) leaves the previous certificate in use and is logged, and
//! the next change is tried again.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong (and what it should hold).
        reason: String,
    },
    /// rustls refused the combination (a key that does not fit, a bad CA).
    #[error("TLS setup with {path}: {reason}")]
    Rustls {
        /// The file it is about.
        path: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// The TLS files of a server (zot's `http.tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates for client certificates; `None` for no mutual TLS.
    pub client_ca: Option<PathBuf>,
    /// Whether a client may connect without a certificate when `client_ca`
    /// is set (it then authenticates otherwise, e.g. with a password).
    pub client_cert_optional: bool,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: format!("unreadable PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no CERTIFICATE block (expected a PEM certificate chain)".into(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: format!("unreadable PEM: {e}"),
        })?
        .ok_or_else(|| TlsError::Pem {
            path: path.to_owned(),
            reason: "no PRIVATE KEY block (expected a PEM private key)".into(),
        })
}

/// Loads a certificate and its key, checking that they belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certs(cert)?;
    let der = private_key(key)?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Rustls {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Rustls {
        path: key.to_owned(),
        reason: format!("{e} (is it the key of {}?)", cert.display()),
    })?;
    Ok(Arc::new(certified))
}

/// Serves the current certificate, reloading it when its files change.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    watch: crate::watch::FileWatch,
}

impl Reloading {
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.watch.changed() {
            match certified_key(&self.cert, &self.key) {
                Ok(key) => {
                    tracing::info!("reloaded TLS certificate {}", self.cert.display());
                    state.key = key;
                }
                Err(e) => tracing::error!("keeping the previous TLS certificate: {e}"),
            }
        }
        state.key.clone()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls configuration for `files`: HTTP/2 and HTTP/1.1 by ALPN, the
/// certificate reloaded on change, client certificates when a CA is given.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let resolver = Reloading {
        cert: files.cert.clone(),
        key: files.key.clone(),
        state: Mutex::new(Loaded {
            watch: crate::watch::FileWatch::new(vec![files.cert.clone(), files.key.clone()]),
            key: certified_key(&files.cert, &files.key)?,
        }),
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls {
            path: files.cert.clone(),
            reason: e.to_string(),
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(ca)? {
                roots.add(cert).map_err(|e| TlsError::Rustls {
                    path: ca.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if files.client_cert_optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| TlsError::Rustls {
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The common name of a certificate's subject (DER), if it has one: the
/// user a client certificate stands for.
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?,
    // serialNumber, signature, issuer, validity, subject, … } … }
    let (_, certificate, _) = tlv(der)?;
    let (_, mut tbs, _) = tlv(certificate)?;
    let mut fields = Vec::new();
    while !tbs.is_empty() && fields.len() < 7 {
        let (tag, value, rest) = tlv(tbs)?;
        fields.push((tag, value));
        tbs = rest;
    }
    // Skip the optional explicit version ([0] = 0xa0).
    let offset = usize::from(fields.first()?.0 == 0xa0);
    let (tag, mut subject) = *fields.get(offset + 4)?;
    if tag != 0x30 {
        return None;
    }
    // Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
    let mut common_name = None;
    while !subject.is_empty() {
        let (_, mut set, rest) = tlv(subject)?;
        subject = rest;
        while !set.is_empty() {
            let (_, attribute, more) = tlv(set)?;
            set = more;
            let (oid_tag, oid, value) = tlv(attribute)?;
            // 2.5.4.3 commonName
            if oid_tag == 0x06 && oid == [0x55, 0x04, 0x03] {
                let (_, text, _) = tlv(value)?;
                common_name = String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    common_name
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(
            tlv(&[0x04, 0x02, 1, 2, 9]),
            Some((0x04, &[1u8, 2][..], &[9u8][..]))
        );
        assert_eq!(
            tlv(&[0x04, 0x81, 0x01, 7]),
            Some((0x04, &[7u8][..], &[][..]))
        );
        for bad in [
            &[][..],
            &[0x04],
            &[0x04, 0x05, 1],
            &[0x04, 0x80],
            &[0x04, 0x85, 1],
        ] {
            assert_eq!(tlv(bad), None, "{bad:?}");
        }
        assert_eq!(subject_common_name(b"not a certificate"), None);
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let files = TlsFiles {
            cert: dir.path().join("missing.pem"),
            key: empty.clone(),
            client_ca: None,
            client_cert_optional: false,
        };
        let err = server_config(&files).expect_err("missing").to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let files = TlsFiles {
            cert: empty.clone(),
            ..files
        };
        let err = server_config(&files).expect_err("empty").to_string();
        assert!(err.contains("empty.pem: no CERTIFICATE block"), "{err}");
    }

    #[test]
    fn real_certificates_load_and_name_their_user() {
        let dir = tempfile::tempdir().expect("tmp");
        let Some(ca) = ocikit_e2e::pki::TestCa::new(&dir.path().join("ca")) else {
            return;
        };
        let (cert, key) = ca.issue("alice");
        let der = certs(&cert).expect("certs").remove(0);
        assert_eq!(subject_common_name(&der).as_deref(), Some("alice"));
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: Some(ca.cert.clone()),
            client_cert_optional: false,
        };
        server_config(&files).expect("config");
        let (_, other_key) = ca.issue("bob");
        let err = server_config(&TlsFiles {
            key: other_key,
            ..files
        })
        .expect_err("mismatch")
        .to_string();
        assert!(err.contains("is it the key of"), "{err}");
    }
}
