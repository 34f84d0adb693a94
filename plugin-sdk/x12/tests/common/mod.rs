//! Helpers shared by the integration tests: typed transactions built the way
//! billd builds them, and the Python peers (pyx12, linuxforhealth-x12) from
//! the workspace `.venv`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use billd_x12::document::{Body, Document};
use billd_x12::fields::{Amount, Composite, Repeats};
use billd_x12::loops::{Entity, Pos};
use billd_x12::segment::Segment;
use billd_x12::segments::{
    Amt, Bht, Cas, CasAdjustment, Clm, Dtp, Eq, Hi, Hl, Lx, Nm1, Ref, Sbr, Sv1, Trn,
};
use billd_x12::t837p::{
    BillingProvider, Claim, OtherSubscriber, Patient, Professional, ServiceLine, Subscriber,
};
use billd_x12::thl::{Benefit, Hierarchy, Level, Name, Tracking};

/// The workspace root (two levels above this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The X12 fixtures directory.
pub fn fixtures_root() -> PathBuf {
    workspace().join("tests/fixtures/x12")
}

/// Every fixture file under `dir` (sorted; the `codes` lists and
/// EXPECTED.tsv are not fixtures).
pub fn fixture_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "codes") {
                fixture_files(&p, out);
            }
        } else if p.file_name().is_some_and(|n| n != "EXPECTED.tsv") {
            out.push(p);
        }
    }
}

/// A program from `<workspace>/.venv/bin`; panics with the fix when absent.
pub fn venv_bin(name: &str) -> PathBuf {
    let p = workspace().join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "{} not found: run scripts/test to create .venv (pyx12 4.0.0, linuxforhealth-x12 0.57, pydantic<2)",
        p.display()
    );
    p
}

/// Completes a 10-digit NPI from 9 digits with its Luhn check digit.
pub fn npi(nine: &str) -> String {
    (0..10)
        .map(|d| format!("{nine}{d}"))
        .find(|n| billd_x12::validate::npi_valid(n))
        .expect("some check digit fits")
}

fn nm1(entity: &str, kind: &str, last: &str, first: Option<&str>, q: &str, id: &str) -> Nm1 {
    Nm1 {
        entity: entity.into(),
        entity_type: kind.into(),
        last_or_org_name: Some(last.into()),
        first_name: first.map(Into::into),
        id_qualifier: Some(q.into()),
        id: Some(id.into()),
        ..Nm1::default()
    }
}

fn entity(nm1: Nm1, other: Vec<Segment>) -> Entity {
    Entity {
        loop_id: String::new(),
        nm1,
        other,
        nested: Vec::new(),
    }
}

fn address(line: &str, city: &str, state: &str, zip: &str) -> Vec<Segment> {
    vec![
        Segment::new("N3", &[line]),
        Segment::new("N4", &[city, state, zip]),
    ]
}

fn hl(id: u32, parent: Option<u32>, level: &str, child: &str) -> Hl {
    Hl {
        id: id.to_string(),
        parent: parent.map(|p| p.to_string()),
        level: level.into(),
        child: Some(child.into()),
        ..Hl::default()
    }
}

/// Knobs for a generated claim (proptest drives these).
#[derive(Clone, Debug)]
pub struct ClaimSpec {
    /// Line charges in cents (1–6 lines).
    pub lines: Vec<i64>,
    /// Modifiers for the first line.
    pub modifiers: Vec<String>,
    /// Number of ICD-10 diagnoses (1–8).
    pub diagnoses: usize,
    /// Add a secondary payer (2320/2330) that paid this many cents.
    pub secondary_paid: Option<i64>,
    /// Patient is a dependent (2000C) rather than the subscriber.
    pub dependent: bool,
    /// Claim frequency code (1, 7 or 8).
    pub frequency: &'static str,
    /// Place of service.
    pub place_of_service: &'static str,
}

impl Default for ClaimSpec {
    fn default() -> Self {
        ClaimSpec {
            lines: vec![12_500, 4_000, 2_550],
            modifiers: vec!["25".into()],
            diagnoses: 3,
            secondary_paid: Some(5_000),
            dependent: false,
            frequency: "1",
            place_of_service: "11",
        }
    }
}

const ICD10: [&str; 8] = [
    "J449", "E119", "I10", "M545", "R0602", "Z0000", "K219", "F329",
];
const CPT: [&str; 6] = ["99213", "85025", "80053", "93000", "71046", "36415"];

