//! The injected clock.
