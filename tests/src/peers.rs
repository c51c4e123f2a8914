//! Real peers started for one test: each with its own config and data in a
//! temp dir, on a free loopback port, stopped when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `docker-registry` (distribution 2.8), the reference registry.
pub struct DockerRegistry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// Where its config and storage live.
    pub dir: tempfile::TempDir,
}

/// Extra configuration for [`DockerRegistry::start_with`]: YAML lines appended
/// at top level (an `auth:` section), or a TLS cert/key for `http.tls`.
#[derive(Default)]
pub struct RegistryConfig {
    /// Top-level YAML appended verbatim (e.g. an `auth:` section).
    pub extra_yaml: String,
    /// `http.tls.certificate` and `http.tls.key`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `http.tls.clientcas`: with any, the registry requires a client
    /// certificate signed by one of these CAs (mutual TLS); needs `tls`.
    pub client_cas: Vec<PathBuf>,
}

impl DockerRegistry {
    /// Starts a plain-HTTP registry, or `None` when the peer is missing (see
    /// [`crate::require`]).
    pub fn start() -> Option<DockerRegistry> {
        DockerRegistry::start_with(RegistryConfig::default())
    }

    /// Starts a registry with extra configuration.
    pub fn start_with(config: RegistryConfig) -> Option<DockerRegistry> {
        let program = crate::require("docker-registry")?;
        let dir = crate::temp_dir();
        let port = crate::free_port();
        let addr = format!("127.0.0.1:{port}");
        let tls = match &config.tls {
            Some((cert, key)) => {
                let mut tls = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                );
                if !config.client_cas.is_empty() {
                    tls.push_str("    clientcas:\n");
                    for ca in &config.client_cas {
                        tls.push_str(&format!("      - {}\n", ca.display()));
                    }
                }
                tls
            }
            None => {
                assert!(
                    config.client_cas.is_empty(),
                    "client_cas (mutual TLS) needs tls as well"
                );
                String::new()
            }
        };
        let yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n{tls}{extra}",
            root = dir.path().join("data").display(),
            extra = config.extra_yaml,
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, yaml).expect("writing registry config");
        let child = Command::new(program)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("registry.log")).expect("log file"),
            ))
            .spawn()
            .expect("starting docker-registry");
        let registry = DockerRegistry { child, addr, dir };
        wait_for_port(&registry.addr, &registry.log_path());
        Some(registry)
    }

    /// The process id (benchmarks read its peak memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The registry's log, for assertion messages.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// `docker://127.0.0.1:PORT/<path>`
    pub fn url(&self, path: &str) -> String {
        format!("docker://{}/{path}", self.addr)
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts connections on `addr`.
pub fn wait_for_port(addr: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("nothing listens on {addr} after 20 s; log:\n{log}");
}

/// The workspace's debug oci-serve, built by `cargo xtask test`.
fn built_oci_serve() -> PathBuf {
    let program = crate::bin_dir().join("oci-serve");
    assert!(
        program.exists(),
        "oci-serve is not built; run the tests with `cargo xtask test`"
    );
    program
}

/// A running `oci-serve` (the workspace's own binary) on a free loopback
/// port, over a storage root that outlives restarts when the test wants.
pub struct OciServe {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The storage root.
    pub root: PathBuf,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    _dir: Option<tempfile::TempDir>,
}

impl OciServe {
    /// Starts oci-serve over a fresh temp root.
    pub fn start() -> OciServe {
        let dir = crate::temp_dir();
        let root = dir.path().join("root");
        let mut server = OciServe::start_at(&root, &[]);
        server._dir = Some(dir);
        server
    }

    /// Starts oci-serve over `root` with extra arguments, on port 0; reads
    /// the bound address from its stderr.
    pub fn start_at(root: &Path, extra: &[&str]) -> OciServe {
        OciServe::start_program(&built_oci_serve(), root, extra)
    }

    /// Starts oci-serve with exactly `args` (e.g. `serve CONFIG`, whose
    /// config must listen on port 0), over `root`; reads the bound address
    /// (`http://` or `https://`) from its stderr.
    pub fn spawn(root: &Path, args: &[String]) -> OciServe {
        OciServe::spawn_program(&built_oci_serve(), root, args)
    }

    /// Starts the oci-serve binary at `program` (a release build, for
    /// benchmarks) over `root` with extra arguments, on port 0.
    pub fn start_program(program: &Path, root: &Path, extra: &[&str]) -> OciServe {
        let mut args: Vec<String> = vec![
            "--root".into(),
            root.display().to_string(),
            "--addr".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        OciServe::spawn_program(program, root, &args)
    }

    /// Starts the oci-serve binary at `program` with exactly `args`.
    fn spawn_program(program: &Path, root: &Path, args: &[String]) -> OciServe {
        use std::io::BufRead;
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting oci-serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut seen = String::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("oci-serve exited before listening; stderr:\n{seen}");
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line
                .split("listening on http://")
                .nth(1)
                .or_else(|| line.split("listening on https://").nth(1))
            {
                break rest
                    .split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        // Keep draining stderr (into `log`) so the server never blocks on
        // a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        OciServe {
            child,
            addr,
            root: root.to_path_buf(),
            log,
            _dir: None,
        }
    }

    /// What the server has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The server's process id (to send it signals, or for benchmarks to
    /// read its peak memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("waiting for oci-serve")
    }

    /// `docker://127.0.0.1:PORT/<path>`
    pub fn url(&self, path: &str) -> String {
        format!("docker://{}/{path}", self.addr)
    }
}

impl Drop for OciServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private `containerd` (with `ctr` to drive it): its own root, state,
/// socket and config in a temp dir, the CRI plugin off, stopped when dropped.
pub struct Containerd {
    child: Child,
    /// The gRPC socket to pass to `ctr --address`.
    pub socket: PathBuf,
    /// Where its config, root, state and log live.
    pub dir: tempfile::TempDir,
}

impl Containerd {
    /// Starts containerd, or `None` when it (or `ctr`, or `runc`) is missing
    /// (see [`crate::require`]).
    pub fn start() -> Option<Containerd> {
        let program = crate::require("containerd")?;
        crate::require("ctr")?;
        crate::require("runc")?;
        let dir = crate::temp_dir();
        let socket = dir.path().join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{socket}\"\n\
             [ttrpc]\n  address = \"{socket}.ttrpc\"\n\
             [debug]\n  level = \"warn\"\n",
            root = dir.path().join("root").display(),
            state = dir.path().join("state").display(),
            socket = socket.display(),
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("writing containerd config");
        let log = dir.path().join("containerd.log");
        let child = Command::new(program)
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("starting containerd");
        let containerd = Containerd { child, socket, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new("ctr")
                .arg("--address")
                .arg(&containerd.socket)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("containerd did not answer on its socket in 30 s; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(containerd)
    }

    /// A `ctr` command talking to this containerd.
    pub fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command.arg("--address").arg(&self.socket);
        command
    }

    /// containerd's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SIGTERM first, so it stops its shims and unmounts; then make sure.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
