//! X12 5010 toolkit for billd: reads, validates and writes the HIPAA
//! transactions a billing office exchanges with payers.
//!
//! # Layout
//! - [`reader`]: bytes to envelopes of located segments (delimiters from the
//!   ISA, envelope checks, strict and lenient modes).
//! - [`segment`]: the generic segment / element / component model.

pub mod error;
pub mod fields;
pub mod reader;
pub mod segment;
pub mod segments;

pub use error::{Issue, IssueKind, Loc, ReadError, Severity, WriteError};
pub use reader::{Mode, read_raw};
pub use segment::{Delimiters, Element, Segment};
