//! `cargo xtask bench <topic>`: ocikit side by side with the peer it replaces,
//! in one run on one machine, printed as ratios.
//!
//! Timings are never asserted in tests (the machines are shared and noisy);
//! they are measured here, each side several times, and the median is kept.
//! Each topic is a module with a `run(&[String])` entry; this module holds what
//! they share: timing a child process with its CPU time and peak memory, and
//! the table.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

mod build;
mod copy;
mod layer;
mod serve;
mod sign;

/// A benchmark topic's entry point.
type Topic = fn(&[String]) -> Result<()>;

/// Runs the benchmark named by `args[0]`.
pub fn run(args: &[String]) -> Result<()> {
    let topics: &[(&str, Topic)] = &[
        ("build", build::run),
        ("copy", copy::run),
        ("layer", layer::run),
        ("serve", serve::run),
        ("sign", sign::run),
    ];
    let wanted = args.first().map(String::as_str).unwrap_or_default();
    match topics.iter().find(|(name, _)| *name == wanted) {
        Some((_, bench)) => bench(&args[1..]),
        None => {
            let names: Vec<&str> = topics.iter().map(|(name, _)| *name).collect();
            bail!("usage: cargo xtask bench <{}>", names.join("|"))
        }
    }
}

/// Builds with cargo in the release profile (the dev profile with `dev`)
/// what `what` names (`-p oci-build`, `-p ocikit --example pack_layer`) and
/// returns that profile's target directory.
pub fn cargo_build(dev: bool, what: &[&str]) -> Result<std::path::PathBuf> {
    let root = crate::project_root();
    let profile = if dev { "dev" } else { "release" };
    eprintln!("xtask: cargo build --profile {profile} {}", what.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--profile", profile, "--quiet"])
        .args(what)
        .current_dir(&root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!(
            "cargo build --profile {profile} {} failed ({status})",
            what.join(" ")
        );
    }
    Ok(std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join(if dev { "debug" } else { "release" }))
}

/// The ocikit crate's `pack_layer` example, built: a directory tree into one
/// layer blob through the `LayerWriter` oci-build uses, timed as a process.
pub fn pack_layer_binary(dev: bool) -> Result<std::path::PathBuf> {
    let target = cargo_build(dev, &["-p", "ocikit", "--example", "pack_layer"])?;
    Ok(target.join("examples").join("pack_layer"))
}

/// The 1-minute load average, printed beside timings on a shared machine.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// What one run of a command cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measurement {
    /// Wall-clock time.
    pub wall: Duration,
    /// User + system CPU time of the process and its children.
    pub cpu: Duration,
    /// Peak resident set size in bytes.
    pub max_rss: u64,
}

/// Runs `command` to completion and measures it (wall time, CPU time, peak
/// RSS via `wait4`). A non-zero exit is an error showing its stderr.
///
/// Linux carries a process's memory high-water mark across `fork` and
/// `exec`: a child's `ru_maxrss` is at least the peak of the process that
/// started it, so a bench that once held a big fixture would report that
/// fixture as the tool's memory. The child therefore resets its high-water
/// mark (`/proc/self/clear_refs`, value 5) between `fork` and `exec`; what
/// remains is the bench's *current* resident memory at that moment, which
/// [`resident_now`] reports so the table can say how low the floor is.
#[allow(unsafe_code)]
pub fn measure(command: &mut Command) -> Result<Measurement> {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the hook runs in the forked child before exec and only makes
    // async-signal-safe system calls (open, write, close) on a static path.
    unsafe {
        command.pre_exec(|| {
            let fd = libc::open(c"/proc/self/clear_refs".as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"5".as_ptr().cast(), 1);
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(error);
            }
            Ok(())
        })
    };
    let started = Instant::now();
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data, and wait4 only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; pointers are to valid locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if waited != pid {
        bail!(
            "wait4 on {command:?} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        bail!("{command:?} failed (status {status}):\n{stderr}");
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Measurement {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss: usage.ru_maxrss as u64 * 1024,
    })
}

