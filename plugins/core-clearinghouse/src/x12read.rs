//! Reading what the clearinghouse answers: 271 into eligibility, 277 into
//! claim states, 999 and 277CA into acknowledgments, 835 into remittances.
//! Every payload is read strictly by billd-x12 first (envelopes, counts,
//! loop structure); one that does not read is the other side's fault and
//! reported as such. Pure: tested on the host target.

use billd_plugin_sdk::payer::{
    Acknowledgment, AcknowledgmentError, AcknowledgmentKind, AcknowledgmentOutcome, Benefit,
    BenefitKind, ClaimPayment, ClaimState, CoverageLevel, CoverageStatus, Eligibility, LinePayment,
    Network, ProviderAdjustment, Remittance, StatusResponse,
};
use billd_plugin_sdk::types::{
    Adjustment, AdjustmentGroup, Date, Procedure, ProcedureCodeSet, Timestamp,
};
use billd_x12::segment::Segment;
use billd_x12::{Mode, parse, read_raw};

/// One interchange as read: its ISA13 and the segments of each transaction.
pub struct Read {
    /// ISA13 as a number.
    pub isa13: u64,
    /// Transaction sets: (ST01, segments between ST and SE).
    pub sets: Vec<(String, Vec<Segment>)>,
}

/// Reads a payload (one or more interchanges).
///
/// # Errors
/// A message (no patient data: codes and positions only) when it is not
/// X12 billd-x12 can read strictly.
pub fn read(payload: &[u8]) -> Result<Vec<Read>, String> {
    parse(payload, Mode::Strict).map_err(|e| format!("the answer's X12 does not read: {e}"))?;
    let raw = read_raw(payload, Mode::Strict)
        .map_err(|e| format!("the answer's X12 does not read: {e}"))?;
    Ok(raw
        .interchanges
        .into_iter()
        .map(|ic| Read {
            isa13: ic.isa.segment.get(13).trim().parse().unwrap_or(0),
            sets: ic
                .groups
                .into_iter()
                .flat_map(|g| g.transactions)
                .map(|t| {
                    (
                        t.st.segment.get(1).to_owned(),
                        t.body.into_iter().map(|l| l.segment).collect(),
                    )
                })
                .collect(),
        })
        .collect())
}

/// Reads only the interchanges of a payload whose ISA13 is above `after`,
/// so a clearinghouse that keeps handing out old files costs a scan of
/// their ISA headers, not a parse. A payload that cannot be cut into
/// interchanges that way is read whole, so its problem is reported where
/// it is.
///
/// # Errors
/// As [`read`], for the interchanges it reads.
pub fn read_after(payload: &[u8], after: u64) -> Result<Vec<Read>, String> {
    let Some(pieces) = interchanges(payload) else {
        return Ok(read(payload)?
            .into_iter()
            .filter(|r| r.isa13 > after)
            .collect());
    };
    let mut out = Vec::new();
    for (isa13, piece) in pieces {
        if isa13 > after {
            out.extend(read(piece)?);
        }
    }
    Ok(out)
}

/// Cuts a payload into its interchanges by their fixed-width ISA headers
/// (separators at ISA positions 3 and 105) and IEA trailers: each with its
/// ISA13. `None` when the payload is not laid out that way.
fn interchanges(payload: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    let mut rest = payload.trim_ascii_start();
    while !rest.is_empty() {
        if rest.len() < 106 || !rest.starts_with(b"ISA") {
            return None;
        }
        let (sep, term) = (rest[3], rest[105]);
        let isa13 = rest[..106]
            .split(|b| *b == sep)
            .nth(13)
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| f.trim().parse::<u64>().ok())?;
        let iea = [term, b'I', b'E', b'A', sep];
        let at = rest.windows(iea.len()).position(|w| w == iea)?;
        let end = at + 1 + rest[at + 1..].iter().position(|b| *b == term)? + 1;
        out.push((isa13, &rest[..end]));
        rest = rest[end..].trim_ascii_start();
    }
    Some(out)
}

