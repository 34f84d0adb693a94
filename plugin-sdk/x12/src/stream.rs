//! Reading and validating large files transaction set by transaction set,
//! in memory bounded by the largest transaction set rather than the file:
//! what `billd x12 validate` and remittance posting use.
//!
//! [`Transactions`] reads from any [`Read`] source and yields each
//! transaction set typed, with its envelope context and the findings
//! located up to its SE; envelope findings after the last transaction set
//! (GE and IEA trailers) come from [`Transactions::finish`]. Concatenating
//! every [`Streamed::issues`] and the finished issues gives exactly the
//! list [`crate::parse`] (with [`Transactions::parse`]) or
//! [`crate::validate::validate`] (with [`Transactions::validate`]) returns
//! for the whole file, in the same order.
//!
//! ```
//! use billd_x12::stream::Transactions;
//! use billd_x12::Body;
//! let x12 = "ISA*00*          *00*          *ZZ*A              *ZZ*B              \
//!            *240101*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20240101*1200*1*X*005010X221A1~\
//!            ST*835*0001~BPR*I*0*C*NON************20240101~TRN*1*T1*1~N1*PR*PAYER~\
//!            N1*PE*CLINIC*XX*1234567893~SE*6*0001~GE*1*1~IEA*1*000000001~";
//! let mut stream = Transactions::validate(x12.as_bytes());
//! for item in &mut stream {
//!     let item = item.unwrap();
//!     assert!(matches!(item.transaction.body, Body::Remittance(_)));
//!     assert!(item.imbalances.is_empty() && item.issues.is_empty());
//! }
//! let end = stream.finish().unwrap();
//! assert_eq!((end.transactions, end.errors), (1, 0));
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};
use std::sync::Arc;

use crate::balance::{Imbalance, balance};
use crate::document::{Body, Group, InterchangeHeader, Transaction};
use crate::document::{group_header, interchange_header, transaction};
use crate::error::{Issue, IssueKind, Loc, ReadError};
use crate::reader::{Mode, RawEvent, RawReader};
use crate::validate::{check_transaction, imbalance_issues};

/// One transaction set as streamed: typed, with where it was read and what
/// was found.
#[derive(Clone, Debug)]
pub struct Streamed {
    /// 1-based index of its interchange in the file.
    pub interchange: u32,
    /// The interchange's ISA header (shared by its transaction sets).
    pub header: Arc<InterchangeHeader>,
    /// The functional group's GS header (its `transactions` list is empty).
    pub group: Arc<Group>,
    /// The typed transaction set.
    pub transaction: Transaction,
    /// For an 835 read by [`Transactions::validate`]: its balancing
    /// problems (empty when it balances). Empty otherwise.
    pub imbalances: Vec<Imbalance>,
    /// Findings not reported with an earlier transaction set and located
    /// at or before this one's SE, in file order: envelope problems of
    /// earlier envelopes, this set's own reader, structure, code and
    /// balancing findings. A missing SE is reported with the next item.
    pub issues: Vec<Issue>,
}

impl Streamed {
    /// True when some issue reported with this item is an error.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(Issue::is_error)
    }
}

/// What is left when the stream is exhausted.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Finished {
    /// Findings after the last transaction set (its trailers, GE and IEA
    /// checks, a missing trailer), in file order.
    pub issues: Vec<Issue>,
    /// Interchanges read.
    pub interchanges: u32,
    /// Transaction sets read.
    pub transactions: u64,
    /// Error findings over the whole file (yielded and finished).
    pub errors: u64,
    /// Warning findings over the whole file.
    pub warnings: u64,
}

/// Why a stream could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading the source failed.
    #[error("reading failed: {0}")]
    Io(#[from] io::Error),
    /// No interchange could be read at all, or (strict mode) some finding
    /// is an error: every error finding of the file, located.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Which findings a stream reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checks {
    /// Reader and typed-model findings, as [`crate::parse`].
    Parse(Mode),
    /// Everything [`crate::validate::validate`] finds.
    Validate,
}

/// Where a finding sorts: its location, then which stage found it, then
/// the order it was found in (the order the whole-file functions give).
type Key = (u32, u32, Option<u16>, u8, u64);

struct Pending {
    key: Key,
    issue: Issue,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

/// Stages in the order the whole-file functions list findings at one place.
const READER: u8 = 0;
const TYPED: u8 = 1;
const CODES: u8 = 2;
const BALANCE: u8 = 3;

/// Typed transaction sets from an X12 source, one at a time (see the
/// module documentation). Iterate it, then call [`Transactions::finish`].
pub struct Transactions<R> {
    raw: RawReader<R>,
    checks: Checks,
    interchange: u32,
    header: Arc<InterchangeHeader>,
    group: Arc<Group>,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    transactions: u64,
    errors: u64,
    warnings: u64,
    /// Strict mode: every error so far, for the final [`ReadError`].
    strict_errors: Vec<Issue>,
    failed: bool,
    // Reused per transaction set.
    typed: Vec<Issue>,
    codes: Vec<Issue>,
}

impl<R: Read> Transactions<R> {
    /// Streams what [`crate::parse`] reads: typed transaction sets with
    /// reader and structure findings. In [`Mode::Strict`] the stream still
    /// yields every transaction set, and [`Transactions::finish`] fails
    /// with every error when there is one (so act on nothing before it).
    pub fn parse(input: R, mode: Mode) -> Self {
        Self::new(input, Checks::Parse(mode))
    }

    /// Streams what [`crate::validate::validate`] finds: also code values,
    /// NPI check digits, HL numbering and, for 835s, balancing (each
    /// [`Streamed::imbalances`] is its transaction's balance check).
    pub fn validate(input: R) -> Self {
        Self::new(input, Checks::Validate)
    }