/// This process's resident memory now (`VmRSS`), in bytes: the floor under
/// every peak [`measure`] reports.
pub fn resident_now() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Runs `once` `runs` times and keeps the median wall time (with that run's
/// CPU time) and the highest peak RSS.
pub fn median_of(
    runs: usize,
    mut once: impl FnMut() -> Result<Measurement>,
) -> Result<Measurement> {
    let mut all = (0..runs.max(1))
        .map(|_| once())
        .collect::<Result<Vec<_>>>()?;
    all.sort_by_key(|m| m.wall);
    let max_rss = all.iter().map(|m| m.max_rss).max().unwrap_or_default();
    Ok(Measurement {
        max_rss,
        ..all[all.len() / 2]
    })
}

/// A results table: one row per scenario, ocikit against the peer, with the
/// ratio (peer / ocikit, so above 1 means ocikit is better).
pub struct Table {
    title: String,
    rows: Vec<[String; 5]>,
}

impl Table {
    /// An empty table under `title`.
    pub fn new(title: &str) -> Table {
        Table {
            title: title.to_owned(),
            rows: Vec::new(),
        }
    }

    /// Adds a row comparing two values of the same unit; `higher_is_better`
    /// for throughputs, false for times and sizes.
    pub fn row(
        &mut self,
        scenario: &str,
        ours: f64,
        peer: f64,
        unit: &str,
        higher_is_better: bool,
    ) {
        let ratio = if higher_is_better {
            ours / peer
        } else {
            peer / ours
        };
        self.rows.push([
            scenario.to_owned(),
            format!("{ours:.2} {unit}"),
            format!("{peer:.2} {unit}"),
            format!("{ratio:.2}×"),
            if ratio >= 1.0 {
                "ocikit better".into()
            } else {
                "peer better".into()
            },
        ]);
    }

    /// Adds a row of values that have no meaningful ratio (counts that
    /// should be zero on both sides, say).
    pub fn plain(&mut self, scenario: &str, ours: &str, peer: &str) {
        self.rows.push([
            scenario.to_owned(),
            ours.to_owned(),
            peer.to_owned(),
            String::new(),
            String::new(),
        ]);
    }

    /// The table as Markdown, ready for the README.
    pub fn markdown(&self, peer: &str) -> String {
        let mut out = format!(
            "### {}\n\n| scenario | ocikit | {peer} | ratio | |\n|---|---|---|---|---|\n",
            self.title
        );
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }
}

/// Seconds as a float, for table rows.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Mebibytes as a float, for table rows.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The benchmark corpus issue 6 fixes: 256 KiB pieces, every third one
/// random bytes, the others text, all from one xorshift seed, so every run on
/// every machine compresses the same data.
pub struct Corpus {
    state: u64,
    pieces: usize,
}

impl Corpus {
    /// The size of one piece (one file of the bench tree).
    pub const PIECE: usize = 256 << 10;

    /// A corpus from the fixed seed.
    pub fn new() -> Corpus {
        Corpus {
            state: 0x2545_f491_4f6c_dd1d,
            pieces: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// The next piece of [`Corpus::PIECE`] bytes.
    pub fn piece(&mut self) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "layer", "image", "oci", "digest", "manifest", "blob", "tar", "gzip", "registry",
            "the", "of", "and",
        ];
        let random = self.pieces.is_multiple_of(3);
        self.pieces += 1;
        let mut data = Vec::with_capacity(Corpus::PIECE + 16);
        while data.len() < Corpus::PIECE {
            if random {
                data.extend_from_slice(&self.next().to_le_bytes());
            } else {
                let word = WORDS[(self.next() % WORDS.len() as u64) as usize];
                data.extend_from_slice(word.as_bytes());
                data.push(if self.next().is_multiple_of(12) {
                    b'\n'
                } else {
                    b' '
                });
            }
        }
        data.truncate(Corpus::PIECE);
        data
    }
}

#[cfg(test)]
mod tests {
    use super::Corpus;

    #[test]
    fn corpus_is_fixed_and_mixed() {
        let (mut a, mut b) = (Corpus::new(), Corpus::new());
        let pieces: Vec<Vec<u8>> = (0..3).map(|_| a.piece()).collect();
        assert!(pieces.iter().all(|p| p.len() == Corpus::PIECE));
        assert_eq!(pieces[0], b.piece(), "same seed, same bytes");
        let text = |p: &[u8]| {
            p.iter()
                .all(|c| c.is_ascii_lowercase() || *c == b' ' || *c == b'\n')
        };
        assert!(!text(&pieces[0]) && text(&pieces[1]) && text(&pieces[2]));
    }
}
