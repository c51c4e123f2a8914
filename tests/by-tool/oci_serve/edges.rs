//! Cases of the issue that the conformance modules leave out: repository
//! names that look like a layout's own files, zero-length blobs, Docker
//! schema 2 manifests and manifest lists, and the referrers API's
//! `artifactType` fallback to the config's media type.

use ocikit::manifest::{DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
use ocikit::storage::scrub::scrub;
use ocikit_e2e::fixtures::check_layout;
use ocikit_e2e::{temp_dir, tool};

use super::*;

#[test]
fn names_like_layout_files_are_repositories_of_their_own() {
    let server = OciServe::start();
    let api = Api::new(&server.addr);
    let names = [
        "foo",
        "foo/blobs",
        "foo/index.json",
        "foo/oci-layout",
        "blobs",
    ];
    let pushed: Vec<(String, Digest)> = names
        .iter()
        .map(|name| {
            let (_, digest) = api.push_image(name, "v1", name);
            (name.to_string(), digest)
        })
        .collect();
    // Each name answers with its own image, however they were pushed.
    for (name, digest) in &pushed {
        let r = api.send(
            api.req("GET", &format!("/v2/{name}/manifests/v1"))
                .header("accept", OCI_MANIFEST),
        );
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        assert_eq!(
            header(&r, "docker-content-digest"),
            digest.to_string(),
            "{name}"
        );
        let body: serde_json::Value =
            json(api.send(api.req("GET", &format!("/v2/{name}/tags/list"))));
        assert_eq!(body["tags"], serde_json::json!(["v1"]), "{name}");
    }
    let body: serde_json::Value = json(api.send(api.req("GET", "/v2/_catalog")));
    let mut sorted = names.to_vec();
    sorted.sort();
    assert_eq!(body["repositories"], serde_json::json!(sorted));
    // `foo` is still a valid OCI layout holding only its own image, and the
    // escaped directories are layouts of their own (the documented mapping).
    let dirs = [
        ("foo", "foo"),
        ("foo/blobs", "foo/_blobs"),
        ("foo/index.json", "foo/_index.json"),
        ("foo/oci-layout", "foo/_oci-layout"),
        ("blobs", "_blobs"),
    ];
    for (name, dir) in dirs {
        let layout = check_layout(&server.root.join(dir))
            .unwrap_or_else(|e| panic!("{dir} is not a valid layout: {e}"));
        let want = pushed.iter().find(|(n, _)| n == name).expect("pushed");
        assert_eq!(
            layout.tagged("v1"),
            Some(want.1.to_string().as_str()),
            "{dir}"
        );
        assert_eq!(layout.entries.len(), 1, "{dir}: {:?}", layout.entries);
    }
    assert!(server.root.join("foo/index.json").is_file());
    assert!(server.root.join("foo/oci-layout").is_file());
    assert!(server.root.join("foo/blobs/sha256").is_dir());
    // oci-copy reads an escaped repository directory as a layout.
    let dir = temp_dir();
    let out = tool("oci-copy")
        .args([
            &format!("oci:{}:v1", server.root.join("foo/_index.json").display()),
            &format!("oci:{}:v1", dir.path().join("copy").display()),
        ])
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(line["digest"], pushed[2].1.to_string());
    let report = scrub(&server.root).expect("scrub");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.repositories, names.len());
}

