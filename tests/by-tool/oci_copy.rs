//! oci-copy end to end: layouts, archives, bad input, faults, and the peers
//! (skopeo, umoci) reading what it writes.

use std::process::Command;
use std::time::{Duration, Instant};

use ocikit_e2e::fixtures::{big_image, blob_path, check_layout, small_image};
use ocikit_e2e::{require, temp_dir, tool};
use serde_json::Value;

const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

fn json_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().expect("a JSON line on stdout");
    serde_json::from_str(line).expect("stdout is JSON")
}

#[test]
fn layout_to_archive_to_layout_keeps_every_digest() {
    let dir = temp_dir();
    let image = small_image(&dir.path().join("src"), "v1");
    let src = format!("oci:{}:v1", dir.path().join("src").display());
    let archive = format!("oci-archive:{}:v1", dir.path().join("a.tar").display());
    let dst = format!("oci:{}:back", dir.path().join("dst").display());

    let out = tool("oci-copy").args([&src, &archive]).assert().success();
    let line = json_line(&out.get_output().stdout);
    assert_eq!(line["digest"], image.digest);
    assert_eq!(line["image"], archive);
    assert_eq!(
        line["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(line["size"], image.size);

    let out = tool("oci-copy")
        .args(["--quiet", &archive, &dst])
        .assert()
        .success();
    assert!(out.get_output().stderr.is_empty(), "--quiet is quiet");
    assert_eq!(json_line(&out.get_output().stdout)["digest"], image.digest);
    let copied = check_layout(&dir.path().join("dst")).expect("the copy validates");
    assert_eq!(copied.tagged("back"), Some(image.digest.as_str()));
    assert_eq!(copied.verified, 4);

    if require("skopeo").is_some() {
        for reference in [&archive, &dst] {
            let out = Command::new("skopeo")
                .args(["inspect", reference])
                .output()
                .expect("skopeo");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let summary: Value = serde_json::from_slice(&out.stdout).expect("json");
            assert_eq!(summary["Digest"], image.digest, "{reference}");
        }
    }
    if require("umoci").is_some() {
        let bundle = dir.path().join("bundle");
        let layout_ref = format!("{}:back", dir.path().join("dst").display());
        let out = Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &layout_ref])
            .arg(&bundle)
            .output()
            .expect("umoci");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hello = std::fs::read_to_string(bundle.join("rootfs/hello.txt")).expect("unpacked");
        assert_eq!(hello, "hello v1\n");
    }
}

#[test]
fn skopeo_written_archives_are_read() {
    let Some(_) = require("skopeo") else { return };
    let dir = temp_dir();
    let image = small_image(&dir.path().join("src"), "v1");
    let archive = format!("oci-archive:{}:v1", dir.path().join("sk.tar").display());
    let status = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            &format!("oci:{}:v1", dir.path().join("src").display()),
            &archive,
        ])
        .status()
        .expect("skopeo");
    assert!(status.success());
    let dst = format!("oci:{}:v1", dir.path().join("dst").display());
    let out = tool("oci-copy").args([&archive, &dst]).assert().success();
    assert_eq!(json_line(&out.get_output().stdout)["digest"], image.digest);
}

#[test]
fn bad_references_are_usage_errors_showing_the_syntax() {
    let dir = temp_dir();
    small_image(&dir.path().join("src"), "v1");
    let src = format!("oci:{}:v1", dir.path().join("src").display());
    let cases: [(&str, &str, &str); 5] = [
        ("dir:/tmp/x", "oci:/tmp/y", "unsupported transport \"dir\""),
        (
            &src,
            "docker-archive:/tmp/x.tar",
            "unsupported transport \"docker-archive\"",
        ),
        (&src, "containers-storage:x", "unsupported transport"),
        ("oci:/tmp/x:-bad", "oci:/tmp/y", "invalid tag"),
        (
            &src,
            "docker://Registry.example/UPPER",
            "invalid repository name",
        ),
    ];
    for (from, to, words) in cases {
        let out = tool("oci-copy").args([from, to]).assert().code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(stderr.contains(words), "{from} {to}: {stderr}");
        assert!(
            stderr.contains("docker://HOST[:PORT]/REPO[:TAG|@DIGEST]"),
            "{from} {to}: the syntax is shown: {stderr}"
        );
        assert!(out.get_output().stdout.is_empty());
    }
    let out = tool("oci-copy")
        .args(["--format", "v3", &src, "oci:/tmp/y"])
        .assert()
        .code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("oci, v2s2"));
}

