//! Hierarchical (HL) transactions: 270/271 eligibility (X279A1), 276/277
//! claim status (X212) and 277CA claim acknowledgment (X214). They share
//! one shape: HL levels (information source, receiver, provider,
//! subscriber, dependent/patient), each with NM1 name loops, and either
//! EQ/EB benefit loops (270/271) or TRN status-tracking loops with STC
//! statuses and SVC service lines (276/277/277CA). One typed model covers
//! the five; the loop specs differ.

use serde::{Deserialize, Serialize};

use crate::loops::{Cx, GenericLoop, Incomplete, LoopNode, LoopSpec, Pos, hl, on, push_ordered};
use crate::segment::Segment;
use crate::segments::{Aaa, Amt, Bht, Eb, Eq, Hl, Nm1, Ref, Stc, Svc, Trn};
use crate::segments::{CoverageStatus, Dtp};

/// Guide for 270/271.
pub const GUIDE_279: &str = "005010X279A1";
/// Guide for 276/277.
pub const GUIDE_212: &str = "005010X212";
/// Guide for 277CA.
pub const GUIDE_214: &str = "005010X214";

const fn spec(
    id: &'static str,
    trigger: crate::loops::Trigger,
    children: &'static [LoopSpec],
) -> LoopSpec {
    ordered(id, trigger, children, &[])
}

const fn ordered(
    id: &'static str,
    trigger: crate::loops::Trigger,
    children: &'static [LoopSpec],
    order: &'static [&'static str],
) -> LoopSpec {
    LoopSpec {
        id,
        trigger,
        children,
        end: None,
        order,
        max: 0,
    }
}

// 270
static B270: [LoopSpec; 1] = [ordered("2110", on("EQ", &[]), &[], EQ_ORDER)];
const N270: LoopSpec = ordered("2100", on("NM1", &[]), &B270, NAME_ORDER);
static D270: [LoopSpec; 1] = [N270];
static C270: [LoopSpec; 2] = [N270, spec("2000D", hl(&["23"]), &D270)];
static R270: [LoopSpec; 2] = [N270, spec("2000C", hl(&["22"]), &C270)];
static S270: [LoopSpec; 2] = [N270, spec("2000B", hl(&["21"]), &R270)];
static T270: [LoopSpec; 1] = [spec("2000A", hl(&["20"]), &S270)];
/// Loop structure of the 270.
pub static SPEC_270: LoopSpec = spec("ST", on("ST", &[]), &T270);

// 271
static LS271: [LoopSpec; 1] = [LoopSpec {
    id: "2120",
    trigger: on("LS", &[]),
    children: &[],
    end: Some("LE"),
    order: &[],
    max: 0,
}];
static B271: [LoopSpec; 1] = [ordered("2110", on("EB", &[]), &LS271, EB_ORDER)];
const N271: LoopSpec = ordered("2100", on("NM1", &[]), &B271, NAME_ORDER);
static D271: [LoopSpec; 1] = [N271];
static C271: [LoopSpec; 2] = [N271, spec("2000D", hl(&["23"]), &D271)];
static R271: [LoopSpec; 2] = [N271, spec("2000C", hl(&["22"]), &C271)];
static S271: [LoopSpec; 2] = [N271, spec("2000B", hl(&["21"]), &R271)];
static T271: [LoopSpec; 1] = [spec("2000A", hl(&["20"]), &S271)];
/// Loop structure of the 271.
pub static SPEC_271: LoopSpec = spec("ST", on("ST", &[]), &T271);

