//! The typed document: interchanges, functional groups and transaction sets
//! with a typed model per transaction, and [`parse`], which reads bytes into
//! it. This is the JSON form `billd x12 parse --json` prints and
//! `billd x12 render` reads (see the [`crate::json`] module for the schema).

use serde::{Deserialize, Serialize};

use crate::error::{Issue, IssueKind, Loc, ReadError};
use crate::loops::Pos;
use crate::loops::{Cx, build};
use crate::reader::{Mode, RawDocument, RawInterchange, RawTransaction, read_raw};
use crate::segment::Segment;
use crate::{t835, t837p, t999, thl};

/// A parsed file: its interchanges in order.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Document {
    /// Interchanges in input order.
    pub interchanges: Vec<Interchange>,
}

/// One interchange (ISA ... IEA).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interchange {
    /// The ISA header, padding removed.
    pub header: InterchangeHeader,
    /// Functional groups in order.
    pub groups: Vec<Group>,
}

/// ISA header fields (trailing padding removed; the writer pads them back).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InterchangeHeader {
    /// ISA01 authorization information qualifier.
    pub authorization_qualifier: String,
    /// ISA02 authorization information.
    #[serde(default)]
    pub authorization: String,
    /// ISA03 security information qualifier.
    pub security_qualifier: String,
    /// ISA04 security information.
    #[serde(default)]
    pub security: String,
    /// ISA05 interchange sender id qualifier.
    pub sender_qualifier: String,
    /// ISA06 interchange sender id.
    pub sender_id: String,
    /// ISA07 interchange receiver id qualifier.
    pub receiver_qualifier: String,
    /// ISA08 interchange receiver id.
    pub receiver_id: String,
    /// ISA09 date YYMMDD (replaced on render).
    #[serde(default)]
    pub date: String,
    /// ISA10 time HHMM (replaced on render).
    #[serde(default)]
    pub time: String,
    /// ISA12 version (`00501`).
    pub version: String,
    /// ISA13 control number (replaced on render).
    #[serde(default)]
    pub control_number: String,
    /// ISA14 acknowledgment requested (`0`/`1`).
    pub ack_requested: String,
    /// ISA15 usage indicator (`P` production, `T` test).
    pub usage: String,
}

/// One functional group (GS ... GE).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Group {
    /// GS01 functional identifier code (`HP` 835, `HC` 837, `HS` 270, `HB` 271, `HR` 276, `HN` 277, `FA` 999).
    pub functional_id: String,
    /// GS02 application sender code.
    pub sender: String,
    /// GS03 application receiver code.
    pub receiver: String,
    /// GS04 date CCYYMMDD (replaced on render).
    #[serde(default)]
    pub date: String,
    /// GS05 time (replaced on render).
    #[serde(default)]
    pub time: String,
    /// GS06 group control number (replaced on render).
    #[serde(default)]
    pub control_number: String,
    /// GS07 responsible agency code (`X`).
    pub agency: String,
    /// GS08 version / implementation guide (e.g. `005010X221A1`).
    pub version: String,
    /// Transaction sets in order.
    pub transactions: Vec<Transaction>,
}

/// One transaction set (ST ... SE).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Where the ST was read (not serialized; ignored by equality).
    #[serde(skip)]
    pub pos: Pos,
    /// ST02 control number (replaced on render).
    #[serde(default)]
    pub control_number: String,
    /// ST03 implementation convention reference, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guide: Option<String>,
    /// The typed model.
    pub body: Body,
}

/// The typed model of a transaction set, by kind. JSON: `"type"` names the
/// kind and `"model"` holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "model")]
pub enum Body {
    /// 835 claim payment/advice (X221A1).
    #[serde(rename = "835")]
    Remittance(t835::Remittance),
    /// 837 professional claim (X222A1).
    #[serde(rename = "837P")]
    Professional(t837p::Professional),
    /// 270 eligibility inquiry (X279A1).
    #[serde(rename = "270")]
    EligibilityInquiry(thl::Hierarchy),
    /// 271 eligibility response (X279A1).
    #[serde(rename = "271")]
    EligibilityResponse(thl::Hierarchy),
    /// 276 claim status request (X212).
    #[serde(rename = "276")]
    StatusRequest(thl::Hierarchy),
    /// 277 claim status response (X212).
    #[serde(rename = "277")]
    StatusResponse(thl::Hierarchy),
    /// 277CA claim acknowledgment (X214).
    #[serde(rename = "277CA")]
    ClaimAck(thl::Hierarchy),
    /// 999 implementation acknowledgment (X231A1).
    #[serde(rename = "999")]
    Ack(t999::Ack999),
    /// A transaction billd does not type (kept as segments).
    #[serde(rename = "generic")]
    Generic(Generic),
}

