//! `cargo xtask bench sign`: verifying signed images on a loopback registry,
//! `oci-verify` against sigstore-rs (the peer issue 5 names), release builds
//! of both, side by side in one run.
//!
//! Setup (untimed): a fresh docker-registry (Debian's distribution 2.8) on
//! loopback, [`IMAGES`] small images pushed with oci-copy, a key pair from
//! `oci-sign generate-key-pair`, and every image signed by one `oci-sign`
//! whose JSON lines are kept.
//!
//! Timed:
//! - `oci-verify --key cosign.pub -` reading those lines on stdin (every image
//!   verified concurrently over one connection pool), against one
//!   `sigstore-verify` process per image (interop/sigstore/src/bin: the
//!   `sigstore` crate's cosign client with the public key, no Rekor), the
//!   same images by digest, one after another as a script would run them;
//! - one image verified by one process, each side.
//!
//! The targets: the batch at least 5× faster than the peer, and one
//! verify on loopback under 50 ms. Times are medians ([`RUNS`] runs of the
//! batch, [`SINGLE_RUNS`] of the single verify); CPU is the client's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ocikit_e2e::fixtures::tiny_layout;
use ocikit_e2e::peers::DockerRegistry;

use super::{measure, median_of, secs, Measurement, Table};

/// How many signed images the batch verifies.
const IMAGES: usize = 30;
/// Runs of each batch; the median is kept.
const RUNS: usize = 5;
/// Runs of the single verify; the median is kept.
const SINGLE_RUNS: usize = 11;
/// The password of the bench's throwaway key.
const PASSWORD: &str = "bench";

/// Runs the sign benchmark (no arguments).
pub fn run(_args: &[String]) -> Result<()> {
    if ocikit_e2e::which("docker-registry").is_none() {
        bail!("`docker-registry` is not installed; .ci/run installs it with apt-get");
    }
    let root = crate::project_root();
    crate::test::cargo(
        &root,
        &[
            "build",
            "--release",
            "--quiet",
            "-p",
            "oci-copy",
            "-p",
            "oci-sign",
            "-p",
            "oci-verify",
        ],
    )?;
    crate::test::cargo(
        &root,
        &[
            "build",
            "--release",
            "--quiet",
            "--manifest-path",
            "interop/sigstore/Cargo.toml",
            "--bin",
            "sigstore-verify",
        ],
    )?;
    let release = root.join("target").join("release");
    let peer = root.join("interop/sigstore/target/release/sigstore-verify");
    let dir = ocikit_e2e::temp_dir();
    let registry = DockerRegistry::start().context("starting docker-registry")?;
    let signed = setup(&release, dir.path(), &registry)?;
    let public = dir.path().join("cosign.pub");

    eprintln!(
        "xtask: verifying {IMAGES} images: oci-verify - vs {IMAGES} sigstore-verify processes"
    );
    let oci_verify = |images: &[String], stdin: Option<&Path>| -> Result<Command> {
        let mut c = Command::new(release.join("oci-verify"));
        c.arg("--key").arg(&public).arg("--quiet").args(images);
        if let Some(path) = stdin {
            c.stdin(std::fs::File::open(path).context("opening the signed lines")?);
        }
        Ok(c)
    };
    let sigstore_verify = |image: &str| {
        let mut c = Command::new(&peer);
        c.arg("--key")
            .arg(&public)
            .arg("--allow-http-registry")
            .arg(image);
        c
    };
    let lines = dir.path().join("signed.jsonl");
    let batch_ours = median_of(RUNS, || {
        measure(&mut oci_verify(&["-".to_owned()], Some(&lines))?)
    })?;
    let batch_peer = median_of(RUNS, || {
        let mut total = Measurement::default();
        for image in &signed {
            let one = measure(&mut sigstore_verify(image))?;
            total.wall += one.wall;
            total.cpu += one.cpu;
            total.max_rss = total.max_rss.max(one.max_rss);
        }
        Ok(total)
    })?;

    eprintln!("xtask: verifying one image, one process each");
    let first = format!("docker://{}", signed[0]);
    let single_ours = median_of(SINGLE_RUNS, || {
        measure(&mut oci_verify(std::slice::from_ref(&first), None)?)
    })?;
    let single_peer = median_of(SINGLE_RUNS, || measure(&mut sigstore_verify(&signed[0])))?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut table = Table::new(&format!(
        "oci-verify vs sigstore-rs 0.10 (release builds), docker-registry on loopback, medians of {RUNS} (batch) and {SINGLE_RUNS} (one image)"
    ));
    table.row(
        &format!("{IMAGES} images: `oci-verify -` vs {IMAGES} processes: wall"),
        secs(batch_ours.wall),
        secs(batch_peer.wall),
        "s",
        false,
    );
    table.row(
        &format!("{IMAGES} images: client CPU"),
        secs(batch_ours.cpu),
        secs(batch_peer.cpu),
        "s",
        false,
    );
    table.row(
        "one image, one process: wall",
        ms(single_ours.wall),
        ms(single_peer.wall),
        "ms",
        false,
    );
    table.row(
        "one image, one process: client CPU",
        ms(single_ours.cpu),
        ms(single_peer.cpu),
        "ms",
        false,
    );
    println!("{}", table.markdown("sigstore-rs"));
    let ratio = secs(batch_peer.wall) / secs(batch_ours.wall);
    println!(
        "targets: batch {ratio:.2}× faster than sigstore-rs (target ≥ 5×: {}); one verify {:.1} ms (target < 50 ms: {})",
        if ratio >= 5.0 { "met" } else { "NOT met" },
        ms(single_ours.wall),
        if single_ours.wall < Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        },
    );
    Ok(())
}

