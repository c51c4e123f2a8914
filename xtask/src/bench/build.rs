//! `cargo xtask bench build`: packing a directory tree into a layer, ocikit
//! (`ocikit::layer::tree` into the pinned `LayerWriter`) against `umoci
//! repack` on the same tree: the step issue 6 asks to be at least 1.3× faster
//! than umoci with gzip (layer at most 5% larger) and 3× faster with zstd.
//!
//! The tree is generated from a fixed seed: 1,024 files of 256 KiB (256 MiB),
//! a third random bytes, two thirds text. umoci's side is set up untimed
//! (`umoci init`, `new`, `unpack`, the tree copied into the rootfs), then
//! `umoci repack` alone is timed; ours writes the layer blob to a file.
//!
//! Then the build cache: the `oci-build` binary (release build; `--dev` for
//! the dev profile) builds a 3-image stacker.yaml over part of the tree (a
//! 64 MiB tar base with an imported directory, an image built on it, and a
//! scratch image importing one file), and a no-change rebuild is timed
//! against the same build with `--no-cache`. Issue 6's target for the
//! no-change rebuild is under 0.5 s.
//!
//! `--levels` adds a sweep of the parallel gzip writer over levels 1–6 on
//! the same tree, each against umoci's time and layer size: the data behind
//! the pinned `GZIP_LEVEL`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use std::io::Write;

use ocikit::digest::{Algorithm, Hasher, HashingWriter};
use ocikit::layer::{pgzip, tree, Compression, LayerWriter};

use super::{measure, median_of, mib, secs, Measurement, Table};

const FILES: usize = 1024;
const RUNS: usize = 3;

