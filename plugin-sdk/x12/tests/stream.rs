//! The streaming reader against the whole-file functions: on every fixture
//! and on crafted envelope errors, read through sources that hand out a few
//! bytes at a time, `Transactions::parse` (strict and lenient) and
//! `Transactions::validate` give the same transactions and the same
//! findings in the same order as `parse` and `validate`; each set comes
//! with its own findings; and memory does not grow with the number of
//! transaction sets.

mod common;

use std::io::{self, Read};

use billd_x12::balance::{Imbalance, balance};
use billd_x12::document::{Document, Group, InterchangeHeader, Parsed, Transaction};
use billd_x12::stream::{StreamError, Transactions};
use billd_x12::{Body, Issue, Mode, ReadError, parse, validate::validate};

/// A source that hands out at most `step` bytes per read, so segments and
/// ISAs straddle refills.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

type Flat = Vec<(InterchangeHeader, Group, Transaction)>;

fn flatten(doc: &Document) -> Flat {
    let mut out = Vec::new();
    for ic in &doc.interchanges {
        for g in &ic.groups {
            let header = Group {
                transactions: Vec::new(),
                ..g.clone()
            };
            for t in &g.transactions {
                out.push((ic.header.clone(), header.clone(), t.clone()));
            }
        }
    }
    out
}

/// Everything a stream yields, in the whole-file functions' shape; checks
/// the totals and that each 835's imbalances are its balance check.
fn run<R: Read>(mut s: Transactions<R>) -> Result<(Flat, Vec<Issue>), ReadError> {
    let (mut flat, mut issues, mut imbalances) = (Vec::new(), Vec::new(), Vec::new());
    let mut balanced: Vec<Imbalance> = Vec::new();
    for item in &mut s {
        let item = item.unwrap();
        if !item.imbalances.is_empty()
            && let Body::Remittance(r) = &item.transaction.body
        {
            balanced.extend(balance(r));
        }
        imbalances.extend(item.imbalances);
        flat.push((
            (*item.header).clone(),
            (*item.group).clone(),
            item.transaction,
        ));
        issues.extend(item.issues);
    }
    assert_eq!(imbalances, balanced);
    match s.finish() {
        Ok(f) => {
            issues.extend(f.issues);
            let errors = issues.iter().filter(|i| i.is_error()).count() as u64;
            assert_eq!(
                (f.errors, f.warnings),
                (errors, issues.len() as u64 - errors)
            );
            assert_eq!(f.transactions, flat.len() as u64);
            Ok((flat, issues))
        }
        Err(StreamError::Read(e)) => Err(e),
        Err(StreamError::Io(e)) => panic!("{e}"),
    }
}

fn whole(p: Result<Parsed, ReadError>) -> Result<(Flat, Vec<Issue>), ReadError> {
    p.map(|p| (flatten(&p.document), p.issues))
}

/// Streams `bytes` in reads of `step` bytes in every mode and compares
/// with the whole-file functions; the failing mode in the panic message.
fn same_as_whole_file(bytes: &[u8], step: usize, what: &str) {
    let src = || Trickle { data: bytes, step };
    for mode in [Mode::Strict, Mode::Lenient] {
        assert!(
            run(Transactions::parse(src(), mode)) == whole(parse(bytes, mode)),
            "{what}: parse {mode:?} in reads of {step} bytes differs"
        );
    }
    assert!(
        run(Transactions::validate(src())) == whole(validate(bytes)),
        "{what}: validate in reads of {step} bytes differs"
    );
}

#[test]
fn streaming_equals_the_whole_file_functions_on_every_fixture() {
    let mut all = Vec::new();
    common::fixture_files(&common::fixtures_root(), &mut all);
    assert!(all.len() > 150, "fixtures missing");
    for path in all {
        let bytes = std::fs::read(&path).unwrap();
        let steps: &[usize] = if bytes.len() < 20_000 {
            &[1, 7, 4096, usize::MAX]
        } else {
            &[997, usize::MAX]
        };
        for &step in steps {
            same_as_whole_file(&bytes, step, &path.display().to_string());
        }
    }
}

