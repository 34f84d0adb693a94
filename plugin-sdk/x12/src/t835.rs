//! 835 health care claim payment/advice (X12 5010 X221A1): the remittance a
//! payer sends with (or about) a payment. billd posts it to the ledger, so
//! the model names the money (BPR, CLP, CAS, SVC, PLB) and keeps every other
//! segment in order so that nothing read is lost.

use serde::{Deserialize, Serialize};

use crate::loops::{Cx, Incomplete, LoopNode, LoopSpec, Pos, on, push_ordered};
use crate::segment::Segment;
use crate::segments::{Amt, Bpr, Cas, Clp, Dtm, Lx, N1, Nm1, Plb, Ref, Svc, Trn};

/// The implementation guide this model follows.
pub const GUIDE: &str = "005010X221A1";

static SERVICE: [LoopSpec; 1] = [LoopSpec {
    id: "2110",
    trigger: on("SVC", &[]),
    children: &[],
    end: None,
    order: SERVICE_ORDER,
    max: 0,
}];
static CLAIM: [LoopSpec; 1] = [LoopSpec {
    id: "2100",
    trigger: on("CLP", &[]),
    children: &SERVICE,
    end: None,
    order: CLAIM_ORDER,
    max: 0,
}];
static TOP: [LoopSpec; 5] = [
    LoopSpec {
        id: "1000A",
        trigger: on("N1", &["PR"]),
        children: &[],
        end: None,
        order: &[],
        max: 1,
    },
    LoopSpec {
        id: "1000B",
        trigger: on("N1", &["PE"]),
        children: &[],
        end: None,
        order: &[],
        max: 1,
    },
    LoopSpec {
        id: "2000",
        trigger: on("LX", &[]),
        children: &CLAIM,
        end: None,
        order: LX_ORDER,
        max: 0,
    },
    LoopSpec {
        id: "2100",
        trigger: on("CLP", &[]),
        children: &SERVICE,
        end: None,
        order: CLAIM_ORDER,
        max: 0,
    },
    LoopSpec {
        id: "PLB",
        trigger: on("PLB", &[]),
        children: &[],
        end: None,
        order: &[],
        max: 0,
    },
];
/// Loop structure of the 835.
pub static SPEC: LoopSpec = LoopSpec {
    id: "ST",
    trigger: on("ST", &[]),
    children: &TOP,
    end: None,
    order: HEADER_ORDER,
    max: 0,
};

const HEADER_ORDER: &[&str] = &["BPR", "TRN", "CUR", "REF", "DTM"];
const LX_ORDER: &[&str] = &["TS3", "TS2"];
const CLAIM_ORDER: &[&str] = &[
    "CAS", "NM1", "MIA", "MOA", "REF", "DTM", "PER", "AMT", "QTY",
];
const SERVICE_ORDER: &[&str] = &["DTM", "CAS", "REF", "AMT", "QTY", "LQ"];

/// A whole 835 transaction.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Remittance {
    /// BPR: payment amount, method, dates and bank accounts.
    pub financial: Bpr,
    /// TRN: check or EFT trace number (posting is idempotent per payer and trace).
    pub trace: Trn,
    /// Other header segments (CUR, REF, DTM) in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_other: Vec<Segment>,
    /// Loop 1000A payer identification.
    pub payer: Party,
    /// Loop 1000B payee identification.
    pub payee: Party,
    /// Loop 2000 header numbers, each with its claims.
    #[serde(default)]
    pub header_numbers: Vec<HeaderNumber>,
    /// PLB provider-level adjustments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_adjustments: Vec<Plb>,
}

/// An N1 loop (1000A payer or 1000B payee).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Party {
    /// The N1 segment.
    pub n1: N1,
    /// N3, N4, REF, PER, RDM in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
}

/// Loop 2000: an LX header number grouping claims (absent when the payer
/// sent claims without LX).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeaderNumber {
    /// LX segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lx: Option<Lx>,
    /// TS3, TS2 provider summary segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Loop 2100 claim payments.
    #[serde(default)]
    pub claims: Vec<ClaimPayment>,
}