#[test]
fn zero_length_blobs_by_session_and_by_single_post() {
    let Some(server) = Server::start() else {
        return;
    };
    let api = server.api();
    let empty = Digest::sha256_of(b"");
    let r = api.send(api.req("POST", "/v2/edges/empty/blobs/uploads/"));
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location");
    let r = api.send(api.req("GET", &location));
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "status of an empty upload"
    );
    assert_eq!(header(&r, "range"), "0-0");
    let location = header(&r, "location");
    let r = api.send(api.req("PUT", &with_query(&location, &format!("digest={empty}"))));
    assert_eq!(r.status(), StatusCode::CREATED, "{}", text(r));
    let r = api.send(api.req("HEAD", &format!("/v2/edges/empty/blobs/{empty}")));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), "0");
    let r = api.send(api.req("GET", &format!("/v2/edges/empty/blobs/{empty}")));
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().expect("body").is_empty());
    // A range of an empty blob cannot be satisfied.
    let r = api.send(
        api.req("GET", &format!("/v2/edges/empty/blobs/{empty}"))
            .header("range", "bytes=0-0"),
    );
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    if server.is_docker() {
        return;
    }
    let r = api.send(
        api.req(
            "POST",
            &format!("/v2/edges/empty2/blobs/uploads/?digest={empty}"),
        )
        .header("content-type", "application/octet-stream")
        .header("content-length", "0"),
    );
    assert_eq!(r.status(), StatusCode::CREATED, "{}", text(r));
    // A wrong digest for an empty body: 400 and nothing stored.
    let wrong = Digest::sha256_of(b"x");
    let r = api.send(
        api.req(
            "POST",
            &format!("/v2/edges/empty3/blobs/uploads/?digest={wrong}"),
        )
        .header("content-length", "0"),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "DIGEST_INVALID");
    let r = api.send(api.req("HEAD", &format!("/v2/edges/empty3/blobs/{wrong}")));
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn docker_schema2_manifests_and_manifest_lists_keep_their_type() {
    let Some(server) = Server::start() else {
        return;
    };
    let api = server.api();
    let name = "edges/docker";
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = api.push_blob(name, config);
    let layer = b"not really gzip, the registry does not care".to_vec();
    let layer_digest = api.push_blob(name, &layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .expect("json");
    let digest = Digest::sha256_of(&manifest);
    let r = api.put_manifest(name, "v2s2", DOCKER_MANIFEST, &manifest);
    assert_eq!(r.status(), StatusCode::CREATED, "{}", text(r));
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": digest.to_string(), "size": manifest.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .expect("json");
    let list_digest = Digest::sha256_of(&list);
    let r = api.put_manifest(name, "list", DOCKER_MANIFEST_LIST, &list);
    assert_eq!(r.status(), StatusCode::CREATED, "{}", text(r));
    for (tag, media_type, bytes, digest) in [
        ("v2s2", DOCKER_MANIFEST, &manifest, &digest),
        ("list", DOCKER_MANIFEST_LIST, &list, &list_digest),
    ] {
        let r = api.send(
            api.req("GET", &format!("/v2/{name}/manifests/{tag}"))
                .header("accept", media_type),
        );
        assert_eq!(r.status(), StatusCode::OK, "{tag}");
        assert_eq!(header(&r, "content-type"), media_type, "{tag}");
        assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
        assert_eq!(r.bytes().expect("body").as_ref(), bytes.as_slice(), "{tag}");
        // With every type a client knows.
        let r = api.send(
            api.req("GET", &format!("/v2/{name}/manifests/{digest}"))
                .header("accept", ocikit::manifest::ACCEPT_ALL),
        );
        assert_eq!(r.status(), StatusCode::OK, "{tag} by digest");
        assert_eq!(header(&r, "content-type"), media_type, "{tag} by digest");
    }
    // A list naming a manifest the repository does not have.
    let absent = Digest::sha256_of(b"no such manifest");
    let dangling = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": absent.to_string(), "size": 10,
                       "platform": {"architecture": "arm64", "os": "linux"}}],
    }))
    .expect("json");
    let r = api.put_manifest(name, "dangling", DOCKER_MANIFEST_LIST, &dangling);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "MANIFEST_BLOB_UNKNOWN");
}

#[test]
fn referrers_fall_back_to_the_config_media_type() {
    let server = OciServe::start();
    let api = Api::new(&server.addr);
    let name = "edges/referrers";
    let (subject, subject_digest) = api.push_image(name, "v1", "fallback");
    let config = api.push_blob(name, b"{}");
    // No artifactType: the config's media type stands in for it.
    let plain = image_manifest(
        (&config, 2),
        &[],
        Some((&subject_digest, subject.len())),
        None,
    );
    let plain_digest = Digest::sha256_of(&plain);
    let r = api.put_manifest(name, &plain_digest.to_string(), OCI_MANIFEST, &plain);
    assert_eq!(r.status(), StatusCode::CREATED, "{}", text(r));
    let r = api.send(api.req("GET", &format!("/v2/{name}/referrers/{subject_digest}")));
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = json(r);
    let entries = body["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], plain_digest.to_string());
    assert_eq!(entries[0]["artifactType"], OCI_CONFIG);
    assert_eq!(entries[0]["mediaType"], OCI_MANIFEST);
    assert_eq!(entries[0]["size"], plain.len());
    // Filtering on the fallback type finds it (`+` percent-encoded, as in
    // any query); another type finds nothing.
    let filter = OCI_CONFIG.replace('+', "%2B");
    let r = api.send(api.req(
        "GET",
        &format!("/v2/{name}/referrers/{subject_digest}?artifactType={filter}"),
    ));
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    assert_eq!(json(r)["manifests"].as_array().expect("manifests").len(), 1);
    let r = api.send(api.req(
        "GET",
        &format!("/v2/{name}/referrers/{subject_digest}?artifactType=application/x.none"),
    ));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r)["manifests"], serde_json::json!([]));
    // Deleting the referrer removes it from the list.
    let r = api.send(api.req("DELETE", &format!("/v2/{name}/manifests/{plain_digest}")));
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = api.send(api.req("GET", &format!("/v2/{name}/referrers/{subject_digest}")));
    assert_eq!(json(r)["manifests"], serde_json::json!([]));
    // A malformed digest in the path is the spec's error, not a 500.
    let r = api.send(api.req("GET", &format!("/v2/{name}/referrers/sha256:nothex")));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "DIGEST_INVALID");
}
