//! Located problems found while reading or checking X12.
//!
//! Every problem names where it is (interchange, segment number, element
//! position) and what is wrong, but never the value of an element that could
//! hold patient data: only segment identifiers, codes, counts and control
//! numbers appear in messages.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a problem sits in the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Loc {
    /// 1-based index of the interchange (ISA) in the file; 0 before any ISA.
    pub interchange: u32,
    /// 1-based number of the segment counted from the start of the file.
    pub segment: u32,
    /// 1-based position of the segment inside its transaction set (ST = 1),
    /// when the segment lies inside one. This is the number a 999 reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_transaction: Option<u32>,
    /// Identifier of the segment (for example `CLP`), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub segment_id: String,
    /// 1-based element position inside the segment, when the problem is in
    /// one element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element: Option<u16>,
}

impl Loc {
    /// The same location narrowed to one element.
    #[must_use]
    pub fn at_element(&self, element: u16) -> Loc {
        Loc {
            element: Some(element),
            ..self.clone()
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interchange {}, segment {}",
            self.interchange, self.segment
        )?;
        if !self.segment_id.is_empty() {
            write!(f, " ({})", self.segment_id)?;
        }
        if let Some(n) = self.in_transaction {
            write!(f, " [transaction segment {n}]")?;
        }
        if let Some(e) = self.element {
            write!(f, ", element {e:02}")?;
        }
        Ok(())
    }
}

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input breaks the standard or the implementation guide; a strict
    /// reader rejects it and `billd x12 validate` exits 1.
    Error,
    /// Suspicious but readable (for example a GS08 version other than the
    /// one billd writes).
    Warning,
}

