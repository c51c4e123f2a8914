//! Memory use of blob transfer, alone in its own test binary so that no
//! other test's allocations blur the peak: a 64 MiB blob goes up and down
//! through the registry client while the process's peak RSS must stay
//! far below the blob's size (the budget for a 512 MiB layer is 64 MiB).

use ocikit::registry::{Client, ClientOptions};
use ocikit_e2e::peers::DockerRegistry;
use tokio::io::AsyncReadExt as _;

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// A reader of `len` deterministic bytes generated on the fly, never held
/// in memory, hashing as it goes is the caller's business.
struct Generated {
    left: u64,
    state: u64,
}

impl tokio::io::AsyncRead for Generated {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left).min(64 * 1024) as usize;
        let mut chunk = vec![0u8; n];
        for word in chunk.chunks_mut(8) {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bytes = self.state.to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        buf.put_slice(&chunk);
        self.left -= n as u64;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn large_blob_streams_with_bounded_memory() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let client = Client::new(ClientOptions::default()).expect("client");
    let repo = client.repository(&registry.addr, "big");
    const SIZE: u64 = 64 << 20;
    // Hash the generated stream once to know its digest.
    let mut hasher = ocikit::Hasher::new(ocikit::Algorithm::Sha256);
    let mut gen = Generated {
        left: SIZE,
        state: 7,
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = gen.read(&mut buf).await.expect("gen");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    drop(buf);
    let digest = hasher.finish();

    let before = peak_rss();
    repo.put_blob(
        &digest,
        SIZE,
        Box::pin(Generated {
            left: SIZE,
            state: 7,
        }),
    )
    .await
    .expect("streamed upload");
    assert_eq!(repo.blob_exists(&digest).await.expect("head"), Some(SIZE));
    let after_upload = peak_rss().saturating_sub(before);
    assert!(
        after_upload < 24 << 20,
        "peak memory grew by {} MiB uploading a {} MiB blob",
        after_upload >> 20,
        SIZE >> 20
    );
    let (size, mut body) = repo.get_blob(&digest).await.expect("get");
    assert_eq!(size, SIZE);
    let copied = tokio::io::copy(&mut body, &mut tokio::io::sink())
        .await
        .expect("verified download");
    assert_eq!(copied, SIZE);
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 24 << 20,
        "peak memory grew by {} MiB moving a {} MiB blob",
        grown >> 20,
        SIZE >> 20
    );
}