// 276 / 277 (X212)
const NAME: LoopSpec = ordered("2100", on("NM1", &[]), &[], NAME_ORDER);
static SVC212: [LoopSpec; 1] = [ordered("2210", on("SVC", &[]), &[], SERVICE_ORDER)];
const TRK212: LoopSpec = ordered("2200", on("TRN", &[]), &SVC212, TRACK_ORDER);
static E212: [LoopSpec; 2] = [NAME, TRK212];
static D212: [LoopSpec; 3] = [NAME, TRK212, spec("2000E", hl(&["23"]), &E212)];
static C212: [LoopSpec; 3] = [NAME, TRK212, spec("2000D", hl(&["22"]), &D212)];
static B212: [LoopSpec; 3] = [NAME, TRK212, spec("2000C", hl(&["19"]), &C212)];
static A212: [LoopSpec; 2] = [NAME, spec("2000B", hl(&["21"]), &B212)];
static T212: [LoopSpec; 1] = [spec("2000A", hl(&["20"]), &A212)];
/// Loop structure of the 276.
pub static SPEC_276: LoopSpec = spec("ST", on("ST", &[]), &T212);
/// Loop structure of the 277.
pub static SPEC_277: LoopSpec = spec("ST", on("ST", &[]), &T212);

// 277CA (X214)
static SVC214: [LoopSpec; 1] = [ordered("2220", on("SVC", &[]), &[], SERVICE_ORDER)];
const TRK214: LoopSpec = ordered("2200", on("TRN", &[]), &SVC214, TRACK_ORDER);
static D214: [LoopSpec; 2] = [NAME, TRK214];
static C214: [LoopSpec; 3] = [NAME, TRK214, spec("2000D", hl(&["PT"]), &D214)];
static B214: [LoopSpec; 3] = [NAME, TRK214, spec("2000C", hl(&["19"]), &C214)];
static A214: [LoopSpec; 3] = [NAME, TRK214, spec("2000B", hl(&["21"]), &B214)];
static T214: [LoopSpec; 1] = [spec("2000A", hl(&["20"]), &A214)];
/// Loop structure of the 277CA.
pub static SPEC_277CA: LoopSpec = spec("ST", on("ST", &[]), &T214);

const NAME_ORDER: &[&str] = &[
    "REF", "N3", "N4", "PER", "AAA", "PRV", "DMG", "INS", "HI", "DTP", "MPI",
];
const EQ_ORDER: &[&str] = &["AMT", "III", "REF", "DTP"];
const EB_ORDER: &[&str] = &["HSD", "REF", "DTP", "AAA", "MSG", "III"];
const TRACK_ORDER: &[&str] = &["STC", "REF", "QTY", "AMT", "DTP"];
const SERVICE_ORDER: &[&str] = &["STC", "REF", "DTP"];

/// A 270, 271, 276, 277 or 277CA transaction.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hierarchy {
    /// BHT beginning of hierarchical transaction.
    pub bht: Bht,
    /// Other header segments, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_other: Vec<Segment>,
    /// Top HL levels (information source, level 20), each with its children.
    pub levels: Vec<Level>,
}

/// One HL level and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Level {
    /// Where the HL was read (not serialized; ignored by equality).
    #[serde(skip)]
    pub pos: Pos,
    /// HL segment (HL03: `20` source, `21` receiver, `19` provider, `22` subscriber, `23` dependent, `PT` patient).
    pub hl: Hl,
    /// Segments between HL and the first loop (AAA, TRN in 270/271, DMG in 276), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Name loops (2100x).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<Name>,
    /// Status tracking loops (2200x, 276/277/277CA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracking: Vec<Tracking>,
    /// Child levels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Level>,
}

/// An NM1 name loop (2100x).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Name {
    /// NM1 segment.
    pub nm1: Nm1,
    /// AAA request validations (rejections with reason codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Aaa>,
    /// REF, N3, N4, PER, PRV, DMG, INS, HI, DTP, MPI and anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Benefit loops (2110x): EQ inquiries in a 270, EB benefits in a 271.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benefits: Vec<Benefit>,
}

/// A 2110 loop: an EQ inquiry (270) or an EB benefit (271).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Benefit {
    /// Where the EQ/EB was read (not serialized; ignored by equality).
    #[serde(skip)]
    pub pos: Pos,
    /// EQ inquiry (270).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<Eq>,
    /// EB benefit (271).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eb: Option<Eb>,
    /// AAA rejections for this inquiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Aaa>,
    /// HSD, REF, DTP, MSG, III, AMT and anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// LS/LE related-entity loops (2120), kept generically.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<GenericLoop>,
}

