//! `cargo xtask bench serve`: oci-serve (release build) against Debian's
//! docker-registry 2.8, side by side in one run, same clients, on loopback:
//!
//! - small-manifest GET by tag with the OCI `Accept` header, `wrk -t2 -c32
//!   -d10s --latency`: requests/s, p99 latency and the answers that were not
//!   2xx (socket errors included);
//! - GET of a 256 MiB blob with `curl -o /dev/null`, median of three;
//! - push of an image of 20 × 8 MiB layers with oci-copy and with skopeo,
//!   each push into a fresh registry over a fresh root (skopeo's blob-info
//!   cache deleted before each skopeo run, as `bench copy` does), median of
//!   three;
//! - each server's peak resident memory (`VmHWM` in `/proc/<pid>/status`,
//!   which starts afresh at `exec`): under the pushes (the highest of the
//!   runs) and after the read scenarios.
//!
//! The targets are printed under the table: ≥ 10× the requests/s
//! with a lower p99, blob throughput and push times at least as good, and a
//! lower peak RSS. `--dev` uses dev-profile binaries, `--quick` runs 3 s of
//! wrk and one run of everything else (for trying the bench itself out).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ocikit_e2e::fixtures::{big_image, tiny_layout};
use ocikit_e2e::peers::{DockerRegistry, OciServe};

use super::{measure, median_of, mib, secs, Table};

const SKOPEO_CACHE: &str = "/var/lib/containers/cache/blob-info-cache-v1.boltdb";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Which registry a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Peer,
}

/// A running registry of either side, with the temp root it owns.
enum Running {
    Ours {
        server: OciServe,
        _root: tempfile::TempDir,
    },
    Peer(DockerRegistry),
}

impl Running {
    fn addr(&self) -> &str {
        match self {
            Running::Ours { server: s, .. } => &s.addr,
            Running::Peer(s) => &s.addr,
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Running::Ours { server: s, .. } => s.pid(),
            Running::Peer(s) => s.pid(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("docker://{}/{path}", self.addr())
    }

    /// The server's peak resident set size so far, in bytes.
    fn peak_rss(&self) -> Result<u64> {
        peak_rss(self.pid())
    }
}

/// Runs the serve benchmark.
pub fn run(args: &[String]) -> Result<()> {
    let dev = args.iter().any(|a| a == "--dev");
    let quick = args.iter().any(|a| a == "--quick");
    let (wrk_secs, runs) = if quick { (3, 1) } else { (10, 3) };
    for program in ["docker-registry", "skopeo", "wrk", "curl"] {
        if ocikit_e2e::which(program).is_none() {
            bail!("`{program}` is not installed; .ci/run installs it with apt-get");
        }
    }
    let root = crate::project_root();
    let profile = if dev { "dev" } else { "release" };
    eprintln!("xtask: cargo build --profile {profile} -p oci-serve -p oci-copy");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--profile", profile, "--quiet"])
        .args(["-p", "oci-serve", "-p", "oci-copy"])
        .current_dir(&root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("cargo build --profile {profile} failed ({status})");
    }
    let bin = root
        .join("target")
        .join(if dev { "debug" } else { "release" });
    let serve_bin = bin.join("oci-serve");
    let copy_bin = bin.join("oci-copy");

    let dir = ocikit_e2e::temp_dir();
    eprintln!("xtask: making a small image, 20 × 8 MiB and 1 × 256 MiB images");
    let small = dir.path().join("small");
    tiny_layout(&small, "small", "bench serve");
    let push_src = dir.path().join("push");
    big_image(&push_src, "bench", 20, 8 << 20);
    let one = dir.path().join("one");
    let one_image = big_image(&one, "one", 1, 256 << 20);
    let blob = one_image.layers[0].clone();
    let blob_size = std::fs::metadata(ocikit_e2e::fixtures::blob_path(&one, &blob))
        .context("256 MiB fixture")?
        .len();
    let layout = |path: &Path, tag: &str| format!("oci:{}:{tag}", path.display());

    let start = |side: Side| -> Result<Running> {
        Ok(match side {
            Side::Ours => {
                let tmp = ocikit_e2e::temp_dir();
                let server = OciServe::start_program(&serve_bin, &tmp.path().join("root"), &[]);
                Running::Ours { server, _root: tmp }
            }
            Side::Peer => {
                Running::Peer(DockerRegistry::start().context("starting docker-registry")?)
            }
        })
    };
    let oci_copy = |from: &str, to: &str| {
        let mut c = Command::new(&copy_bin);
        c.args(["-q", from, to]);
        c
    };

    // Reads: one server per side, the small image and the 256 MiB blob pushed once.
    let mut reads = Vec::new();
    for side in [Side::Ours, Side::Peer] {
        eprintln!("xtask: reads from {side:?}");
        let server = start(side)?;
        measure(&mut oci_copy(
            &layout(&small, "small"),
            &server.url("small:1"),
        ))?;
        measure(&mut oci_copy(&layout(&one, "one"), &server.url("one:1")))?;
        let url = format!("http://{}/v2/small/manifests/1", server.addr());
        let wrk = wrk(&url, wrk_secs)?;
        let blob_url = format!("http://{}/v2/one/blobs/{blob}", server.addr());
        let mut speeds = (0..runs)
            .map(|_| curl_speed(&blob_url, blob_size))
            .collect::<Result<Vec<f64>>>()?;
        speeds.sort_by(f64::total_cmp);
        let speed = speeds[speeds.len() / 2];
        reads.push((wrk, speed, server.peak_rss()?));
    }

    // Pushes: a fresh registry (and root) for every push.
    let skopeo = |from: &str, to: &str| -> Result<Command> {
        match std::fs::remove_file(SKOPEO_CACHE) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context(SKOPEO_CACHE);
            }
            _ => {}
        }
        let mut c = Command::new("skopeo");
        c.args(["copy", "-q", "--dest-tls-verify=false", from, to]);
        Ok(c)
    };
    let src = layout(&push_src, "bench");
    let mut pushes = Vec::new();
    for client in ["oci-copy", "skopeo"] {
        for side in [Side::Ours, Side::Peer] {
            eprintln!("xtask: push 20 × 8 MiB with {client} into {side:?}");
            let mut rss = 0u64;
            let m = median_of(runs, || {
                let server = start(side)?;
                let to = server.url("app:1");
                let mut command = if client == "oci-copy" {
                    oci_copy(&src, &to)
                } else {
                    skopeo(&src, &to)?
                };
                let m = measure(&mut command)?;
                rss = rss.max(server.peak_rss()?);
                Ok(m)
            })?;
            pushes.push((client, side, m.wall, rss));
        }
    }

