//! billd's X12 against real external validators, the way trading partners
//! will judge it: every 837P billd writes must pass pyx12's `x12valid`
//! (judged by its "OK"/"Failure" line, not its exit code), and every 270 and
//! 276 billd writes must be read by linuxforhealth-x12 without error. Both
//! run from the workspace `.venv` (created by scripts/test); the tests fail
//! with that instruction when it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use billd_x12::document::Body;
use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};
use billd_x12::{Document, Mode, parse};
use common::{ClaimSpec, document, inquiry_270, professional, request_276, venv_bin};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

fn write(dir: &Path, name: &str, doc: &Document, start: u64) -> PathBuf {
    let mut numbers = SequentialControlNumbers::starting_at(start);
    let opts = WriteOptions {
        date: "20240110".into(),
        time: "1200".into(),
        ..WriteOptions::default()
    };
    let text = write_document(doc, &opts, &mut numbers).expect("writes");
    // What billd writes must also read back cleanly and equal what it wrote.
    let back = parse(text.as_bytes(), Mode::Strict)
        .unwrap_or_else(|e| panic!("{name}: re-read failed: {e}"));
    let body = |d: &Document| -> Vec<Vec<billd_x12::Segment>> {
        d.interchanges
            .iter()
            .flat_map(|i| &i.groups)
            .flat_map(|g| &g.transactions)
            .map(|t| t.body.to_segments())
            .collect()
    };
    assert_eq!(body(&back.document), body(doc), "{name}: re-read differs");
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs x12valid on each file; returns the files whose verdict line is not OK,
/// with pyx12's messages.
fn pyx12_failures(files: &[PathBuf]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in files {
        let out = Command::new(venv_bin("x12valid"))
            .arg(f)
            .output()
            .expect("x12valid runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let verdict = text.lines().rev().find_map(|l| {
            l.strip_prefix(&format!("{}: ", f.display()))
                .map(str::trim)
                .map(str::to_owned)
        });
        match verdict.as_deref() {
            Some("OK") => {}
            Some("Failure") => bad.push(format!("{}: Failure\n{text}", f.display())),
            other => bad.push(format!(
                "{}: no verdict line ({other:?})\n{text}",
                f.display()
            )),
        }
    }
    bad
}

#[test]
fn pyx12_accepts_every_837p_billd_writes() {
    let dir = tempfile::tempdir().unwrap();
    let variants: Vec<(&str, Vec<ClaimSpec>)> = vec![
        ("default", vec![ClaimSpec::default()]),
        (
            "dependent_primary",
            vec![ClaimSpec {
                dependent: true,
                secondary_paid: None,
                ..ClaimSpec::default()
            }],
        ),
        (
            "replacement_many_lines",
            vec![ClaimSpec {
                lines: vec![100, 2_000, 30_000, 45_067, 99, 1_000_000],
                modifiers: vec!["59".into(), "RT".into(), "GT".into(), "XU".into()],
                diagnoses: 8,
                frequency: "7",
                place_of_service: "02",
                ..ClaimSpec::default()
            }],
        ),
        (
            "several_subscribers",
            vec![
                ClaimSpec::default(),
                ClaimSpec {
                    dependent: true,
                    ..ClaimSpec::default()
                },
                ClaimSpec {
                    frequency: "8",
                    ..ClaimSpec::default()
                },
            ],
        ),
    ];
    let mut files = Vec::new();
    for (i, (name, specs)) in variants.iter().enumerate() {
        let doc = document(
            Body::Professional(professional(specs)),
            "HC",
            "005010X222A1",
        );
        files.push(write(
            dir.path(),
            &format!("{name}.837"),
            &doc,
            100 + i as u64,
        ));
    }
    let bad = pyx12_failures(&files);
    assert!(
        bad.is_empty(),
        "pyx12 rejected what billd wrote:\n{}",
        bad.join("\n")
    );
}

