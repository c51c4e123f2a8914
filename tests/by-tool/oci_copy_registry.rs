//! oci-copy against the reference registry (docker-registry) with skopeo and
//! umoci as the independent readers and writers.

use std::process::Command;

use ocikit_e2e::fixtures::{check_layout, index_of, small_image};
use ocikit_e2e::peers::DockerRegistry;
use ocikit_e2e::{require, temp_dir, tool};
use serde_json::Value;

fn json_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.lines().last().expect("a JSON line")).expect("JSON")
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn peers() -> Option<DockerRegistry> {
    require("skopeo")?;
    DockerRegistry::start()
}

#[test]
fn a_push_is_read_by_skopeo_and_pulls_back_with_every_digest() {
    let Some(registry) = peers() else { return };
    let dir = temp_dir();
    let image = small_image(&dir.path().join("src"), "v1");
    let remote = registry.url("team/app:1.0");
    let out = tool("oci-copy")
        .args([
            &format!("oci:{}:v1", dir.path().join("src").display()),
            &remote,
        ])
        .assert()
        .success();
    let line = json_line(&out.get_output().stdout);
    assert_eq!(line["digest"], image.digest);
    assert_eq!(line["image"], remote);

    let summary: Value =
        serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &remote])).expect("json");
    assert_eq!(summary["Digest"], image.digest);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &remote]);
    assert_eq!(ocikit_e2e::fixtures::sha256(&raw), image.digest);

    let ours: Value = serde_json::from_slice(
        &tool("oci-inspect")
            .arg(&remote)
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .expect("json");
    assert_eq!(ours, summary, "oci-inspect's summary is skopeo's");
    let tags: Value = serde_json::from_slice(
        &tool("oci-inspect")
            .args(["--tags", &remote])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .expect("json");
    assert_eq!(tags["Tags"], serde_json::json!(["1.0"]));

    let back = dir.path().join("back");
    let out = tool("oci-copy")
        .args([&remote, &format!("oci:{}:again", back.display())])
        .assert()
        .success();
    assert_eq!(json_line(&out.get_output().stdout)["digest"], image.digest);
    let state = check_layout(&back).expect("valid");
    assert_eq!(state.tagged("again"), Some(image.digest.as_str()));
    assert_eq!(state.verified, 4);

    // A re-push transfers nothing.
    let out = tool("oci-copy")
        .args([
            &format!("oci:{}:v1", dir.path().join("src").display()),
            &remote,
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("(0 blobs copied"), "{stderr}");
}

#[test]
fn skopeo_pushed_images_oci_and_v2s2_are_pulled_and_unpacked_by_umoci() {
    let Some(registry) = peers() else { return };
    let dir = temp_dir();
    let image = small_image(&dir.path().join("src"), "v1");
    let src = format!("oci:{}:v1", dir.path().join("src").display());
    let oci = registry.url("sk/app:oci");
    let v2 = registry.url("sk/app:v2");
    skopeo(&["copy", "-q", "--dest-tls-verify=false", &src, &oci]);
    skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &src,
        &v2,
    ]);
    let pulled = dir.path().join("pulled");
    let out = tool("oci-copy")
        .args([&oci, &format!("oci:{}:oci", pulled.display())])
        .assert()
        .success();
    assert_eq!(json_line(&out.get_output().stdout)["digest"], image.digest);
    let out = tool("oci-copy")
        .args([&v2, &format!("oci:{}:v2", pulled.display())])
        .assert()
        .success();
    let line = json_line(&out.get_output().stdout);
    let v2_digest = format!(
        "sha256:{}",
        String::from_utf8_lossy(&skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &v2
        ]))
        .trim()
        .trim_start_matches("sha256:")
    );
    assert_eq!(
        line["sourceDigest"], v2_digest,
        "the v2s2 digest is reported"
    );
    assert_eq!(
        line["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("the digest changed"), "{stderr}");
    check_layout(&pulled).expect("valid");
    let out = tool("oci-copy")
        .args([
            "--preserve-digests",
            &v2,
            &format!("oci:{}:v2", dir.path().join("refused").display()),
        ])
        .assert()
        .code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("--preserve-digests"));
    if require("umoci").is_some() {
        for tag in ["oci", "v2"] {
            let bundle = dir.path().join(format!("bundle-{tag}"));
            let out = Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:{tag}", pulled.display()))
                .arg(&bundle)
                .output()
                .expect("umoci");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                std::fs::read_to_string(bundle.join("rootfs/hello.txt")).expect("file"),
                "hello v1\n"
            );
        }
    }
}

