//! oci-serve under faults: fifty clients pushing the same blobs and tags at
//! once, `kill -9` in the middle of heavy pushes, and clients that stall.
//! After each, the integrity check (`ocikit::storage::scrub`: every blob
//! re-hashed, every index entry and manifest reference resolvable) must find
//! nothing wrong.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ocikit::storage::scrub::{scrub, ScrubReport};
use ocikit_e2e::fixtures::{big_image, check_layout, noise};
use ocikit_e2e::{temp_dir, tool};

use super::*;

fn assert_clean(root: &Path) -> ScrubReport {
    let report = scrub(root).expect("scrub runs");
    assert!(
        report.problems.is_empty(),
        "scrub of {} found:\n{}",
        root.display(),
        report
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    report
}

/// A push that either worked or failed the way a tool should: exit 1 with
/// one `oci-copy: …` message, never a crash.
fn assert_clean_exit(output: &std::process::Output, what: &str) -> bool {
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => true,
        Some(1) if stderr.starts_with("oci-copy: ") && !stderr.contains("panicked") => {
            eprintln!("{what} failed cleanly: {stderr}");
            false
        }
        _ => panic!("{what}: {:?}\n{stderr}", output.status),
    }
}

#[test]
fn fifty_oci_copy_processes_push_the_same_image_and_tags() {
    let server = OciServe::start();
    let dir = temp_dir();
    let src = dir.path().join("src");
    let image = big_image(&src, "v1", 3, 512 << 10);
    let src_ref = format!("oci:{}:v1", src.display());
    let pushes: Vec<_> = (0..50)
        .map(|i| {
            // Most go to one repository and tag; every fifth to a second
            // repository, so blob stores, links and indexes all race.
            let dest = if i % 5 == 0 {
                server.url("race/b:latest")
            } else {
                server.url("race/a:latest")
            };
            let mut cmd = tool("oci-copy");
            cmd.args(["-q", &src_ref, &dest]);
            std::thread::spawn(move || (dest, cmd.output().expect("oci-copy runs")))
        })
        .collect();
    let mut ok = 0;
    for push in pushes {
        let (dest, output) = push.join().expect("push thread");
        if assert_clean_exit(&output, &dest) {
            ok += 1;
        }
    }
    assert_eq!(ok, 50, "every concurrent push of the same image succeeds");
    let report = assert_clean(&server.root);
    assert_eq!(report.repositories, 2);
    // One copy of each blob in the shared store, whatever the races.
    assert_eq!(report.blobs, 5, "3 layers, a config and a manifest");
    for repo in ["race/a", "race/b"] {
        let layout = check_layout(&server.root.join(repo)).expect("a valid OCI layout");
        assert_eq!(
            layout.tagged("latest"),
            Some(image.digest.as_str()),
            "{repo}"
        );
        assert_eq!(layout.entries.len(), 1, "{repo}: {:?}", layout.entries);
    }
}

#[test]
fn fifty_http_clients_race_on_one_tag_and_one_blob() {
    let server = OciServe::start();
    let addr = server.addr.clone();
    let shared = Arc::new(noise(3, 1 << 20));
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let (addr, shared) = (addr.clone(), shared.clone());
            std::thread::spawn(move || {
                let api = Api::new(&addr);
                // The same layer, chunked: POST, two PATCHes, PUT.
                let layer = Digest::sha256_of(&shared);
                let r = api.send(api.req("POST", "/v2/race/tag/blobs/uploads/"));
                assert_eq!(r.status(), StatusCode::ACCEPTED);
                let mut location = header(&r, "location");
                for (start, end) in [(0, 300_000), (300_000, shared.len())] {
                    let r = api.send(
                        api.req("PATCH", &location)
                            .header("content-type", "application/octet-stream")
                            .header("content-range", format!("{start}-{}", end - 1))
                            .body(shared[start..end].to_vec()),
                    );
                    assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", text(r));
                    location = header(&r, "location");
                }
                let r =
                    api.send(api.req("PUT", &with_query(&location, &format!("digest={layer}"))));
                assert_eq!(r.status(), StatusCode::CREATED, "{}", text(r));
                // A config of its own, so every client's manifest differs.
                let config = format!(r#"{{"architecture":"amd64","os":"linux","client":{i}}}"#);
                let config_digest = api.push_blob("race/tag", config.as_bytes());
                let manifest = image_manifest(
                    (&config_digest, config.len()),
                    &[(&layer, shared.len())],
                    None,
                    None,
                );
                let r = api.put_manifest("race/tag", "latest", OCI_MANIFEST, &manifest);
                assert_eq!(r.status(), StatusCode::CREATED, "{}", text(r));
                Digest::sha256_of(&manifest)
            })
        })
        .collect();
    let pushed: Vec<Digest> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    let api = Api::new(&server.addr);
    let r = api.send(
        api.req("GET", "/v2/race/tag/manifests/latest")
            .header("accept", OCI_MANIFEST),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let winner: Digest = header(&r, "docker-content-digest").parse().expect("digest");
    assert!(
        pushed.contains(&winner),
        "the tag points at a pushed manifest"
    );
    let body: serde_json::Value = json(api.send(api.req("GET", "/v2/race/tag/tags/list")));
    assert_eq!(body["tags"], serde_json::json!(["latest"]));
    // Every manifest stays reachable by digest.
    for digest in &pushed {
        let r = api.send(
            api.req("HEAD", &format!("/v2/race/tag/manifests/{digest}"))
                .header("accept", OCI_MANIFEST),
        );
        assert_eq!(r.status(), StatusCode::OK, "{digest}");
    }
    let report = assert_clean(&server.root);
    assert_eq!(report.manifests, 50);
    // 1 layer + 50 configs + 50 manifests, each stored once.
    assert_eq!(report.blobs, 101);
}

