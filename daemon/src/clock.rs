//! The injected clock.
//!
//! Scheduling and billing logic never read the wall clock directly: they ask
//! a [`Clock`], so tests can pin "now" to a daylight-saving boundary or an
//! aging threshold and run at any date.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// A source of the current instant.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = DateTime::parse_from_rfc3339("2027-03-14T06:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(chrono::Duration::minutes(2));
        assert_eq!(c.now(), t0 + chrono::Duration::minutes(2));
        c.set(t0);
        assert_eq!(c.now(), t0);
    }
}
