//! oci-serve in production (issue 4): zot's config file, users and access
//! control, TLS, garbage collection and scrub, and operations, each checked
//! with real clients (curl, skopeo, oci-copy) against a real oci-serve.

use std::path::Path;
use std::time::Duration;

use ocikit::Digest;
use ocikit_e2e::fixtures::small_image;
use ocikit_e2e::peers::OciServe;
use ocikit_e2e::{require, temp_dir, tool};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A distribution-API client that may carry Basic credentials.
struct Http {
    base: String,
    client: Client,
    creds: Option<(String, String)>,
}

impl Http {
    fn new(server: &OciServe) -> Http {
        Http::at(&format!("http://{}", server.addr))
    }

    fn at(base: &str) -> Http {
        Http {
            base: base.to_owned(),
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            creds: None,
        }
    }

    fn with_creds(mut self, user: &str, password: &str) -> Http {
        self.creds = Some((user.to_owned(), password.to_owned()));
        self
    }

    fn req(&self, method: &str, path: &str) -> RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let builder = self.client.request(method, url);
        match &self.creds {
            Some((user, password)) => builder.basic_auth(user, Some(password)),
            None => builder,
        }
    }

    fn send(&self, builder: RequestBuilder) -> Response {
        builder.send().expect("request")
    }

    fn get(&self, path: &str) -> Response {
        self.send(self.req("GET", path))
    }

    /// Pushes a blob with POST + PUT; the status of the PUT (or of a refused POST).
    fn push_blob(&self, name: &str, data: &[u8]) -> (StatusCode, Digest) {
        let digest = Digest::sha256_of(data);
        let r = self.send(self.req("POST", &format!("/v2/{name}/blobs/uploads/")));
        if r.status() != StatusCode::ACCEPTED {
            return (r.status(), digest);
        }
        let location = header(&r, "location");
        let r = self.send(
            self.req("PUT", &format!("{location}?digest={digest}"))
                .header("content-type", "application/octet-stream")
                .body(data.to_vec()),
        );
        (r.status(), digest)
    }

    /// Pushes a one-layer image tagged `tag`; the manifest PUT's response.
    fn push_image(&self, name: &str, tag: &str, seed: &str) -> (Response, Digest) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
        let layer = format!("layer of {seed}").into_bytes();
        let (status, config_digest) = self.push_blob(name, config.as_bytes());
        assert_eq!(status, StatusCode::CREATED, "config blob of {name}");
        let (status, layer_digest) = self.push_blob(name, &layer);
        assert_eq!(status, StatusCode::CREATED, "layer blob of {name}");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest.to_string(), "size": layer.len()}],
        }))
        .expect("json");
        let r = self.send(
            self.req("PUT", &format!("/v2/{name}/manifests/{tag}"))
                .header("content-type", OCI_MANIFEST)
                .body(manifest.clone()),
        );
        (r, Digest::sha256_of(&manifest))
    }
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", r.headers()))
        .to_str()
        .expect("header text")
        .to_owned()
}

fn json(r: Response) -> serde_json::Value {
    let text = r.text().expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn body(r: Response) -> String {
    let status = r.status();
    format!("{status}: {}", r.text().unwrap_or_default())
}

/// Starts `oci-serve serve CONFIG` (zot's spelling) over the config's root.
fn serve_config(root: &Path, config: &Path, extra: &[&str]) -> OciServe {
    let mut args = vec!["serve".to_owned(), config.display().to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    OciServe::spawn(root, &args)
}

mod config {
    use super::*;

    #[test]
    fn zot_spelling_serves_the_file_root_and_port() {
        let dir = temp_dir();
        let root = dir.path().join("from-config");
        let config = dir.path().join("zot.yaml");
        std::fs::write(
            &config,
            format!(
                "distSpecVersion: 1.1.0\nstorage:\n  rootDirectory: {}\n  dedupe: false\nhttp:\n  address: 127.0.0.1\n  port: \"0\"\nlog:\n  level: info\n",
                root.display()
            ),
        )
        .expect("config");
        let server = serve_config(&root, &config, &[]);
        let http = Http::new(&server);
        let (r, _) = http.push_image("cfg/app", "v1", "config");
        assert_eq!(r.status(), StatusCode::CREATED, "{}", body(r));
        assert!(
            root.join("cfg/app/index.json").is_file(),
            "stored under rootDirectory"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = temp_dir();
        let config = dir.path().join("zot.json");
        std::fs::write(
            &config,
            r#"{"storage": {"rootDirectory": "/nonexistent/never-used"}, "http": {"port": "1"}}"#,
        )
        .expect("config");
        let root = dir.path().join("flag-root");
        let args: Vec<String> = [
            "--config",
            &config.display().to_string(),
            "--root",
            &root.display().to_string(),
            "--addr",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let server = OciServe::spawn(&root, &args);
        let r = Http::new(&server).get("/v2/");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(root.join("_ocikit").is_dir());
    }

    #[test]
    fn unknown_keys_and_bad_files_are_usage_errors_naming_them() {
        let dir = temp_dir();
        let cases = [
            (
                "typo.json",
                r#"{"http": {"adress": "0.0.0.0"}}"#,
                "unknown field `adress`",
            ),
            (
                "ext.yaml",
                "extensions:\n  search: {}\n",
                "unknown field `extensions`",
            ),
            (
                "gc.json",
                r#"{"storage": {"gcDelay": "soon"}}"#,
                "invalid duration \"soon\"",
            ),
            ("broken.json", "{", "EOF while parsing"),
        ];
        for (name, text, words) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("config");
            for args in [
                vec!["--config".to_owned(), path.display().to_string()],
                vec!["serve".to_owned(), path.display().to_string()],
            ] {
                let out = tool("oci-serve").args(&args).output().expect("run");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
                assert!(
                    stderr.contains(words) && stderr.contains(name),
                    "{name}: {stderr}"
                );
            }
        }
        let out = tool("oci-serve")
            .args(["serve", "/nonexistent/zot.json"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("/nonexistent/zot.json"), "{stderr}");
    }

    #[test]
    fn json_logs_are_one_object_per_line() {
        let dir = temp_dir();
        let root = dir.path().join("root");
        let log = dir.path().join("server.log");
        let config = dir.path().join("zot.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"log": {{"level": "info", "output": "{}"}}}}"#,
                log.display()
            ),
        )
        .expect("config");
        // log.output sends the logs to a file; the harness needs the
        // listening line on stderr, so check the file after a normal start.
        let out = tool("oci-serve")
            .args(["--config", &config.display().to_string()])
            .args([
                "--root",
                &root.display().to_string(),
                "--addr",
                "127.0.0.1:0",
            ])
            .args(["--log-format", "json"])
            .timeout(Duration::from_secs(2))
            .output()
            .expect("run");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&log).expect("log file");
        let first = text.lines().next().expect("a log line");
        let line: serde_json::Value = serde_json::from_str(first).expect("JSON log line");
        assert_eq!(line["level"], "INFO", "{line}");
        assert!(
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening on http://127.0.0.1:")),
            "{line}"
        );
        // And on stderr, through the harness, when there is no log.output.
        let server = OciServe::start_at(&root, &["--log-format", "json"]);
        assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    }
}

/// The users of the access-control tests, all with password `pw` (bcrypt,
/// made by the real `htpasswd -B`).
const USERS: [&str; 3] = ["alice", "bob", "admin"];

/// The rules of the access-control tests: everyone signed in reads `**`;
/// anonymous reads `public/**`; only alice reads and creates in `team/**`
/// (bob may not even read it); bob owns `bob/**`; the group `ops` (bob)
/// reads and creates in `ops/*`; admin may do anything.
const RULES: &str = r#"{
  "groups": {"ops": {"users": ["bob"]}},
  "repositories": {
    "ops/*": {"policies": [{"groups": ["ops"], "actions": ["read", "create"]}]},
    "**": {"defaultPolicy": ["read"]},
    "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"]},
    "team/**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]},
    "bob/**": {"policies": [{"users": ["bob"], "actions": ["read", "create", "update"]}]}
  },
  "adminPolicy": {"users": ["admin"], "actions": ["read", "create", "update", "delete"]}
}"#;

