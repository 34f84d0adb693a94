//! Turns X12 bytes into envelopes of located segments.
//!
//! Delimiters come from each ISA (any element, component, repetition and
//! segment characters; segments may or may not be followed by newlines; a
//! leading byte-order mark and leading whitespace are skipped). Envelopes are
//! checked as they close: ST/SE, GS/GE and ISA/IEA control numbers must
//! match and SE01, GE01 and IEA01 must equal what was counted. Problems are
//! collected with their location; [`Mode::Strict`] turns any error into a
//! [`ReadError`], [`Mode::Lenient`] keeps what could be read.

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
    let doc = Reader::new(input).run();
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

struct OpenTxn {
    txn: RawTransaction,
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    seg_no: u32,
    doc: RawDocument,
    delims: Option<Delimiters>,
    // Open envelopes.
    ic: Option<RawInterchange>,
    group: Option<RawGroup>,
    txn: Option<OpenTxn>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

impl<'a> Reader<'a> {
    fn new(input: &'a [u8]) -> Self {
        let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
        Reader {
            input,
            pos: 0,
            seg_no: 0,
            doc: RawDocument::default(),
            delims: None,
            ic: None,
            group: None,
            txn: None,
        }
    }

    fn ic_index(&self) -> u32 {
        self.doc.interchanges.len() as u32 + u32::from(self.ic.is_some())
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
        self.doc.issues.push(Issue::error(loc, kind));
    }

    fn skip_ws(&mut self) {
        while self.pos < self.input.len() && is_ws(self.input[self.pos]) {
            // A whitespace delimiter is still skipped between segments: an
            // empty segment carries nothing.
            self.pos += 1;
        }
    }

    fn run(mut self) -> RawDocument {
        self.skip_ws();
        if self.pos >= self.input.len() {
            self.err(Loc::default(), IssueKind::Empty);
            return self.doc;
        }
        loop {
            self.skip_ws();
            if self.pos >= self.input.len() {
                break;
            }
            if self.ic.is_none() {
                if !self.start_interchange() {
                    break;
                }
                continue;
            }
            let Some(d) = self.delims else { break };
            let rest = &self.input[self.pos..];
            let (raw, advance, terminated) = match rest.iter().position(|&b| b == d.segment) {
                Some(n) => (&rest[..n], n + 1, true),
                None => (rest, rest.len(), false),
            };
            self.pos += advance;
            let mut raw = raw;
            while let Some((&last, init)) = raw.split_last() {
                if (last == b'\r' || last == b'\n') && !d.is_delimiter(last) {
                    raw = init;
                } else {
                    break;
                }
            }
            if raw.is_empty() {
                continue;
            }
            self.seg_no += 1;
            let seg = self.split(raw, &d);
            if !terminated {
                let loc = self.loc(&seg.id, None);
                self.err(loc, IssueKind::Unterminated);
            }
            self.place(seg);
        }
        self.close_all();
        self.doc
    }

    /// Starts an interchange at `pos`; false when nothing more can be read.
    fn start_interchange(&mut self) -> bool {
        let rest = &self.input[self.pos..];
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
                let ic = RawInterchange {
                    index: self.doc.interchanges.len() as u32 + 1,
                    delimiters: d,
                    isa: Located {
                        segment: isa,
                        number: self.seg_no,
                        in_transaction: None,
                    },
                    groups: Vec::new(),
                    iea: None,
                };
                self.pos += len;
                self.delims = Some(d);
                self.ic = Some(ic);
                self.check_isa_widths();
                true
            }
            Err(kind) => {
                self.seg_no += 1;
                let loc = Loc {
                    interchange: self.ic_index() + 1,
                    segment: self.seg_no,
                    segment_id: String::new(),
                    ..Loc::default()
                };
                if self.doc.interchanges.is_empty() {
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
                // Resume at the next ISA, if any.
                match rest
                    .windows(3)
                    .skip(1)
                    .position(|w| w == b"ISA")
                    .map(|p| p + 1)
                {
                    Some(p) => {
                        self.pos += p;
                        true
                    }
                    None => false,
                }
            }
        }
    }

    fn check_isa_widths(&mut self) {
        let Some(ic) = &self.ic else { return };
        let els = ic.isa.segment.elements.clone();
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
        let d = self.ic.as_ref().map(|ic| ic.delimiters).unwrap_or_default();
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
        let version = els[11].value().to_owned();
        if version.as_str() < "00501" {
            self.doc.issues.push(Issue::error(
                loc.at_element(12),
                IssueKind::UnsupportedVersion {
                    version: format!("ISA12 {version}"),
                },
            ));
        }
    }

