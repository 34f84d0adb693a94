//! X12 5010 toolkit for billd: reads, validates and writes the HIPAA
//! transactions a billing office exchanges with payers (270/271, 276/277,
//! 277CA, 835, 837P, 999).
//!
//! # Layout
//! - [`reader`]: bytes to envelopes of located segments (delimiters from the
//!   ISA, envelope checks, strict and lenient modes).
//! - [`segment`]: the generic segment / element / component model.
//! - [`fields`], [`segments`]: typed elements (amounts, composites) and typed
//!   segments that convert losslessly to and from generic ones.
//! - [`loops`]: implementation-guide loop trees and shared loop types.
//! - [`t835`], [`t837p`], [`thl`] (270/271/276/277/277CA), [`t999`]: typed
//!   transaction models; [`t999::acknowledge`] generates 999s.
//! - [`document`]: the typed document and [`parse`].
//! - [`writer`]: X12 out, fresh envelopes, caller-supplied control numbers.
//! - [`balance`]: 835 balancing. [`validate`]: all findings for a file.
//! - [`stream`]: the same, transaction set by transaction set from any
//!   `Read` in bounded memory (large files, remittance posting).
//! - [`json`]: the documented JSON form.
//!
//! ```
//! use billd_x12::{Mode, parse};
//! let x12 = "ISA*00*          *00*          *ZZ*A              *ZZ*B              \
//!            *240101*1200*^*00501*000000001*0*P*:~GS*FA*A*B*20240101*1200*1*X*005010X231A1~\
//!            ST*999*0001*005010X231A1~AK1*HC*7*005010X222A1~AK2*837*0001*005010X222A1~\
//!            IK5*A~AK9*A*1*1*1~SE*6*0001~GE*1*1~IEA*1*000000001~";
//! let parsed = parse(x12.as_bytes(), Mode::Strict).unwrap();
//! let group = &parsed.document.interchanges[0].groups[0];
//! match &group.transactions[0].body {
//!     billd_x12::Body::Ack(ack) => assert!(ack.accepted()),
//!     _ => unreachable!(),
//! }
//! ```

pub mod balance;
pub mod document;
pub mod error;
pub mod fields;
pub mod json;
pub mod loops;
#[cfg(not(target_family = "wasm"))]
pub mod prefetch;
pub mod reader;
pub mod segment;
pub mod segments;
pub mod stream;
pub mod t835;
pub mod t837p;
pub mod t999;
pub mod thl;
pub mod validate;
pub mod writer;

pub use document::{Body, Document, Group, Interchange, Parsed, Transaction, parse};
pub use error::{Issue, IssueKind, Loc, ReadError, Severity, WriteError};
pub use reader::{Mode, read_raw};
pub use segment::{Delimiters, Element, Segment};
pub use writer::{ControlNumbers, SequentialControlNumbers, WriteOptions, write_document};
