//! The scenario file: who the sandbox payer is, which credentials it takes,
//! its members and their benefits, and the scripted fate of each claim
//! (999, 277CA, status progression, remittances). Every field is documented
//! in sandbox/README.md; a bad file is refused with the field that is wrong.

use std::path::Path;

use serde::Deserialize;

use crate::faults::FaultSpec;

/// The whole scenario.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Who the sandbox is on the wire.
    #[serde(default)]
    pub payer: PayerInfo,
    /// Accepted user name / password pairs (none: every pair is refused).
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// How claim status progressions advance.
    #[serde(default)]
    pub status_advance: Advance,
    /// Faults armed at start.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Members the payer knows.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Claims with scripted outcomes (by CLM01).
    #[serde(default)]
    pub claims: Vec<ClaimScript>,
}

/// The sandbox's identity.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayerInfo {
    /// Payer id: ISA06/GS02 of what the sandbox writes, NM109 of the payer.
    pub id: String,
    /// Payer name (NM103 of the payer).
    pub name: String,
    /// The CORE ReceiverID the sandbox expects and answers as SenderID.
    pub core_id: String,
    /// At most this many files (interchanges) per CORE retrieval answer;
    /// the rest wait for the next retrieval.
    pub mailbox_page: usize,
}

impl Default for PayerInfo {
    fn default() -> Self {
        PayerInfo {
            id: "SANDBOXPAYER".into(),
            name: "SANDBOX HEALTH PLAN".into(),
            core_id: "SANDBOXPAYER".into(),
            mailbox_page: 20,
        }
    }
}

/// One accepted credential pair.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// UserName / wsse:Username.
    pub username: String,
    /// Password / wsse:Password.
    pub password: String,
}

/// When a claim's status progression moves to its next step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Advance {
    /// One step per 276 inquiry about the claim.
    #[default]
    PerInquiry,
    /// One step per calendar day since the claim was received.
    PerDay,
}

/// Coverage of a member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberStatus {
    /// Coverage in force (EB01 1).
    #[default]
    Active,
    /// Coverage ended (EB01 6).
    Inactive,
    /// Listed but answered as unknown (AAA 75).
    NotFound,
}

/// A member.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The member id (NM109 of the subscriber).
    pub member_id: String,
    /// Last name; when set, an inquiry with another last name gets AAA 73.
    #[serde(default)]
    pub last_name: Option<String>,
    /// First name (echoed in the 271).
    #[serde(default)]
    pub first_name: Option<String>,
    /// Birth date `YYYY-MM-DD`; an inquiry with another one gets AAA 71.
    #[serde(default)]
    pub birth_date: Option<String>,
    /// Coverage status.
    #[serde(default)]
    pub status: MemberStatus,
    /// Plan description (EB05).
    #[serde(default)]
    pub plan: Option<String>,
    /// Group number (REF*6P).
    #[serde(default)]
    pub group: Option<String>,
    /// Coverage begin `YYYY-MM-DD` (DTP*346).
    #[serde(default)]
    pub coverage_begin: Option<String>,
    /// Coverage end `YYYY-MM-DD` (DTP*347).
    #[serde(default)]
    pub coverage_end: Option<String>,
    /// Benefit amounts.
    #[serde(default)]
    pub benefits: Benefits,
}

/// Benefit amounts of a member (all optional; cents and whole percent).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benefits {
    /// Calendar-year deductible (EB*C ... 23).
    pub deductible_cents: Option<i64>,
    /// Deductible remaining (EB*C ... 29).
    pub deductible_remaining_cents: Option<i64>,
    /// Office visit copay (EB*B).
    pub copay_cents: Option<i64>,
    /// Coinsurance share in whole percent (EB*A, EB08 as a fraction).
    pub coinsurance_percent: Option<u32>,
    /// Out-of-pocket maximum (EB*G ... 23).
    pub out_of_pocket_max_cents: Option<i64>,
}

/// The 999 a claim's transaction set gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ack999 {
    /// IK5*A.
    #[default]
    Accepted,
    /// IK5*R with the script's code; AK9*R.
    Rejected,
}

/// The 277CA a claim gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ack277 {
    /// STC*A1:20 (accepted for processing), then A2:20.
    #[default]
    Accepted,
    /// STC with the script's category, status code and text.
    Rejected,
}

/// The scripted fate of one claim.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimScript {
    /// CLM01, the patient control number.
    pub claim_id: String,
    /// The payer's claim control number (default `ICN` + CLM01).
    #[serde(default)]
    pub payer_claim_id: Option<String>,
    /// 999 outcome.
    #[serde(default)]
    pub ack_999: Ack999,
    /// IK5 code when rejected (default `5`).
    #[serde(default)]
    pub ack_999_code: Option<String>,
    /// 277CA outcome.
    #[serde(default)]
    pub ack_277ca: Ack277,
    /// STC01-1 of a rejecting 277CA (default `A7`).
    #[serde(default)]
    pub ack_277ca_category: Option<String>,
    /// STC01-2 of a rejecting 277CA (default `21`).
    #[serde(default)]
    pub ack_277ca_status: Option<String>,
    /// STC12 free text of a rejecting 277CA.
    #[serde(default)]
    pub ack_277ca_text: Option<String>,
    /// 276 answers in order, `CATEGORY:STATUS` (the last one sticks).
    #[serde(default)]
    pub status: Vec<String>,
    /// Remittances (835s) handed out once the claim is finalized.
    #[serde(default)]
    pub remittances: Vec<RemitScript>,
}