/// A registry with users and rules, or `None` when htpasswd is missing.
struct Secured {
    server: OciServe,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Secured {
    fn start(extra: &[&str]) -> Option<Secured> {
        let dir = temp_dir();
        let users: Vec<(&str, &str)> = USERS.iter().map(|u| (*u, "pw")).collect();
        ocikit_e2e::basic_auth::registry_yaml(dir.path(), &users)?;
        let config = dir.path().join("zot.json");
        let root = dir.path().join("root");
        std::fs::write(
            &config,
            format!(
                r#"{{"storage": {{"rootDirectory": "{}"}},
                    "http": {{"address": "127.0.0.1", "port": "0", "realm": "ocikit-test",
                             "auth": {{"htpasswd": {{"path": "{}"}}}},
                             "accessControl": {RULES}}}}}"#,
                root.display(),
                dir.path().join("htpasswd").display()
            ),
        )
        .expect("config");
        let server = serve_config(&root, &config, extra);
        Some(Secured {
            server,
            dir,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        })
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    /// Stops the server (as a crash would) and starts it again over the
    /// same root and config, on a new port.
    fn restart(&mut self) {
        self.server.kill();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.server = serve_config(&self.root(), &self.dir.path().join("zot.json"), &extra);
    }

    fn as_user(&self, user: &str) -> Http {
        Http::new(&self.server).with_creds(user, "pw")
    }

    fn anonymous(&self) -> Http {
        Http::new(&self.server)
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}

fn error_code(r: Response) -> String {
    let text = body(r);
    let json: serde_json::Value = serde_json::from_str(text.split_once(": ").map_or("", |t| t.1))
        .unwrap_or_else(|e| panic!("not a spec error body ({e}): {text}"));
    json["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

mod users {
    use super::*;

    #[test]
    fn writes_need_credentials_and_the_right_user() {
        let Some(reg) = Secured::start(&[]) else {
            return;
        };
        let anon = reg.anonymous();
        let r = anon.send(anon.req("POST", "/v2/team/app/blobs/uploads/"));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, "www-authenticate"),
            "Basic realm=\"ocikit-test\""
        );
        assert_eq!(error_code(r), "UNAUTHORIZED");

        let wrong = Http::new(&reg.server).with_creds("alice", "not-pw");
        let r = wrong.send(wrong.req("POST", "/v2/team/app/blobs/uploads/"));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key("www-authenticate"));
        let unknown = Http::new(&reg.server).with_creds("mallory", "pw");
        assert_eq!(
            unknown.get("/v2/public/x/tags/list").status(),
            StatusCode::UNAUTHORIZED
        );

        // bob is a user, but team/** is alice's: 403, not 401.
        let r = reg.as_user("bob").send(
            reg.as_user("bob")
                .req("POST", "/v2/team/app/blobs/uploads/"),
        );
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(r), "DENIED");

        let alice = reg.as_user("alice");
        let (r, _) = alice.push_image("team/app", "v1", "first");
        assert_eq!(r.status(), StatusCode::CREATED, "{}", body(r));
        // Re-pushing the same manifest under the same tag is no update.
        let (r, _) = alice.push_image("team/app", "v1", "first");
        assert_eq!(r.status(), StatusCode::CREATED, "{}", body(r));
        // Moving the tag is an update, which alice may not do; a new tag is fine.
        let (r, _) = alice.push_image("team/app", "v1", "second");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", body(r));
        let (r, digest) = alice.push_image("team/app", "v2", "second");
        assert_eq!(r.status(), StatusCode::CREATED, "{}", body(r));
        // bob owns bob/** with update.
        let bob = reg.as_user("bob");
        assert_eq!(
            bob.push_image("bob/y", "v1", "b1").0.status(),
            StatusCode::CREATED
        );
        assert_eq!(
            bob.push_image("bob/y", "v1", "b2").0.status(),
            StatusCode::CREATED
        );

