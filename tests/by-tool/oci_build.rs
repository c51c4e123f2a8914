//! oci-build end to end: the binary on real stacker.yaml files.

use ocikit_e2e::{temp_dir, tool};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oci-build")
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn dry_run_prints_the_plan_in_dependency_order() {
    let fixture = fixtures().join("dry-run");
    let out = tool("oci-build")
        .current_dir(&fixture)
        .args([
            "--dry-run",
            "--substitute",
            "VERSION=1.2",
            "--substitute",
            "NAME=web",
        ])
        .assert()
        .success();
    let plan = lines(&out.get_output().stdout);
    let names: Vec<&str> = plan
        .iter()
        .map(|l| l["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["base", "tools", "web"]);
    assert_eq!(plan[0]["build_only"], true);
    let tar = plan[0]["base"]["url"].as_str().unwrap_or_default();
    assert!(tar.ends_with("/dry-run/base/rootfs.tar"), "{tar}");
    assert_eq!(plan[1]["base"]["url"], "docker://busybox:1.36");
    assert_eq!(
        plan[2]["base"],
        serde_json::json!({"type": "built", "tag": "base"})
    );
    assert_eq!(plan[2]["imports"][0]["dest"], "/etc/app/");
    assert_eq!(
        plan[2]["imports"][1]["path"],
        "stacker://tools/usr/bin/tool"
    );
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn bad_input_is_reported_with_file_and_line() {
    let dir = temp_dir();
    let cases = [
        (
            "img:\n  from: {type: scratch}\n  runn: echo\n",
            1,
            "stacker.yaml:3:3: img: unknown directive `runn`",
        ),
        ("img:\n  from: {type: scratch\n", 1, "stacker.yaml:3:1:"),
        (
            "img:\n  from: {type: docker, url: '${{BASE}}x'}\n",
            1,
            "stacker.yaml:2: undefined substitution ${{BASE}}",
        ),
        (
            "a:\n  from: {type: built, tag: b}\nb:\n  from: {type: built, tag: a}\n",
            1,
            "dependency cycle between images: a → b → a",
        ),
    ];
    for (text, code, want) in cases {
        std::fs::write(dir.path().join("stacker.yaml"), text).expect("write");
        let out = tool("oci-build")
            .current_dir(dir.path())
            .arg("--dry-run")
            .assert()
            .code(code);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(stderr.starts_with("oci-build: "), "{stderr}");
        assert!(
            stderr.contains(want),
            "{text}\n got: {stderr}\nwant: {want}"
        );
        assert!(out.get_output().stdout.is_empty());
    }
    let out = tool("oci-build")
        .current_dir(dir.path())
        .args(["--dry-run", "--substitute", "novalue"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("--substitute novalue: expected KEY=VALUE"),
        "{stderr}"
    );
}