/// What kind of 835 claim payment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemitKind {
    /// CLP02 1, paid as primary.
    #[default]
    Payment,
    /// CLP02 4, denied (paid 0).
    Denial,
    /// CLP02 22 reversing the previous payment, then CLP02 1 with the new
    /// amounts.
    Reversal,
}

/// One 835 for a claim.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemitScript {
    /// Payment, denial or reversal.
    #[serde(default)]
    pub kind: RemitKind,
    /// TRN02 check or EFT trace number.
    pub trace_number: String,
    /// BPR16 / DTM*405 date `YYYY-MM-DD`.
    pub payment_date: String,
    /// CLP04 paid.
    #[serde(default)]
    pub paid_cents: i64,
    /// CLP05 patient responsibility (also written as CAS*PR*1 unless the
    /// adjustments say otherwise).
    #[serde(default)]
    pub patient_responsibility_cents: i64,
    /// Claim adjustments; the unexplained rest of charge − paid is written
    /// as CO 45.
    #[serde(default)]
    pub adjustments: Vec<AdjustmentScript>,
    /// PLB provider adjustments (reason, cents).
    #[serde(default)]
    pub provider_adjustments: Vec<ProviderAdjustmentScript>,
}

/// One CAS adjustment.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentScript {
    /// CAS01: CO, PR, OA, PI, CR.
    pub group: String,
    /// The CARC.
    pub reason: String,
    /// Amount in cents.
    pub cents: i64,
}

/// One PLB adjustment.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderAdjustmentScript {
    /// PLB03-1 reason, e.g. `WO`, `L6`.
    pub reason: String,
    /// PLB03-2 reference.
    #[serde(default)]
    pub reference: Option<String>,
    /// Amount in cents (positive reduces the payment).
    pub cents: i64,
}

impl Scenario {
    /// Reads and checks a scenario file.
    ///
    /// # Errors
    /// When the file cannot be read, is not TOML of this shape, or holds a
    /// bad value (the message names the file and the field).
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        s.check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        let date = |field: String, v: &Option<String>| -> Result<(), String> {
            match v {
                Some(d) if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() => {
                    Err(format!("{field}: {d:?} is not a YYYY-MM-DD date"))
                }
                _ => Ok(()),
            }
        };
        for (i, m) in self.members.iter().enumerate() {
            if m.member_id.trim().is_empty() {
                return Err(format!("members[{i}].member_id is empty"));
            }
            date(format!("members[{i}].birth_date"), &m.birth_date)?;
            date(format!("members[{i}].coverage_begin"), &m.coverage_begin)?;
            date(format!("members[{i}].coverage_end"), &m.coverage_end)?;
        }
        for (i, c) in self.claims.iter().enumerate() {
            if c.claim_id.trim().is_empty() {
                return Err(format!("claims[{i}].claim_id is empty"));
            }
            for (j, s) in c.status.iter().enumerate() {
                match s.split_once(':') {
                    Some((cat, code)) if !cat.is_empty() && !code.is_empty() => {}
                    _ => {
                        return Err(format!(
                            "claims[{i}].status[{j}]: {s:?} is not CATEGORY:STATUS (e.g. \"A1:20\")"
                        ));
                    }
                }
            }
            for (j, r) in c.remittances.iter().enumerate() {
                date(
                    format!("claims[{i}].remittances[{j}].payment_date"),
                    &Some(r.payment_date.clone()),
                )?;
                if r.kind == RemitKind::Reversal && j == 0 {
                    return Err(format!(
                        "claims[{i}].remittances[{j}]: a reversal needs an earlier payment to reverse"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The member with this id.
    #[must_use]
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == id)
    }

    /// The script of this claim.
    #[must_use]
    pub fn claim(&self, id: &str) -> Option<&ClaimScript> {
        self.claims.iter().find(|c| c.claim_id == id)
    }

    /// True when the pair is accepted.
    #[must_use]
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        self.credentials
            .iter()
            .any(|c| c.username == user && c.password == password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_scenario_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/demo.toml");
        let s = Scenario::load(&p).unwrap();
        assert!(!s.members.is_empty());
        assert!(!s.claims.is_empty());
    }

    #[test]
    fn a_bad_status_step_names_its_field() {
        let s: Scenario =
            toml::from_str("[[claims]]\nclaim_id = \"A\"\nstatus = [\"A1:20\", \"F1\"]\n").unwrap();
        let e = s.check().unwrap_err();
        assert!(e.contains("claims[0].status[1]"), "{e}");
    }
}