    fn split(&mut self, raw: &[u8], d: &Delimiters) -> Segment {
        let mut parts = raw.split(|&b| b == d.element);
        let id_bytes = parts.next().unwrap_or_default();
        let id = crate::segment::intern_id(&String::from_utf8_lossy(id_bytes));
        let id_ok = (2..=3).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && id.as_bytes()[0].is_ascii_uppercase();
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
        let in_txn = self.txn.as_ref().map(|t| self.seg_no - t.txn.st.number + 1);
        if !id_ok {
            let loc = self.loc("", in_txn);
            self.err(loc, IssueKind::BadSegmentId);
        }
        if bad_text {
            let loc = self.loc(&seg.id, in_txn);
            self.err(loc, IssueKind::NotText);
        }
        seg
    }

    fn located(&self, segment: Segment, in_txn: Option<u32>) -> Located {
        Located {
            segment,
            number: self.seg_no,
            in_transaction: in_txn,
        }
    }

    fn place(&mut self, seg: Segment) {
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
                if let Some(p) = self.find_back_isa() {
                    self.pos = p;
                }
            }
            "GS" => {
                if self.txn.is_some() {
                    self.missing("SE");
                    self.close_txn(None);
                }
                if self.group.is_some() {
                    self.missing("GE");
                    self.close_group(None);
                }
                let gs = self.located(seg, None);
                self.group = Some(RawGroup {
                    gs,
                    transactions: Vec::new(),
                    ge: None,
                });
            }
            "ST" => {
                if self.txn.is_some() {
                    self.missing("SE");
                    self.close_txn(None);
                }
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
                self.txn = Some(OpenTxn {
                    txn: RawTransaction {
                        st,
                        body: Vec::new(),
                        se: None,
                    },
                });
            }
            "SE" => {
                if self.txn.is_none() {
                    let loc = self.loc("SE", None);
                    self.err(
                        loc,
                        IssueKind::OutOfEnvelope {
                            segment: "SE".into(),
                            expected: "a transaction set (ST)".into(),
                        },
                    );
                    return;
                }
                let in_txn = self.txn.as_ref().map(|t| self.seg_no - t.txn.st.number + 1);
                let se = self.located(seg, in_txn);
                self.close_txn(Some(se));
            }
            "GE" => {
                if self.txn.is_some() {
                    self.missing("SE");
                    self.close_txn(None);
                }
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
                if self.txn.is_some() {
                    self.missing("SE");
                    self.close_txn(None);
                }
                if self.group.is_some() {
                    self.missing("GE");
                    self.close_group(None);
                }
                let iea = self.located(seg, None);
                self.close_interchange(Some(iea));
            }
            _ => {
                if let Some(t) = &mut self.txn {
                    let n = self.seg_no - t.txn.st.number + 1;
                    t.txn.body.push(Located {
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

    fn find_back_isa(&self) -> Option<usize> {
        let upto = self.pos.min(self.input.len());
        self.input[..upto].windows(3).rposition(|w| w == b"ISA")
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

    fn close_txn(&mut self, se: Option<Located>) {
        let Some(OpenTxn { mut txn }) = self.txn.take() else {
            return;
        };
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
            Some(g) => g.transactions.push(txn),
            None => {
                // ST outside a group was reported; keep it in a synthetic
                // group so nothing read is lost.
                let gs = Located {
                    segment: Segment::new("GS", &[]),
                    number: txn.st.number,
                    in_transaction: None,
                };
                let g = RawGroup {
                    gs,
                    transactions: vec![txn],
                    ge: None,
                };
                if let Some(ic) = &mut self.ic {
                    ic.groups.push(g);
                }
            }
        }
    }

    fn close_group(&mut self, ge: Option<Located>) {
        let Some(mut g) = self.group.take() else {
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
            let counted = g.transactions.len() as u32;
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
            let (gs06, ge02) = (g.gs.segment.get(6), ge.segment.get(2));
            if gs06.trim_start_matches('0') != ge02.trim_start_matches('0') {
                self.err(
                    loc.at_element(2),
                    IssueKind::ControlMismatch {
                        trailer: "GE02".into(),
                        header: "GS06".into(),
                        found: ge02.into(),
                        expected: gs06.into(),
                    },
                );
            }
        }
        g.ge = ge;
        if let Some(ic) = &mut self.ic {
            ic.groups.push(g);
        }
    }

    fn close_interchange(&mut self, iea: Option<Located>) {
        let Some(mut ic) = self.ic.take() else {
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
            let counted = ic.groups.len() as u32;
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
            let (isa13, iea02) = (ic.isa.segment.get(13), iea.segment.get(2));
            if isa13 != iea02 {
                self.err(
                    loc.at_element(2),
                    IssueKind::ControlMismatch {
                        trailer: "IEA02".into(),
                        header: "ISA13".into(),
                        found: iea02.into(),
                        expected: isa13.into(),
                    },
                );
            }
        }
        ic.iea = iea;
        self.doc.interchanges.push(ic);
        self.delims = None;
    }

    fn close_all(&mut self) {
        if self.txn.is_some() {
            self.missing("SE");
            self.close_txn(None);
        }
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
