//! Layer blobs: their compression, and a writer that turns an uncompressed tar
//! stream into a layer blob while hashing both sides in the same single pass.
//!
//! A layer has two digests: the `diff_id` of the uncompressed tar (in the image
//! config) and the `digest` of the compressed blob (in the manifest). Hashing
//! both while compressing means a layer is read once, whether oci-build packs
//! it or oci-copy recompresses it. Compression output is pinned (codec, level,
//! block size) so the same tar always gives the same blob, whatever the number
//! of cores: that is what makes builds reproducible.

pub mod pgzip;
pub mod tree;
pub mod writeback;

use std::io::{self, BufReader, Read, Write};

use crate::digest::{Algorithm, Digest, Hasher, HashingWriter};
use crate::manifest;

/// The pinned gzip level. Part of the output format: changing it changes
/// every gzip layer digest ocikit writes. Level 2, measured with `cargo
/// xtask bench build --levels` on the 256 MiB tree against `umoci
/// repack`: 1.36× umoci's speed with a layer 3.8 % larger (the targets are
/// ≥ 1.3× and ≤ 5 %); level 3 was 1.24× (1 % larger), level 6 0.59×.
pub const GZIP_LEVEL: u32 = 2;

/// The pinned zstd level: zstd's default, faster than gzip and smaller.
pub const ZSTD_LEVEL: i32 = 3;

/// The pinned zstd job size: zstd compresses a frame in independent jobs of
/// this many bytes on its worker threads (each primed with the end of the
/// job before it), which is what makes its output the same for any number
/// of workers. 8 MiB is zstd's own choice at level 3, pinned so that a
/// change of that default in a zstd release cannot change layer digests.
pub const ZSTD_JOB_SIZE: u32 = 8 << 20;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip, the format every runtime reads.
    Gzip,
    /// zstd, faster and smaller; needs a runtime that reads OCI zstd layers.
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => manifest::OCI_LAYER_TAR,
            Compression::Gzip => manifest::OCI_LAYER_GZIP,
            Compression::Zstd => manifest::OCI_LAYER_ZSTD,
        }
    }

    /// The compression a layer media type declares (OCI and Docker types,
    /// including non-distributable ones), or `None` for a media type that is
    /// not a layer (a signature payload, an SBOM).
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        let base = media_type
            .strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.")
            .or_else(|| media_type.strip_prefix("application/vnd.oci.image.layer.v1."));
        match base {
            Some("tar") => Some(Compression::None),
            Some("tar+gzip") => Some(Compression::Gzip),
            Some("tar+zstd") => Some(Compression::Zstd),
            _ => match media_type {
                manifest::DOCKER_LAYER_GZIP | manifest::DOCKER_FOREIGN_LAYER_GZIP => {
                    Some(Compression::Gzip)
                }
                "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
                _ => None,
            },
        }
    }

    /// The compression a blob's first bytes show, whatever its media type says.
    pub fn sniff(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The name used on command lines (`--dest-compress-format`, `--compression`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Compression, String> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "none" | "tar" => Ok(Compression::None),
            other => Err(format!(
                "unknown compression {other:?} (expected gzip, zstd or none)"
            )),
        }
    }
}

/// What writing a layer produced: the facts a manifest and config need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the uncompressed tar (config `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the blob as written (manifest layer descriptor).
    pub digest: Digest,
    /// Size of the blob as written.
    pub size: u64,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

enum Encoder<W: Write> {
    None(HashingWriter<W>),
    Gzip(pgzip::ParallelGzipWriter<HashingWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, HashingWriter<W>>),
}

/// Takes an uncompressed tar stream through `Write` and writes the compressed
/// layer blob to `out`, hashing both streams on the way.
pub struct LayerWriter<W: Write> {
    encoder: Encoder<W>,
    uncompressed: Hasher,
}

impl<W: Write> LayerWriter<W> {
    /// A writer that compresses with `compression` on every core.
    pub fn new(out: W, compression: Compression) -> io::Result<LayerWriter<W>> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        LayerWriter::with_threads(out, compression, threads)
    }

    /// As [`LayerWriter::new`] with an explicit thread count. The output bytes
    /// do not depend on it.
    pub fn with_threads(
        out: W,
        compression: Compression,
        threads: usize,
    ) -> io::Result<LayerWriter<W>> {
        let level = match compression {
            Compression::None => 0,
            Compression::Gzip => GZIP_LEVEL as i32,
            Compression::Zstd => ZSTD_LEVEL,
        };
        LayerWriter::with_level(out, compression, threads, level)
    }

    /// As [`LayerWriter::with_threads`] at another compression `level` than
    /// the pinned one: for measuring the alternatives (`cargo xtask bench
    /// build --levels`), since the bytes are then not those ocikit writes.
    pub fn with_level(
        out: W,
        compression: Compression,
        threads: usize,
        level: i32,
    ) -> io::Result<LayerWriter<W>> {
        let out = HashingWriter::new(out, Algorithm::Sha256);
        let encoder = match compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(pgzip::ParallelGzipWriter::new(
                out,
                level.clamp(0, 9) as u32,
                threads,
            )),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
                // zstd's multithreaded mode gives the same bytes for any
                // worker count >= 1 (but not for 0), so it is always on.
                encoder.multithread(threads.max(1) as u32)?;
                encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                Encoder::Zstd(encoder)
            }
        };
        Ok(LayerWriter {
            encoder,
            uncompressed: Hasher::new(Algorithm::Sha256),
        })
    }

    /// Ends the blob and returns the output and both digests.
    pub fn finish(self) -> io::Result<(W, LayerDigests)> {
        let hashing = match self.encoder {
            Encoder::None(w) => w,
            Encoder::Gzip(w) => w.finish()?,
            Encoder::Zstd(w) => w.finish()?,
        };
        let (out, compressed) = hashing.into_parts();
        let size = compressed.bytes_hashed();
        let uncompressed_size = self.uncompressed.bytes_hashed();
        let digests = LayerDigests {
            diff_id: self.uncompressed.finish(),
            digest: compressed.finish(),
            size,
            uncompressed_size,
        };
        Ok((out, digests))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::None(w) => w.write(buf)?,
            Encoder::Gzip(w) => w.write(buf)?,
            Encoder::Zstd(w) => w.write(buf)?,
        };
        self.uncompressed.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

