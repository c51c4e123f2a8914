//! Unit tests of the filesystem backend: the name mapping, durability of
//! what was acknowledged (by reopening the root), and bad input.

use super::*;
use crate::manifest::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use crate::storage::scrub;

fn stream(chunks: &[&[u8]]) -> ByteStream {
    let items: Vec<Result<Bytes, io::Error>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(items))
}

async fn push_blob(s: &FsStorage, repo: &str, data: &[u8]) -> Digest {
    let digest = Digest::sha256_of(data);
    let id = s.upload_start(repo).await.expect("start");
    s.upload_append(repo, &id, None, stream(&[data]))
        .await
        .expect("append");
    s.upload_finish(repo, &id, &digest).await.expect("finish");
    digest
}

fn image(config: &Digest, layer: &Digest, subject: Option<&Digest>) -> Bytes {
    let subject = subject
        .map(|s| format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{s}","size":1}}"#))
        .unwrap_or_default();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config}","size":2}},"layers":[{{"mediaType":"{OCI_LAYER_GZIP}","digest":"{layer}","size":5}}]{subject},"annotations":{{"k":"v"}}}}"#
    ))
}

fn new_manifest(bytes: Bytes) -> NewManifest {
    let manifest = Manifest::parse(&bytes, None).expect("parse");
    NewManifest {
        digest: Digest::sha256_of(&bytes),
        media_type: manifest.media_type.clone(),
        bytes,
        manifest,
    }
}

#[test]
fn name_mapping_is_collision_free() {
    let root = Path::new("/r");
    let cases = [
        ("foo", "/r/foo"),
        ("foo/blobs", "/r/foo/_blobs"),
        ("foo/index.json", "/r/foo/_index.json"),
        ("foo/oci-layout", "/r/foo/_oci-layout"),
        ("blobs", "/r/_blobs"),
        ("library/alpine", "/r/library/alpine"),
        ("a/blobs/b", "/r/a/_blobs/b"),
    ];
    for (name, want) in cases {
        assert_eq!(
            repository_dir(root, name).expect(name),
            PathBuf::from(want),
            "{name}"
        );
    }
    for bad in ["../x", "a/../b", "A", "a//b", "_ocikit", "a/_blobs"] {
        let err = repository_dir(root, bad).expect_err(bad);
        assert!(err.to_string().contains("invalid repository name"), "{err}");
    }
    for (entry, want) in [
        ("_blobs", Some("blobs")),
        ("blobs", None),
        ("_ocikit", None),
        ("x", Some("x")),
    ] {
        assert_eq!(component_of(entry), want, "{entry}");
    }
}

#[tokio::test]
async fn push_pull_survives_reopen_and_is_a_layout() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = FsStorage::open(dir.path()).expect("open");
    let config = push_blob(&s, "foo", b"{}").await;
    let layer = push_blob(&s, "foo", b"layer").await;
    let m = new_manifest(image(&config, &layer, None));
    let digest = m.digest.clone();
    s.manifest_put("foo", Some("v1"), m).await.expect("put");
    // A repository named like a layout file of `foo` is its own repository.
    let other = push_blob(&s, "foo/blobs", b"other").await;
    assert_eq!(s.blob_size("foo", &other).await.expect("size"), None);
    // One process owns a root at a time.
    let err = FsStorage::open(dir.path()).err().expect("in use");
    assert!(
        err.to_string().contains("is in use by another oci-serve"),
        "{err}"
    );
    drop(s);

    let s = FsStorage::open(dir.path()).expect("reopen");
    let got = s
        .manifest_get("foo", &ManifestRef::Tag("v1".into()))
        .await
        .expect("get")
        .expect("found");
    assert_eq!(got.digest, digest);
    assert_eq!(got.media_type, OCI_MANIFEST);
    assert_eq!(s.tags("foo").await.expect("tags"), Some(vec!["v1".into()]));
    assert_eq!(
        s.repositories().await.expect("catalog"),
        vec!["foo".to_owned(), "foo/blobs".to_owned()]
    );
    // The repository directory is an OCI layout with the tag as ref.name.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("foo/index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["manifests"][0]["annotations"][REF_NAME], "v1");
    assert!(dir.path().join("foo/oci-layout").is_file());
    assert!(blob_path(&dir.path().join("foo"), &layer).is_file());
    let report = scrub::scrub(dir.path()).expect("scrub");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.repositories, 2);
}

