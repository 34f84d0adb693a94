//! The files the SFTP transport exchanges besides the placement file: the
//! recall file (layout `BCR1`, written) and the agency's update file
//! (layout `BCU1`, read), pipe-delimited like `BCP1`, one record a line
//! (LF), documented in the crate's README.
//!
//! ```text
//! H|BCR1|{client}|{file date YYYYMMDD}|{count}
//! R|{client}|{debtor ref}|{agency account or empty}|{reason PIF|DSP|BKR|FAS|REQ}
//! T|{count}
//!
//! H|BCU1|{client}|{file date YYYYMMDD}|{count}
//! U|{seq}|{code}|{debtor ref}|{agency account}|{date YYYYMMDD}|{gross}|{fee}|{net}|{reason}
//! T|{count}
//! ```
//!
//! An update file is read strictly and whole: a wrong header, trailer or
//! count, another client's number, a record of the wrong shape or a
//! missing final line feed refuses the file (naming the line and field),
//! so no update of a broken file is applied and the file stays on the
//! server for a person.

use billd_plugin_sdk::types::Date;

use crate::layout::is_reference;
use crate::wire::{RecallLine, WireUpdate};

/// The recall file's layout name.
pub const RECALL_LAYOUT: &str = "BCR1";

/// The update file's layout name.
pub const UPDATE_LAYOUT: &str = "BCU1";

/// Fields of an update record, the record type included.
pub const UPDATE_FIELDS: usize = 10;

/// The recall file for `recalls` (in debtor-reference order).
#[must_use]
pub fn recall_file(client: &str, file_date: &Date, recalls: &[RecallLine]) -> String {
    let day = file_date.to_iso().replace('-', "");
    let mut ordered: Vec<&RecallLine> = recalls.iter().collect();
    ordered.sort_by(|a, b| a.debtor_ref.cmp(&b.debtor_ref));
    let mut out = format!("H|{RECALL_LAYOUT}|{client}|{day}|{}\n", recalls.len());
    for r in ordered {
        out.push_str(&format!(
            "R|{client}|{}|{}|{}\n",
            r.debtor_ref,
            r.agency_account.as_deref().unwrap_or(""),
            r.reason
        ));
    }
    out.push_str(&format!("T|{}\n", recalls.len()));
    out
}

/// An eight-digit date as `YYYY-MM-DD`.
fn iso_day(s: &str) -> Option<String> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]))
}

/// An optional amount in cents (empty: none).
fn cents(s: &str) -> Result<Option<i64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be whole cents (digits)".into());
    }
    s.parse().map(Some).map_err(|_| "out of range".into())
}

