//! oci-sign: key pairs cosign can read, signatures cosign can verify.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ocikit::cosign::keys;
use ocikit_e2e::fixtures::{blob_path, index_of, sha256, small_image, tiny_layout};
use ocikit_e2e::peers::{DockerRegistry, OciServe};
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

/// `GET http://ADDR/v2/<path>` (manifests and indexes accepted) as JSON, or
/// `None` on 404.
fn registry_json(addr: &str, path: &str) -> Option<serde_json::Value> {
    let resp = reqwest::blocking::Client::new()
        .get(format!("http://{addr}/v2/{path}"))
        .header(
            "Accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .expect("registry answers");
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    Some(serde_json::from_slice(&resp.bytes().expect("body")).expect("JSON"))
}

const SIG_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// Checks a signature manifest in the OCI 1.1 form against the image spec
/// (v1.1 manifest.md) and cosign's choices: an image manifest with
/// `artifactType`, a `{}` config of that type, one simple-signing layer
/// carrying the signature annotation, and `subject` the signed manifest's
/// exact descriptor (media type, digest, size).
fn assert_oci_1_1_signature(manifest: &serde_json::Value, subject: &serde_json::Value) {
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["artifactType"], SIG_ARTIFACT);
    assert_eq!(manifest["config"]["mediaType"], SIG_ARTIFACT);
    assert_eq!(manifest["config"]["digest"], sha256(b"{}"));
    assert_eq!(manifest["config"]["size"], 2);
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(layers[0]["annotations"]["dev.cosignproject.cosign/signature"].is_string());
    assert_eq!(
        manifest["subject"], *subject,
        "subject is the signed manifest"
    );
}

/// Pushes a small image with oci-copy to `url` and returns its descriptor
/// as a `subject` is written.
fn push_small(dir: &Path, url: &str) -> serde_json::Value {
    let image = small_image(&dir.join("src"), "v1");
    tool("oci-copy")
        .args([
            "--quiet",
            &format!("oci:{}:v1", dir.join("src").display()),
            url,
        ])
        .assert()
        .success();
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": image.digest,
        "size": image.size,
    })
}

fn sign_oci_1_1(dir: &Path, key: &str, image: &str) -> serde_json::Value {
    let out = tool("oci-sign")
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "pw")
        .args([
            "--key",
            key,
            "--quiet",
            "--registry-referrers-mode",
            "oci-1-1",
            image,
        ])
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).expect("one JSON line")
}

fn verify_code(dir: &Path, key: &str, image: &str, code: i32) -> String {
    let out = tool("oci-verify")
        .current_dir(dir)
        .args(["--key", key, "--quiet", image])
        .assert()
        .code(code);
    if code == 0 {
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    } else {
        stderr_of(out.get_output())
    }
}

#[test]
fn oci_1_1_signatures_through_oci_serve_referrers_api() {
    let server = OciServe::start();
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    key_pair(dir.path(), "other");
    let subject = push_small(dir.path(), &server.url("app:v1"));
    let digest = subject["digest"].as_str().unwrap().to_owned();
    let image = server.url("app:v1");

    let line = sign_oci_1_1(dir.path(), "release.key", &image);
    assert_eq!(line["digest"], digest);
    assert_eq!(line["signatures"][0]["added"], true);
    let signature = line["signatures"][0]["manifest"]
        .as_str()
        .unwrap()
        .to_owned();

    // The referrers API lists it, with its artifactType; no .sig tag exists.
    let listed = registry_json(&server.addr, &format!("app/referrers/{digest}"))
        .expect("oci-serve has the referrers API");
    let entries = listed["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["digest"], signature);
    assert_eq!(entries[0]["artifactType"], SIG_ARTIFACT);
    let manifest = registry_json(&server.addr, &format!("app/manifests/{signature}")).unwrap();
    assert_oci_1_1_signature(&manifest, &subject);
    let sig_tag = format!("app/manifests/{}.sig", digest.replace(':', "-"));
    assert!(registry_json(&server.addr, &sig_tag).is_none());

    // Signing the same claim again writes nothing new.
    let again = sign_oci_1_1(dir.path(), "release.key", &image);
    assert_eq!(again["signatures"][0]["added"], false);
    assert_eq!(again["signatures"][0]["manifest"], signature);

    // oci-verify finds it through the referrers API.
    let out = verify_code(dir.path(), "release.pub", &image, 0);
    let verified: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        verified["signatures"][0]["critical"]["image"]["docker-manifest-digest"],
        digest
    );
    let err = verify_code(dir.path(), "other.pub", &image, 12);
    assert!(err.contains("signature does not verify"), "{err}");
}

