//! 835 balancing: the money in a remittance must add up before billd posts
//! it. BPR02 equals the sum of CLP04 less the PLB adjustments; for each
//! claim, CLP03 − CLP04 equals its CAS adjustments at claim and line level;
//! for each line, SVC02 − SVC03 equals its CAS adjustments. Every imbalance
//! says where it is and by how much.

use serde::{Deserialize, Serialize};

use crate::fields::format_units;
use crate::loops::Pos;
use crate::t835::Remittance;

/// Which balancing rule is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// BPR02 = Σ CLP04 − Σ PLB amounts.
    Payment,
    /// CLP03 − CLP04 = Σ CAS (claim and line level).
    Claim,
    /// SVC02 − SVC03 = Σ line CAS.
    Service,
}

impl Rule {
    /// A short statement of the rule.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Rule::Payment => "BPR02 must equal the sum of CLP04 less PLB adjustments",
            Rule::Claim => {
                "CLP03 - CLP04 must equal the claim's CAS adjustments (claim and line level)"
            }
            Rule::Service => "SVC02 - SVC03 must equal the line's CAS adjustments",
        }
    }
}

/// One imbalance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imbalance {
    /// The rule broken.
    pub rule: Rule,
    /// What the rule requires, in ten-thousandths.
    pub expected: i64,
    /// What the file has, in ten-thousandths.
    pub found: i64,
    /// 0-based claim index in the transaction (claim and service rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<usize>,
    /// 0-based service line index in the claim (service rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<usize>,
    /// Where the CLP or SVC was read (BPR for the payment rule: None).
    #[serde(skip)]
    pub pos: Pos,
}

impl Imbalance {
    /// Expected amount as a decimal string.
    #[must_use]
    pub fn expected_text(&self) -> String {
        format_units(self.expected)
    }

    /// Found amount as a decimal string.
    #[must_use]
    pub fn found_text(&self) -> String {
        format_units(self.found)
    }
}

/// Checks every balancing rule; an empty result means the 835 balances.
#[must_use]
pub fn balance(r: &Remittance) -> Vec<Imbalance> {
    let mut out = Vec::new();
    let mut paid = 0i64;
    for (ci, c) in r.claims().enumerate() {
        paid += c.clp.payment.units();
        let mut cas: i64 = c.adjustments.iter().map(|a| a.total_units()).sum();
        for (si, s) in c.services.iter().enumerate() {
            let line_cas: i64 = s.adjustments.iter().map(|a| a.total_units()).sum();
            cas += line_cas;
            let line_diff = s.svc.charge.units() - s.svc.payment.as_ref().map_or(0, |a| a.units());
            if line_diff != line_cas {
                out.push(Imbalance {
                    rule: Rule::Service,
                    expected: line_diff,
                    found: line_cas,
                    claim: Some(ci),
                    service: Some(si),
                    pos: s.pos,
                });
            }
        }
        let diff = c.clp.total_charge.units() - c.clp.payment.units();
        if diff != cas {
            out.push(Imbalance {
                rule: Rule::Claim,
                expected: diff,
                found: cas,
                claim: Some(ci),
                service: None,
                pos: c.pos,
            });
        }
    }
    let plb: i64 = r.provider_adjustments.iter().map(|p| p.total_units()).sum();
    let sign = if r.financial.credit_debit == "D" {
        -1
    } else {
        1
    };
    let bpr = r.financial.total_payment.units() * sign;
    if bpr != paid - plb {
        out.push(Imbalance {
            rule: Rule::Payment,
            expected: paid - plb,
            found: bpr,
            claim: None,
            service: None,
            pos: Pos::default(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Body, parse};
    use crate::reader::Mode;

    fn remit(body: &str) -> Remittance {
        let n = body.matches('~').count() + 2;
        let x = format!(
            "ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20240101*1200*1*X*005010X221A1~ST*835*0001~{body}SE*{n}*0001~GE*1*1~IEA*1*000000001~"
        );
        let p = parse(x.as_bytes(), Mode::Strict).unwrap();
        match &p.document.interchanges[0].groups[0].transactions[0].body {
            Body::Remittance(r) => r.clone(),
            other => panic!("not an 835: {other:?}"),
        }
    }

    const HEAD: &str = "TRN*1*T1*1~N1*PR*PAYER~N1*PE*CLINIC*XX*1234567893~LX*1~";

    #[test]
    fn a_balanced_835_has_no_imbalance() {
        let r = remit(&format!(
            "BPR*I*70*C*CHK************20240101~{HEAD}CLP*A*1*100*80*10*12~SVC*HC:99213*100*80~CAS*PR*1*10~CAS*CO*45*10~PLB*1*20241231*WO*10~"
        ));
        assert_eq!(balance(&r), vec![]);
    }

    #[test]
    fn each_imbalance_is_reported_with_amounts_and_place() {
        let r = remit(&format!(
            "BPR*I*75*C*CHK************20240101~{HEAD}CLP*A*1*100*80*10*12~CAS*PR*1*10~SVC*HC:99213*100*80~CAS*CO*45*5~"
        ));
        let got = balance(&r);
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].rule, got[0].expected_text(), got[0].found_text()),
            (Rule::Service, "20.00".into(), "5.00".into())
        );
        assert_eq!(got[0].pos.in_transaction, Some(9));
        assert_eq!((got[1].rule, got[1].claim), (Rule::Claim, Some(0)));
        assert_eq!(got[1].pos.in_transaction, Some(7));
        assert_eq!(
            (got[2].rule, got[2].expected, got[2].found),
            (Rule::Payment, 800_000, 750_000)
        );
    }

    #[test]
    fn reversals_balance_with_negative_amounts() {
        let r = remit(&format!(
            "BPR*I*0*C*NON************20240101~{HEAD}CLP*A*22*-100*-80**12~CAS*CO*45*-20~CLP*A*1*100*80**12~CAS*CO*45*20~"
        ));
        assert_eq!(balance(&r), vec![]);
    }
}
