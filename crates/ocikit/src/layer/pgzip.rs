//! Deterministic parallel gzip: the input is cut into fixed blocks that are
//! deflated on every core and concatenated into one ordinary gzip member, as
//! pigz does.
//!
//! Each block is compressed on its own, primed with the last 32 KiB of the
//! block before it as a preset dictionary and ended with a sync flush, so the
//! bytes depend only on the input, the level and [`BLOCK_SIZE`], never on the
//! number of threads or their timing: layer digests stay reproducible on any
//! machine. Any gzip reader decodes the result.
//!
//! Incompressible data (already compressed files, random bytes) is stored,
//! not deflated: each block is cut into [`SEGMENT_SIZE`] segments, and a
//! segment whose bytes look random (see [`looks_incompressible`]) is written
//! as deflate stored blocks. Deflating such data costs as much CPU as text
//! and saves nothing (a stored block is the smaller of the two), so on a
//! layer that is one third compressed files this halves the time. The test
//! is integer arithmetic on the segment's own bytes, so it is as
//! deterministic as the rest of the format.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per block. Part of the output format: changing it
/// changes every gzip layer digest ocikit writes.
pub const BLOCK_SIZE: usize = 1 << 20;

/// Uncompressed bytes per stored-or-deflated decision inside a block. Part
/// of the output format, as [`BLOCK_SIZE`] is. Small, because a segment
/// that is half random is deflated whole: in a tar of 256 KiB files with
/// 512-byte headers between them, 64 KiB segments left a third of the random
/// bytes to deflate (16 KiB: 15 % less CPU for the bench tree's gzip layer).
pub const SEGMENT_SIZE: usize = 16 * 1024;

/// What else the output bytes depend on besides the level: a cache of
/// layers keyed on this string is invalidated when the format changes.
pub const FORMAT: &str = "pgzip 2: 1 MiB blocks, 16 KiB segments, random ones stored";

/// The deflate window: how much of the previous block primes the next.
const DICTIONARY_SIZE: usize = 32 * 1024;

/// Largest payload of one deflate stored block (its LEN field is 16 bits).
const MAX_STORED: usize = 65_535;

/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    input: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
    result: Sender<io::Result<Vec<u8>>>,
}

/// The worker threads; stopped (channel closed, threads joined) when dropped.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(threads: usize, level: u32) -> Pool {
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .map(|_| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || worker(&queue, level))
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            workers,
        }
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?
            .send(job)
            .map_err(|_| io::Error::other("gzip worker threads stopped"))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

/// A gzip writer that compresses on a small pool of threads.
pub struct ParallelGzipWriter<W: Write> {
    out: W,
    buffer: Vec<u8>,
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    length: u64,
    pool: Pool,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    header_written: bool,
}