fn claim(spec: &ClaimSpec, n: usize) -> Claim {
    let total: i64 = spec.lines.iter().sum();
    let mut codes = Vec::new();
    for (i, code) in ICD10
        .iter()
        .cycle()
        .take(spec.diagnoses.clamp(1, 8))
        .enumerate()
    {
        codes.push(Composite(vec![
            if i == 0 { "ABK" } else { "ABF" }.into(),
            (*code).into(),
        ]));
    }
    let lines = spec
        .lines
        .iter()
        .enumerate()
        .map(|(i, cents)| {
            let mut procedure = vec!["HC".to_owned(), CPT[i % CPT.len()].to_owned()];
            if i == 0 {
                procedure.extend(spec.modifiers.iter().take(4).cloned());
            }
            ServiceLine {
                pos: Pos::default(),
                lx: Lx {
                    number: (i + 1).to_string(),
                    ..Lx::default()
                },
                sv1: Sv1 {
                    procedure: Composite(procedure),
                    charge: Amount::from_cents(*cents),
                    unit_basis: "UN".into(),
                    units: "1".into(),
                    diagnosis_pointers: Composite(
                        (1..=spec.diagnoses.clamp(1, 4))
                            .map(|p| p.to_string())
                            .collect(),
                    ),
                    ..Sv1::default()
                },
                dates: vec![Dtp {
                    qualifier: "472".into(),
                    format: "D8".into(),
                    value: "20240105".into(),
                    ..Dtp::default()
                }],
                ..ServiceLine::default()
            }
        })
        .collect();
    let other_subscribers = spec
        .secondary_paid
        .map(|paid| {
            let adj = total - paid;
            vec![OtherSubscriber {
                sbr: Sbr {
                    responsibility: "P".into(),
                    relationship: Some("18".into()),
                    group_number: Some("GRP900".into()),
                    filing_indicator: Some("CI".into()),
                    ..Sbr::default()
                },
                adjustments: vec![Cas {
                    group: "CO".into(),
                    adjustments: vec![CasAdjustment {
                        reason: "45".into(),
                        amount: Amount::from_cents(adj),
                        quantity: None,
                    }],
                    ..Cas::default()
                }],
                amounts: vec![Amt {
                    qualifier: "D".into(),
                    amount: Amount::from_cents(paid),
                    ..Amt::default()
                }],
                other: vec![Segment::new("OI", &["", "", "Y", "P", "", "Y"])],
                entities: vec![
                    entity(
                        nm1("IL", "1", "DOE", Some("JOHN"), "MI", "PRIMARY778"),
                        address("1 MAIN ST", "SPRINGFIELD", "IL", "62701"),
                    ),
                    entity(
                        nm1("PR", "2", "FIRST PAYER", None, "PI", "FIRSTPAY"),
                        Vec::new(),
                    ),
                ],
            }]
        })
        .unwrap_or_default();
    Claim {
        pos: Pos::default(),
        clm: Clm {
            claim_id: format!("PCN{n:05}"),
            total_charge: Amount::from_cents(total),
            facility: Composite(vec![
                spec.place_of_service.into(),
                "B".into(),
                spec.frequency.into(),
            ]),
            provider_signature: Some("Y".into()),
            assignment: Some("A".into()),
            benefits_assignment: Some("Y".into()),
            release_of_information: Some("Y".into()),
            ..Clm::default()
        },
        references: if spec.frequency == "1" {
            Vec::new()
        } else {
            vec![Ref {
                qualifier: "F8".into(),
                value: Some("PAYERICN123".into()),
                ..Ref::default()
            }]
        },
        health_info: vec![Hi { codes }],
        providers: vec![entity(
            nm1("82", "1", "KILDARE", Some("BEN"), "XX", &npi("199999666")),
            vec![Segment {
                id: "PRV".into(),
                elements: vec!["PE".into(), "PXC".into(), "207Q00000X".into()],
            }],
        )],
        other_subscribers,
        lines,
        ..Claim::default()
    }
}

