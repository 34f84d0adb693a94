//! Job framework.