    let (ours, peer) = (&reads[0], &reads[1]);
    let mut table = Table::new(&format!(
        "oci-serve ({profile} build) vs docker-registry 2.8 (loopback, same clients; fresh root per push)"
    ));
    let get = format!("manifest GET by tag (wrk -t2 -c32 -d{wrk_secs}s)");
    table.row(
        &format!("{get}: requests/s"),
        ours.0.requests_per_sec,
        peer.0.requests_per_sec,
        "req/s",
        true,
    );
    table.row(
        &format!("{get}: p99 latency"),
        ms(ours.0.p99),
        ms(peer.0.p99),
        "ms",
        false,
    );
    table.plain(
        &format!("{get}: non-2xx answers and socket errors"),
        &format!("{} of {}", ours.0.failures(), ours.0.requests),
        &format!("{} of {}", peer.0.failures(), peer.0.requests),
    );
    table.row(
        &format!("GET of a 256 MiB blob (curl, median of {runs}): throughput"),
        ours.1 / (1024.0 * 1024.0),
        peer.1 / (1024.0 * 1024.0),
        "MiB/s",
        true,
    );
    let find = |client: &str, side: Side| {
        pushes
            .iter()
            .find(|(c, s, _, _)| *c == client && *s == side)
            .map(|(_, _, wall, rss)| (*wall, *rss))
            .unwrap_or_default()
    };
    for client in ["oci-copy", "skopeo"] {
        let (o, p) = (find(client, Side::Ours), find(client, Side::Peer));
        table.row(
            &format!("push 20 × 8 MiB with {client} (median of {runs}): wall"),
            secs(o.0),
            secs(p.0),
            "s",
            false,
        );
        table.row(
            &format!("server peak RSS during the {client} pushes"),
            mib(o.1),
            mib(p.1),
            "MiB",
            false,
        );
    }
    table.row(
        "server peak RSS after the reads (wrk + blob GETs)",
        mib(ours.2),
        mib(peer.2),
        "MiB",
        false,
    );
    println!("{}", table.markdown("docker-registry"));

    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let rps_ratio = ours.0.requests_per_sec / peer.0.requests_per_sec;
    println!(
        "targets: manifest GET ≥ 10× req/s ({rps_ratio:.1}×): {}; lower p99: {}; zero non-2xx: {}",
        verdict(rps_ratio >= 10.0),
        verdict(ours.0.p99 < peer.0.p99),
        verdict(ours.0.failures() == 0),
    );
    let pushes_met = ["oci-copy", "skopeo"]
        .iter()
        .all(|c| find(c, Side::Ours).0 < find(c, Side::Peer).0);
    let rss_met = ["oci-copy", "skopeo"]
        .iter()
        .all(|c| find(c, Side::Ours).1 < find(c, Side::Peer).1)
        && ours.2 < peer.2;
    println!(
        "targets: blob GET ≥ peer: {}; pushes faster: {}; lower peak RSS: {}",
        verdict(ours.1 >= peer.1),
        verdict(pushes_met),
        verdict(rss_met),
    );
    Ok(())
}