/// Reads an update file of `client`'s: its updates in file order.
///
/// # Errors
/// `line N: ...` (and the field, by number and name) of the first problem.
pub fn read_updates(text: &str, client: &str) -> Result<Vec<WireUpdate>, String> {
    if !text.ends_with('\n') {
        return Err("the file does not end with a line feed (cut short?)".into());
    }
    let lines: Vec<&str> = text[..text.len() - 1].split('\n').collect();
    let at = |n: usize, what: String| format!("line {n}: {what}");
    let header: Vec<&str> = lines[0].split('|').collect();
    if header.len() != 5 || header[0] != "H" || header[1] != UPDATE_LAYOUT {
        return Err(at(
            1,
            format!("the header must be H|{UPDATE_LAYOUT}|client|date|count"),
        ));
    }
    if header[2] != client {
        return Err(at(
            1,
            "field 3 (client): not this practice's client number".into(),
        ));
    }
    if iso_day(header[3]).is_none() {
        return Err(at(1, "field 4 (file date): must be YYYYMMDD".into()));
    }
    let count: usize = header[4]
        .parse()
        .map_err(|_| at(1, "field 5 (count): must be a number".into()))?;
    if lines.len() < 2 {
        return Err(at(1, "the trailer T|count is missing".into()));
    }
    let last = lines.len();
    let trailer: Vec<&str> = lines[last - 1].split('|').collect();
    if trailer.len() != 2 || trailer[0] != "T" {
        return Err(at(last, "the trailer must be T|count".into()));
    }
    let body = &lines[1..last - 1];
    if trailer[1] != count.to_string() || body.len() != count {
        return Err(at(
            last,
            format!(
                "the counts disagree: header {count}, trailer {}, records {}",
                trailer[1],
                body.len()
            ),
        ));
    }
    const NAMES: [&str; UPDATE_FIELDS] = [
        "record type",
        "seq",
        "code",
        "debtor ref",
        "agency account",
        "date",
        "gross cents",
        "fee cents",
        "net cents",
        "reason",
    ];
    let mut out = Vec::with_capacity(count);
    for (i, line) in body.iter().enumerate() {
        let n = i + 2;
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != UPDATE_FIELDS || f[0] != "U" {
            return Err(at(
                n,
                format!("an update record is U and {} fields", UPDATE_FIELDS - 1),
            ));
        }
        let field = |k: usize, what: &str| at(n, format!("field {} ({}): {what}", k + 1, NAMES[k]));
        let seq = f[1].parse().map_err(|_| field(1, "must be a number"))?;
        if !(2..=4).contains(&f[2].len()) || !f[2].bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(field(2, "must be an event code (2-4 capital letters)"));
        }
        if !is_reference(f[3], 40) {
            return Err(field(3, "must be a debtor reference"));
        }
        if !f[4].is_empty() && !is_reference(f[4], 40) {
            return Err(field(4, "must be an agency account number or empty"));
        }
        let date = iso_day(f[5]).ok_or_else(|| field(5, "must be YYYYMMDD"))?;
        let amount = |k: usize| cents(f[k]).map_err(|e| field(k, &e));
        out.push(WireUpdate {
            seq,
            code: f[2].to_owned(),
            debtor_ref: f[3].to_owned(),
            agency_account: (!f[4].is_empty()).then(|| f[4].to_owned()),
            date,
            gross_cents: amount(6)?,
            fee_cents: amount(7)?,
            net_cents: amount(8)?,
            reason: (!f[9].is_empty()).then(|| f[9].to_owned()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "H|BCU1|BILLD01|20261201|2\n\
        U|7|PAY|A1|AG000001|20261130|5000|1000|4000|\n\
        U|8|CAN|A2||20261201||||placement refused: line 3: field 8\n\
        T|2\n";

    #[test]
    fn an_update_file_reads_into_the_agencys_updates() {
        let u = read_updates(GOOD, "BILLD01").unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].seq, u[0].code.as_str()), (7, "PAY"));
        assert_eq!(u[0].agency_account.as_deref(), Some("AG000001"));
        assert_eq!(u[0].date, "2026-11-30");
        assert_eq!(
            (u[0].gross_cents, u[0].fee_cents, u[0].net_cents),
            (Some(5000), Some(1000), Some(4000))
        );
        assert_eq!(u[1].agency_account, None);
        assert_eq!(u[1].gross_cents, None);
        assert_eq!(
            u[1].reason.as_deref(),
            Some("placement refused: line 3: field 8")
        );
    }

    #[test]
    fn a_broken_update_file_is_refused_whole_naming_line_and_field() {
        let cases = [
            (GOOD.trim_end(), "line feed"),
            (
                &GOOD.replace("BILLD01", "OTHER")[..],
                "line 1: field 3 (client)",
            ),
            (&GOOD.replace("T|2", "T|3")[..], "counts disagree"),
            (
                &GOOD.replace("|5000|", "|50.00|")[..],
                "line 2: field 7 (gross cents)",
            ),
            (
                &GOOD.replace("20261130", "2026-11-30")[..],
                "line 2: field 6 (date)",
            ),
            (
                &GOOD.replace("U|8|CAN|A2|", "U|8|CAN|A 2|")[..],
                "line 3: field 4 (debtor ref)",
            ),
            (&GOOD.replace("H|BCU1", "H|BCP1")[..], "line 1: the header"),
            (
                &GOOD.replace("|4000|\n", "|4000\n")[..],
                "line 2: an update record",
            ),
        ];
        for (text, wanted) in cases {
            let err = read_updates(text, "BILLD01").unwrap_err();
            assert!(err.contains(wanted), "{wanted}: {err}");
        }
    }

    #[test]
    fn a_recall_file_lists_the_accounts_in_order_with_counts() {
        let lines = [
            RecallLine {
                debtor_ref: "B2".into(),
                agency_account: None,
                reason: "DSP",
            },
            RecallLine {
                debtor_ref: "A1".into(),
                agency_account: Some("AG000001".into()),
                reason: "PIF",
            },
        ];
        let day = Date::new(2026, 12, 3);
        assert_eq!(
            recall_file("BILLD01", &day, &lines),
            "H|BCR1|BILLD01|20261203|2\nR|BILLD01|A1|AG000001|PIF\nR|BILLD01|B2||DSP\nT|2\n"
        );
    }
}
