//! Every X12 fixture under tests/fixtures/x12 against the committed list of
//! expected outcomes (tests/fixtures/x12/EXPECTED.tsv): whether a strict
//! parse succeeds or fails with which located error, and what `validate`
//! finds. Parse → render → parse must give equal models on every fixture
//! that parses, and render must reproduce the transaction's segments.
//!
//! Set `BILLD_X12_BLESS=1` to rewrite the outcome columns (the `why` column
//! is kept); review the diff before committing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

mod common;

use billd_x12::reader::{Mode, read_raw};
use billd_x12::validate::validate;
use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};
use billd_x12::{Document, Severity, parse};

fn kind_name(i: &billd_x12::Issue) -> String {
    let v = serde_json::to_value(i).unwrap();
    v["kind"].as_str().unwrap_or("?").to_owned()
}

/// (parse outcome, validate outcome) for one file.
fn outcome(bytes: &[u8]) -> (String, String) {
    let parse_out = match parse(bytes, Mode::Strict) {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let validate_out = match validate(bytes) {
        Err(e) => format!("unreadable: {}", e.first()),
        Ok(p) => {
            let errors: Vec<_> = p
                .issues
                .iter()
                .filter(|i| i.severity == Severity::Error)
                .collect();
            let warnings = p.issues.len() - errors.len();
            let mut kinds: Vec<String> = p.issues.iter().map(kind_name).collect();
            kinds.sort();
            kinds.dedup();
            if p.issues.is_empty() {
                "clean".to_owned()
            } else {
                format!(
                    "{} error(s), {} warning(s): {}",
                    errors.len(),
                    warnings,
                    kinds.join(",")
                )
            }
        }
    };
    (parse_out, validate_out)
}

fn blank_envelopes(doc: &mut Document) {
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

/// Parse, render, parse again: models must be equal and the rendered
/// transactions must hold the source's segments in order.
fn round_trip(bytes: &[u8]) -> Result<(), String> {
    let first = parse(bytes, Mode::Lenient).map_err(|e| e.to_string())?;
    let mut numbers = SequentialControlNumbers::starting_at(1);
    // Through JSON, as `billd x12 parse --json` | `billd x12 render` does.
    let json = serde_json::to_string(&first.document).map_err(|e| e.to_string())?;
    let from_json: Document = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    if from_json != first.document {
        return Err("JSON round trip changed the model".into());
    }
    let text = write_document(&from_json, &WriteOptions::default(), &mut numbers)
        .map_err(|e| e.to_string())?;
    let second = parse(text.as_bytes(), Mode::Lenient).map_err(|e| format!("re-read: {e}"))?;
    let (mut a, mut b) = (first.document.clone(), second.document.clone());
    blank_envelopes(&mut a);
    blank_envelopes(&mut b);
    if a != b {
        return Err("models differ after render and re-read".into());
    }
    // Segment by segment against the source.
    let raw = read_raw(bytes, Mode::Lenient).map_err(|e| e.to_string())?;
    let again = read_raw(text.as_bytes(), Mode::Lenient).map_err(|e| e.to_string())?;
    let src: Vec<_> = raw
        .interchanges
        .iter()
        .flat_map(|i| &i.groups)
        .flat_map(|g| &g.transactions)
        .collect();
    let out: Vec<_> = again
        .interchanges
        .iter()
        .flat_map(|i| &i.groups)
        .flat_map(|g| &g.transactions)
        .collect();
    if src.len() != out.len() {
        return Err(format!(
            "{} transactions written for {} read",
            out.len(),
            src.len()
        ));
    }
    for (s, o) in src.iter().zip(&out) {
        let ss: Vec<_> = s.body.iter().map(|l| &l.segment).collect();
        let os: Vec<_> = o.body.iter().map(|l| &l.segment).collect();
        if ss != os {
            let at = ss
                .iter()
                .zip(&os)
                .position(|(x, y)| x != y)
                .unwrap_or(ss.len().min(os.len()));
            return Err(format!(
                "segments differ from transaction segment {} ({} vs {})",
                at + 2,
                ss.get(at).map_or("end", |s| &*s.id),
                os.get(at).map_or("end", |s| &*s.id)
            ));
        }
        if o.se.is_none() {
            return Err("rendered transaction lacks SE".into());
        }
    }
    if !second
        .issues
        .iter()
        .all(|i| first.issues.iter().any(|j| j.kind == i.kind))
    {
        return Err("rendering introduced new issues".into());
    }
    Ok(())
}

#[test]
fn every_fixture_has_its_expected_outcome() {
    let root = common::fixtures_root();
    let mut all = Vec::new();
    common::fixture_files(&root, &mut all);
    assert!(all.len() > 150, "fixtures missing under {}", root.display());
    let expected_path = root.join("EXPECTED.tsv");
    let expected_text = std::fs::read_to_string(&expected_path).unwrap_or_default();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in expected_text.lines().skip(1) {
        let cols: Vec<String> = line.split('\t').map(str::to_owned).collect();
        expected.insert(cols[0].clone(), cols);
    }
    let bless = std::env::var_os("BILLD_X12_BLESS").is_some();
    let mut out = String::from("file\tparse\tvalidate\tround_trip\twhy\n");
    let mut failures = Vec::new();
    for p in &all {
        let rel = p
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = std::fs::read(p).unwrap();
        let (parse_out, validate_out) = outcome(&bytes);
        let rt = if parse(&bytes, Mode::Lenient).is_ok() {
            match round_trip(&bytes) {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("fails: {e}"),
            }
        } else {
            "n/a".to_owned()
        };
        let why = expected
            .get(&rel)
            .and_then(|c| c.get(4))
            .cloned()
            .unwrap_or_default();
        writeln!(out, "{rel}\t{parse_out}\t{validate_out}\t{rt}\t{why}").unwrap();
        if parse_out == "ok" && rt != "ok" {
            failures.push(format!("{rel}: parses but round trip {rt}"));
        }
        match expected.get(&rel) {
            None => failures.push(format!("{rel}: not listed in EXPECTED.tsv")),
            Some(cols) => {
                let want = (cols.get(1), cols.get(2), cols.get(3));
                if want != (Some(&parse_out), Some(&validate_out), Some(&rt)) {
                    failures.push(format!(
                        "{rel}:\n  expected parse={:?} validate={:?} round_trip={:?}\n  got      parse={parse_out:?} validate={validate_out:?} round_trip={rt:?}",
                        want.0, want.1, want.2
                    ));
                }
                if why.trim().is_empty() {
                    failures.push(format!("{rel}: no reason given in EXPECTED.tsv"));
                }
            }
        }
    }
    for k in expected.keys() {
        if !all
            .iter()
            .any(|p| p.strip_prefix(&root).unwrap().to_string_lossy() == k.as_str())
        {
            failures.push(format!("{k}: listed in EXPECTED.tsv but missing"));
        }
    }
    if bless {
        std::fs::write(&expected_path, out).unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) off:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
