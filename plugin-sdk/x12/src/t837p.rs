//! 837 professional claim (X12 5010 X222A1): what billd submits to payers.
//! A wrong 837 is a denied claim, so the model names what claims are made
//! of (providers with NPIs, the subscriber/patient hierarchy, CLM, HI
//! diagnoses, SV1 lines, secondary-payer 2320/2330 loops) and keeps every
//! other segment in guide order.

use serde::{Deserialize, Serialize};

use crate::loops::{
    Cx, Entity, GenericLoop, Incomplete, LoopNode, LoopSpec, Pos, hl, on, push_ordered,
};
use crate::segment::{Located, Segment};
use crate::segments::{Amt, Bht, Cas, Clm, Dtp, Hi, Hl, Lx, Ref, Sbr, Sv1};

/// The implementation guide this model follows.
pub const GUIDE: &str = "005010X222A1";

const fn leaf(id: &'static str, nm1: &'static [&'static str]) -> LoopSpec {
    leaf_n(id, nm1, 1)
}

const fn leaf_n(id: &'static str, nm1: &'static [&'static str], max: u16) -> LoopSpec {
    LoopSpec {
        id,
        trigger: on("NM1", nm1),
        children: &[],
        end: None,
        order: &[],
        max,
    }
}

static L2330: [LoopSpec; 7] = [
    leaf("2330A", &["IL"]),
    leaf("2330B", &["PR"]),
    leaf("2330C", &["DN", "P3"]),
    leaf("2330D", &["82"]),
    leaf("2330E", &["77"]),
    leaf("2330F", &["DQ"]),
    leaf("2330G", &["85"]),
];
static L2400: [LoopSpec; 12] = [
    LoopSpec {
        id: "2410",
        trigger: on("LIN", &[]),
        children: &[],
        end: None,
        order: &[],
        max: 0,
    },
    leaf("2420A", &["82"]),
    leaf("2420B", &["QB"]),
    leaf("2420C", &["77"]),
    leaf("2420D", &["DQ"]),
    leaf("2420E", &["DK"]),
    leaf_n("2420F", &["DN", "P3"], 2),
    leaf("2420G", &["PW"]),
    leaf("2420H", &["45"]),
    LoopSpec {
        id: "2430",
        trigger: on("SVD", &[]),
        children: &[],
        end: None,
        order: &[],
        max: 0,
    },
    LoopSpec {
        id: "2440",
        trigger: on("LQ", &[]),
        children: &[],
        end: None,
        order: &[],
        max: 0,
    },
    leaf_n("2420", &[], 0),
];
static L2300: [LoopSpec; 8] = [
    leaf_n("2310A", &["DN", "P3"], 2),
    leaf("2310B", &["82"]),
    leaf("2310C", &["77"]),
    leaf("2310D", &["DQ"]),
    leaf("2310E", &["PW"]),
    leaf("2310F", &["45"]),
    LoopSpec {
        id: "2320",
        trigger: on("SBR", &[]),
        children: &L2330,
        end: None,
        order: ORDER_2320,
        max: 0,
    },
    LoopSpec {
        id: "2400",
        trigger: on("LX", &[]),
        children: &L2400,
        end: None,
        order: ORDER_2400,
        max: 0,
    },
];
const CLAIM: LoopSpec = LoopSpec {
    id: "2300",
    trigger: on("CLM", &[]),
    children: &L2300,
    end: None,
    order: ORDER_2300,
    max: 0,
};
static L2000C: [LoopSpec; 2] = [leaf("2010CA", &["QC"]), CLAIM];
static L2000B: [LoopSpec; 4] = [
    leaf("2010BA", &["IL"]),
    leaf("2010BB", &["PR"]),
    CLAIM,
    LoopSpec {
        id: "2000C",
        trigger: hl(&["23"]),
        children: &L2000C,
        end: None,
        order: &[],
        max: 0,
    },
];
static L2000A: [LoopSpec; 4] = [
    leaf("2010AA", &["85"]),
    leaf("2010AB", &["87"]),
    leaf("2010AC", &["PE"]),
    LoopSpec {
        id: "2000B",
        trigger: hl(&["22"]),
        children: &L2000B,
        end: None,
        order: ORDER_2000B,
        max: 0,
    },
];
static TOP: [LoopSpec; 3] = [
    leaf("1000A", &["41"]),
    leaf("1000B", &["40"]),
    LoopSpec {
        id: "2000A",
        trigger: hl(&["20"]),
        children: &L2000A,
        end: None,
        order: ORDER_2000A,
        max: 0,
    },
];
/// Loop structure of the 837P.
pub static SPEC: LoopSpec = LoopSpec {
    id: "ST",
    trigger: on("ST", &[]),
    children: &TOP,
    end: None,
    order: &["BHT"],
    max: 0,
};

const ORDER_2000A: &[&str] = &["PRV", "CUR"];
const ORDER_2000B: &[&str] = &["SBR", "PAT"];
const ORDER_2300: &[&str] = &[
    "DTP", "PWK", "CN1", "AMT", "REF", "K3", "NTE", "CR1", "CR2", "CRC", "HI", "HCP",
];
const ORDER_2320: &[&str] = &["CAS", "AMT", "OI", "MOA"];
const ORDER_2400: &[&str] = &[
    "SV1", "SV5", "PWK", "CR1", "CR3", "CRC", "DTP", "QTY", "MEA", "CN1", "REF", "AMT", "K3",
    "NTE", "PS1", "HCP",
];

/// A whole 837P transaction.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Professional {
    /// BHT beginning of hierarchical transaction.
    pub bht: Bht,
    /// Other header segments, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_other: Vec<Segment>,
    /// Loop 1000A submitter.
    pub submitter: Entity,
    /// Loop 1000B receiver.
    pub receiver: Entity,
    /// Loop 2000A billing providers.
    pub billing_providers: Vec<BillingProvider>,
}

/// Loop 2000A: a billing provider and the claims billed under it.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BillingProvider {
    /// HL (level 20).
    pub hl: Hl,
    /// PRV specialty, CUR currency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Loop 2010AA billing provider name (NM1*85 with NPI), address, tax id.
    pub billing: Entity,
    /// Loop 2010AB pay-to address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_to: Option<Entity>,
    /// Loop 2010AC pay-to plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_to_plan: Option<Entity>,
    /// Loop 2000B subscribers.
    pub subscribers: Vec<Subscriber>,
}