#[tokio::test]
async fn digest_mismatch_stores_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = FsStorage::open(dir.path()).expect("open");
    let claimed = Digest::sha256_of(b"something else");
    let id = s.upload_start("a").await.expect("start");
    s.upload_append("a", &id, None, stream(&[b"data"]))
        .await
        .expect("append");
    let err = s
        .upload_finish("a", &id, &claimed)
        .await
        .expect_err("mismatch");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_eq!(s.blob_size("a", &claimed).await.expect("size"), None);
    let actual = Digest::sha256_of(b"data");
    assert!(!blob_path(&dir.path().join(PRIVATE_DIR), &actual).exists());
    assert!(fs::read_dir(dir.path().join("_ocikit/uploads"))
        .expect("uploads")
        .next()
        .is_none());
    // The session is gone.
    assert_eq!(s.upload_size("a", &id).await.expect("size"), None);
}

#[tokio::test]
async fn chunks_must_arrive_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = FsStorage::open(dir.path()).expect("open");
    let id = s.upload_start("a").await.expect("start");
    assert_eq!(
        s.upload_append("a", &id, Some(0), stream(&[b"hello "]))
            .await
            .expect("first"),
        6
    );
    for wrong in [0, 3, 7] {
        let err = s
            .upload_append("a", &id, Some(wrong), stream(&[b"x"]))
            .await
            .expect_err("out of order");
        assert!(
            err.to_string()
                .contains("send the chunk starting at byte 6"),
            "{err}"
        );
    }
    s.upload_append("a", &id, Some(6), stream(&[b"wor", b"ld"]))
        .await
        .expect("second");
    let digest = Digest::sha256_of(b"hello world");
    assert_eq!(
        s.upload_finish("a", &id, &digest).await.expect("finish"),
        11
    );
    // Another repository must mount it to see it.
    assert_eq!(s.blob_size("b", &digest).await.expect("size"), None);
    assert!(s.blob_mount("b", "a", &digest).await.expect("mount"));
    assert!(!s.blob_mount("c", "nowhere", &digest).await.expect("mount"));
    assert_eq!(s.blob_size("b", &digest).await.expect("size"), Some(11));
}

#[tokio::test]
async fn referrers_and_deletes() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = FsStorage::open(dir.path()).expect("open");
    let config = push_blob(&s, "r", b"{}").await;
    let layer = push_blob(&s, "r", b"layer").await;
    let base = new_manifest(image(&config, &layer, None));
    let base_digest = base.digest.clone();
    s.manifest_put("r", Some("base"), base).await.expect("put");
    let sig = new_manifest(image(&config, &layer, Some(&base_digest)));
    let sig_digest = sig.digest.clone();
    s.manifest_put("r", None, sig).await.expect("put");
    let found = s.referrers("r", &base_digest).await.expect("referrers");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, sig_digest);
    assert_eq!(found[0].artifact_type.as_deref(), Some(OCI_CONFIG));
    assert_eq!(found[0].annotation("k"), Some("v"));

    let err = s.blob_delete("r", &sig_digest).await.expect_err("manifest");
    assert!(
        err.to_string().contains("DELETE /v2/<name>/manifests/"),
        "{err}"
    );
    assert!(s.tag_delete("r", "base").await.expect("tag"));
    assert!(!s.tag_delete("r", "base").await.expect("tag"));
    // Untagged, still there by digest.
    let by_digest = ManifestRef::Digest(base_digest.clone());
    assert!(s
        .manifest_get("r", &by_digest)
        .await
        .expect("get")
        .is_some());
    assert!(s.manifest_delete("r", &base_digest).await.expect("delete"));
    assert!(s
        .manifest_get("r", &by_digest)
        .await
        .expect("get")
        .is_none());
    assert!(s.blob_delete("r", &layer).await.expect("blob"));
    assert!(!s.blob_delete("r", &layer).await.expect("blob"));
    // The referrer now points at a deleted manifest and misses a blob.
    let report = scrub::scrub(dir.path()).expect("scrub");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].reason.contains("is missing"));
}

