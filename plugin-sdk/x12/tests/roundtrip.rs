//! Generated transactions survive write → read → JSON → read unchanged, 835s
//! built balanced stay balanced, and no input — random bytes or mutated
//! fixtures — makes any reader entry point panic.

mod common;

use billd_x12::balance::balance;
use billd_x12::document::Body;
use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};
use billd_x12::{Delimiters, Document, Mode, parse, read_raw};
use common::{
    ClaimSpec, PaymentSpec, document, inquiry_270, professional, remittance, request_276,
};
use proptest::prelude::*;

fn blank(doc: &mut Document) {
    for ic in &mut doc.interchanges {
        ic.header.date.clear();
        ic.header.time.clear();
        ic.header.control_number.clear();
        for g in &mut ic.groups {
            g.date.clear();
            g.time.clear();
            g.control_number.clear();
            for t in &mut g.transactions {
                t.control_number.clear();
            }
        }
    }
}

fn round_trip(doc: &Document, delimiters: Option<Delimiters>) -> Result<(), TestCaseError> {
    let mut numbers = SequentialControlNumbers::starting_at(1);
    let opts = WriteOptions {
        delimiters,
        newlines: delimiters.is_none(),
        ..WriteOptions::default()
    };
    let text =
        write_document(doc, &opts, &mut numbers).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let parsed = parse(text.as_bytes(), Mode::Strict)
        .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    let json = serde_json::to_string(&parsed.document).unwrap();
    let mut back: Document = serde_json::from_str(&json).unwrap();
    let mut want = doc.clone();
    blank(&mut back);
    blank(&mut want);
    prop_assert_eq!(back, want);
    Ok(())
}

fn claim_spec() -> impl Strategy<Value = ClaimSpec> {
    (
        prop::collection::vec(1i64..5_000_000, 1..6),
        prop::sample::subsequence(vec!["25", "59", "RT", "LT", "GT"], 0..4),
        1usize..9,
        prop::option::of(0i64..100),
        any::<bool>(),
        prop::sample::select(vec!["1", "7", "8"]),
    )
        .prop_map(|(lines, mods, diagnoses, paid_pct, dependent, frequency)| {
            let total: i64 = lines.iter().sum();
            ClaimSpec {
                secondary_paid: paid_pct.map(|p| total * p / 100),
                lines,
                modifiers: mods.into_iter().map(str::to_owned).collect(),
                diagnoses,
                dependent,
                frequency,
                place_of_service: "11",
            }
        })
}

fn payment_spec() -> impl Strategy<Value = PaymentSpec> {
    (
        prop::collection::vec(1i64..10_000_000, 1..5),
        0i64..=100,
        0i64..=100,
        any::<bool>(),
    )
        .prop_map(|(lines, paid_pct, patient_pct, reversal)| PaymentSpec {
            lines,
            paid_pct,
            patient_pct,
            reversal,
        })
}

fn delimiters() -> impl Strategy<Value = Option<Delimiters>> {
    prop::option::of(prop::sample::select(vec![
        Delimiters::default(),
        Delimiters {
            element: b'|',
            component: b'>',
            repetition: Some(b'{'),
            segment: b'!',
        },
        Delimiters {
            element: 0x1d,
            component: 0x1f,
            repetition: Some(0x1e),
            segment: b'\n',
        },
    ]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_837ps_round_trip(specs in prop::collection::vec(claim_spec(), 1..4), d in delimiters()) {
        let doc = document(Body::Professional(professional(&specs)), "HC", "005010X222A1");
        round_trip(&doc, d)?;
    }

    #[test]
    fn generated_835s_round_trip_and_balance(claims in prop::collection::vec(payment_spec(), 1..6), plb in -10_000i64..10_000, d in delimiters()) {
        let r = remittance(&claims, plb);
        prop_assert_eq!(balance(&r), vec![]);
        round_trip(&document(Body::Remittance(r), "HP", "005010X221A1"), d)?;
    }

    #[test]
    fn unbalancing_one_cent_is_caught(claims in prop::collection::vec(payment_spec(), 1..4), which in any::<prop::sample::Index>()) {
        let mut r = remittance(&claims, 0);
        let c = which.index(r.header_numbers[0].claims.len());
        let clp = &mut r.header_numbers[0].claims[c].clp;
        clp.payment = billd_x12::fields::Amount::from_units(clp.payment.units() + 100);
        let found = balance(&r);
        prop_assert!(found.iter().any(|i| i.claim == Some(c)), "claim {} imbalance not reported: {:?}", c, found);
        prop_assert!(found.iter().any(|i| i.rule == billd_x12::balance::Rule::Payment));
    }

    #[test]
    fn generated_270s_and_276s_round_trip(member in "[A-Z][0-9]{9}", dependent in any::<bool>(), cents in 0i64..10_000_000, d in delimiters()) {
        round_trip(&document(Body::EligibilityInquiry(inquiry_270(&member, dependent, &["30", "1"])), "HS", "005010X279A1"), d)?;
        round_trip(&document(Body::StatusRequest(request_276(&member, cents)), "HR", "005010X212"), d)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_after_an_isa_never_panic(tail in prop::collection::vec(prop::sample::select(b"*:^~|\n\r ABCDEFGHILMNSTXZ0123456789.-".to_vec()), 0..2048)) {
        let mut bytes = b"ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*P*:~".to_vec();
        bytes.extend(tail);
        exercise(&bytes);
    }
}

fn exercise(bytes: &[u8]) {
    let _ = read_raw(bytes, Mode::Strict);
    let _ = read_raw(bytes, Mode::Lenient);
    let _ = billd_x12::validate::validate(bytes);
    let _ = billd_x12::t999::acknowledge(bytes);
    if let Ok(p) = parse(bytes, Mode::Lenient) {
        let mut n = SequentialControlNumbers::starting_at(1);
        let _ = write_document(&p.document, &WriteOptions::default(), &mut n);
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    // Deterministic mutations (xorshift) of every small fixture: flip,
    // delete, duplicate and insert delimiter bytes.
    let root = common::workspace().join("tests/fixtures/x12");
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.metadata().unwrap().len() < 8_000
                && p.extension().is_none_or(|x| x != "tsv" && x != "csv")
            {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 100);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut runs = 0;
    for f in &files {
        let base = std::fs::read(f).unwrap();
        for _ in 0..20 {
            let mut b = base.clone();
            for _ in 0..(1 + next() % 8) {
                if b.is_empty() {
                    break;
                }
                let at = (next() % b.len() as u64) as usize;
                match next() % 4 {
                    0 => b[at] ^= 1 << (next() % 8),
                    1 => {
                        b.remove(at);
                    }
                    2 => {
                        let end = (at + (next() % 64) as usize).min(b.len());
                        let chunk = b[at..end].to_vec();
                        b.splice(at..at, chunk);
                    }
                    _ => b.insert(at, b"*:^~\n"[(next() % 5) as usize]),
                }
            }
            exercise(&b);
            runs += 1;
        }
    }
    assert!(runs >= 2_000, "only {runs} mutations ran");
}