/// What one wrk run reported.
#[derive(Debug, Clone, PartialEq)]
struct WrkResult {
    /// Requests per second over the run.
    requests_per_sec: f64,
    /// Requests completed.
    requests: u64,
    /// The 99th percentile latency.
    p99: Duration,
    /// Answers with a status of 400 or more (wrk's "Non-2xx or 3xx").
    non_2xx: u64,
    /// Connect, read, write and timeout errors.
    socket_errors: u64,
}

impl WrkResult {
    fn failures(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

/// Runs wrk against `url` for `seconds` with the OCI Accept header.
fn wrk(url: &str, seconds: u64) -> Result<WrkResult> {
    let output = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "--latency"])
        .args(["-H", &format!("Accept: {OCI_MANIFEST}")])
        .arg(url)
        .output()
        .context("starting wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk {url} failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("reading wrk's report:\n{text}"))
}

/// Reads the numbers out of wrk's `--latency` report.
fn parse_wrk(text: &str) -> Result<WrkResult> {
    let mut requests_per_sec = None;
    let mut requests = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(rest.trim().parse::<f64>().context("Requests/sec")?);
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = Some(parse_latency(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().context("Non-2xx or 3xx responses")?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in rest.split(',') {
                let count = part.split_whitespace().nth(1).unwrap_or("0");
                socket_errors += count.parse::<u64>().context("Socket errors")?;
            }
        } else if line.contains(" requests in ") {
            let count = line.split_whitespace().next().unwrap_or_default();
            requests = Some(count.parse::<u64>().context("requests in")?);
        }
    }
    match (requests_per_sec, requests, p99) {
        (Some(requests_per_sec), Some(requests), Some(p99)) => Ok(WrkResult {
            requests_per_sec,
            requests,
            p99,
            non_2xx,
            socket_errors,
        }),
        _ => bail!("no Requests/sec, request count or 99% latency line (was --latency given?)"),
    }
}

/// A wrk latency such as `812.00us`, `3.21ms`, `1.02s` or `1.50m`.
fn parse_latency(text: &str) -> Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("latency {text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("latency {text:?} is not a number"))?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => bail!("latency {text:?} has an unknown unit {other:?}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Downloads `url` with curl into /dev/null; its average speed in bytes/s.
fn curl_speed(url: &str, size: u64) -> Result<f64> {
    let output = Command::new("curl")
        .args(["-sS", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{size_download} %{speed_download}"])
        .arg(url)
        .output()
        .context("starting curl")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        ["200", got, speed] if got.parse::<u64>().ok() == Some(size) => speed
            .parse()
            .with_context(|| format!("curl speed {speed:?}")),
        _ => bail!(
            "curl {url}: expected 200 and {size} bytes, got {text:?} {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// A process's peak resident set size (`VmHWM`) in bytes.
fn peak_rss(pid: u32) -> Result<u64> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    parse_vm_hwm(&status).with_context(|| format!("no VmHWM line in {}", path.display()))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:5000/v2/small/manifests/1
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms    2.01ms  45.12ms   93.10%
    Req/Sec    15.23k     1.02k   17.80k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.05ms
     90%    1.60ms
     99%    8.21ms
  303112 requests in 10.00s, 120.31MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  30310.55
Transfer/sec:     12.03MB
";

    #[test]
    fn reads_wrk_reports() {
        let got = parse_wrk(WRK).expect("parse");
        assert_eq!(got.requests, 303_112);
        assert!((got.requests_per_sec - 30310.55).abs() < 1e-6);
        assert_eq!(got.p99, Duration::from_micros(8210));
        assert_eq!((got.non_2xx, got.socket_errors, got.failures()), (7, 3, 10));
        let clean = WRK
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(parse_wrk(&clean).expect("parse").failures(), 0);
        let err = parse_wrk("Requests/sec: 1\n").expect_err("no latency");
        assert!(err.to_string().contains("was --latency given?"), "{err}");
    }

    #[test]
    fn reads_wrk_latencies() {
        let cases = [
            ("812.00us", Ok(Duration::from_micros(812))),
            ("3.5ms", Ok(Duration::from_micros(3500))),
            ("1.25s", Ok(Duration::from_millis(1250))),
            ("2.00m", Ok(Duration::from_secs(120))),
            ("12", Err("has no unit")),
            ("x1ms", Err("is not a number")),
            ("1.0ns", Err("unknown unit \"ns\"")),
        ];
        for (text, want) in cases {
            match (parse_latency(text), want) {
                (Ok(got), Ok(want)) => {
                    assert!(got.abs_diff(want) < Duration::from_nanos(10), "{text}")
                }
                (Err(err), Err(words)) => {
                    assert!(err.to_string().contains(words), "{text}: {err}")
                }
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn reads_peak_rss() {
        let status = "Name:\toci-serve\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
        assert!(peak_rss(std::process::id()).expect("own status") > 0);
    }
}
