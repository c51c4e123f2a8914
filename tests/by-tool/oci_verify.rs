//! oci-sign and oci-verify together: signatures on layouts and on a real
//! registry (docker-registry), cosign's exit codes, policies and the stdin pipe.

use std::path::Path;

use ocikit_e2e::fixtures::{blob_path, sha256, tag_manifest, tiny_layout};
use ocikit_e2e::peers::DockerRegistry;
use ocikit_e2e::proxy::CountingProxy;
use ocikit_e2e::{require, temp_dir, tool};

/// `oci-sign generate-key-pair` into `dir/<prefix>.key` and `.pub`, password "pw".
pub(crate) fn key_pair(dir: &Path, prefix: &str) {
    tool("oci-sign")
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "pw")
        .args([
            "generate-key-pair",
            "--quiet",
            "--output-key-prefix",
            prefix,
        ])
        .assert()
        .success();
}

/// A tool's stderr as text.
pub(crate) fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn signs_and_verifies_an_oci_layout_offline() {
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    key_pair(dir.path(), "other");
    let image = tiny_layout(&dir.path().join("layout"), "1.0", "hello");
    tiny_layout(&dir.path().join("plain"), "1.0", "plain");
    let layout = format!("oci:{}:1.0", dir.path().join("layout").display());

    // A layout has no repository: the identity must be given.
    let out = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "release.key", &layout])
        .assert()
        .code(2);
    assert!(stderr_of(out.get_output()).contains("--sign-container-identity"));

    let out = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args([
            "--key",
            "release.key",
            "-a",
            "env=prod",
            "--sign-container-identity",
        ])
        .args(["127.0.0.1:5000/app", &layout])
        .assert()
        .success();
    let line: serde_json::Value =
        serde_json::from_slice(&out.get_output().stdout).expect("one JSON line");
    assert_eq!(line["digest"], image.digest);
    assert_eq!(line["signatures"][0]["digest"], image.digest);

    let verify = |args: &[&str]| {
        let mut cmd = tool("oci-verify");
        cmd.current_dir(dir.path()).args(args);
        cmd.assert()
    };
    let out = verify(&["--key", "release.pub", "-a", "env=prod", &layout]).success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        line["signatures"][0]["critical"]["identity"]["docker-reference"],
        "127.0.0.1:5000/app"
    );
    assert!(stderr_of(out.get_output()).contains("no transparency log"));
    verify(&[
        "--key",
        "release.pub",
        "--check-identity",
        "127.0.0.1:5000/app",
        &layout,
    ])
    .success();

    for (args, code, words) in [
        (vec!["--key", "other.pub"], 12, "signature does not verify"),
        (
            vec!["--key", "release.pub", "-a", "env=dev"],
            12,
            "claims annotation env \"prod\"",
        ),
        (
            vec!["--key", "release.pub", "--check-identity", "reg/else"],
            12,
            "claims docker-reference",
        ),
    ] {
        let mut all = args.clone();
        all.push(&layout);
        let out = verify(&all).code(code);
        let stderr = stderr_of(out.get_output());
        assert!(stderr.contains(words), "{args:?}: {stderr}");
        assert!(out.get_output().stdout.is_empty());
    }
    let plain = format!("oci:{}:1.0", dir.path().join("plain").display());
    let out = verify(&["--key", "release.pub", &plain]).code(10);
    assert!(stderr_of(out.get_output()).contains("no signatures found"));
    let missing = format!("oci:{}:2.0", dir.path().join("layout").display());
    verify(&["--key", "release.pub", &missing]).code(11);

    // Wrong password: refused, key file untouched.
    let before = std::fs::read(dir.path().join("release.key")).unwrap();
    let out = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "wrong")
        .args([
            "--key",
            "release.key",
            "--sign-container-identity",
            "r/app",
            &layout,
        ])
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("wrong password"));
    assert_eq!(
        std::fs::read(dir.path().join("release.key")).unwrap(),
        before
    );
}

