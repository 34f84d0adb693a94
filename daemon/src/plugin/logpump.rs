//! Plugin log lines leave the call's path through a bounded queue.
//!
//! Writing a log line can block: a daemon whose stderr nobody drains stalls
//! in `write`. A plugin's `log` import, and the output it printed, must not
//! stall its call past the deadline, so the host never writes them itself:
//! it offers each line to a [`LogPump`], whose own thread writes it to a
//! [`LogOutput`]. When the queue is full the line is dropped and counted
//! (logging is lossy, never a back door past the deadline), and the pump
//! writes how many it dropped once it can write again.
//!
//! The rates (lines and bytes per call and per minute) are enforced before a
//! line reaches the pump, in the `log` import.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// How much a plugin's line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineSource {
    /// The `log` import.
    Log,
    /// What the guest printed to stdout.
    Stdout,
    /// What the guest printed to stderr.
    Stderr,
}

/// One line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLogLine {
    /// The plugin.
    pub plugin: Arc<str>,
    /// Its level.
    pub level: LineLevel,
    /// Where it came from.
    pub source: LineSource,
    /// The text (already cut to the line cap).
    pub message: String,
}

/// Writes lines out; runs on the pump's thread, so it may block.
pub trait LogOutput: Send + Sync + 'static {
    /// Writes one line.
    fn write(&self, line: &PluginLogLine);
    /// Writes that `count` lines were dropped because the writer was slow.
    fn dropped(&self, count: u64);
}

/// Writes lines as `tracing` events (targets `billd::plugin`,
/// `billd::plugin::stdout`, `billd::plugin::stderr`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingLog;

impl LogOutput for TracingLog {
    fn write(&self, l: &PluginLogLine) {
        let plugin = &*l.plugin;
        let m = &l.message;
        match l.source {
            LineSource::Stdout => {
                tracing::debug!(target: "billd::plugin::stdout", plugin, "{m}")
            }
            LineSource::Stderr => {
                tracing::debug!(target: "billd::plugin::stderr", plugin, "{m}")
            }
            LineSource::Log => match l.level {
                LineLevel::Trace => tracing::trace!(target: "billd::plugin", plugin, "{m}"),
                LineLevel::Debug => tracing::debug!(target: "billd::plugin", plugin, "{m}"),
                LineLevel::Info => tracing::info!(target: "billd::plugin", plugin, "{m}"),
                LineLevel::Warn => tracing::warn!(target: "billd::plugin", plugin, "{m}"),
                LineLevel::Error => tracing::error!(target: "billd::plugin", plugin, "{m}"),
            },
        }
    }

    fn dropped(&self, count: u64) {
        tracing::warn!(
            target: "billd::plugin",
            dropped = count,
            "plugin log lines dropped: the log writer was not keeping up"
        );
    }
}

/// Lines queued at most: at the 4 KiB line cap, 4 MiB of text.
pub const QUEUE_LINES: usize = 1024;

/// The queue and its writer thread. The thread ends when the pump is
/// dropped (after writing what is queued).
#[derive(Debug)]
pub struct LogPump {
    tx: SyncSender<PluginLogLine>,
    dropped: Arc<AtomicU64>,
    /// Lines queued, and lines the writer has finished with.
    queued: AtomicU64,
    written: Arc<AtomicU64>,
}

impl LogPump {
    /// Starts the writer thread for `output`.
    pub fn start(output: Arc<dyn LogOutput>) -> std::io::Result<LogPump> {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        let written = Arc::new(AtomicU64::new(0));
        let w = written.clone();
        std::thread::Builder::new()
            .name("billd-plugin-log".into())
            .spawn(move || pump(rx, output, d, w))?;
        Ok(LogPump {
            tx,
            dropped,
            queued: AtomicU64::new(0),
            written,
        })
    }

    /// Offers a line; never blocks. False if it was dropped.
    pub fn offer(&self, line: PluginLogLine) -> bool {
        match self.tx.try_send(line) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::SeqCst);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits, at most `limit`, until the writer has written every line
    /// queued before this call (a test session marks its log after them).
    pub fn settle(&self, limit: std::time::Duration) {
        let target = self.queued.load(Ordering::SeqCst);
        let until = std::time::Instant::now() + limit;
        while self.written.load(Ordering::SeqCst) < target && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Lines dropped so far and not yet reported by the writer.
    pub fn dropped_pending(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn pump(
    rx: Receiver<PluginLogLine>,
    output: Arc<dyn LogOutput>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
) {
    while let Ok(line) = rx.recv() {
        let n = dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            output.dropped(n);
        }
        output.write(&line);
        written.fetch_add(1, Ordering::SeqCst);
    }
    let n = dropped.swap(0, Ordering::Relaxed);
    if n > 0 {
        output.dropped(n);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    /// A writer that blocks until opened, like an undrained stderr.
    #[derive(Default)]
    pub(crate) struct Stuck {
        open: Mutex<bool>,
        cv: Condvar,
        pub lines: Mutex<Vec<String>>,
        pub dropped: AtomicU64,
    }

    impl Stuck {
        pub fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    impl LogOutput for Stuck {
        fn write(&self, line: &PluginLogLine) {
            let mut g = self.open.lock().unwrap();
            while !*g {
                g = self.cv.wait(g).unwrap();
            }
            self.lines.lock().unwrap().push(line.message.clone());
        }
        fn dropped(&self, count: u64) {
            self.dropped.fetch_add(count, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_blocked_writer_drops_lines_instead_of_blocking() {
        let out = Arc::new(Stuck::default());
        let pump = LogPump::start(out.clone()).unwrap();
        let line = |i: usize| PluginLogLine {
            plugin: "p".into(),
            level: LineLevel::Info,
            source: LineSource::Log,
            message: format!("line {i}"),
        };
        let started = Instant::now();
        let kept = (0..5 * QUEUE_LINES)
            .filter(|i| pump.offer(line(*i)))
            .count();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "offering blocked"
        );
        assert!(kept <= QUEUE_LINES + 1, "kept {kept}");
        // Counted as pending, or already reported if the writer thread took
        // its first line after the queue had filled.
        let counted = pump.dropped_pending() + out.dropped.load(Ordering::SeqCst);
        assert!(counted as usize >= 4 * QUEUE_LINES - 1, "{counted}");
        out.open();
        drop(pump);
        // The thread drains and reports the drops after the writer opens.
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.dropped.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(out.dropped.load(Ordering::SeqCst) >= 4 * QUEUE_LINES as u64 - 1);
        assert_eq!(out.lines.lock().unwrap()[0], "line 0");
    }
}
