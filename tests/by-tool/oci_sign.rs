//! oci-sign: key pairs cosign can read, signatures cosign can verify.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ocikit::cosign::keys;
use ocikit_e2e::fixtures::{index_of, small_image, tiny_layout};
use ocikit_e2e::peers::DockerRegistry;
use ocikit_e2e::{require, temp_dir, tool};

use crate::oci_verify::{key_pair, stderr_of};

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

/// `skopeo inspect --raw` of a registry image, as JSON (skopeo reads the
/// `.sig` manifests independently of ocikit).
fn raw_manifest(skopeo: &Path, image: &str) -> serde_json::Value {
    let out = std::process::Command::new(skopeo)
        .args(["inspect", "--raw", "--tls-verify=false", image])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect {image}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn recursive_signs_the_index_and_every_platform_manifest() {
    let Some(skopeo) = require("skopeo") else {
        return;
    };
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    let src = dir.path().join("src");
    let amd = small_image(&src, "amd");
    let arm = small_image(&src, "arm");
    let index = index_of(&src, "multi", &[(&amd, "amd64"), (&arm, "arm64")]);
    let flat = index_of(&src, "flat", &[(&amd, "amd64")]);
    for (tag, target) in [("multi", "app:multi"), ("flat", "app:flat")] {
        tool("oci-copy")
            .args([
                "--quiet",
                &format!("oci:{}:{tag}", src.display()),
                &registry.url(target),
            ])
            .assert()
            .success();
    }

    let out = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "release.key", "--recursive", "--quiet"])
        .arg(registry.url("app:multi"))
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(line["digest"], index);
    let signed: Vec<&str> = line["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["digest"].as_str().unwrap())
        .collect();
    assert_eq!(signed, [&index, &amd.digest, &arm.digest]);

    for digest in [&index, &amd.digest, &arm.digest] {
        // Each has its own .sig tag, one layer whose payload names that digest.
        let sig = raw_manifest(
            &skopeo,
            &registry.url(&format!("app:{}.sig", digest.replace(':', "-"))),
        );
        assert_eq!(sig["layers"].as_array().unwrap().len(), 1, "{sig}");
        let out = tool("oci-verify")
            .args(["--key", "release.pub", "--quiet"])
            .current_dir(dir.path())
            .arg(registry.url(&format!("app@{digest}")))
            .assert()
            .success();
        let verified: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        assert_eq!(verified["digest"], *digest);
        assert_eq!(
            verified["signatures"][0]["critical"]["image"]["docker-manifest-digest"],
            *digest
        );
    }

    // Without --recursive only the index is signed: its platform manifest
    // (shared with the first index, signed above) stays as it was, and a
    // new index's child has no signature of its own.
    let out = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "release.key", "--quiet"])
        .arg(registry.url("app:flat"))
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(line["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(line["signatures"][0]["digest"], flat);
    let lone = small_image(&src, "lone");
    let lone_index = index_of(&src, "lone-index", &[(&lone, "riscv64")]);
    tool("oci-copy")
        .args([
            "--quiet",
            &format!("oci:{}:lone-index", src.display()),
            &registry.url("app:lone"),
        ])
        .assert()
        .success();
    tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "release.key", "--quiet"])
        .arg(registry.url("app:lone"))
        .assert()
        .success();
    tool("oci-verify")
        .args(["--key", "release.pub", "--quiet"])
        .current_dir(dir.path())
        .arg(registry.url(&format!("app@{lone_index}")))
        .assert()
        .success();
    let out = tool("oci-verify")
        .args(["--key", "release.pub", "--quiet"])
        .current_dir(dir.path())
        .arg(registry.url(&format!("app@{}", lone.digest)))
        .assert()
        .code(10);
    assert!(stderr_of(out.get_output()).contains("no signatures found"));
}

#[test]
fn the_password_comes_from_cosign_password_else_stdin_unless_stdin_carries_images() {
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    let layout = dir.path().join("layout");
    let image = tiny_layout(&layout, "1.0", "password");
    let reference = format!("oci:{}:1.0", layout.display());
    let sign = || {
        let mut cmd = tool("oci-sign");
        cmd.current_dir(dir.path())
            .env_remove("COSIGN_PASSWORD")
            .args(["--key", "release.key", "--quiet"])
            .args(["--sign-container-identity", "registry.example/app"]);
        cmd
    };

    // No COSIGN_PASSWORD, no terminal, the image on the command line: one
    // line of stdin is the password.
    let out = sign()
        .arg(&reference)
        .write_stdin("pw\n")
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(line["signatures"][0]["added"], true);

    // The wrong password on stdin: refused, the key file untouched.
    let before = std::fs::read(dir.path().join("release.key")).unwrap();
    let out = sign()
        .arg(&reference)
        .write_stdin("nope\n")
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("wrong password"));
    assert_eq!(
        std::fs::read(dir.path().join("release.key")).unwrap(),
        before
    );

    // Images on stdin: stdin cannot also carry the password.
    let lines = format!(
        "{{\"image\":\"{reference}\",\"digest\":\"{}\",\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":{}}}\n",
        image.digest,
        image.manifest.len()
    );
    let out = sign().arg("-").write_stdin(lines.clone()).assert().code(1);
    let stderr = stderr_of(out.get_output());
    assert!(
        stderr.contains("no password: set COSIGN_PASSWORD"),
        "{stderr}"
    );
    assert!(out.get_output().stdout.is_empty());

    // COSIGN_PASSWORD wins, even over stdin, and may be empty-but-set.
    let out = sign()
        .env("COSIGN_PASSWORD", "pw")
        .arg("-")
        .write_stdin(lines)
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(line["digest"], image.digest);
    assert_eq!(
        line["signatures"][0]["added"], false,
        "already signed above"
    );
    let out = sign()
        .env("COSIGN_PASSWORD", "")
        .arg(&reference)
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("wrong password"));
}