/// A transaction kept as generic segments.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Generic {
    /// ST01 transaction set identifier.
    pub set_id: String,
    /// Segments between ST and SE.
    pub segments: Vec<Segment>,
}

impl Document {
    /// One transaction set (`body`, ST03 `guide`) in one functional group in
    /// one interchange from `sender` to `receiver` (ISA06/ISA08 and GS02/GS03,
    /// qualifier `ZZ`), `usage` `P` or `T` (ISA15). Control numbers, dates
    /// and counts are left for [`crate::writer::write_document`] to fill.
    ///
    /// ```
    /// use billd_x12::document::{Body, Document, Generic};
    /// use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};
    /// let body = Body::Generic(Generic {
    ///     set_id: "999".into(),
    ///     segments: vec![
    ///         billd_x12::Segment::new("AK1", &["HC", "7", "005010X222A1"]),
    ///         billd_x12::Segment::new("AK9", &["A", "0", "0", "0"]),
    ///     ],
    /// });
    /// let doc = Document::single("PAYER", "CLINIC", "T", "005010X231A1", body);
    /// let x12 = write_document(&doc, &WriteOptions::default(),
    ///                          &mut SequentialControlNumbers::starting_at(5)).unwrap();
    /// assert!(x12.contains("GS*FA*PAYER*CLINIC*20000101*0000*5*X*005010X231A1~"));
    /// let back = billd_x12::parse(x12.as_bytes(), billd_x12::Mode::Strict).unwrap();
    /// assert!(matches!(back.document.interchanges[0].groups[0].transactions[0].body, Body::Ack(_)));
    /// ```
    #[must_use]
    pub fn single(sender: &str, receiver: &str, usage: &str, guide: &str, body: Body) -> Document {
        let functional_id = crate::writer::functional_id(body.set_id()).to_owned();
        Document {
            interchanges: vec![Interchange {
                header: InterchangeHeader {
                    authorization_qualifier: "00".into(),
                    security_qualifier: "00".into(),
                    sender_qualifier: "ZZ".into(),
                    sender_id: sender.into(),
                    receiver_qualifier: "ZZ".into(),
                    receiver_id: receiver.into(),
                    version: "00501".into(),
                    ack_requested: "0".into(),
                    usage: usage.into(),
                    ..InterchangeHeader::default()
                },
                groups: vec![Group {
                    functional_id,
                    sender: sender.into(),
                    receiver: receiver.into(),
                    agency: "X".into(),
                    version: guide.into(),
                    transactions: vec![Transaction {
                        pos: Pos::default(),
                        control_number: String::new(),
                        guide: Some(guide.into()),
                        body,
                    }],
                    ..Group::default()
                }],
            }],
        }
    }
}

impl Body {
    /// ST01 for this body.
    #[must_use]
    pub fn set_id(&self) -> &str {
        match self {
            Body::Remittance(_) => "835",
            Body::Professional(_) => "837",
            Body::EligibilityInquiry(_) => "270",
            Body::EligibilityResponse(_) => "271",
            Body::StatusRequest(_) => "276",
            Body::StatusResponse(_) | Body::ClaimAck(_) => "277",
            Body::Ack(_) => "999",
            Body::Generic(g) => &g.set_id,
        }
    }