/// Loop 2000B: a subscriber, the payer, and claims where the patient is
/// the subscriber.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Subscriber {
    /// HL (level 22).
    pub hl: Hl,
    /// SBR subscriber information.
    pub sbr: Sbr,
    /// PAT and anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Loop 2010BA subscriber name (NM1*IL), address, demographics.
    pub subscriber: Entity,
    /// Loop 2010BB payer name (NM1*PR).
    pub payer: Entity,
    /// Loop 2300 claims for the subscriber as patient.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<Claim>,
    /// Loop 2000C patients other than the subscriber.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patients: Vec<Patient>,
}

/// Loop 2000C: a patient who is not the subscriber.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Patient {
    /// HL (level 23).
    pub hl: Hl,
    /// PAT and anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Loop 2010CA patient name (NM1*QC).
    pub patient: Entity,
    /// Loop 2300 claims.
    pub claims: Vec<Claim>,
}

/// Loop 2300: one claim.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Claim {
    /// Where the CLM was read (not serialized; ignored by equality).
    #[serde(skip)]
    pub pos: Pos,
    /// CLM claim information (id, charge, place of service, frequency).
    pub clm: Clm,
    /// DTP dates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<Dtp>,
    /// AMT amounts (patient amount paid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<Amt>,
    /// REF references (prior authorization, payer claim control number, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Ref>,
    /// HI segments: diagnoses (ICD-10 `ABK`/`ABF`) and other health care codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_info: Vec<Hi>,
    /// PWK, CN1, K3, NTE, CR1, CR2, CRC, HCP and anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Loops 2310A–F: referring, rendering, facility, supervising, ambulance locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<Entity>,
    /// Loop 2320: other subscribers (secondary payers, COB).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_subscribers: Vec<OtherSubscriber>,
    /// Loop 2400: service lines.
    pub lines: Vec<ServiceLine>,
}

