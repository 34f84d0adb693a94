//! 999 implementation acknowledgment (X12 5010 X231A1): read the 999s
//! payers send about billd's 837s, and generate 999s for files billd
//! receives, from the located issues the reader and models found.

use serde::{Deserialize, Serialize};

use crate::document::{Body, Document, Group, Interchange, InterchangeHeader, Transaction};
use crate::error::{Issue, IssueKind, ReadError};
use crate::loops::{Cx, Incomplete, LoopNode, LoopSpec, on};
use crate::reader::{Mode, read_raw};
use crate::segment::Segment;
use crate::segments::{Ak1, Ak2, Ak9, Ik3, Ik4, Ik5};

/// The implementation guide this model follows.
pub const GUIDE: &str = "005010X231A1";

static L2110: [LoopSpec; 1] = [LoopSpec {
    id: "2110",
    trigger: on("IK4", &[]),
    children: &[],
    end: None,
    order: &[],
    max: 0,
}];
static L2000: [LoopSpec; 2] = [
    LoopSpec {
        id: "2100",
        trigger: on("IK3", &[]),
        children: &L2110,
        end: None,
        order: &[],
        max: 0,
    },
    LoopSpec {
        id: "IK5",
        trigger: on("IK5", &[]),
        children: &[],
        end: None,
        order: &[],
        max: 0,
    },
];
static TOP: [LoopSpec; 2] = [
    LoopSpec {
        id: "2000",
        trigger: on("AK2", &[]),
        children: &L2000,
        end: None,
        order: &[],
        max: 0,
    },
    LoopSpec {
        id: "AK9",
        trigger: on("AK9", &[]),
        children: &[],
        end: None,
        order: &[],
        max: 0,
    },
];
/// Loop structure of the 999.
pub static SPEC: LoopSpec = LoopSpec {
    id: "ST",
    trigger: on("ST", &[]),
    children: &TOP,
    end: None,
    order: &["AK1"],
    max: 0,
};

/// A whole 999 transaction.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ack999 {
    /// AK1: the group acknowledged.
    pub ak1: Ak1,
    /// Loop 2000: one response per transaction set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responses: Vec<SetResponse>,
    /// AK9: the group's verdict and counts.
    pub ak9: Ak9,
    /// Anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
}

/// Loop 2000: one transaction set's acknowledgment.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SetResponse {
    /// AK2: the transaction set acknowledged.
    pub ak2: Ak2,
    /// Loop 2100: segments in error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SegmentError>,
    /// IK5: accepted or rejected, with reasons.
    pub ik5: Ik5,
    /// Anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
}

/// Loop 2100: one segment in error.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SegmentError {
    /// IK3 segment, position, loop and error code.
    pub ik3: Ik3,
    /// CTX context segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<Segment>,
    /// Loop 2110: element errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<ElementError>,
}

/// Loop 2110: one element in error.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ElementError {
    /// IK4 position and error code.
    pub ik4: Ik4,
    /// CTX context segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<Segment>,
}

impl SetResponse {
    /// True when the transaction set was accepted (IK501 `A` or `E`).
    #[must_use]
    pub fn accepted(&self) -> bool {
        matches!(self.ik5.ack.as_str(), "A" | "E")
    }
}

impl Ack999 {
    /// True when the whole group was accepted (AK901 `A` or `E`).
    #[must_use]
    pub fn accepted(&self) -> bool {
        matches!(self.ak9.ack.as_str(), "A" | "E")
    }