/// A TRN status tracking loop (2200x).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tracking {
    /// Where the TRN was read (not serialized; ignored by equality).
    #[serde(skip)]
    pub pos: Pos,
    /// TRN trace.
    pub trn: Trn,
    /// STC statuses (category, status and entity codes, amounts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Stc>,
    /// REF references (`1K` payer claim control number, `EJ` patient account, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Ref>,
    /// AMT amounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<Amt>,
    /// DTP dates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<Dtp>,
    /// QTY and anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Service line loops (2210/2220).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceStatus>,
}

impl Tracking {
    /// The payer claim control number (REF*1K), if given.
    #[must_use]
    pub fn payer_claim_control_number(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|r| r.qualifier == "1K")
            .and_then(|r| r.value.as_deref())
    }
}

/// A service line status (2210/2220).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// SVC service line.
    pub svc: Svc,
    /// STC statuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Stc>,
    /// REF references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Ref>,
    /// DTP dates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<Dtp>,
    /// Anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
}

impl Hierarchy {
    /// Builds the model from a loop tree made with one of the specs above.
    ///
    /// # Errors
    /// [`Incomplete`] when BHT is missing (reported to `cx`).
    pub fn from_tree(root: LoopNode, cx: &mut Cx<'_>) -> Result<Hierarchy, Incomplete> {
        let mut out = Hierarchy::default();
        let near = root
            .segments
            .first()
            .or_else(|| root.children.first().and_then(|c| c.segments.first()))
            .cloned()
            .ok_or(Incomplete)?;
        let mut bht = None;
        for s in root.segments {
            match &*s.segment.id {
                "BHT" if bht.is_none() => bht = Some(cx.take(s, Bht::ID, Bht::from_owned)),
                _ => out.header_other.push(s.segment),
            }
        }
        out.levels = root.children.into_iter().map(|c| level(c, cx)).collect();
        match bht {
            Some(b) => out.bht = b,
            None => {
                cx.missing(&near, "BHT", "header");
            }
        }
        Ok(out)
    }

    /// The transaction body (between ST and SE) in guide order.
    #[must_use]
    pub fn to_segments(&self) -> Vec<Segment> {
        let mut out = vec![self.bht.to_segment()];
        out.extend(self.header_other.iter().cloned());
        for l in &self.levels {
            write_level(l, &mut out);
        }
        out
    }

