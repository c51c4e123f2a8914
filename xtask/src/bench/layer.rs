//! `cargo xtask bench layer`: ocikit's layer compressor against `gzip -6`
//! (single-threaded, what `tar -c | gzip` pipelines and many builders use) on
//! the same generated 256 MiB stream: a third random bytes, two thirds text,
//! from a fixed seed. Ours is the ocikit crate's `pack_layer` example built
//! in release mode (`--dev`: the dev profile), packing a directory that holds
//! the stream as its one file: the same `LayerWriter` oci-build uses, timed
//! as a process like the peer.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use ocikit::layer::Compression;

use super::{measure, median_of, mib, secs, Measurement, Table};

const SIZE: usize = 256 << 20;

/// Generates the input once, then times each compressor three times.
pub fn run(args: &[String]) -> Result<()> {
    let pack_layer = super::pack_layer_binary(args.iter().any(|a| a == "--dev"))?;
    let dir = tempfile_dir()?;
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree)?;
    let input = tree.join("layer.tar");
    std::fs::write(&input, generate(SIZE)).context("writing the bench input")?;

    let mut table = Table::new(&format!(
        "layer compression, 256 MiB (⅓ random, ⅔ text), median of 3, load average {}",
        super::load()
    ));
    let (gzip_ours, gzip_size) = ours(&pack_layer, &dir, Compression::Gzip)?;
    let (zstd_ours, zstd_size) = ours(&pack_layer, &dir, Compression::Zstd)?;
    let peer = median_of(3, || {
        measure(Command::new("sh").arg("-c").arg(format!(
            "gzip -6 -c {} > {}",
            input.display(),
            dir.join("peer.gz").display()
        )))
    })?;
    let peer_size = std::fs::metadata(dir.join("peer.gz"))?.len();
    table.row(
        "gzip wall time",
        secs(gzip_ours.wall),
        secs(peer.wall),
        "s",
        false,
    );
    table.row(
        "gzip CPU time",
        secs(gzip_ours.cpu),
        secs(peer.cpu),
        "s",
        false,
    );
    table.row("gzip size", mib(gzip_size), mib(peer_size), "MiB", false);
    table.row(
        "zstd wall time (vs gzip -6)",
        secs(zstd_ours.wall),
        secs(peer.wall),
        "s",
        false,
    );
    table.row(
        "zstd size (vs gzip -6)",
        mib(zstd_size),
        mib(peer_size),
        "MiB",
        false,
    );
    println!("{}", table.markdown("gzip -6"));
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn ours(pack_layer: &Path, dir: &Path, compression: Compression) -> Result<(Measurement, u64)> {
    let out = dir.join(format!("ours.{}", compression.name()));
    let m = median_of(3, || {
        measure(
            Command::new(pack_layer)
                .arg(dir.join("tree"))
                .arg(&out)
                .arg(compression.name()),
        )
    })?;
    let size = std::fs::metadata(&out)?.len();
    Ok((m, size))
}

/// `size` bytes of the shared bench corpus.
fn generate(size: usize) -> Vec<u8> {
    let mut corpus = super::Corpus::new();
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        out.extend_from_slice(&corpus.piece());
    }
    out.truncate(size);
    out
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ocikit-bench-layer-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(Path::new(&dir).to_path_buf())
}