#[test]
fn pyx12_accepts_generated_837ps() {
    let dir = tempfile::tempdir().unwrap();
    let spec = (
        prop::collection::vec(1i64..5_000_000, 1..6),
        prop::sample::subsequence(vec!["25", "59", "RT", "LT", "GT", "76"], 0..4),
        1usize..9,
        prop::option::of(0i64..100),
        any::<bool>(),
        prop::sample::select(vec!["1", "7", "8"]),
        prop::sample::select(vec!["11", "02", "21", "22", "23"]),
    )
        .prop_map(
            |(lines, mods, diagnoses, paid_pct, dependent, frequency, pos)| {
                let total: i64 = lines.iter().sum();
                ClaimSpec {
                    secondary_paid: paid_pct.map(|p| total * p / 100),
                    lines,
                    modifiers: mods.into_iter().map(str::to_owned).collect(),
                    diagnoses,
                    dependent,
                    frequency,
                    place_of_service: pos,
                }
            },
        );
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let mut files = Vec::new();
    for i in 0..12 {
        let specs = prop::collection::vec(spec.clone(), 1..3)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let doc = document(
            Body::Professional(professional(&specs)),
            "HC",
            "005010X222A1",
        );
        files.push(write(dir.path(), &format!("gen{i}.837"), &doc, 500 + i));
    }
    let bad = pyx12_failures(&files);
    assert!(
        bad.is_empty(),
        "pyx12 rejected generated 837Ps:\n{}",
        bad.join("\n")
    );
}

#[test]
fn linuxforhealth_reads_every_270_and_276_billd_writes() {
    let dir = tempfile::tempdir().unwrap();
    let docs = [
        (
            "subscriber.270",
            document(
                Body::EligibilityInquiry(inquiry_270("W199999999", false, &["30"])),
                "HS",
                "005010X279A1",
            ),
        ),
        (
            "dependent.270",
            document(
                Body::EligibilityInquiry(inquiry_270("W188888888", true, &["30", "1", "33"])),
                "HS",
                "005010X279A1",
            ),
        ),
        (
            "claim.276",
            document(
                Body::StatusRequest(request_276("PCN00001", 12_550)),
                "HR",
                "005010X212",
            ),
        ),
        (
            "claim2.276",
            document(
                Body::StatusRequest(request_276("PCN00002", 9)),
                "HR",
                "005010X212",
            ),
        ),
    ];
    let files: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, (n, d))| write(dir.path(), n, d, 900 + i as u64))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lfh_read.py");
    let out = Command::new(venv_bin("python"))
        .arg(script)
        .args(&files)
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for f in &files {
        let line = text
            .lines()
            .find(|l| l.contains(&*f.display().to_string()))
            .unwrap_or_else(|| panic!("no verdict for {}: {text}{stderr}", f.display()));
        assert!(
            line.starts_with("OK "),
            "linuxforhealth-x12 rejected what billd wrote: {line}\n{stderr}"
        );
        assert!(
            line.ends_with(" 1")
                || line
                    .split(' ')
                    .next_back()
                    .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1)),
            "{line}"
        );
    }
}

#[test]
fn the_pyx12_check_does_reject_a_broken_837p() {
    // Guards the harness itself: a claim without its billing provider
    // address (N3/N4 required in 2010AA) and with an SV1 unit basis pyx12
    // does not know must be judged "Failure".
    let dir = tempfile::tempdir().unwrap();
    let mut p = professional(&[ClaimSpec::default()]);
    p.billing_providers[0]
        .billing
        .other
        .retain(|s| s.id != "N3" && s.id != "N4");
    p.billing_providers[0].subscribers[0].claims[0].lines[0]
        .sv1
        .unit_basis = "ZZ".into();
    let doc = document(Body::Professional(p), "HC", "005010X222A1");
    let mut numbers = SequentialControlNumbers::starting_at(7);
    let text = write_document(&doc, &WriteOptions::default(), &mut numbers).unwrap();
    let f = dir.path().join("broken.837");
    std::fs::write(&f, text).unwrap();
    let bad = pyx12_failures(std::slice::from_ref(&f));
    assert_eq!(bad.len(), 1, "pyx12 accepted a broken 837P");
    assert!(bad[0].contains("Failure"), "{}", bad[0]);
}

#[test]
fn the_linuxforhealth_check_does_reject_a_broken_270() {
    // Guards the harness: a 270 whose subscriber level lacks its NM1 name
    // loop must not read.
    let dir = tempfile::tempdir().unwrap();
    let mut h = inquiry_270("W199999999", false, &["30"]);
    h.levels[0].children[0].children[0].names.clear();
    let doc = document(Body::EligibilityInquiry(h), "HS", "005010X279A1");
    let mut numbers = SequentialControlNumbers::starting_at(7);
    let f = dir.path().join("broken.270");
    std::fs::write(
        &f,
        write_document(&doc, &WriteOptions::default(), &mut numbers).unwrap(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lfh_read.py");
    let out = Command::new(venv_bin("python"))
        .arg(script)
        .arg(&f)
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("FAIL "),
        "linuxforhealth-x12 accepted a broken 270: {text}"
    );
}