/// An 837P with one claim per spec, one billing provider, subscribers and
/// dependents as the specs say.
pub fn professional(specs: &[ClaimSpec]) -> Professional {
    let mut hl_id = 1;
    let bp_hl = hl(hl_id, None, "20", "1");
    let mut subscribers = Vec::new();
    for (n, spec) in specs.iter().enumerate() {
        hl_id += 1;
        let sub_id = hl_id;
        let mut sub = Subscriber {
            hl: hl(
                sub_id,
                Some(1),
                "22",
                if spec.dependent { "1" } else { "0" },
            ),
            sbr: Sbr {
                responsibility: if spec.secondary_paid.is_some() {
                    "S"
                } else {
                    "P"
                }
                .into(),
                relationship: (!spec.dependent).then(|| "18".to_owned()),
                group_number: Some("GRP100".into()),
                filing_indicator: Some("CI".into()),
                ..Sbr::default()
            },
            subscriber: entity(
                nm1("IL", "1", "DOE", Some("JOHN"), "MI", &format!("MBR{n:06}")),
                {
                    let mut v = address("1 MAIN ST", "SPRINGFIELD", "IL", "62701");
                    v.push(Segment::new("DMG", &["D8", "19700101", "M"]));
                    v
                },
            ),
            payer: entity(
                nm1("PR", "2", "SECOND PAYER", None, "PI", "SECPAY"),
                Vec::new(),
            ),
            ..Subscriber::default()
        };
        if spec.dependent {
            hl_id += 1;
            sub.patients.push(Patient {
                hl: hl(hl_id, Some(sub_id), "23", "0"),
                other: vec![Segment::new("PAT", &["19"])],
                patient: entity(nm1("QC", "1", "DOE", Some("JANE"), "", "").with_no_id(), {
                    let mut v = address("1 MAIN ST", "SPRINGFIELD", "IL", "62701");
                    v.push(Segment::new("DMG", &["D8", "20100101", "F"]));
                    v
                }),
                claims: vec![claim(spec, n)],
            });
        } else {
            sub.claims.push(claim(spec, n));
        }
        subscribers.push(sub);
    }
    Professional {
        bht: Bht {
            structure: "0019".into(),
            purpose: "00".into(),
            reference: Some("BATCH0001".into()),
            date: Some("20240110".into()),
            time: Some("1200".into()),
            transaction_type: Some("CH".into()),
            ..Bht::default()
        },
        header_other: Vec::new(),
        submitter: entity(
            nm1("41", "2", "BILLD CLINIC", None, "46", "SUBMIT01"),
            vec![Segment::new(
                "PER",
                &["IC", "BILLING OFFICE", "TE", "2175550100"],
            )],
        ),
        receiver: entity(
            nm1("40", "2", "SECOND PAYER", None, "46", "SECPAY"),
            Vec::new(),
        ),
        billing_providers: vec![BillingProvider {
            hl: bp_hl,
            other: Vec::new(),
            billing: entity(
                nm1("85", "2", "BILLD CLINIC", None, "XX", &npi("123456789")),
                {
                    let mut v = address("100 CLINIC WAY", "SPRINGFIELD", "IL", "627010001");
                    v.push(Segment::new("REF", &["EI", "371234567"]));
                    v
                },
            ),
            pay_to: None,
            pay_to_plan: None,
            subscribers,
        }],
    }
}

trait NoId {
    fn with_no_id(self) -> Self;
}

impl NoId for Nm1 {
    fn with_no_id(mut self) -> Self {
        self.id_qualifier = None;
        self.id = None;
        self
    }
}

/// A 270 asking about one subscriber (and a dependent when `dependent`).
pub fn inquiry_270(member: &str, dependent: bool, service_types: &[&str]) -> Hierarchy {
    let eq = Benefit {
        eq: Some(Eq {
            service_types: Repeats(service_types.iter().map(|s| (*s).to_owned()).collect()),
            ..Eq::default()
        }),
        ..Benefit::default()
    };
    let mut subscriber = Level {
        pos: Pos::default(),
        hl: hl(3, Some(2), "22", if dependent { "1" } else { "0" }),
        other: vec![
            Trn {
                trace_type: "1".into(),
                trace_number: "93175-012547".into(),
                originator: Some("9877281234".into()),
                ..Trn::default()
            }
            .to_segment(),
        ],
        names: vec![Name {
            nm1: nm1("IL", "1", "SMITH", Some("ROBERT"), "MI", member),
            other: vec![
                Segment::new("DMG", &["D8", "19430519"]),
                Segment::new("DTP", &["291", "D8", "20240110"]),
            ],
            benefits: if dependent {
                Vec::new()
            } else {
                vec![eq.clone()]
            },
            ..Name::default()
        }],
        ..Level::default()
    };
    if dependent {
        subscriber.children.push(Level {
            hl: hl(4, Some(3), "23", "0"),
            other: vec![
                Trn {
                    trace_type: "1".into(),
                    trace_number: "93175-012548".into(),
                    originator: Some("9877281234".into()),
                    ..Trn::default()
                }
                .to_segment(),
            ],
            names: vec![Name {
                nm1: nm1("03", "1", "SMITH", Some("MARY"), "", "").with_no_id(),
                other: vec![
                    Segment::new("DMG", &["D8", "20150519", "F"]),
                    Segment::new("DTP", &["291", "D8", "20240110"]),
                ],
                benefits: vec![eq],
                ..Name::default()
            }],
            ..Level::default()
        });
    }
    Hierarchy {
        bht: Bht {
            structure: "0022".into(),
            purpose: "13".into(),
            reference: Some("10001234".into()),
            date: Some("20240110".into()),
            time: Some("1319".into()),
            ..Bht::default()
        },
        header_other: Vec::new(),
        levels: vec![Level {
            hl: hl(1, None, "20", "1"),
            names: vec![Name {
                nm1: nm1("PR", "2", "ABC COMPANY", None, "PI", "842610001"),
                ..Name::default()
            }],
            children: vec![Level {
                hl: hl(2, Some(1), "21", "1"),
                names: vec![Name {
                    nm1: nm1(
                        "1P",
                        "2",
                        "BONE AND JOINT CLINIC",
                        None,
                        "XX",
                        &npi("123456789"),
                    ),
                    ..Name::default()
                }],
                children: vec![subscriber],
                ..Level::default()
            }],
            ..Level::default()
        }],
    }
}