    /// The segments between ST and SE, in guide order.
    #[must_use]
    pub fn to_segments(&self) -> Vec<Segment> {
        match self {
            Body::Remittance(m) => m.to_segments(),
            Body::Professional(m) => m.to_segments(),
            Body::EligibilityInquiry(m)
            | Body::EligibilityResponse(m)
            | Body::StatusRequest(m)
            | Body::StatusResponse(m)
            | Body::ClaimAck(m) => m.to_segments(),
            Body::Ack(m) => m.to_segments(),
            Body::Generic(g) => g.segments.clone(),
        }
    }

    /// The implementation guide billd writes for this kind.
    #[must_use]
    pub fn guide(&self) -> Option<&'static str> {
        Some(match self {
            Body::Remittance(_) => t835::GUIDE,
            Body::Professional(_) => t837p::GUIDE,
            Body::EligibilityInquiry(_) | Body::EligibilityResponse(_) => thl::GUIDE_279,
            Body::StatusRequest(_) | Body::StatusResponse(_) => thl::GUIDE_212,
            Body::ClaimAck(_) => thl::GUIDE_214,
            Body::Ack(_) => t999::GUIDE,
            Body::Generic(_) => return None,
        })
    }
}

/// A parsed file and everything found wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The typed document.
    pub document: Document,
    /// Issues in input order (reader first, then typed-model problems).
    pub issues: Vec<Issue>,
}

impl Parsed {
    /// True when some issue is an error.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(Issue::is_error)
    }
}

/// Reads `input` into a typed [`Document`].
///
/// # Errors
/// Strict mode: every error-severity issue, located. Lenient mode: only
/// input without any readable interchange.
pub fn parse(input: &[u8], mode: Mode) -> Result<Parsed, ReadError> {
    let raw = read_raw(input, Mode::Lenient)?;
    from_raw(raw, mode)
}

/// Builds the typed document from envelopes already read.
///
/// # Errors
/// As [`parse`].
pub fn from_raw(raw: RawDocument, mode: Mode) -> Result<Parsed, ReadError> {
    let mut issues = raw.issues;
    let mut document = Document::default();
    for ic in raw.interchanges {
        document.interchanges.push(interchange(ic, &mut issues));
    }
    issues.sort_by_key(|i| (i.loc.interchange, i.loc.segment));
    if mode == Mode::Strict && issues.iter().any(Issue::is_error) {
        return Err(ReadError {
            issues: issues.into_iter().filter(Issue::is_error).collect(),
        });
    }
    Ok(Parsed { document, issues })
}

fn trimmed(s: &Segment, i: usize) -> String {
    s.get(i).trim_end().to_owned()
}

/// The ISA header of an interchange, padding removed.
pub(crate) fn interchange_header(isa: &Segment) -> InterchangeHeader {
    InterchangeHeader {
        authorization_qualifier: trimmed(isa, 1),
        authorization: trimmed(isa, 2),
        security_qualifier: trimmed(isa, 3),
        security: trimmed(isa, 4),
        sender_qualifier: trimmed(isa, 5),
        sender_id: trimmed(isa, 6),
        receiver_qualifier: trimmed(isa, 7),
        receiver_id: trimmed(isa, 8),
        date: trimmed(isa, 9),
        time: trimmed(isa, 10),
        version: trimmed(isa, 12),
        control_number: trimmed(isa, 13),
        ack_requested: trimmed(isa, 14),
        usage: trimmed(isa, 15),
    }
}

/// A functional group from its GS, with no transactions yet.
pub(crate) fn group_header(gs: &Segment) -> Group {
    Group {
        functional_id: gs.get(1).into(),
        sender: gs.get(2).into(),
        receiver: gs.get(3).into(),
        date: gs.get(4).into(),
        time: gs.get(5).into(),
        control_number: gs.get(6).into(),
        agency: gs.get(7).into(),
        version: gs.get(8).into(),
        transactions: Vec::new(),
    }
}

fn interchange(ic: RawInterchange, issues: &mut Vec<Issue>) -> Interchange {
    let header = interchange_header(&ic.isa.segment);
    let mut groups = Vec::new();
    for g in ic.groups {
        let mut group = group_header(&g.gs.segment);
        for t in g.transactions {
            let typed = transaction(t, &group.version, ic.index, issues);
            group.transactions.push(typed);
        }
        groups.push(group);
    }
    Interchange { header, groups }
}

