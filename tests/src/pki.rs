//! A throwaway certificate authority made with the real `openssl` command:
//! a CA and leaf certificates (server and client) for TLS tests, and
//! self-signed signing certificates for the token issuer.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA in its own directory.
pub struct TestCa {
    /// Where every file lives.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed P-256 certificate and its PKCS#8 key, `NAME.crt` and
/// `NAME.key` in `dir` (the token issuer signs with it).
pub fn self_signed(dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
    crate::require("openssl")?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "2",
        ],
    );
    Some((
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    ))
}

impl TestCa {
    /// Makes a CA in `dir`, or `None` when openssl is missing (see
    /// [`crate::require`]).
    pub fn new(dir: &Path) -> Option<TestCa> {
        crate::require("openssl")?;
        std::fs::create_dir_all(dir).expect("ca dir");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=ocikit test CA",
                "-days",
                "2",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Some(TestCa {
            dir: dir.to_path_buf(),
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
        })
    }

    /// Issues a leaf certificate for `127.0.0.1` and `localhost`, usable by
    /// servers and clients: `NAME.pem` and `NAME.key` in the CA's directory.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("ext file");
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &self.cert.display().to_string(),
                "-CAkey",
                &self.key.display().to_string(),
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &ext.display().to_string(),
            ],
        );
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        )
    }
}
