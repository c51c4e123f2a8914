//! `cargo xtask bench build`: packing a directory tree into a layer, ocikit
//! (`ocikit::layer::tree` into the pinned `LayerWriter`) against `umoci
//! repack` on the same tree: the step issue 6 asks to be at least 1.3× faster
//! than umoci with gzip (layer at most 5% larger) and 3× faster with zstd.
//!
//! The tree is generated from a fixed seed: 1,024 files of 256 KiB (256 MiB),
//! a third random bytes, two thirds text. umoci's side is set up untimed
//! (`umoci init`, `new`, `unpack`, the tree copied into the rootfs), then
//! `umoci repack` alone is timed. Ours is the `pack_layer` example of the
//! ocikit crate, built in release mode like `oci-build` and timed the same
//! way as umoci (a child process: wall time, CPU time of all its threads),
//! writing the blob to a file and fsyncing it (umoci does not fsync; oci-build
//! does). The two sides take turns in every round, so a machine shared with
//! other work slows both alike; the load average is printed with the table.
//!
//! Then the build cache: the `oci-build` binary (release build; `--dev` for
//! the dev profile) builds a 3-image stacker.yaml over part of the tree (a
//! 64 MiB tar base with an imported directory, an image built on it, and a
//! scratch image importing one file), and a no-change rebuild is timed
//! against the same build with `--no-cache`. Issue 6's target for the
//! no-change rebuild is under 0.5 s.
//!
//! `--levels` adds a sweep of gzip levels 1–6 and zstd levels 1–4 on the
//! same tree, each against umoci's time and layer size: the data behind the
//! pinned `GZIP_LEVEL` and `ZSTD_LEVEL`. `--runs N` sets the rounds (default
//! 5).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use ocikit::layer::{pgzip, Compression, GZIP_LEVEL, ZSTD_LEVEL};

use super::{measure, median_of, mib, secs, Measurement, Table};

const FILES: usize = 1024;
const RUNS: usize = 5;

/// What the bench runs: the two binaries and the options.
struct Setup {
    oci_build: PathBuf,
    pack_layer: PathBuf,
    runs: usize,
    sweep: bool,
}

/// Generates the tree once, then times each side in turns.
pub fn run(args: &[String]) -> Result<()> {
    if Command::new("umoci").arg("--version").output().is_err() {
        bail!("umoci is not installed (apt-get install umoci); the bench compares against it");
    }
    let dev = args.iter().any(|a| a == "--dev");
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|&n| n > 0)
            .context("--runs needs a positive number")?,
        None => RUNS,
    };
    let (oci_build, pack_layer) = build_binaries(dev)?;
    let setup = Setup {
        oci_build,
        pack_layer,
        runs,
        sweep: args.iter().any(|a| a == "--levels"),
    };
    let dir = std::env::temp_dir().join(format!("ocikit-bench-build-{}", std::process::id()));
    let result = bench(&dir, &setup);
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// Builds `oci-build` and the `pack_layer` example (release, or dev with
/// `--dev`) and returns their paths.
fn build_binaries(dev: bool) -> Result<(PathBuf, PathBuf)> {
    let target = super::cargo_build(dev, &["-p", "oci-build"])?;
    Ok((target.join("oci-build"), super::pack_layer_binary(dev)?))
}

