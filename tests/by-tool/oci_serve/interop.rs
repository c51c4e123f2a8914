//! oci-serve with real clients: skopeo pushes and pulls (OCI and Docker
//! schema 2), oci-copy pushes and pulls, containerd pulls and runs an image,
//! and umoci and skopeo read a repository directory of the root as an OCI
//! layout.

use std::process::Command;

use ocikit_e2e::fixtures::{busybox_layer, check_layout, image_from_tars, small_image};
use ocikit_e2e::peers::Containerd;
use ocikit_e2e::{require, temp_dir, tool};

use super::*;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn run(command: &mut Command) -> Vec<u8> {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    run(Command::new("skopeo").args(args))
}

/// The media type of a raw manifest.
fn media_type(raw: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(raw).expect("manifest JSON");
    value["mediaType"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn skopeo_pushes_and_pulls_oci_and_docker_v2s2() {
    if require("skopeo").is_none() {
        return;
    }
    let server = OciServe::start();
    let dir = temp_dir();
    let src = dir.path().join("src");
    let image = small_image(&src, "v1");
    let src_ref = format!("oci:{}:v1", src.display());
    let api = Api::new(&server.addr);

    // OCI, exactly as in the layout.
    let oci = server.url("interop/skopeo:oci");
    skopeo(&["copy", "-q", "--dest-tls-verify=false", &src_ref, &oci]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &oci]);
    assert_eq!(ocikit_e2e::fixtures::sha256(&raw), image.digest);
    assert_eq!(media_type(&raw), OCI_MANIFEST);
    let back = dir.path().join("back");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &oci,
        &format!("oci:{}:pulled", back.display()),
    ]);
    let layout = check_layout(&back).expect("skopeo's pull is a valid layout");
    assert_eq!(layout.tagged("pulled"), Some(image.digest.as_str()));

    // Docker schema 2: skopeo converts, the server keeps its media type.
    let v2s2 = server.url("interop/skopeo:v2s2");
    skopeo(&[
        "copy",
        "-q",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &src_ref,
        &v2s2,
    ]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &v2s2]);
    assert_eq!(media_type(&raw), DOCKER_MANIFEST);
    let r = api.send(
        api.req("GET", "/v2/interop/skopeo/manifests/v2s2")
            .header("accept", DOCKER_MANIFEST),
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), DOCKER_MANIFEST);
    assert_eq!(
        header(&r, "docker-content-digest"),
        ocikit_e2e::fixtures::sha256(&raw)
    );
    // Pulled into a `dir:` the manifest keeps its bytes; every blob checks out.
    let pulled = dir.path().join("v2s2-dir");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &v2s2,
        &format!("dir:{}", pulled.display()),
    ]);
    let manifest = std::fs::read(pulled.join("manifest.json")).expect("manifest.json");
    assert_eq!(manifest, raw);
    let parsed: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
    for layer in parsed["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("digest");
        let blob = std::fs::read(pulled.join(&digest["sha256:".len()..])).expect("layer file");
        assert_eq!(ocikit_e2e::fixtures::sha256(&blob), digest);
    }
    // skopeo reads the server's storage directly as an OCI layout, too.
    let direct = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:oci", server.root.join("interop/skopeo").display()),
    ]);
    assert_eq!(ocikit_e2e::fixtures::sha256(&direct), image.digest);
    assert!(ocikit::storage::scrub::scrub(&server.root)
        .expect("scrub")
        .problems
        .is_empty());
}

#[test]
fn oci_copy_pushes_and_pulls() {
    let server = OciServe::start();
    let dir = temp_dir();
    let src = dir.path().join("src");
    let image = small_image(&src, "v1");
    let remote = server.url("interop/copy:v1");
    let out = tool("oci-copy")
        .args([&format!("oci:{}:v1", src.display()), &remote])
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(line["digest"], image.digest);
    let back = dir.path().join("back");
    let out = tool("oci-copy")
        .args([&remote, &format!("oci:{}:again", back.display())])
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(line["digest"], image.digest);
    let layout = check_layout(&back).expect("valid layout");
    assert_eq!(layout.tagged("again"), Some(image.digest.as_str()));
    assert_eq!(layout.verified, 4, "manifest, config and two layers");
    // The repository directory itself is a layout oci-copy reads.
    let direct = dir.path().join("direct");
    tool("oci-copy")
        .args([
            &format!("oci:{}:v1", server.root.join("interop/copy").display()),
            &format!("oci:{}:v1", direct.display()),
        ])
        .assert()
        .success();
    assert_eq!(
        check_layout(&direct).expect("valid").tagged("v1"),
        Some(image.digest.as_str())
    );
    // A pull of something that is not there: the registry's 404 as a clean error.
    let out = tool("oci-copy")
        .args([
            &server.url("interop/copy:nope"),
            &format!("oci:{}:x", dir.path().join("none").display()),
        ])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("interop/copy:nope"), "{stderr}");
}

#[test]
fn umoci_unpacks_a_repository_directory() {
    if require("umoci").is_none() {
        return;
    }
    let server = OciServe::start();
    let dir = temp_dir();
    let src = dir.path().join("src");
    small_image(&src, "v1");
    tool("oci-copy")
        .args([
            &format!("oci:{}:v1", src.display()),
            &server.url("interop/umoci:v1"),
        ])
        .assert()
        .success();
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:v1", server.root.join("interop/umoci").display()),
        &bundle.display().to_string(),
    ]));
    let hello = std::fs::read_to_string(bundle.join("rootfs/hello.txt")).expect("unpacked file");
    assert_eq!(hello, "hello v1\n");
    assert!(
        bundle.join("config.json").is_file(),
        "an OCI runtime bundle"
    );
    // umoci only read: the root is still clean.
    assert!(ocikit::storage::scrub::scrub(&server.root)
        .expect("scrub")
        .problems
        .is_empty());
}

#[test]
fn containerd_pulls_and_runs_an_image() {
    let Some(layer) = busybox_layer() else {
        return;
    };
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let server = OciServe::start();
    let dir = temp_dir();
    let src = dir.path().join("src");
    let image = image_from_tars(&src, "v1", &[layer], true);
    tool("oci-copy")
        .args([
            &format!("oci:{}:v1", src.display()),
            &server.url("interop/busybox:v1"),
        ])
        .assert()
        .success();
    let reference = format!("{}/interop/busybox:v1", server.addr);
    let pulled = containerd
        .ctr()
        .args(["image", "pull", "--plain-http", &reference])
        .output()
        .expect("ctr pull");
    assert!(
        pulled.status.success(),
        "ctr image pull: {}\n{}\ncontainerd log:\n{}",
        String::from_utf8_lossy(&pulled.stdout),
        String::from_utf8_lossy(&pulled.stderr),
        containerd.log()
    );
    let listed = run(containerd.ctr().args(["image", "ls"]));
    let listed = String::from_utf8_lossy(&listed);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&reference) && l.contains(&image.digest)),
        "{listed}"
    );
    let ran = containerd
        .ctr()
        .args([
            "run",
            "--rm",
            &reference,
            "ocikit-interop",
            "/bin/busybox",
            "echo",
            "hello from oci-serve",
        ])
        .output()
        .expect("ctr run");
    assert!(
        ran.status.success(),
        "ctr run: {}\n{}\ncontainerd log:\n{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr),
        containerd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout).trim(),
        "hello from oci-serve"
    );
}
