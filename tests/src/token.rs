//! A small token issuer for distribution's `auth.token`: an HTTP server on a
//! free loopback port that checks Basic credentials and hands out ES256 JWTs
//! (signed by a self-signed certificate the registry trusts through
//! `rootcertbundle`, sent in the `x5c` header) granting the scopes asked for.
//! It counts the tokens it issued, so tests can check a client's token cache.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey as _;

/// The `service` the issuer and registry agree on.
pub const SERVICE: &str = "ocikit-test-registry";
/// The `iss` claim.
pub const ISSUER: &str = "ocikit-test-issuer";

/// A running token issuer; stops when dropped.
pub struct TokenIssuer {
    /// The token endpoint, `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate the registry must trust (`rootcertbundle`).
    pub cert: PathBuf,
    issued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: String,
}

struct State {
    key: SigningKey,
    x5c: String,
    users: Vec<(String, String)>,
    issued: Arc<AtomicUsize>,
}

impl TokenIssuer {
    /// Starts an issuer accepting `users` (name, password); anonymous
    /// requests get tokens that grant nothing. `None` when openssl is missing.
    pub fn start(dir: &Path, users: &[(&str, &str)]) -> Option<TokenIssuer> {
        let (cert, key) = crate::pki::self_signed(dir, "token-signer")?;
        let key_pem = std::fs::read_to_string(&key).expect("signer key");
        let key = SigningKey::from_pkcs8_pem(&key_pem).expect("PKCS#8 P-256 key");
        let cert_pem = std::fs::read_to_string(&cert).expect("signer cert");
        let x5c: String = cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token issuer");
        let addr = listener.local_addr().expect("addr").to_string();
        let issued = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(State {
            key,
            x5c,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            issued: issued.clone(),
        });
        let stop_flag = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let state = state.clone();
                    std::thread::spawn(move || serve(stream, &state));
                }
            }
        });
        Some(TokenIssuer {
            realm: format!("http://{addr}/token"),
            cert,
            issued,
            stop,
            addr,
        })
    }

    /// The registry's `auth:` section trusting this issuer.
    pub fn registry_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            self.cert.display()
        )
    }

    /// How many tokens were handed out so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(stream: TcpStream, state: &State) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            match k {
                "scope" => scopes.push(percent_decode(v)),
                "service" => service = percent_decode(v),
                _ => {}
            }
        }
    }
    let user = match authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
    {
        None => None,
        Some(encoded) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .unwrap_or_default();
            let known = state
                .users
                .iter()
                .find(|(u, p)| decoded == format!("{u}:{p}"));
            match known {
                Some((u, _)) => Some(u.clone()),
                None => {
                    respond(
                        &stream,
                        "401 Unauthorized",
                        r#"{"details":"bad credentials"}"#,
                    );
                    return;
                }
            }
        }
    };
    if service != SERVICE {
        respond(
            &stream,
            "400 Bad Request",
            r#"{"details":"unknown service"}"#,
        );
        return;
    }
    // Authenticated users get what they ask for; anonymous ones nothing.
    let access: Vec<serde_json::Value> = if user.is_some() {
        scopes
            .iter()
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let n = state.issued.fetch_add(1, Ordering::SeqCst);
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [state.x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": user.clone().unwrap_or_default(), "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("t{n}-{now}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature: Signature = state.key.sign(signing_input.as_bytes());
    let token = format!("{signing_input}.{}", b64url(&signature.to_bytes()));
    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
    respond(&stream, "200 OK", &body);
}

fn respond(mut stream: &TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}
