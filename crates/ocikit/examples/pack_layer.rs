//! Packs a directory tree into one layer blob with ocikit's layer writer, the
//! step `oci-build` runs for every layer: `cargo xtask bench build` builds
//! this example in release mode and times it as a process, side by side with
//! `umoci repack` on the same tree.
//!
//! Usage: `pack_layer TREE OUT [gzip|zstd|none] [--threads N] [--level N]`.
//! `--level` replaces the pinned level (to measure the alternatives; the
//! output is then not what ocikit writes). Prints the layer's digests as one
//! JSON line.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use ocikit::layer::writeback::WritebackFile;
use ocikit::layer::{tree, Compression, LayerWriter};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pack_layer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut level = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => threads = args.next().ok_or("--threads needs a number")?.parse()?,
            "--level" => level = Some(args.next().ok_or("--level needs a number")?.parse()?),
            _ => positional.push(arg),
        }
    }
    let [root, out, rest @ ..] = positional.as_slice() else {
        return Err("usage: pack_layer TREE OUT [gzip|zstd|none] [--threads N] [--level N]".into());
    };
    let compression: Compression = match rest.first() {
        Some(name) => name.parse()?,
        None => Compression::Gzip,
    };
    let file = WritebackFile::new(std::fs::File::create(PathBuf::from(out))?)?;
    let file = BufWriter::with_capacity(1 << 20, file);
    let writer = match level {
        Some(level) => LayerWriter::with_level(file, compression, threads, level)?,
        None => LayerWriter::with_threads(file, compression, threads)?,
    };
    let (writer, _) = tree::write_tree(root.as_ref(), writer, 0)?;
    let (file, digests) = writer.finish()?;
    // Durable before anything names it, as oci-build's layers are.
    file.into_inner()
        .map_err(|e| e.into_error())?
        .finish()?
        .sync_all()?;
    println!(
        "{{\"diff_id\":\"{}\",\"digest\":\"{}\",\"size\":{},\"uncompressed_size\":{}}}",
        digests.diff_id, digests.digest, digests.size, digests.uncompressed_size
    );
    Ok(())
}
