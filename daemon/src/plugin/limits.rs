//! The limits a plugin can run into, and how a breach is reported.
//!
//! The host enforces each limit itself (state quota, log and audit rates,
//! request headers, result size); this module names them and carries the
//! one report per (plugin, limit) the embedder hears about through
//! [`PluginEvents`]. The host knows nothing of what the embedder does with a
//! report (the daemon raises a biller task); a report names the plugin and
//! the limit, never the data that ran into it.

use std::sync::atomic::{AtomicBool, Ordering};

/// A limit a plugin ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Limit {
    /// The number of keys in its state.
    StateKeys,
    /// The bytes of its state (keys and stored values).
    StateBytes,
    /// Log lines or bytes in one call.
    LogPerCall,
    /// Log lines or bytes per minute.
    LogPerMinute,
    /// Audit records per second (further HTTP attempts were counted, not
    /// recorded one by one).
    AuditRate,
    /// Request headers (count or total bytes).
    RequestHeaders,
    /// Data one call may transfer into the host (results, request bodies).
    TransferSize,
}

impl Limit {
    /// Every limit, in a fixed order.
    pub const ALL: [Limit; 7] = [
        Limit::StateKeys,
        Limit::StateBytes,
        Limit::LogPerCall,
        Limit::LogPerMinute,
        Limit::AuditRate,
        Limit::RequestHeaders,
        Limit::TransferSize,
    ];

    /// The limit's name in reports and task dedupe keys.
    pub fn name(self) -> &'static str {
        match self {
            Limit::StateKeys => "state-keys",
            Limit::StateBytes => "state-bytes",
            Limit::LogPerCall => "log-per-call",
            Limit::LogPerMinute => "log-per-minute",
            Limit::AuditRate => "audit-rate",
            Limit::RequestHeaders => "request-headers",
            Limit::TransferSize => "transfer-size",
        }
    }

    fn index(self) -> usize {
        Limit::ALL.iter().position(|l| *l == self).unwrap_or(0)
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `text` cut to at most `max` bytes at a character boundary, and how many
/// bytes were cut off.
pub(crate) fn cut_at(text: &str, max: usize) -> (&str, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    (&text[..cut], text.len() - cut)
}

/// Hears about limit breaches. Called once per (plugin, limit) for each
/// loaded plugin, on the call's path: an implementation must be quick and
/// must not block on I/O that can stall (the daemon's writes one task to its
/// store).
pub trait PluginEvents: Send + Sync + 'static {
    /// `plugin` ran into `limit` for the first time since it was loaded.
    fn limit_reached(&self, plugin: &str, limit: Limit);
}

/// Reports breaches as `tracing` warnings (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingEvents;

impl PluginEvents for TracingEvents {
    fn limit_reached(&self, plugin: &str, limit: Limit) {
        tracing::warn!(target: "billd::plugin", plugin, limit = limit.name(), "plugin reached a limit");
    }
}

/// Which limits one loaded plugin has reported already.
#[derive(Debug, Default)]
pub(crate) struct Reported {
    flags: [AtomicBool; Limit::ALL.len()],
}

impl Reported {
    /// Tells `events` about the breach unless it was told before.
    pub fn report(&self, events: &dyn PluginEvents, plugin: &str, limit: Limit) {
        if !self.flags[limit.index()].swap(true, Ordering::SeqCst) {
            events.limit_reached(plugin, limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, Limit)>>);
    impl PluginEvents for Seen {
        fn limit_reached(&self, plugin: &str, limit: Limit) {
            self.0.lock().unwrap().push((plugin.into(), limit));
        }
    }

    #[test]
    fn each_limit_is_reported_once() {
        let seen = Seen::default();
        let r = Reported::default();
        for _ in 0..3 {
            r.report(&seen, "p", Limit::StateKeys);
            r.report(&seen, "p", Limit::AuditRate);
        }
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                ("p".into(), Limit::StateKeys),
                ("p".into(), Limit::AuditRate)
            ]
        );
        let names: std::collections::BTreeSet<_> = Limit::ALL.iter().map(|l| l.name()).collect();
        assert_eq!(names.len(), Limit::ALL.len());
    }
}
