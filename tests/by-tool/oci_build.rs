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

/// A tar base made of Debian's static busybox (`/bin/busybox` and `/bin/sh`).
fn busybox_tar(dir: &Path) -> Option<PathBuf> {
    let busybox = ocikit_e2e::require("busybox")?;
    let src = dir.join("busybox-src/bin");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::copy(&busybox, src.join("busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", src.join("sh")).expect("symlink");
    let tar = dir.join("busybox.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir.join("busybox-src"))
        .arg("-cf")
        .arg(&tar)
        .arg("bin")
        .status()
        .expect("tar");
    assert!(status.success());
    Some(tar)
}

/// The image config of `tag` in the layout `oci`, read without ocikit.
fn image_config(oci: &Path, tag: &str) -> Value {
    let read = |digest: &str| -> Value {
        serde_json::from_slice(
            &std::fs::read(oci.join("blobs/sha256").join(&digest[7..])).expect("blob"),
        )
        .expect("json")
    };
    let index = read_json(&oci.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tagged")
        .clone();
    let manifest = read(entry["digest"].as_str().expect("digest"));
    read(manifest["config"]["digest"].as_str().expect("config"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

fn index_tags(oci: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(oci.join("index.json")) else {
        return Vec::new();
    };
    let index: Value = serde_json::from_slice(&bytes).expect("index.json");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_owned)
        .collect()
}

const BUSYBOX_YAML: &str = r#"
busybox:
  from:
    type: tar
    url: busybox.tar
  imports:
    - path: files/greeting
      dest: /etc/greeting
    - files/
  run: |
    /bin/busybox mkdir -p /usr/bin
    /bin/busybox --install -s /usr/bin
    cat /stacker/imports/greeting > /from-run
    echo scratch > /tmp-file
  environment:
    PATH: /usr/bin:/bin
  labels:
    org.example.built-by: oci-build
  entrypoint: /bin/sh -c "cat /etc/greeting"
tools:
  from: {type: built, tag: busybox}
  run: rm /tmp-file
  build_only: true
app:
  from: {type: built, tag: tools}
  imports:
    - stacker://tools/from-run
  run: cp /stacker/imports/from-run /copied
  cmd: [echo, hi]
"#;

#[test]
fn builds_busybox_from_a_tar_base_with_run_steps_under_runc() {
    let (Some(_), Some(umoci), Some(_)) = (
        ocikit_e2e::require("runc"),
        ocikit_e2e::require("umoci"),
        ocikit_e2e::require("skopeo"),
    ) else {
        return;
    };
    let dir = temp_dir();
    if busybox_tar(dir.path()).is_none() {
        return;
    }
    std::fs::create_dir_all(dir.path().join("files")).expect("mkdir");
    std::fs::write(dir.path().join("files/greeting"), "hello from an import\n").expect("write");
    std::fs::write(dir.path().join("stacker.yaml"), BUSYBOX_YAML).expect("write");
    let out = tool("oci-build").current_dir(dir.path()).assert().success();
    let built = lines(&out.get_output().stdout);
    let names: Vec<&str> = built
        .iter()
        .map(|l| l["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["busybox", "app"], "build_only images print no line");
    assert_eq!(built[1]["image"], "oci:oci:app");
    assert!(built[1]["digest"]
        .as_str()
        .unwrap_or("")
        .starts_with("sha256:"));
    let mut tags = index_tags(&dir.path().join("oci"));
    tags.sort();
    assert_eq!(tags, ["app", "busybox"]);

    // umoci reads it: layers, whiteouts and the run step's files.
    let bundle = dir.path().join("bundle");
    let unpack = std::process::Command::new(&umoci)
        .arg("unpack")
        .arg("--image")
        .arg(dir.path().join("oci:app"))
        .arg(&bundle)
        .current_dir(dir.path())
        .output()
        .expect("umoci");
    assert!(
        unpack.status.success(),
        "{}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("copied")).expect("copied"),
        "hello from an import\n"
    );
    assert!(!rootfs.join("tmp-file").exists(), "whiteout applied");
    assert!(rootfs.join("usr/bin/ls").is_symlink());
    for leftover in ["proc", "sys", "dev", "stacker", ".oci-build"] {
        assert!(
            !rootfs.join(leftover).exists(),
            "/{leftover} left in the image"
        );
    }
    let config: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("bundle config"))
            .expect("json");
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["/bin/sh", "-c", "cat /etc/greeting", "echo", "hi"])
    );

    // skopeo reads the config.
    let inspect = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:busybox", dir.path().join("oci").display()))
        .output()
        .expect("skopeo");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: Value = serde_json::from_slice(&inspect.stdout).expect("json");
    assert_eq!(info["Labels"]["org.example.built-by"], "oci-build");
    assert_eq!(info["Created"], "1970-01-01T00:00:00Z");
}

#[test]
fn same_inputs_same_digests_whatever_the_directory_umask_and_file_order() {
    let Some(_) = ocikit_e2e::require("runc") else {
        return;
    };
    let yaml = "img:
  from: {type: tar, url: busybox.tar}
  imports:
    - path: tree/
      dest: /srv/
    - tree
  run: |
    cat /stacker/imports/tree/a/one > /one-copy
    mkdir -p /var/made && echo x > /var/made/file
";
    let mut digests = Vec::new();
    for (umask, reversed) in [("022", false), ("077", true)] {
        let dir = temp_dir();
        if busybox_tar(dir.path()).is_none() {
            return;
        }
        let mut files = [("tree/a/one", "1"), ("tree/b/two", "2"), ("tree/c", "3")];
        if reversed {
            files.reverse();
        }
        let script: String = files
            .iter()
            .map(|(path, data)| {
                format!("mkdir -p $(dirname {path}) && printf {data} > {path} && sleep 0.01\n")
            })
            .collect();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask}\n{script}"))
            .current_dir(dir.path())
            .status()
            .expect("sh");
        assert!(status.success());
        std::fs::write(dir.path().join("stacker.yaml"), yaml).expect("write");
        let bin = ocikit_e2e::bin_dir().join("oci-build");
        let out = assert_cmd::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" --quiet --no-cache"))
            .arg(&bin)
            .current_dir(dir.path())
            .assert()
            .success();
        let line = lines(&out.get_output().stdout).remove(0);
        digests.push(line["digest"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn failed_builds_tag_nothing() {
    let Some(_) = ocikit_e2e::require("runc") else {
        return;
    };
    let dir = temp_dir();
    if busybox_tar(dir.path()).is_none() {
        return;
    }
    std::fs::write(dir.path().join("data"), "content").expect("write");
    // A tar base with an entry that climbs out of the root.
    let mut evil = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut evil);
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.as_old_mut().name[..12].copy_from_slice(b"../../escape");
        header.set_cksum();
        builder.append(&header, &b"x"[..]).expect("append");
        builder.finish().expect("finish");
    }
    std::fs::write(dir.path().join("evil.tar"), &evil).expect("write");
    let cases = [
        (
            "first:\n  from: {type: tar, url: busybox.tar}\nsecond:\n  from: {type: built, tag: first}\n  run: |\n    echo about to fail\n    exit 3\n",
            "image second: run failed with exit status 3; the end of its output:\n",
        ),
        (
            "ok:\n  from: {type: tar, url: busybox.tar}\na:\n  from: {type: built, tag: b}\nb:\n  from: {type: built, tag: ok}\n  imports: [stacker://a/etc]\n",
            "dependency cycle between images: a → b → a",
        ),
        (
            "ok:\n  from: {type: tar, url: busybox.tar}\nimg:\n  from: {type: tar, url: evil.tar}\n",
            "evil.tar: entry ../../escape: it climbs out of the root with `..`",
        ),
        (
            "img:\n  from: {type: tar, url: busybox.tar}\n  imports: [missing.txt]\n",
            "import /",
        ),
        (
            "img:\n  from: {type: tar, url: busybox.tar}\n  imports:\n    - path: data\n      hash: 0000000000000000000000000000000000000000000000000000000000000000\n",
            "hash mismatch: the file has sha256 ed7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73",
        ),
    ];
    for (yaml, want) in cases {
        std::fs::write(dir.path().join("stacker.yaml"), yaml).expect("write");
        let out = tool("oci-build").current_dir(dir.path()).assert().code(1);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(
            stderr.contains(want),
            "{yaml}\n got: {stderr}\nwant: {want}"
        );
        assert!(out.get_output().stdout.is_empty());
        assert!(
            index_tags(&dir.path().join("oci")).is_empty(),
            "{yaml}: something was tagged"
        );
        if let Some((_, tail)) = stderr.split_once("the end of its output:\n") {
            // The script's stdout and stderr share one pipe, as on a
            // terminal: busybox writes its trace in pieces and echo's
            // buffered line may land between them, so look for the line
            // echo wrote whole and the trace's words.
            assert!(tail.contains("about to fail\n"), "{stderr}");
            for word in ["echo", "exit"] {
                assert!(tail.contains(word), "{word}: {stderr}");
            }
        }
        assert!(!dir.path().join("escape").exists());
        assert!(!dir.path().join("roots/escape").exists());
    }
    let stderr = String::from_utf8_lossy(
        &tool("oci-build")
            .current_dir(dir.path())
            .arg("--quiet")
            .write_stdin("")
            .assert()
            .code(1)
            .get_output()
            .stderr,
    )
    .to_string();
    assert!(stderr.contains("hash mismatch"), "{stderr}");
}

/// Builds in `dir` and returns (digest of each printed image by name, stderr).
fn build_in(dir: &Path, args: &[&str]) -> (std::collections::BTreeMap<String, String>, String) {
    let out = tool("oci-build")
        .current_dir(dir)
        .args(args)
        .assert()
        .success();
    let digests = lines(&out.get_output().stdout)
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or_default().to_owned(),
                l["digest"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    (digests, stderr)
}

fn cached(stderr: &str, image: &str) -> bool {
    stderr.contains(&format!(
        "oci-build: image {image}: up to date (build cache"
    ))
}

/// stacker #70 and #82: the cache follows the content of imports (not their
/// mtimes), a file deleted from an imported directory and the base; an
/// unchanged build is a hit; `--no-cache` rebuilds.
#[test]
fn build_cache_hits_when_unchanged_and_rebuilds_on_any_content_change() {
    let dir = temp_dir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("conf/sub")).expect("mkdir");
    std::fs::write(d.join("conf/app.conf"), "port=1\n").expect("write");
    std::fs::write(d.join("conf/sub/extra"), "extra\n").expect("write");
    std::fs::create_dir_all(d.join("base-src/etc")).expect("mkdir");
    std::fs::write(d.join("base-src/etc/os-release"), "ID=one\n").expect("write");
    let make_tar = || {
        let status = std::process::Command::new("tar")
            .args(["--mtime=@0", "-C", "base-src", "-cf", "base.tar", "etc"])
            .current_dir(d)
            .status()
            .expect("tar");
        assert!(status.success());
    };
    make_tar();
    std::fs::write(
        d.join("stacker.yaml"),
        "base:\n  from: {type: tar, url: base.tar}\n  imports:\n    - path: conf\n      dest: /etc/\n\
         app:\n  from: {type: built, tag: base}\n  labels: {role: app}\n\
         other:\n  from: {type: scratch}\n  imports:\n    - path: conf/app.conf\n      dest: /app.conf\n",
    )
    .expect("write");

    let (first, stderr) = build_in(d, &[]);
    assert!(!cached(&stderr, "base"), "{stderr}");
    assert_eq!(first.len(), 3);

    // Unchanged: every image is a hit, with the same digests.
    let (again, stderr) = build_in(d, &[]);
    for image in ["base", "app", "other"] {
        assert!(cached(&stderr, image), "{image} not cached: {stderr}");
    }
    assert_eq!(again, first);

    // --no-cache rebuilds everything, to the same digests.
    let (rebuilt, stderr) = build_in(d, &["--no-cache"]);
    assert!(!stderr.contains("up to date"), "{stderr}");
    assert_eq!(rebuilt, first);

    // An edit that keeps the size and the mtime (stacker #70).
    let mtime = std::fs::metadata(d.join("conf/app.conf"))
        .expect("meta")
        .modified()
        .expect("mtime");
    std::fs::write(d.join("conf/app.conf"), "port=2\n").expect("write");
    std::fs::File::options()
        .write(true)
        .open(d.join("conf/app.conf"))
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");
    let (edited, stderr) = build_in(d, &[]);
    for image in ["base", "app", "other"] {
        assert!(!cached(&stderr, image), "{image} was cached: {stderr}");
    }
    assert_ne!(edited["base"], first["base"]);
    assert_ne!(edited["app"], first["app"], "a changed parent rebuilds");
    assert_ne!(edited["other"], first["other"]);

    // A file deleted from an imported directory (stacker #82): the images
    // importing the directory rebuild, the one importing a single file not.
    std::fs::remove_file(d.join("conf/sub/extra")).expect("rm");
    let (deleted, stderr) = build_in(d, &[]);
    assert!(!cached(&stderr, "base"), "{stderr}");
    assert!(!cached(&stderr, "app"), "{stderr}");
    assert!(cached(&stderr, "other"), "{stderr}");
    assert_ne!(deleted["base"], edited["base"]);
    assert_eq!(deleted["other"], edited["other"]);

    // A changed base image (the tar's content).
    std::fs::write(d.join("base-src/etc/os-release"), "ID=two\n").expect("write");
    make_tar();
    let (based, stderr) = build_in(d, &[]);
    assert!(!cached(&stderr, "base"), "{stderr}");
    assert!(!cached(&stderr, "app"), "{stderr}");
    assert!(cached(&stderr, "other"), "{stderr}");
    assert_ne!(based["app"], deleted["app"]);

    // A changed directive rebuilds that image (and only it).
    let yaml = std::fs::read_to_string(d.join("stacker.yaml")).expect("read");
    std::fs::write(
        d.join("stacker.yaml"),
        yaml.replace("role: app", "role: web"),
    )
    .expect("write");
    let (relabelled, stderr) = build_in(d, &[]);
    assert!(cached(&stderr, "base"), "{stderr}");
    assert!(!cached(&stderr, "app"), "{stderr}");
    assert_ne!(relabelled["app"], based["app"]);

    // A bind is part of the key by its spec (source -> dest), not by what
    // the source holds (a package cache, a checkout: --no-cache for those).
    std::fs::create_dir_all(d.join("bound")).expect("mkdir");
    std::fs::write(d.join("bound/f"), "1").expect("write");
    let yaml = yaml.replace("role: app", "role: web");
    let with_bind = |bind: &str| {
        std::fs::write(
            d.join("stacker.yaml"),
            yaml.replace(
                "  labels: {role: web}",
                &format!("  labels: {{role: web}}\n  binds: ['{bind}']"),
            ),
        )
        .expect("write");
    };
    with_bind("bound -> /mnt/a");
    let (bound, stderr) = build_in(d, &[]);
    assert!(cached(&stderr, "base"), "{stderr}");
    assert!(!cached(&stderr, "app"), "a new bind rebuilds: {stderr}");
    std::fs::write(d.join("bound/f"), "2").expect("write");
    let (_, stderr) = build_in(d, &[]);
    assert!(
        cached(&stderr, "app"),
        "bind contents are not hashed: {stderr}"
    );
    with_bind("bound -> /mnt/b");
    let (_, stderr) = build_in(d, &[]);
    assert!(
        !cached(&stderr, "app"),
        "a changed bind dest rebuilds: {stderr}"
    );
    assert_eq!(
        bound["app"], relabelled["app"],
        "binds do not change the image"
    );

    // A root filesystem removed behind the cache's back: rebuilt, same digest.
    std::fs::remove_dir_all(d.join("roots/base")).expect("rm roots");
    let (restored, stderr) = build_in(d, &[]);
    assert!(!cached(&stderr, "base"), "{stderr}");
    assert_eq!(restored["base"], relabelled["base"]);
    assert_eq!(restored["app"], relabelled["app"]);

    // After a dozen builds the work directory holds one cache entry per
    // image and exactly the blobs of the images' current builds.
    let work = d.join(".stacker/oci-build");
    let names_in = |dir: &Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names_in(&work.join("cache")).len(), 3);
    let mut wanted = std::collections::BTreeSet::new();
    for digest in restored.values() {
        let manifest: Value = read_json(&d.join("oci/blobs/sha256").join(&digest[7..]));
        wanted.insert(digest[7..].to_owned());
        wanted.insert(manifest["config"]["digest"].as_str().expect("config")[7..].to_owned());
        for layer in manifest["layers"].as_array().expect("layers") {
            wanted.insert(layer["digest"].as_str().expect("layer")[7..].to_owned());
        }
    }
    assert_eq!(names_in(&work.join("blobs/sha256")), wanted);
    assert!(!work.join("downloads").exists());

    // `oci-build clean`, as `stacker clean`: roots, layout and work dir gone.
    let out = tool("oci-build")
        .current_dir(d)
        .arg("clean")
        .assert()
        .success();
    assert!(out.get_output().stdout.is_empty());
    for gone in ["roots", "oci", ".stacker"] {
        assert!(!d.join(gone).exists(), "{gone} left after clean");
    }
    assert!(d.join("stacker.yaml").exists());
    let (_, stderr) = build_in(d, &[]);
    assert!(!cached(&stderr, "base"), "{stderr}");
}

/// `from: oci` (`layout:tag`, split at the first colon) and `from: docker`
/// with `docker://` (pulled from docker-registry, pushed there by oci-copy)
/// and `oci:` references: the base's layers and config carry over, its
/// whiteouts are applied, and a new base digest rebuilds the image.
#[test]
fn builds_on_oci_layouts_and_registry_images() {
    let (Some(_), Some(umoci)) = (ocikit_e2e::require("runc"), ocikit_e2e::require("umoci")) else {
        return;
    };
    let Some(registry) = ocikit_e2e::peers::DockerRegistry::start() else {
        return;
    };
    let dir = temp_dir();
    let d = dir.path();
    if busybox_tar(d).is_none() {
        return;
    }
    // The base: busybox, then a layer that deletes a file (a whiteout).
    std::fs::write(
        d.join("stacker.yaml"),
        "busybox:\n  from: {type: tar, url: busybox.tar}\n  run: |\n    echo gone > /doomed\n    echo kept > /kept\n  environment: {FROM_BASE: 'yes'}\n  entrypoint: /bin/sh\n\
         base:\n  from: {type: built, tag: busybox}\n  run: rm /doomed\n",
    )
    .expect("write");
    let base = build_in(d, &["--oci-dir", "dest"]).0;
    tool("oci-copy")
        .args(["-q", "oci:dest:base"])
        .arg(format!("docker://{}/library/base:1.0", registry.addr))
        .current_dir(d)
        .assert()
        .success();

    let yaml = |from: &str| {
        format!(
            "img:\n  from: {from}\n  run: |\n    test ! -e /doomed\n    cat /kept > /copied\n  labels: {{built: on-image}}\n"
        )
    };
    let cases = [
        ("{type: oci, url: 'dest:base'}", "oci"),
        (
            &format!(
                "{{type: docker, url: 'docker://{}/library/base:1.0'}}",
                registry.addr
            ) as &str,
            "docker",
        ),
        ("{type: docker, url: 'oci:dest:base'}", "docker-oci"),
    ];
    let base_manifest: Value = serde_json::from_slice(
        &std::fs::read(d.join("dest/blobs/sha256").join(&base["base"][7..])).expect("manifest"),
    )
    .expect("json");
    let base_layers = base_manifest["layers"].as_array().expect("layers").clone();
    let mut digests = Vec::new();
    for (from, name) in cases {
        let project = d.join(name);
        std::fs::create_dir_all(&project).expect("mkdir");
        std::fs::write(project.join("stacker.yaml"), yaml(from)).expect("write");
        // Relative `oci` paths are relative to where oci-build runs.
        let out = tool("oci-build")
            .current_dir(d)
            .args(["-f", &format!("{name}/stacker.yaml"), "--oci-dir"])
            .arg(format!("out-{name}"))
            .args(["--roots-dir", &format!("roots-{name}")])
            .assert()
            .success();
        let line = lines(&out.get_output().stdout).remove(0);
        let digest = line["digest"].as_str().expect("digest").to_owned();
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(
                d.join(format!("out-{name}/blobs/sha256"))
                    .join(&digest[7..]),
            )
            .expect("manifest"),
        )
        .expect("json");
        let layers = manifest["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), base_layers.len() + 1, "{name}");
        assert_eq!(layers[..base_layers.len()], base_layers[..], "{name}");
        let bundle = d.join(format!("bundle-{name}"));
        let unpack = std::process::Command::new(&umoci)
            .args(["unpack", "--image"])
            .arg(format!("out-{name}:img"))
            .arg(&bundle)
            .current_dir(d)
            .output()
            .expect("umoci");
        assert!(
            unpack.status.success(),
            "{}",
            String::from_utf8_lossy(&unpack.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(bundle.join("rootfs/copied")).expect("copied"),
            "kept\n"
        );
        assert!(!bundle.join("rootfs/doomed").exists());
        let config: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config"))
                .expect("json");
        let env = config["process"]["env"].as_array().expect("env");
        assert!(env.iter().any(|e| e == "FROM_BASE=yes"), "{env:?}");
        assert_eq!(config["process"]["args"][0], "/bin/sh");
        digests.push(digest);
    }
    // The same base by three routes: the same image.
    assert_eq!(digests[0], digests[2]);
    assert_eq!(digests[0], digests[1]);

    // A new base under the same tag rebuilds; an unchanged one is cached.
    let again = tool("oci-build")
        .current_dir(d)
        .args([
            "-f",
            "oci/stacker.yaml",
            "--oci-dir",
            "out-oci",
            "--roots-dir",
            "roots-oci",
        ])
        .assert()
        .success();
    assert!(cached(
        &String::from_utf8_lossy(&again.get_output().stderr),
        "img"
    ));
    let yaml_base = std::fs::read_to_string(d.join("stacker.yaml")).expect("read");
    std::fs::write(
        d.join("stacker.yaml"),
        yaml_base.replace("rm /doomed", "rm /doomed; touch /new"),
    )
    .expect("write");
    build_in(d, &["--oci-dir", "dest"]);
    let (rebuilt, stderr) = build_in(
        d,
        &[
            "-f",
            "oci/stacker.yaml",
            "--oci-dir",
            "out-oci",
            "--roots-dir",
            "roots-oci",
        ],
    );
    assert!(!cached(&stderr, "img"), "{stderr}");
    assert_ne!(rebuilt["img"], digests[0]);

    // Bad bases: a missing tag, an unreachable registry, no such layout.
    let cases = [
        (
            "{type: oci, url: 'dest:nope'}",
            "base oci dest:nope: dest: no image tagged \"nope\"",
        ),
        ("{type: oci, url: 'nowhere:x'}", "not an OCI image layout"),
        (
            &format!(
                "{{type: docker, url: 'docker://{}/library/absent:1'}}",
                registry.addr
            ) as &str,
            "library/absent",
        ),
        ("{type: docker, url: 'dir:/x'}", "dir:/x"),
    ];
    for (from, want) in cases {
        std::fs::write(d.join("bad.yaml"), yaml(from)).expect("write");
        let out = tool("oci-build")
            .current_dir(d)
            .args(["-f", "bad.yaml", "--oci-dir", "bad-out"])
            .assert()
            .code(1);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(
            stderr.contains(want),
            "{from}\n got: {stderr}\nwant: {want}"
        );
        assert!(index_tags(&d.join("bad-out")).is_empty());
    }
}

/// `--platform`: each image built once per platform with TARGETOS,
/// TARGETARCH and TARGETVARIANT substituted, tagged as an image index that
/// skopeo reads per platform; a run step for a platform this machine cannot
/// execute is a clear error and tags nothing.
#[test]
fn builds_an_image_index_for_several_platforms() {
    let dir = temp_dir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("bin")).expect("mkdir");
    std::fs::write(d.join("bin/tool-amd64"), "amd64 build\n").expect("write");
    std::fs::write(d.join("bin/tool-arm64"), "arm64 build\n").expect("write");
    std::fs::write(
        d.join("stacker.yaml"),
        "app:\n  from: {type: scratch}\n  imports:\n    - path: bin/tool-${{TARGETARCH}}\n      dest: /usr/bin/tool\n  labels:\n    target: ${{TARGETOS}}-${{TARGETARCH}}-${{TARGETVARIANT:none}}\n",
    )
    .expect("write");
    let out = tool("oci-build")
        .current_dir(d)
        .args(["--platform", "linux/amd64,linux/arm64/v8"])
        .assert()
        .success();
    let line = lines(&out.get_output().stdout).remove(0);
    assert_eq!(line["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(index_tags(&d.join("oci")), ["app"]);
    let blob = |digest: &str| -> Value {
        serde_json::from_slice(
            &std::fs::read(d.join("oci/blobs/sha256").join(&digest[7..])).expect("blob"),
        )
        .expect("json")
    };
    let index = blob(line["digest"].as_str().expect("digest"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2);
    assert_eq!(
        manifests[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(
        manifests[1]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );
    let config = |i: usize| {
        blob(
            blob(manifests[i]["digest"].as_str().expect("d"))["config"]["digest"]
                .as_str()
                .expect("c"),
        )
    };
    assert_eq!(config(0)["architecture"], "amd64");
    assert_eq!(config(0)["config"]["Labels"]["target"], "linux-amd64-");
    assert_eq!(config(1)["architecture"], "arm64");
    assert_eq!(config(1)["variant"], "v8");
    assert_eq!(config(1)["config"]["Labels"]["target"], "linux-arm64-v8");
    assert_ne!(manifests[0]["digest"], manifests[1]["digest"]);

    if let Some(skopeo) = ocikit_e2e::require("skopeo") {
        let inspect = std::process::Command::new(skopeo)
            .args([
                "inspect",
                "--override-arch",
                "arm64",
                "--override-variant",
                "v8",
            ])
            .arg(format!("oci:{}:app", d.join("oci").display()))
            .output()
            .expect("skopeo");
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let info: Value = serde_json::from_slice(&inspect.stdout).expect("json");
        assert_eq!(info["Architecture"], "arm64");
        assert_eq!(info["Labels"]["target"], "linux-arm64-v8");
    }

    // Unchanged: cached per platform, the same index.
    let (again, stderr) = build_in(d, &["--platform", "linux/amd64,linux/arm64/v8"]);
    assert!(cached(&stderr, "app"), "{stderr}");
    assert_eq!(again["app"], line["digest"].as_str().expect("digest"));

    // One --platform is an index too (of one manifest, naming its
    // platform); without --platform, a plain manifest as stacker writes.
    let single = tool("oci-build")
        .current_dir(d)
        .args(["--platform", "linux/arm64/v8", "--oci-dir", "single"])
        .assert()
        .success();
    let line = lines(&single.get_output().stdout).remove(0);
    assert_eq!(line["mediaType"], "application/vnd.oci.image.index.v1+json");
    let index: Value = serde_json::from_slice(
        &std::fs::read(
            d.join("single/blobs/sha256")
                .join(&line["digest"].as_str().expect("digest")[7..]),
        )
        .expect("index"),
    )
    .expect("json");
    assert_eq!(index["manifests"].as_array().expect("manifests").len(), 1);
    assert_eq!(
        index["manifests"][0]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );
    let plan = tool("oci-build")
        .current_dir(d)
        .args(["--dry-run", "--platform", "linux/arm64/v8"])
        .assert()
        .success();
    assert_eq!(
        lines(&plan.get_output().stdout)[0]["platform"],
        "linux/arm64/v8"
    );
    let host = tool("oci-build")
        .current_dir(d)
        .args(["--oci-dir", "host"])
        .assert()
        .success();
    assert_eq!(
        lines(&host.get_output().stdout)[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    // A run step for a platform this machine cannot execute.
    if std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-s390x").exists() {
        eprintln!(
            "SKIPPED: a binfmt_misc handler for s390x is registered; cannot test the refusal"
        );
        return;
    }
    std::fs::write(
        d.join("stacker.yaml"),
        "other:\n  from: {type: scratch}\n  run: echo never\n",
    )
    .expect("write");
    let out = tool("oci-build")
        .current_dir(d)
        .args([
            "--platform",
            "linux/amd64,linux/s390x",
            "--oci-dir",
            "foreign",
        ])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains(
            "image other: its run (or generate_labels) script must execute linux/s390x programs"
        ),
        "{stderr}"
    );
    assert!(index_tags(&d.join("foreign")).is_empty());

    // A malformed --platform is a usage error.
    let out = tool("oci-build")
        .current_dir(d)
        .args(["--platform", "linux"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("--platform: platform \"linux\" is not OS/ARCH[/VARIANT]"),
        "{stderr}"
    );
}

/// `generate_labels` runs after `run` over a throwaway copy of the image:
/// each file it writes to /oci-labels (or /stacker/oci-labels) becomes a
/// label; nothing else it does reaches the image.
#[test]
fn generate_labels_turns_files_into_labels() {
    let (Some(_), Some(umoci)) = (ocikit_e2e::require("runc"), ocikit_e2e::require("umoci")) else {
        return;
    };
    let dir = temp_dir();
    let d = dir.path();
    if busybox_tar(d).is_none() {
        return;
    }
    std::fs::write(
        d.join("stacker.yaml"),
        "img:\n  from: {type: tar, url: busybox.tar}\n  run: echo 1.2.3 > /version\n  labels: {static: 'yes', version: overridden}\n  generate_labels: |\n    printf %s \"$(cat /version)\" > /oci-labels/version\n    echo -n rocks > /stacker/oci-labels/meshuggah\n    touch /not-recorded\n",
    )
    .expect("write");
    let (built, _) = build_in(d, &[]);
    assert!(built.contains_key("img"));
    let bundle = d.join("bundle");
    let unpack = std::process::Command::new(&umoci)
        .args(["unpack", "--image", "oci:img"])
        .arg(&bundle)
        .current_dir(d)
        .output()
        .expect("umoci");
    assert!(
        unpack.status.success(),
        "{}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    assert!(bundle.join("rootfs/version").exists());
    for absent in ["not-recorded", "oci-labels", "stacker"] {
        assert!(
            !bundle.join("rootfs").join(absent).exists(),
            "/{absent} in the image"
        );
    }
    let config = image_config(&d.join("oci"), "img");
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["version"], "1.2.3", "{labels}");
    assert_eq!(labels["meshuggah"], "rocks");
    assert_eq!(labels["static"], "yes");

    // A failing label script fails the build and tags nothing.
    std::fs::write(
        d.join("stacker.yaml"),
        "img:\n  from: {type: tar, url: busybox.tar}\n  generate_labels: exit 4\n",
    )
    .expect("write");
    let out = tool("oci-build")
        .current_dir(d)
        .args(["--oci-dir", "failed"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("image img (generate_labels): run failed with exit status 4"),
        "{stderr}"
    );
    assert!(index_tags(&d.join("failed")).is_empty());
}

/// Runs `program args` in `dir`, asserting success; returns stdout.
fn run_ok(program: &Path, args: &[&str], dir: &Path) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every directive of the format in one build, each checked in the result:
/// imports placed as stacker places them (exact `dest`, `dest/`, a path's
/// trailing `/`, mode/uid/gid), imports without `dest` visible to `run` only
/// (legacy `import` at /stacker and /.stacker/imports), overlay_dirs, binds
/// in all three spellings with relative paths (writable, left out of the
/// image), build_env and anchored build_env_passthrough, and the config
/// directives; `full_command` clears the inherited cmd. The result is read
/// by umoci, run with runc, pushed with oci-copy and read back by skopeo.
#[test]
fn every_directive_reaches_the_image() {
    let (Some(runc), Some(umoci), Some(skopeo)) = (
        ocikit_e2e::require("runc"),
        ocikit_e2e::require("umoci"),
        ocikit_e2e::require("skopeo"),
    ) else {
        return;
    };
    let Some(registry) = ocikit_e2e::peers::DockerRegistry::start() else {
        return;
    };
    let dir = temp_dir();
    let d = dir.path();
    if busybox_tar(d).is_none() {
        return;
    }
    let write = |path: &str, text: &str| {
        let path = d.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("conf/app.conf", "port=1\n");
    write("files/greeting", "hello\n");
    write("files/sub/inner", "inner\n");
    write("overlay/etc/motd", "welcome\n");
    write("bindsrc/bound", "bound\n");
    write("legacy.txt", "legacy\n");
    write("overlay/secret/key", "k\n");
    {
        use std::os::unix::fs::PermissionsExt;
        let chmod = |p: &str, mode: u32| {
            std::fs::set_permissions(d.join(p), std::fs::Permissions::from_mode(mode))
                .expect("chmod")
        };
        chmod("overlay/secret/key", 0o600);
        chmod("overlay/secret", 0o700);
    }
    std::fs::create_dir_all(d.join("project")).expect("mkdir");
    std::fs::write(
        d.join("project/stacker.yaml"),
        r#"base:
  from: {type: tar, url: ../busybox.tar}
  build_only: true
  run: |
    /bin/busybox mkdir -p /usr/bin /etc/existing
    /bin/busybox --install -s /usr/bin
    echo old > /etc/existing/old
  environment: {PATH: /usr/bin:/bin}
  cmd: [inherited]
directives:
  from: {type: built, tag: base}
  imports:
    - path: ../conf
      dest: /etc/existing
    - path: ../conf
      dest: /opt/
    - path: ../conf/
      dest: /srv
    - path: ../files/greeting
      dest: /usr/share/greeting
      mode: 0600
      uid: 1000
      gid: 1000
    - ../files/
    - ../files
  overlay_dirs:
    - source: ../overlay
      dest: /
  binds:
    - ../bindsrc -> /mnt/rel
    - source: ../bindsrc
      dest: /mnt/map
    - ${{BIND}}
  build_env: {BUILD_VAR: from-build-env}
  build_env_passthrough: [PASS_M, 'OTHER_.*']
  run:
    - test -f /stacker/imports/greeting
    - test -f /stacker/imports/sub/inner
    - test -f /stacker/imports/files/greeting
    - test ! -e /stacker/imports/conf
    - test ! -e /stacker/imports/app.conf
    - cat /mnt/rel/bound /mnt/map/bound ${{BIND}}/bound > /from-binds
    - echo written-by-run > /mnt/rel/out
    - echo "$BUILD_VAR ${PASS_M:-unset} ${PASS_ME:-unset} ${OTHER_X:-unset}" > /env-seen
    - readlink /proc/self/ns/net > /netns
    - if test -e /etc/resolv.conf; then cat /etc/resolv.conf; fi > /resolv
  environment: {GREETING: hi}
  labels: {org.example.label: yes}
  annotations: {org.opencontainers.image.version: 1.0}
  volumes: [/data]
  working_dir: /srv
  runtime_user: 1000
  entrypoint: /bin/sh -c 'cat "$0"'
  cmd: /usr/share/greeting
full:
  from: {type: built, tag: directives}
  full_command: "/usr/bin/cat '/usr/share/greeting'"
legacy:
  from: {type: built, tag: base}
  import:
    - ../legacy.txt
  run: |
    #!/bin/sh -e
    cat /stacker/legacy.txt > /l1
    cat /.stacker/imports/legacy.txt > /l2
    cp -p /etc/existing/old /ref
    echo new > /etc/existing/old
    touch -r /ref /etc/existing/old
    rm /ref
  generate_labels: |
    cat /stacker/legacy.txt > /stacker/oci-labels/legacy
  os: linux
  arch: arm64
"#,
    )
    .expect("write");
    let bind = d.join("bindsrc");
    let out = tool("oci-build")
        .current_dir(d)
        .args(["-f", "project/stacker.yaml", "--substitute"])
        .arg(format!("BIND={}", bind.display()))
        .env("PASS_M", "pm")
        .env("PASS_ME", "pme")
        .env("OTHER_X", "ox")
        .assert()
        .success();
    let names: Vec<String> = lines(&out.get_output().stdout)
        .iter()
        .map(|l| l["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["directives", "full", "legacy"]);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("`import` is deprecated"), "{stderr}");
    // The legacy image's own `#!/bin/sh -e` replaced `#!/bin/sh -xe`.
    assert!(
        stderr.contains("+ test -f /stacker/imports/greeting"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("+ cat /.stacker/imports/legacy.txt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("bindsrc/out")).expect("bind written"),
        "written-by-run\n"
    );

    let unpack = |tag: &str| {
        let bundle = d.join(format!("bundle-{tag}"));
        run_ok(
            &umoci,
            &[
                "unpack",
                "--image",
                &format!("oci:{tag}"),
                &format!("bundle-{tag}"),
            ],
            d,
        );
        bundle
    };
    let bundle = unpack("directives");
    let rootfs = bundle.join("rootfs");
    let read =
        |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_else(|e| panic!("/{p}: {e}"));
    assert_eq!(read("etc/existing/old"), "old\n", "merged, not replaced");
    assert_eq!(read("etc/existing/app.conf"), "port=1\n");
    assert_eq!(read("opt/conf/app.conf"), "port=1\n");
    assert_eq!(read("srv/app.conf"), "port=1\n");
    assert!(!rootfs.join("srv/conf").exists());
    assert_eq!(read("usr/share/greeting"), "hello\n");
    let meta = std::fs::metadata(rootfs.join("usr/share/greeting")).expect("meta");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o600, 1000, 1000)
    );
    assert_eq!(read("etc/motd"), "welcome\n");
    // overlay_dirs keep their permission bits (owner root), as in stacker.
    for (path, mode) in [("secret", 0o700), ("secret/key", 0o600)] {
        let meta = std::fs::metadata(rootfs.join(path)).expect("overlay meta");
        assert_eq!((meta.mode() & 0o7777, meta.uid()), (mode, 0), "/{path}");
    }
    assert_eq!(read("from-binds"), "bound\nbound\nbound\n");
    assert_eq!(read("env-seen"), "from-build-env pm unset ox\n");
    // The host's network namespace and resolv.conf, as stacker gives them;
    // the resolv.conf mount point does not stay in the image.
    let host_netns = std::fs::read_link("/proc/self/ns/net").expect("netns");
    assert_eq!(read("netns").trim(), host_netns.display().to_string());
    assert_eq!(
        read("resolv"),
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    );
    assert!(!rootfs.join("etc/resolv.conf").exists());
    for absent in ["stacker", "mnt", "greeting", "files", "tmp", ".oci-build"] {
        assert!(!rootfs.join(absent).exists(), "/{absent} in the image");
    }
    let config = image_config(&d.join("oci"), "directives");
    let c = &config["config"];
    assert!(
        c["Env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e == "GREETING=hi"),
        "{c}"
    );
    assert_eq!(c["Labels"]["org.example.label"], "yes");
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "1000");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "cat \"$0\""])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["/usr/share/greeting"]));
    let full = image_config(&d.join("oci"), "full");
    assert_eq!(
        full["config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/cat", "/usr/share/greeting"])
    );
    assert!(full["config"]["Cmd"].is_null(), "{}", full["config"]);

    // runc runs the image as its config says (user 1000 reads its 0600 file).
    let full_bundle = unpack("full");
    let config_path = full_bundle.join("config.json");
    let mut runtime: Value = read_json(&config_path);
    runtime["process"]["terminal"] = Value::Bool(false);
    assert_eq!(runtime["process"]["user"]["uid"], 1000);
    std::fs::write(&config_path, runtime.to_string()).expect("write");
    let state = d.join("runc-state");
    let id = format!("oci-build-e2e-{}", std::process::id());
    let ran = std::process::Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&full_bundle)
        .arg(&id)
        .output()
        .expect("runc");
    assert!(
        ran.status.success(),
        "runc: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello\n");

    let legacy = unpack("legacy");
    assert_eq!(
        std::fs::read_to_string(legacy.join("rootfs/l1")).expect("l1"),
        "legacy\n"
    );
    assert_eq!(
        std::fs::read_to_string(legacy.join("rootfs/l2")).expect("l2"),
        "legacy\n"
    );
    assert!(!legacy.join("rootfs/.stacker").exists());
    // An edit that keeps the size and the mtime is in the layer (changes
    // are found by content).
    assert_eq!(
        std::fs::read_to_string(legacy.join("rootfs/etc/existing/old")).expect("old"),
        "new\n"
    );
    let legacy_config = image_config(&d.join("oci"), "legacy");
    assert_eq!(legacy_config["config"]["Labels"]["legacy"], "legacy\n");
    assert_eq!(
        (&legacy_config["os"], &legacy_config["architecture"]),
        (&Value::from("linux"), &Value::from("arm64"))
    );

    // Pushed with oci-copy, read back by skopeo; the annotation is on the manifest.
    let target = format!("docker://{}/app/directives:1", registry.addr);
    tool("oci-copy")
        .current_dir(d)
        .args(["-q", "oci:oci:directives", &target])
        .assert()
        .success();
    let raw = run_ok(
        &skopeo,
        &["inspect", "--tls-verify=false", "--raw", &target],
        d,
    );
    let manifest: Value = serde_json::from_str(&raw).expect("manifest");
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "1.0"
    );
    let info: Value = serde_json::from_str(&run_ok(
        &skopeo,
        &["inspect", "--tls-verify=false", &target],
        d,
    ))
    .expect("inspect");
    assert_eq!(info["Labels"]["org.example.label"], "yes");
}

/// `--dry-run` on files shaped like the ones people build with stacker
/// today (a Go server's release build with a build_only stage and legacy
/// `import`; a config-only file whose prerequisites chain three deep with
/// remote tar bases and hashed imports; every other form stacker reads,
/// including YAML merge keys): each passes, in dependency order, without
/// fetching anything (the hosts do not exist).
#[test]
fn dry_run_accepts_the_files_stacker_accepts() {
    let compat = fixtures().join("compat");
    let plan = |dir: &str, args: &[&str]| -> (Vec<Value>, String) {
        let out = tool("oci-build")
            .current_dir(compat.join(dir))
            .arg("--dry-run")
            .args(args)
            .assert()
            .success();
        (
            lines(&out.get_output().stdout),
            String::from_utf8_lossy(&out.get_output().stderr).into_owned(),
        )
    };
    let names = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let (registry, stderr) = plan("registry", &["--substitute", "COMMIT=abc123"]);
    assert_eq!(names(&registry), ["build", "registry"]);
    assert_eq!(registry[0]["base"]["url"], "docker://golang:1.22");
    assert_eq!(registry[0]["build_only"], true);
    assert_eq!(
        registry[1]["imports"][0]["path"],
        "stacker://build/src/bin/server-linux-amd64"
    );
    assert!(stderr.contains("`import` is deprecated"), "{stderr}");
    let (renamed, _) = plan(
        "registry",
        &[
            "--substitute",
            "COMMIT=abc123",
            "--substitute",
            "REPO_NAME=zot-minimal",
            "--substitute",
            "BASE=oci:/layouts/",
            "--substitute",
            "EXT=.exe",
        ],
    );
    assert_eq!(names(&renamed), ["build", "zot-minimal"]);
    assert_eq!(renamed[0]["base"]["url"], "oci:/layouts/golang:1.22");
    assert_eq!(
        renamed[1]["imports"][0]["path"],
        "stacker://build/src/bin/server-linux-amd64.exe"
    );

    let (machine, stderr) = plan("machine", &["--substitute", "TARGETARCH=arm64"]);
    assert_eq!(names(&machine), ["rootfs", "tools", "app"]);
    assert_eq!(
        machine[0]["base"]["url"],
        "https://images.example.invalid/rootfs-arm64.tar.gz"
    );
    assert!(machine[0]["file"]
        .as_str()
        .unwrap_or_default()
        .ends_with("machine/layers/base.yaml"));
    assert_eq!(
        machine[1]["imports"][1],
        serde_json::json!({
            "path": "https://downloads.example.invalid/helper-arm64",
            "dest": "/usr/local/bin/helper",
            "hash": "5f8d8c1b4b4e8e2c6b1e3a7f0c9d2e4b6a8c0e2f4a6b8d0f2e4c6a8b0d2f4e6a"
        })
    );
    assert!(stderr.contains("unknown key `sha` ignored"), "{stderr}");
    assert!(
        stderr.contains("a `hash` names a file's bytes; on a directory it is ignored"),
        "{stderr}"
    );
    // --require-hash: every remote import has one.
    plan("machine", &["--require-hash"]);

    let (shapes, stderr) = plan("shapes", &["--substitute", "GREETING=hi"]);
    assert_eq!(
        names(&shapes),
        [
            "defaults",
            "from-oci-url",
            "layout-tag-with-colon",
            "merged"
        ]
    );
    let oci_dir = compat.join("shapes/oci").display().to_string();
    assert_eq!(
        shapes[0]["base"],
        serde_json::json!({"type": "oci", "url": format!("{oci_dir}:busybox:1.36")})
    );
    assert_eq!(shapes[1]["base"]["url"], format!("oci:{oci_dir}:defaults"));
    assert_eq!(
        shapes[2]["base"],
        serde_json::json!({"type": "oci", "url": "dest:busybox:0.1.1"})
    );
    assert_eq!(shapes[3]["base"], shapes[0]["base"]);
    assert_eq!(shapes[3]["build_only"], false);
    assert!(stderr.contains("`bom` is deprecated"), "{stderr}");
}

/// Remote inputs: a tar base and imports over http (a `hash` checked on
/// the download, `--require-hash` refusing a remote import without one, a
/// 404 named), a tar base taken from another image (`stacker://`),
/// `--substitute-file` under `--substitute`, and zstd layers that a later
/// build reads back as an `oci` base.
#[test]
fn remote_inputs_substitute_files_and_zstd() {
    let (Some(_), Some(umoci), Some(skopeo)) = (
        ocikit_e2e::require("runc"),
        ocikit_e2e::require("umoci"),
        ocikit_e2e::require("skopeo"),
    ) else {
        return;
    };
    let dir = temp_dir();
    let d = dir.path();
    let Some(tar) = busybox_tar(d) else {
        return;
    };
    let tool_bytes = b"#!/bin/sh\necho remote tool\n".to_vec();
    let server = ocikit_e2e::http::FileServer::start(&[
        ("/busybox.tar", std::fs::read(&tar).expect("tar")),
        ("/dl/tool", tool_bytes.clone()),
        ("/dl/notes.txt", b"notes\n".to_vec()),
    ]);
    let tool_hash = ocikit_e2e::fixtures::sha256(&tool_bytes)[7..].to_owned();
    let yaml = format!(
        r#"base:
  from: {{type: tar, url: '${{{{SERVER}}}}/busybox.tar'}}
  imports:
    - path: ${{{{SERVER}}}}/dl/tool
      hash: {tool_hash}
      dest: /usr/bin/
      mode: 0755
    - ${{{{SERVER}}}}/dl/notes.txt
  run: |
    /bin/busybox cat /stacker/imports/notes.txt > /notes
    /usr/bin/tool > /tool-said
  labels:
    greeting: ${{{{GREETING}}}}
    server: ${{{{SERVER}}}}
packer:
  from: {{type: built, tag: base}}
  build_only: true
  run: |
    /bin/busybox mkdir -p /export/etc
    echo packed > /export/etc/packed
    cd /export && /bin/busybox tar -cf /out.tar etc
from-stacker-tar:
  from: {{type: tar, url: 'stacker://packer/out.tar'}}
"#
    );
    std::fs::write(d.join("stacker.yaml"), &yaml).expect("write");
    std::fs::write(
        d.join("subs.yaml"),
        format!("SERVER: {}\nGREETING: from-file\n", server.url("")),
    )
    .expect("write");
    let (built, _) = build_in(
        d,
        &[
            "--substitute-file",
            "subs.yaml",
            "--substitute",
            "GREETING=from-flag",
        ],
    );
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        ["base", "from-stacker-tar"]
    );
    let config = image_config(&d.join("oci"), "base");
    assert_eq!(config["config"]["Labels"]["greeting"], "from-flag");
    assert_eq!(config["config"]["Labels"]["server"], server.url(""));
    run_ok(&umoci, &["unpack", "--image", "oci:base", "bundle-base"], d);
    let rootfs = d.join("bundle-base/rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("tool-said")).expect("tool-said"),
        "remote tool\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("notes")).expect("notes"),
        "notes\n"
    );
    assert!(!rootfs.join("stacker").exists());
    run_ok(
        &umoci,
        &["unpack", "--image", "oci:from-stacker-tar", "bundle-tar"],
        d,
    );
    assert_eq!(
        std::fs::read_to_string(d.join("bundle-tar/rootfs/etc/packed")).expect("packed"),
        "packed\n"
    );
    assert!(!d.join("bundle-tar/rootfs/bin").exists());

    // Unchanged: cached; the hash-pinned download is reused without a
    // request, the unpinned ones are fetched again (their content is the key).
    let (tool_before, notes_before) = (
        server.requests_for("/dl/tool"),
        server.requests_for("/dl/notes.txt"),
    );
    let (again, stderr) = build_in(
        d,
        &[
            "--substitute-file",
            "subs.yaml",
            "--substitute",
            "GREETING=from-flag",
        ],
    );
    assert!(cached(&stderr, "base"), "{stderr}");
    assert_eq!(again, built);
    assert_eq!(server.requests_for("/dl/tool"), tool_before);
    assert_eq!(server.requests_for("/dl/notes.txt"), notes_before + 1);

    // --require-hash: notes.txt has none; refused before anything is fetched.
    let before = server.requests();
    let out = tool("oci-build")
        .current_dir(d)
        .args(["--substitute-file", "subs.yaml", "--require-hash"])
        .args(["--substitute", "GREETING=x", "--oci-dir", "strict"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains(&format!(
            "image base: remote import {} has no `hash` (--require-hash makes it mandatory)",
            server.url("/dl/notes.txt")
        )),
        "{stderr}"
    );
    assert_eq!(server.requests(), before);
    assert!(index_tags(&d.join("strict")).is_empty());

    // A wrong hash on a download, and a 404: named, nothing tagged.
    for (from, to, want) in [
        (
            tool_hash.as_str(),
            "0".repeat(64),
            format!(
                "import {}: hash mismatch: the file has sha256 {tool_hash}",
                server.url("/dl/tool")
            ),
        ),
        (
            "/dl/notes.txt",
            "/dl/missing.txt".to_owned(),
            format!(
                "import {}: the server answered 404",
                server.url("/dl/missing.txt")
            ),
        ),
    ] {
        std::fs::write(d.join("bad.yaml"), yaml.replace(from, &to)).expect("write");
        let out = tool("oci-build")
            .current_dir(d)
            .args(["-f", "bad.yaml", "--substitute-file", "subs.yaml"])
            .args(["--substitute", "GREETING=x", "--oci-dir", "bad"])
            .assert()
            .code(1);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(stderr.contains(&want), "want {want}\n got {stderr}");
        assert!(index_tags(&d.join("bad")).is_empty());
    }

    // zstd layers: skopeo reads the image, and a build on it unpacks them.
    let (zstd, _) = build_in(
        d,
        &[
            "--substitute-file",
            "subs.yaml",
            "--compression",
            "zstd",
            "--oci-dir",
            "zst",
            "--no-cache",
        ],
    );
    let raw = run_ok(
        &skopeo,
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:base", d.join("zst").display()),
        ],
        d,
    );
    let manifest: Value = serde_json::from_str(&raw).expect("manifest");
    for layer in manifest["layers"].as_array().expect("layers") {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }
    assert_ne!(zstd["base"], built["base"]);
    std::fs::create_dir_all(d.join("on-zstd")).expect("mkdir");
    std::fs::write(
        d.join("on-zstd/stacker.yaml"),
        "img:\n  from: {type: oci, url: 'zst:base'}\n  run: |\n    test \"$(cat /tool-said /notes)\" = \"remote tool\n    notes\"\n    test -x /usr/bin/tool\n",
    )
    .expect("write");
    // (umoci 0.4 cannot unpack zstd layers; the run step checks the tree.)
    let (on_zstd, _) = build_in(
        d,
        &["-f", "on-zstd/stacker.yaml", "--oci-dir", "on-zstd-out"],
    );
    assert!(on_zstd.contains_key("img"));
}

/// Builds sharing a stacker directory take turns (a lock in the work
/// directory), so one's pruning never removes blobs the other is using:
/// four builds at once, each into its own layout, all succeed with the
/// same digest and leave complete layouts.
#[test]
fn concurrent_builds_share_a_work_directory() {
    let dir = temp_dir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).expect("mkdir");
    for i in 0..50 {
        std::fs::write(
            d.join(format!("data/f{i}")),
            format!("file {i}\n").repeat(200),
        )
        .expect("write");
    }
    std::fs::write(
        d.join("stacker.yaml"),
        "img:\n  from: {type: scratch}\n  imports:\n    - path: data\n      dest: /data\n",
    )
    .expect("write");
    let bin = ocikit_e2e::bin_dir().join("oci-build");
    let children: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(&bin)
                .args(["--quiet", "--no-cache", "--oci-dir"])
                .arg(format!("out-{i}"))
                .current_dir(d)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut digests = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        digests.push(lines(&out.stdout).remove(0)["digest"].clone());
    }
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");
    // A build that finds the lock taken says so on stderr and waits.
    let lock_path = d.join(".stacker/oci-build/lock");
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .expect("lock file");
    held.lock().expect("lock");
    let mut waiting = std::process::Command::new(&bin)
        .args(["--oci-dir", "out-waited"])
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = std::io::BufReader::new(waiting.stderr.take().expect("stderr"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).expect("read");
    assert!(
        line.starts_with("oci-build: waiting for another build using ")
            && line.trim_end().ends_with(".stacker/oci-build to finish"),
        "{line}"
    );
    drop(held);
    assert!(waiting.wait().expect("wait").success());
    for i in 0..4 {
        let state = ocikit_e2e::fixtures::check_layout(&d.join(format!("out-{i}")))
            .unwrap_or_else(|e| panic!("out-{i}: {e}"));
        assert_eq!(state.tagged("img"), digests[0].as_str());
        assert!(state.verified >= 3, "{state:?}");
    }
}
