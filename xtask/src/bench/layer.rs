//! `cargo xtask bench layer`: ocikit's layer compressor against `gzip -6`
//! (single-threaded, what `tar -c | gzip` pipelines and many builders use) on
//! the same generated 256 MiB stream: a third random bytes, two thirds text,
//! from a fixed seed. xtask builds in the dev profile, where dependencies
//! (zlib-rs, zstd, sha2: all the hot code) are optimised anyway.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use ocikit::layer::{Compression, LayerWriter};

use super::{measure, median_of, mib, secs, Measurement, Table};

const SIZE: usize = 256 << 20;

/// Generates the input once, then times each compressor three times.
pub fn run(_args: &[String]) -> Result<()> {
    let dir = tempfile_dir()?;
    let input = dir.join("layer.tar");
    std::fs::write(&input, generate(SIZE)).context("writing the bench input")?;
    let data = std::fs::read(&input)?;

    let mut table = Table::new("layer compression, 256 MiB (⅓ random, ⅔ text), median of 3");
    let (gzip_ours, gzip_size) = ours(&data, Compression::Gzip)?;
    let (zstd_ours, zstd_size) = ours(&data, Compression::Zstd)?;
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

fn ours(data: &[u8], compression: Compression) -> Result<(Measurement, u64)> {
    let mut size = 0;
    let m = median_of(3, || {
        let started = Instant::now();
        let cpu = super::self_cpu();
        let mut writer = LayerWriter::new(std::io::sink(), compression)?;
        writer.write_all(data)?;
        let (_, digests) = writer.finish()?;
        size = digests.size;
        Ok(Measurement {
            wall: started.elapsed(),
            cpu: super::self_cpu() - cpu,
            max_rss: 0,
        })
    })?;
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
