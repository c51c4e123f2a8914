//! A per-client bound on open upload sessions, so that one client cannot
//! hold thousands of sessions (each an open file and memory on the server)
//! until the upload GC removes them a day later.
//!
//! A client is the authenticated user when there is one, else the peer's IP
//! address. A session counts from the POST that opens it until its PUT or
//! DELETE, and stops counting once no request has touched it for the idle
//! bound (the server's idle timeout), so an abandoned session never locks
//! its client out; a PATCH or PUT in flight keeps it counting however long
//! the body takes. A session that stopped counting still works, it just no
//! longer holds a slot. Single-request uploads (`POST ?digest=`) and
//! cross-repository mounts that answer 201 open no session.
//!
//! The cost is one mutex and a scan of the sessions tracked (at most the
//! limit times the number of active clients) per POST; nothing at all when
//! the limit is off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The open upload sessions of every client, and the limit per client.
#[derive(Debug)]
pub(crate) struct UploadSessions {
    max: usize,
    idle: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Session {
    client: Arc<str>,
    touched: Instant,
    /// Requests on the session in flight (a long PATCH keeps it counting).
    busy: usize,
}

impl Session {
    fn counts(&self, now: Instant, idle: Duration) -> bool {
        self.busy > 0 || now.saturating_duration_since(self.touched) < idle
    }
}

/// A slot taken for a session being opened; [`UploadSessions::bind`] gives
/// it the session's id (or frees it when opening failed).
#[derive(Debug)]
pub(crate) struct Reservation(String);

/// Marks a session busy while a request on it runs.
#[derive(Debug)]
pub(crate) struct Busy<'a> {
    sessions: &'a UploadSessions,
    id: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.sessions.lock().get_mut(&self.id) {
            s.busy = s.busy.saturating_sub(1);
            s.touched = Instant::now();
        }
    }
}

impl UploadSessions {
    /// At most `max` (at least 1) counting sessions per client; a session
    /// stops counting after `idle` without a request.
    pub(crate) fn new(max: usize, idle: Duration) -> UploadSessions {
        UploadSessions {
            max: max.max(1),
            idle,
            sessions: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }

    /// The limit per client.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// How long an untouched session keeps counting.
    pub(crate) fn idle(&self) -> Duration {
        self.idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `client`, or `Err` when it already has the limit's
    /// worth of counting sessions. The second value is how many sessions
    /// of all clients count now (for the gauge).
    pub(crate) fn reserve(&self, client: &str) -> (Result<Reservation, ()>, usize) {
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.counts(now, self.idle));
        let open = sessions.values().filter(|s| &*s.client == client).count();
        if open >= self.max {
            return (Err(()), sessions.len());
        }
        // Not an upload id: those never contain a ':'.
        let key = format!(":{}", self.next.fetch_add(1, Ordering::Relaxed));
        sessions.insert(
            key.clone(),
            Session {
                client: client.into(),
                touched: now,
                busy: 0,
            },
        );
        (Ok(Reservation(key)), sessions.len())
    }

    /// Gives a reserved slot its session id, or frees it (`None`: the
    /// session could not be opened).
    pub(crate) fn bind(&self, reservation: Reservation, id: Option<&str>) {
        let mut sessions = self.lock();
        if let Some(session) = sessions.remove(&reservation.0) {
            if let Some(id) = id {
                sessions.insert(id.to_owned(), session);
            }
        }
    }

    /// Marks session `id` busy until the guard drops (and touched then).
    pub(crate) fn busy(&self, id: &str) -> Busy<'_> {
        if let Some(s) = self.lock().get_mut(id) {
            s.busy += 1;
            s.touched = Instant::now();
        }
        Busy {
            sessions: self,
            id: id.to_owned(),
        }
    }

    /// Session `id` is finished or cancelled; returns how many still count.
    pub(crate) fn close(&self, id: &str) -> usize {
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.remove(id);
        sessions.retain(|_, s| s.counts(now, self.idle));
        sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_limit_and_others_are_unaffected() {
        let s = UploadSessions::new(2, Duration::from_secs(60));
        let (a, _) = s.reserve("alice");
        s.bind(a.expect("first"), Some("id-1"));
        let (a, open) = s.reserve("alice");
        assert_eq!(open, 2);
        s.bind(a.expect("second"), Some("id-2"));
        assert!(s.reserve("alice").0.is_err(), "third refused");
        let (b, _) = s.reserve("10.0.0.7");
        assert!(b.is_ok(), "another client has its own slots");
        s.bind(b.expect("b"), None);
        // Finishing one frees a slot; a failed open frees its reservation.
        assert_eq!(s.close("id-1"), 1);
        let (a, _) = s.reserve("alice");
        s.bind(a.expect("freed"), None);
        let (a, _) = s.reserve("alice");
        assert!(a.is_ok(), "a failed open gave its slot back");
    }

    #[test]
    fn idle_sessions_stop_counting_unless_busy() {
        let s = UploadSessions::new(1, Duration::from_millis(50));
        let (a, _) = s.reserve("alice");
        s.bind(a.expect("first"), Some("long"));
        let busy = s.busy("long");
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.reserve("alice").0.is_err(), "a PATCH in flight counts");
        drop(busy);
        assert!(s.reserve("alice").0.is_err(), "just touched");
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.reserve("alice").0.is_ok(), "idle past the bound");
        assert_eq!(s.max(), 1);
        assert_eq!(UploadSessions::new(0, s.idle()).max(), 1);
    }
}