/// What a pusher saw acknowledged before the crash.
#[derive(Default)]
struct Acked {
    /// (repository, tag, manifest digest)
    manifests: Vec<(String, String, Digest)>,
    /// (repository, blob digest)
    blobs: Vec<(String, Digest)>,
}

#[test]
fn kill_9_mid_push_keeps_every_acknowledged_push() {
    let dir = temp_dir();
    let root = dir.path().join("root");
    let mut server = OciServe::start_at(&root, &[]);
    let addr = server.addr.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut workers = Vec::new();
    // Six HTTP pushers: streamed PATCH uploads of 0.5–2 MiB layers, then
    // a tagged manifest, in a loop until the server dies.
    for k in 0..6u64 {
        let (addr, stop, acked) = (addr.clone(), stop.clone(), acked.clone());
        workers.push(std::thread::spawn(move || {
            let client = Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let base = format!("http://{addr}");
            let repo = format!("crash/http{k}");
            let push_blob = |data: Vec<u8>| -> Option<Digest> {
                let digest = Digest::sha256_of(&data);
                let r = client
                    .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                    .send()
                    .ok()?;
                let location = r.headers().get("location")?.to_str().ok()?.to_owned();
                let r = client
                    .patch(format!("{base}{location}"))
                    .header("content-type", "application/octet-stream")
                    .body(data)
                    .send()
                    .ok()?;
                let location = r.headers().get("location")?.to_str().ok()?.to_owned();
                let r = client
                    .put(format!(
                        "{base}{}",
                        with_query(&location, &format!("digest={digest}"))
                    ))
                    .send()
                    .ok()?;
                (r.status() == StatusCode::CREATED).then_some(digest)
            };
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let size = (512 << 10) + ((k * 7 + i * 13) % 4) as usize * (512 << 10);
                let layer_data = noise(k * 100_000 + i, size);
                let Some(layer) = push_blob(layer_data) else {
                    break;
                };
                acked
                    .lock()
                    .expect("lock")
                    .blobs
                    .push((repo.clone(), layer.clone()));
                let config = format!(r#"{{"architecture":"amd64","os":"linux","n":"{k}-{i}"}}"#);
                let Some(config_digest) = push_blob(config.clone().into_bytes()) else {
                    break;
                };
                let manifest = image_manifest(
                    (&config_digest, config.len()),
                    &[(&layer, size)],
                    None,
                    None,
                );
                let tag = format!("i{i}");
                let Ok(r) = client
                    .put(format!("{base}/v2/{repo}/manifests/{tag}"))
                    .header("content-type", OCI_MANIFEST)
                    .body(manifest.clone())
                    .send()
                else {
                    break;
                };
                if r.status() != StatusCode::CREATED {
                    break;
                }
                acked.lock().expect("lock").manifests.push((
                    repo.clone(),
                    tag,
                    Digest::sha256_of(&manifest),
                ));
            }
        }));
    }
    // Two oci-copy loops: an exit status of 0 is an acknowledged push.
    let src = dir.path().join("src");
    let image = big_image(&src, "v1", 4, 1 << 20);
    let digest: Digest = image.digest.parse().expect("digest");
    for k in 0..2 {
        let (addr, stop, acked) = (addr.clone(), stop.clone(), acked.clone());
        let (src_ref, digest) = (format!("oci:{}:v1", src.display()), digest.clone());
        workers.push(std::thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let repo = format!("crash/copy{k}");
                let tag = format!("n{i}");
                let output = tool("oci-copy")
                    .args(["-q", &src_ref, &format!("docker://{addr}/{repo}:{tag}")])
                    .output()
                    .expect("oci-copy runs");
                if !output.status.success() {
                    break;
                }
                acked
                    .lock()
                    .expect("lock")
                    .manifests
                    .push((repo, tag, digest.clone()));
            }
        }));
    }
    // Kill once plenty was acknowledged, while the pushers are still busy.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").manifests.len() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("pusher");
    }
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    assert!(
        acked.manifests.len() >= 20,
        "only {} pushes acknowledged in 60 s",
        acked.manifests.len()
    );

    let server = OciServe::start_at(&root, &[]);
    let api = Api::new(&server.addr);
    for (repo, tag, digest) in &acked.manifests {
        let r = api.send(
            api.req("GET", &format!("/v2/{repo}/manifests/{tag}"))
                .header("accept", OCI_MANIFEST),
        );
        assert_eq!(r.status(), StatusCode::OK, "{repo}:{tag} after the restart");
        let bytes = r.bytes().expect("body");
        assert_eq!(&Digest::sha256_of(&bytes), digest, "{repo}:{tag}");
    }
    for (repo, digest) in &acked.blobs {
        let r = api.send(api.req("GET", &format!("/v2/{repo}/blobs/{digest}")));
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{repo}@{digest} after the restart"
        );
        let bytes = r.bytes().expect("body");
        assert_eq!(&Digest::sha256_of(&bytes), digest, "{repo}@{digest}");
    }
    let report = assert_clean(&root);
    let distinct: std::collections::HashSet<_> =
        acked.manifests.iter().map(|(r, _, d)| (r, d)).collect();
    assert!(
        report.manifests >= distinct.len(),
        "scrub saw {} manifests, {} were acknowledged",
        report.manifests,
        distinct.len()
    );
    // The restarted server takes pushes again.
    api.push_image("crash/after", "v1", "after the crash");
}