#[tokio::test]
async fn scrub_finds_corruption() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = FsStorage::open(dir.path()).expect("open");
    let digest = push_blob(&s, "a", b"precious").await;
    fs::write(blob_path(&dir.path().join(PRIVATE_DIR), &digest), b"rotten").expect("rot");
    let report = scrub::scrub(dir.path()).expect("scrub");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].reason.contains("content hashes to"));
}

#[tokio::test]
async fn dedupe_shares_one_copy_and_can_be_turned_off() {
    use std::os::unix::fs::MetadataExt;
    for dedupe in [true, false] {
        let dir = tempfile::tempdir().expect("tmp");
        let s = FsStorage::open_with(dir.path(), FsOptions { dedupe }).expect("open");
        let digest = push_blob(&s, "a", b"shared").await;
        assert!(s.blob_mount("b", "a", &digest).await.expect("mount"));
        let inode = |repo: &str| {
            fs::metadata(blob_path(&dir.path().join(repo), &digest))
                .expect("blob")
                .ino()
        };
        assert_eq!(inode("a") == inode("b"), dedupe, "dedupe={dedupe}");
        let report = scrub::scrub(dir.path()).expect("scrub");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

#[tokio::test]
async fn file_stream_reads_in_chunks_and_reports_a_short_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blob");
    let data: Vec<u8> = (0..(READ_CHUNK as usize * 2 + 123))
        .map(|i| (i % 251) as u8)
        .collect();
    fs::write(&path, &data).expect("write");
    let cases: [(u64, u64, Option<&str>); 4] = [
        (0, data.len() as u64, None),
        (5, 10, None),
        (READ_CHUNK - 1, READ_CHUNK + 2, None),
        (0, data.len() as u64 + 7, Some("ended 7 bytes early")),
    ];
    for (start, len, error) in cases {
        let mut file = File::open(&path).expect("open");
        file.seek(SeekFrom::Start(start)).expect("seek");
        let mut stream = file_stream(file, len, path.clone());
        let mut got = Vec::new();
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    assert!(chunk.len() as u64 <= READ_CHUNK);
                    got.extend_from_slice(&chunk);
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        match error {
            None => {
                assert_eq!(failure, None, "{start}+{len}");
                assert_eq!(got, &data[start as usize..(start + len) as usize]);
            }
            Some(words) => {
                let failure = failure.expect("a short file is an error");
                assert!(failure.contains(words), "{failure}");
                assert!(failure.contains("blob"), "names the file: {failure}");
            }
        }
    }
}

/// GC's upload side: sessions idle past the upload grace are cancelled (a
/// dry run only counts them), younger ones and their files stay, and files
/// no session owns (a crash's leftovers) go once they are old.
#[tokio::test]
async fn gc_cancels_stale_uploads_and_leftover_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = FsStorage::open(dir.path()).expect("open");
    let uploads = dir.path().join("_ocikit/uploads");
    let leftover = uploads.join("left-by-a-crash");
    fs::write(&leftover, b"junk").expect("leftover");
    let old = s.upload_start("a").await.expect("start");
    s.upload_append("a", &old, None, stream(&[b"half"]))
        .await
        .expect("append");
    // File ages count in whole seconds (by the later of mtime and ctime).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fresh = s.upload_start("a").await.expect("start");
    let options = |dry_run| GcOptions {
        upload_grace: std::time::Duration::from_millis(500),
        dry_run,
        ..GcOptions::default()
    };
    let report = s.gc(options(true)).await.expect("dry run");
    assert_eq!(report.uploads, 2, "{report:?}");
    assert_eq!(s.upload_size("a", &old).await.expect("size"), Some(4));
    assert!(leftover.exists());
    let report = s.gc(options(false)).await.expect("gc");
    assert_eq!(report.uploads, 2, "{report:?}");
    assert_eq!(s.upload_size("a", &old).await.expect("size"), None);
    assert_eq!(s.upload_size("a", &fresh).await.expect("size"), Some(0));
    assert!(!leftover.exists());
    let left: Vec<_> = fs::read_dir(&uploads)
        .expect("uploads")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 1, "only the fresh session's file: {left:?}");
    // The default grace keeps a day's worth of sessions.
    let report = s.gc(GcOptions::default()).await.expect("gc");
    assert_eq!(report.uploads, 0);
    assert_eq!(s.upload_size("a", &fresh).await.expect("size"), Some(0));
}
