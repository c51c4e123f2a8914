//! ocikit's cosign format against sigstore-rs (the `sigstore` crate's cosign
//! module), the independent implementation: key files written by each are
//! read by the other, and signatures made by each are verified by the other
//! on a real registry (Debian's docker-registry), without a transparency log.

use std::path::{Path, PathBuf};
use std::sync::Once;

use ocikit_e2e::{temp_dir, tool};
use sigstore::crypto::signing_key::SigStoreKeyPair;

const PASSWORD: &str = "interop-password";

/// Points the harness at the main workspace's binaries.
fn use_main_workspace_binaries() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("OCIKIT_BIN_DIR").is_none() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug");
            std::env::set_var("OCIKIT_BIN_DIR", dir);
        }
    });
}

/// `oci-sign generate-key-pair` into `dir/<prefix>.key` and `.pub`.
fn ocikit_key_pair(dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
    let base = dir.join(prefix);
    tool("oci-sign")
        .args(["generate-key-pair", "--output-key-prefix"])
        .arg(&base)
        .env("COSIGN_PASSWORD", PASSWORD)
        .assert()
        .success();
    (base.with_extension("key"), base.with_extension("pub"))
}

#[test]
fn key_files_written_by_oci_sign_are_read_by_sigstore_rs() {
    use_main_workspace_binaries();
    let dir = temp_dir();
    let (key, public) = ocikit_key_pair(dir.path(), "ours");
    let pem = std::fs::read(&key).expect("key file");
    let pair = SigStoreKeyPair::from_encrypted_pem(&pem, PASSWORD.as_bytes())
        .expect("sigstore-rs reads oci-sign's key");
    let ours = std::fs::read_to_string(&public).expect("pub file");
    assert_eq!(
        pair.public_key_to_pem().expect("pem").trim(),
        ours.trim(),
        "the .pub matches the private key"
    );
    assert!(
        SigStoreKeyPair::from_encrypted_pem(&pem, b"wrong").is_err(),
        "a wrong password is refused"
    );
}