impl Claim {
    /// ICD-10 diagnosis codes in order (principal first).
    #[must_use]
    pub fn diagnoses(&self) -> Vec<&str> {
        self.health_info
            .iter()
            .flat_map(Hi::icd10_diagnoses)
            .collect()
    }

    /// The rendering provider (loop 2310B), if any.
    #[must_use]
    pub fn rendering_provider(&self) -> Option<&Entity> {
        self.providers.iter().find(|e| e.nm1.entity == "82")
    }
}

/// Loop 2320: another payer's subscriber and what it paid (COB).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OtherSubscriber {
    /// SBR other subscriber information.
    pub sbr: Sbr,
    /// CAS claim-level adjustments by the other payer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<Cas>,
    /// AMT COB amounts (`D` payer paid, `A8` non-covered, `EAF` remaining patient liability).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<Amt>,
    /// OI, MOA and anything else, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Loops 2330A–G: other subscriber, other payer and its provider ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<Entity>,
}

/// Loop 2400: one service line.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceLine {
    /// Where the LX was read (not serialized; ignored by equality).
    #[serde(skip)]
    pub pos: Pos,
    /// LX line number.
    pub lx: Lx,
    /// SV1 professional service (procedure, modifiers, charge, units, diagnosis pointers).
    pub sv1: Sv1,
    /// DTP service dates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<Dtp>,
    /// REF references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Ref>,
    /// AMT amounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<Amt>,
    /// SV5, PWK, CR1, CR3, CRC, QTY, MEA, CN1, K3, NTE, PS1, HCP and anything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Loop 2410 drug identification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drug: Option<GenericLoop>,
    /// Loops 2420A–H line-level providers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<Entity>,
    /// Loop 2430 line adjudication by other payers (SVD, CAS, DTP, AMT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjudications: Vec<GenericLoop>,
    /// Loop 2440 form identification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forms: Vec<GenericLoop>,
}

fn first_of(node: &LoopNode) -> Option<Located> {
    node.segments.first().cloned()
}

impl Professional {
    /// Builds the model from the 837P loop tree.
    ///
    /// # Errors
    /// [`Incomplete`] when a required segment or loop is missing (reported to `cx`).
    pub fn from_tree(root: LoopNode, cx: &mut Cx<'_>) -> Result<Professional, Incomplete> {
        let near = first_of(&root)
            .or_else(|| root.children.first().and_then(first_of))
            .ok_or(Incomplete)?;
        let mut out = Professional::default();
        let mut bht = None;
        for s in root.segments {
            match &*s.segment.id {
                "BHT" if bht.is_none() => bht = Some(cx.take(s, Bht::ID, Bht::from_owned)),
                _ => out.header_other.push(s.segment),
            }
        }
        let (mut submitter, mut receiver) = (None, None);
        for child in root.children {
            match child.id {
                "1000A" => Entity::keep_one(
                    &mut submitter,
                    Entity::from_node(child, cx),
                    &mut out.header_other,
                ),
                "1000B" => Entity::keep_one(
                    &mut receiver,
                    Entity::from_node(child, cx),
                    &mut out.header_other,
                ),
                _ => out.billing_providers.push(billing_provider(child, cx)?),
            }
        }

        for (present, seg, lp) in [
            (bht.is_some(), "BHT", "header"),
            (submitter.is_some(), "NM1*41", "1000A"),
            (receiver.is_some(), "NM1*40", "1000B"),
            (!out.billing_providers.is_empty(), "HL*20", "2000A"),
        ] {
            if !present {
                cx.missing(&near, seg, lp);
            }
        }
        out.bht = bht.unwrap_or_default();
        out.submitter = submitter.unwrap_or_default();
        out.receiver = receiver.unwrap_or_default();
        Ok(out)
    }

