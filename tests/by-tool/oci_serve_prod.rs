//! oci-serve in production (issue 4): zot's config file, users and access
//! control, TLS, garbage collection and scrub, and operations, each checked
//! with real clients (curl, skopeo, oci-copy) against a real oci-serve.

use std::path::Path;
use std::time::Duration;

use ocikit::Digest;
use ocikit_e2e::peers::OciServe;
use ocikit_e2e::{temp_dir, tool};
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
