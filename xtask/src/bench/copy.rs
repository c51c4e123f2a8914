//! `cargo xtask bench copy`: oci-copy (release build) against skopeo 1.9 on
//! the reference registry (docker-registry), on loopback, side by side:
//!
//! - push of 20 layers × 8 MiB from a layout, each timed push into a fresh
//!   registry, skopeo's blob-info cache deleted before each skopeo run (so
//!   neither side is helped by mounts);
//! - re-push of an image that is already there (HEADs and the manifest only);
//! - pull into a fresh layout;
//! - push of one 512 MiB layer, with each client's peak memory (max RSS).
//!
//! The fixtures are streamed to disk 256 KiB at a time through
//! `ocikit::layout`, so this process never holds a blob, and [`measure`]
//! resets each child's inherited memory high-water mark before `exec`: the
//! peak RSS shown is the client's own (above a floor of this process's
//! resident memory at the time, printed with the table).
//!
//! `--dev` times the dev-profile binary instead of a release build.
//! Times are medians of three runs; CPU is the client's own (user + system),
//! the registry's is not counted. Peak RSS is the highest of the runs.

use std::path::Path;
use std::process::Command;

use std::io::Write as _;

use anyhow::{bail, Context, Result};
use ocikit::digest::Algorithm;
use ocikit::layout::Layout;
use ocikit::manifest::{self, Descriptor};
use ocikit_e2e::peers::DockerRegistry;

use super::{measure, median_of, mib, resident_now, secs, Measurement, Table};

const SKOPEO_CACHE: &str = "/var/lib/containers/cache/blob-info-cache-v1.boltdb";

/// Runs the copy benchmark; `--dev` times the dev-profile binary (its
/// dependencies, where the hashing and HTTP work is, are optimised there too)
/// instead of building a release one.
pub fn run(args: &[String]) -> Result<()> {
    let dev = args.iter().any(|a| a == "--dev");
    for program in ["skopeo", "docker-registry"] {
        if ocikit_e2e::which(program).is_none() {
            bail!("`{program}` is not installed; .ci/run installs it with apt-get");
        }
    }
    let root = crate::project_root();
    let profile = if dev { "dev" } else { "release" };
    eprintln!("xtask: cargo build --profile {profile} -p oci-copy");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--profile", profile, "--quiet", "-p", "oci-copy"])
        .current_dir(&root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("cargo build --profile {profile} failed ({status})");
    }
    let ours = root
        .join("target")
        .join(if dev { "debug" } else { "release" })
        .join("oci-copy");
    let dir = ocikit_e2e::temp_dir();
    let src = dir.path().join("src");
    eprintln!("xtask: making 20 × 8 MiB and 1 × 512 MiB images");
    streamed_image(&src, "bench", 20, 8 << 20)?;
    let one = dir.path().join("one");
    streamed_image(&one, "one", 1, 512 << 20)?;
    let floor = resident_now();
    let layout = |path: &Path, tag: &str| format!("oci:{}:{tag}", path.display());

    let fresh_registry = || DockerRegistry::start().context("starting docker-registry");
    let oci_copy = |from: &str, to: &str| {
        let mut c = Command::new(&ours);
        c.args(["-q", from, to]);
        c
    };
    let skopeo = |from: &str, to: &str| -> Result<Command> {
        match std::fs::remove_file(SKOPEO_CACHE) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context(SKOPEO_CACHE);
            }
            _ => {}
        }
        let mut c = Command::new("skopeo");
        c.args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            from,
            to,
        ]);
        Ok(c)
    };

    eprintln!("xtask: push 20 × 8 MiB");
    let src_ref = layout(&src, "bench");
    let push_ours = median_of(3, || {
        let reg = fresh_registry()?;
        measure(&mut oci_copy(&src_ref, &reg.url("app:1")))
    })?;
    let push_peer = median_of(3, || {
        let reg = fresh_registry()?;
        measure(&mut skopeo(&src_ref, &reg.url("app:1"))?)
    })?;

    eprintln!("xtask: re-push and pull");
    let reg = fresh_registry()?;
    measure(&mut oci_copy(&src_ref, &reg.url("app:1")))?;
    let repush_ours = median_of(3, || measure(&mut oci_copy(&src_ref, &reg.url("app:1"))))?;
    let repush_peer = median_of(3, || measure(&mut skopeo(&src_ref, &reg.url("app:1"))?))?;
    let mut n = 0;
    let pull_ours = median_of(3, || {
        n += 1;
        let to = layout(&dir.path().join(format!("pull-ours-{n}")), "x");
        measure(&mut oci_copy(&reg.url("app:1"), &to))
    })?;
    let pull_peer = median_of(3, || {
        n += 1;
        let to = layout(&dir.path().join(format!("pull-skopeo-{n}")), "x");
        measure(&mut skopeo(&reg.url("app:1"), &to)?)
    })?;
    drop(reg);

    eprintln!("xtask: push 1 × 512 MiB");
    let one_ref = layout(&one, "one");
    let big_ours = median_of(3, || {
        let reg = fresh_registry()?;
        measure(&mut oci_copy(&one_ref, &reg.url("big:1")))
    })?;
    let big_peer = median_of(3, || {
        let reg = fresh_registry()?;
        measure(&mut skopeo(&one_ref, &reg.url("big:1"))?)
    })?;

    let mut table = Table::new(&format!(
        "oci-copy ({profile} build) vs skopeo 1.9 on docker-registry (loopback, fresh registry per push, skopeo cache deleted)"
    ));
    let rows: [(&str, &Measurement, &Measurement); 4] = [
        ("push 20 × 8 MiB", &push_ours, &push_peer),
        ("re-push (already there)", &repush_ours, &repush_peer),
        ("pull 20 × 8 MiB to a layout", &pull_ours, &pull_peer),
        ("push 1 × 512 MiB", &big_ours, &big_peer),
    ];
    for (name, o, p) in rows {
        table.row(
            &format!("{name}: wall"),
            secs(o.wall),
            secs(p.wall),
            "s",
            false,
        );
        table.row(
            &format!("{name}: client CPU"),
            secs(o.cpu),
            secs(p.cpu),
            "s",
            false,
        );
    }
    for (name, o, p) in [
        ("push 20 × 8 MiB", &push_ours, &push_peer),
        ("push 1 × 512 MiB", &big_ours, &big_peer),
    ] {
        table.row(
            &format!("{name}: peak RSS"),
            mib(o.max_rss),
            mib(p.max_rss),
            "MiB",
            false,
        );
    }
    table.row(
        "re-push as a share of a full push (wall)",
        100.0 * secs(repush_ours.wall) / secs(push_ours.wall),
        100.0 * secs(repush_peer.wall) / secs(push_peer.wall),
        "%",
        false,
    );
    println!("{}", table.markdown("skopeo"));
    println!(
        "Peak RSS floor: this bench's own resident memory when it starts a client, {:.1} MiB.",
        mib(floor)
    );
    Ok(())
}

