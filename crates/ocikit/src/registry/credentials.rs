//! Registry credentials, found where the ecosystem already keeps them, in
//! DESIGN.md's order: `--creds`, `--authfile`, `REGISTRY_AUTH_FILE`,
//! `${XDG_RUNTIME_DIR}/containers/auth.json` (`/run/containers/0/auth.json` for
//! root without it), `~/.config/containers/auth.json`, then
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
//!
//! In each file, a `credHelpers` entry for the registry wins (the helper
//! `docker-credential-NAME get` is run with the server on stdin), then an
//! `auths` entry (`auth` = base64 `user:password`; containers' per-namespace
//! keys such as `reg/team/app` beat the bare host), then the file's
//! `credsStore`. The source that supplied a credential is kept, so a 401 can
//! say which one was rejected. The process environment is read once into an
//! [`Environment`] value, which tests build by hand instead of mutating the
//! real one.

use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use super::RegistryError;

/// A user name and password (or registry token used as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    // Never show a secret, even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Parses `USER:PASSWORD` as `--creds` takes it (the password may contain
    /// colons; the user may not be empty).
    pub fn parse(text: &str) -> Result<Credentials, RegistryError> {
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Credentials {
                username: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err(RegistryError::InvalidInput {
                what: "credentials",
                value: text.split(':').next().unwrap_or_default().to_owned() + ":…",
                reason: "expected USER:PASSWORD".into(),
            }),
        }
    }
}

/// Where a credential came from, so errors can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A command-line flag (`--creds`, `--src-creds`, `--dest-creds`).
    Flag(&'static str),
    /// An `auths` entry of an auth file.
    File(String),
    /// A credential helper named by an auth file.
    Helper {
        /// `docker-credential-NAME`.
        program: String,
        /// The auth file that named it.
        file: String,
    },
    /// No credential: the request went anonymous.
    Anonymous,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Flag(flag) => f.write_str(flag),
            CredentialSource::File(file) => f.write_str(file),
            CredentialSource::Helper { program, file } => write!(f, "{program} (from {file})"),
            CredentialSource::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// The parts of the process environment credential lookup depends on.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `$DOCKER_CONFIG` (a directory holding `config.json`).
    pub docker_config: Option<PathBuf>,
    /// Whether the process runs as root (for `/run/containers/0/auth.json`).
    pub is_root: bool,
    /// `$PATH`, where `docker-credential-*` helpers are looked up.
    pub path: Option<OsString>,
}

impl Environment {
    /// Reads the real process environment.
    pub fn from_process() -> Environment {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Environment {
            home: var("HOME"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            docker_config: var("DOCKER_CONFIG"),
            is_root: is_root(),
            path: std::env::var_os("PATH"),
        }
    }

    /// The auth files to read, most important first. An explicit
    /// `--authfile` (or else `REGISTRY_AUTH_FILE`) is the only containers
    /// auth file read, as in skopeo; the Docker config is always read last.
    pub fn auth_files(&self, authfile: Option<&Path>) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(file) = authfile
            .map(Path::to_path_buf)
            .or(self.registry_auth_file.clone())
        {
            files.push(file);
        } else {
            if let Some(runtime) = &self.xdg_runtime_dir {
                files.push(runtime.join("containers/auth.json"));
            } else if self.is_root {
                files.push(PathBuf::from("/run/containers/0/auth.json"));
            }
            if let Some(home) = &self.home {
                files.push(home.join(".config/containers/auth.json"));
            }
        }
        if let Some(dir) = &self.docker_config {
            files.push(dir.join("config.json"));
        } else if let Some(home) = &self.home {
            files.push(home.join(".docker/config.json"));
        }
        files
    }

    /// A path as a user reads it: `~/…` under the home directory.
    pub fn display_path(&self, path: &Path) -> String {
        if let Some(home) = &self.home {
            if let Ok(rest) = path.strip_prefix(home) {
                return format!("~/{}", rest.display());
            }
        }
        path.display().to_string()
    }