    /// Every level, depth first.
    #[must_use]
    pub fn all_levels(&self) -> Vec<&Level> {
        fn walk<'a>(l: &'a Level, out: &mut Vec<&'a Level>) {
            out.push(l);
            for c in &l.children {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        for l in &self.levels {
            walk(l, &mut out);
        }
        out
    }

    /// Every AAA rejection anywhere in the transaction (level, name and
    /// benefit loops).
    #[must_use]
    pub fn rejections(&self) -> Vec<Aaa> {
        let mut out = Vec::new();
        for l in self.all_levels() {
            for s in l.other.iter().filter(|s| s.id == "AAA") {
                out.push(Aaa::from_segment(s).0);
            }
            for n in &l.names {
                out.extend(n.rejections.iter().cloned());
                for b in &n.benefits {
                    out.extend(b.rejections.iter().cloned());
                }
            }
        }
        out
    }

    /// Active or inactive coverage as stated by the EB segments of a 271
    /// (None when no EB states either).
    #[must_use]
    pub fn coverage(&self) -> Option<CoverageStatus> {
        let mut verdict = None;
        for l in self.all_levels() {
            for n in &l.names {
                for b in &n.benefits {
                    match b.eb.as_ref().map(Eb::coverage_status) {
                        Some(CoverageStatus::Active) => return Some(CoverageStatus::Active),
                        Some(CoverageStatus::Inactive) => verdict = Some(CoverageStatus::Inactive),
                        _ => {}
                    }
                }
            }
        }
        verdict
    }
}

fn level(node: LoopNode, cx: &mut Cx<'_>) -> Level {
    let mut out = Level::default();
    let mut segs = node.segments.into_iter();
    if let Some(first) = segs.next() {
        out.pos = Pos::of(&first);
        out.hl = cx.take(first, Hl::ID, Hl::from_owned);
    }
    out.other = segs.map(|l| l.segment).collect();
    for child in node.children {
        match child.trigger_id() {
            "HL" => out.children.push(level(child, cx)),
            "TRN" => out.tracking.push(tracking(child, cx)),
            _ => out.names.push(name(child, cx)),
        }
    }
    out
}

impl LoopNode {
    fn trigger_id(&self) -> &str {
        self.segments.first().map_or("", |s| &*s.segment.id)
    }
}

fn name(node: LoopNode, cx: &mut Cx<'_>) -> Name {
    let mut out = Name::default();
    let mut segs = node.segments.into_iter();
    if let Some(first) = segs.next() {
        out.nm1 = cx.take(first, Nm1::ID, Nm1::from_owned);
    }
    for s in segs {
        match &*s.segment.id {
            "AAA" => out.rejections.push(cx.take(s, Aaa::ID, Aaa::from_owned)),
            _ => out.other.push(s.segment),
        }
    }
    for child in node.children {
        let mut b = Benefit::default();
        let mut segs = child.segments.into_iter();
        if let Some(first) = segs.next() {
            b.pos = Pos::of(&first);
            if first.segment.id == "EQ" {
                b.eq = Some(cx.take(first, Eq::ID, Eq::from_owned));
            } else {
                b.eb = Some(cx.take(first, Eb::ID, Eb::from_owned));
            }
        }
        for s in segs {
            match &*s.segment.id {
                "AAA" => b.rejections.push(cx.take(s, Aaa::ID, Aaa::from_owned)),
                _ => b.other.push(s.segment),
            }
        }
        b.related = child
            .children
            .into_iter()
            .map(GenericLoop::from_node)
            .collect();
        out.benefits.push(b);
    }
    out
}

fn tracking(node: LoopNode, cx: &mut Cx<'_>) -> Tracking {
    let mut out = Tracking::default();
    let mut segs = node.segments.into_iter();
    if let Some(first) = segs.next() {
        out.pos = Pos::of(&first);
        out.trn = cx.take(first, Trn::ID, Trn::from_owned);
    }
    for s in segs {
        match &*s.segment.id {
            "STC" => out.statuses.push(cx.take(s, Stc::ID, Stc::from_owned)),
            "REF" => out.references.push(cx.take(s, Ref::ID, Ref::from_owned)),
            "AMT" => out.amounts.push(cx.take(s, Amt::ID, Amt::from_owned)),
            "DTP" => out.dates.push(cx.take(s, Dtp::ID, Dtp::from_owned)),
            _ => out.other.push(s.segment),
        }
    }
    for child in node.children {
        let mut sv = ServiceStatus::default();
        let mut segs = child.segments.into_iter();
        if let Some(first) = segs.next() {
            sv.svc = cx.take(first, Svc::ID, Svc::from_owned);
        }
        for s in segs {
            match &*s.segment.id {
                "STC" => sv.statuses.push(cx.take(s, Stc::ID, Stc::from_owned)),
                "REF" => sv.references.push(cx.take(s, Ref::ID, Ref::from_owned)),
                "DTP" => sv.dates.push(cx.take(s, Dtp::ID, Dtp::from_owned)),
                _ => sv.other.push(s.segment),
            }
        }
        out.services.push(sv);
    }
    out
}

fn write_level(l: &Level, out: &mut Vec<Segment>) {
    out.push(l.hl.to_segment());
    out.extend(l.other.iter().cloned());
    for n in &l.names {
        out.push(n.nm1.to_segment());
        let mut segs: Vec<Segment> = n.rejections.iter().map(Aaa::to_segment).collect();
        segs.extend(n.other.iter().cloned());
        push_ordered(out, NAME_ORDER, segs);
        for b in &n.benefits {
            let order = if let Some(eq) = &b.eq {
                out.push(eq.to_segment());
                EQ_ORDER
            } else {
                if let Some(eb) = &b.eb {
                    out.push(eb.to_segment());
                }
                EB_ORDER
            };
            let mut segs: Vec<Segment> = b.rejections.iter().map(Aaa::to_segment).collect();
            segs.extend(b.other.iter().cloned());
            push_ordered(out, order, segs);
            for r in &b.related {
                out.extend(r.segments.iter().cloned());
            }
        }
    }
    for t in &l.tracking {
        out.push(t.trn.to_segment());
        let mut segs: Vec<Segment> = t.statuses.iter().map(Stc::to_segment).collect();
        segs.extend(t.references.iter().map(Ref::to_segment));
        segs.extend(t.amounts.iter().map(Amt::to_segment));
        segs.extend(t.dates.iter().map(Dtp::to_segment));
        segs.extend(t.other.iter().cloned());
        push_ordered(out, TRACK_ORDER, segs);
        for s in &t.services {
            out.push(s.svc.to_segment());
            let mut segs: Vec<Segment> = s.statuses.iter().map(Stc::to_segment).collect();
            segs.extend(s.references.iter().map(Ref::to_segment));
            segs.extend(s.dates.iter().map(Dtp::to_segment));
            segs.extend(s.other.iter().cloned());
            push_ordered(out, SERVICE_ORDER, segs);
        }
    }
    for c in &l.children {
        write_level(c, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Body;
    use crate::reader::Mode;

    fn model(rel: &str) -> Body {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/x12")
            .join(rel);
        let parsed = crate::parse(&std::fs::read(p).unwrap(), Mode::Lenient).unwrap();
        parsed.document.interchanges[0].groups[0].transactions[0]
            .body
            .clone()
    }

    #[test]
    fn a_271_states_active_coverage() {
        let Body::EligibilityResponse(h) = model("271/kh__271_active_response.x12") else {
            panic!("not a 271")
        };
        assert_eq!(h.coverage(), Some(CoverageStatus::Active));
        assert!(h.rejections().is_empty());
        let eb = h
            .all_levels()
            .into_iter()
            .flat_map(|l| &l.names)
            .flat_map(|n| &n.benefits)
            .find_map(|b| b.eb.clone())
            .unwrap();
        assert_eq!(eb.service_types.0, vec!["30"]);
    }

    #[test]
    fn a_271_rejection_has_its_reason_code() {
        let Body::EligibilityResponse(h) = model("271/kh__271_rejected_subscriber.x12") else {
            panic!("not a 271")
        };
        let r = h.rejections();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (
                r[0].valid.as_str(),
                r[0].reject_reason.as_deref(),
                r[0].follow_up.as_deref()
            ),
            ("N", Some("72"), Some("C"))
        );
        assert_eq!(h.coverage(), None);
    }

    #[test]
    fn a_277_gives_status_codes_amounts_and_payer_claim_numbers() {
        let Body::StatusResponse(h) = model("277/lfh__claim-level-status.277") else {
            panic!("not a 277")
        };
        let tracking: Vec<&Tracking> = h
            .all_levels()
            .into_iter()
            .flat_map(|l| &l.tracking)
            .collect();
        assert_eq!(tracking.len(), 3);
        assert_eq!(
            tracking[2].services[0].statuses[0].category(),
            "F2",
            "the dependent's service line has its own STC"
        );
        let stc = &tracking[0].statuses[0];
        assert_eq!((stc.category(), stc.status_code()), ("P3", "317"));
        assert_eq!(stc.charge.as_ref().map(|a| a.units()), Some(85_138_800));
        assert_eq!(
            tracking[0].payer_claim_control_number(),
            Some("05347006051")
        );
        assert_eq!(
            tracking[1].statuses[0].payment.as_ref().map(|a| a.as_str()),
            Some("7599.00")
        );
    }

    #[test]
    fn a_277ca_rejection_names_the_entity() {
        let Body::ClaimAck(h) = model("277/ims__x12_277CA_rejected.txt") else {
            panic!("not a 277CA")
        };
        let statuses: Vec<&Stc> = h
            .all_levels()
            .into_iter()
            .flat_map(|l| &l.tracking)
            .flat_map(|t| &t.statuses)
            .collect();
        assert!(
            statuses
                .iter()
                .any(|s| s.category() == "A7" && s.status_code() == "562" && s.entity() == "85")
        );
    }
}