#[test]
fn oci_1_1_signatures_on_docker_registry_use_the_referrers_tag_schema() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    key_pair(dir.path(), "legacy");
    key_pair(dir.path(), "other");
    let subject = push_small(dir.path(), &registry.url("app:v1"));
    let digest = subject["digest"].as_str().unwrap().to_owned();
    let image = registry.url("app:v1");

    // Nothing signed yet: exit 10, whichever form is looked for.
    let err = verify_code(dir.path(), "release.pub", &image, 10);
    assert!(err.contains("no signatures found"), "{err}");

    let line = sign_oci_1_1(dir.path(), "release.key", &image);
    let signature = line["signatures"][0]["manifest"]
        .as_str()
        .unwrap()
        .to_owned();
    // distribution 2.8 has no referrers API …
    assert!(registry_json(&registry.addr, &format!("app/referrers/{digest}")).is_none());
    // … so the referrers tag schema index lists the signature (spec:
    // an OCI image index tagged <alg>-<hex>, one descriptor per referrer
    // with its artifactType).
    let schema_tag = digest.replace(':', "-");
    let index = registry_json(&registry.addr, &format!("app/manifests/{schema_tag}"))
        .expect("the referrers tag schema index");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["digest"], signature);
    assert_eq!(entries[0]["artifactType"], SIG_ARTIFACT);
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest = registry_json(&registry.addr, &format!("app/manifests/{signature}")).unwrap();
    assert_oci_1_1_signature(&manifest, &subject);
    assert_eq!(
        entries[0]["size"],
        serde_json::to_vec(&manifest).unwrap().len(),
        "the descriptor's size is the manifest's"
    );
    assert!(registry_json(&registry.addr, &format!("app/manifests/{schema_tag}.sig")).is_none());

    // oci-verify reads the tag schema; a legacy .sig by another key is found
    // as well, and each key verifies its own form.
    verify_code(dir.path(), "release.pub", &image, 0);
    tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "legacy.key", "--quiet", &image])
        .assert()
        .success();
    let out = verify_code(dir.path(), "legacy.pub", &image, 0);
    let verified: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["signatures"].as_array().unwrap().len(), 1);
    verify_code(dir.path(), "release.pub", &image, 0);
    let err = verify_code(dir.path(), "other.pub", &image, 12);
    assert_eq!(
        err.matches("signature does not verify").count(),
        2,
        "both forms were checked: {err}"
    );

    // A second OCI 1.1 signature is added to the same index, not replacing it.
    sign_oci_1_1(dir.path(), "other.key", &image);
    let index = registry_json(&registry.addr, &format!("app/manifests/{schema_tag}")).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    verify_code(dir.path(), "other.pub", &image, 0);
    verify_code(dir.path(), "release.pub", &image, 0);
}

#[test]
fn oci_1_1_signatures_in_a_layout_are_found_offline() {
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    let layout = dir.path().join("layout");
    let image = tiny_layout(&layout, "1.0", "oci 1.1 offline");
    let reference = format!("oci:{}:1.0", layout.display());
    let out = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args([
            "--key",
            "release.key",
            "--quiet",
            "--registry-referrers-mode",
            "oci-1-1",
        ])
        .args([
            "--sign-container-identity",
            "registry.example/app",
            &reference,
        ])
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let signature = line["signatures"][0]["manifest"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(&layout, &signature)).unwrap()).unwrap();
    let subject = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": image.digest,
        "size": image.manifest.len(),
    });
    assert_oci_1_1_signature(&body, &subject);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["digest"] == signature.as_str())
        .expect("index.json lists the signature");
    assert!(entry["annotations"].is_null(), "untagged: {entry}");
    let out = verify_code(dir.path(), "release.pub", &reference, 0);
    assert!(out.contains("registry.example/app"), "{out}");
}

#[test]
fn malformed_key_files_are_refused_naming_the_file() {
    let dir = temp_dir();
    let layout = dir.path().join("layout");
    tiny_layout(&layout, "1.0", "keys");
    let reference = format!("oci:{}:1.0", layout.display());
    std::fs::write(dir.path().join("garbage.pub"), "not a key\n").unwrap();
    std::fs::write(
        dir.path().join("garbage.key"),
        "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n!!!\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = tool("oci-verify")
        .current_dir(dir.path())
        .args(["--key", "garbage.pub", &reference])
        .assert()
        .code(1);
    let stderr = stderr_of(out.get_output());
    assert!(stderr.contains("garbage.pub"), "{stderr}");
    assert!(stderr.contains("malformed PEM"), "{stderr}");
    let out = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args([
            "--key",
            "garbage.key",
            "--sign-container-identity",
            "r/app",
            &reference,
        ])
        .assert()
        .code(1);
    let stderr = stderr_of(out.get_output());
    assert!(stderr.contains("garbage.key"), "{stderr}");
    assert!(stderr.contains("malformed base64 in PEM body"), "{stderr}");
    assert!(out.get_output().stdout.is_empty());
}
