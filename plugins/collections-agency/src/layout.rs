//! The placement file: layout `BCP1`, pipe-delimited, one record a line
//! (LF), documented field by field in the crate's README.
//!
//! ```text
//! H|BCP1|{client}|{file date YYYYMMDD}|{detail count}|{total cents}
//! D|{client}|{debtor ref}|{last}|{first}|{middle}|{suffix}|{address 1}|{address 2}|{city}|{state}|{ZIP}|{phone}|{birth date}|{date of debt}|{amount due cents}|{last payment date}|{services from}|{services to}
//! T|{detail count}|{total cents}
//! ```
//!
//! Values are never escaped: a value holding `|`, a line break or another
//! control character, or longer than its field allows, refuses its
//! account (a receipt naming the field, never the value) and the other
//! accounts go. Nothing clinical is in the layout: no diagnosis, no
//! procedure, no provider, no payer, no email.

use billd_plugin_sdk::collections::Placement;
use billd_plugin_sdk::types::Date;

/// The layout's name, in the header.
pub const LAYOUT: &str = "BCP1";

/// Fields of a detail record, the record type included.
pub const DETAIL_FIELDS: usize = 19;

/// Why one account cannot go in the file: the contract field at fault and
/// what is wrong (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaceable {
    /// The contract's field, e.g. `debtor.address.line1`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// A client number or debtor reference: 1 to `max` letters, digits, `-`,
/// `_` or `.`.
#[must_use]
pub fn is_reference(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A free-text value: trimmed, at most `max` characters, no `|` and no
/// control character; `required` refuses an empty one.
fn text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
    required: bool,
) -> Result<String, Unplaceable> {
    let v = value.unwrap_or_default().trim();
    let bad = |reason: &str| Unplaceable {
        field,
        reason: reason.to_owned(),
    };
    if v.is_empty() && required {
        return Err(bad("is empty"));
    }
    if v.contains('|') {
        return Err(bad("contains `|`, the layout's delimiter"));
    }
    if v.chars().any(char::is_control) {
        return Err(bad("contains a line break or another control character"));
    }
    if v.chars().count() > max {
        return Err(bad(&format!("is longer than {max} characters")));
    }
    Ok(v.to_owned())
}

/// `YYYYMMDD` of a date that exists.
fn date(field: &'static str, d: &Date) -> Result<String, Unplaceable> {
    let iso = d.to_iso();
    Date::parse_iso(&iso)
        .map(|_| iso.replace('-', ""))
        .ok_or(Unplaceable {
            field,
            reason: "is not a calendar date".into(),
        })
}

/// A US ZIP code as 5 or 9 digits (`12345-6789` loses its hyphen).
fn zip(value: &str) -> Result<String, Unplaceable> {
    let v = value.trim();
    let digits: String = v.chars().filter(|c| *c != '-').collect();
    let ok = matches!(digits.len(), 5 | 9)
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (v.len() == digits.len() || (v.len() == 10 && &v[5..6] == "-"));
    if ok {
        Ok(digits)
    } else {
        Err(Unplaceable {
            field: "debtor.address.postal-code",
            reason: "is not a 5 or 9 digit ZIP code".into(),
        })
    }
}

/// A US phone number as its 10 digits (punctuation and a leading 1
/// dropped); `None` for anything else, which is left out of the file.
#[must_use]
pub fn phone(value: &str) -> Option<String> {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    let punctuation_only = value
        .chars()
        .all(|c| c.is_ascii_digit() || " ()-.+".contains(c));
    let ten = match digits.len() {
        10 => digits,
        11 if digits.starts_with('1') => digits[1..].to_owned(),
        _ => return None,
    };
    punctuation_only.then_some(ten)
}

/// One detail record (without its line break), or why the account cannot
/// be placed. The phone is left empty when it is not a 10-digit number.
///
/// # Errors
/// [`Unplaceable`] naming the first field at fault.
pub fn detail(client: &str, p: &Placement) -> Result<String, Unplaceable> {
    if !is_reference(&p.account_id, 30) {
        return Err(Unplaceable {
            field: "account-id",
            reason: "is not 1-30 letters, digits, - _ or .".into(),
        });
    }
    if p.balance <= 0 {
        return Err(Unplaceable {
            field: "balance",
            reason: "must be more than zero".into(),
        });
    }
    let n = &p.debtor.name;
    let a = &p.debtor.address;
    let state = text("debtor.address.state", Some(&a.state), 2, true)?;
    if state.len() != 2 || !state.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Unplaceable {
            field: "debtor.address.state",
            reason: "is not a two-letter state code".into(),
        });
    }
    let from = date("services-from", &p.services_from)?;
    let to = date("services-to", &p.services_to)?;
    if from > to {
        return Err(Unplaceable {
            field: "services-to",
            reason: "is before services-from".into(),
        });
    }
    let fields = [
        "D".to_owned(),
        client.to_owned(),
        p.account_id.clone(),
        text("debtor.name.last", Some(&n.last), 35, true)?,
        text("debtor.name.first", Some(&n.first), 35, true)?,
        text("debtor.name.middle", n.middle.as_deref(), 35, false)?,
        text("debtor.name.suffix", n.suffix.as_deref(), 10, false)?,
        text("debtor.address.line1", Some(&a.line1), 55, true)?,
        text("debtor.address.line2", a.line2.as_deref(), 55, false)?,
        text("debtor.address.city", Some(&a.city), 30, true)?,
        state.to_ascii_uppercase(),
        zip(&a.postal_code)?,
        p.debtor
            .phone
            .as_deref()
            .and_then(phone)
            .unwrap_or_default(),
        date("debtor.birth-date", &p.debtor.birth_date)?,
        date("first-statement-date", &p.first_statement_date)?,
        p.balance.to_string(),
        match &p.last_payment_date {
            Some(d) => date("last-payment-date", d)?,
            None => String::new(),
        },
        from,
        to,
    ];
    Ok(fields.join("|"))
}