impl<W: Write> ParallelGzipWriter<W> {
    /// A writer at deflate `level` (0–9) using `threads` workers (at least 1).
    pub fn new(out: W, level: u32, threads: usize) -> ParallelGzipWriter<W> {
        let threads = threads.max(1);
        ParallelGzipWriter {
            out,
            buffer: Vec::with_capacity(BLOCK_SIZE),
            dictionary: Vec::new(),
            crc: crc32fast::Hasher::new(),
            length: 0,
            pool: Pool::start(threads, level),
            pending: VecDeque::new(),
            max_pending: 2 * threads,
            header_written: false,
        }
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32, by definition of the format.
        trailer[4..].copy_from_slice(&(self.length as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&HEADER)?;
            self.header_written = true;
        }
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let input = std::mem::replace(&mut self.buffer, Vec::with_capacity(BLOCK_SIZE));
        let tail = input.len().saturating_sub(DICTIONARY_SIZE);
        let dictionary = std::mem::replace(&mut self.dictionary, input[tail..].to_vec());
        let (result, receiver) = mpsc::channel();
        self.pool.send(Job {
            input,
            dictionary,
            last,
            result,
        })?;
        self.pending.push_back(receiver);
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(receiver) = self.pending.pop_front() {
            let block = receiver
                .recv()
                .map_err(|_| io::Error::other("gzip worker thread died"))??;
            self.out.write_all(&block)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let written = data.len();
        self.crc.update(data);
        self.length += data.len() as u64;
        while !data.is_empty() {
            let room = BLOCK_SIZE - self.buffer.len();
            let (now, later) = data.split_at(room.min(data.len()));
            self.buffer.extend_from_slice(now);
            data = later;
            if self.buffer.len() == BLOCK_SIZE {
                self.submit(false)?;
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn worker(queue: &Mutex<Receiver<Job>>, level: u32) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let block = deflate_block(&job.input, &job.dictionary, job.last, level);
        let _ = job.result.send(block);
    }
}

/// Raw deflate of one block: primed with `dictionary` (the input before
/// it), ended with a sync flush, or with the final block marker when `last`.
/// Runs of segments that [`looks_incompressible`] are stored instead.
fn deflate_block(input: &[u8], dictionary: &[u8], last: bool, level: u32) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let stored: Vec<bool> = input
        .chunks(SEGMENT_SIZE)
        .map(looks_incompressible)
        .collect();
    if stored.is_empty() {
        // No input: an empty sync flush, or the final empty block.
        let mut compress = Compress::new(Compression::new(level), false);
        deflate_run(&mut compress, input, last, &mut out)?;
        return Ok(out);
    }
    let mut compress: Option<Compress> = None;
    // Runs of consecutive segments decided the same way.
    let mut end = 0;
    for run in stored.chunk_by(|a, b| a == b) {
        let start = end;
        end = (start + run.len() * SEGMENT_SIZE).min(input.len());
        let final_run = last && end == input.len();
        if run[0] {
            store(&input[start..end], final_run, &mut out);
            continue;
        }
        let compress = match &mut compress {
            Some(compress) => {
                compress.reset();
                compress
            }
            None => compress.insert(Compress::new(Compression::new(level), false)),
        };
        prime(compress, dictionary, &input[..start])?;
        deflate_run(compress, &input[start..end], final_run, &mut out)?;
    }
    Ok(out)
}

/// Primes `compress` with the last 32 KiB before the run: the end of
/// `before` (this block's input so far), topped up from `dictionary`.
fn prime(compress: &mut Compress, dictionary: &[u8], before: &[u8]) -> io::Result<()> {
    let from_block = &before[before.len().saturating_sub(DICTIONARY_SIZE)..];
    let want = DICTIONARY_SIZE - from_block.len();
    let from_dictionary = &dictionary[dictionary.len().saturating_sub(want)..];
    let primer: std::borrow::Cow<'_, [u8]> =
        match (from_dictionary.is_empty(), from_block.is_empty()) {
            (true, _) => from_block.into(),
            (false, true) => from_dictionary.into(),
            (false, false) => [from_dictionary, from_block].concat().into(),
        };
    if !primer.is_empty() {
        compress.set_dictionary(&primer).map_err(io::Error::other)?;
    }
    Ok(())
}

/// Deflates `input` as one run ended by a sync flush (or the final block).
fn deflate_run(
    compress: &mut Compress,
    input: &[u8],
    last: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let base = compress.total_in();
    loop {
        let consumed = (compress.total_in() - base) as usize;
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let status = compress
            .compress_vec(&input[consumed..], out, flush)
            .map_err(io::Error::other)?;
        let done = (compress.total_in() - base) as usize == input.len();
        match status {
            Status::StreamEnd => return Ok(()),
            // A sync flush is complete once all input is in and the output
            // buffer was not filled (zlib's own completion rule).
            Status::Ok | Status::BufError if done && !last && out.len() < out.capacity() => {
                return Ok(())
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

/// Appends `input` as deflate stored blocks (RFC 1951 §3.2.4). The stream is
/// byte-aligned here (a sync flush or another stored block came before), so
/// each header is one byte: BFINAL, BTYPE 00 and the padding.
fn store(input: &[u8], last: bool, out: &mut Vec<u8>) {
    out.reserve(input.len() + (input.len() / MAX_STORED + 1) * 5);
    let mut chunks = input.chunks(MAX_STORED).peekable();
    while let Some(chunk) = chunks.next() {
        let final_block = last && chunks.peek().is_none();
        out.push(u8::from(final_block));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Whether a segment looks like random bytes, which deflate cannot shrink:
/// its byte distribution is nearly flat (the sum of squared byte counts
/// within 10 % of the uniform one's, i.e. a Rényi entropy above ~7.86 bits
/// a byte) and almost none of the 4-byte words sampled every 8 bytes
/// repeats (so no copies of random data that LZ matches would find). Only
/// integers, so every machine decides the same way.
pub fn looks_incompressible(segment: &[u8]) -> bool {
    let n = segment.len() as u64;
    if n < 4096 {
        return false;
    }
    let mut counts = [[0u32; 256]; 4];
    let mut quads = segment.chunks_exact(4);
    for quad in &mut quads {
        counts[0][usize::from(quad[0])] += 1;
        counts[1][usize::from(quad[1])] += 1;
        counts[2][usize::from(quad[2])] += 1;
        counts[3][usize::from(quad[3])] += 1;
    }
    for &byte in quads.remainder() {
        counts[0][usize::from(byte)] += 1;
    }
    let squares: u64 = (0..256)
        .map(|b| {
            let c = u64::from(counts[0][b] + counts[1][b] + counts[2][b] + counts[3][b]);
            c * c
        })
        .sum();
    // Uniform bytes give squares ≈ n²/256 + n; allow 10 % above n²/256.
    if squares * 256 * 10 > n * n * 11 + n * 256 * 10 {
        return false;
    }
    let mut seen = [0u32; 4096];
    let mut samples = 0u32;
    let mut repeats = 0u32;
    for word in segment.chunks_exact(8) {
        let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        let slot = (value.wrapping_mul(0x9e37_79b1) >> 20) as usize;
        if seen[slot] == value {
            repeats += 1;
        }
        seen[slot] = value;
        samples += 1;
    }
    repeats * 64 < samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// xorshift bytes: what a compressed file looks like to deflate.
    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn text(len: usize) -> Vec<u8> {
        b"layer image digest manifest blob tar gzip registry the of and\n"
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut writer = ParallelGzipWriter::new(Vec::new(), 2, threads);
        for chunk in data.chunks(100_003) {
            writer.write_all(chunk).expect("write");
        }
        writer.finish().expect("finish")
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut back)
            .expect("one standard gzip member");
        back
    }

    #[test]
    fn random_segments_are_stored_and_others_deflated() {
        let mut repeated = random(1024, 7).repeat(SEGMENT_SIZE / 1024);
        repeated.truncate(SEGMENT_SIZE);
        let cases: [(&str, Vec<u8>, bool); 6] = [
            ("random bytes", random(SEGMENT_SIZE, 1), true),
            ("a short random tail", random(1000, 2), false),
            ("text", text(SEGMENT_SIZE), false),
            ("zeros", vec![0; SEGMENT_SIZE], false),
            ("one random KiB repeated", repeated, false),
            (
                "half text, half random",
                [text(SEGMENT_SIZE / 2), random(SEGMENT_SIZE / 2, 3)].concat(),
                false,
            ),
        ];
        for (name, segment, want) in cases {
            assert_eq!(looks_incompressible(&segment), want, "{name}");
        }
    }

    #[test]
    fn mixed_blocks_decode_as_one_member_for_any_thread_count() {
        // Random and text runs at every position in a block, ending the
        // stream on a stored run and on a deflated one.
        let mut data = Vec::new();
        for i in 0..40 {
            data.extend(if i % 3 == 0 {
                random(SEGMENT_SIZE * (1 + i % 4) + 777, i as u64 + 11)
            } else {
                text(SEGMENT_SIZE * (i % 5) + 333)
            });
        }
        for tail in [random(3 * SEGMENT_SIZE, 99), text(5000)] {
            let input = [data.as_slice(), &tail].concat();
            let one = gzip(&input, 1);
            assert!(gunzip(&one) == input, "round trip");
            assert_eq!(one, gzip(&input, 3), "same bytes for 1 and 3 threads");
        }
    }

    #[test]
    fn random_data_costs_no_more_than_storing_it() {
        let data = random(3 * BLOCK_SIZE + 5, 42);
        let blob = gzip(&data, 2);
        assert!(gunzip(&blob) == data);
        // 5 bytes per stored block of up to 64 KiB, the gzip header and trailer.
        let overhead = (data.len() / MAX_STORED + 4) * 5 + HEADER.len() + 8 + 5 * 4;
        assert!(
            blob.len() <= data.len() + overhead,
            "{} bytes for {}",
            blob.len(),
            data.len()
        );
    }
}