#[test]
fn registry_pipe_policy_and_copied_signatures() {
    let Some(skopeo) = require("skopeo") else {
        return;
    };
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    key_pair(dir.path(), "other");
    for (name, text) in [("app", "a"), ("db", "b")] {
        tiny_layout(&dir.path().join(name), "1.0", text);
        let status = std::process::Command::new(&skopeo)
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:1.0", dir.path().join(name).display()))
            .arg(format!("docker://{}/team/{name}:1.0", registry.addr))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let app = format!("docker://{}/team/app:1.0", registry.addr);
    let db = format!("docker://{}/team/db:1.0", registry.addr);

    let signed = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "release.key", "--quiet", &app, &db])
        .assert()
        .success();
    let lines = String::from_utf8(signed.get_output().stdout.clone()).unwrap();
    assert_eq!(lines.lines().count(), 2);
    // skopeo compresses the layer on push: the registry's digests are the ones to use.
    let digests: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["digest"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // Signing again appends nothing.
    let again = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "release.key", "--quiet", &app])
        .assert()
        .success();
    let again: serde_json::Value = serde_json::from_slice(&again.get_output().stdout).unwrap();
    assert_eq!(again["signatures"][0]["added"], false);

    // The pipe: oci-sign's lines feed oci-verify -, pinned to their digests.
    let out = tool("oci-verify")
        .current_dir(dir.path())
        .args(["--key", "release.pub", "--quiet", "-"])
        .write_stdin(lines.clone())
        .assert()
        .success();
    let verified = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(verified.lines().count(), 2);
    let identity = format!("{}/team/app", registry.addr);
    assert!(verified.contains(&identity), "{verified}");

    // A valid .sig copied from another image: digest mismatch, exit 12.
    let status = std::process::Command::new(&skopeo)
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!(
            "docker://{}/team/app:{}.sig",
            registry.addr,
            digests[0].replace(':', "-")
        ))
        .arg(format!(
            "docker://{}/team/db:{}.sig",
            registry.addr,
            digests[1].replace(':', "-")
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let out = tool("oci-verify")
        .args(["--key", "release.pub", "--quiet", &db])
        .current_dir(dir.path())
        .assert()
        .code(12);
    assert!(stderr_of(out.get_output()).contains("docker-manifest-digest"));

    // A policy: the release key for team/app, any other image denied.
    let pem = std::fs::read_to_string(dir.path().join("release.pub")).unwrap();
    let indented: String = pem.lines().map(|l| format!("        {l}\n")).collect();
    let policy = format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: apps}}\nspec:\n  images: [{{glob: \"{}/team/app*\"}}]\n  authorities:\n  - key:\n      data: |\n{indented}",
        registry.addr
    );
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    let out = tool("oci-verify")
        .current_dir(dir.path())
        .args(["--policy", "policy.yaml", "--quiet", &app])
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(line["policies"][0], "apps");
    let out = tool("oci-verify")
        .current_dir(dir.path())
        .args(["--policy", "policy.yaml", "--quiet", &db])
        .assert()
        .code(12);
    assert!(stderr_of(out.get_output()).contains("no policy matches"));
    tool("oci-verify")
        .current_dir(dir.path())
        .args([
            "--policy",
            "policy.yaml",
            "--allow-unmatched",
            "--quiet",
            &db,
        ])
        .assert()
        .success();

    // Attestations: attest, then verify by type.
    std::fs::write(
        dir.path().join("sbom.json"),
        r#"{"spdxVersion":"SPDX-2.3"}"#,
    )
    .unwrap();
    tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args([
            "attest",
            "--key",
            "release.key",
            "--quiet",
            "--type",
            "spdxjson",
        ])
        .args(["--predicate", "sbom.json", &app])
        .assert()
        .success();
    let out = tool("oci-verify")
        .current_dir(dir.path())
        .args([
            "attestation",
            "--key",
            "release.pub",
            "--type",
            "spdxjson",
            "--quiet",
            &app,
        ])
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        line["attestations"][0]["predicateType"],
        "https://spdx.dev/Document"
    );
    assert_eq!(
        line["attestations"][0]["predicate"]["spdxVersion"],
        "SPDX-2.3"
    );
    tool("oci-verify")
        .current_dir(dir.path())
        .args(["attestation", "--key", "other.pub", "--quiet", &app])
        .assert()
        .code(12);
    tool("oci-verify")
        .current_dir(dir.path())
        .args(["attestation", "--key", "release.pub", "--quiet", &db])
        .assert()
        .code(10);
}