        // Deleting needs delete: alice may not, admin may.
        let path = format!("/v2/team/app/manifests/{digest}");
        assert_eq!(
            alice.send(alice.req("DELETE", &path)).status(),
            StatusCode::FORBIDDEN
        );
        let admin = reg.as_user("admin");
        assert_eq!(
            admin.send(admin.req("DELETE", &path)).status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(alice.get(&path).status(), StatusCode::NOT_FOUND);

        // Reads: anonymous is refused with a challenge, the ping too.
        let r = anon.get("/v2/team/app/manifests/v1");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = anon.get("/v2/");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, "www-authenticate"),
            "Basic realm=\"ocikit-test\""
        );
        assert_eq!(alice.get("/v2/").status(), StatusCode::OK);
    }

    #[test]
    fn reads_catalog_tags_and_referrers_follow_the_rules() {
        let Some(reg) = Secured::start(&[]) else {
            return;
        };
        let admin = reg.as_user("admin");
        for repo in ["team/app", "public/x", "bob/y"] {
            let (r, _) = admin.push_image(repo, "v1", repo);
            assert_eq!(r.status(), StatusCode::CREATED, "{repo}: {}", body(r));
        }
        let catalog = |http: &Http| -> serde_json::Value {
            let r = http.get("/v2/_catalog");
            assert_eq!(r.status(), StatusCode::OK);
            json(r)["repositories"].clone()
        };
        assert_eq!(
            catalog(&reg.as_user("admin")),
            serde_json::json!(["bob/y", "public/x", "team/app"])
        );
        assert_eq!(
            catalog(&reg.as_user("bob")),
            serde_json::json!(["bob/y", "public/x"])
        );
        assert_eq!(
            catalog(&reg.as_user("alice")),
            serde_json::json!(["public/x", "team/app"]),
            "alice may not read bob/**"
        );
        assert_eq!(catalog(&reg.anonymous()), serde_json::json!(["public/x"]));

        let bob = reg.as_user("bob");
        let anon = reg.anonymous();
        let (_, digest) = admin.push_image("team/app", "v1", "team/app");
        for path in [
            "/v2/team/app/tags/list".to_owned(),
            format!("/v2/team/app/referrers/{digest}"),
            "/v2/team/app/manifests/v1".to_owned(),
            format!("/v2/team/app/manifests/{digest}"),
            "/v2/team/nonexistent/tags/list".to_owned(),
        ] {
            let r = bob.get(&path);
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "bob {path}");
            assert_eq!(error_code(r), "DENIED");
            let r = anon.get(&path);
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "anonymous {path}");
        }
        let r = anon.get("/v2/public/x/tags/list");
        assert_eq!(r.status(), StatusCode::OK, "anonymous policy");
        assert_eq!(
            bob.send(bob.req("HEAD", "/v2/public/x/manifests/v1"))
                .status(),
            StatusCode::OK
        );
    }

    /// zot's CVE-2024-39897: a mount from a repository the user may not read
    /// must not hand over the blob; neither may any other dedupe path.
    #[test]
    fn mounts_and_dedupe_never_leak_unreadable_blobs() {
        let Some(reg) = Secured::start(&[]) else {
            return;
        };
        let alice = reg.as_user("alice");
        let secret = b"alice's secret layer".to_vec();
        let (status, digest) = alice.push_blob("team/app", &secret);
        assert_eq!(status, StatusCode::CREATED);

        let bob = reg.as_user("bob");
        let r = bob.send(bob.req(
            "POST",
            &format!("/v2/bob/y/blobs/uploads/?mount={digest}&from=team/app"),
        ));
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "an upload session, never 201"
        );
        assert!(header(&r, "location").starts_with("/v2/bob/y/blobs/uploads/"));
        let blob = format!("/v2/bob/y/blobs/{digest}");
        assert_eq!(
            bob.send(bob.req("HEAD", &blob)).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(bob.get(&blob).status(), StatusCode::NOT_FOUND);

        // Single-POST with the digest but other bytes: refused, nothing linked.
        let r = bob.send(
            bob.req("POST", &format!("/v2/bob/y/blobs/uploads/?digest={digest}"))
                .body(b"guess".to_vec()),
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(r), "DIGEST_INVALID");
        // A session finished with the digest and no bytes: refused too.
        let r = bob.send(bob.req("POST", "/v2/bob/y/blobs/uploads/"));
        let location = header(&r, "location");
        let r = bob.send(bob.req("PUT", &format!("{location}?digest={digest}")));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(bob.get(&blob).status(), StatusCode::NOT_FOUND);
        // A manifest naming the blob cannot pull it in either.
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest.to_string(), "size": secret.len()},
            "layers": []
        }))
        .expect("json");
        let r = bob.send(
            bob.req("PUT", "/v2/bob/y/manifests/steal")
                .header("content-type", OCI_MANIFEST)
                .body(manifest),
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(r), "MANIFEST_BLOB_UNKNOWN");

        // Whoever has the bytes may push them (dedupe stores one copy), and a
        // reader of the source may mount.
        let (status, _) = bob.push_blob("bob/y", &secret);
        assert_eq!(status, StatusCode::CREATED);
        let r = alice.send(alice.req(
            "POST",
            &format!("/v2/team/other/blobs/uploads/?mount={digest}&from=team/app"),
        ));
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    /// A policy naming a group admits its members only, and `ops/*` is one
    /// level deep (`ops/a/b` falls back to `**`).
    #[test]
    fn groups_and_single_level_globs() {
        let Some(reg) = Secured::start(&[]) else {
            return;
        };
        let (bob, alice) = (reg.as_user("bob"), reg.as_user("alice"));
        let (r, _) = bob.push_image("ops/app", "v1", "group");
        assert_eq!(r.status(), StatusCode::CREATED, "{}", body(r));
        assert_eq!(bob.get("/v2/ops/app/manifests/v1").status(), StatusCode::OK);
        let r = alice.send(alice.req("POST", "/v2/ops/app/blobs/uploads/"));
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "alice is not in ops");
        assert_eq!(
            alice.get("/v2/ops/app/manifests/v1").status(),
            StatusCode::FORBIDDEN,
            "nor may she read it"
        );
        let r = bob.send(bob.req("POST", "/v2/ops/app/deep/blobs/uploads/"));
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "ops/* is one level");
        let catalog = json(alice.get("/v2/_catalog"));
        assert!(
            !catalog["repositories"]
                .as_array()
                .expect("list")
                .iter()
                .any(|r| r == "ops/app"),
            "{catalog}"
        );
    }

    #[test]
    fn bearer_tokens_from_the_token_endpoint() {
        let Some(reg) = Secured::start(&["--auth-challenge", "bearer"]) else {
            return;
        };
        let anon = reg.anonymous();
        let r = anon.send(anon.req("POST", "/v2/team/app/blobs/uploads/"));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, "www-authenticate"),
            format!(
                "Bearer realm=\"http://{}/auth/token\",service=\"ocikit-test\",scope=\"repository:team/app:pull,push\"",
                reg.server.addr
            )
        );
        let token_url = "/auth/token?service=ocikit-test&scope=repository:team/app:pull,push";
        let r = reg.as_user("alice").get(token_url);
        assert_eq!(r.status(), StatusCode::OK);
        let answer = json(r);
        let token = answer["token"].as_str().expect("token").to_owned();
        assert_eq!(answer["access_token"], answer["token"]);
        assert!(answer["expires_in"].as_u64().is_some_and(|s| s > 0));
        let r = Http::new(&reg.server)
            .with_creds("alice", "wrong")
            .get(token_url);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // The token stands for alice.
        let r = anon.send(
            anon.req("POST", "/v2/team/app/blobs/uploads/")
                .bearer_auth(&token),
        );
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let r = anon.send(
            anon.req("POST", "/v2/team/app/blobs/uploads/")
                .bearer_auth(format!("{token}x")),
        );
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // An anonymous token reads what anonymous may read, nothing more.
        let anonymous_token = json(anon.get("/auth/token?scope=repository:public/x:pull"));
        let t = anonymous_token["token"].as_str().expect("token");
        let r = anon.send(anon.req("GET", "/v2/team/app/tags/list").bearer_auth(t));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn bearer_tokens_outlive_a_restart_and_gc_and_scrub() {
        use std::os::unix::fs::PermissionsExt as _;
        let Some(mut reg) = Secured::start(&["--auth-challenge", "bearer"]) else {
            return;
        };
        let token_url = "/auth/token?service=ocikit-test&scope=repository:team/app:pull,push";
        let answer = json(reg.as_user("alice").get(token_url));
        let token = answer["token"].as_str().expect("token").to_owned();
        let key_file = reg.root().join("_ocikit/token.key");
        let key = std::fs::read(&key_file).expect("the key is kept in the root");
        let mode = std::fs::metadata(&key_file)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let push = |reg: &Secured| {
            let anon = reg.anonymous();
            anon.send(
                anon.req("POST", "/v2/team/app/blobs/uploads/")
                    .bearer_auth(&token),
            )
            .status()
        };
        assert_eq!(push(&reg), StatusCode::ACCEPTED);
        reg.restart();
        assert_eq!(
            push(&reg),
            StatusCode::ACCEPTED,
            "the token outlived a restart"
        );

        // GC and scrub of the root leave the key alone.
        let (r, _) = reg.as_user("alice").push_image("team/app", "v1", "token");
        assert_eq!(r.status(), StatusCode::CREATED);
        reg.server.kill();
        let root = reg.root().display().to_string();
        for args in [
            vec!["gc", "--root", &root, "--grace", "0s", "--delete-untagged"],
            vec!["scrub", "--root", &root],
        ] {
            let out = tool("oci-serve").args(&args).output().expect("run");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !String::from_utf8_lossy(&out.stderr).contains("token.key"),
                "{args:?} looked at the key"
            );
            assert_eq!(
                std::fs::read(&key_file).expect("still there"),
                key,
                "{args:?}"
            );
        }
        reg.restart();
        assert_eq!(push(&reg), StatusCode::ACCEPTED);

        // Deleting the key revokes every token at the next start.
        std::fs::remove_file(&key_file).expect("rm");
        reg.restart();
        assert_eq!(push(&reg), StatusCode::UNAUTHORIZED);
        assert_ne!(std::fs::read(&key_file).expect("a new key"), key);

        // A damaged key is an error naming the file and the fix.
        reg.server.kill();
        std::fs::write(&key_file, "garbage").expect("damage");
        let out = tool("oci-serve")
            .args([
                "serve",
                &reg.dir.path().join("zot.json").display().to_string(),
            ])
            .timeout(Duration::from_secs(20))
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&key_file.display().to_string())
                && stderr.contains("delete the file and restart"),
            "{stderr}"
        );
    }

    #[test]
    fn htpasswd_changes_apply_without_a_restart() {
        let Some(reg) = Secured::start(&["--auth-challenge", "bearer"]) else {
            return;
        };
        let ping = |user: &str, password: &str| {
            Http::new(&reg.server)
                .with_creds(user, password)
                .get("/v2/")
                .status()
        };
        assert_eq!(ping("carol", "pw"), StatusCode::UNAUTHORIZED);
        assert_eq!(ping("alice", "pw"), StatusCode::OK, "and remembered");
        let token_url = "/auth/token?service=ocikit-test&scope=repository:bob/app:pull,push";
        let bob_token = json(reg.as_user("bob").get(token_url))["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let with_token = |token: &str| {
            let anon = reg.anonymous();
            anon.send(
                anon.req("POST", "/v2/bob/app/blobs/uploads/")
                    .bearer_auth(token),
            )
            .status()
        };
        assert_eq!(with_token(&bob_token), StatusCode::ACCEPTED);

        // carol arrives, bob leaves, alice changes her password.
        ocikit_e2e::basic_auth::registry_yaml(
            reg.dir.path(),
            &[("alice", "new"), ("admin", "pw"), ("carol", "pw")],
        )
        .expect("htpasswd");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ping("carol", "pw") != StatusCode::OK {
            assert!(
                std::time::Instant::now() < deadline,
                "the new user never got in:\n{}",
                reg.server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(ping("bob", "pw"), StatusCode::UNAUTHORIZED, "removed");
        assert_eq!(
            with_token(&bob_token),
            StatusCode::UNAUTHORIZED,
            "and his token"
        );
        assert_eq!(
            ping("alice", "pw"),
            StatusCode::UNAUTHORIZED,
            "the old password, though remembered, is refused"
        );
        assert_eq!(ping("alice", "new"), StatusCode::OK);

        // A broken file keeps the users there were and says what is wrong.
        let file = reg.dir.path().join("htpasswd");
        std::fs::write(
            &file,
            "admin:$2y$05$abcdefghijklmnopqrstuu\nalice:plaintext\n",
        )
        .expect("break");
        let words = format!("{}:2: not a bcrypt entry", file.display());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !reg.server.log().contains(&words) {
            assert!(
                std::time::Instant::now() < deadline,
                "no error naming the line:\n{}",
                reg.server.log()
            );
            let _ = ping("alice", "new");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            reg.server.log().contains("keeping the previous users"),
            "{}",
            reg.server.log()
        );
        assert_eq!(ping("alice", "new"), StatusCode::OK);
        assert_eq!(ping("carol", "pw"), StatusCode::OK);
        assert_eq!(ping("bob", "pw"), StatusCode::UNAUTHORIZED);
    }

    fn skopeo(args: &[&str]) -> std::process::Output {
        std::process::Command::new("skopeo")
            .args(args)
            .output()
            .expect("skopeo")
    }

    #[test]
    fn skopeo_with_creds_and_an_auth_file() {
        if require("skopeo").is_none() {
            return;
        }
        for challenge in ["basic", "bearer"] {
            let Some(reg) = Secured::start(&["--auth-challenge", challenge]) else {
                return;
            };
            let image = small_image(&reg.dir.path().join("src"), "v1");
            let src = format!("oci:{}:v1", reg.dir.path().join("src").display());
            let dest = reg.url("team/app:v1");
            let out = skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]);
            assert!(
                !out.status.success(),
                "{challenge}: anonymous push must fail"
            );
            let out = skopeo(&[
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "bob:pw",
                &src,
                &dest,
            ]);
            assert!(
                !out.status.success(),
                "{challenge}: bob may not push to team/**"
            );
            let out = skopeo(&[
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:pw",
                &src,
                &dest,
            ]);
            assert!(
                out.status.success(),
                "{challenge}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // An auth file as podman login writes it.
            let authfile = reg.dir.path().join("auth.json");
            let auth = base64_std(b"alice:pw");
            std::fs::write(
                &authfile,
                format!(
                    r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
                    reg.server.addr
                ),
            )
            .expect("auth file");
            let out = skopeo(&[
                "inspect",
                "--tls-verify=false",
                "--authfile",
                &authfile.display().to_string(),
                &dest,
            ]);
            assert!(
                out.status.success(),
                "{challenge}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            assert_eq!(summary["Digest"], image.digest);
        }
    }

    fn base64_std(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn oci_copy_with_basic_and_token_auth() {
        for challenge in ["basic", "bearer"] {
            let Some(reg) = Secured::start(&["--auth-challenge", challenge]) else {
                return;
            };
            let image = small_image(&reg.dir.path().join("src"), "v1");
            let src = format!("oci:{}:v1", reg.dir.path().join("src").display());
            let dest = reg.url("team/app:v1");
            let out = tool("oci-copy").args([&src, &dest]).output().expect("run");
            assert!(
                !out.status.success(),
                "{challenge}: anonymous push must fail"
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("401"), "{challenge}: {stderr}");
            tool("oci-copy")
                .args([&src, &dest, "--dest-creds", "alice:pw"])
                .assert()
                .success();
            let back = reg.dir.path().join("back");
            let out = tool("oci-copy")
                .args([
                    &dest,
                    &format!("oci:{}:v1", back.display()),
                    "--src-creds",
                    "bob:pw",
                ])
                .output()
                .expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains("403"),
                "{challenge}: {stderr}"
            );
            let out = tool("oci-copy")
                .args([
                    &dest,
                    &format!("oci:{}:v1", back.display()),
                    "--src-creds",
                    "admin:pw",
                ])
                .assert()
                .success();
            let line = String::from_utf8_lossy(&out.get_output().stdout).to_string();
            assert!(line.contains(&image.digest), "{challenge}: {line}");
        }
    }

    #[test]
    fn curl_with_and_without_credentials() {
        let Some(curl) = require("curl") else { return };
        let Some(reg) = Secured::start(&[]) else {
            return;
        };
        let (r, _) = reg.as_user("admin").push_image("team/app", "v1", "curl");
        assert_eq!(r.status(), StatusCode::CREATED);
        let url = format!("http://{}/v2/team/app/tags/list", reg.server.addr);
        let run = |extra: &[&str]| {
            let out = std::process::Command::new(&curl)
                .args(["-s", "-i"])
                .args(extra)
                .arg(&url)
                .output()
                .expect("curl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let answer = run(&[]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(
            answer
                .to_lowercase()
                .contains("www-authenticate: basic realm=\"ocikit-test\""),
            "{answer}"
        );
        let answer = run(&["-u", "alice:pw"]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""tags":["v1"]"#), "{answer}");
        let answer = run(&["-u", "bob:pw"]);
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        let answer = run(&["-u", "alice:nope"]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }

    #[test]
    fn a_bad_htpasswd_file_is_an_error_naming_its_line() {
        let dir = temp_dir();
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, "alice:$apr1$weak$hash\n").expect("htpasswd");
        let config = dir.path().join("zot.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"http": {{"port": "0", "auth": {{"htpasswd": {{"path": "{}"}}}}}}}}"#,
                htpasswd.display()
            ),
        )
        .expect("config");
        let out = tool("oci-serve")
            .args(["serve", &config.display().to_string()])
            .args(["--root", &dir.path().join("root").display().to_string()])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("htpasswd:1") && stderr.contains("htpasswd -B"),
            "{stderr}"
        );
    }
}

mod tls {
    use super::*;
    use ocikit_e2e::pki::TestCa;
    use std::path::PathBuf;

    /// A CA, a server certificate for 127.0.0.1 and an oci-serve config
    /// serving it (with `extra_http` JSON members in `http`).
    struct TlsServer {
        server: OciServe,
        ca: TestCa,
        cert: PathBuf,
        key: PathBuf,
        dir: tempfile::TempDir,
    }

    impl TlsServer {
        fn start(client_ca: bool, extra_http: &str) -> Option<TlsServer> {
            require("curl")?;
            let dir = temp_dir();
            let ca = TestCa::new(&dir.path().join("ca"))?;
            let (issued_cert, issued_key) = ca.issue("server");
            // Serve copies, so a test can overwrite them with a renewal.
            let cert = dir.path().join("server.pem");
            let key = dir.path().join("server.key");
            std::fs::copy(issued_cert, &cert).expect("cert");
            std::fs::copy(issued_key, &key).expect("key");
            let cacert = if client_ca {
                format!(r#", "cacert": "{}""#, ca.cert.display())
            } else {
                String::new()
            };
            let root = dir.path().join("root");
            let config = dir.path().join("zot.json");
            std::fs::write(
                &config,
                format!(
                    r#"{{"storage": {{"rootDirectory": "{}"}},
                        "http": {{"address": "127.0.0.1", "port": "0",
                                 "tls": {{"cert": "{}", "key": "{}"{cacert}}}{extra_http}}}}}"#,
                    root.display(),
                    cert.display(),
                    key.display()
                ),
            )
            .expect("config");
            let server = serve_config(&root, &config, &[]);
            Some(TlsServer {
                server,
                ca,
                cert,
                key,
                dir,
            })
        }

        /// curl against `path`: (exit success, stdout with headers, stderr).
        fn curl(&self, path: &str, extra: &[&str]) -> (bool, String, String) {
            let out = std::process::Command::new("curl")
                .args(["-s", "-S", "-i", "-v", "--cacert"])
                .arg(&self.ca.cert)
                .args(extra)
                .arg(format!("https://{}{path}", self.server.addr))
                .output()
                .expect("curl");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    }

    #[test]
    fn https_with_the_certificate_reloaded_when_renewed() {
        let Some(tls) = TlsServer::start(false, "") else {
            return;
        };
        let (ok, out, err) = tls.curl("/v2/", &[]);
        assert!(ok && out.starts_with("HTTP/2 200"), "{out}\n{err}");
        assert!(err.contains("CN=server"), "{err}");
        // Plain HTTP on the TLS port gets nowhere.
        let plain = Http::at(&format!("http://{}", tls.server.addr));
        assert!(plain
            .req("GET", "/v2/")
            .send()
            .map_or(true, |r| r.status() != StatusCode::OK));

        // A renewal written over the files is served without a restart.
        let (renewed_cert, renewed_key) = tls.ca.issue("renewed");
        std::fs::copy(renewed_key, &tls.key).expect("key");
        std::fs::copy(renewed_cert, &tls.cert).expect("cert");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (ok, _, err) = tls.curl("/v2/", &[]);
            if ok && err.contains("CN=renewed") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never reloaded: {err}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        // A broken renewal keeps the working certificate.
        std::fs::write(&tls.cert, "not a certificate").expect("break");
        std::thread::sleep(Duration::from_millis(1200));
        let (ok, _, err) = tls.curl("/v2/", &[]);
        assert!(ok && err.contains("CN=renewed"), "{err}");
    }

    #[test]
    fn client_certificates_are_required_and_name_the_user() {
        let rules = r#", "accessControl": {"repositories": {"**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]}}}"#;
        let Some(tls) = TlsServer::start(true, rules) else {
            return;
        };
        let (ok, out, err) = tls.curl("/v2/", &[]);
        assert!(
            !ok,
            "no client certificate must fail the handshake: {out}\n{err}"
        );
        let (alice_cert, alice_key) = tls.ca.issue("alice");
        let (eve_cert, eve_key) = tls.ca.issue("eve");
        let as_cert = |cert: &Path, key: &Path, path: &str| {
            tls.curl(
                path,
                &[
                    "--cert",
                    &cert.display().to_string(),
                    "--key",
                    &key.display().to_string(),
                ],
            )
        };
        let (ok, out, err) = as_cert(&alice_cert, &alice_key, "/v2/");
        assert!(ok && out.starts_with("HTTP/2 200"), "{out}\n{err}");
        let (_, out, _) = as_cert(&alice_cert, &alice_key, "/v2/app/tags/list");
        assert!(
            out.starts_with("HTTP/2 404"),
            "alice may read, app is missing: {out}"
        );
        let (_, out, _) = as_cert(&eve_cert, &eve_key, "/v2/app/tags/list");
        assert!(out.starts_with("HTTP/2 403"), "eve may not read: {out}");
        // A certificate from another CA is refused.
        let other = TestCa::new(&tls.dir.path().join("other-ca")).expect("ca");
        let (mallory_cert, mallory_key) = other.issue("alice");
        let (ok, _, _) = as_cert(&mallory_cert, &mallory_key, "/v2/");
        assert!(!ok, "a certificate of another CA");
    }

    #[test]
    fn oci_copy_pushes_over_mutual_tls_with_a_cert_dir() {
        let Some(tls) = TlsServer::start(true, "") else {
            return;
        };
        let image = small_image(&tls.dir.path().join("src"), "v1");
        let src = format!("oci:{}:v1", tls.dir.path().join("src").display());
        let dest = tls.server.url("app:v1");
        let certs = tls.dir.path().join("certs.d");
        std::fs::create_dir_all(&certs).expect("dir");
        std::fs::copy(&tls.ca.cert, certs.join("ca.crt")).expect("ca");
        let out = tool("oci-copy")
            .args([&src, &dest, "--dest-tls-verify"])
            .args(["--dest-cert-dir", &certs.display().to_string()])
            .output()
            .expect("run");
        assert!(
            !out.status.success(),
            "no client certificate in the cert dir"
        );
        let (cert, key) = tls.ca.issue("pusher");
        std::fs::copy(cert, certs.join("client.cert")).expect("cert");
        std::fs::copy(key, certs.join("client.key")).expect("key");
        let out = tool("oci-copy")
            .args([&src, &dest, "--dest-tls-verify"])
            .args(["--dest-cert-dir", &certs.display().to_string()])
            .assert()
            .success();
        let line = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        assert!(line.contains(&image.digest), "{line}");
    }

    /// containerd trusts oci-serve's test CA through a `hosts.toml` in its
    /// private config dir, as a cluster node would, and refuses it without.
    #[test]
    fn containerd_pulls_over_tls_with_the_ca_in_hosts_toml() {
        let Some(layer) = ocikit_e2e::fixtures::busybox_layer() else {
            return;
        };
        let Some(tls) = TlsServer::start(false, "") else {
            return;
        };
        let Some(containerd) = ocikit_e2e::peers::Containerd::start() else {
            return;
        };
        let src = tls.dir.path().join("src");
        let image = ocikit_e2e::fixtures::image_from_tars(&src, "v1", &[layer], true);
        let certs = tls.dir.path().join("certs.d");
        std::fs::create_dir_all(&certs).expect("dir");
        std::fs::copy(&tls.ca.cert, certs.join("ca.crt")).expect("ca");
        tool("oci-copy")
            .args([
                &format!("oci:{}:v1", src.display()),
                &tls.server.url("tls/busybox:v1"),
                "--dest-tls-verify",
            ])
            .args(["--dest-cert-dir", &certs.display().to_string()])
            .assert()
            .success();
        let reference = format!("{}/tls/busybox:v1", tls.server.addr);

        let untrusted = containerd
            .ctr()
            .args(["image", "pull", &reference])
            .output()
            .expect("ctr pull");
        assert!(
            !untrusted.status.success(),
            "containerd pulled without trusting the test CA"
        );

        let hosts = containerd.dir.path().join("certs.d");
        let host = hosts.join(&tls.server.addr);
        std::fs::create_dir_all(&host).expect("hosts dir");
        std::fs::write(
            host.join("hosts.toml"),
            format!(
                "server = \"https://{addr}\"\n\n[host.\"https://{addr}\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]\n  ca = \"{ca}\"\n",
                addr = tls.server.addr,
                ca = tls.ca.cert.display()
            ),
        )
        .expect("hosts.toml");
        let pulled = containerd
            .ctr()
            .args(["image", "pull", "--hosts-dir"])
            .arg(&hosts)
            .arg(&reference)
            .output()
            .expect("ctr pull");
        assert!(
            pulled.status.success(),
            "ctr image pull over TLS: {}\n{}\ncontainerd log:\n{}",
            String::from_utf8_lossy(&pulled.stdout),
            String::from_utf8_lossy(&pulled.stderr),
            containerd.log()
        );
        let listed = containerd
            .ctr()
            .args(["image", "ls"])
            .output()
            .expect("ctr image ls");
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed
                .lines()
                .any(|l| l.contains(&reference) && l.contains(&image.digest)),
            "{listed}"
        );
    }

    #[test]
    fn bad_tls_files_are_errors_naming_them() {
        let dir = temp_dir();
        let config = dir.path().join("zot.json");
        std::fs::write(
            &config,
            r#"{"http": {"port": "0", "tls": {"cert": "/nonexistent/server.pem", "key": "/nonexistent/server.key"}}}"#,
        )
        .expect("config");
        let out = tool("oci-serve")
            .args(["serve", &config.display().to_string()])
            .args(["--root", &dir.path().join("root").display().to_string()])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("/nonexistent/server.pem"), "{stderr}");
    }
}

