//! A static HTTP file server for tests that need a URL (remote imports, tar
//! bases over http): files from memory, one thread, stopped when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A running file server on a loopback port.
pub struct FileServer {
    /// `127.0.0.1:PORT`
    pub addr: String,
    requests: Arc<AtomicUsize>,
    by_path: Arc<Mutex<BTreeMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serves `files` (URL path such as `/a/b.tar` → bytes); any other path
    /// is a 404.
    pub fn start(files: &[(&str, Vec<u8>)]) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr").to_string();
        let files: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(path, body)| ((*path).to_owned(), body.clone()))
            .collect();
        let requests = Arc::new(AtomicUsize::new(0));
        let by_path = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, by_path, stop) = (requests.clone(), by_path.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        requests.fetch_add(1, Ordering::SeqCst);
                        if let Some(path) = serve(stream, &files) {
                            *by_path.lock().expect("lock").entry(path).or_insert(0) += 1;
                        }
                    }
                }
            })
        };
        FileServer {
            addr,
            requests,
            by_path,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// How many requests for `path` it has answered.
    pub fn requests_for(&self, path: &str) -> usize {
        self.by_path
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// Answers one request; returns its path.
fn serve(stream: TcpStream, files: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return None;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body): (&str, &[u8]) = match files.get(path) {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", b"not found\n"),
    };
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
    let _ = stream.flush();
    Some(path.to_owned())
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