    /// Builds the model from the 999 loop tree.
    ///
    /// # Errors
    /// [`Incomplete`] when AK1 or AK9 is missing (reported to `cx`).
    pub fn from_tree(root: LoopNode, cx: &mut Cx<'_>) -> Result<Ack999, Incomplete> {
        let mut out = Ack999::default();
        let near = root
            .segments
            .first()
            .or_else(|| root.children.first().and_then(|c| c.segments.first()))
            .cloned()
            .ok_or(Incomplete)?;
        let (mut ak1, mut ak9) = (None, None);
        for s in root.segments {
            match &*s.segment.id {
                "AK1" if ak1.is_none() => ak1 = Some(cx.take(s, Ak1::ID, Ak1::from_owned)),
                _ => out.other.push(s.segment),
            }
        }
        for child in root.children {
            if child.id == "AK9" {
                let mut segs = child.segments.into_iter();
                if let Some(f) = segs.next() {
                    ak9 = Some(cx.take(f, Ak9::ID, Ak9::from_owned));
                }
                out.other.extend(segs.map(|l| l.segment));
                continue;
            }
            let mut r = SetResponse::default();
            let mut segs = child.segments.into_iter();
            let first = segs.next();
            if let Some(f) = &first {
                r.ak2 = cx.take(f.clone(), Ak2::ID, Ak2::from_owned);
            }
            r.other.extend(segs.map(|l| l.segment));
            let mut ik5 = None;
            for g in child.children {
                let mut segs = g.segments.into_iter();
                let Some(f) = segs.next() else { continue };
                if g.id == "IK5" {
                    ik5 = Some(cx.take(f, Ik5::ID, Ik5::from_owned));
                    r.other.extend(segs.map(|l| l.segment));
                    continue;
                }
                let mut e = SegmentError {
                    ik3: cx.take(f, Ik3::ID, Ik3::from_owned),
                    context: segs.map(|l| l.segment).collect(),
                    elements: Vec::new(),
                };
                for el in g.children {
                    let mut segs = el.segments.into_iter();
                    if let Some(f) = segs.next() {
                        e.elements.push(ElementError {
                            ik4: cx.take(f, Ik4::ID, Ik4::from_owned),
                            context: segs.map(|l| l.segment).collect(),
                        });
                    }
                }
                r.errors.push(e);
            }
            match ik5 {
                Some(v) => r.ik5 = v,
                None => {
                    if let Some(f) = &first {
                        cx.missing(f, "IK5", "2000");
                    }
                }
            }
            out.responses.push(r);
        }

        for (present, seg) in [(ak1.is_some(), "AK1"), (ak9.is_some(), "AK9")] {
            if !present {
                cx.missing(&near, seg, "header");
            }
        }
        out.ak1 = ak1.unwrap_or_default();
        out.ak9 = ak9.unwrap_or_default();
        Ok(out)
    }

    /// The transaction body (between ST and SE).
    #[must_use]
    pub fn to_segments(&self) -> Vec<Segment> {
        let mut out = vec![self.ak1.to_segment()];
        for r in &self.responses {
            out.push(r.ak2.to_segment());
            for e in &r.errors {
                out.push(e.ik3.to_segment());
                out.extend(e.context.iter().cloned());
                for el in &e.elements {
                    out.push(el.ik4.to_segment());
                    out.extend(el.context.iter().cloned());
                }
            }
            out.extend(r.other.iter().cloned());
            out.push(r.ik5.to_segment());
        }
        out.push(self.ak9.to_segment());
        out.extend(self.other.iter().cloned());
        out
    }
}

fn segment_code(kind: &IssueKind) -> Option<&'static str> {
    Some(match kind {
        IssueKind::BadSegmentId => "1",
        IssueKind::UnexpectedSegment { .. } => "2",
        IssueKind::MissingSegment { .. } => "3",
        IssueKind::LoopRepeat { .. } => "4",
        IssueKind::OutOfOrder { .. } => "7",
        IssueKind::OutOfEnvelope { .. } => "6",
        IssueKind::NotText | IssueKind::Unterminated => "8",
        _ => return None,
    })
}

fn element_code(kind: &IssueKind) -> Option<&'static str> {
    Some(match kind {
        IssueKind::MissingElement => "1",
        IssueKind::ElementShape { what } if what.contains("repetition") => "12",
        IssueKind::ElementShape { .. } => "13",
        IssueKind::BadNumber { .. } => "6",
        IssueKind::BadCode { .. } => "7",
        _ => return None,
    })
}

fn set_code(kind: &IssueKind) -> Option<&'static str> {
    Some(match kind {
        IssueKind::MissingTrailer { trailer } if trailer == "SE" => "2",
        IssueKind::ControlMismatch { trailer, .. } if trailer == "SE02" => "3",
        IssueKind::CountMismatch { element, .. } if element == "SE01" => "4",
        IssueKind::UnsupportedVersion { .. } => "I6",
        _ => return None,
    })
}