/// A placement file: the header, the detail lines given (in the order of
/// their debtor references, so that the same accounts always make the same
/// file), the trailer.
#[must_use]
pub fn file(client: &str, file_date: &Date, details: &[(String, i64)]) -> String {
    let total: i64 = details.iter().map(|(_, cents)| cents).sum();
    let day = file_date.to_iso().replace('-', "");
    let mut out = format!("H|{LAYOUT}|{client}|{day}|{}|{total}\n", details.len());
    let mut ordered: Vec<&(String, i64)> = details.iter().collect();
    // Every line starts `D|{client}|{debtor ref}|`.
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    for (line, _) in ordered {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("T|{}|{total}\n", details.len()));
    out
}

/// The file dates of recent batches, by idempotency key, as the plugin
/// keeps them: a batch sent again (a retry, or billd resending after a
/// crash, perhaps on another day) carries the date of its first send, so
/// the agency sees the same file under the same key.
pub type FileDates = Vec<(String, String)>;

/// How many batches' file dates are kept.
pub const KEEP_FILE_DATES: usize = 500;

/// The file date of batch `key`: the one kept for it, else `today`, which
/// is kept (the oldest entries beyond [`KEEP_FILE_DATES`] dropped).
pub fn file_date(kept: &mut FileDates, key: &str, today: Date) -> Date {
    if let Some(d) = kept
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, d)| Date::parse_iso(d))
    {
        return d;
    }
    kept.retain(|(k, _)| k != key);
    kept.push((key.to_owned(), today.to_iso()));
    if kept.len() > KEEP_FILE_DATES {
        let extra = kept.len() - KEEP_FILE_DATES;
        kept.drain(..extra);
    }
    today
}

#[cfg(test)]
mod tests {
    use super::*;
    use billd_plugin_sdk::collections::Debtor;
    use billd_plugin_sdk::types::{Address, PersonName};

    pub(crate) fn placement(id: &str) -> Placement {
        Placement {
            account_id: id.into(),
            debtor: Debtor {
                name: PersonName {
                    last: "SMITH".into(),
                    first: "TED".into(),
                    middle: Some("Q".into()),
                    suffix: None,
                },
                birth_date: Date::new(1973, 5, 1),
                address: Address {
                    line1: "236 N MAIN ST".into(),
                    line2: None,
                    city: "MIAMI".into(),
                    state: "fl".into(),
                    postal_code: "33413-1234".into(),
                },
                phone: Some("(305) 555-0142".into()),
                email: Some("ted@example.org".into()),
            },
            balance: 12_345,
            first_statement_date: Date::new(2026, 7, 1),
            last_payment_date: None,
            services_from: Date::new(2026, 6, 10),
            services_to: Date::new(2026, 6, 12),
        }
    }

    #[test]
    fn a_detail_line_has_every_field_in_order_and_nothing_clinical() {
        let line = detail("CL-7", &placement("P00ab")).unwrap();
        assert_eq!(
            line,
            "D|CL-7|P00ab|SMITH|TED|Q||236 N MAIN ST||MIAMI|FL|334131234|3055550142|19730501|20260701|12345||20260610|20260612"
        );
        assert_eq!(line.split('|').count(), DETAIL_FIELDS);
        assert!(!line.contains("example.org"), "no email in the file");
    }

    #[test]
    fn the_file_has_a_header_and_a_trailer_that_count_and_total_the_details() {
        let a = detail("C1", &placement("A1")).unwrap();
        let mut p = placement("A2");
        p.balance = 55;
        p.last_payment_date = Some(Date::new(2026, 8, 3));
        let b = detail("C1", &p).unwrap();
        assert!(b.contains("|55|20260803|"), "{b}");
        let f = file(
            "C1",
            &Date::new(2026, 12, 2),
            &[(a.clone(), 12_345), (b.clone(), 55)],
        );
        let lines: Vec<&str> = f.lines().collect();
        assert_eq!(lines[0], "H|BCP1|C1|20261202|2|12400");
        assert_eq!(lines[1], a);
        assert_eq!(lines[2], b);
        assert_eq!(lines[3], "T|2|12400");
        assert_eq!(lines.len(), 4);
        assert!(f.ends_with('\n'));
        assert_eq!(
            file("C1", &Date::new(2026, 12, 2), &[]),
            "H|BCP1|C1|20261202|0|0\nT|0|0\n"
        );
    }

