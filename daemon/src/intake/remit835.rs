//! 835 transaction sets read into the remittance billd posts
//! ([`Era`]): amounts to integer cents (an amount finer than a cent is a
//! problem, never rounded), the payer's identifier, CAS adjustments at
//! claim and line level, remark codes (MOA, LQ*HE), PLB pairs.

use billd_x12::Segment;
use billd_x12::fields::AMOUNT_SCALE;
use billd_x12::segments::Cas;
use billd_x12::t835::Remittance;

use crate::domain::remittance::{Era, EraAdjustment, EraClaim, EraLine, EraProviderAdjustment};

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
    // The claims' adjudication date: the payment's (BPR16), else the
    // production date (DTM*405).
    let paid_on = r.financial.date.as_deref().and_then(ccyymmdd).or_else(|| {
        r.header_other
            .iter()
            .find(|s| s.is("DTM", &["405"]))
            .and_then(|s| ccyymmdd(s.get(2)))
    });
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
                            quantity: pair.quantity.as_deref().and_then(whole_units),
                        });
                    }
                }
            };
        push_cas(&c.adjustments, None, &mut cents);
        let mut remarks = Vec::new();
        for s in &c.other {
            remarks.extend(remark_codes(s));
        }
        let mut lines = Vec::with_capacity(c.services.len());
        for (si, s) in c.services.iter().enumerate() {
            push_cas(&s.adjustments, Some(si as u32), &mut cents);
            for o in &s.other {
                remarks.extend(remark_codes(o));
            }
            lines.push(EraLine {
                procedure: s.svc.procedure.get(2).to_string(),
                modifiers: s.svc.modifiers().into_iter().map(str::to_string).collect(),
                billed_cents: cents(s.svc.charge.units(), &at("SVC02")),
                paid_cents: cents(
                    s.svc.payment.as_ref().map_or(0, |p| p.units()),
                    &at("SVC03"),
                ),
                units: s
                    .svc
                    .units_paid
                    .as_deref()
                    .and_then(whole_units)
                    .unwrap_or(1),
                service_date: s
                    .dates
                    .iter()
                    .find(|d| d.qualifier == "472" || d.qualifier == "150")
                    .and_then(|d| d.date.as_deref())
                    .and_then(ccyymmdd),
            });
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
            lines,
            paid_on,
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

/// A CCYYMMDD date; `None` when it is not one.
fn ccyymmdd(s: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y%m%d").ok()
}

/// A count of units (SVC05, CAS04) in whole units, rounded; `None` when it
/// is not a non-negative number.
fn whole_units(s: &str) -> Option<u32> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0 && v <= f64::from(u32::MAX)).then(|| v.round() as u32)
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
        // The line as paid, for the next payer; BPR16 is no date here, so
        // the production date stands in for the adjudication date.
        assert_eq!(
            c.lines,
            [EraLine {
                procedure: "99211".into(),
                modifiers: vec![],
                billed_cents: 80_000,
                paid_cents: 50_000,
                units: 1,
                service_date: chrono::NaiveDate::from_ymd_opt(2002, 3, 1),
            }]
        );
        assert_eq!(c.paid_on, chrono::NaiveDate::from_ymd_opt(2002, 3, 14));
        assert_eq!(whole_units("2.0"), Some(2));
        assert_eq!(whole_units("-1"), None);
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
