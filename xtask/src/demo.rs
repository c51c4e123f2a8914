//! `cargo xtask demo`: the main job on what exists, with no config and no
//! external server: build the tools, build a small image from an embedded
//! stacker.yaml with oci-build (twice: the second build is a cache hit with
//! the same digest), copy it layout → oci-archive → layout, inspect it, start an embedded oci-serve on a
//! free loopback port, push the image there, sign it with a fresh cosign key
//! pair, verify the signature, pull it back with its signature, and show that
//! every digest was kept. Everything lands in `target/demo/`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The demo's build file: a build-only base holding the files, and the image
/// built on it with its config, as a stacker user writes them. No `run` step,
/// so the demo needs no OCI runtime.
const STACKER_YAML: &str = r#"base:
  from:
    type: scratch
  imports:
    - path: files/os-release
      dest: /etc/os-release
    - path: files/hello.txt
      dest: /hello.txt
  build_only: true

demo:
  from:
    type: built
    tag: base
  environment:
    PATH: /usr/bin:/bin
  cmd: /bin/sh
  labels:
    org.opencontainers.image.title: ${{TITLE:ocikit demo}}
"#;

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
        .args(["-p", "oci-sign", "-p", "oci-verify", "-p", "oci-build"])
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

    step("oci-build: an embedded stacker.yaml into an OCI layout");
    let src = dir.join("src");
    let built = build_image(&bin, &dir, &src)?;
    step("oci-build again: a cache hit, the same digest");
    let rebuilt = build_image(&bin, &dir, &src)?;

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
        ("built", digest_of(&built)?),
        ("rebuilt (cached)", digest_of(&rebuilt)?),
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

/// Writes the demo's stacker.yaml and its files into `dir`, then runs
/// oci-build on it into the layout `oci_dir`; its JSON line.
fn build_image(bin: &Path, dir: &Path, oci_dir: &Path) -> Result<String> {
    let files = dir.join("files");
    std::fs::create_dir_all(&files)?;
    std::fs::write(files.join("os-release"), "NAME=ocikit-demo\nID=ocikit\n")?;
    std::fs::write(files.join("hello.txt"), "hello from ocikit\n")?;
    let stacker_file = dir.join("stacker.yaml");
    std::fs::write(&stacker_file, STACKER_YAML)?;
    let stacker_dir = dir.join(".stacker").display().to_string();
    let roots_dir = dir.join("roots").display().to_string();
    let (file, oci_dir) = (
        stacker_file.display().to_string(),
        oci_dir.display().to_string(),
    );
    tool(
        bin,
        "oci-build",
        &[
            "-f",
            &file,
            "--oci-dir",
            &oci_dir,
            "--stacker-dir",
            &stacker_dir,
            "--roots-dir",
            &roots_dir,
        ],
    )
}