    #[test]
    fn a_delimiter_or_a_line_break_in_a_value_refuses_the_account_naming_the_field_not_the_value() {
        let mut p = placement("A1");
        p.debtor.address.line1 = "12 ELM ST | APT 3".into();
        let e = detail("C1", &p).unwrap_err();
        assert_eq!(e.field, "debtor.address.line1");
        assert!(!e.to_string().contains("ELM"), "{e}");
        let mut p = placement("A1");
        p.debtor.name.last = "SMITH\nD|C1|X".into();
        assert_eq!(detail("C1", &p).unwrap_err().field, "debtor.name.last");
        let mut p = placement("A1");
        p.debtor.address.line2 = Some("APT\r3".into());
        assert_eq!(detail("C1", &p).unwrap_err().field, "debtor.address.line2");
        let mut p = placement("A1");
        p.debtor.address.city = "X".repeat(31);
        let e = detail("C1", &p).unwrap_err();
        assert_eq!(e.field, "debtor.address.city");
        assert!(e.reason.contains("30"), "{e}");
    }

    #[test]
    fn required_and_coded_fields_are_checked() {
        let mut p = placement("A1");
        p.debtor.name.first = "  ".into();
        assert_eq!(detail("C1", &p).unwrap_err().field, "debtor.name.first");
        let mut p = placement("A1");
        p.debtor.address.state = "Florida".into();
        assert_eq!(detail("C1", &p).unwrap_err().field, "debtor.address.state");
        for bad in ["3341", "33413-12", "ABCDE", "334131234 "] {
            let mut p = placement("A1");
            p.debtor.address.postal_code = bad.into();
            let r = detail("C1", &p);
            if bad.trim() == "334131234" {
                assert!(r.is_ok(), "{bad}: trimmed");
            } else {
                assert_eq!(r.unwrap_err().field, "debtor.address.postal-code", "{bad}");
            }
        }
        let mut p = placement("A1");
        p.balance = 0;
        assert_eq!(detail("C1", &p).unwrap_err().field, "balance");
        let mut p = placement("A1");
        p.debtor.birth_date = Date::new(2026, 2, 30);
        assert_eq!(detail("C1", &p).unwrap_err().field, "debtor.birth-date");
        let mut p = placement("A1");
        p.services_to = Date::new(2026, 6, 1);
        assert_eq!(detail("C1", &p).unwrap_err().field, "services-to");
        let mut p = placement("A1");
        p.account_id = "P 1".into();
        assert_eq!(detail("C1", &p).unwrap_err().field, "account-id");
    }

    #[test]
    fn the_same_accounts_make_the_same_file_in_any_order() {
        let a = (detail("C1", &placement("A1")).unwrap(), 12_345);
        let b = (detail("C1", &placement("B2")).unwrap(), 12_345);
        let day = Date::new(2026, 12, 2);
        let f = file("C1", &day, &[b.clone(), a.clone()]);
        assert_eq!(f, file("C1", &day, &[a, b]));
        assert!(f.lines().nth(1).unwrap().starts_with("D|C1|A1|"), "{f}");
    }

    #[test]
    fn a_batch_sent_again_keeps_the_date_of_its_first_send() {
        let mut kept = FileDates::new();
        let first = Date::new(2026, 12, 2);
        let later = Date::new(2026, 12, 5);
        assert_eq!(file_date(&mut kept, "k1", first), first);
        assert_eq!(file_date(&mut kept, "k2", later), later);
        assert_eq!(file_date(&mut kept, "k1", later), first);
        assert_eq!(kept.len(), 2);
        for i in 0..KEEP_FILE_DATES {
            file_date(&mut kept, &format!("n{i}"), later);
        }
        assert_eq!(kept.len(), KEEP_FILE_DATES);
        assert_eq!(file_date(&mut kept, "k1", later), later, "forgotten by now");
    }

    #[test]
    fn phones_are_ten_digits_or_left_out() {
        assert_eq!(phone("305-555-0142").as_deref(), Some("3055550142"));
        assert_eq!(phone("+1 (305) 555.0142").as_deref(), Some("3055550142"));
        assert_eq!(phone("555-0142"), None);
        assert_eq!(phone("305 555 0142 ext 9"), None);
        let mut p = placement("A1");
        p.debtor.phone = Some("call mother".into());
        let line = detail("C1", &p).unwrap();
        assert_eq!(line.split('|').nth(12), Some(""));
    }
}