/// A manifest of the layout at `dir` listing `layers` (JSON descriptors), with
/// an empty config, tagged `tag`.
fn hostile_manifest(dir: &Path, tag: &str, layers: &[serde_json::Value]) {
    let config = b"{}";
    std::fs::write(blob_path(dir, &sha256(config)), config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": 2,
        },
        "layers": layers,
    });
    tag_manifest(
        dir,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
}

#[test]
fn hostile_signature_manifests_are_refused_before_reading_much() {
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    let layout = dir.path().join("layout");
    let image = tiny_layout(&layout, "1.0", "hostile");
    let sig_tag = format!("{}.sig", image.digest.replace(':', "-"));
    let reference = format!("oci:{}:1.0", layout.display());
    let simple = "application/vnd.dev.cosign.simplesigning.v1+json";
    let layer = |digest: &str, size: u64| {
        serde_json::json!({
            "mediaType": simple,
            "digest": digest,
            "size": size,
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="},
        })
    };
    let one_byte = b"x";
    std::fs::write(blob_path(&layout, &sha256(one_byte)), one_byte).unwrap();
    let two_mib = vec![b' '; 2 << 20];
    let big = sha256(&two_mib);
    std::fs::write(blob_path(&layout, &big), &two_mib).unwrap();

    let many: Vec<_> = (0..5000).map(|_| layer(&sha256(one_byte), 1)).collect();
    let cases: Vec<(Vec<serde_json::Value>, String)> = vec![
        (
            many,
            "signature manifest is too large: 5000 over the limit of 1000".into(),
        ),
        (
            vec![layer(&sha256(one_byte), 1 << 40)],
            "over the limit of 1048576".into(),
        ),
        // The descriptor says 10 bytes; the blob is 2 MiB: read no further.
        (
            vec![layer(&big, 10)],
            format!("blob {big} is too large: 2097152 over the limit of 10"),
        ),
    ];
    for (layers, want) in cases {
        hostile_manifest(&layout, &sig_tag, &layers);
        let out = tool("oci-verify")
            .current_dir(dir.path())
            .args(["--key", "release.pub", "--quiet", &reference])
            .assert()
            .code(1);
        let stderr = stderr_of(out.get_output());
        assert!(stderr.contains(&want), "want {want:?} in: {stderr}");
        assert!(stderr.starts_with("oci-verify: "), "{stderr}");
        assert!(out.get_output().stdout.is_empty());
    }

    // A .sig tag holding something that is not JSON.
    tag_manifest(
        &layout,
        &sig_tag,
        "application/vnd.oci.image.manifest.v1+json",
        b"{not json",
    );
    let out = tool("oci-verify")
        .current_dir(dir.path())
        .args(["--key", "release.pub", "--quiet", &reference])
        .assert()
        .code(1);
    assert!(
        stderr_of(out.get_output()).contains("manifest"),
        "{}",
        stderr_of(out.get_output())
    );
}