    /// The transaction body (between ST and SE) in guide order.
    #[must_use]
    pub fn to_segments(&self) -> Vec<Segment> {
        let mut out = vec![self.bht.to_segment()];
        out.extend(self.header_other.iter().cloned());
        self.submitter.write(&mut out);
        self.receiver.write(&mut out);
        for bp in &self.billing_providers {
            out.push(bp.hl.to_segment());
            push_ordered(&mut out, ORDER_2000A, bp.other.clone());
            bp.billing.write(&mut out);
            for e in [&bp.pay_to, &bp.pay_to_plan].into_iter().flatten() {
                e.write(&mut out);
            }
            for sub in &bp.subscribers {
                out.push(sub.hl.to_segment());
                let mut segs = vec![sub.sbr.to_segment()];
                segs.extend(sub.other.iter().cloned());
                push_ordered(&mut out, ORDER_2000B, segs);
                sub.subscriber.write(&mut out);
                sub.payer.write(&mut out);
                for c in &sub.claims {
                    write_claim(c, &mut out);
                }
                for p in &sub.patients {
                    out.push(p.hl.to_segment());
                    out.extend(p.other.iter().cloned());
                    p.patient.write(&mut out);
                    for c in &p.claims {
                        write_claim(c, &mut out);
                    }
                }
            }
        }
        out
    }

    /// Every claim in order, with its subscriber and patient (None when the
    /// subscriber is the patient).
    pub fn claims(&self) -> impl Iterator<Item = (&Subscriber, Option<&Patient>, &Claim)> {
        self.billing_providers
            .iter()
            .flat_map(|bp| bp.subscribers.iter())
            .flat_map(|s| {
                s.claims.iter().map(move |c| (s, None, c)).chain(
                    s.patients
                        .iter()
                        .flat_map(move |p| p.claims.iter().map(move |c| (s, Some(p), c))),
                )
            })
    }
}

fn hl_of(node: &mut LoopNode, cx: &mut Cx<'_>) -> (Hl, Located, Vec<Located>) {
    let mut segs = std::mem::take(&mut node.segments).into_iter();
    let first = segs.next();
    let near = first.clone().unwrap_or(Located {
        segment: Segment::default(),
        number: 0,
        in_transaction: None,
    });
    let hl = first
        .map(|s| cx.take(s, Hl::ID, Hl::from_owned))
        .unwrap_or_default();
    (hl, near, segs.collect())
}

fn billing_provider(mut node: LoopNode, cx: &mut Cx<'_>) -> Result<BillingProvider, Incomplete> {
    let (hl, near, rest) = hl_of(&mut node, cx);
    let mut out = BillingProvider {
        hl,
        other: rest.into_iter().map(|l| l.segment).collect(),
        ..BillingProvider::default()
    };
    let mut billing = None;
    for child in node.children {
        match child.id {
            "2010AA" => {
                Entity::keep_one(&mut billing, Entity::from_node(child, cx), &mut out.other)
            }
            "2010AB" => Entity::keep_one(
                &mut out.pay_to,
                Entity::from_node(child, cx),
                &mut out.other,
            ),
            "2010AC" => Entity::keep_one(
                &mut out.pay_to_plan,
                Entity::from_node(child, cx),
                &mut out.other,
            ),
            _ => out.subscribers.push(subscriber(child, cx)?),
        }
    }
    match billing {
        Some(b) => out.billing = b,
        None => {
            cx.missing(&near, "NM1*85", "2010AA");
        }
    }
    Ok(out)
}

fn subscriber(mut node: LoopNode, cx: &mut Cx<'_>) -> Result<Subscriber, Incomplete> {
    let (hl, near, rest) = hl_of(&mut node, cx);
    let mut out = Subscriber {
        hl,
        ..Subscriber::default()
    };
    let mut sbr = None;
    for s in rest {
        match &*s.segment.id {
            "SBR" if sbr.is_none() => sbr = Some(cx.take(s, Sbr::ID, Sbr::from_owned)),
            _ => out.other.push(s.segment),
        }
    }
    let (mut sub, mut payer) = (None, None);
    for child in node.children {
        match child.id {
            "2010BA" => Entity::keep_one(&mut sub, Entity::from_node(child, cx), &mut out.other),
            "2010BB" => Entity::keep_one(&mut payer, Entity::from_node(child, cx), &mut out.other),
            "2300" => out.claims.push(claim(child, cx)?),
            _ => out.patients.push(patient(child, cx)?),
        }
    }

    for (present, seg, lp) in [
        (sbr.is_some(), "SBR", "2000B"),
        (sub.is_some(), "NM1*IL", "2010BA"),
        (payer.is_some(), "NM1*PR", "2010BB"),
    ] {
        if !present {
            cx.missing(&near, seg, lp);
        }
    }
    out.sbr = sbr.unwrap_or_default();
    out.subscriber = sub.unwrap_or_default();
    out.payer = payer.unwrap_or_default();
    Ok(out)
}