/// Writes an image of `count` uncompressed tar layers, each one file of
/// `size` incompressible bytes, into the layout at `dir` under `tag`,
/// streaming every layer to disk (hashed on the way) without holding it.
fn streamed_image(dir: &Path, tag: &str, count: usize, size: usize) -> Result<()> {
    const CHUNK: usize = 256 << 10;
    let layout = Layout::open_or_create(dir)?;
    let mut layers = Vec::with_capacity(count);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ size as u64;
    let mut chunk = vec![0u8; CHUNK];
    for i in 0..count {
        let mut writer = layout.blob_writer(Algorithm::Sha256)?;
        let mut header = tar::Header::new_ustar();
        header.set_path(format!("blob{i}"))?;
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        writer.write_all(header.as_bytes())?;
        let mut left = size;
        while left > 0 {
            for word in chunk.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            let n = left.min(CHUNK);
            writer.write_all(&chunk[..n])?;
            left -= n;
        }
        // Pad the file to a 512-byte block, then the two empty end blocks.
        let padding = (512 - size % 512) % 512;
        writer.write_all(&vec![0u8; padding + 1024])?;
        let (digest, written) = writer.commit(None)?;
        layers.push(Descriptor::new(manifest::OCI_LAYER_TAR, digest, written));
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    let config = serde_json::json!({
        "created": "2026-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = layout.write_blob(config.as_bytes(), None)?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": Descriptor::new(manifest::OCI_CONFIG, config_digest, config.len() as u64),
        "layers": layers,
    })
    .to_string();
    let digest = layout.write_blob(body.as_bytes(), None)?;
    layout.set_manifest(
        &Descriptor::new(manifest::OCI_MANIFEST, digest, body.len() as u64),
        Some(tag),
    )?;
    Ok(())
}