fn bench(dir: &Path, setup: &Setup) -> Result<()> {
    let runs = setup.runs;
    let tree = dir.join("tree");
    generate_tree(&tree)?;
    let load_before = super::load();
    let umoci = Umoci::init(&tree, dir)?;
    let mut rounds = Vec::new();
    for round in 0..runs {
        let umoci_run = umoci.repack(round)?;
        let gzip = pack(setup, &tree, dir, Compression::Gzip, None)?;
        let zstd = pack(setup, &tree, dir, Compression::Zstd, None)?;
        rounds.push((umoci_run, gzip, zstd));
    }
    let umoci_size = umoci.layer_size()?;
    let median = |pick: fn(&(Measurement, Packed, Packed)) -> Measurement| {
        median_of(runs, {
            let mut all = rounds.iter().map(pick);
            move || all.next().context("a round")
        })
    };
    let umoci_time = median(|r| r.0)?;
    let gzip = median(|r| r.1.time)?;
    let zstd = median(|r| r.2.time)?;
    let (gzip_size, zstd_size) = (rounds[0].1.size, rounds[0].2.size);
    let load_after = super::load();

    let mut table = Table::new(&format!(
        "tree → layer, {FILES} files of 256 KiB (⅓ random, ⅔ text), median of {runs} rounds taking turns, load average {load_before} before, {load_after} after"
    ));
    table.row(
        "gzip wall time",
        secs(gzip.wall),
        secs(umoci_time.wall),
        "s",
        false,
    );
    table.row(
        "gzip CPU time",
        secs(gzip.cpu),
        secs(umoci_time.cpu),
        "s",
        false,
    );
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
        secs(umoci_time.wall),
        "s",
        false,
    );
    table.row(
        "zstd CPU time (vs umoci gzip)",
        secs(zstd.cpu),
        secs(umoci_time.cpu),
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
    let walls = |pick: fn(&(Measurement, Packed, Packed)) -> Duration| {
        rounds
            .iter()
            .map(|r| format!("{:.2}", secs(pick(r))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "wall times per round (s): umoci {}; gzip {}; zstd {}",
        walls(|r| r.0.wall),
        walls(|r| r.1.time.wall),
        walls(|r| r.2.time.wall),
    );
    println!(
        "gzip: {:.2}× umoci's speed, layer size ratio {:.3} (ours / umoci's); zstd: {:.2}× umoci's speed, size ratio {:.3}\n",
        secs(umoci_time.wall) / secs(gzip.wall),
        gzip_size as f64 / umoci_size as f64,
        secs(umoci_time.wall) / secs(zstd.wall),
        zstd_size as f64 / umoci_size as f64,
    );
    let (cold, warm) = rebuild(&tree, dir, &setup.oci_build, runs)?;
    println!(
        "### build cache: 3-image stacker.yaml (64 MiB tar base + 8 MiB imported directory), median of {runs}\n\n| scenario | oci-build | target |\n|---|---|---|\n| full build (`--no-cache`) | {:.2} s | |\n| no-change rebuild (cache hits) | {:.3} s | < 0.5 s |\n",
        secs(cold.wall),
        secs(warm.wall),
    );
    if setup.sweep {
        levels(setup, &tree, dir, &umoci_time, umoci_size)?;
    }
    Ok(())
}

/// The build-cache scenario: a full build with `--no-cache` and a no-change
/// rebuild, each timed [`RUNS`] times after one untimed build.
fn rebuild(
    tree: &Path,
    dir: &Path,
    oci_build: &Path,
    runs: usize,
) -> Result<(Measurement, Measurement)> {
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
    let cold = median_of(runs, || measure(&mut build(true)))?;
    let warm = median_of(runs, || measure(&mut build(false)))?;
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

/// One timed `pack_layer` run and the size of the blob it wrote.
struct Packed {
    time: Measurement,
    size: u64,
}

/// Packs the tree with the release `pack_layer` example, at the pinned
/// level or at `level`.
fn pack(
    setup: &Setup,
    tree: &Path,
    dir: &Path,
    compression: Compression,
    level: Option<i32>,
) -> Result<Packed> {
    let out = dir.join(format!("ours.{}", compression.name()));
    let mut command = Command::new(&setup.pack_layer);
    command.arg(tree).arg(&out).arg(compression.name());
    if let Some(level) = level {
        command.arg("--level").arg(level.to_string());
    }
    let time = measure(&mut command)?;
    let size = std::fs::metadata(&out)
        .with_context(|| format!("reading {}", out.display()))?
        .len();
    std::fs::remove_file(&out).ok();
    Ok(Packed { time, size })
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

/// umoci's side: one layout, a fresh bundle per round (untimed), then
/// `umoci repack` timed.
struct Umoci {
    layout: PathBuf,
    tree: PathBuf,
    dir: PathBuf,
}

impl Umoci {
    fn init(tree: &Path, dir: &Path) -> Result<Umoci> {
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
        Ok(Umoci {
            layout,
            tree: tree.to_owned(),
            dir: dir.to_owned(),
        })
    }

    fn repack(&self, round: usize) -> Result<Measurement> {
        let bundle = self.dir.join(format!("bundle{round}"));
        run_ok(
            Command::new("umoci")
                .arg("unpack")
                .arg("--image")
                .arg(format!("{}:empty", self.layout.display()))
                .arg(&bundle),
        )?;
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", self.tree.display()))
                .arg(bundle.join("rootfs")),
        )?;
        let m = measure(
            Command::new("umoci")
                .arg("repack")
                .arg("--image")
                .arg(format!("{}:run{round}", self.layout.display()))
                .arg(&bundle),
        )?;
        std::fs::remove_dir_all(&bundle).ok();
        Ok(m)
    }

    /// The layer is the largest blob (every round packs the same tree, so
    /// umoci writes the same layer blob each time).
    fn layer_size(&self) -> Result<u64> {
        Ok(blobs(&self.layout)?
            .into_iter()
            .map(|b| std::fs::metadata(&b).map(|m| m.len()).unwrap_or(0))
            .max()
            .unwrap_or(0))
    }
}

fn blobs(layout: &Path) -> Result<Vec<PathBuf>> {
    let dir = layout.join("blobs/sha256");
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect())
}

/// `--levels`: gzip levels 1–6 and zstd levels 1–4 through the same
/// `pack_layer` (hashing both streams, as a layer write does), against
/// umoci's median time and its layer: the data behind the pinned
/// [`GZIP_LEVEL`] and [`ZSTD_LEVEL`].
fn levels(
    setup: &Setup,
    tree: &Path,
    dir: &Path,
    umoci: &Measurement,
    umoci_size: u64,
) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "### levels: {threads} threads (gzip: {} KiB blocks, {} KiB segments), median of {}, load average {}\n\n\
         | codec | level | wall | CPU | size | speed vs umoci | size vs umoci |\n|---|---|---|---|---|---|---|",
        pgzip::BLOCK_SIZE >> 10,
        pgzip::SEGMENT_SIZE >> 10,
        setup.runs,
        super::load(),
    );
    let sweep = (1..=6)
        .map(|l| (Compression::Gzip, l, l == GZIP_LEVEL as i32))
        .chain((1..=4).map(|l| (Compression::Zstd, l, l == ZSTD_LEVEL)));
    for (compression, level, pinned) in sweep {
        let mut size = 0;
        let m = median_of(setup.runs, || {
            let packed = pack(setup, tree, dir, compression, Some(level))?;
            size = packed.size;
            Ok(packed.time)
        })?;
        println!(
            "| {} | {level}{} | {:.2} s | {:.2} s | {:.2} MiB | {:.2}× | {:.3} |",
            compression.name(),
            if pinned { " (pinned)" } else { "" },
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
