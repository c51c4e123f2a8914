//! Progress display for the copy engine's events: one bar per blob on a
//! terminal (indicatif, on stderr), a plain line every few seconds when
//! stderr is a file or a pipe, nothing with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocikit::copy::{BlobOutcome, Event, NoProgress, Progress};
use ocikit::Digest;

/// How often the plain progress line is printed without a terminal.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(3);

/// The progress receiver a tool should use: bars on a TTY, plain lines
/// otherwise, nothing when `quiet`.
pub fn reporter(tool: &'static str, quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(NoProgress)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars::new())
    } else {
        Arc::new(Lines::new(tool))
    }
}

/// Short form of a digest for display: `sha256:0123456789ab`.
pub fn short(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("{}:{}", digest.algorithm(), &hex[..hex.len().min(12)])
}

/// Bytes in MiB with one decimal, for people.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Progress for Bars {
    fn event(&self, event: Event) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        match event {
            Event::BlobStarted { digest, size } => {
                let bar = self.multi.add(ProgressBar::new(size));
                let style = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_prefix(format!("blob {}", short(&digest)));
                bars.insert(digest, bar);
            }
            Event::BlobProgress { digest, bytes } => {
                if let Some(bar) = bars.get(&digest) {
                    bar.inc(bytes);
                }
            }
            Event::BlobDone { digest, how } => {
                let word = match how {
                    BlobOutcome::Copied => "done",
                    BlobOutcome::Skipped => "already exists",
                    BlobOutcome::Mounted => "mounted",
                };
                match bars.remove(&digest) {
                    Some(bar) => {
                        bar.finish_and_clear();
                        self.multi.remove(&bar);
                        let _ = self
                            .multi
                            .println(format!("blob {} {word}", short(&digest)));
                    }
                    None => {
                        let _ = self
                            .multi
                            .println(format!("blob {} {word}", short(&digest)));
                    }
                }
            }
            Event::ManifestWritten { digest, .. } => {
                let _ = self
                    .multi
                    .println(format!("manifest {} written", short(&digest)));
            }
            Event::Note(note) => {
                let _ = self.multi.println(note);
            }
        }
    }
}

struct Lines {
    tool: &'static str,
    state: Mutex<LineState>,
}

struct LineState {
    blobs_started: u64,
    blobs_done: u64,
    skipped: u64,
    bytes: u64,
    total: u64,
    last: Instant,
}

impl Lines {
    fn new(tool: &'static str) -> Lines {
        Lines {
            tool,
            state: Mutex::new(LineState {
                blobs_started: 0,
                blobs_done: 0,
                skipped: 0,
                bytes: 0,
                total: 0,
                last: Instant::now(),
            }),
        }
    }
}

impl Progress for Lines {
    fn event(&self, event: Event) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        match event {
            Event::BlobStarted { size, .. } => {
                s.blobs_started += 1;
                s.total += size;
            }
            Event::BlobProgress { bytes, .. } => s.bytes += bytes,
            Event::BlobDone { how, .. } => {
                s.blobs_done += 1;
                if how != BlobOutcome::Copied {
                    s.skipped += 1;
                }
            }
            Event::ManifestWritten { .. } => {}
            Event::Note(note) => eprintln!("{}: {note}", self.tool),
        }
        if s.last.elapsed() >= PLAIN_INTERVAL {
            s.last = Instant::now();
            eprintln!(
                "{}: {} of {} blobs done ({} already there), {} of {} copied",
                self.tool,
                s.blobs_done,
                s.blobs_started.max(s.blobs_done),
                s.skipped,
                mib(s.bytes),
                mib(s.total)
            );
        }
    }
}
