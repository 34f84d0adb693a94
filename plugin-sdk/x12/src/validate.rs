//! Everything billd can say about a file before it acts on it: envelope and
//! syntax problems from the reader, structure problems from the typed
//! models, code values where the list is known (guide-internal lists are
//! errors; the dated external lists from pyx12 only warn), NPI check digits,
//! HL hierarchy numbering, and 835 balancing.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use crate::balance::{Imbalance, Rule, balance};
use crate::document::{Body, Parsed, Transaction, from_raw};
use crate::error::{Issue, IssueKind, Loc, ReadError};
use crate::reader::{Mode, RawDocument, RawTransaction, read_raw};
use crate::segment::{Element, Located, short_eq};

/// All findings for `input`, sorted by location, and the parsed document.
///
/// # Errors
/// Only when no interchange can be read at all.
pub fn validate(input: &[u8]) -> Result<Parsed, ReadError> {
    let raw = read_raw(input, Mode::Lenient)?;
    let mut extra = Vec::new();
    check_raw(&raw, &mut extra);
    let mut parsed = from_raw(raw, Mode::Lenient)?;
    for (ii, ic) in parsed.document.interchanges.iter().enumerate() {
        for g in &ic.groups {
            for t in &g.transactions {
                if let Body::Remittance(r) = &t.body {
                    imbalance_issues(ii as u32 + 1, t, &balance(r), &mut extra);
                }
            }
        }
    }
    parsed.issues.extend(extra);
    parsed
        .issues
        .sort_by_key(|i| (i.loc.interchange, i.loc.segment, i.loc.element));
    Ok(parsed)
}

/// The located errors for the imbalances found in transaction `t` of
/// interchange `interchange` (as [`validate`] reports them).
pub fn imbalance_issues(
    interchange: u32,
    t: &Transaction,
    imbalances: &[Imbalance],
    out: &mut Vec<Issue>,
) {
    for imb in imbalances {
        let (number, in_txn, id) = match imb.rule {
            Rule::Payment => (t.pos.number.map(|n| n + 1), Some(2), "BPR"),
            Rule::Claim => (imb.pos.number, imb.pos.in_transaction, "CLP"),
            Rule::Service => (imb.pos.number, imb.pos.in_transaction, "SVC"),
        };
        let mut rule = imb.rule.describe().to_owned();
        if let Some(c) = imb.claim {
            rule.push_str(&format!(" (claim {}", c + 1));
            if let Some(s) = imb.service {
                rule.push_str(&format!(", line {}", s + 1));
            }
            rule.push(')');
        }
        out.push(Issue::error(
            Loc {
                interchange,
                segment: number.unwrap_or(0),
                in_transaction: in_txn,
                segment_id: id.into(),
                element: None,
            },
            IssueKind::Imbalance {
                rule,
                expected: imb.expected_text(),
                found: imb.found_text(),
            },
        ));
    }
}

/// An external (pyx12) code list by name: `claim_status`,
/// `claim_status_cat`, `entity_id`, `pos`, `service_type`, `states`,
/// `country`, `currency`, `remark_code`.
#[must_use]
pub fn external_codes(list: &str) -> Option<&'static HashSet<&'static str>> {
    static LISTS: OnceLock<HashMap<&'static str, HashSet<&'static str>>> = OnceLock::new();
    LISTS
        .get_or_init(|| {
            let mut m: HashMap<&'static str, HashSet<&'static str>> = HashMap::new();
            for line in include_str!("../data/pyx12_external_codes.csv")
                .lines()
                .skip(1)
            {
                let mut f = line.split(',');
                let (Some(id), Some(code)) = (f.next(), f.next_back()) else {
                    continue;
                };
                m.entry(id).or_default().insert(code.trim());
            }
            m
        })
        .get(list)
}

