//! Turns X12 bytes into envelopes of located segments.
//!
//! Delimiters come from each ISA (any element, component, repetition and
//! segment characters; segments may or may not be followed by newlines; a
//! leading byte-order mark and leading whitespace are skipped). Envelopes are
//! checked as they close: ST/SE, GS/GE and ISA/IEA control numbers must
//! match and SE01, GE01 and IEA01 must equal what was counted. Problems are
//! collected with their location; [`Mode::Strict`] turns any error into a
//! [`ReadError`], [`Mode::Lenient`] keeps what could be read.
//!
//! [`RawReader`] reads from any [`Read`] source and yields one envelope
//! event at a time (a transaction set with its segments, group and
//! interchange starts and ends), so memory is bounded by the largest
//! transaction set rather than the input; [`read_raw`] collects its events.

use std::collections::VecDeque;
use std::io::{self, Read};

use crate::error::{Issue, IssueKind, Loc, ReadError};
use crate::segment::{Delimiters, Element, Located, Segment};

/// How the reader treats errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Any error fails the read.
    #[default]
    Strict,
    /// Read what can be read; report the rest as issues.
    Lenient,
}

/// One transaction set as read: ST, body, SE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTransaction {
    /// The ST segment.
    pub st: Located,
    /// Segments between ST and SE.
    pub body: Vec<Located>,
    /// The SE segment, if present.
    pub se: Option<Located>,
}

/// One functional group as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawGroup {
    /// The GS segment.
    pub gs: Located,
    /// Its transaction sets.
    pub transactions: Vec<RawTransaction>,
    /// The GE segment, if present.
    pub ge: Option<Located>,
}

/// One interchange as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawInterchange {
    /// 1-based index in the file.
    pub index: u32,
    /// Delimiters from its ISA.
    pub delimiters: Delimiters,
    /// The ISA segment (elements split on the element separator only).
    pub isa: Located,
    /// Its functional groups.
    pub groups: Vec<RawGroup>,
    /// The IEA segment, if present.
    pub iea: Option<Located>,
}

/// Everything read from one input.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RawDocument {
    /// Interchanges in input order.
    pub interchanges: Vec<RawInterchange>,
    /// Problems found, in input order.
    pub issues: Vec<Issue>,
}

/// Reads envelopes and segments from `input`.
///
/// # Errors
/// In strict mode, every error-severity issue is returned; in lenient mode
/// only an input with no readable interchange at all fails.
pub fn read_raw(input: &[u8], mode: Mode) -> Result<RawDocument, ReadError> {
    let doc = match collect(RawReader::new(input)) {
        Ok(doc) => doc,
        Err(e) => unreachable!("reading from memory cannot fail: {e}"),
    };
    let has_error = doc.issues.iter().any(Issue::is_error);
    if doc.interchanges.is_empty() || (mode == Mode::Strict && has_error) {
        let mut issues: Vec<Issue> = doc.issues.into_iter().filter(Issue::is_error).collect();
        if issues.is_empty() {
            issues.push(Issue::error(Loc::default(), IssueKind::Empty));
        }
        return Err(ReadError { issues });
    }
    Ok(doc)
}

/// Finds the delimiters of the ISA starting at `input[0]`. Returns them with
/// the length of the ISA segment including its terminator.
///
/// # Errors
/// The reason the ISA cannot be used.
pub fn detect_delimiters(input: &[u8]) -> Result<(Delimiters, usize), IssueKind> {
    let no_isa = |reason: &str| IssueKind::NoIsa {
        reason: reason.to_owned(),
    };
    if input.len() < 4 || &input[..3] != b"ISA" {
        return Err(no_isa("input does not start with ISA"));
    }
    let element = input[3];
    if element.is_ascii_alphanumeric() || element.is_ascii_whitespace() {
        return Err(no_isa(
            "element separator after ISA is a letter, digit or space",
        ));
    }
    let mut seps = 0;
    let mut i = 3;
    let mut starts = [0usize; 17];
    while i < input.len() && seps < 16 {
        if input[i] == element {
            seps += 1;
            starts[seps] = i + 1;
        }
        i += 1;
    }
    if seps < 16 || i + 1 >= input.len() {
        return Err(no_isa("ISA ends before its 16th element and terminator"));
    }
    let component = input[i];
    let segment = input[i + 1];
    let isa11 = &input[starts[11]..starts[12] - 1];
    let isa12 = &input[starts[12]..starts[13] - 1];
    let repetition = if isa12 >= b"00501".as_slice()
        && isa11.len() == 1
        && !isa11[0].is_ascii_alphanumeric()
        && isa11[0] != b' '
    {
        Some(isa11[0])
    } else {
        None
    };
    let mut d = Delimiters {
        element,
        component,
        repetition,
        segment,
    };
    if component.is_ascii_alphanumeric() || segment.is_ascii_alphanumeric() {
        return Err(IssueKind::BadDelimiters {
            reason: "component separator or segment terminator is a letter or digit".into(),
        });
    }
    if component == element || segment == element || segment == component {
        return Err(IssueKind::BadDelimiters {
            reason: "two delimiters share one character".into(),
        });
    }
    if let Some(r) = d.repetition
        && (r == element || r == component || r == segment)
    {
        d.repetition = None;
    }
    Ok((d, i + 2))
}

