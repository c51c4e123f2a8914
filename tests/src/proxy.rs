//! A TCP relay that counts connections: put between a tool and a registry
//! to check connection reuse and concurrency without timing anything.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A running relay from a free loopback port to `upstream`.
pub struct CountingProxy {
    /// `127.0.0.1:PORT`, the address to give the tool.
    pub addr: String,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
}

impl CountingProxy {
    /// Starts relaying to `upstream` (`host:port`); the relay threads live
    /// as long as the test process.
    pub fn start(upstream: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the relay");
        let addr = listener.local_addr().expect("relay address").to_string();
        let stats = Arc::new(Stats::default());
        let upstream = upstream.to_owned();
        let counting = Arc::clone(&stats);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                counting.accepted.fetch_add(1, Ordering::SeqCst);
                let open = counting.open.fetch_add(1, Ordering::SeqCst) + 1;
                counting.max_open.fetch_max(open, Ordering::SeqCst);
                let stats = Arc::clone(&counting);
                std::thread::spawn(move || {
                    relay(client, server);
                    stats.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingProxy { addr, stats }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// The most connections that were open at one time.
    pub fn max_open(&self) -> usize {
        self.stats.max_open.load(Ordering::SeqCst)
    }
}

/// Copies both ways until either side closes.
fn relay(client: TcpStream, server: TcpStream) {
    let (Ok(mut client_read), Ok(mut server_write)) = (client.try_clone(), server.try_clone())
    else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = std::io::copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Both);
    let _ = upstream.join();
}