mod gc {
    use super::*;

    /// An image manifest with `config` and `layers` (digest, size), and a subject.
    fn manifest(
        config: (&Digest, usize),
        layers: &[(&Digest, usize)],
        subject: Option<&Digest>,
    ) -> Vec<u8> {
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.0.to_string(), "size": config.1},
            "layers": layers.iter().map(|(d, s)| serde_json::json!(
                {"mediaType": OCI_LAYER, "digest": d.to_string(), "size": s})).collect::<Vec<_>>(),
        });
        if let Some(subject) = subject {
            m["subject"] = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": 1});
            m["artifactType"] = serde_json::json!("application/vnd.example.sbom");
        }
        serde_json::to_vec(&m).expect("json")
    }

    fn put(http: &Http, name: &str, reference: &str, body: &[u8]) -> Digest {
        let r = http.send(
            http.req("PUT", &format!("/v2/{name}/manifests/{reference}"))
                .header("content-type", OCI_MANIFEST)
                .body(body.to_vec()),
        );
        assert_eq!(r.status(), StatusCode::CREATED, "{}", body_text(r));
        Digest::sha256_of(body)
    }

    fn body_text(r: Response) -> String {
        body(r)
    }

    /// An image of fresh blobs pushed to `name`, by `reference`.
    fn image(
        http: &Http,
        name: &str,
        reference: &str,
        seed: &str,
        subject: Option<&Digest>,
    ) -> (Digest, Vec<Digest>) {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let layer = format!("layer {seed}");
        let (s1, c) = http.push_blob(name, config.as_bytes());
        let (s2, l) = http.push_blob(name, layer.as_bytes());
        assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
        let body = manifest((&c, config.len()), &[(&l, layer.len())], subject);
        let reference = if reference.is_empty() {
            Digest::sha256_of(&body).to_string()
        } else {
            reference.to_owned()
        };
        (put(http, name, &reference, &body), vec![c, l])
    }

    fn gc_run(root: &Path, extra: &[&str]) -> serde_json::Value {
        let out = tool("oci-serve")
            .args(["gc", "--root", &root.display().to_string()])
            .args(extra)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON report")
    }

    fn scrub(root: &Path) -> (Option<i32>, serde_json::Value, String) {
        let out = tool("oci-serve")
            .args(["scrub", "--root", &root.display().to_string()])
            .output()
            .expect("run");
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn offline_gc_keeps_tagged_untagged_and_referrers_then_scrub() {
        let dir = temp_dir();
        let root = dir.path().join("root");
        let mut server = OciServe::start_at(&root, &[]);
        let http = Http::new(&server);
        let (tagged, tagged_blobs) = image(&http, "app", "v1", "tagged", None);
        let (untagged, untagged_blobs) = image(&http, "app", "", "untagged", None);
        let (signature, _) = image(&http, "app", "", "signature", Some(&tagged));
        let (orphan_sbom, _) = image(&http, "app", "", "orphan", Some(&untagged));
        let (_, garbage) = http.push_blob("app", b"nobody refers to me");

        // One process owns a root: no offline GC under a running server.
        let out = tool("oci-serve")
            .args(["gc", "--root", &root.display().to_string()])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("in use by another oci-serve"), "{stderr}");
        server.kill();

        let garbage_path = root.join("app/blobs/sha256").join(garbage.hex());
        let report = gc_run(&root, &["--grace", "0s", "--dry-run"]);
        assert_eq!(report["dryRun"], true);
        assert_eq!(report["blobs"], 1, "{report}");
        assert_eq!(report["manifests"], serde_json::json!([]));
        assert!(garbage_path.is_file(), "a dry run removes nothing");

        let report = gc_run(&root, &[]);
        assert_eq!(
            report["blobs"], 0,
            "younger than the default grace: {report}"
        );
        let report = gc_run(&root, &["--grace", "0s"]);
        assert_eq!(report["blobs"], 1, "{report}");
        assert!(
            report["storedBlobs"].as_u64().is_some_and(|n| n >= 1),
            "{report}"
        );
        assert!(!garbage_path.exists());
        assert!(root.join("app/blobs/sha256").join(untagged.hex()).is_file());

        let report = gc_run(&root, &["--grace", "0s", "--delete-untagged"]);
        let mut removed: Vec<String> = report["manifests"]
            .as_array()
            .expect("list")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect();
        removed.sort();
        let mut want = vec![format!("app@{untagged}"), format!("app@{orphan_sbom}")];
        want.sort();
        assert_eq!(removed, want, "the signature of the tagged image stays");
        for kept in [&tagged, &signature].into_iter().chain(&tagged_blobs) {
            assert!(
                root.join("app/blobs/sha256").join(kept.hex()).is_file(),
                "{kept}"
            );
        }
        for gone in &untagged_blobs {
            assert!(
                !root.join("app/blobs/sha256").join(gone.hex()).exists(),
                "{gone}"
            );
        }
        let (code, report, stderr) = scrub(&root);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(report["problems"], serde_json::json!([]));

        // Everything the server answers afterwards is complete.
        let server = OciServe::start_at(&root, &[]);
        let http = Http::new(&server);
        assert_eq!(http.get("/v2/app/manifests/v1").status(), StatusCode::OK);
        let referrers = json(http.get(&format!("/v2/app/referrers/{tagged}")));
        assert_eq!(referrers["manifests"][0]["digest"], signature.to_string());
        assert_eq!(
            http.get(&format!("/v2/app/manifests/{untagged}")).status(),
            StatusCode::NOT_FOUND
        );
        drop(server);

        // Corruption is found, named, and fails the exit code.
        let layer = root.join("app/blobs/sha256").join(tagged_blobs[1].hex());
        std::fs::write(&layer, "flipped bits").expect("corrupt");
        let (code, report, stderr) = scrub(&root);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&tagged_blobs[1].hex().to_string()),
            "{stderr}"
        );
        assert!(!report["problems"].as_array().expect("list").is_empty());
        let out = tool("oci-serve")
            .args(["scrub", "--root", &dir.path().display().to_string()])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "not a root");
        let out = tool("oci-serve")
            .args(["gc", "--root", "/tmp", "--grace", "soon"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration \"soon\""));
    }

    /// The issue's test: GC running during 20 concurrent pushes; afterwards
    /// every acknowledged image is complete and scrub is clean.
    #[test]
    fn online_gc_during_twenty_concurrent_pushes() {
        let dir = temp_dir();
        let root = dir.path().join("root");
        let config = dir.path().join("zot.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"storage": {{"rootDirectory": "{}", "gc": true, "gcDelay": "4s", "gcInterval": "100ms"}},
                    "http": {{"address": "127.0.0.1", "port": "0"}}}}"#,
                root.display()
            ),
        )
        .expect("config");
        let mut server = serve_config(&root, &config, &[]);
        let http = Http::new(&server);
        let (_, garbage) = http.push_blob("junk/a", b"garbage to collect");
        // A base image whose layer every pushed image mounts: referenced, so kept.
        let (_, shared) = http.push_blob("base/layers", b"a base layer every image shares");
        let (_, base_config) = http.push_blob("base/layers", b"{}");
        put(
            &http,
            "base/layers",
            "v1",
            &manifest((&base_config, 2), &[(&shared, 31)], None),
        );
        std::thread::sleep(Duration::from_millis(4500));

        let addr = server.addr.clone();
        let pushers: Vec<_> = (0..20)
            .map(|i| {
                let addr = addr.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let http = Http::at(&format!("http://{addr}"));
                    let name = format!("gc/app{i}");
                    let mut images = Vec::new();
                    for round in 0..3 {
                        let config = format!("{{\"image\":{i},\"round\":{round}}}");
                        let layer = format!("layer {i} {round}").repeat(100);
                        let (s1, c) = http.push_blob(&name, config.as_bytes());
                        let (s2, l) = http.push_blob(&name, layer.as_bytes());
                        // The old shared layer by mount (its link is old).
                        let r = http.send(http.req(
                            "POST",
                            &format!("/v2/{name}/blobs/uploads/?mount={shared}&from=base/layers"),
                        ));
                        assert_eq!(
                            (s1, s2, r.status()),
                            (
                                StatusCode::CREATED,
                                StatusCode::CREATED,
                                StatusCode::CREATED
                            )
                        );
                        let body = manifest(
                            (&c, config.len()),
                            &[(&l, layer.len()), (&shared, 31)],
                            None,
                        );
                        let tag = format!("r{round}");
                        let r = http.send(
                            http.req("PUT", &format!("/v2/{name}/manifests/{tag}"))
                                .header("content-type", OCI_MANIFEST)
                                .body(body.clone()),
                        );
                        if r.status() == StatusCode::CREATED {
                            images.push((
                                name.clone(),
                                tag,
                                Digest::sha256_of(&body),
                                vec![c, l, shared.clone()],
                            ));
                        } else {
                            panic!("push {name}:{round}: {}", body_text(r));
                        }
                    }
                    images
                })
            })
            .collect();
        let acknowledged: Vec<_> = pushers
            .into_iter()
            .flat_map(|p| p.join().expect("pusher"))
            .collect();
        assert_eq!(acknowledged.len(), 60);

        // The garbage goes while the images stay whole.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while http
            .send(http.req("HEAD", &format!("/v2/junk/a/blobs/{garbage}")))
            .status()
            != StatusCode::NOT_FOUND
        {
            assert!(
                std::time::Instant::now() < deadline,
                "garbage never collected"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Let GC pass over the fresh blobs too once they are past the grace.
        std::thread::sleep(Duration::from_millis(4500));
        for (name, tag, digest, blobs) in &acknowledged {
            let r = http.get(&format!("/v2/{name}/manifests/{tag}"));
            assert_eq!(r.status(), StatusCode::OK, "{name}:{tag}");
            assert_eq!(Digest::sha256_of(&r.bytes().expect("body")), *digest);
            for blob in blobs {
                let r = http.get(&format!("/v2/{name}/blobs/{blob}"));
                assert_eq!(r.status(), StatusCode::OK, "{name} {blob}");
                assert_eq!(Digest::sha256_of(&r.bytes().expect("body")), *blob);
            }
        }
        server.kill();
        let (code, report, stderr) = scrub(&root);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(report["repositories"], 22, "{report}");
    }
}