#[test]
fn a_policy_file_of_several_documents_every_matching_policy_must_pass() {
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    key_pair(dir.path(), "other");
    let layout = dir.path().join("layout");
    tiny_layout(&layout, "1.0", "policies");
    let reference = format!("oci:{}:1.0", layout.display());
    tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "release.key", "--quiet"])
        .args([
            "--sign-container-identity",
            "registry.example/app",
            &reference,
        ])
        .assert()
        .success();
    let document = |name: &str, glob: &str, mode: &str, key: &str| {
        format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: {name}}}\nspec:\n  mode: {mode}\n  images: [{{glob: \"{glob}\"}}]\n  authorities:\n  - key: {{path: {key}}}\n"
        )
    };
    let verify = |policy: &str, extra: &[&str]| {
        std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
        let mut cmd = tool("oci-verify");
        cmd.current_dir(dir.path())
            .args(["--policy", "policy.yaml"])
            .args(extra)
            .arg(&reference);
        cmd.assert()
    };
    let release = document("release", "**", "enforce", "release.pub");
    let other = document("other", "oci:**", "enforce", "other.pub");
    let other_warn = document("other-warn", "oci:**", "warn", "other.pub");
    let elsewhere = document("elsewhere", "ghcr.io/**", "enforce", "release.pub");

    let out = verify(&format!("{release}---\n{other}"), &["--quiet"]).code(12);
    let stderr = stderr_of(out.get_output());
    assert!(stderr.contains("policy other"), "{stderr}");
    assert!(out.get_output().stdout.is_empty());

    let out = verify(&format!("{release}---\n{other_warn}"), &[]).success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(line["policies"], serde_json::json!(["release"]));
    let stderr = stderr_of(out.get_output());
    assert!(
        stderr.contains("warning: policy other-warn failed"),
        "{stderr}"
    );

    let out = verify(&elsewhere, &["--quiet"]).code(12);
    assert!(stderr_of(out.get_output()).contains("no policy matches"));
    verify(&elsewhere, &["--quiet", "--allow-unmatched"]).success();

    for (authority, want) in [
        (
            "{key: {secretRef: {name: k}}}",
            "key.secretRef is not supported here",
        ),
        (
            "{key: {kms: \"gcpkms://k\"}}",
            "key.kms is not supported here",
        ),
    ] {
        let policy = format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: p}}\nspec:\n  images: [{{glob: \"**\"}}]\n  authorities: [{authority}]\n"
        );
        let out = verify(&format!("{release}---\n{policy}"), &["--quiet"]).code(1);
        let stderr = stderr_of(out.get_output());
        assert!(stderr.contains(want), "{stderr}");
        assert!(stderr.contains("policy.yaml"), "{stderr}");
    }
}

#[test]
fn images_from_stdin_are_verified_concurrently_over_one_connection_pool() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    const IMAGES: usize = 40;
    let dir = temp_dir();
    key_pair(dir.path(), "release");
    let mut targets = Vec::new();
    for i in 0..IMAGES {
        let layout = dir.path().join(format!("layout-{i}"));
        tiny_layout(&layout, "1", &format!("image {i}"));
        let target = registry.url(&format!("many/image-{i}:1"));
        tool("oci-copy")
            .args(["--quiet", &format!("oci:{}:1", layout.display()), &target])
            .assert()
            .success();
        targets.push(target);
    }
    let signed = tool("oci-sign")
        .current_dir(dir.path())
        .env("COSIGN_PASSWORD", "pw")
        .args(["--key", "release.key", "--quiet"])
        .args(&targets)
        .assert()
        .success();
    let proxy = CountingProxy::start(&registry.addr);
    let lines = String::from_utf8(signed.get_output().stdout.clone())
        .unwrap()
        .replace(&registry.addr, &proxy.addr);
    let out = tool("oci-verify")
        .current_dir(dir.path())
        .args(["--key", "release.pub", "--quiet", "-"])
        .write_stdin(lines)
        .assert()
        .success();
    let verified = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(verified.lines().count(), IMAGES);
    // Each image takes several requests, two of them at once (the .sig tag
    // and the referrers): a client per image would open at least two
    // connections per image. One shared pool with 16 images in flight opens
    // about 2 × 16, and then reuses them: fewer connections than images.
    // More than one open at once: concurrent.
    let (connections, max_open) = (proxy.connections(), proxy.max_open());
    eprintln!("{IMAGES} images: {connections} connections, at most {max_open} at once");
    assert!(connections < IMAGES, "{connections} connections");
    assert!(max_open > 1, "verified one at a time");
}