/// A 276 asking the status of one claim.
pub fn request_276(claim_id: &str, cents: i64) -> Hierarchy {
    let level = |id: u32, parent: Option<u32>, code: &str, child: &str, name: Nm1| Level {
        hl: hl(id, parent, code, child),
        names: vec![Name {
            nm1: name,
            ..Name::default()
        }],
        ..Level::default()
    };
    let mut payer = level(
        1,
        None,
        "20",
        "1",
        nm1("PR", "2", "ABC INSURANCE", None, "PI", "12345"),
    );
    let mut receiver = level(
        2,
        Some(1),
        "21",
        "1",
        nm1("41", "2", "XYZ SERVICE", None, "46", "X67E"),
    );
    let mut provider = level(
        3,
        Some(2),
        "19",
        "1",
        nm1("1P", "2", "HOME HOSPITAL", None, "XX", &npi("111222333")),
    );
    let mut subscriber = level(
        4,
        Some(3),
        "22",
        "0",
        nm1("IL", "1", "SMITH", Some("FRED"), "MI", "123456789A"),
    );
    subscriber
        .other
        .push(Segment::new("DMG", &["D8", "19430519", "M"]));
    subscriber.tracking.push(Tracking {
        pos: Pos::default(),
        trn: Trn {
            trace_type: "1".into(),
            trace_number: "ABCXYZ1".into(),
            ..Trn::default()
        },
        references: vec![Ref {
            qualifier: "EJ".into(),
            value: Some(claim_id.into()),
            ..Ref::default()
        }],
        amounts: vec![Amt {
            qualifier: "T3".into(),
            amount: Amount::from_cents(cents),
            ..Amt::default()
        }],
        dates: vec![Dtp {
            qualifier: "472".into(),
            format: "RD8".into(),
            value: "20240101-20240102".into(),
            ..Dtp::default()
        }],
        ..Tracking::default()
    });
    provider.children.push(subscriber);
    receiver.children.push(provider);
    payer.children.push(receiver);
    Hierarchy {
        bht: Bht {
            structure: "0010".into(),
            purpose: "13".into(),
            reference: Some("ABC276XXX".into()),
            date: Some("20240110".into()),
            time: Some("1425".into()),
            ..Bht::default()
        },
        header_other: Vec::new(),
        levels: vec![payer],
    }
}

/// Wraps one transaction body in an interchange and group.
pub fn document(body: Body, functional_id: &str, guide: &str) -> Document {
    let mut doc = Document::single("BILLDCLINIC", "PAYER01", "T", guide, body);
    doc.interchanges[0].groups[0].functional_id = functional_id.into();
    doc
}

/// One generated claim payment: charge and paid in cents, and how the
/// difference splits between contractual (CO 45) and patient (PR 1/2).
#[derive(Clone, Debug)]
pub struct PaymentSpec {
    /// Line charges in cents.
    pub lines: Vec<i64>,
    /// Percent of each line paid.
    pub paid_pct: i64,
    /// Percent of the unpaid rest that is patient responsibility.
    pub patient_pct: i64,
    /// A reversal (CLP02 22, negated amounts).
    pub reversal: bool,
}