/// Types one transaction set read in interchange `ic` of group version
/// `gs08`, reporting structure problems to `issues`.
pub(crate) fn transaction(
    t: RawTransaction,
    gs08: &str,
    ic: u32,
    issues: &mut Vec<Issue>,
) -> Transaction {
    let st = &t.st;
    let pos = Pos::of(st);
    let set_id = st.segment.get(1).to_owned();
    let guide = Some(st.segment.get(3).to_owned()).filter(|s| !s.is_empty());
    let version = guide.clone().unwrap_or_else(|| gs08.to_owned());
    let st_loc = Loc {
        interchange: ic,
        segment: st.number,
        in_transaction: Some(1),
        segment_id: "ST".into(),
        element: None,
    };
    let generic = |t: RawTransaction| Generic {
        set_id: set_id.clone(),
        segments: t.body.into_iter().map(|l| l.segment).collect(),
    };
    let control_number = st.segment.get(2).to_owned();
    if version.starts_with("004") || version.starts_with("003") {
        issues.push(Issue::error(
            st_loc,
            IssueKind::UnsupportedVersion {
                version: version.chars().take(6).collect(),
            },
        ));
        return Transaction {
            pos,
            control_number,
            guide,
            body: Body::Generic(generic(t)),
        };
    }
    let kind = match (set_id.as_str(), &version) {
        ("835", _) => Some(("835", t835::GUIDE)),
        ("837", v) if v.contains("X222") => Some(("837P", t837p::GUIDE)),
        ("270", _) => Some(("270", thl::GUIDE_279)),
        ("271", _) => Some(("271", thl::GUIDE_279)),
        ("276", _) => Some(("276", thl::GUIDE_212)),
        ("277", v) if v.contains("X214") => Some(("277CA", thl::GUIDE_214)),
        ("277", _) => Some(("277", thl::GUIDE_212)),
        ("999", _) => Some(("999", t999::GUIDE)),
        _ => None,
    };
    let Some((kind, expected)) = kind else {
        issues.push(Issue::warning(
            st_loc,
            IssueKind::UntypedTransaction {
                set: set_id.clone(),
                version: version.clone(),
            },
        ));
        return Transaction {
            pos,
            control_number,
            guide,
            body: Body::Generic(generic(t)),
        };
    };
    if version != expected {
        issues.push(Issue::warning(
            st_loc.clone(),
            IssueKind::GuideVersion {
                found: version.clone(),
                expected: expected.into(),
            },
        ));
    }
    let mut cx = Cx {
        issues,
        interchange: ic,
    };
    let body = t.body;
    let result = match kind {
        "835" => t835::Remittance::from_tree(build(&t835::SPEC, body, &mut cx), &mut cx)
            .map(Body::Remittance),
        "837P" => t837p::Professional::from_tree(build(&t837p::SPEC, body, &mut cx), &mut cx)
            .map(Body::Professional),
        "270" => thl::Hierarchy::from_tree(build(&thl::SPEC_270, body, &mut cx), &mut cx)
            .map(Body::EligibilityInquiry),
        "271" => thl::Hierarchy::from_tree(build(&thl::SPEC_271, body, &mut cx), &mut cx)
            .map(Body::EligibilityResponse),
        "276" => thl::Hierarchy::from_tree(build(&thl::SPEC_276, body, &mut cx), &mut cx)
            .map(Body::StatusRequest),
        "277" => thl::Hierarchy::from_tree(build(&thl::SPEC_277, body, &mut cx), &mut cx)
            .map(Body::StatusResponse),
        "277CA" => thl::Hierarchy::from_tree(build(&thl::SPEC_277CA, body, &mut cx), &mut cx)
            .map(Body::ClaimAck),
        _ => t999::Ack999::from_tree(build(&t999::SPEC, body, &mut cx), &mut cx).map(Body::Ack),
    };
    let body = match result {
        Ok(b) => b,
        // Only a transaction with no segments at all has no typed model.
        Err(_) => Body::Generic(Generic {
            set_id: set_id.clone(),
            segments: Vec::new(),
        }),
    };
    Transaction {
        pos,
        control_number,
        guide,
        body,
    }
}