/// A reader of the uncompressed tar inside a layer blob. The compression is
/// sniffed from the first bytes, so a blob whose media type lies still reads.
pub fn decompress<'a, R: Read + Send + 'a>(reader: R) -> io::Result<Box<dyn Read + Send + 'a>> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let magic = std::io::BufRead::fill_buf(&mut reader)?;
    Ok(match Compression::sniff(magic) {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}

/// Re-encodes a layer blob with another compression, returning the new
/// digests (the `diff_id` stays the same; the blob digest changes).
pub fn recompress<R: Read + Send, W: Write>(
    blob: R,
    to: Compression,
    out: W,
) -> io::Result<(W, LayerDigests)> {
    let mut tar = decompress(blob)?;
    let mut writer = LayerWriter::new(out, to)?;
    io::copy(&mut tar, &mut writer)?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half compressible text, half pseudo-random bytes, a few blocks long.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                if (i / 100_000) % 2 == 0 {
                    b"the quick brown fox jumps over the lazy dog "[i % 44]
                } else {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                }
            })
            .collect()
    }

    fn write(data: &[u8], compression: Compression, threads: usize) -> (Vec<u8>, LayerDigests) {
        let mut writer =
            LayerWriter::with_threads(Vec::new(), compression, threads).expect("writer");
        for chunk in data.chunks(70_001) {
            writer.write_all(chunk).expect("write");
        }
        writer.finish().expect("finish")
    }

    #[test]
    fn round_trips_and_hashes_both_sides() {
        let data = sample(3 * pgzip::BLOCK_SIZE + 12_345);
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (blob, digests) = write(&data, compression, 2);
            assert_eq!(digests.diff_id, Digest::sha256_of(&data), "{compression:?}");
            assert_eq!(digests.digest, Digest::sha256_of(&blob), "{compression:?}");
            assert_eq!(digests.size, blob.len() as u64);
            assert_eq!(digests.uncompressed_size, data.len() as u64);
            let mut back = Vec::new();
            decompress(&blob[..])
                .expect("sniff")
                .read_to_end(&mut back)
                .expect("read");
            assert!(back == data, "{compression:?} did not round-trip");
        }
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let data = sample(5 * pgzip::BLOCK_SIZE / 2);
        for compression in [Compression::Gzip, Compression::Zstd] {
            let one = write(&data, compression, 1).1;
            let four = write(&data, compression, 4).1;
            assert_eq!(one, four, "{compression:?}");
        }
    }

    #[test]
    fn zstd_output_is_the_same_for_one_and_many_workers_over_several_jobs() {
        // Long enough for three zstd jobs, so the workers really split it.
        let data = sample(2 * ZSTD_JOB_SIZE as usize + 1_000_003);
        let (blob, one) = write(&data, Compression::Zstd, 1);
        for threads in [2, 3] {
            assert_eq!(one, write(&data, Compression::Zstd, threads).1, "{threads}");
        }
        // And multithreaded mode is really on: single-threaded zstd (no
        // workers at all) cuts no jobs and writes other bytes.
        let mut plain = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).expect("zstd");
        plain.write_all(&data).expect("write");
        assert_ne!(plain.finish().expect("finish"), blob);
    }

    #[test]
    fn gzip_is_standard_and_compresses() {
        let data = sample(2 * pgzip::BLOCK_SIZE);
        let (blob, _) = write(&data, Compression::Gzip, 3);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut back)
            .expect("plain gzip reader");
        assert!(back == data);
        assert!(
            blob.len() < data.len() * 3 / 4,
            "{} of {}",
            blob.len(),
            data.len()
        );
        let (empty, _) = write(b"", Compression::Gzip, 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .expect("empty gzip");
        assert!(back.is_empty());
    }

    #[test]
    fn recompress_keeps_diff_id() {
        let data = sample(300_000);
        let (gz, first) = write(&data, Compression::Gzip, 2);
        let (zst, second) = recompress(&gz[..], Compression::Zstd, Vec::new()).expect("recompress");
        assert_eq!(first.diff_id, second.diff_id);
        assert_ne!(first.digest, second.digest);
        assert_eq!(Compression::sniff(&zst), Compression::Zstd);
    }

    #[test]
    fn media_types() {
        let cases = [
            (manifest::OCI_LAYER_GZIP, Some(Compression::Gzip)),
            (manifest::OCI_LAYER_ZSTD, Some(Compression::Zstd)),
            (manifest::OCI_LAYER_TAR, Some(Compression::None)),
            (manifest::DOCKER_LAYER_GZIP, Some(Compression::Gzip)),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            ("application/vnd.dev.cosign.simplesigning.v1+json", None),
        ];
        for (media_type, expected) in cases {
            assert_eq!(
                Compression::from_media_type(media_type),
                expected,
                "{media_type}"
            );
        }
        assert_eq!("zstd".parse(), Ok(Compression::Zstd));
        assert!("lz4"
            .parse::<Compression>()
            .unwrap_err()
            .contains("expected gzip"));
    }
}