/// Loop 2100: one claim's payment.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClaimPayment {
    /// Where the CLP was read (not serialized; ignored by equality).
    #[serde(skip)]
    pub pos: Pos,
    /// CLP claim payment information.
    pub clp: Clp,
    /// Claim-level CAS adjustments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<Cas>,
    /// NM1 names (patient, insured, corrected names, rendering provider, crossover carrier, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<Nm1>,
    /// REF references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Ref>,
    /// DTM dates (statement period, received, coverage expiration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<Dtm>,
    /// AMT supplemental amounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<Amt>,
    /// MIA, MOA, PER, QTY and anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Loop 2110 service lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServicePayment>,
}

impl ClaimPayment {
    /// True for a reversal of an earlier payment (CLP02 = 22).
    #[must_use]
    pub fn is_reversal(&self) -> bool {
        self.clp.status == "22"
    }
}

/// Loop 2110: one service line's payment.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServicePayment {
    /// Where the SVC was read (not serialized; ignored by equality).
    #[serde(skip)]
    pub pos: Pos,
    /// SVC service payment information (procedure, modifiers, charge, payment, units).
    pub svc: Svc,
    /// DTM service dates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<Dtm>,
    /// Line-level CAS adjustments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<Cas>,
    /// REF references (line item control number, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Ref>,
    /// AMT amounts (allowed, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<Amt>,
    /// QTY, LQ remark codes and anything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
}

impl Remittance {
    /// Builds the model from the 835 loop tree.
    ///
    /// # Errors
    /// [`Incomplete`] when BPR, TRN or an N1 loop is missing (reported to `cx`).
    pub fn from_tree(root: LoopNode, cx: &mut Cx<'_>) -> Result<Remittance, Incomplete> {
        let mut out = Remittance::default();
        let first = root.segments.first().cloned();
        let (mut bpr, mut trn) = (None, None);
        for s in root.segments {
            match &*s.segment.id {
                "BPR" if bpr.is_none() => bpr = Some(cx.take(s, Bpr::ID, Bpr::from_owned)),
                "TRN" if trn.is_none() => trn = Some(cx.take(s, Trn::ID, Trn::from_owned)),
                _ => out.header_other.push(s.segment),
            }
        }
        let (mut payer, mut payee) = (None, None);
        let mut last_loc = first.clone();
        for child in root.children {
            if let Some(f) = child.segments.first() {
                last_loc = Some(f.clone());
            }
            match child.id {
                "1000A" | "1000B" => {
                    let mut segs = child.segments.into_iter();
                    let party = segs.next().map(|s| Party {
                        n1: cx.take(s, N1::ID, N1::from_owned),
                        other: segs.map(|l| l.segment).collect(),
                    });
                    let slot = if child.id == "1000A" {
                        &mut payer
                    } else {
                        &mut payee
                    };
                    match (slot.is_some(), party) {
                        // Repeated beyond its maximum (reported): keep the
                        // segments so a lenient read loses nothing.
                        (true, Some(p)) => {
                            out.header_other.push(p.n1.to_segment());
                            out.header_other.extend(p.other);
                        }
                        (_, p) => {
                            if p.is_some() {
                                *slot = p;
                            }
                        }
                    }
                }
                "2000" => {
                    let mut segs = child.segments.into_iter();
                    let lx = segs.next().map(|s| cx.take(s, Lx::ID, Lx::from_owned));
                    out.header_numbers.push(HeaderNumber {
                        lx,
                        other: segs.map(|l| l.segment).collect(),
                        claims: child.children.into_iter().map(|c| claim(c, cx)).collect(),
                    });
                }
                "2100" => {
                    let c = claim(child, cx);
                    match out.header_numbers.last_mut() {
                        Some(h) if h.lx.is_none() => h.claims.push(c),
                        _ => out.header_numbers.push(HeaderNumber {
                            lx: None,
                            other: Vec::new(),
                            claims: vec![c],
                        }),
                    }
                }
                _ => {
                    for s in &child.segments {
                        out.provider_adjustments
                            .push(cx.take(s.clone(), Plb::ID, Plb::from_owned));
                    }
                }
            }
        }
        let Some(near) = first.or(last_loc) else {
            return Err(Incomplete);
        };

        for (present, seg, lp) in [
            (bpr.is_some(), "BPR", "header"),
            (trn.is_some(), "TRN", "header"),
            (payer.is_some(), "N1*PR", "1000A"),
            (payee.is_some(), "N1*PE", "1000B"),
        ] {
            if !present {
                cx.missing(&near, seg, lp);
            }
        }
        out.financial = bpr.unwrap_or_default();
        out.trace = trn.unwrap_or_default();
        out.payer = payer.unwrap_or_default();
        out.payee = payee.unwrap_or_default();
        Ok(out)
    }