    fn find_program(&self, program: &str) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        std::env::split_paths(path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the process's effective user; no unsafe geteuid.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The outcome of a lookup: the credential (if any), its source, and the
/// auth files that exist and were read (for "no credentials in …" messages).
#[derive(Debug, Clone)]
pub struct Found {
    /// The credential, or `None` for anonymous access.
    pub credentials: Option<Credentials>,
    /// Where it came from.
    pub source: CredentialSource,
    /// The auth files that were read, as displayed to users.
    pub searched: Vec<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// An `auths` key as a comparable `host[/path]`: Docker's URL-shaped keys
/// (`https://index.docker.io/v1/`) keep only their host.
fn normalise_key(key: &str) -> String {
    let key = key.trim();
    let key = if let Some(rest) = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        rest.split('/').next().unwrap_or_default()
    } else {
        key.trim_end_matches('/')
    };
    match key {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// Finds the credential for `registry`/`repository`.
pub fn lookup(
    env: &Environment,
    authfile: Option<&Path>,
    registry: &str,
    repository: &str,
) -> Result<Found, RegistryError> {
    let host = normalise_key(registry);
    // Most specific first: reg/ns/repo, reg/ns, …, reg.
    let mut wanted = Vec::new();
    let mut prefix = format!("{host}/{repository}");
    loop {
        wanted.push(prefix.clone());
        match prefix.rfind('/') {
            Some(slash) => prefix.truncate(slash),
            None => break,
        }
    }
    let mut searched = Vec::new();
    for file in env.auth_files(authfile) {
        let shown = env.display_path(&file);
        let text = match std::fs::read(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if authfile == Some(file.as_path()) {
                    return Err(RegistryError::Credentials {
                        source_name: shown,
                        reason: "the auth file does not exist; check --authfile".into(),
                    });
                }
                continue;
            }
            Err(e) => {
                return Err(RegistryError::Credentials {
                    source_name: shown,
                    reason: format!("cannot read it: {e}"),
                })
            }
        };
        searched.push(shown.clone());
        let parsed: AuthFile = if text.iter().all(u8::is_ascii_whitespace) {
            AuthFile::default()
        } else {
            serde_json::from_slice(&text).map_err(|e| RegistryError::Credentials {
                source_name: shown.clone(),
                reason: format!("not a valid auth file: {e}"),
            })?
        };
        // credHelpers: keyed by host (Docker Hub under any of its names).
        let helper = parsed
            .cred_helpers
            .iter()
            .find_map(|(key, helper)| (normalise_key(key) == host).then_some(helper.clone()));
        if let Some(helper) = helper {
            if let Some(creds) = run_helper(env, &helper, registry, &shown)? {
                return Ok(Found {
                    credentials: Some(creds),
                    source: CredentialSource::Helper {
                        program: format!("docker-credential-{helper}"),
                        file: shown,
                    },
                    searched,
                });
            }
        }
        for key in &wanted {
            let entry = parsed
                .auths
                .iter()
                .find(|(k, _)| normalise_key(k) == *key)
                .map(|(_, v)| v);
            if let Some(entry) = entry {
                if let Some(creds) = decode_entry(entry, &shown)? {
                    return Ok(Found {
                        credentials: Some(creds),
                        source: CredentialSource::File(shown),
                        searched,
                    });
                }
            }
        }
        if let Some(store) = parsed.creds_store.as_deref().filter(|s| !s.is_empty()) {
            if let Some(creds) = run_helper(env, store, registry, &shown)? {
                return Ok(Found {
                    credentials: Some(creds),
                    source: CredentialSource::Helper {
                        program: format!("docker-credential-{store}"),
                        file: shown,
                    },
                    searched,
                });
            }
        }
    }
    Ok(Found {
        credentials: None,
        source: CredentialSource::Anonymous,
        searched,
    })
}

fn decode_entry(entry: &AuthEntry, file: &str) -> Result<Option<Credentials>, RegistryError> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = |reason: &str| RegistryError::Credentials {
            source_name: file.to_owned(),
            reason: format!("an `auth` entry {reason}; re-run `podman login` or `docker login`"),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("is not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("is not UTF-8"))?;
        return Credentials::parse(&text)
            .map(Some)
            .map_err(|_| bad("is not base64 of USER:PASSWORD"));
    }
    match (&entry.username, &entry.password) {
        (Some(user), Some(password)) if !user.is_empty() => Ok(Some(Credentials {
            username: user.clone(),
            password: password.clone(),
        })),
        _ => Ok(None),
    }
}

/// Runs `docker-credential-NAME get` with the server on stdin. `Ok(None)`
/// when the helper has nothing for this server.
fn run_helper(
    env: &Environment,
    name: &str,
    registry: &str,
    file: &str,
) -> Result<Option<Credentials>, RegistryError> {
    let program = format!("docker-credential-{name}");
    let source_name = format!("{program} (from {file})");
    let Some(path) = env.find_program(&program) else {
        return Err(RegistryError::Credentials {
            source_name,
            reason: format!("{program} is not on PATH; install it or remove the entry"),
        });
    };
    // Docker Hub is stored under its legacy index URL.
    let server = if normalise_key(registry) == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let failed = |reason: String| RegistryError::Credentials {
        source_name: source_name.clone(),
        reason,
    };
    let mut child = Command::new(&path)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", path.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status.
        let _ = stdin.write_all(server.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("cannot run {}: {e}", path.display())))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stdout).trim().to_owned()
            + String::from_utf8_lossy(&output.stderr).trim();
        if message.contains("credentials not found") || message.is_empty() {
            return Ok(None);
        }
        return Err(failed(format!("`get {server}` failed: {message}")));
    }
    #[derive(serde::Deserialize)]
    struct HelperOutput {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let parsed: HelperOutput = serde_json::from_slice(&output.stdout).map_err(|e| {
        failed(format!(
            "`get {server}` printed something that is not its JSON: {e}"
        ))
    })?;
    if parsed.username.is_empty() || parsed.username == "<token>" {
        // Identity tokens (OAuth refresh tokens) are not supported: treat as
        // nothing found rather than sending a token as a password.
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: parsed.username,
        password: parsed.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn env_in(dir: &Path) -> Environment {
        Environment {
            home: Some(dir.join("home")),
            path: Some(dir.join("bin").into_os_string()),
            ..Environment::default()
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn parse_creds_flag() {
        let c = Credentials::parse("me:se:cret").expect("valid");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("me", "se:cret")
        );
        let err = Credentials::parse("nopassword").expect_err("no colon");
        assert!(err.to_string().contains("expected USER:PASSWORD"), "{err}");
        assert!(Credentials::parse(":x").is_err());
        assert!(!format!("{c:?}").contains("se:cret"));
    }

    #[test]
    fn auth_file_order() {
        let env = Environment {
            home: Some("/h".into()),
            xdg_runtime_dir: Some("/run/user/1".into()),
            ..Environment::default()
        };
        assert_eq!(
            env.auth_files(None),
            vec![
                PathBuf::from("/run/user/1/containers/auth.json"),
                "/h/.config/containers/auth.json".into(),
                "/h/.docker/config.json".into(),
            ]
        );
        let root = Environment {
            home: Some("/root".into()),
            is_root: true,
            docker_config: Some("/dc".into()),
            ..Environment::default()
        };
        assert_eq!(
            root.auth_files(None),
            vec![
                PathBuf::from("/run/containers/0/auth.json"),
                "/root/.config/containers/auth.json".into(),
                "/dc/config.json".into(),
            ]
        );
        let env_file = Environment {
            registry_auth_file: Some("/env.json".into()),
            home: Some("/h".into()),
            ..Environment::default()
        };
        assert_eq!(
            env_file.auth_files(None),
            vec![PathBuf::from("/env.json"), "/h/.docker/config.json".into()]
        );
        assert_eq!(
            env_file.auth_files(Some(Path::new("/flag.json"))),
            vec![PathBuf::from("/flag.json"), "/h/.docker/config.json".into()]
        );
    }

    #[test]
    fn precedence_across_files_and_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let env = env_in(dir.path());
        let home = dir.path().join("home");
        write(
            &home.join(".docker/config.json"),
            &format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"reg:5000":{{"auth":"{}"}}}}}}"#,
                b64("hub:hubpw"),
                b64("docker:dpw")
            ),
        );
        // Docker Hub's legacy key matches docker.io.
        let found = lookup(&env, None, "docker.io", "library/alpine").expect("lookup");
        assert_eq!(found.credentials.expect("creds").username, "hub");
        assert_eq!(found.source.to_string(), "~/.docker/config.json");

        // containers' auth.json beats the docker config; namespaced keys win.
        write(
            &home.join(".config/containers/auth.json"),
            &format!(
                r#"{{"auths":{{"reg:5000":{{"auth":"{}"}},"reg:5000/team":{{"auth":"{}"}}}}}}"#,
                b64("podman:ppw"),
                b64("team:tpw")
            ),
        );
        let found = lookup(&env, None, "reg:5000", "team/app").expect("lookup");
        assert_eq!(found.credentials.expect("creds").username, "team");
        let found = lookup(&env, None, "reg:5000", "other").expect("lookup");
        assert_eq!(found.credentials.expect("creds").username, "podman");
        assert_eq!(found.source.to_string(), "~/.config/containers/auth.json");

        // --authfile replaces the containers files but not the docker config.
        let flag = dir.path().join("flag.json");
        write(&flag, r#"{"auths":{}}"#);
        let found = lookup(&env, Some(&flag), "reg:5000", "other").expect("lookup");
        assert_eq!(found.credentials.expect("creds").username, "docker");

        // Nothing anywhere: anonymous, naming the files read.
        let found = lookup(&env, Some(&flag), "elsewhere", "x").expect("lookup");
        assert_eq!(found.source, CredentialSource::Anonymous);
        assert_eq!(found.searched.len(), 2);
        assert!(found.searched[1].ends_with("~/.docker/config.json"));
    }

    #[test]
    fn bad_files_name_themselves() {
        let dir = tempfile::tempdir().expect("tmp");
        let env = env_in(dir.path());
        let bad = dir.path().join("bad.json");
        write(&bad, "{not json");
        let err = lookup(&env, Some(&bad), "r", "a").expect_err("bad json");
        assert!(err.to_string().contains("not a valid auth file"), "{err}");
        assert!(err.to_string().contains("bad.json"), "{err}");

        write(&bad, r#"{"auths":{"r":{"auth":"!!!"}}}"#);
        let err = lookup(&env, Some(&bad), "r", "a").expect_err("bad base64");
        assert!(err.to_string().contains("is not base64"), "{err}");

        let missing = dir.path().join("missing.json");
        let err = lookup(&env, Some(&missing), "r", "a").expect_err("missing");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    fn helper_script(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("bin").join(format!("docker-credential-{name}"));
        write(&path, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn cred_helpers_and_store() {
        let dir = tempfile::tempdir().expect("tmp");
        let env = env_in(dir.path());
        helper_script(
            dir.path(),
            "test",
            r#"read server
if [ "$1" = get ] && [ "$server" = "reg:5000" ]; then
  echo '{"ServerURL":"reg:5000","Username":"helped","Secret":"hpw"}'
else
  echo "credentials not found in native keychain"; exit 1
fi"#,
        );
        helper_script(
            dir.path(),
            "store",
            r#"read server
echo "{\"Username\":\"stored\",\"Secret\":\"$server\"}""#,
        );
        let file = dir.path().join("auth.json");
        write(
            &file,
            &format!(
                r#"{{"credHelpers":{{"reg:5000":"test","other:1":"test"}},"auths":{{"reg:5000":{{"auth":"{}"}}}},"credsStore":"store"}}"#,
                b64("plain:pw")
            ),
        );
        let found = lookup(&env, Some(&file), "reg:5000", "app").expect("lookup");
        let creds = found.credentials.expect("creds");
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("helped", "hpw")
        );
        assert_eq!(
            found.source.to_string(),
            format!("docker-credential-test (from {})", file.display())
        );
        // The helper has nothing for other:1, so the file's credsStore answers.
        let found = lookup(&env, Some(&file), "other:1", "app").expect("lookup");
        let creds = found.credentials.expect("creds");
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("stored", "other:1")
        );
        // Docker Hub goes to helpers under its legacy URL.
        let found = lookup(&env, Some(&file), "docker.io", "library/x").expect("lookup");
        assert_eq!(
            found.credentials.expect("creds").password,
            "https://index.docker.io/v1/"
        );

        // A helper that is not installed is an error naming it.
        write(&file, r#"{"credHelpers":{"reg:5000":"absent"}}"#);
        let err = lookup(&env, Some(&file), "reg:5000", "app").expect_err("absent");
        assert!(
            err.to_string()
                .contains("docker-credential-absent is not on PATH"),
            "{err}"
        );
        // A helper that fails otherwise is an error with its message.
        helper_script(dir.path(), "broken", "echo 'keychain locked' >&2; exit 3");
        write(&file, r#"{"credHelpers":{"reg:5000":"broken"}}"#);
        let err = lookup(&env, Some(&file), "reg:5000", "app").expect_err("broken");
        assert!(err.to_string().contains("keychain locked"), "{err}");
    }

    #[test]
    fn keys_normalise() {
        let cases = [
            ("https://index.docker.io/v1/", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("http://reg:5000/v2/", "reg:5000"),
            ("reg:5000/team/", "reg:5000/team"),
            ("quay.io", "quay.io"),
        ];
        for (key, want) in cases {
            assert_eq!(normalise_key(key), want, "{key}");
        }
    }
}