fn patient(mut node: LoopNode, cx: &mut Cx<'_>) -> Result<Patient, Incomplete> {
    let (hl, near, rest) = hl_of(&mut node, cx);
    let mut out = Patient {
        hl,
        other: rest.into_iter().map(|l| l.segment).collect(),
        ..Patient::default()
    };
    let mut pat = None;
    for child in node.children {
        match child.id {
            "2010CA" => Entity::keep_one(&mut pat, Entity::from_node(child, cx), &mut out.other),
            _ => out.claims.push(claim(child, cx)?),
        }
    }
    match pat {
        Some(p) => out.patient = p,
        None => {
            cx.missing(&near, "NM1*QC", "2010CA");
        }
    }
    Ok(out)
}

fn claim(node: LoopNode, cx: &mut Cx<'_>) -> Result<Claim, Incomplete> {
    let mut out = Claim::default();
    let mut segs = node.segments.into_iter();
    if let Some(first) = segs.next() {
        out.pos = Pos::of(&first);
        out.clm = cx.take(first, Clm::ID, Clm::from_owned);
    }
    for s in segs {
        match &*s.segment.id {
            "DTP" => out.dates.push(cx.take(s, Dtp::ID, Dtp::from_owned)),
            "AMT" => out.amounts.push(cx.take(s, Amt::ID, Amt::from_owned)),
            "REF" => out.references.push(cx.take(s, Ref::ID, Ref::from_owned)),
            "HI" => out.health_info.push(cx.take(s, Hi::ID, Hi::from_owned)),
            _ => out.other.push(s.segment),
        }
    }
    for child in node.children {
        match child.id {
            "2320" => {
                let mut os = OtherSubscriber::default();
                let mut segs = child.segments.into_iter();
                if let Some(first) = segs.next() {
                    os.sbr = cx.take(first, Sbr::ID, Sbr::from_owned);
                }
                for s in segs {
                    match &*s.segment.id {
                        "CAS" => os.adjustments.push(cx.take(s, Cas::ID, Cas::from_owned)),
                        "AMT" => os.amounts.push(cx.take(s, Amt::ID, Amt::from_owned)),
                        _ => os.other.push(s.segment),
                    }
                }
                os.entities = child
                    .children
                    .into_iter()
                    .map(|e| Entity::from_node(e, cx))
                    .collect();
                out.other_subscribers.push(os);
            }
            "2400" => out.lines.push(line(child, cx)?),
            _ => out.providers.push(Entity::from_node(child, cx)),
        }
    }
    Ok(out)
}

fn line(node: LoopNode, cx: &mut Cx<'_>) -> Result<ServiceLine, Incomplete> {
    let mut out = ServiceLine::default();
    let mut segs = node.segments.into_iter();
    let first = segs.next().ok_or(Incomplete)?;
    out.pos = Pos::of(&first);
    out.lx = cx.take(first.clone(), Lx::ID, Lx::from_owned);
    let mut sv1 = None;
    for s in segs {
        match &*s.segment.id {
            "SV1" if sv1.is_none() => sv1 = Some(cx.take(s, Sv1::ID, Sv1::from_owned)),
            "DTP" => out.dates.push(cx.take(s, Dtp::ID, Dtp::from_owned)),
            "AMT" => out.amounts.push(cx.take(s, Amt::ID, Amt::from_owned)),
            "REF" => out.references.push(cx.take(s, Ref::ID, Ref::from_owned)),
            _ => out.other.push(s.segment),
        }
    }
    match sv1 {
        Some(v) => out.sv1 = v,
        None => {
            cx.missing(&first, "SV1", "2400");
        }
    }
    for child in node.children {
        match child.id {
            "2410" => out.drug = Some(GenericLoop::from_node(child)),
            "2430" => out.adjudications.push(GenericLoop::from_node(child)),
            "2440" => out.forms.push(GenericLoop::from_node(child)),
            _ => out.providers.push(Entity::from_node(child, cx)),
        }
    }
    Ok(out)
}