#[test]
fn an_index_and_a_signature_copy_whole_layout_to_registry_to_registry_to_layout() {
    let Some(registry) = peers() else { return };
    let dir = temp_dir();
    let src = dir.path().join("src");
    let amd = small_image(&src, "amd");
    let arm = small_image(&src, "arm");
    let index = index_of(&src, "multi", &[(&amd, "amd64"), (&arm, "arm64")]);
    let sig_tag = format!("{}.sig", index.replace(':', "-"));
    let sig = small_image(&src, &sig_tag);
    let first = registry.url("a/multi:1");
    let out = tool("oci-copy")
        .args([&format!("oci:{}:multi", src.display()), &first])
        .assert()
        .success();
    let line = json_line(&out.get_output().stdout);
    assert_eq!(line["digest"], index);
    assert_eq!(line["signatures"], serde_json::json!([sig_tag]));
    let sig_ref = registry.url(&format!("a/multi:{sig_tag}"));
    let sig_raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &sig_ref]);
    assert_eq!(ocikit_e2e::fixtures::sha256(&sig_raw), sig.digest);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &first]);
    assert_eq!(ocikit_e2e::fixtures::sha256(&raw), index);

    let second = registry.url("b/multi:2");
    let out = tool("oci-copy").args([&first, &second]).assert().success();
    assert_eq!(json_line(&out.get_output().stdout)["digest"], index);
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &registry.url(&format!("b/multi:{sig_tag}")),
    ]);
    let out = tool("oci-copy")
        .args(["--remove-signatures", &first, &registry.url("c/multi:3")])
        .assert()
        .success();
    assert!(json_line(&out.get_output().stdout)
        .get("signatures")
        .is_none());

    let back = dir.path().join("back");
    let out = tool("oci-copy")
        .args([&second, &format!("oci:{}:multi", back.display())])
        .assert()
        .success();
    assert_eq!(json_line(&out.get_output().stdout)["digest"], index);
    let state = check_layout(&back).expect("valid");
    assert_eq!(state.tagged("multi"), Some(index.as_str()));
    assert_eq!(state.tagged(&sig_tag), Some(sig.digest.as_str()));
}

#[test]
fn an_unsupported_or_unreachable_registry_says_what_to_fix() {
    let dir = temp_dir();
    small_image(&dir.path().join("src"), "v1");
    let port = ocikit_e2e::free_port();
    let out = tool("oci-copy")
        .args([
            "--retry-times",
            "0",
            &format!("oci:{}:v1", dir.path().join("src").display()),
            &format!("docker://127.0.0.1:{port}/x:1"),
        ])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

/// Requests oci-serve answered on `route` with `method`, from its /metrics.
fn answered(server: &ocikit_e2e::peers::OciServe, route: &str, method: &str) -> u64 {
    let text = reqwest::blocking::get(format!("http://{}/metrics", server.addr))
        .and_then(|r| r.text())
        .expect("metrics");
    let prefix = format!("ocikit_http_requests_total{{route=\"{route}\",method=\"{method}\",");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_re_push_of_an_image_already_there_asks_once_for_the_manifest_not_per_blob() {
    let dir = temp_dir();
    let server = ocikit_e2e::peers::OciServe::start_at(&dir.path().join("root"), &[]);
    small_image(&dir.path().join("src"), "v1");
    let src = format!("oci:{}:v1", dir.path().join("src").display());
    let push = |tag: &str| {
        let out = tool("oci-copy")
            .args([&src, &format!("docker://{}/app:{tag}", server.addr)])
            .assert()
            .success();
        String::from_utf8_lossy(&out.get_output().stderr).into_owned()
    };
    push("1.0");
    let blob_heads = answered(&server, "blob", "HEAD");
    let manifest_heads = answered(&server, "manifest", "HEAD");
    let stderr = push("2.0");
    assert!(stderr.contains("(0 blobs copied"), "{stderr}");
    assert!(stderr.contains("; 3 already there"), "{stderr}");
    assert_eq!(
        answered(&server, "blob", "HEAD"),
        blob_heads,
        "no blob HEADs"
    );
    assert_eq!(answered(&server, "manifest", "HEAD"), manifest_heads + 1);
    let tagged = reqwest::blocking::Client::new()
        .head(format!("http://{}/v2/app/manifests/2.0", server.addr))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .expect("registry answers");
    assert_eq!(
        tagged.status(),
        reqwest::StatusCode::OK,
        "the new tag is there"
    );
}