    fn new(input: R, checks: Checks) -> Self {
        Transactions {
            raw: RawReader::new(input),
            checks,
            interchange: 0,
            header: Arc::default(),
            group: Arc::default(),
            pending: BinaryHeap::new(),
            seq: 0,
            transactions: 0,
            errors: 0,
            warnings: 0,
            strict_errors: Vec::new(),
            failed: false,
            typed: Vec::new(),
            codes: Vec::new(),
        }
    }

    /// Bytes held by the read buffer (bounded by the largest segment, not
    /// by the input).
    #[must_use]
    pub fn buffer_capacity(&self) -> usize {
        self.raw.buffer_capacity()
    }

    fn push(&mut self, phase: u8, issue: Issue) {
        let el = match self.checks {
            Checks::Validate => issue.loc.element,
            Checks::Parse(_) => None,
        };
        let key = (
            issue.loc.interchange,
            issue.loc.segment,
            el,
            phase,
            self.seq,
        );
        self.seq += 1;
        self.pending.push(Reverse(Pending { key, issue }));
    }

    fn absorb_reader_issues(&mut self) {
        for i in self.raw.take_issues() {
            self.push(READER, i);
        }
    }

    /// Takes the pending findings located before `(interchange, segment)`.
    fn flush_below(&mut self, bound: (u32, u32)) -> Vec<Issue> {
        let mut out = Vec::new();
        while let Some(Reverse(p)) = self.pending.peek() {
            if (p.key.0, p.key.1) >= bound {
                break;
            }
            if let Some(Reverse(p)) = self.pending.pop() {
                out.push(p.issue);
            }
        }
        for i in &out {
            if i.is_error() {
                self.errors += 1;
                if self.checks == Checks::Parse(Mode::Strict) {
                    self.strict_errors.push(i.clone());
                }
            } else {
                self.warnings += 1;
            }
        }
        out
    }

    fn next_streamed(&mut self) -> io::Result<Option<Streamed>> {
        loop {
            let event = self.raw.next_event()?;
            self.absorb_reader_issues();
            match event {
                None => return Ok(None),
                Some(RawEvent::InterchangeStart { index, isa, .. }) => {
                    self.interchange = index;
                    self.header = Arc::new(interchange_header(&isa.segment));
                }
                Some(RawEvent::GroupStart { gs }) => {
                    self.group = Arc::new(group_header(&gs.segment));
                }
                Some(RawEvent::GroupEnd { .. } | RawEvent::InterchangeEnd { .. }) => {}
                Some(RawEvent::Transaction(t)) => {
                    let ic = self.interchange;
                    // Later findings lie after this set's SE; without an SE,
                    // after the segment that closed it (whose own findings
                    // are all in by now, but a set starting there may add).
                    let bound = match &t.se {
                        Some(se) => (ic, se.number + 1),
                        None => (self.raw.interchanges(), self.raw.segment_number()),
                    };
                    let validating = self.checks == Checks::Validate;
                    let mut codes = std::mem::take(&mut self.codes);
                    let mut typed = std::mem::take(&mut self.typed);
                    if validating {
                        check_transaction(ic, &t, &mut codes);
                    }
                    let transaction = transaction(t, &self.group.version, ic, &mut typed);
                    let mut imbalances = Vec::new();
                    let mut balance_issues = Vec::new();
                    if validating && let Body::Remittance(r) = &transaction.body {
                        imbalances = balance(r);
                        imbalance_issues(ic, &transaction, &imbalances, &mut balance_issues);
                    }
                    for i in typed.drain(..) {
                        self.push(TYPED, i);
                    }
                    for i in codes.drain(..) {
                        self.push(CODES, i);
                    }
                    for i in balance_issues {
                        self.push(BALANCE, i);
                    }
                    (self.typed, self.codes) = (typed, codes);
                    self.transactions += 1;
                    let issues = self.flush_below(bound);
                    return Ok(Some(Streamed {
                        interchange: ic,
                        header: Arc::clone(&self.header),
                        group: Arc::clone(&self.group),
                        transaction,
                        imbalances,
                        issues,
                    }));
                }
            }
        }
    }

    /// Reads whatever the iteration left (its findings are included) and
    /// returns the findings after the last transaction set with totals.
    ///
    /// # Errors
    /// [`StreamError::Io`] when reading fails; [`StreamError::Read`] when no
    /// interchange could be read, or in strict parse mode when any finding
    /// of the file is an error (then with every error, located).
    pub fn finish(mut self) -> Result<Finished, StreamError> {
        let mut issues = Vec::new();
        while let Some(item) = self.next_streamed()? {
            issues.extend(item.issues);
        }
        issues.extend(self.flush_below((u32::MAX, u32::MAX)));
        if self.raw.interchanges() == 0 {
            let mut issues: Vec<Issue> = issues.into_iter().filter(Issue::is_error).collect();
            if issues.is_empty() {
                issues.push(Issue::error(Loc::default(), IssueKind::Empty));
            }
            return Err(ReadError { issues }.into());
        }
        if self.checks == Checks::Parse(Mode::Strict) && !self.strict_errors.is_empty() {
            return Err(ReadError {
                issues: self.strict_errors,
            }
            .into());
        }
        Ok(Finished {
            issues,
            interchanges: self.raw.interchanges(),
            transactions: self.transactions,
            errors: self.errors,
            warnings: self.warnings,
        })
    }
}

impl<R: Read> Iterator for Transactions<R> {
    type Item = io::Result<Streamed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_streamed() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