fn write_claim(c: &Claim, out: &mut Vec<Segment>) {
    out.push(c.clm.to_segment());
    let mut segs: Vec<Segment> = Vec::new();
    segs.extend(c.dates.iter().map(Dtp::to_segment));
    segs.extend(c.amounts.iter().map(Amt::to_segment));
    segs.extend(c.references.iter().map(Ref::to_segment));
    segs.extend(c.health_info.iter().map(Hi::to_segment));
    segs.extend(c.other.iter().cloned());
    push_ordered(out, ORDER_2300, segs);
    for p in &c.providers {
        p.write(out);
    }
    for os in &c.other_subscribers {
        out.push(os.sbr.to_segment());
        let mut segs: Vec<Segment> = Vec::new();
        segs.extend(os.adjustments.iter().map(Cas::to_segment));
        segs.extend(os.amounts.iter().map(Amt::to_segment));
        segs.extend(os.other.iter().cloned());
        push_ordered(out, ORDER_2320, segs);
        for e in &os.entities {
            e.write(out);
        }
    }
    for l in &c.lines {
        out.push(l.lx.to_segment());
        let mut segs = vec![l.sv1.to_segment()];
        segs.extend(l.dates.iter().map(Dtp::to_segment));
        segs.extend(l.references.iter().map(Ref::to_segment));
        segs.extend(l.amounts.iter().map(Amt::to_segment));
        segs.extend(l.other.iter().cloned());
        push_ordered(out, ORDER_2400, segs);
        if let Some(d) = &l.drug {
            out.extend(d.segments.iter().cloned());
        }
        for p in &l.providers {
            p.write(out);
        }
        for a in l.adjudications.iter().chain(&l.forms) {
            out.extend(a.segments.iter().cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::document::Body;
    use crate::reader::Mode;

    #[test]
    fn reads_claims_diagnoses_lines_and_cob() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/x12/837P/lfh__demo.cob.example3.A.837");
        let parsed = crate::parse(&std::fs::read(p).unwrap(), Mode::Lenient).unwrap();
        let Body::Professional(m) = &parsed.document.interchanges[0].groups[0].transactions[0].body
        else {
            panic!("not an 837P")
        };
        let claims: Vec<_> = m.claims().collect();
        assert_eq!(claims.len(), 1);
        let (sub, patient, c) = claims[0];
        assert_eq!(sub.sbr.responsibility, "P");
        assert!(patient.is_some(), "the patient is a dependent (2000C)");
        assert_eq!(c.clm.total_charge.as_str(), "79.04");
        assert_eq!((c.clm.place_of_service(), c.clm.frequency()), ("11", "1"));
        // HI uses 4010-era BK/BF qualifiers here, not ICD-10 ABK/ABF.
        assert!(c.diagnoses().is_empty());
        assert_eq!(c.health_info[0].codes[0].get(1), "BK");
        assert_eq!(
            c.rendering_provider().and_then(|e| e.nm1.npi()),
            Some("1999996666")
        );
        assert_eq!(c.other_subscribers.len(), 1);
        assert_eq!(c.other_subscribers[0].sbr.responsibility, "S");
        assert_eq!(c.lines.len(), 3);
        assert_eq!(
            c.lines[0].sv1.diagnosis_pointers.0,
            vec!["1", "2", "3", "4"]
        );
        let sum: i64 = c.lines.iter().map(|l| l.sv1.charge.units()).sum();
        assert_eq!(sum, c.clm.total_charge.units());
    }
}
