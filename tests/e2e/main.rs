//! End-to-end tests: each topic module drives the real `billd` binary.