/// True when `npi` is 10 digits with a valid Luhn check digit (prefix 80840).
#[must_use]
pub fn npi_valid(npi: &str) -> bool {
    if npi.len() != 10 || !npi.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u32> = format!("80840{npi}")
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

enum List {
    Guide(&'static [&'static str], &'static str),
    External(&'static str),
}

/// (set, segment, element, component, list). Component 0 = the whole value;
/// repeated elements are checked repetition by repetition.
type CodeRule = (&'static str, &'static str, usize, usize, List);

fn rules() -> &'static [CodeRule] {
    use List::{External, Guide};
    static R: OnceLock<Vec<CodeRule>> = OnceLock::new();
    R.get_or_init(|| {
        vec![
            (
                "835",
                "BPR",
                1,
                0,
                Guide(
                    &["C", "D", "H", "I", "P", "U", "X"],
                    "BPR01 transaction handling code",
                ),
            ),
            (
                "835",
                "BPR",
                3,
                0,
                Guide(&["C", "D"], "BPR03 credit/debit flag"),
            ),
            (
                "835",
                "BPR",
                4,
                0,
                Guide(&["ACH", "BOP", "CHK", "FWT", "NON"], "BPR04 payment method"),
            ),
            (
                "835",
                "CLP",
                2,
                0,
                Guide(
                    &[
                        "1", "2", "3", "4", "5", "10", "13", "15", "16", "17", "19", "20", "21",
                        "22", "23", "25",
                    ],
                    "CLP02 claim status code",
                ),
            ),
            (
                "835",
                "CAS",
                1,
                0,
                Guide(
                    &["CO", "CR", "OA", "PI", "PR"],
                    "CAS01 claim adjustment group code",
                ),
            ),
            ("837", "CLM", 5, 1, External("pos")),
            (
                "837",
                "CLM",
                5,
                3,
                Guide(&["1", "6", "7", "8"], "CLM05-3 claim frequency code"),
            ),
            (
                "837",
                "SV1",
                1,
                1,
                Guide(
                    &["ER", "HC", "IV", "WK"],
                    "SV101-1 product/service id qualifier",
                ),
            ),
            ("837", "SV1", 3, 0, Guide(&["MJ", "UN"], "SV103 unit basis")),
            (
                "837",
                "SBR",
                1,
                0,
                Guide(
                    &["A", "B", "C", "D", "E", "F", "G", "H", "P", "S", "T", "U"],
                    "SBR01 payer responsibility code",
                ),
            ),
            ("270", "EQ", 1, 0, External("service_type")),
            ("271", "EB", 3, 0, External("service_type")),
            (
                "271",
                "EB",
                12,
                0,
                Guide(&["N", "U", "W", "Y"], "EB12 in plan network indicator"),
            ),
            (
                "271",
                "EB",
                1,
                0,
                Guide(
                    &[
                        "1", "2", "3", "4", "5", "6", "7", "8", "A", "B", "C", "CB", "D", "E", "F",
                        "G", "H", "I", "J", "K", "L", "M", "MC", "N", "O", "P", "Q", "R", "S", "T",
                        "U", "V", "W", "X", "Y",
                    ],
                    "EB01 eligibility or benefit information code",
                ),
            ),
            ("277", "STC", 1, 1, External("claim_status_cat")),
            ("277", "STC", 1, 2, External("claim_status")),
            ("277", "STC", 1, 3, External("entity_id")),
        ]
    })
}

/// Component `component` (0 or 1 = the first) of each repetition of `el`,
/// borrowed ("" where absent).
fn values(el: &Element, component: usize) -> impl Iterator<Item = &str> {
    fn nth(c: &[String], i: usize) -> &str {
        c.get(i).map_or("", String::as_str)
    }
    let i = component.max(1) - 1;
    let (one, many): (Option<&str>, &[Vec<String>]) = match el {
        Element::Simple(s) => (Some(if i == 0 { s.as_str() } else { "" }), &[]),
        Element::Composite(c) => (Some(nth(c, i)), &[]),
        Element::Repeated(r) => (None, r.as_slice()),
    };
    one.into_iter().chain(many.iter().map(move |c| nth(c, i)))
}

fn check_raw(raw: &RawDocument, out: &mut Vec<Issue>) {
    for ic in &raw.interchanges {
        for g in &ic.groups {
            for t in &g.transactions {
                check_transaction(ic.index, t, out);
            }
        }
    }
}

/// Code values, NPI check digits and HL numbering of one transaction set
/// read in interchange `interchange` (the checks [`validate`] adds to the
/// reader's and the typed models' findings, before balancing).
pub fn check_transaction(interchange: u32, t: &RawTransaction, out: &mut Vec<Issue>) {
    let set = t.st.segment.get(1);
    let loc = |s: &Located, el: u16| Loc {
        interchange,
        segment: s.number,
        in_transaction: s.in_transaction,
        segment_id: s.segment.id.to_string(),
        element: Some(el),
    };
    let mut hl_ids: HashSet<&str> = HashSet::new();
    let mut expected_hl = 1u32;
    let set_rules: Vec<&CodeRule> = rules().iter().filter(|r| r.0 == set).collect();
    for s in &t.body {
        for (_, id, el, comp, list) in set_rules.iter().copied() {
            if !short_eq(&s.segment.id, id) {
                continue;
            }
            let Some(e) = s.segment.element(*el) else {
                continue;
            };
            for v in values(e, *comp) {
                if v.is_empty() {
                    continue;
                }
                match list {
                    List::Guide(codes, name) if !codes.iter().any(|c| short_eq(c, v)) => {
                        out.push(Issue::error(
                            loc(s, *el as u16),
                            IssueKind::BadCode {
                                code: v.to_owned(),
                                list: (*name).into(),
                            },
                        ));
                    }
                    List::External(name)
                        if external_codes(name).is_some_and(|c| !c.contains(v)) =>
                    {
                        out.push(Issue::warning(
                            loc(s, *el as u16),
                            IssueKind::BadCode {
                                code: v.to_owned(),
                                list: format!("{name} code (pyx12 list, c.2014)"),
                            },
                        ));
                    }
                    _ => {}
                }
            }
        }
        let seg = &s.segment;
        if seg.id == "NM1" && seg.get(8) == "XX" && !npi_valid(seg.get(9)) {
            out.push(Issue::error(
                loc(s, 9),
                IssueKind::BadCode {
                    code: "NPI".into(),
                    list: "NPI with a valid check digit".into(),
                },
            ));
        }
        if seg.id == "HL" {
            let id = seg.get(1);
            if id.parse::<u32>().ok() != Some(expected_hl) {
                out.push(Issue::error(
                    loc(s, 1),
                    IssueKind::Hierarchy {
                        reason: format!("HL01 {id} where {expected_hl} is expected"),
                    },
                ));
            }
            expected_hl = id.parse::<u32>().map_or(expected_hl + 1, |n| n + 1);
            let parent = seg.get(2);
            if !parent.is_empty() && !hl_ids.contains(parent) {
                out.push(Issue::error(
                    loc(s, 2),
                    IssueKind::Hierarchy {
                        reason: format!("HL02 parent {parent} is not an earlier HL01"),
                    },
                ));
            }
            hl_ids.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npi_check_digit() {
        assert!(npi_valid("1234567893"));
        assert!(!npi_valid("1234567890"));
        assert!(!npi_valid("123456789"));
    }

    #[test]
    fn external_lists_load() {
        assert!(external_codes("pos").unwrap().contains("11"));
        assert!(external_codes("claim_status_cat").unwrap().contains("A1"));
        assert!(external_codes("nope").is_none());
    }

    #[test]
    fn bad_codes_hl_and_balance_are_found() {
        let x = "ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20240101*1200*1*X*005010X221A1~ST*835*0001~BPR*I*80*C*XXX************20240101~TRN*1*T1*1~N1*PR*PAYER~N1*PE*CLINIC*XX*1234567893~LX*1~CLP*A*99*100*80**12~CAS*ZZ*45*10~SE*9*0001~GE*1*1~IEA*1*000000001~";
        let p = validate(x.as_bytes()).unwrap();
        let got: Vec<String> = p.issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "error: interchange 1, segment 4 (BPR) [transaction segment 2], element 04: code XXX is not a valid BPR04 payment method",
                "error: interchange 1, segment 9 (CLP) [transaction segment 7]: CLP03 - CLP04 must equal the claim's CAS adjustments (claim and line level) (claim 1): expected 20.00, found 10.00",
                "error: interchange 1, segment 9 (CLP) [transaction segment 7], element 02: code 99 is not a valid CLP02 claim status code",
                "error: interchange 1, segment 10 (CAS) [transaction segment 8], element 01: code ZZ is not a valid CAS01 claim adjustment group code",
            ]
        );
    }
}