/// Pushes [`IMAGES`] images, makes a key pair and signs them all; writes
/// oci-sign's lines to `dir/signed.jsonl` and returns each image as
/// `HOST:PORT/REPO@DIGEST` (the form sigstore-rs takes).
fn setup(release: &Path, dir: &Path, registry: &DockerRegistry) -> Result<Vec<String>> {
    eprintln!(
        "xtask: pushing {IMAGES} images to docker-registry on {}",
        registry.addr
    );
    let mut targets = Vec::with_capacity(IMAGES);
    for i in 0..IMAGES {
        let layout: PathBuf = dir.join(format!("layout-{i}"));
        tiny_layout(&layout, "1", &format!("bench image {i}"));
        let target = registry.url(&format!("bench/image-{i}:1"));
        run_quiet(
            Command::new(release.join("oci-copy"))
                .arg("--quiet")
                .arg(format!("oci:{}:1", layout.display()))
                .arg(&target),
        )?;
        targets.push(target);
    }
    run_quiet(
        Command::new(release.join("oci-sign"))
            .current_dir(dir)
            .env("COSIGN_PASSWORD", PASSWORD)
            .args(["generate-key-pair", "--quiet"]),
    )?;
    eprintln!("xtask: signing them");
    let out = Command::new(release.join("oci-sign"))
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .args(["--key", "cosign.key", "--quiet"])
        .args(&targets)
        .stderr(Stdio::inherit())
        .output()
        .context("running oci-sign")?;
    if !out.status.success() {
        bail!("oci-sign failed ({})", out.status);
    }
    std::fs::write(dir.join("signed.jsonl"), &out.stdout).context("writing the signed lines")?;
    let mut signed = Vec::with_capacity(IMAGES);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("oci-sign printed {line:?}"))?;
        let (Some(image), Some(digest)) = (value["image"].as_str(), value["digest"].as_str())
        else {
            bail!("oci-sign printed a line without image and digest: {line}");
        };
        let repository = image.trim_start_matches("docker://");
        let repository = repository.rsplit_once(':').map_or(repository, |(r, _)| r);
        signed.push(format!("{repository}@{digest}"));
    }
    if signed.len() != IMAGES {
        bail!(
            "oci-sign printed {} lines for {IMAGES} images",
            signed.len()
        );
    }
    Ok(signed)
}

fn run_quiet(command: &mut Command) -> Result<()> {
    let out = command
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