const ISA: &str = "ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*P*:~";
const GS: &str = "GS*HP*A*B*20240101*1200*1*X*005010X221A1~";
/// An 835 whose BPR02 does not balance, with a bad BPR04, a claim that does
/// not balance and a bad CLP02 (findings tie at one segment).
const BAD_835: &str = "ST*835*0001~BPR*I*70*C*XXX************20240101~TRN*1*T1*1~N1*PR*PAYER~N1*PE*CLINIC*XX*1234567893~LX*1~CLP*A*99*100*80**12~CAS*ZZ*45*10~SE*9*0001~";

fn good_835() -> String {
    BAD_835
        .replace("BPR*I*70*C*XXX", "BPR*I*80*C*CHK")
        .replace("CAS*ZZ*45*10", "CAS*CO*45*20")
        .replace("CLP*A*99", "CLP*A*1")
}

fn cases() -> Vec<String> {
    let ok = good_835();
    let no_se = |t: &str| t.replace("SE*9*0001~", "");
    vec![
        format!("{ISA}{GS}{BAD_835}GE*1*1~IEA*1*000000001~"),
        // Two sets, the second with a wrong SE01, then a wrong GE01.
        format!(
            "{ISA}{GS}{ok}{}GE*1*1~IEA*1*000000001~",
            BAD_835.replace("SE*9", "SE*8")
        ),
        // A missing SE closed by the next ST, by GS, by GE, by IEA, by EOF.
        format!("{ISA}{GS}{}{ok}GE*2*1~IEA*1*000000001~", no_se(BAD_835)),
        format!("{ISA}{GS}{}{GS}{ok}GE*1*1~IEA*2*000000001~", no_se(&ok)),
        format!("{ISA}{GS}{}GE*1*1~IEA*1*000000001~", no_se(BAD_835)),
        format!("{ISA}{GS}{}IEA*1*000000001~", no_se(&ok)),
        format!("{ISA}{GS}{}", no_se(BAD_835)),
        // ST outside a group; an ISA inside an open interchange.
        format!("{ISA}{BAD_835}IEA*1*000000001~"),
        format!("{ISA}{GS}{ok}{ISA}{GS}{BAD_835}GE*1*1~IEA*1*000000001~"),
        // Data before the first ISA and after an IEA.
        format!(
            "junk~{ISA}{GS}{ok}GE*1*1~IEA*1*000000001~junk~{ISA}{GS}{BAD_835}GE*1*1~IEA*1*000000001~"
        ),
        format!("{ISA}{GS}{ok}GE*1*1~IEA*1*000000001~trailing"),
        "no interchange here~".to_owned(),
        "  ".to_owned(),
    ]
}

#[test]
fn streaming_orders_findings_as_the_whole_file_functions() {
    for case in cases() {
        for step in [1, 5, usize::MAX] {
            same_as_whole_file(case.as_bytes(), step, &case);
        }
    }
}

#[test]
fn each_set_comes_with_its_own_findings() {
    let case = &cases()[1];
    let mut s = Transactions::validate(case.as_bytes());
    let first = s.next().unwrap().unwrap();
    assert_eq!(first.issues, vec![], "the first set balances");
    assert!(!first.has_errors());
    let second = s.next().unwrap().unwrap();
    let kinds: Vec<String> = second.issues.iter().map(|i| i.kind.to_string()).collect();
    assert_eq!(second.imbalances.len(), 2);
    assert_eq!(
        kinds,
        vec![
            "BPR02 must equal the sum of CLP04 less PLB adjustments: expected 80.00, found 70.00",
            "code XXX is not a valid BPR04 payment method",
            "CLP03 - CLP04 must equal the claim's CAS adjustments (claim and line level) (claim 1): expected 20.00, found 10.00",
            "code 99 is not a valid CLP02 claim status code",
            "code ZZ is not a valid CAS01 claim adjustment group code",
            "SE01 says 8, counted 9",
        ]
    );
    assert!(s.next().is_none());
    let end = s.finish().unwrap();
    let kinds: Vec<String> = end.issues.iter().map(|i| i.kind.to_string()).collect();
    assert_eq!(kinds, vec!["GE01 says 1, counted 2"]);
    assert_eq!((end.transactions, end.errors, end.warnings), (2, 7, 0));
}