#[test]
fn a_layout_path_that_is_a_file_is_one_clear_error() {
    let dir = temp_dir();
    let file = dir.path().join("not-a-layout");
    std::fs::write(&file, "x").expect("file");
    let out = tool("oci-copy")
        .args([
            &format!("oci:{}:v1", file.display()),
            &format!("oci:{}:v1", dir.path().join("dest").display()),
        ])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let reason = "Not a directory";
    assert_eq!(stderr.matches(reason).count(), 1, "said once: {stderr}");
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_rejected_and_nothing_is_tagged() {
    let dir = temp_dir();
    let image = small_image(&dir.path().join("src"), "v1");
    let victim = &image.layers[1];
    let path = blob_path(&dir.path().join("src"), victim);
    let mut bytes = std::fs::read(&path).expect("blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, bytes).expect("corrupt");
    let dst_dir = dir.path().join("dst");
    let out = tool("oci-copy")
        .args([
            &format!("oci:{}:v1", dir.path().join("src").display()),
            &format!("oci:{}:v1", dst_dir.display()),
        ])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("digest mismatch") && stderr.contains(victim.as_str()),
        "{stderr}"
    );
    assert!(
        out.get_output().stdout.is_empty(),
        "no JSON line for a failed copy"
    );
    let dst = check_layout(&dst_dir).expect("the destination is still a valid layout");
    assert!(dst.entries.is_empty(), "nothing tagged");
    assert!(
        !blob_path(&dst_dir, victim).exists(),
        "the bad blob is not there"
    );
    if require("skopeo").is_some() {
        let status = Command::new("skopeo")
            .args(["inspect", &format!("oci:{}:v1", dst_dir.display())])
            .output()
            .expect("skopeo");
        assert!(!status.status.success(), "skopeo finds no v1 tag");
    }
}

#[test]
fn an_interrupted_copy_leaves_a_valid_destination_and_a_rerun_completes_it() {
    let dir = temp_dir();
    let image = big_image(&dir.path().join("src"), "big", 40, 4 << 20);
    let src = format!("oci:{}:big", dir.path().join("src").display());
    let dst_dir = dir.path().join("dst");
    let dst = format!("oci:{}:big", dst_dir.display());
    let mut child = Command::new(ocikit_e2e::bin_dir().join("oci-copy"))
        .args(["--quiet", "--image-parallel-copies", "1", &src, &dst])
        .spawn()
        .expect("oci-copy");
    let blobs = dst_dir.join("blobs/sha256");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let present = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
        if present >= 2 {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "oci-copy finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no blob appeared in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let half = check_layout(&dst_dir).expect("the interrupted destination validates");
    assert!(half.entries.is_empty(), "nothing tagged yet");
    let present = std::fs::read_dir(&blobs).expect("blobs").count();
    assert!(
        present < image.layers.len() + 1,
        "interrupted half way ({present} blobs)"
    );

    let out = tool("oci-copy").args([&src, &dst]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        !stderr.contains("; 0 already there"),
        "the rerun reuses blobs: {stderr}"
    );
    assert_eq!(json_line(&out.get_output().stdout)["digest"], image.digest);
    let done = check_layout(&dst_dir).expect("complete and valid");
    assert_eq!(done.tagged("big"), Some(image.digest.as_str()));
    assert_eq!(done.verified, 42);
}

#[test]
fn stdin_lines_land_under_a_repository_prefix() {
    let dir = temp_dir();
    let a = small_image(&dir.path().join("a"), "app");
    let b = small_image(&dir.path().join("b"), "tool");
    let input = format!(
        "{{\"image\":\"oci:{}:app\",\"digest\":\"{}\",\"mediaType\":\"{OCI}\",\"size\":{}}}\nnot json\n{{\"image\":\"oci:{}:tool\",\"digest\":\"{}\",\"mediaType\":\"{OCI}\",\"size\":{},\"name\":\"renamed\"}}\n",
        dir.path().join("a").display(),
        a.digest,
        a.size,
        dir.path().join("b").display(),
        b.digest,
        b.size,
    );
    let prefix = format!("oci:{}/", dir.path().join("out").display());
    let out = tool("oci-copy")
        .args(["-", &prefix])
        .write_stdin(input)
        .assert()
        .code(2);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "the bad line is skipped, the rest copied: {stdout}"
    );
    assert_eq!(
        lines[0]["image"],
        format!("oci:{}:app", dir.path().join("out/app").display())
    );
    assert_eq!(
        lines[1]["image"],
        format!("oci:{}:tool", dir.path().join("out/renamed").display())
    );
    assert_eq!(lines[1]["digest"], b.digest);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("stdin line 2"), "{stderr}");
}

#[test]
fn preserve_digests_refuses_recompression_and_digestfile_is_written() {
    let dir = temp_dir();
    let image = small_image(&dir.path().join("src"), "v1");
    let src = format!("oci:{}:v1", dir.path().join("src").display());
    let out = tool("oci-copy")
        .args([
            "--preserve-digests",
            "--dest-compress-format",
            "zstd",
            &src,
            &format!("oci:{}:z", dir.path().join("z").display()),
        ])
        .assert()
        .code(1);
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("--preserve-digests forbids it")
    );
    let digestfile = dir.path().join("digest");
    let out = tool("oci-copy")
        .args(["--dest-compress-format", "zstd", "--digestfile"])
        .arg(&digestfile)
        .args([&src, &format!("oci:{}:z", dir.path().join("z").display())])
        .assert()
        .success();
    let line = json_line(&out.get_output().stdout);
    assert_eq!(line["sourceDigest"], image.digest);
    assert_ne!(line["digest"], image.digest);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("the digest changed"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&digestfile).expect("digestfile"),
        line["digest"].as_str().expect("digest")
    );
    check_layout(&dir.path().join("z")).expect("valid");
}
