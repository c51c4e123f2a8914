//! Deterministic parallel gzip: the input is cut into fixed blocks that are
//! deflated on every core and concatenated into one ordinary gzip member, as
//! pigz does.
//!
//! Each block is compressed on its own, primed with the last 32 KiB of the
//! block before it as a preset dictionary and ended with a sync flush, so the
//! bytes depend only on the input, the level and [`BLOCK_SIZE`], never on the
//! number of threads or their timing: layer digests stay reproducible on any
//! machine. Any gzip reader decodes the result.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per block. Part of the output format: changing it
/// changes every gzip layer digest ocikit writes.
pub const BLOCK_SIZE: usize = 1 << 20;

/// The deflate window: how much of the previous block primes the next.
const DICTIONARY_SIZE: usize = 32 * 1024;

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

/// Raw deflate of one block: primed with `dictionary`, ended with a sync
/// flush (or the final block marker when `last`).
fn deflate_block(input: &[u8], dictionary: &[u8], last: bool, level: u32) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(Compression::new(level), false);
    if !dictionary.is_empty() {
        compress
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = compress.total_in() as usize;
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let status = compress
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done = compress.total_in() as usize == input.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is in and the output
            // buffer was not filled (zlib's own completion rule).
            Status::Ok | Status::BufError if done && !last && out.len() < out.capacity() => {
                return Ok(out)
            }
            Status::Ok | Status::BufError => {}
        }
    }
}
