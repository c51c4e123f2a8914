//! `cargo xtask demo`: the main job on what exists, with no config and no
//! external server: build the tools, make a small image layout, copy it
//! layout → oci-archive → layout, inspect it, start an embedded oci-serve on a
//! free loopback port, push the image there, sign it with a fresh cosign key
//! pair, verify the signature, pull it back with its signature, and show that
//! every digest was kept. Everything lands in `target/demo/`.

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
        .args([
            "build",
            "--quiet",
            "-p",
            "oci-copy",
            "-p",
            "oci-inspect",
            "-p",
            "oci-serve",
        ])
        .args(["-p", "oci-sign", "-p", "oci-verify"])
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

    step("oci-serve: a registry with no config, on a free loopback port");
    let server = Server::start(&bin, &dir.join("registry"))?;
    let pushed_ref = format!("docker://{}/demo/app:1.0", server.addr);
    step("oci-copy layout → registry");
    let pushed = tool(&bin, "oci-copy", &[&copied, &pushed_ref])?;
    step("oci-sign: a cosign key pair, then a signature in the registry");
    // The demo's key is throwaway; a real one takes its password from a prompt.
    std::env::set_var("COSIGN_PASSWORD", "ocikit-demo");
    let key_prefix = dir.join("cosign").display().to_string();
    tool(
        &bin,
        "oci-sign",
        &["generate-key-pair", "--output-key-prefix", &key_prefix],
    )?;
    let key = format!("{key_prefix}.key");
    let public = format!("{key_prefix}.pub");
    tool(
        &bin,
        "oci-sign",
        &["--key", &key, "-a", "demo=true", &pushed_ref],
    )?;
    step("oci-verify with the public key and the annotation");
    let verified = tool(
        &bin,
        "oci-verify",
        &["--key", &public, "-a", "demo=true", &pushed_ref],
    )?;
    step("oci-copy registry → layout (the signature travels along)");
    let pulled_ref = format!("oci:{}:demo", dir.join("pulled").display());
    let pulled = tool(&bin, "oci-copy", &[&pushed_ref, &pulled_ref])?;
    tool(&bin, "oci-verify", &["--key", &public, &pulled_ref])?;
    drop(server);

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
        ("pushed", digest_of(&pushed)?),
        ("signed, verified", digest_of(&verified)?),
        ("pulled back", digest_of(&pulled)?),
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

/// An oci-serve child on a free port, stopped when dropped.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    /// Starts oci-serve on 127.0.0.1:0 and reads the bound address from the
    /// line it logs on stderr.
    fn start(bin: &Path, root: &Path) -> Result<Server> {
        let root = root.display().to_string();
        println!("$ oci-serve --root {root} --addr 127.0.0.1:0");
        let mut child = Command::new(bin.join("oci-serve"))
            .args(["--root", &root, "--addr", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .context("starting oci-serve")?;
        let stderr = child.stderr.take().context("oci-serve stderr")?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let addr = loop {
            let Some(line) = lines.next().transpose()? else {
                let _ = child.kill();
                bail!("oci-serve exited before it listened");
            };
            println!("{line}");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        // Keep draining its stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server { child, addr })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