mod operations {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// Parses Prometheus text format: every sample as (name, labels, value);
    /// panics on a line that is not valid exposition format.
    /// One Prometheus sample: name, labels, value.
    type Sample = (String, Vec<(String, String)>, f64);

    fn parse_prometheus(text: &str) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut words = rest.splitn(3, ' ');
                let (kind, name) = (words.next(), words.next());
                assert!(matches!(kind, Some("HELP" | "TYPE")), "comment {line:?}");
                if kind == Some("TYPE") {
                    let t = words.next().unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "{line:?}"
                    );
                    typed.insert(name.unwrap_or_default().to_owned());
                }
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"));
                    let labels = inner
                        .split("\",")
                        .map(|pair| {
                            let (k, v) =
                                pair.split_once("=\"").unwrap_or_else(|| panic!("{line:?}"));
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), Vec::new()),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "metric name {name:?}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|base| typed.contains(*base))
                .unwrap_or(&name);
            assert!(typed.contains(family), "{name} has no TYPE line before it");
            samples.push((name, labels, value));
        }
        samples
    }

    fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    #[test]
    fn metrics_health_and_readiness() {
        let dir = temp_dir();
        let root = dir.path().join("root");
        let config = dir.path().join("zot.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"storage": {{"rootDirectory": "{}", "gcDelay": "1h", "gcInterval": "200ms"}},
                    "http": {{"address": "127.0.0.1", "port": "0"}}}}"#,
                root.display()
            ),
        )
        .expect("config");
        let server = serve_config(&root, &config, &[]);
        let http = Http::new(&server);
        assert_eq!(http.get("/healthz").status(), StatusCode::OK);
        assert_eq!(http.get("/readyz").status(), StatusCode::OK);
        let (r, digest) = http.push_image("metrics/app", "v1", "metrics");
        assert_eq!(r.status(), StatusCode::CREATED);
        for _ in 0..3 {
            assert_eq!(
                http.get("/v2/metrics/app/manifests/v1").status(),
                StatusCode::OK
            );
        }
        assert_eq!(
            http.get("/v2/metrics/app/manifests/v9").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            http.get(&format!("/v2/metrics/app/manifests/{digest}"))
                .status(),
            StatusCode::OK
        );
        std::thread::sleep(Duration::from_millis(700));
        let r = http.get("/metrics");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(header(&r, "content-type").starts_with("text/plain"));
        let text = r.text().expect("body");
        let samples = parse_prometheus(&text);
        let requests = "ocikit_http_requests_total";
        assert_eq!(
            sample(
                &samples,
                requests,
                &[("route", "manifest"), ("method", "GET"), ("status", "200")]
            ),
            4.0,
            "{text}"
        );
        assert_eq!(
            sample(
                &samples,
                requests,
                &[("route", "manifest"), ("status", "404")]
            ),
            1.0
        );
        assert_eq!(
            sample(
                &samples,
                requests,
                &[("route", "manifest"), ("method", "PUT"), ("status", "201")]
            ),
            1.0
        );
        assert_eq!(
            sample(
                &samples,
                requests,
                &[
                    ("route", "blob_upload"),
                    ("method", "PUT"),
                    ("status", "201")
                ]
            ),
            2.0
        );
        // The histogram: cumulative buckets ending in +Inf = count.
        let buckets: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| {
                n == "ocikit_http_request_duration_seconds_bucket"
                    && l.iter().any(|(k, v)| k == "route" && v == "manifest")
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(
            buckets.last().copied(),
            Some(sample(
                &samples,
                "ocikit_http_request_duration_seconds_count",
                &[("route", "manifest")]
            ))
        );
        assert!(sample(&samples, "ocikit_http_request_bytes_total", &[]) > 0.0);
        assert!(sample(&samples, "ocikit_http_response_bytes_total", &[]) > 0.0);
        assert!(
            sample(&samples, "ocikit_storage_bytes", &[]) > 0.0,
            "{text}"
        );
        assert!(
            sample(&samples, "ocikit_gc_runs_total", &[]) >= 1.0,
            "{text}"
        );
    }

    /// SIGTERM: an upload in flight finishes, new connections and uploads
    /// are refused, and the server exits 0.
    /// The soft and hard limits on open files of a process, from /proc.
    fn open_files_limits(pid: &str) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files");
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (numbers[0], numbers[1])
    }

    /// Each upload session holds a file: started with a low soft limit,
    /// oci-serve raises it to the hard limit (as Go's zot does).
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        use std::io::BufRead as _;
        let (_, hard) = open_files_limits("self");
        assert!(
            hard > 256,
            "this test needs a hard limit above 256, not {hard}"
        );
        let dir = temp_dir();
        let program = ocikit_e2e::bin_dir().join("oci-serve");
        let root = dir.path().join("root").display().to_string();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "ulimit -Sn 256 && exec \"$0\" \"$@\""])
            .arg(&program)
            .args(["--root", &root, "--addr", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let stderr = child.stderr.take().expect("stderr");
        let listening = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("listening on"));
        let limits = open_files_limits(&child.id().to_string());
        let _ = child.kill();
        let _ = child.wait();
        assert!(listening, "oci-serve did not start");
        assert_eq!(limits, (hard, hard), "soft limit not raised");
    }

    #[test]
    fn sigterm_finishes_uploads_in_flight() {
        let dir = temp_dir();
        let server = OciServe::start_at(&dir.path().join("root"), &[]);
        let http = Http::new(&server);
        let r = http.send(http.req("POST", "/v2/drain/app/blobs/uploads/"));
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let location = header(&r, "location");
        let data = vec![7u8; 1 << 20];
        let digest = Digest::sha256_of(&data);
        let mut stream = TcpStream::connect(&server.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(
            stream,
            "PUT {location}?digest={digest} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            data.len()
        )
        .expect("head");
        stream
            .write_all(&data[..data.len() / 2])
            .expect("first half");
        stream.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(300));

        std::process::Command::new("kill")
            .args(["-TERM", &server.pid().to_string()])
            .status()
            .expect("kill");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(&server.addr).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "still accepting after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stream
            .write_all(&data[data.len() / 2..])
            .expect("second half");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        let status = server.terminate();
        assert!(status.success(), "{status:?}");
        // The acknowledged blob is there after a restart.
        let server = OciServe::start_at(&dir.path().join("root"), &[]);
        let http = Http::new(&server);
        let r = http.get(&format!("/v2/drain/app/blobs/{digest}"));
        assert_eq!(r.status(), StatusCode::OK);
    }
}