/// `CCYYMMDD` as a date.
pub fn date(s: &str) -> Option<Date> {
    Date::parse_iso(s.get(..8)?)
}

/// X12 decimal dollars as cents (rounded toward zero past the cent).
pub fn cents(s: &str) -> i64 {
    billd_x12::fields::Amount::parse(s.trim())
        .map(|a| a.units() / 100)
        .unwrap_or(0)
}

/// What a 271 says.
pub enum EligibilityAnswer {
    /// An eligibility verdict.
    Found(Eligibility),
    /// AAA rejection: (reject reason, follow-up).
    Rejected(String, String),
}

/// Reads a 271's segments.
pub fn eligibility_271(segs: &[Segment]) -> EligibilityAnswer {
    // AAA at the source or receiver level is about the request, at the
    // subscriber or dependent level about the person; either way the first
    // one decides.
    if let Some(aaa) = segs.iter().find(|s| s.id == "AAA" && s.get(1) == "N") {
        return EligibilityAnswer::Rejected(aaa.get(3).to_owned(), aaa.get(4).to_owned());
    }
    let mut e = Eligibility {
        status: CoverageStatus::NotFound,
        plan_name: None,
        group_number: None,
        coverage_begin: None,
        coverage_end: None,
        benefits: Vec::new(),
        payer_reference: None,
    };
    let mut saw_status = false;
    for s in segs {
        match s.id.as_ref() {
            "TRN" if s.get(1) == "2" && e.payer_reference.is_none() => {
                e.payer_reference = Some(s.get(2).to_owned());
            }
            "REF" if s.get(1) == "6P" => e.group_number = Some(s.get(2).to_owned()),
            "DTP" => {
                let (first, last) = match s.get(3).split_once('-') {
                    Some((a, b)) => (a, Some(b)),
                    None => (s.get(3), None),
                };
                match s.get(1) {
                    "346" | "291" if e.coverage_begin.is_none() => {
                        e.coverage_begin = date(first);
                        if let Some(l) = last {
                            e.coverage_end = date(l);
                        }
                    }
                    "347" => e.coverage_end = date(first),
                    _ => {}
                }
            }
            "EB" => eb(s, &mut e, &mut saw_status),
            _ => {}
        }
    }
    EligibilityAnswer::Found(e)
}

fn eb(s: &Segment, e: &mut Eligibility, saw_status: &mut bool) {
    let info = s.get(1);
    let plan = s.get(5);
    match info {
        "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" => {
            if !*saw_status {
                e.status = if info <= "5" {
                    CoverageStatus::Active
                } else {
                    CoverageStatus::Inactive
                };
                *saw_status = true;
            }
            if !plan.is_empty() && e.plan_name.is_none() {
                e.plan_name = Some(plan.to_owned());
            }
            return;
        }
        _ => {}
    }
    let remaining = s.get(6) == "29";
    let kind = match info {
        "C" if remaining => BenefitKind::DeductibleRemaining,
        "C" => BenefitKind::Deductible,
        "G" if remaining => BenefitKind::OutOfPocketRemaining,
        "G" => BenefitKind::OutOfPocketMaximum,
        "B" => BenefitKind::Copay,
        "A" => BenefitKind::Coinsurance,
        "CB" => BenefitKind::AuthorizationRequired,
        "F" => BenefitKind::Limitation,
        _ => return,
    };
    let amount = (!s.get(7).is_empty()).then(|| cents(s.get(7)));
    let percent = (!s.get(8).is_empty()).then(|| {
        // EB08 is a fraction: .2 is 20 % = 2000 basis points.
        (billd_x12::fields::Amount::parse(s.get(8)).map_or(0, |a| a.units())).max(0) as u32
    });
    e.benefits.push(Benefit {
        service_type: s
            .element(3)
            .map(|el| el.value().to_owned())
            .unwrap_or_default(),
        kind,
        network: match s.get(12) {
            "Y" => Network::InNetwork,
            "N" => Network::OutOfNetwork,
            _ => Network::NotApplicable,
        },
        level: if s.get(2) == "FAM" {
            CoverageLevel::Family
        } else {
            CoverageLevel::Individual
        },
        amount,
        percent_basis_points: percent,
        message: (!plan.is_empty()).then(|| plan.to_owned()),
    });
}

