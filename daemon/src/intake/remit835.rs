//! 835 transaction sets read into the remittance billd posts
//! ([`Era`]): amounts to integer cents (an amount finer than a cent is a
//! problem, never rounded), the payer's identifier, CAS adjustments at
//! claim and line level, remark codes (MOA, LQ*HE), PLB pairs.

use billd_x12::Segment;
use billd_x12::fields::AMOUNT_SCALE;
use billd_x12::segments::Cas;
use billd_x12::t835::Remittance;

use crate::domain::remittance::{Era, EraAdjustment, EraClaim, EraProviderAdjustment};

/// Reads `r` into an [`Era`]; every amount that is not whole cents is a
/// problem naming its segment (by its place in the transaction set).
pub fn era(r: &Remittance) -> Result<Era, Vec<String>> {
    let mut problems = Vec::new();
    let mut cents = |units: i64, what: &str| -> i64 {
        let per_cent = AMOUNT_SCALE / 100;
        if units % per_cent != 0 {
            problems.push(format!("{what}: amount is finer than a cent"));
        }
        units / per_cent
    };
    let sign = if r.financial.credit_debit == "D" {
        -1
    } else {
        1
    };
    let payment_cents = sign * cents(r.financial.total_payment.units(), "BPR02");
    let mut claims = Vec::new();
    for (ci, c) in r.claims().enumerate() {
        let at = |seg: &str| format!("claim {} {seg}", ci + 1);
        let mut adjustments = Vec::new();
        let mut push_cas =
            |cas: &[Cas], line: Option<u32>, cents: &mut dyn FnMut(i64, &str) -> i64| {
                for a in cas {
                    for pair in &a.adjustments {
                        adjustments.push(EraAdjustment {
                            group: a.group.clone(),
                            reason: pair.reason.clone(),
                            amount_cents: cents(pair.amount.units(), &at("CAS")),
                            line,
                        });
                    }
                }
            };
        push_cas(&c.adjustments, None, &mut cents);
        let mut remarks = Vec::new();
        for s in &c.other {
            remarks.extend(remark_codes(s));
        }
        for (si, s) in c.services.iter().enumerate() {
            push_cas(&s.adjustments, Some(si as u32), &mut cents);
            for o in &s.other {
                remarks.extend(remark_codes(o));
            }
        }
        remarks.dedup();
        let unpaid_lines = c
            .services
            .iter()
            .filter(|s| {
                s.svc.charge.units() > 0 && s.svc.payment.as_ref().is_none_or(|p| p.units() == 0)
            })
            .count() as u32;
        claims.push(EraClaim {
            control_number: c.clp.claim_id.clone(),
            status_code: c.clp.status.clone(),
            billed_cents: cents(c.clp.total_charge.units(), &at("CLP03")),
            paid_cents: cents(c.clp.payment.units(), &at("CLP04")),
            patient_responsibility_cents: cents(
                c.clp
                    .patient_responsibility
                    .as_ref()
                    .map_or(0, |a| a.units()),
                &at("CLP05"),
            ),
            payer_claim_number: c.clp.payer_claim_control_number.clone(),
            adjustments,
            remarks,
            unpaid_lines,
        });
    }
    let mut provider_adjustments = Vec::new();
    for p in &r.provider_adjustments {
        for a in &p.adjustments {
            let reference = a.reason.get(2);
            provider_adjustments.push(EraProviderAdjustment {
                provider_id: p.provider_id.clone(),
                reason: a.reason.get(1).to_string(),
                reference: (!reference.is_empty()).then(|| reference.to_string()),
                amount_cents: cents(a.amount.units(), "PLB"),
            });
        }
    }
    let payer = payer_id(r);
    let payee_npi = (r.payee.n1.id_qualifier.as_deref() == Some("XX"))
        .then(|| r.payee.n1.id.clone())
        .flatten();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Era {
        payer,
        trace: r.trace.trace_number.clone(),
        payment_cents,
        payee_npi,
        claims,
        provider_adjustments,
    })
}

/// The payer's identifier: REF*2U in the payer loop, else N1*PR N104, else
/// TRN03 (the payer's company id), else its name.
pub fn payer_id(r: &Remittance) -> String {
    let ref2u = r
        .payer
        .other
        .iter()
        .find(|s| s.is("REF", &["2U"]))
        .map(|s| s.get(2).to_string())
        .filter(|v| !v.is_empty());
    ref2u
        .or_else(|| r.payer.n1.id.clone().filter(|v| !v.is_empty()))
        .or_else(|| r.trace.originator.clone().filter(|v| !v.is_empty()))
        .or_else(|| r.payer.n1.name.clone())
        .unwrap_or_default()
}

/// Remark codes of an MOA (MOA03–MOA07) or LQ*HE segment.
fn remark_codes(s: &Segment) -> Vec<String> {
    let range = match &*s.id {
        "MOA" => 3..=7,
        "LQ" if s.get(1) == "HE" => 2..=2,
        "MIA" => 5..=5,
        _ => return Vec::new(),
    };
    range
        .map(|i| s.get(i).to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use billd_x12::{Body, Mode};

    fn first_remit(path: &str) -> Remittance {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/x12/835")
                .join(path),
        )
        .unwrap();
        let parsed = billd_x12::parse(&bytes, Mode::Lenient).unwrap();
        match &parsed.document.interchanges[0].groups[0].transactions[0].body {
            Body::Remittance(r) => r.clone(),
            other => panic!("not an 835: {other:?}"),
        }
    }

    #[test]
    fn an_835_becomes_cents_with_adjustments_remarks_and_plb() {
        let era = era(&first_remit("lfh__managed-care.835")).unwrap();
        assert_eq!(era.payment_cents, 94_500);
        assert_eq!(era.trace, "7170066655");
        assert_eq!(era.payer, "1935665544");
        assert_eq!(era.payee_npi.as_deref(), Some("5544667733"));
        assert_eq!(era.claims.len(), 2);
        let c = &era.claims[0];
        assert_eq!(
            (c.billed_cents, c.paid_cents, c.patient_responsibility_cents),
            (80_000, 45_000, 30_000)
        );
        assert_eq!(c.adjustments.len(), 2);
        assert_eq!(c.adjustments[1].line, Some(0));
        assert_eq!(c.patient_share_cents(), 30_000);
        assert!(era.money_problems().is_empty());
        let medicare = super::era(&first_remit("lfh__medicare-part-a.835")).unwrap();
        assert_eq!(medicare.provider_adjustments.len(), 1);
        assert_eq!(medicare.provider_adjustments[0].amount_cents, -127);
        assert_eq!(medicare.provider_adjustments[0].reason, "CV");
        assert!(medicare.money_problems().is_empty());
        let nth = super::era(&first_remit("oop__ExampleFromNth.txt")).unwrap();
        assert!(nth.claims[0].remarks.contains(&"N1".to_string()));
    }
}
