//! Biller tasks.