/// billd's claim state for an STC category code.
pub fn claim_state(category: &str) -> ClaimState {
    match category {
        "A0" | "A1" | "A2" | "A5" => ClaimState::Acknowledged,
        "A3" | "A6" | "A7" | "A8" => ClaimState::Rejected,
        "A4" | "D0" => ClaimState::NotFound,
        "F0" | "F1" | "F3" | "F3F" => ClaimState::Paid,
        "F2" | "F3N" | "F4" => ClaimState::Denied,
        _ => ClaimState::Pending,
    }
}

/// Reads a 277's status loops: (TRN02, response) in order.
pub fn status_277(segs: &[Segment]) -> Vec<(String, StatusResponse)> {
    let mut out: Vec<(String, StatusResponse)> = Vec::new();
    for s in segs {
        match s.id.as_ref() {
            "TRN" if s.get(1) == "2" => out.push((
                s.get(2).to_owned(),
                StatusResponse {
                    claim_id: String::new(),
                    state: ClaimState::Pending,
                    category_code: String::new(),
                    status_code: String::new(),
                    payer_claim_id: None,
                    paid: None,
                    effective_date: None,
                    message: None,
                },
            )),
            "STC" => {
                if let Some((_, r)) = out.last_mut().filter(|(_, r)| r.category_code.is_empty()) {
                    let status = s.element(1);
                    let comp = |i: usize| {
                        status
                            .map(|e| e.component(i).to_owned())
                            .unwrap_or_default()
                    };
                    r.category_code = comp(1);
                    r.status_code = comp(2);
                    r.state = claim_state(&r.category_code);
                    r.effective_date = date(s.get(2));
                    r.paid = (!s.get(5).is_empty()).then(|| cents(s.get(5)));
                    r.message = (!s.get(12).is_empty()).then(|| s.get(12).to_owned());
                }
            }
            "REF" => {
                if let Some((_, r)) = out.last_mut() {
                    match s.get(1) {
                        "1K" => r.payer_claim_id = Some(s.get(2).to_owned()),
                        "EJ" => r.claim_id = s.get(2).to_owned(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Reads a 999: one functional acknowledgment per AK2 transaction set.
pub fn ack_999(segs: &[Segment], received: Timestamp) -> Vec<Acknowledgment> {
    let batch = segs
        .iter()
        .find(|s| s.id == "AK1")
        .map(|s| s.get(2).to_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut errors: Vec<AcknowledgmentError> = Vec::new();
    let mut segment_at: Option<String> = None;
    for s in segs {
        match s.id.as_ref() {
            "AK2" => errors.clear(),
            "IK3" => {
                segment_at = Some(format!("{} (segment {})", s.get(1), s.get(2)));
                if !s.get(4).is_empty() {
                    errors.push(AcknowledgmentError {
                        code: s.get(4).to_owned(),
                        location: segment_at.clone(),
                        message: format!("segment error {}", s.get(4)),
                    });
                }
            }
            "IK4" => errors.push(AcknowledgmentError {
                code: s.get(3).to_owned(),
                location: Some(format!(
                    "{} element {}",
                    segment_at.clone().unwrap_or_default(),
                    s.element(1)
                        .map(|e| e.value().to_owned())
                        .unwrap_or_default()
                )),
                message: format!("element error {}", s.get(3)),
            }),
            "IK5" => {
                for i in 2..=6 {
                    if !s.get(i).is_empty() {
                        errors.push(AcknowledgmentError {
                            code: s.get(i).to_owned(),
                            location: None,
                            message: format!("transaction set error {}", s.get(i)),
                        });
                    }
                }
                let outcome = match s.get(1) {
                    "A" => AcknowledgmentOutcome::Accepted,
                    "E" => AcknowledgmentOutcome::AcceptedWithErrors,
                    _ => AcknowledgmentOutcome::Rejected,
                };
                out.push(Acknowledgment {
                    kind: AcknowledgmentKind::Functional,
                    batch_id: batch.clone(),
                    claim_id: None,
                    payer_claim_id: None,
                    outcome,
                    errors: std::mem::take(&mut errors),
                    received,
                });
            }
            _ => {}
        }
    }
    if out.is_empty()
        && let Some(ak9) = segs.iter().find(|s| s.id == "AK9")
    {
        out.push(Acknowledgment {
            kind: AcknowledgmentKind::Functional,
            batch_id: batch,
            claim_id: None,
            payer_claim_id: None,
            outcome: match ak9.get(1) {
                "A" => AcknowledgmentOutcome::Accepted,
                "E" | "P" => AcknowledgmentOutcome::AcceptedWithErrors,
                _ => AcknowledgmentOutcome::Rejected,
            },
            errors: (5..=9)
                .filter(|i| !ak9.get(*i).is_empty())
                .map(|i| AcknowledgmentError {
                    code: ak9.get(i).to_owned(),
                    location: None,
                    message: format!("functional group error {}", ak9.get(i)),
                })
                .collect(),
            received,
        });
    }
    out
}

/// Reads a 277CA: one claim acknowledgment per patient-level TRN.
pub fn ack_277ca(segs: &[Segment], received: Timestamp) -> Vec<Acknowledgment> {
    let batch = segs
        .iter()
        .find(|s| s.id == "BHT")
        .map(|s| s.get(3).to_owned())
        .unwrap_or_default();
    let mut out: Vec<Acknowledgment> = Vec::new();
    let mut level = String::new();
    for s in segs {
        match s.id.as_ref() {
            "HL" => level = s.get(3).to_owned(),
            "TRN" if level == "PT" => out.push(Acknowledgment {
                kind: AcknowledgmentKind::Claim,
                batch_id: batch.clone(),
                claim_id: Some(s.get(2).to_owned()),
                payer_claim_id: None,
                outcome: AcknowledgmentOutcome::Accepted,
                errors: Vec::new(),
                received,
            }),
            "STC" if level == "PT" => {
                if let Some(a) = out.last_mut() {
                    let st = s.element(1);
                    let cat = st.map(|e| e.component(1).to_owned()).unwrap_or_default();
                    let code = st.map(|e| e.component(2).to_owned()).unwrap_or_default();
                    if claim_state(&cat) == ClaimState::Rejected {
                        a.outcome = AcknowledgmentOutcome::Rejected;
                        a.errors.push(AcknowledgmentError {
                            code: format!("{cat}:{code}"),
                            location: None,
                            message: if s.get(12).is_empty() {
                                format!("claim rejected ({cat}:{code})")
                            } else {
                                s.get(12).to_owned()
                            },
                        });
                    }
                }
            }
            "REF" if level == "PT" && s.get(1) == "1K" => {
                if let Some(a) = out.last_mut() {
                    a.payer_claim_id = Some(s.get(2).to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

fn cas(s: &Segment) -> Vec<Adjustment> {
    let g = AdjustmentGroup::from_x12_code(s.get(1));
    (0..6)
        .filter_map(|k| {
            let reason = s.get(2 + k * 3);
            (!reason.is_empty()).then(|| Adjustment {
                group: g,
                reason_code: reason.to_owned(),
                amount: cents(s.get(3 + k * 3)),
                quantity: s.get(4 + k * 3).parse().ok(),
            })
        })
        .collect()
}

/// Reads an 835's segments into a remittance.
pub fn remittance_835(segs: &[Segment]) -> Remittance {
    let mut r = Remittance {
        trace_number: String::new(),
        payer_id: String::new(),
        payment_date: Date::new(1970, 1, 1),
        payment_amount: 0,
        claims: Vec::new(),
        provider_adjustments: Vec::new(),
    };
    let mut in_line = false;
    for s in segs {
        match s.id.as_ref() {
            "BPR" => {
                let sign = if s.get(3) == "D" { -1 } else { 1 };
                r.payment_amount = sign * cents(s.get(2));
                if let Some(d) = date(s.get(16)) {
                    r.payment_date = d;
                }
            }
            "TRN" => r.trace_number = s.get(2).to_owned(),
            "N1" if s.get(1) == "PR" => r.payer_id = s.get(4).to_owned(),
            "REF" if s.get(1) == "2U" && r.payer_id.is_empty() => {
                r.payer_id = s.get(2).to_owned();
            }
            "CLP" => {
                in_line = false;
                r.claims.push(ClaimPayment {
                    claim_id: s.get(1).to_owned(),
                    payer_claim_id: s.get(7).to_owned(),
                    status_code: s.get(2).to_owned(),
                    billed: cents(s.get(3)),
                    paid: cents(s.get(4)),
                    patient_responsibility: cents(s.get(5)),
                    adjustments: Vec::new(),
                    lines: Vec::new(),
                });
            }
            "CAS" => {
                if let Some(c) = r.claims.last_mut() {
                    match c.lines.last_mut().filter(|_| in_line) {
                        Some(l) => l.adjustments.extend(cas(s)),
                        None => c.adjustments.extend(cas(s)),
                    }
                }
            }
            "SVC" => {
                if let Some(c) = r.claims.last_mut() {
                    in_line = true;
                    let p = s.element(1);
                    let comp = |i: usize| p.map(|e| e.component(i).to_owned()).unwrap_or_default();
                    c.lines.push(LinePayment {
                        procedure: Procedure {
                            code_set: if comp(1) == "HC" && comp(2).starts_with(char::is_alphabetic)
                            {
                                ProcedureCodeSet::Hcpcs
                            } else {
                                ProcedureCodeSet::Cpt
                            },
                            code: comp(2),
                            modifiers: (3..=6).map(comp).filter(|m| !m.is_empty()).collect(),
                        },
                        service_date: None,
                        billed: cents(s.get(2)),
                        paid: cents(s.get(3)),
                        units: s.get(5).parse().unwrap_or(1),
                        adjustments: Vec::new(),
                        remark_codes: Vec::new(),
                    });
                }
            }
            "DTM" if in_line && s.get(1) == "472" => {
                if let Some(l) = r.claims.last_mut().and_then(|c| c.lines.last_mut()) {
                    l.service_date = date(s.get(2));
                }
            }
            "LQ" if in_line => {
                if let Some(l) = r.claims.last_mut().and_then(|c| c.lines.last_mut()) {
                    l.remark_codes.push(s.get(2).to_owned());
                }
            }
            "PLB" => {
                for k in 0..6 {
                    let Some(el) = s.element(3 + k * 2) else {
                        break;
                    };
                    r.provider_adjustments.push(ProviderAdjustment {
                        reason_code: el.component(1).to_owned(),
                        reference: (!el.component(2).is_empty())
                            .then(|| el.component(2).to_owned()),
                        amount: cents(s.get(4 + k * 2)),
                    });
                }
            }
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x12(functional: &str, set: &str, guide: &str, body: &str) -> Vec<u8> {
        let segs: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mut out = format!(
            "ISA*00*          *00*          *ZZ*SANDBOXPAYER   *ZZ*BILLDCLINIC    *240110*1200*^*00501*000000042*0*T*:~GS*{functional}*SANDBOXPAYER*BILLDCLINIC*20240110*1200*42*X*{guide}~ST*{set}*0001*{guide}~"
        );
        for s in &segs {
            out.push_str(s);
            out.push('~');
        }
        out.push_str(&format!(
            "SE*{}*0001~GE*1*42~IEA*1*000000042~",
            segs.len() + 2
        ));
        out.into_bytes()
    }

    #[test]
    fn read_after_parses_only_interchanges_past_the_cursor() {
        let one = |n: u32| {
            String::from_utf8(x12(
                "FA",
                "999",
                "005010X231A1",
                "AK1*HC*1*005010X222A1\nAK9*A*1*1*1",
            ))
            .unwrap()
            .replace("000000042", &format!("{n:09}"))
        };
        let payload = format!("{}\n{}\r\n{}", one(7), one(8), one(9));
        let all: Vec<u64> = read_after(payload.as_bytes(), 0)
            .unwrap()
            .iter()
            .map(|r| r.isa13)
            .collect();
        assert_eq!(all, [7, 8, 9]);
        let newer: Vec<u64> = read_after(payload.as_bytes(), 8)
            .unwrap()
            .iter()
            .map(|r| r.isa13)
            .collect();
        assert_eq!(newer, [9]);
        // An old interchange that is broken is not even read.
        let broken = format!("{}{}", one(3).replace("AK9*A*1*1*1~", ""), one(9));
        assert_eq!(read_after(broken.as_bytes(), 5).unwrap().len(), 1);
        assert!(read_after(broken.as_bytes(), 0).is_err());
        // Not laid out as fixed-width interchanges: read whole, its error reported.
        assert!(read_after(b"ISA*not x12~", 0).is_err());
    }

    fn segments(bytes: &[u8]) -> (u64, Vec<Segment>) {
        let mut r = read(bytes).unwrap();
        let first = r.remove(0);
        (first.isa13, first.sets.into_iter().next().unwrap().1)
    }

    const T271_HEAD: &str = "BHT*0022*11*REF1*20240110*1200
        HL*1**20*1
        NM1*PR*2*SANDBOX HEALTH PLAN*****PI*SANDBOXPAYER
        HL*2*1*21*1
        NM1*1P*2*BILLD CLINIC*****XX*1234567893
        HL*3*2*22*0
        TRN*2*TRACE1*9BILLDCORE";

    #[test]
    fn a_271_reads_into_status_plan_and_benefits() {
        let body = format!(
            "{T271_HEAD}
            NM1*IL*1*DOE*JANE****MI*M1001
            REF*6P*GRP100
            DMG*D8*19800402
            DTP*346*D8*20240101
            EB*1*IND*30**GOLD PPO
            EB*C*IND*30***29*500*****Y
            EB*A*IND*98***27**.2****Y"
        );
        let (isa13, segs) = segments(&x12("HB", "271", "005010X279A1", &body));
        assert_eq!(isa13, 42);
        let EligibilityAnswer::Found(e) = eligibility_271(&segs) else {
            panic!("rejected");
        };
        assert_eq!(e.status, CoverageStatus::Active);
        assert_eq!(e.plan_name.as_deref(), Some("GOLD PPO"));
        assert_eq!(e.group_number.as_deref(), Some("GRP100"));
        assert_eq!(e.coverage_begin, Some(Date::new(2024, 1, 1)));
        assert_eq!(e.payer_reference.as_deref(), Some("TRACE1"));
        assert_eq!(e.benefits[0].kind, BenefitKind::DeductibleRemaining);
        assert_eq!(e.benefits[0].amount, Some(50_000));
        assert_eq!(e.benefits[0].network, Network::InNetwork);
        assert_eq!(e.benefits[1].percent_basis_points, Some(2000));
    }

    #[test]
    fn a_271_with_aaa_is_a_rejection_with_its_code() {
        let body = format!("{T271_HEAD}\nNM1*IL*1*DOE*JANE****MI*X\nAAA*N**75*C");
        let (_, segs) = segments(&x12("HB", "271", "005010X279A1", &body));
        assert!(matches!(eligibility_271(&segs), EligibilityAnswer::Rejected(c, _) if c == "75"));
    }

    #[test]
    fn a_277_reads_categories_into_claim_states() {
        let body = "BHT*0010*08*REF2*20240110*1200*DG
            HL*1**20*1
            NM1*PR*2*SANDBOX HEALTH PLAN*****PI*SANDBOXPAYER
            HL*2*1*21*1
            NM1*41*2*BILLD CLINIC*****46*BILLDCLINIC
            HL*3*2*19*1
            NM1*1P*2*BILLD CLINIC*****XX*1234567893
            HL*4*3*22*0
            NM1*IL*1*DOE*JANE****MI*M1001
            TRN*2*T-1
            STC*F1:65*20240201**125*80
            REF*1K*ICN1
            REF*EJ*PCN1
            DTP*472*RD8*20240105-20240105";
        let (_, segs) = segments(&x12("HN", "277", "005010X212", body));
        let r = status_277(&segs);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, "T-1");
        let s = &r[0].1;
        assert_eq!(
            (s.category_code.as_str(), s.status_code.as_str()),
            ("F1", "65")
        );
        assert_eq!(s.state, ClaimState::Paid);
        assert_eq!(s.paid, Some(8000));
        assert_eq!(s.claim_id, "PCN1");
        assert_eq!(s.payer_claim_id.as_deref(), Some("ICN1"));
        assert_eq!(claim_state("A7"), ClaimState::Rejected);
        assert_eq!(claim_state("A4"), ClaimState::NotFound);
        assert_eq!(claim_state("F2"), ClaimState::Denied);
        assert_eq!(claim_state("P1"), ClaimState::Pending);
    }

    #[test]
    fn a_rejecting_999_carries_its_codes() {
        let body = "AK1*HC*7*005010X222A1
            AK2*837*0001*005010X222A1
            IK3*CLM*18**8
            IK4*5:1*1331*7*11
            IK5*R*5
            AK9*R*1*1*0";
        let (_, segs) = segments(&x12("FA", "999", "005010X231A1", body));
        let at = Timestamp {
            seconds: 1,
            nanoseconds: 0,
        };
        let acks = ack_999(&segs, at);
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].batch_id, "7");
        assert_eq!(acks[0].outcome, AcknowledgmentOutcome::Rejected);
        let codes: Vec<&str> = acks[0].errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["8", "7", "5"]);
    }

    #[test]
    fn an_835_reads_claims_adjustments_and_provider_adjustments() {
        let body = "BPR*I*70*C*CHK************20240201
            TRN*1*EFT1*1999999999
            DTM*405*20240201
            N1*PR*SANDBOX HEALTH PLAN
            N3*1 SANDBOX WAY
            N4*SPRINGFIELD*IL*62701
            REF*2U*SANDBOXPAYER
            PER*BL*SANDBOX EDI*TE*8005550100
            N1*PE*BILLD CLINIC*XX*1234567893
            LX*1
            CLP*PCN1*1*125*80*25*12*ICN1*11*1
            CAS*PR*1*25
            CAS*CO*45*20
            NM1*QC*1*DOE*JANE****MI*M1001
            PLB*1234567893*20241231*WO:REF1*10";
        let (_, segs) = segments(&x12("HP", "835", "005010X221A1", body));
        let r = remittance_835(&segs);
        assert_eq!(r.trace_number, "EFT1");
        assert_eq!(r.payer_id, "SANDBOXPAYER");
        assert_eq!(r.payment_amount, 7000);
        assert_eq!(r.payment_date, Date::new(2024, 2, 1));
        assert_eq!(r.claims[0].paid, 8000);
        assert_eq!(r.claims[0].adjustments.len(), 2);
        assert_eq!(
            r.claims[0].adjustments[1].group,
            AdjustmentGroup::Contractual
        );
        assert_eq!(r.provider_adjustments[0].reason_code, "WO");
        assert_eq!(r.provider_adjustments[0].reference.as_deref(), Some("REF1"));
        assert_eq!(r.provider_adjustments[0].amount, 1000);
    }

    #[test]
    fn malformed_x12_is_an_error_not_a_panic() {
        assert!(read(b"ISA*THIS IS NOT X12~").is_err());
        assert!(read(b"").is_err());
    }
}
