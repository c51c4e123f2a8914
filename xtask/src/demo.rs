//! `cargo xtask demo`: the main job on what exists, with no config and no
//! server: build the tools, make a small image layout, copy it layout →
//! oci-archive → layout, inspect it, and show that every digest was kept.
//! Everything lands in `target/demo/` so it can be looked at afterwards.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use ocikit::layer::{Compression, LayerWriter};
use ocikit::layout::Layout;
use ocikit::manifest::{self, Descriptor};

/// Runs the demo.
pub fn run() -> Result<()> {
    let root = crate::project_root();
    step("building the tools");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "-p", "oci-copy", "-p", "oci-inspect"])
        .current_dir(&root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let bin = root.join("target").join("debug");
    let dir = root.join("target").join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;

    step("making a small image in an OCI layout");
    let src = dir.join("src");
    let made = make_image(&src)?;
    println!("  oci:{}:demo  {}", src.display(), made.digest);

    let archive = format!("oci-archive:{}:demo", dir.join("demo.tar").display());
    let source = format!("oci:{}:demo", src.display());
    let copied = format!("oci:{}:demo", dir.join("copied").display());
    step("oci-copy layout → oci-archive");
    let first = tool(&bin, "oci-copy", &[&source, &archive])?;
    step("oci-copy oci-archive → layout");
    let second = tool(&bin, "oci-copy", &[&archive, &copied])?;
    step("oci-inspect the copy (skopeo inspect's summary)");
    let summary = tool(&bin, "oci-inspect", &[&copied])?;
    print!("{summary}");
    step("the pipe: oci-inspect --digest | oci-copy - into a repository prefix");
    let line = tool(&bin, "oci-inspect", &["--digest", &copied])?;
    let prefix = format!("oci:{}/", dir.join("by-name").display());
    let third = tool_with_stdin(&bin, "oci-copy", &["-", &prefix], &line)?;

    step("digests");
    let digest_of = |json: &str| -> Result<String> {
        let value: serde_json::Value = serde_json::from_str(json.lines().last().unwrap_or(""))
            .with_context(|| format!("not a JSON line: {json}"))?;
        Ok(value["digest"].as_str().unwrap_or_default().to_owned())
    };
    let digests = [
        ("made", made.digest.to_string()),
        ("layout → archive", digest_of(&first)?),
        ("archive → layout", digest_of(&second)?),
        ("stdin → prefix", digest_of(&third)?),
    ];
    for (what, digest) in &digests {
        println!("  {what:<18} {digest}");
    }
    if digests.iter().any(|(_, d)| d != &digests[0].1) {
        bail!("a digest changed on the way");
    }
    println!(
        "\nevery copy kept digest {}; files are in {}",
        digests[0].1,
        dir.display()
    );
    Ok(())
}

fn step(what: &str) {
    println!("\n== {what}");
}

fn tool(bin: &Path, name: &str, args: &[&str]) -> Result<String> {
    tool_with_stdin(bin, name, args, "")
}

fn tool_with_stdin(bin: &Path, name: &str, args: &[&str], stdin: &str) -> Result<String> {
    println!("$ {name} {}", args.join(" "));
    let mut child = Command::new(bin.join(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{name} failed ({})", out.status);
    }
    if !text.contains('\n') || text.trim_start().starts_with('{') && text.lines().count() == 1 {
        print!("{text}");
    }
    Ok(text)
}

/// A one-layer image (a few text files), built with ocikit's own layer writer.
fn make_image(path: &Path) -> Result<Descriptor> {
    let layout = Layout::open_or_create(path)?;
    let mut tar = tar::Builder::new(Vec::new());
    for (name, body) in [
        ("etc/os-release", "NAME=ocikit-demo\nID=ocikit\n"),
        ("hello.txt", "hello from ocikit\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, body.as_bytes())?;
    }
    let tar = tar.into_inner()?;
    let mut writer = LayerWriter::new(Vec::new(), Compression::Gzip)?;
    writer.write_all(&tar)?;
    let (blob, digests) = writer.finish()?;
    layout.write_blob(&blob, Some(&digests.digest))?;
    let config = serde_json::json!({
        "created": "2026-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"], "Labels": {"org.opencontainers.image.title": "ocikit demo"}},
        "rootfs": {"type": "layers", "diff_ids": [digests.diff_id.to_string()]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "cargo xtask demo"}],
    })
    .to_string();
    let config_digest = layout.write_blob(config.as_bytes(), None)?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": manifest::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": manifest::OCI_LAYER_GZIP, "digest": digests.digest.to_string(), "size": digests.size}],
    })
    .to_string();
    let digest = layout.write_blob(body.as_bytes(), None)?;
    let descriptor = Descriptor::new(manifest::OCI_MANIFEST, digest, body.len() as u64);
    layout.set_manifest(&descriptor, Some("demo"))?;
    Ok(descriptor)
}