/// Generates the tree once, then times each side [`RUNS`] times.
pub fn run(args: &[String]) -> Result<()> {
    if Command::new("umoci").arg("--version").output().is_err() {
        bail!("umoci is not installed (apt-get install umoci); the bench compares against it");
    }
    let dev = args.iter().any(|a| a == "--dev");
    let sweep = args.iter().any(|a| a == "--levels");
    let oci_build = build_binary(dev)?;
    let dir = std::env::temp_dir().join(format!("ocikit-bench-build-{}", std::process::id()));
    let result = bench(&dir, &oci_build, sweep);
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// Builds `oci-build` (release, or dev with `--dev`) and returns its path.
fn build_binary(dev: bool) -> Result<PathBuf> {
    let root = crate::project_root();
    let profile = if dev { "dev" } else { "release" };
    eprintln!("xtask: cargo build --profile {profile} -p oci-build");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--profile", profile, "--quiet", "-p", "oci-build"])
        .current_dir(&root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("cargo build --profile {profile} failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target
        .join(if dev { "debug" } else { "release" })
        .join("oci-build"))
}

fn bench(dir: &Path, oci_build: &Path, sweep: bool) -> Result<()> {
    let tree = dir.join("tree");
    generate_tree(&tree)?;
    let (cold, warm) = rebuild(&tree, dir, oci_build)?;
    let (gzip, gzip_size) = ours(&tree, dir, Compression::Gzip)?;
    let (zstd, zstd_size) = ours(&tree, dir, Compression::Zstd)?;
    let (umoci, umoci_size) = umoci_repack(&tree, dir)?;

    let mut table = Table::new(&format!(
        "tree → layer, {FILES} files of 256 KiB (⅓ random, ⅔ text), median of {RUNS}"
    ));
    table.row(
        "gzip wall time",
        secs(gzip.wall),
        secs(umoci.wall),
        "s",
        false,
    );
    table.row("gzip CPU time", secs(gzip.cpu), secs(umoci.cpu), "s", false);
    table.row(
        "gzip layer size",
        mib(gzip_size),
        mib(umoci_size),
        "MiB",
        false,
    );
    table.row(
        "zstd wall time (vs umoci gzip)",
        secs(zstd.wall),
        secs(umoci.wall),
        "s",
        false,
    );
    table.row(
        "zstd layer size (vs umoci gzip)",
        mib(zstd_size),
        mib(umoci_size),
        "MiB",
        false,
    );
    println!("{}", table.markdown("umoci repack"));
    println!(
        "gzip: {:.2}× umoci's speed, layer size ratio {:.3} (ours / umoci's); zstd: {:.2}× umoci's speed, size ratio {:.3}",
        secs(umoci.wall) / secs(gzip.wall),
        gzip_size as f64 / umoci_size as f64,
        secs(umoci.wall) / secs(zstd.wall),
        zstd_size as f64 / umoci_size as f64,
    );
    println!(
        "### build cache: 3-image stacker.yaml (64 MiB tar base + 8 MiB imported directory), median of {RUNS}\n\n| scenario | oci-build | target |\n|---|---|---|\n| full build (`--no-cache`) | {:.2} s | |\n| no-change rebuild (cache hits) | {:.3} s | < 0.5 s |\n",
        secs(cold.wall),
        secs(warm.wall),
    );
    if sweep {
        levels(&tree, dir, &umoci, umoci_size)?;
    }
    Ok(())
}

/// The build-cache scenario: a full build with `--no-cache` and a no-change
/// rebuild, each timed [`RUNS`] times after one untimed build.
fn rebuild(tree: &Path, dir: &Path, oci_build: &Path) -> Result<(Measurement, Measurement)> {
    let project = dir.join("project");
    std::fs::create_dir_all(&project)?;
    let mut tar = Command::new("tar");
    tar.arg("--mtime=@0")
        .arg("-C")
        .arg(tree)
        .arg("-cf")
        .arg(project.join("base.tar"));
    for d in 0..8 {
        tar.arg(format!("d{d:02}"));
    }
    run_ok(&mut tar)?;
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(tree.join("d08"))
            .arg(project.join("conf")),
    )?;
    std::fs::copy(tree.join("d09/f0288"), project.join("one-file"))?;
    std::fs::write(
        project.join("stacker.yaml"),
        "base:\n  from: {type: tar, url: base.tar}\n  imports:\n    - path: conf\n      dest: /etc/\n\
         app:\n  from: {type: built, tag: base}\n  environment: {MODE: app}\n  cmd: /bin/app\n\
         single:\n  from: {type: scratch}\n  imports:\n    - path: one-file\n      dest: /data/one\n",
    )?;
    let build = |no_cache: bool| {
        let mut c = Command::new(oci_build);
        c.arg("--quiet").current_dir(&project);
        if no_cache {
            c.arg("--no-cache");
        }
        c
    };
    measure(&mut build(true))?;
    let cold = median_of(RUNS, || measure(&mut build(true)))?;
    let warm = median_of(RUNS, || measure(&mut build(false)))?;
    Ok((cold, warm))
}

/// The tree: 32 directories of 32 files, one piece of the shared bench
/// corpus each (so every third file is random, the others text).
fn generate_tree(root: &Path) -> Result<()> {
    let mut corpus = super::Corpus::new();
    for i in 0..FILES {
        let path = root.join(format!("d{:02}/f{:04}", i / 32, i));
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(&path, corpus.piece())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn ours(tree: &Path, dir: &Path, compression: Compression) -> Result<(Measurement, u64)> {
    let out = dir.join(format!("ours.{}", compression.name()));
    let mut size = 0;
    let m = median_of(RUNS, || {
        let started = Instant::now();
        let cpu = super::self_cpu();
        let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
        let writer = LayerWriter::new(file, compression)?;
        let (writer, _) = tree::write_tree(tree, writer, 0)?;
        let (file, digests) = writer.finish()?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        size = digests.size;
        Ok(Measurement {
            wall: started.elapsed(),
            cpu: super::self_cpu() - cpu,
            max_rss: 0,
        })
    })?;
    Ok((m, size))
}

fn run_ok(command: &mut Command) -> Result<()> {
    let out = command
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// umoci's side: a fresh bundle per run (untimed), then `umoci repack` timed.
fn umoci_repack(tree: &Path, dir: &Path) -> Result<(Measurement, u64)> {
    let layout = dir.join("umoci-layout");
    run_ok(
        Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(&layout),
    )?;
    run_ok(
        Command::new("umoci")
            .arg("new")
            .arg("--image")
            .arg(format!("{}:empty", layout.display())),
    )?;
    let mut run = 0;
    let mut size = 0;
    let m = median_of(RUNS, || {
        run += 1;
        let bundle = dir.join(format!("bundle{run}"));
        run_ok(
            Command::new("umoci")
                .arg("unpack")
                .arg("--image")
                .arg(format!("{}:empty", layout.display()))
                .arg(&bundle),
        )?;
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", tree.display()))
                .arg(bundle.join("rootfs")),
        )?;
        let m = measure(
            Command::new("umoci")
                .arg("repack")
                .arg("--image")
                .arg(format!("{}:run{run}", layout.display()))
                .arg(&bundle),
        )?;
        // The layer is the largest blob (every run packs the same tree, so
        // umoci writes the same layer blob each time).
        size = blobs(&layout)?
            .into_iter()
            .map(|b| std::fs::metadata(&b).map(|m| m.len()).unwrap_or(0))
            .max()
            .unwrap_or(0);
        std::fs::remove_dir_all(&bundle).ok();
        Ok(m)
    })?;
    Ok((m, size))
}

fn blobs(layout: &Path) -> Result<Vec<PathBuf>> {
    let dir = layout.join("blobs/sha256");
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect())
}

/// Feeds the uncompressed stream to a hasher on its way into a compressor,
/// as [`LayerWriter`] does for the diff_id.
struct DiffId<W: Write> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for DiffId<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `--levels`: the parallel gzip writer at each level 1–6 on the same tree
/// (hashing both streams, as a layer write does), against umoci's layer:
/// the data behind the pinned [`ocikit::layer::GZIP_LEVEL`].
fn levels(tree: &Path, dir: &Path, umoci: &Measurement, umoci_size: u64) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let out = dir.join("level.gz");
    println!(
        "### pgzip levels: {threads} threads, {} KiB blocks, median of {RUNS}\n\n\
         | level | wall | CPU | size | speed vs umoci | size vs umoci |\n|---|---|---|---|---|---|",
        pgzip::BLOCK_SIZE >> 10
    );
    for level in 1..=6 {
        let mut size = 0;
        let m = median_of(RUNS, || {
            let started = Instant::now();
            let cpu = super::self_cpu();
            let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
            let hashing = HashingWriter::new(file, Algorithm::Sha256);
            let writer = DiffId {
                inner: pgzip::ParallelGzipWriter::new(hashing, level, threads),
                hasher: Hasher::new(Algorithm::Sha256),
            };
            let (writer, _) = tree::write_tree(tree, writer, 0)?;
            let _diff_id = writer.hasher.finish();
            let (file, compressed) = writer.inner.finish()?.into_parts();
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            size = compressed.bytes_hashed();
            Ok(Measurement {
                wall: started.elapsed(),
                cpu: super::self_cpu() - cpu,
                max_rss: 0,
            })
        })?;
        println!(
            "| {level} | {:.2} s | {:.2} s | {:.2} MiB | {:.2}× | {:.3} |",
            secs(m.wall),
            secs(m.cpu),
            mib(size),
            secs(umoci.wall) / secs(m.wall),
            size as f64 / umoci_size as f64,
        );
    }
    println!();
    Ok(())
}