/// Builds 999 acknowledgments for a file billd received: one interchange
/// back per interchange read (sender and receiver swapped), one 999 per
/// functional group, with IK3/IK4 errors from the located issues (syntax and
/// guide problems; 835 balancing is business logic and not reported in a
/// 999).
///
/// # Errors
/// When not even one interchange can be read.
pub fn acknowledge(input: &[u8]) -> Result<Document, ReadError> {
    let raw = read_raw(input, Mode::Lenient)?;
    let parsed = crate::document::parse(input, Mode::Lenient)?;
    let issues: Vec<&Issue> = parsed.issues.iter().filter(|i| i.is_error()).collect();
    let mut doc = Document::default();
    for ic in &raw.interchanges {
        let isa = &ic.isa.segment;
        let header = InterchangeHeader {
            authorization_qualifier: "00".into(),
            security_qualifier: "00".into(),
            sender_qualifier: isa.get(7).trim().into(),
            sender_id: isa.get(8).trim().into(),
            receiver_qualifier: isa.get(5).trim().into(),
            receiver_id: isa.get(6).trim().into(),
            version: "00501".into(),
            ack_requested: "0".into(),
            usage: isa.get(15).trim().into(),
            ..InterchangeHeader::default()
        };
        let mut groups = Vec::new();
        for g in &ic.groups {
            let gs = &g.gs.segment;
            let mut ack = Ack999 {
                ak1: Ak1 {
                    functional_id: gs.get(1).into(),
                    group_control: gs.get(6).into(),
                    version: Some(gs.get(8).to_owned()).filter(|s| !s.is_empty()),
                    ..Ak1::default()
                },
                ..Ack999::default()
            };
            let mut accepted = 0;
            for t in &g.transactions {
                let start = t.st.number;
                let end =
                    t.se.as_ref()
                        .map_or_else(|| t.body.last().map_or(start, |l| l.number), |s| s.number);
                let mine: Vec<&&Issue> = issues
                    .iter()
                    .filter(|i| {
                        i.loc.interchange == ic.index && (start..=end).contains(&i.loc.segment)
                    })
                    .collect();
                let mut r = SetResponse {
                    ak2: Ak2 {
                        set_id: t.st.segment.get(1).into(),
                        control: t.st.segment.get(2).into(),
                        version: Some(t.st.segment.get(3).to_owned()).filter(|s| !s.is_empty()),
                        ..Ak2::default()
                    },
                    ..SetResponse::default()
                };
                let mut set_codes: Vec<&str> = Vec::new();
                for i in &mine {
                    if let Some(c) = set_code(&i.kind) {
                        set_codes.push(c);
                        continue;
                    }
                    let pos = i.loc.in_transaction.unwrap_or(0).to_string();
                    let seg_id = if let IssueKind::MissingSegment { segment, .. } = &i.kind {
                        segment.split('*').next().unwrap_or("").to_owned()
                    } else {
                        i.loc.segment_id.clone()
                    };
                    if let (Some(el), Some(code)) = (i.loc.element, element_code(&i.kind)) {
                        let ik4 = Ik4 {
                            position: crate::fields::Composite(vec![el.to_string()]),
                            error: code.into(),
                            ..Ik4::default()
                        };
                        match r
                            .errors
                            .iter_mut()
                            .find(|e| e.ik3.position == pos && e.ik3.segment_id == seg_id)
                        {
                            Some(e) => e.elements.push(ElementError {
                                ik4,
                                context: Vec::new(),
                            }),
                            None => r.errors.push(SegmentError {
                                ik3: Ik3 {
                                    segment_id: seg_id,
                                    position: pos,
                                    error: Some("8".into()),
                                    ..Ik3::default()
                                },
                                context: Vec::new(),
                                elements: vec![ElementError {
                                    ik4,
                                    context: Vec::new(),
                                }],
                            }),
                        }
                    } else if let Some(code) = segment_code(&i.kind) {
                        r.errors.push(SegmentError {
                            ik3: Ik3 {
                                segment_id: seg_id,
                                position: pos,
                                error: Some(code.into()),
                                ..Ik3::default()
                            },
                            context: Vec::new(),
                            elements: Vec::new(),
                        });
                    }
                }
                if !r.errors.is_empty() {
                    set_codes.push("5");
                }
                set_codes.dedup();
                let rejected = !set_codes.is_empty();
                let mut codes = set_codes.into_iter().map(|c| Some(c.to_owned()));
                r.ik5 = Ik5 {
                    ack: if rejected { "R" } else { "A" }.into(),
                    error1: codes.next().flatten(),
                    error2: codes.next().flatten(),
                    error3: codes.next().flatten(),
                    error4: codes.next().flatten(),
                    error5: codes.next().flatten(),
                    ..Ik5::default()
                };
                if !rejected {
                    accepted += 1;
                }
                ack.responses.push(r);
            }
            let n = g.transactions.len();
            let group_code = issues
                .iter()
                .filter(|i| {
                    i.loc.interchange == ic.index
                        && g.ge.as_ref().is_some_and(|ge| ge.number == i.loc.segment)
                })
                .find_map(|i| match &i.kind {
                    IssueKind::ControlMismatch { .. } => Some("4"),
                    IssueKind::CountMismatch { .. } => Some("5"),
                    _ => None,
                })
                .or_else(|| g.ge.is_none().then_some("3"));
            ack.ak9 = Ak9 {
                ack: match (accepted, group_code) {
                    (_, Some(_)) => "R",
                    (a, None) if a == n => "A",
                    (0, None) => "R",
                    _ => "P",
                }
                .into(),
                included: n.to_string(),
                received: n.to_string(),
                accepted: accepted.to_string(),
                error1: group_code.map(str::to_owned),
                ..Ak9::default()
            };
            groups.push(Group {
                functional_id: "FA".into(),
                sender: gs.get(3).into(),
                receiver: gs.get(2).into(),
                agency: "X".into(),
                version: GUIDE.into(),
                transactions: vec![Transaction {
                    pos: crate::loops::Pos::default(),
                    control_number: String::new(),
                    guide: Some(GUIDE.into()),
                    body: Body::Ack(ack),
                }],
                ..Group::default()
            });
        }
        doc.interchanges.push(Interchange { header, groups });
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{SequentialControlNumbers, WriteOptions, write_document};

    fn fixture(rel: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/x12")
            .join(rel);
        std::fs::read(p).unwrap()
    }

    fn acks(doc: &Document) -> Vec<&Ack999> {
        doc.interchanges
            .iter()
            .flat_map(|i| &i.groups)
            .flat_map(|g| &g.transactions)
            .filter_map(|t| match &t.body {
                Body::Ack(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reads_a_rejecting_999() {
        let p = crate::parse(&fixture("999/ims__x12_999_rejected.txt"), Mode::Strict).unwrap();
        let a = acks(&p.document)[0];
        assert!(!a.accepted());
        assert!(a.responses.iter().any(|r| !r.accepted()));
    }

    #[test]
    fn accepts_a_clean_file_and_swaps_sender_and_receiver() {
        let doc = acknowledge(&fixture("835/tasty__profee.edi")).unwrap();
        let a = acks(&doc);
        assert_eq!(a.len(), 1);
        assert!(a[0].accepted());
        assert_eq!(a[0].ak1.functional_id, "HP");
        assert_eq!(
            (a[0].ak9.included.as_str(), a[0].ak9.accepted.as_str()),
            ("1", "1")
        );
        assert_eq!(doc.interchanges[0].header.sender_id, "ETIN");
    }

    #[test]
    fn rejects_with_located_ik3_ik4_and_ik5_codes() {
        // SE01 wrong (IK5 4) and a non-numeric CLP04 (IK3 8 / IK4 6).
        let x = "ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20240101*1200*7*X*005010X221A1~ST*835*0001*005010X221A1~BPR*I*80*C*CHK************20240101~TRN*1*T1*1~N1*PR*PAYER~N1*PE*CLINIC*XX*1234567893~LX*1~CLP*A*1*100*8O**12~SE*99*0001~GE*1*7~IEA*1*000000001~";
        let doc = acknowledge(x.as_bytes()).unwrap();
        let a = acks(&doc)[0];
        assert!(!a.accepted());
        assert_eq!(a.ak1.group_control, "7");
        let r = &a.responses[0];
        assert_eq!(r.ik5.ack, "R");
        assert_eq!(r.ik5.error1.as_deref(), Some("4"));
        assert_eq!(r.ik5.error2.as_deref(), Some("5"));
        let e = &r.errors[0];
        assert_eq!(
            (e.ik3.segment_id.as_str(), e.ik3.position.as_str()),
            ("CLP", "7")
        );
        assert_eq!(e.elements[0].ik4.position.get(1), "4");
        assert_eq!(e.elements[0].ik4.error, "6");
        // The 999 itself is valid X12 that billd reads back.
        let mut n = SequentialControlNumbers::starting_at(3);
        let text = write_document(&doc, &WriteOptions::default(), &mut n).unwrap();
        let back = crate::parse(text.as_bytes(), Mode::Strict).unwrap();
        assert_eq!(acks(&back.document)[0], a);
    }
}
