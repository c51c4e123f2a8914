//! How the copy engine tells its caller what it is doing, without printing:
//! the tool turns these events into progress bars on a TTY or a plain line
//! every few seconds, and tests can count them.

use crate::digest::Digest;

/// One thing that happened during a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A blob transfer starts (`size` from its descriptor).
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// `bytes` more bytes of a blob were moved.
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// Bytes since the last event.
        bytes: u64,
    },
    /// A blob is at the destination.
    BlobDone {
        /// The blob.
        digest: Digest,
        /// How it got there.
        how: BlobOutcome,
    },
    /// A manifest or index was written.
    ManifestWritten {
        /// Its digest at the destination.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// Something a user should know (a digest changed, a signature copied).
    Note(String),
}

/// How a blob reached the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Its bytes were transferred.
    Copied,
    /// It was already there (HEAD or file present).
    Skipped,
    /// A cross-repository mount on the same registry.
    Mounted,
}

/// A receiver of [`Event`]s; shared between the parallel blob transfers.
pub trait Progress: Send + Sync {
    /// Called for every event, from any task.
    fn event(&self, event: Event);
}

/// Progress that goes nowhere (`--quiet`, libraries, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: Event) {}
}
