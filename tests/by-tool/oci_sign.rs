//! oci-sign: key pairs cosign can read, signatures cosign can verify.

use std::os::unix::fs::PermissionsExt as _;

use ocikit::cosign::keys;
use ocikit_e2e::{temp_dir, tool};

#[test]
fn generate_key_pair_writes_cosign_files() {
    let dir = temp_dir();
    let out = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "s3cret")
        .arg("generate-key-pair")
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(line["privateKey"], "cosign.key");
    assert_eq!(line["publicKey"], "cosign.pub");
    let key_path = dir.path().join("cosign.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "private key must be 0600");
    let pem = std::fs::read_to_string(&key_path).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n"));
    let key = keys::load_private_key(&key_path, b"s3cret").unwrap();
    let public = keys::load_public_key(&dir.path().join("cosign.pub")).unwrap();
    assert_eq!(key.public_key(), public);
}

#[test]
fn generate_key_pair_never_overwrites_without_force() {
    let dir = temp_dir();
    let run = |extra: &[&str]| {
        let mut cmd = tool("oci-sign");
        cmd.current_dir(dir.path())
            .env("COSIGN_PASSWORD", "")
            .args(["generate-key-pair", "--output-key-prefix", "release"])
            .args(extra);
        cmd.assert()
    };
    run(&[]).success();
    let before = std::fs::read(dir.path().join("release.key")).unwrap();
    let refused = run(&[]).code(1);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("release.key already exists"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        std::fs::read(dir.path().join("release.key")).unwrap(),
        before
    );
    run(&["--force"]).success();
    assert_ne!(
        std::fs::read(dir.path().join("release.key")).unwrap(),
        before
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only the key pair, no temporary files: {names:?}"
    );
}

#[test]
fn generate_key_pair_reads_password_from_stdin() {
    let dir = temp_dir();
    tool("oci-sign")
        .current_dir(dir.path())
        .env_remove("COSIGN_PASSWORD")
        .args(["generate-key-pair", "--quiet"])
        .write_stdin("from stdin\n")
        .assert()
        .success()
        .stderr("");
    let key_path = dir.path().join("cosign.key");
    keys::load_private_key(&key_path, b"from stdin").unwrap();
    let err = keys::load_private_key(&key_path, b"from stdin\n").unwrap_err();
    assert!(err.to_string().contains("wrong password"), "{err}");
}
