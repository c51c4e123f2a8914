//! oci-inspect end to end, compared field for field with skopeo inspect.

use std::process::Command;

use ocikit_e2e::fixtures::small_image;
use ocikit_e2e::{require, temp_dir, tool};
use serde_json::Value;

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn summary_raw_and_config_match_skopeo() {
    let Some(_) = require("skopeo") else { return };
    let dir = temp_dir();
    let image = small_image(&dir.path().join("l"), "v1");
    let layout = format!("oci:{}:v1", dir.path().join("l").display());
    let archive = format!("oci-archive:{}:v1", dir.path().join("a.tar").display());
    tool("oci-copy")
        .args(["-q", &layout, &archive])
        .assert()
        .success();
    for reference in [&layout, &archive] {
        let ours = tool("oci-inspect").arg(reference).assert().success();
        let theirs = skopeo(&["inspect", reference]);
        assert_eq!(
            String::from_utf8_lossy(&ours.get_output().stdout),
            String::from_utf8_lossy(&theirs),
            "{reference}: the summary is skopeo's"
        );
        let raw = tool("oci-inspect")
            .args(["--raw", reference])
            .assert()
            .success();
        assert_eq!(
            raw.get_output().stdout,
            skopeo(&["inspect", "--raw", reference])
        );
        let config = tool("oci-inspect")
            .args(["--config", "--raw", reference])
            .assert()
            .success();
        assert_eq!(
            config.get_output().stdout,
            skopeo(&["inspect", "--config", "--raw", reference])
        );
    }
    let digest = tool("oci-inspect")
        .args(["--digest", &layout])
        .assert()
        .success();
    let line: Value = serde_json::from_slice(&digest.get_output().stdout).expect("json");
    assert_eq!(line["digest"], image.digest);
    assert_eq!(line["image"], layout);
    assert_eq!(line["size"], image.size);
}

#[test]
fn tags_config_and_errors() {
    let dir = temp_dir();
    small_image(&dir.path().join("l"), "v1");
    small_image(&dir.path().join("l"), "v2");
    let path = dir.path().join("l").display().to_string();
    let out = tool("oci-inspect")
        .args(["--tags", &format!("oci:{path}")])
        .assert()
        .success();
    let tags: Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(tags["Repository"], path);
    assert_eq!(tags["Tags"], serde_json::json!(["v1", "v2"]));
    let out = tool("oci-inspect")
        .args(["--config", &format!("oci:{path}:v2")])
        .assert()
        .success();
    let config: Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(config["config"]["Labels"]["fixture"], "v2");

    let out = tool("oci-inspect")
        .arg(format!("oci:{path}"))
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("holds 2 images") && stderr.contains("TAG"),
        "{stderr}"
    );
    let out = tool("oci-inspect")
        .arg(format!("oci:{path}:v3"))
        .assert()
        .code(1);
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("tags in this layout: v1, v2")
    );
    let out = tool("oci-inspect").arg("docker-daemon:x").assert().code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("oci:PATH[:TAG]"));
}