    /// The transaction body (between ST and SE) in guide order.
    #[must_use]
    pub fn to_segments(&self) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut header = vec![self.financial.to_segment(), self.trace.to_segment()];
        header.extend(self.header_other.iter().cloned());
        push_ordered(&mut out, HEADER_ORDER, header);
        for p in [&self.payer, &self.payee] {
            out.push(p.n1.to_segment());
            out.extend(p.other.iter().cloned());
        }
        for h in &self.header_numbers {
            if let Some(lx) = &h.lx {
                out.push(lx.to_segment());
            }
            push_ordered(&mut out, LX_ORDER, h.other.clone());
            for c in &h.claims {
                out.push(c.clp.to_segment());
                let mut segs: Vec<Segment> = Vec::new();
                segs.extend(c.adjustments.iter().map(Cas::to_segment));
                segs.extend(c.names.iter().map(Nm1::to_segment));
                segs.extend(c.references.iter().map(Ref::to_segment));
                segs.extend(c.dates.iter().map(Dtm::to_segment));
                segs.extend(c.amounts.iter().map(Amt::to_segment));
                segs.extend(c.other.iter().cloned());
                push_ordered(&mut out, CLAIM_ORDER, segs);
                for s in &c.services {
                    out.push(s.svc.to_segment());
                    let mut segs: Vec<Segment> = Vec::new();
                    segs.extend(s.dates.iter().map(Dtm::to_segment));
                    segs.extend(s.adjustments.iter().map(Cas::to_segment));
                    segs.extend(s.references.iter().map(Ref::to_segment));
                    segs.extend(s.amounts.iter().map(Amt::to_segment));
                    segs.extend(s.other.iter().cloned());
                    push_ordered(&mut out, SERVICE_ORDER, segs);
                }
            }
        }
        out.extend(self.provider_adjustments.iter().map(Plb::to_segment));
        out
    }

    /// Every claim payment in order.
    pub fn claims(&self) -> impl Iterator<Item = &ClaimPayment> {
        self.header_numbers.iter().flat_map(|h| h.claims.iter())
    }
}

fn claim(node: LoopNode, cx: &mut Cx<'_>) -> ClaimPayment {
    let mut out = ClaimPayment::default();
    let mut segs = node.segments.into_iter();
    if let Some(first) = segs.next() {
        out.pos = Pos::of(&first);
        out.clp = cx.take(first, Clp::ID, Clp::from_owned);
    }
    for s in segs {
        match &*s.segment.id {
            "CAS" => out.adjustments.push(cx.take(s, Cas::ID, Cas::from_owned)),
            "NM1" => out.names.push(cx.take(s, Nm1::ID, Nm1::from_owned)),
            "REF" => out.references.push(cx.take(s, Ref::ID, Ref::from_owned)),
            "DTM" => out.dates.push(cx.take(s, Dtm::ID, Dtm::from_owned)),
            "AMT" => out.amounts.push(cx.take(s, Amt::ID, Amt::from_owned)),
            _ => out.other.push(s.segment),
        }
    }
    out.services.reserve_exact(node.children.len());
    for child in node.children {
        let mut sp = ServicePayment::default();
        let mut segs = child.segments.into_iter();
        if let Some(first) = segs.next() {
            sp.pos = Pos::of(&first);
            sp.svc = cx.take(first, Svc::ID, Svc::from_owned);
        }
        for s in segs {
            match &*s.segment.id {
                "CAS" => sp.adjustments.push(cx.take(s, Cas::ID, Cas::from_owned)),
                "REF" => sp.references.push(cx.take(s, Ref::ID, Ref::from_owned)),
                "DTM" => sp.dates.push(cx.take(s, Dtm::ID, Dtm::from_owned)),
                "AMT" => sp.amounts.push(cx.take(s, Amt::ID, Amt::from_owned)),
                _ => sp.other.push(s.segment),
            }
        }
        out.services.push(sp);
    }
    out
}