/// What is wrong. Messages carry codes, counts and control numbers only.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssueKind {
    /// The input is empty or only whitespace.
    #[error("empty input")]
    Empty,
    /// The first segment is not an ISA, or the ISA is too short to hold
    /// its 16 elements and the terminators.
    #[error("no usable ISA interchange header: {reason}")]
    NoIsa {
        /// Why the header could not be used.
        reason: String,
    },
    /// An ISA element does not have its fixed width.
    #[error("ISA{element:02} has {found} characters, expected {expected}")]
    IsaWidth {
        /// Element number.
        element: u16,
        /// Width found.
        found: usize,
        /// Width required.
        expected: usize,
    },
    /// The delimiters chosen in the ISA clash (two roles share a character,
    /// or one is alphanumeric).
    #[error("ambiguous delimiters in ISA: {reason}")]
    BadDelimiters {
        /// Which delimiters clash.
        reason: String,
    },
    /// The last segment has no segment terminator.
    #[error("segment not terminated")]
    Unterminated,
    /// A segment identifier is not 2–3 upper-case letters or digits.
    #[error("bad segment identifier")]
    BadSegmentId,
    /// Bytes that are not UTF-8 text.
    #[error("segment is not valid UTF-8 text")]
    NotText,
    /// A segment appears where the envelope does not allow it.
    #[error("{segment} segment outside {expected}")]
    OutOfEnvelope {
        /// The segment identifier.
        segment: String,
        /// The envelope it should be inside (for example `transaction set`).
        expected: String,
    },
    /// An envelope was opened and never closed.
    #[error("missing {trailer} trailer")]
    MissingTrailer {
        /// The missing trailer segment (SE, GE or IEA).
        trailer: String,
    },
    /// Trailer and header control numbers differ.
    #[error("{trailer} control number {found} does not match {header} control number {expected}")]
    ControlMismatch {
        /// Trailer element, e.g. `SE02`.
        trailer: String,
        /// Header element, e.g. `ST02`.
        header: String,
        /// Value in the trailer.
        found: String,
        /// Value in the header.
        expected: String,
    },
    /// A trailer count is wrong.
    #[error("{element} says {found}, counted {counted}")]
    CountMismatch {
        /// The count element (SE01, GE01, IEA01).
        element: String,
        /// The value written in the trailer.
        found: String,
        /// What billd counted.
        counted: u32,
    },
    /// The transaction's version is one billd does not model.
    #[error("unsupported version {version}")]
    UnsupportedVersion {
        /// The version found (ISA12, GS08 or ST03).
        version: String,
    },
    /// No typed model exists for this transaction set; it is kept as
    /// generic segments.
    #[error("no typed model for transaction set {set} {version}; kept as generic segments")]
    UntypedTransaction {
        /// ST01.
        set: String,
        /// GS08/ST03.
        version: String,
    },
    /// The implementation guide version differs from the one billd models.
    #[error("implementation guide {found} where {expected} is expected")]
    GuideVersion {
        /// Version found (GS08 or ST03).
        found: String,
        /// The guide billd reads and writes.
        expected: String,
    },
    /// A segment the guide requires is absent.
    #[error("required segment {segment} missing in loop {in_loop}")]
    MissingSegment {
        /// Segment identifier (with qualifier when that matters).
        segment: String,
        /// Loop that should hold it.
        in_loop: String,
    },
    /// A segment the model does not expect here; kept as it is.
    #[error("unexpected segment {segment} in loop {in_loop}")]
    UnexpectedSegment {
        /// Segment identifier.
        segment: String,
        /// Loop it was found in.
        in_loop: String,
    },
    /// A segment is not where the guide puts it (999 IK304 code 7).
    #[error("segment {segment} out of order in loop {in_loop} ({how})")]
    OutOfOrder {
        /// Segment identifier.
        segment: String,
        /// Loop it was found in.
        in_loop: String,
        /// What it follows.
        how: String,
    },
    /// A loop occurs more often than the guide allows (999 IK304 code 4).
    #[error("loop {loop_id} exceeds its maximum of {max}")]
    LoopRepeat {
        /// Loop identifier.
        loop_id: String,
        /// Maximum repeats.
        max: u16,
    },
    /// A required element is empty.
    #[error("required element missing")]
    MissingElement,
    /// An element has more structure than its definition allows (a
    /// composite where a simple element belongs, a repetition, or an element
    /// past the last defined position).
    #[error("element has unexpected {what}")]
    ElementShape {
        /// What was unexpected.
        what: String,
    },
    /// A numeric element is not a number.
    #[error("element is not a valid {what}")]
    BadNumber {
        /// `amount`, `quantity` or `count`.
        what: String,
    },
    /// A code is not in the list the guide allows.
    #[error("code {code} is not a valid {list}")]
    BadCode {
        /// The code found (codes are not patient data).
        code: String,
        /// The code list.
        list: String,
    },
    /// An 835 does not balance.
    #[error("{rule}: expected {expected}, found {found}")]
    Imbalance {
        /// The balancing rule broken.
        rule: String,
        /// The amount the rule requires.
        expected: String,
        /// The amount in the file.
        found: String,
    },
    /// HL hierarchy is inconsistent (parent missing, numbering wrong).
    #[error("hierarchy: {reason}")]
    Hierarchy {
        /// What is inconsistent.
        reason: String,
    },
}

/// One located finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub loc: Loc,
    /// What.
    #[serde(flatten)]
    pub kind: IssueKind,
}

impl Issue {
    /// An error at `loc`.
    #[must_use]
    pub fn error(loc: Loc, kind: IssueKind) -> Issue {
        Issue {
            severity: Severity::Error,
            loc,
            kind,
        }
    }

    /// A warning at `loc`.
    #[must_use]
    pub fn warning(loc: Loc, kind: IssueKind) -> Issue {
        Issue {
            severity: Severity::Warning,
            loc,
            kind,
        }
    }

    /// True for errors.
    #[must_use]
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}: {}", self.loc, self.kind)
    }
}

/// Reading failed. Retrying cannot help: the input itself is at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({} error(s) in all)", .issues[0], .issues.len())]
pub struct ReadError {
    /// Every error found, in input order; never empty.
    pub issues: Vec<Issue>,
}

impl ReadError {
    /// The first (most significant) error.
    #[must_use]
    pub fn first(&self) -> &Issue {
        &self.issues[0]
    }
}

/// A typed model could not be written back as X12.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// An element value contains one of the chosen delimiters. Retrying
    /// with other delimiters can help.
    #[error("element {element:02} of {segment} contains a delimiter character")]
    DelimiterInData {
        /// Segment identifier.
        segment: String,
        /// Element position.
        element: u16,
    },
    /// A model is not complete enough to write (for example no
    /// transactions in a group).
    #[error("cannot write: {0}")]
    Incomplete(String),
}