mod abuse {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// Sends raw bytes and returns the status line's code (0 when the
    /// server closed the connection without an answer).
    fn raw(addr: &str, request: &[u8]) -> u16 {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let _ = stream.write_all(request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn huge_headers_are_refused_and_the_server_goes_on() {
        let Some(reg) = Secured::start(&[]) else {
            return;
        };
        let addr = reg.server.addr.clone();
        let huge = "a".repeat(1 << 20);
        for request in [
            format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Junk: {huge}\r\n\r\n"),
            format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {huge}\r\n\r\n"),
            format!(
                "GET /v2/ HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..2000)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>()
            ),
        ] {
            let status = raw(&addr, request.as_bytes());
            assert!(
                status == 0 || status == 431 || status == 400,
                "a huge header got {status}"
            );
        }
        // A long but well-formed bad Authorization is a clean 401.
        let long = Http::new(&reg.server).with_creds(&"u".repeat(4000), "pw");
        assert_eq!(long.get("/v2/").status(), StatusCode::UNAUTHORIZED);
        assert_eq!(reg.as_user("alice").get("/v2/").status(), StatusCode::OK);
    }

    #[test]
    fn many_concurrent_uploads_from_one_client_stay_inside_the_root() {
        let dir = temp_dir();
        let root = dir.path().join("root");
        let server = OciServe::start_at(&root, &[]);
        let addr = server.addr.clone();
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let http = Http::at(&format!("http://{addr}"));
                    let mut sessions = Vec::new();
                    for i in 0..50 {
                        let r =
                            http.send(http.req("POST", &format!("/v2/flood/w{w}/blobs/uploads/")));
                        assert!(
                            r.status() == StatusCode::ACCEPTED
                                || r.status() == StatusCode::SERVICE_UNAVAILABLE
                                || r.status() == StatusCode::TOO_MANY_REQUESTS,
                            "upload {i}: {}",
                            r.status()
                        );
                        if r.status() == StatusCode::ACCEPTED {
                            sessions.push(header(&r, "location"));
                        }
                    }
                    sessions
                })
            })
            .collect();
        let sessions: Vec<String> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect();
        // The default limit: 128 sessions for this client, the rest refused.
        assert_eq!(sessions.len(), 128);
        let http = Http::new(&server);
        // Names that try to leave the root never create anything (sent raw:
        // an HTTP library would normalise the dots away).
        for path in [
            "/v2/../../etc/blobs/uploads/",
            "/v2/flood/%2e%2e/x/blobs/uploads/",
            "/v2/flood/..%2f..%2fetc/blobs/uploads/",
            "/v2/Flood/blobs/uploads/",
            "/v2/flood//x/blobs/uploads/",
        ] {
            let status = raw(
                &addr,
                format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            assert!((400..500).contains(&status), "{path}: {status}");
        }
        for location in &sessions {
            let r = http.send(http.req("DELETE", location));
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "{location}");
        }
        // Every file the flood made is under the root.
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let name = entry.expect("entry").file_name();
            assert_eq!(name, "root", "something outside the root: {name:?}");
        }
        assert_eq!(http.get("/v2/").status(), StatusCode::OK);
    }

    /// A client that opens a new connection for every request, from `local`.
    fn client_from(local: &str) -> Client {
        Client::builder()
            .local_address(local.parse::<std::net::IpAddr>().expect("ip"))
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    fn metric(server: &OciServe, name: &str) -> f64 {
        let text = Http::new(server).get("/metrics").text().expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }

    #[test]
    fn upload_sessions_per_client_are_limited_and_freed() {
        let dir = temp_dir();
        let server = OciServe::start_at(
            &dir.path().join("root"),
            &["--max-uploads-per-client", "3", "--idle-timeout", "2"],
        );
        let url = |path: &str| format!("http://{}{path}", server.addr);
        let one = client_from("127.0.0.1");
        let post = |client: &Client| {
            client
                .post(url("/v2/limited/app/blobs/uploads/"))
                .send()
                .expect("POST")
        };
        let mut open: Vec<String> = (0..3)
            .map(|i| {
                let r = post(&one);
                assert_eq!(r.status(), StatusCode::ACCEPTED, "session {i}");
                header(&r, "location")
            })
            .collect();
        let refused = post(&one);
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, "retry-after"), "2");
        let answer = json(refused);
        assert_eq!(answer["errors"][0]["code"], "TOOMANYREQUESTS", "{answer}");
        let message = answer["errors"][0]["message"].as_str().expect("message");
        assert!(
            message.contains("127.0.0.1 already has 3 upload sessions open")
                && message.contains("--max-uploads-per-client"),
            "{message}"
        );
        // Another address has slots of its own.
        let other = client_from("127.0.0.2");
        let r = post(&other);
        assert_eq!(r.status(), StatusCode::ACCEPTED, "another client");
        // Single-request uploads and mounts open no session.
        let data = b"one request".to_vec();
        let digest = Digest::sha256_of(&data);
        let r = one
            .post(url(&format!(
                "/v2/limited/app/blobs/uploads/?digest={digest}"
            )))
            .header("content-type", "application/octet-stream")
            .body(data.clone())
            .send()
            .expect("monolithic");
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = one
            .post(url(&format!(
                "/v2/limited/other/blobs/uploads/?mount={digest}&from=limited/app"
            )))
            .send()
            .expect("mount");
        assert_eq!(r.status(), StatusCode::CREATED);
        // Finishing a session frees its slot, and so does cancelling one.
        let data = b"chunk".to_vec();
        let location = open.pop().expect("session");
        let r = one
            .put(url(&format!(
                "{location}?digest={}",
                Digest::sha256_of(&data)
            )))
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .expect("PUT");
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = post(&one);
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "a finished upload frees a slot"
        );
        open.push(header(&r, "location"));
        assert_eq!(post(&one).status(), StatusCode::TOO_MANY_REQUESTS);
        let location = open.pop().expect("session");
        let r = one.delete(url(&location)).send().expect("DELETE");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = post(&one);
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "a cancelled upload frees a slot"
        );
        open.push(header(&r, "location"));
        assert_eq!(post(&one).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(metric(&server, "ocikit_upload_sessions_refused_total"), 3.0);
        // Sessions untouched past the idle timeout stop counting, and still work.
        std::thread::sleep(Duration::from_millis(2500));
        let r = post(&one);
        assert_eq!(r.status(), StatusCode::ACCEPTED, "idle sessions lapsed");
        let data = b"late".to_vec();
        let r = one
            .put(url(&format!(
                "{}?digest={}",
                open[0],
                Digest::sha256_of(&data)
            )))
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .expect("late PUT");
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "a lapsed session still finishes"
        );
        // Only the session opened after the lapse still counts.
        assert_eq!(metric(&server, "ocikit_upload_sessions_open"), 1.0);
    }

    #[test]
    fn upload_sessions_count_per_user() {
        let Some(reg) = Secured::start(&["--max-uploads-per-client", "2"]) else {
            return;
        };
        let alice = reg.as_user("alice");
        let post = |http: &Http, name: &str| {
            http.send(http.req("POST", &format!("/v2/{name}/blobs/uploads/")))
        };
        for _ in 0..2 {
            assert_eq!(post(&alice, "team/app").status(), StatusCode::ACCEPTED);
        }
        let r = post(&alice, "team/app");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let answer = json(r);
        assert!(
            answer["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("user alice already has 2")),
            "{answer}"
        );
        // bob comes from the same address but is another client.
        let bob = reg.as_user("bob");
        assert_eq!(post(&bob, "bob/app").status(), StatusCode::ACCEPTED);
        // Without write access the answer is still 403, not a slot question.
        assert_eq!(post(&bob, "team/app").status(), StatusCode::FORBIDDEN);
    }
}