/// A balanced 835: per line SVC and CAS, per claim CLP, BPR = Σ CLP04 − PLB.
pub fn remittance(claims: &[PaymentSpec], plb_cents: i64) -> billd_x12::t835::Remittance {
    use billd_x12::segments::{Bpr, Clp, Dtm, N1, Plb, PlbAdjustment, Svc};
    use billd_x12::t835::{ClaimPayment, HeaderNumber, Party, Remittance, ServicePayment};
    let mut total = 0i64;
    let mut out_claims = Vec::new();
    for (n, c) in claims.iter().enumerate() {
        let sign = if c.reversal { -1 } else { 1 };
        let (mut charge, mut paid, mut patient) = (0i64, 0i64, 0i64);
        let mut services = Vec::new();
        for (i, line) in c.lines.iter().enumerate() {
            let lp = line * c.paid_pct / 100;
            let rest = line - lp;
            let pr = rest * c.patient_pct / 100;
            let co = rest - pr;
            charge += line;
            paid += lp;
            patient += pr;
            let mut adjustments = Vec::new();
            for (group, reason, cents) in [("CO", "45", co), ("PR", "2", pr)] {
                if cents != 0 {
                    adjustments.push(Cas {
                        group: group.into(),
                        adjustments: vec![CasAdjustment {
                            reason: reason.into(),
                            amount: Amount::from_cents(sign * cents),
                            quantity: None,
                        }],
                        ..Cas::default()
                    });
                }
            }
            services.push(ServicePayment {
                svc: Svc {
                    procedure: Composite(vec!["HC".into(), CPT[i % CPT.len()].into()]),
                    charge: Amount::from_cents(sign * line),
                    payment: Some(Amount::from_cents(sign * lp)),
                    units_paid: Some("1".into()),
                    ..Svc::default()
                },
                dates: vec![Dtm {
                    qualifier: "472".into(),
                    date: Some("20240105".into()),
                    ..Dtm::default()
                }],
                adjustments,
                ..ServicePayment::default()
            });
        }
        total += sign * paid;
        out_claims.push(ClaimPayment {
            clp: Clp {
                claim_id: format!("PCN{n:05}"),
                status: if c.reversal { "22" } else { "1" }.into(),
                total_charge: Amount::from_cents(sign * charge),
                payment: Amount::from_cents(sign * paid),
                patient_responsibility: Some(Amount::from_cents(sign * patient)),
                filing_indicator: Some("12".into()),
                payer_claim_control_number: Some(format!("ICN{n:08}")),
                facility_type: Some("11".into()),
                frequency: Some("1".into()),
                ..Clp::default()
            },
            names: vec![nm1(
                "QC",
                "1",
                "DOE",
                Some("JANE"),
                "MI",
                &format!("MBR{n:06}"),
            )],
            services,
            ..ClaimPayment::default()
        });
    }
    let net = total - plb_cents;
    Remittance {
        financial: Bpr {
            handling: "I".into(),
            total_payment: Amount::from_cents(net.abs()),
            credit_debit: if net < 0 { "D" } else { "C" }.into(),
            method: "ACH".into(),
            format: Some("CCP".into()),
            sender_dfi_qualifier: Some("01".into()),
            sender_dfi_id: Some("999999992".into()),
            sender_account_qualifier: Some("DA".into()),
            sender_account: Some("123456".into()),
            originating_company: Some("1512345678".into()),
            receiver_dfi_qualifier: Some("01".into()),
            receiver_dfi_id: Some("999988880".into()),
            receiver_account_qualifier: Some("DA".into()),
            receiver_account: Some("98765".into()),
            date: Some("20240110".into()),
            ..Bpr::default()
        },
        trace: Trn {
            trace_type: "1".into(),
            trace_number: "12345".into(),
            originator: Some("1512345678".into()),
            ..Trn::default()
        },
        header_other: vec![Segment::new("DTM", &["405", "20240109"])],
        payer: Party {
            n1: N1 {
                entity: "PR".into(),
                name: Some("INSURANCE COMPANY".into()),
                ..N1::default()
            },
            other: address("1 PAYER WAY", "SPRINGFIELD", "IL", "62701"),
        },
        payee: Party {
            n1: N1 {
                entity: "PE".into(),
                name: Some("BILLD CLINIC".into()),
                id_qualifier: Some("XX".into()),
                id: Some(npi("123456789")),
                ..N1::default()
            },
            other: Vec::new(),
        },
        header_numbers: vec![HeaderNumber {
            lx: Some(Lx {
                number: "1".into(),
                ..Lx::default()
            }),
            other: Vec::new(),
            claims: out_claims,
        }],
        provider_adjustments: if plb_cents == 0 {
            Vec::new()
        } else {
            vec![Plb {
                provider_id: npi("123456789"),
                fiscal_period_date: "20241231".into(),
                adjustments: vec![PlbAdjustment {
                    reason: Composite(vec!["WO".into(), "REF1".into()]),
                    amount: Amount::from_cents(plb_cents),
                }],
                ..Plb::default()
            }]
        },
    }
}