const ISA_WIDTHS: [usize; 16] = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];

/// Bytes read from the source at a time; the buffer grows beyond this only
/// for a single segment (or ISA) longer than it.
const CHUNK: usize = 64 * 1024;

/// What [`RawReader::next_event`] yields, in input order. Every opened
/// envelope is closed by an end event (with `None` for a missing trailer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawEvent {
    /// An ISA opened an interchange.
    InterchangeStart {
        /// 1-based index in the file.
        index: u32,
        /// Delimiters from the ISA.
        delimiters: Delimiters,
        /// The ISA segment (elements split on the element separator only).
        isa: Located,
    },
    /// A GS opened a functional group (or, for an ST outside any group, a
    /// synthetic empty GS keeps the transaction, as [`read_raw`] does).
    GroupStart {
        /// The GS segment.
        gs: Located,
    },
    /// A transaction set closed (by its SE or by a missing trailer).
    Transaction(RawTransaction),
    /// The open functional group closed.
    GroupEnd {
        /// The GE segment, if present.
        ge: Option<Located>,
    },
    /// The open interchange closed.
    InterchangeEnd {
        /// The IEA segment, if present.
        iea: Option<Located>,
    },
}

/// Buffered bytes from the source: `buf[start..end]` is unread.
struct Input<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Input<R> {
    fn avail(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes after the unread ones (moving those to the front of
    /// the buffer first); false at the end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let n = (self.buf.len() * 2).max(CHUNK);
            self.buf.resize(n, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The envelope being read, with what its trailer is checked against.
struct OpenInterchange {
    index: u32,
    isa13: String,
    groups: u32,
}

struct OpenGroup {
    gs06: String,
    transactions: u32,
}

/// Reads X12 from any [`Read`] source one envelope event at a time, in
/// memory bounded by the largest transaction set (and the read buffer),
/// not by the input. Envelopes are checked as they close, exactly as
/// [`read_raw`] checks them (which is this reader collecting every event);
/// problems accumulate until [`RawReader::take_issues`].
pub struct RawReader<R> {
    input: Input<R>,
    started: bool,
    done: bool,
    seg_no: u32,
    /// Interchanges closed so far.
    closed: u32,
    delims: Option<Delimiters>,
    ic: Option<OpenInterchange>,
    group: Option<OpenGroup>,
    txn: Option<RawTransaction>,
    /// Body length of the last transaction set: the next one's body is
    /// allocated at that size rather than grown (and copied) step by step.
    body_hint: usize,
    issues: Vec<Issue>,
    events: VecDeque<RawEvent>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// True when `a` may hold the start of an ISA that [`detect_delimiters`]
/// cannot judge yet (it ends before the ISA's 16th element and terminator).
fn isa_needs_more(a: &[u8]) -> bool {
    if a.len() < 4 {
        return true;
    }
    if &a[..3] != b"ISA" || a[3].is_ascii_alphanumeric() || a[3].is_ascii_whitespace() {
        return false;
    }
    let element = a[3];
    let mut seps = 0;
    for (i, &b) in a.iter().enumerate().skip(3) {
        if b == element {
            seps += 1;
            if seps == 16 {
                return i + 2 >= a.len();
            }
        }
    }
    true
}

/// A segment split on the interchange's delimiters, with whether its
/// identifier is well formed and whether every value was UTF-8.
fn split(raw: &[u8], d: &Delimiters) -> (Segment, bool, bool) {
    // Almost every segment is valid UTF-8 with ASCII delimiters: then every
    // piece between delimiters is text too, checked once for the segment.
    let ascii =
        d.element.is_ascii() && d.component.is_ascii() && d.repetition.is_none_or(|r| r.is_ascii());
    let (seg, bad_text) = match std::str::from_utf8(raw) {
        Ok(text) if ascii => (split_text(text, d), false),
        _ => split_bytes(raw, d),
    };
    let id_ok = (2..=3).contains(&seg.id.len())
        && seg
            .id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && seg.id.as_bytes()[0].is_ascii_uppercase();
    (seg, id_ok, bad_text)
}

/// [`split`] of a segment that is text, with ASCII delimiters.
fn split_text(raw: &str, d: &Delimiters) -> Segment {
    let bytes = raw.as_bytes();
    // Counting first sizes the element list exactly (a pass the compiler
    // vectorizes); the split itself is one pass that also notes, per
    // element, whether it holds a component or repetition separator (most
    // hold neither and are copied whole).
    let separators = bytes.iter().filter(|&&b| b == d.element).count();
    let rep = d.repetition.unwrap_or(d.element);
    let mut elements = Vec::with_capacity(separators);
    let mut id = None;
    let mut start = 0;
    let mut nested = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == d.element {
            let piece = &raw[start..i];
            match id {
                None => id = Some(crate::segment::intern_id(piece)),
                Some(_) => elements.push(text_element(piece, d, nested)),
            }
            start = i + 1;
            nested = false;
        } else if b == d.component || b == rep {
            nested = true;
        }
    }
    let last = &raw[start..];
    let id = match id {
        None => crate::segment::intern_id(last),
        Some(id) => {
            elements.push(text_element(last, d, nested));
            id
        }
    };
    let mut seg = Segment { id, elements };
    seg.trim();
    seg
}

/// One element of a text segment; `nested` when it holds a component or
/// repetition separator.
fn text_element(p: &str, d: &Delimiters, nested: bool) -> Element {
    if !nested {
        return Element::Simple(p.to_owned());
    }
    let component = char::from(d.component);
    let repetition = d.repetition.map(char::from);
    let has_comp = p.contains(component);
    match repetition.filter(|&r| p.contains(r)) {
        None if !has_comp => Element::Simple(p.to_owned()),
        None => Element::from_components(p.split(component).map(str::to_owned).collect()),
        Some(r) => {
            let mut reps: Vec<Vec<String>> = p
                .split(r)
                .map(|rep| rep.split(component).map(str::to_owned).collect())
                .collect();
            if reps.len() == 1 {
                Element::from_components(reps.pop().unwrap_or_default())
            } else {
                Element::Repeated(reps)
            }
        }
    }
}

/// [`split`] of any bytes: values that are not UTF-8 are read lossily and
/// reported (the second value).
fn split_bytes(raw: &[u8], d: &Delimiters) -> (Segment, bool) {
    let mut parts = raw.split(|&b| b == d.element);
    let id_bytes = parts.next().unwrap_or_default();
    let id = crate::segment::intern_id(&String::from_utf8_lossy(id_bytes));
    let mut bad_text = false;
    let mut text = |b: &[u8]| -> String {
        match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                bad_text = true;
                String::from_utf8_lossy(b).into_owned()
            }
        }
    };
    let mut elements = Vec::with_capacity(raw.iter().filter(|&&b| b == d.element).count());
    for p in parts {
        let has_comp = p.contains(&d.component);
        let has_rep = d.repetition.is_some_and(|r| p.contains(&r));
        let el = if !has_comp && !has_rep {
            Element::Simple(text(p))
        } else if has_rep {
            let r = d.repetition.unwrap_or(d.component);
            let reps: Vec<Vec<String>> = p
                .split(|&b| b == r)
                .map(|rep| rep.split(|&b| b == d.component).map(&mut text).collect())
                .collect();
            if reps.len() == 1 {
                Element::from_components(reps.into_iter().next().unwrap_or_default())
            } else {
                Element::Repeated(reps)
            }
        } else {
            Element::from_components(p.split(|&b| b == d.component).map(&mut text).collect())
        };
        elements.push(el);
    }
    let mut seg = Segment { id, elements };
    seg.trim();
    (seg, bad_text)
}

impl<R: Read> RawReader<R> {
    /// A reader over `src` (read in chunks into one reused buffer; no
    /// need to wrap it in a `BufReader`).
    pub fn new(src: R) -> Self {
        RawReader {
            input: Input {
                src,
                buf: Vec::new(),
                start: 0,
                end: 0,
                eof: false,
            },
            started: false,
            done: false,
            seg_no: 0,
            closed: 0,
            delims: None,
            ic: None,
            group: None,
            txn: None,
            body_hint: 0,
            issues: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// The next envelope event, or `None` when the input is exhausted
    /// (every open envelope has then been closed and its problems found).
    ///
    /// # Errors
    /// Only when reading the source fails.
    pub fn next_event(&mut self) -> io::Result<Option<RawEvent>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if self.done {
                return Ok(None);
            }
            if !self.step()? {
                self.close_all();
                self.done = true;
            }
        }
    }

    /// Problems found since the last call, in input order.
    pub fn take_issues(&mut self) -> Vec<Issue> {
        std::mem::take(&mut self.issues)
    }

    /// Number of interchanges opened so far.
    #[must_use]
    pub fn interchanges(&self) -> u32 {
        self.closed + u32::from(self.ic.is_some())
    }

    /// Number (from 1, counted from the start of the input) of the last
    /// segment read.
    #[must_use]
    pub fn segment_number(&self) -> u32 {
        self.seg_no
    }

    /// Bytes held by the read buffer (it does not grow with the input).
    #[must_use]
    pub fn buffer_capacity(&self) -> usize {
        self.input.buf.capacity()
    }

    fn ic_index(&self) -> u32 {
        self.interchanges()
    }

    fn loc(&self, id: &str, in_txn: Option<u32>) -> Loc {
        Loc {
            interchange: self.ic_index(),
            segment: self.seg_no,
            in_transaction: in_txn,
            segment_id: id.to_owned(),
            element: None,
        }
    }

    fn err(&mut self, loc: Loc, kind: IssueKind) {
        self.issues.push(Issue::error(loc, kind));
    }

    fn skip_ws(&mut self) -> io::Result<()> {
        loop {
            let a = self.input.avail();
            // A whitespace delimiter is still skipped between segments: an
            // empty segment carries nothing.
            let n = a.iter().position(|&b| !is_ws(b)).unwrap_or(a.len());
            self.input.start += n;
            if self.input.start < self.input.end || !self.input.fill()? {
                return Ok(());
            }
        }
    }

    /// Reads one segment (or opens an interchange); false when nothing more
    /// can be read.
    fn step(&mut self) -> io::Result<bool> {
        if !self.started {
            self.started = true;
            while self.input.avail().len() < 3 && self.input.fill()? {}
            if self.input.avail().starts_with(b"\xEF\xBB\xBF") {
                self.input.start += 3;
            }
            self.skip_ws()?;
            if self.input.avail().is_empty() {
                self.err(Loc::default(), IssueKind::Empty);
                self.done = true;
                return Ok(true);
            }
        }
        self.skip_ws()?;
        if self.input.avail().is_empty() {
            return Ok(false);
        }
        if self.ic.is_none() {
            return self.start_interchange();
        }
        let Some(d) = self.delims else {
            return Ok(false);
        };
        let mut scanned = 0;
        let (len, terminated) = loop {
            let a = self.input.avail();
            if let Some(n) = a[scanned..].iter().position(|&b| b == d.segment) {
                break (scanned + n, true);
            }
            scanned = a.len();
            if !self.input.fill()? {
                break (scanned, false);
            }
        };
        let seg_start = self.input.start;
        let seg_end = seg_start + len + usize::from(terminated);
        self.input.start = seg_end;
        let mut raw = &self.input.buf[seg_start..seg_start + len];
        while let Some((&last, init)) = raw.split_last() {
            if (last == b'\r' || last == b'\n') && !d.is_delimiter(last) {
                raw = init;
            } else {
                break;
            }
        }
        if raw.is_empty() {
            return Ok(true);
        }
        self.seg_no += 1;
        let (seg, id_ok, bad_text) = split(raw, &d);
        let in_txn = self.txn.as_ref().map(|t| self.seg_no - t.st.number + 1);
        if !id_ok {
            let loc = self.loc("", in_txn);
            self.err(loc, IssueKind::BadSegmentId);
        }
        if bad_text {
            let loc = self.loc(&seg.id, in_txn);
            self.err(loc, IssueKind::NotText);
        }
        if !terminated {
            let loc = self.loc(&seg.id, None);
            self.err(loc, IssueKind::Unterminated);
        }
        self.place(seg, seg_start, seg_end);
        Ok(true)
    }

    /// Opens an interchange at the read position, or skips to the next
    /// `ISA`; false when nothing more can be read.
    fn start_interchange(&mut self) -> io::Result<bool> {
        while isa_needs_more(self.input.avail()) && self.input.fill()? {}
        let rest = self.input.avail();
        match detect_delimiters(rest) {
            Ok((d, len)) => {
                self.seg_no += 1;
                let body = &rest[..len - 1];
                let mut elements: Vec<Element> = body[4.min(body.len())..]
                    .split(|&b| b == d.element)
                    .map(|e| Element::Simple(String::from_utf8_lossy(e).into_owned()))
                    .collect();
                // ISA16 is the component separator itself.
                if let Some(Element::Simple(s)) = elements.last_mut() {
                    *s = String::from_utf8_lossy(&[d.component]).into_owned();
                }
                let isa = Segment {
                    id: "ISA".into(),
                    elements,
                };
                let index = self.closed + 1;
                let isa = Located {
                    segment: isa,
                    number: self.seg_no,
                    in_transaction: None,
                };
                self.input.start += len;
                self.delims = Some(d);
                self.ic = Some(OpenInterchange {
                    index,
                    isa13: isa.segment.get(13).to_owned(),
                    groups: 0,
                });
                self.check_isa_widths(&isa.segment, d);
                self.events.push_back(RawEvent::InterchangeStart {
                    index,
                    delimiters: d,
                    isa,
                });
                Ok(true)
            }
            Err(kind) => {
                self.seg_no += 1;
                let loc = Loc {
                    interchange: self.ic_index() + 1,
                    segment: self.seg_no,
                    segment_id: String::new(),
                    ..Loc::default()
                };
                if self.closed == 0 {
                    self.err(loc, kind);
                } else {
                    self.err(
                        loc,
                        IssueKind::OutOfEnvelope {
                            segment: "data".into(),
                            expected: "an interchange (after IEA)".into(),
                        },
                    );
                }
                // Resume at the next ISA, if any (past the current byte).
                let mut from = 1;
                loop {
                    let a = self.input.avail();
                    if let Some(p) = a
                        .get(from..)
                        .and_then(|s| s.windows(3).position(|w| w == b"ISA"))
                    {
                        self.input.start += from + p;
                        return Ok(true);
                    }
                    // Keep the last two bytes: an ISA may straddle a refill.
                    let next = a.len().saturating_sub(2).max(from).min(a.len());
                    self.input.start += next;
                    from = from.saturating_sub(next);
                    if !self.input.fill()? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    fn check_isa_widths(&mut self, isa: &Segment, d: Delimiters) {
        let els = &isa.elements;
        let loc = self.loc("ISA", None);
        if els.len() != 16 {
            self.err(
                loc,
                IssueKind::ElementShape {
                    what: format!("element count {} in ISA (16 required)", els.len()),
                },
            );
            return;
        }
        for (i, (e, w)) in els.iter().zip(ISA_WIDTHS).enumerate() {
            let n = e.value().chars().count();
            if n != w {
                self.err(
                    loc.at_element(i as u16 + 1),
                    IssueKind::IsaWidth {
                        element: i as u16 + 1,
                        found: n,
                        expected: w,
                    },
                );
            }
        }
        let isa11 = els[10].value().as_bytes();
        if els[11].value() >= "00501"
            && isa11.len() == 1
            && d.repetition.is_none()
            && !isa11[0].is_ascii_alphanumeric()
        {
            self.err(
                loc.at_element(11),
                IssueKind::BadDelimiters {
                    reason: "ISA11 repetition separator equals another delimiter".into(),
                },
            );
        }
        let version = els[11].value();
        if version < "00501" {
            let kind = IssueKind::UnsupportedVersion {
                version: format!("ISA12 {version}"),
            };
            self.err(loc.at_element(12), kind);
        }
    }

    fn located(&self, segment: Segment, in_txn: Option<u32>) -> Located {
        Located {
            segment,
            number: self.seg_no,
            in_transaction: in_txn,
        }
    }

    /// Files a segment read from `buf[seg_start..seg_end]` into its envelope.
    fn place(&mut self, seg: Segment, seg_start: usize, seg_end: usize) {
        match &*seg.id {
            "ISA" => {
                // An ISA inside an open interchange: the previous one lacks
                // its IEA. Re-read this ISA as a new interchange.
                let loc = self.loc("ISA", None);
                self.err(
                    loc,
                    IssueKind::MissingTrailer {
                        trailer: "IEA".into(),
                    },
                );
                self.close_all();
                // Rewind to the ISA so its delimiters are read again.
                self.seg_no -= 1;
                if let Some(p) = self.input.buf[seg_start..seg_end]
                    .windows(3)
                    .rposition(|w| w == b"ISA")
                {
                    self.input.start = seg_start + p;
                }
            }
            "GS" => {
                self.close_txn_missing();
                if self.group.is_some() {
                    self.missing("GE");
                    self.close_group(None);
                }
                let gs = self.located(seg, None);
                self.group = Some(OpenGroup {
                    gs06: gs.segment.get(6).to_owned(),
                    transactions: 0,
                });
                self.events.push_back(RawEvent::GroupStart { gs });
            }
            "ST" => {
                self.close_txn_missing();
                if self.group.is_none() {
                    let loc = self.loc("ST", None);
                    self.err(
                        loc,
                        IssueKind::OutOfEnvelope {
                            segment: "ST".into(),
                            expected: "a functional group (GS)".into(),
                        },
                    );
                }
                let st = self.located(seg, Some(1));
                self.txn = Some(RawTransaction {
                    st,
                    body: Vec::with_capacity(self.body_hint),
                    se: None,
                });
            }
            "SE" => {
                let Some(t) = &self.txn else {
                    let loc = self.loc("SE", None);
                    self.err(
                        loc,
                        IssueKind::OutOfEnvelope {
                            segment: "SE".into(),
                            expected: "a transaction set (ST)".into(),
                        },
                    );
                    return;
                };
                let in_txn = Some(self.seg_no - t.st.number + 1);
                let se = self.located(seg, in_txn);
                self.close_txn(Some(se));
            }
            "GE" => {
                self.close_txn_missing();
                if self.group.is_none() {
                    let loc = self.loc("GE", None);
                    self.err(
                        loc,
                        IssueKind::OutOfEnvelope {
                            segment: "GE".into(),
                            expected: "a functional group (GS)".into(),
                        },
                    );
                    return;
                }
                let ge = self.located(seg, None);
                self.close_group(Some(ge));
            }
            "IEA" => {
                self.close_txn_missing();
                if self.group.is_some() {
                    self.missing("GE");
                    self.close_group(None);
                }
                let iea = self.located(seg, None);
                self.close_interchange(Some(iea));
            }
            _ => {
                if let Some(t) = &mut self.txn {
                    let n = self.seg_no - t.st.number + 1;
                    t.body.push(Located {
                        segment: seg,
                        number: self.seg_no,
                        in_transaction: Some(n),
                    });
                } else {
                    let loc = self.loc(&seg.id, None);
                    self.err(
                        loc,
                        IssueKind::OutOfEnvelope {
                            segment: seg.id.to_string(),
                            expected: "a transaction set (ST)".into(),
                        },
                    );
                }
            }
        }
    }

    fn missing(&mut self, trailer: &str) {
        let loc = self.loc(trailer, None);
        self.err(
            loc,
            IssueKind::MissingTrailer {
                trailer: trailer.into(),
            },
        );
    }

    /// Closes an open transaction set that lacks its SE.
    fn close_txn_missing(&mut self) {
        if self.txn.is_some() {
            self.missing("SE");
            self.close_txn(None);
        }
    }

    fn close_txn(&mut self, se: Option<Located>) {
        let Some(mut txn) = self.txn.take() else {
            return;
        };
        self.body_hint = txn.body.len();
        if let Some(se) = &se {
            let counted = se.number - txn.st.number + 1;
            let loc = Loc {
                interchange: self.ic_index(),
                segment: se.number,
                in_transaction: se.in_transaction,
                segment_id: "SE".into(),
                element: None,
            };
            let se01 = se.segment.get(1);
            if se01.trim().parse::<u32>().ok() != Some(counted) {
                self.err(
                    loc.at_element(1),
                    IssueKind::CountMismatch {
                        element: "SE01".into(),
                        found: se01.into(),
                        counted,
                    },
                );
            }
            let (st02, se02) = (txn.st.segment.get(2), se.segment.get(2));
            if st02 != se02 {
                self.err(
                    loc.at_element(2),
                    IssueKind::ControlMismatch {
                        trailer: "SE02".into(),
                        header: "ST02".into(),
                        found: se02.into(),
                        expected: st02.into(),
                    },
                );
            }
        }
        txn.se = se;
        match &mut self.group {
            Some(g) => {
                g.transactions += 1;
                self.events.push_back(RawEvent::Transaction(txn));
            }
            None => {
                // ST outside a group was reported; keep it in a synthetic
                // group so nothing read is lost.
                let Some(ic) = &mut self.ic else { return };
                ic.groups += 1;
                let gs = Located {
                    segment: Segment::new("GS", &[]),
                    number: txn.st.number,
                    in_transaction: None,
                };
                self.events.push_back(RawEvent::GroupStart { gs });
                self.events.push_back(RawEvent::Transaction(txn));
                self.events.push_back(RawEvent::GroupEnd { ge: None });
            }
        }
    }

    fn close_group(&mut self, ge: Option<Located>) {
        let Some(g) = self.group.take() else {
            return;
        };
        if let Some(ge) = &ge {
            let loc = Loc {
                interchange: self.ic_index(),
                segment: ge.number,
                in_transaction: None,
                segment_id: "GE".into(),
                element: None,
            };
            let counted = g.transactions;
            let ge01 = ge.segment.get(1);
            if ge01.trim().parse::<u32>().ok() != Some(counted) {
                self.err(
                    loc.at_element(1),
                    IssueKind::CountMismatch {
                        element: "GE01".into(),
                        found: ge01.into(),
                        counted,
                    },
                );
            }
            let ge02 = ge.segment.get(2);
            if g.gs06.trim_start_matches('0') != ge02.trim_start_matches('0') {
                self.err(
                    loc.at_element(2),
                    IssueKind::ControlMismatch {
                        trailer: "GE02".into(),
                        header: "GS06".into(),
                        found: ge02.into(),
                        expected: g.gs06.clone(),
                    },
                );
            }
        }
        if let Some(ic) = &mut self.ic {
            ic.groups += 1;
            self.events.push_back(RawEvent::GroupEnd { ge });
        }
    }

    fn close_interchange(&mut self, iea: Option<Located>) {
        let Some(ic) = self.ic.take() else {
            return;
        };
        if let Some(iea) = &iea {
            let loc = Loc {
                interchange: ic.index,
                segment: iea.number,
                in_transaction: None,
                segment_id: "IEA".into(),
                element: None,
            };
            let counted = ic.groups;
            let iea01 = iea.segment.get(1);
            if iea01.trim().parse::<u32>().ok() != Some(counted) {
                self.err(
                    loc.at_element(1),
                    IssueKind::CountMismatch {
                        element: "IEA01".into(),
                        found: iea01.into(),
                        counted,
                    },
                );
            }
            let iea02 = iea.segment.get(2);
            if ic.isa13 != iea02 {
                self.err(
                    loc.at_element(2),
                    IssueKind::ControlMismatch {
                        trailer: "IEA02".into(),
                        header: "ISA13".into(),
                        found: iea02.into(),
                        expected: ic.isa13.clone(),
                    },
                );
            }
        }
        self.closed += 1;
        self.events.push_back(RawEvent::InterchangeEnd { iea });
        self.delims = None;
    }

    fn close_all(&mut self) {
        self.close_txn_missing();
        if self.group.is_some() {
            self.missing("GE");
            self.close_group(None);
        }
        if self.ic.is_some() {
            self.missing("IEA");
            self.close_interchange(None);
        }
    }
}

/// Collects every event of `reader` into a document (what [`read_raw`]
/// returns before its mode decides).
///
/// # Errors
/// Only when reading the source fails.
pub fn collect<R: Read>(mut reader: RawReader<R>) -> io::Result<RawDocument> {
    let mut doc = RawDocument::default();
    let mut ic: Option<RawInterchange> = None;
    let mut group: Option<RawGroup> = None;
    while let Some(event) = reader.next_event()? {
        match event {
            RawEvent::InterchangeStart {
                index,
                delimiters,
                isa,
            } => {
                ic = Some(RawInterchange {
                    index,
                    delimiters,
                    isa,
                    groups: Vec::new(),
                    iea: None,
                });
            }
            RawEvent::GroupStart { gs } => {
                group = Some(RawGroup {
                    gs,
                    transactions: Vec::new(),
                    ge: None,
                });
            }
            RawEvent::Transaction(t) => {
                if let Some(g) = &mut group {
                    g.transactions.push(t);
                }
            }
            RawEvent::GroupEnd { ge } => {
                if let (Some(mut g), Some(ic)) = (group.take(), &mut ic) {
                    g.ge = ge;
                    ic.groups.push(g);
                }
            }
            RawEvent::InterchangeEnd { iea } => {
                if let Some(mut done) = ic.take() {
                    done.iea = iea;
                    doc.interchanges.push(done);
                }
            }
        }
    }
    doc.issues = reader.take_issues();
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*^*00501*000000001*0*P*:~GS*HP*S*R*20240101*1200*1*X*005010X221A1~ST*835*0001~BPR*I*10*C*CHK************20240101~TRN*1*1*1~SE*4*0001~GE*1*1~IEA*1*000000001~";

    #[test]
    fn reads_default_delimiters() {
        let doc = read_raw(SMALL.as_bytes(), Mode::Strict).unwrap();
        assert_eq!(doc.interchanges.len(), 1);
        let ic = &doc.interchanges[0];
        assert_eq!(ic.delimiters, Delimiters::default());
        let t = &ic.groups[0].transactions[0];
        assert_eq!(t.body.len(), 2);
        assert_eq!(t.body[0].segment.id, "BPR");
        assert_eq!(t.body[0].in_transaction, Some(2));
        assert_eq!(t.body[0].number, 4);
    }

    #[test]
    fn reads_other_delimiters_newlines_bom_and_indentation() {
        let alt = SMALL
            .replace('*', "|")
            .replace('~', "!\r\n    ")
            .replace("|^|", "|#|")
            .replace("|:!", "|>!");
        let mut bytes = b"\xEF\xBB\xBF  \n".to_vec();
        bytes.extend_from_slice(alt.as_bytes());
        let doc = read_raw(&bytes, Mode::Strict).unwrap();
        let d = doc.interchanges[0].delimiters;
        assert_eq!(
            (d.element, d.component, d.repetition, d.segment),
            (b'|', b'>', Some(b'#'), b'!')
        );
        let t = &doc.interchanges[0].groups[0].transactions[0];
        assert_eq!(t.body[1].segment.get(2), "1");
    }

    #[test]
    fn se_count_error_is_located() {
        let bad = SMALL.replace("SE*4*", "SE*5*");
        let err = read_raw(bad.as_bytes(), Mode::Strict).unwrap_err();
        let i = err.first();
        assert_eq!(i.loc.segment, 6);
        assert_eq!(i.loc.element, Some(1));
        assert_eq!(i.loc.interchange, 1);
        assert!(
            matches!(i.kind, IssueKind::CountMismatch { ref element, counted: 4, .. } if element == "SE01")
        );
        // Lenient keeps the data and the issue.
        let doc = read_raw(bad.as_bytes(), Mode::Lenient).unwrap();
        assert_eq!(doc.issues.len(), 1);
        assert_eq!(doc.interchanges[0].groups[0].transactions.len(), 1);
    }

    #[test]
    fn control_mismatches_and_missing_trailers() {
        let bad = SMALL
            .replace("GE*1*1~", "GE*1*2~")
            .replace("IEA*1*000000001~", "");
        let doc = read_raw(bad.as_bytes(), Mode::Lenient).unwrap();
        let kinds: Vec<String> = doc.issues.iter().map(|i| i.kind.to_string()).collect();
        assert_eq!(
            kinds,
            vec![
                "GE02 control number 2 does not match GS06 control number 1",
                "missing IEA trailer"
            ]
        );
    }

    #[test]
    fn several_interchanges_with_different_delimiters() {
        let second = SMALL.replace('*', "|").replace("000000001", "000000002");
        let both = format!("{SMALL}\n{second}");
        let doc = read_raw(both.as_bytes(), Mode::Strict).unwrap();
        assert_eq!(doc.interchanges.len(), 2);
        assert_eq!(doc.interchanges[1].delimiters.element, b'|');
        assert_eq!(doc.interchanges[1].index, 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"   ",
            b"ISA",
            b"ISA*00",
            b"hello~world",
            b"ISA*1*2*3*4*5*6*7*8*9*10*11*12*13*14*15*16",
        ] {
            assert!(read_raw(input, Mode::Strict).is_err());
            assert!(read_raw(input, Mode::Lenient).is_err());
        }
    }

    #[test]
    fn text_segments_split_as_bytes_do() {
        let d = Delimiters::default();
        for raw in [
            "CLP*A*1*34.25**MC",
            "SVC*HC:V2020:RB*6*6**1",
            "EB*1*IND*30^1^33:X",
            "HI*ABK:J20^ABF:R05*",
            "REF*EV*X***",
            "X*a:b^c:d:^::*^*:",
            "NM1",
            "N1*",
            "",
            "\u{c9}A*\u{e9}*\u{fc}:x",
        ] {
            let (slow, bad_text) = split_bytes(raw.as_bytes(), &d);
            assert_eq!(split_text(raw, &d), slow, "{raw}");
            assert!(!bad_text);
        }
        // Not UTF-8: read lossily and reported.
        let (seg, id_ok, bad_text) = split(b"REF*E\xffV*X", &d);
        assert!(id_ok && bad_text);
        assert_eq!(seg.get(1), "E\u{fffd}V");
    }

    #[test]
    fn composite_and_repetition_split() {
        let s = SMALL.replace("TRN*1*1*1~", "TRN*1*1*1~EB*1*IND*30^1^33:X~");
        let s = s.replace("SE*4*", "SE*5*");
        let doc = read_raw(s.as_bytes(), Mode::Strict).unwrap();
        let eb = &doc.interchanges[0].groups[0].transactions[0].body[2].segment;
        assert_eq!(
            eb.element(3),
            Some(&Element::Repeated(vec![
                vec!["30".into()],
                vec!["1".into()],
                vec!["33".into(), "X".into()]
            ]))
        );
    }
}