/// Reads from `stream` until the server closes it (EOF or reset) or
/// `deadline` passes; returns the bytes read and whether it was closed.
fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> (usize, bool) {
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (total, false);
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (total, false)
            }
            Err(_) => return (total, true),
        }
    }
}

#[test]
fn stalled_clients_are_dropped_while_others_are_served() {
    let dir = temp_dir();
    let server = OciServe::start_at(&dir.path().join("root"), &["--idle-timeout", "2"]);
    let api = Api::new(&server.addr);
    let big = noise(9, 32 << 20);
    let big_digest = api.push_blob("stall/app", &big);
    let opened = Instant::now();
    let connect = || TcpStream::connect(&server.addr).expect("connect");
    // Half a request header, never finished.
    let mut half_headers: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("write");
            s
        })
        .collect();
    // Uploads that promise 1 MiB, send 1000 bytes, and stall.
    let mut half_bodies: Vec<TcpStream> = (0..20)
        .map(|_| {
            let r = api.send(api.req("POST", "/v2/stall/app/blobs/uploads/"));
            let location = header(&r, "location");
            let mut s = connect();
            s.write_all(
                format!(
                    "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n"
                )
                .as_bytes(),
            )
            .expect("write");
            s.write_all(&[7u8; 1000]).expect("write");
            s
        })
        .collect();
    // Downloads of a 32 MiB blob whose clients never read (the kernel's
    // socket buffers hold a few MiB of it at most).
    let non_readers_opened = Instant::now();
    let mut non_readers: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = connect();
            s.write_all(
                format!("GET /v2/stall/app/blobs/{big_digest} HTTP/1.1\r\nHost: x\r\n\r\n")
                    .as_bytes(),
            )
            .expect("write");
            s
        })
        .collect();

    // Meanwhile an ordinary client is served: a whole push and pull.
    let (manifest, digest) = api.push_image("stall/ok", "v1", "served while others stall");
    let r = api.send(
        api.req("GET", "/v2/stall/ok/manifests/v1")
            .header("accept", OCI_MANIFEST),
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
    assert_eq!(r.bytes().expect("body").as_ref(), manifest.as_slice());

    // Every stalled connection is closed by the server after the idle
    // timeout (2 s), not before and not never.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (_, closed) = read_until_closed(&mut half_headers[0], deadline);
    assert!(closed, "a half-header connection is still open after 30 s");
    assert!(
        opened.elapsed() >= Duration::from_millis(1500),
        "closed after {:?}, before the 2 s timeout",
        opened.elapsed()
    );
    for (i, s) in half_headers.iter_mut().enumerate() {
        assert!(
            read_until_closed(s, deadline).1,
            "half header {i} still open"
        );
    }
    for (i, s) in half_bodies.iter_mut().enumerate() {
        assert!(
            read_until_closed(s, deadline).1,
            "stalled body {i} still open"
        );
    }
    // Reading would count as progress: read only once they are dropped.
    std::thread::sleep(
        (non_readers_opened + Duration::from_secs(5)).saturating_duration_since(Instant::now()),
    );
    for (i, s) in non_readers.iter_mut().enumerate() {
        let (read, closed) = read_until_closed(s, deadline);
        assert!(closed, "non-reader {i} still open");
        assert!(
            read < big.len(),
            "non-reader {i} got the whole blob ({read} bytes) without reading"
        );
    }
    // The stalled uploads kept only what arrived; the server still works.
    let r = api.send(api.req("GET", "/v2/"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_clean(&server.root);
}
