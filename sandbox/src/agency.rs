//! The collection agency of `billd-sandbox agency`: it reads placement
//! files in layout `BCP1` (plugins/collections-agency/README.md) strictly,
//! answers a receipt per detail line (refusing a bad line with a message
//! naming the line and field), remembers every idempotency key so a resend
//! gets the first answer and places nothing twice, records recalls, and
//! lists the updates a test scripts (payments, disputes, closures, ...)
//! behind a sequence-number cursor. Test-only; the HTTP side is
//! [`crate::agency_server`].

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The layout's name in the header.
pub const LAYOUT: &str = "BCP1";

/// The detail record's fields, in order (the record type first).
pub const DETAIL: [&str; 19] = [
    "record type",
    "client number",
    "debtor reference",
    "last name",
    "first name",
    "middle name",
    "suffix",
    "address line 1",
    "address line 2",
    "city",
    "state",
    "zip",
    "phone",
    "birth date",
    "date of debt",
    "amount due",
    "date of last payment",
    "services from",
    "services to",
];

/// A detail line the agency accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    /// The debtor reference (billd's account id).
    pub debtor_ref: String,
    /// The amount due, in cents.
    pub amount_cents: i64,
    /// The line as received.
    pub line: String,
}

/// One detail line's fate.
pub type LineResult = Result<Detail, (Option<String>, String)>;

/// Whether `s` is a reference (a debtor reference, an agency account
/// number): 1 to `max` letters, digits, `-`, `_` or `.`.
pub(crate) fn is_reference(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn ymd(s: &str) -> Option<NaiveDate> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| NaiveDate::parse_from_str(s, "%Y%m%d").ok())
        .flatten()
}

fn digits(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks one detail line of a file for `client`; the problem names the
/// field by number and name.
fn detail(n: usize, line: &str, client: &str) -> LineResult {
    let f: Vec<&str> = line.split('|').collect();
    let debtor = f.get(2).map(|s| (*s).to_owned());
    let bad = |i: usize, what: &str| {
        Err((
            debtor.clone(),
            format!("line {n}: field {} ({}): {what}", i + 1, DETAIL[i]),
        ))
    };
    if f.len() != DETAIL.len() {
        return Err((
            debtor.clone(),
            format!(
                "line {n}: {} fields expected, found {}",
                DETAIL.len(),
                f.len()
            ),
        ));
    }
    if let Some(i) = f.iter().position(|v| v.chars().any(char::is_control)) {
        return bad(i, "contains a control character");
    }
    if f[1] != client {
        return bad(1, "is not this file's client number");
    }
    if !is_reference(f[2], 30) {
        return bad(2, "must be 1-30 letters, digits, - _ or .");
    }
    for (i, max, required) in [
        (3, 35, true),
        (4, 35, true),
        (5, 35, false),
        (6, 10, false),
        (7, 55, true),
        (8, 55, false),
        (9, 30, true),
    ] {
        if required && f[i].trim().is_empty() {
            return bad(i, "is required");
        }
        if f[i].chars().count() > max {
            return bad(i, &format!("is longer than {max} characters"));
        }
        if f[i] != f[i].trim() {
            return bad(i, "has leading or trailing spaces");
        }
    }
    if !(f[10].len() == 2 && f[10].bytes().all(|b| b.is_ascii_uppercase())) {
        return bad(10, "must be a two-letter state code in capitals");
    }
    if !digits(f[11], &[5, 9]) {
        return bad(11, "must be 5 or 9 digits");
    }
    if !f[12].is_empty() && !digits(f[12], &[10]) {
        return bad(12, "must be empty or 10 digits");
    }
    if ymd(f[13]).is_none() {
        return bad(13, "must be a date YYYYMMDD");
    }
    if ymd(f[14]).is_none() {
        return bad(14, "must be a date YYYYMMDD");
    }
    let amount = f[15]
        .parse::<i64>()
        .ok()
        .filter(|a| *a > 0 && f[15].bytes().all(|b| b.is_ascii_digit()));
    let Some(amount) = amount else {
        return bad(15, "must be a positive whole number of cents");
    };
    if !f[16].is_empty() && ymd(f[16]).is_none() {
        return bad(16, "must be empty or a date YYYYMMDD");
    }
    let (Some(from), Some(to)) = (ymd(f[17]), ymd(f[18])) else {
        return bad(
            if ymd(f[17]).is_none() { 17 } else { 18 },
            "must be a date YYYYMMDD",
        );
    };
    if from > to {
        return bad(18, "is before services from");
    }
    Ok(Detail {
        debtor_ref: f[2].to_owned(),
        amount_cents: amount,
        line: line.to_owned(),
    })
}

/// Reads a placement file for `client`: each detail line's fate, or why
/// the whole file is refused (header, trailer, counts and totals).
///
/// # Errors
/// The first problem with the file as a whole, naming its line.
pub fn read_file(text: &str, client: &str) -> Result<Vec<LineResult>, String> {
    let Some(body) = text.strip_suffix('\n') else {
        return Err("the file must end with a line feed after the trailer".into());
    };
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.len() < 2 {
        return Err("a file needs a header and a trailer".into());
    }
    let head: Vec<&str> = lines[0].split('|').collect();
    if head.len() != 6 || head[0] != "H" || head[1] != LAYOUT {
        return Err(format!(
            "line 1: the header must be H|{LAYOUT}|client|YYYYMMDD|count|total cents"
        ));
    }
    if head[2] != client {
        return Err(format!(
            "line 1: client number `{}` is not this agency's client",
            head[2]
        ));
    }
    if ymd(head[3]).is_none() {
        return Err("line 1: field 4 (file date) must be a date YYYYMMDD".into());
    }
    let last = lines.len();
    let tail: Vec<&str> = lines[last - 1].split('|').collect();
    if tail.len() != 3 || tail[0] != "T" {
        return Err(format!(
            "line {last}: the trailer must be T|count|total cents"
        ));
    }
    let mut out = Vec::new();
    let mut total = 0i64;
    for (i, line) in lines[1..last - 1].iter().enumerate() {
        let n = i + 2;
        if !line.starts_with("D|") {
            return Err(format!("line {n}: a detail record (D) expected"));
        }
        if let Some(a) = line.split('|').nth(15).and_then(|a| a.parse::<i64>().ok()) {
            total += a;
        }
        out.push(detail(n, line, client));
    }
    let count = out.len().to_string();
    let total = total.to_string();
    if head[4] != count || tail[1] != count {
        return Err(format!(
            "the header says {} and the trailer {} detail records; the file has {count}",
            head[4], tail[1]
        ));
    }
    if head[5] != total || tail[2] != total {
        return Err(format!(
            "the header says {} and the trailer {} cents; the detail lines add up to {total}",
            head[5], tail[2]
        ));
    }
    Ok(out)
}

/// Where an account stands at the agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// Being worked.
    Open,
    /// Work paused (SUS).
    Suspended,
    /// Called back by the practice.
    Recalled,
    /// Closed by the agency (PIF, CAN).
    Closed,
}

/// An account the agency holds.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// The agency's account number.
    pub agency_account: String,
    /// What it still expects to collect, in cents.
    pub balance_cents: i64,
    /// Where it stands.
    pub standing: Standing,
}

/// A placement file received (first sends only; resends are counted).
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedFile {
    /// The agency's file id.
    pub file_id: String,
    /// The idempotency key it came with.
    pub key: String,
    /// Its detail lines, as received.
    pub lines: Vec<String>,
    /// The receipts answered.
    pub receipts: Vec<Value>,
}

/// A recall received.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedRecall {
    /// The idempotency key it came with.
    pub key: String,
    /// The debtor reference.
    pub debtor_ref: String,
    /// The agency account number billd gave.
    pub agency_account: Option<String>,
    /// The reason code.
    pub reason: String,
    /// Whether the agency took it.
    pub accepted: bool,
}

/// An update in the agency's listing.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    /// The sequence number (the cursor).
    pub seq: u64,
    /// PAY, PIF, CAN, SUS, REI or DSP.
    pub code: String,
    /// The debtor reference.
    pub debtor_ref: String,
    /// The agency's account number.
    pub agency_account: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// PAY, PIF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gross_cents: Option<i64>,
    /// PAY, PIF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_cents: Option<i64>,
    /// PAY, PIF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_cents: Option<i64>,
    /// CAN, SUS, DSP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An update a test scripts through the control API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// PAY, PIF, CAN, SUS, REI or DSP.
    pub code: String,
    /// The account.
    pub debtor_ref: String,
    /// PAY: what the debtor paid (PIF: default the whole balance).
    #[serde(default)]
    pub gross_cents: Option<i64>,
    /// PAY, PIF: the agency's fee (default 0).
    #[serde(default)]
    pub fee_cents: Option<i64>,
    /// CAN, SUS, DSP: the reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// The day (`YYYY-MM-DD`, default today).
    #[serde(default)]
    pub date: Option<String>,
}

/// A recall request: the JSON `POST /recalls` takes (or a recall file
/// read into it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecallRequest {
    /// The practice's client number.
    pub client: String,
    /// The accounts called back.
    pub recalls: Vec<RecallLine>,
}

/// One account called back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecallLine {
    /// The debtor reference.
    pub debtor_ref: String,
    /// The agency's account number, when billd has it.
    #[serde(default)]
    pub agency_account: Option<String>,
    /// PIF, DSP, BKR, FAS or REQ.
    pub reason: String,
}

/// An answer: status and JSON body.
pub type Answer = (u16, Value);

fn refusal(status: u16, error: impl Into<String>) -> Answer {
    (status, json!({"error": error.into()}))
}

/// The agency.
#[derive(Debug, Default)]
pub struct Agency {
    /// The practice's client number.
    pub client: String,
    /// The accounts, by debtor reference.
    pub accounts: BTreeMap<String, Account>,
    /// Files received.
    pub files: Vec<ReceivedFile>,
    /// Resends answered from the idempotency record.
    pub replays: u64,
    /// Recalls received.
    pub recalls: Vec<ReceivedRecall>,
    /// The update listing.
    pub updates: Vec<Update>,
    answered: HashMap<String, (Vec<u8>, Answer)>,
}

impl Agency {
    /// An agency for one client.
    #[must_use]
    pub fn new(client: &str) -> Self {
        Self {
            client: client.to_owned(),
            ..Self::default()
        }
    }

    /// The answer already given under `key` (`scope` keeps placements and
    /// recalls apart), or a refusal when the key came with another body.
    fn replay(&mut self, scope: &str, key: &str, body: &[u8]) -> Option<Answer> {
        let (seen, answer) = self.answered.get(&format!("{scope}/{key}"))?;
        if seen.as_slice() == body {
            self.replays += 1;
            Some(answer.clone())
        } else {
            Some(refusal(
                409,
                "this Idempotency-Key came with different content before",
            ))
        }
    }

    fn remember(&mut self, scope: &str, key: &str, body: &[u8], answer: &Answer) {
        self.answered
            .insert(format!("{scope}/{key}"), (body.to_vec(), answer.clone()));
    }

    /// A placement file under `key`.
    pub fn place(&mut self, key: &str, body: &[u8]) -> Answer {
        if key.is_empty() {
            return refusal(400, "the Idempotency-Key header is required");
        }
        if let Some(a) = self.replay("place", key, body) {
            return a;
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return refusal(422, "the file is not UTF-8");
        };
        let lines = match read_file(text, &self.client) {
            Ok(l) => l,
            Err(e) => return refusal(422, e),
        };
        let file_id = format!("F{:06}", self.files.len() + 1);
        let mut receipts = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for l in &lines {
            let receipt = match l {
                Ok(d) if !seen.insert(d.debtor_ref.clone()) => json!({
                    "debtor_ref": d.debtor_ref, "accepted": false,
                    "message": "this debtor reference is repeated in the file"}),
                Ok(d) => self.open(d),
                Err((debtor, message)) => json!({
                    "debtor_ref": debtor, "accepted": false, "message": message}),
            };
            receipts.push(receipt);
        }
        self.files.push(ReceivedFile {
            file_id: file_id.clone(),
            key: key.to_owned(),
            lines: text
                .lines()
                .filter(|l| l.starts_with("D|"))
                .map(str::to_owned)
                .collect(),
            receipts: receipts.clone(),
        });
        let answer = (200, json!({"file_id": file_id, "receipts": receipts}));
        self.remember("place", key, body, &answer);
        answer
    }

    /// Opens (or reopens, after a recall or a closure) an account.
    fn open(&mut self, d: &Detail) -> Value {
        if let Some(a) = self.accounts.get(&d.debtor_ref)
            && matches!(a.standing, Standing::Open | Standing::Suspended)
        {
            return json!({"debtor_ref": d.debtor_ref, "accepted": false,
                "agency_account": a.agency_account,
                "message": "already placed and being worked"});
        }
        let number = self.accounts.get(&d.debtor_ref).map_or_else(
            || format!("AG{:06}", self.accounts.len() + 1),
            |a| a.agency_account.clone(),
        );
        self.accounts.insert(
            d.debtor_ref.clone(),
            Account {
                agency_account: number.clone(),
                balance_cents: d.amount_cents,
                standing: Standing::Open,
            },
        );
        json!({"debtor_ref": d.debtor_ref, "accepted": true, "agency_account": number})
    }

    /// A recall request (JSON) under `key`.
    pub fn recall(&mut self, key: &str, body: &[u8]) -> Answer {
        self.recall_with(key, body, |body| {
            serde_json::from_slice(body).map_err(|e| format!("not a recall request: {e}"))
        })
    }

    /// A recall request under `key` in any form: `read` turns the body
    /// into a [`RecallRequest`] (or says why the whole request is refused,
    /// a 422). The idempotency rule is [`Agency::recall`]'s, on the body
    /// as received.
    pub fn recall_with(
        &mut self,
        key: &str,
        body: &[u8],
        read: impl FnOnce(&[u8]) -> Result<RecallRequest, String>,
    ) -> Answer {
        if key.is_empty() {
            return refusal(400, "the Idempotency-Key header is required");
        }
        if let Some(a) = self.replay("recall", key, body) {
            return a;
        }
        let req = match read(body) {
            Ok(r) => r,
            Err(e) => return refusal(422, e),
        };
        if req.client != self.client {
            return refusal(
                422,
                format!("client number `{}` is not this agency's client", req.client),
            );
        }
        let mut receipts = Vec::new();
        for l in req.recalls {
            let (accepted, message) = if !["PIF", "DSP", "BKR", "FAS", "REQ"]
                .contains(&l.reason.as_str())
            {
                (
                    false,
                    Some(format!(
                        "reason `{}` is not PIF, DSP, BKR, FAS or REQ",
                        l.reason
                    )),
                )
            } else {
                match self.accounts.get_mut(&l.debtor_ref) {
                    None => (false, Some("no such account".to_owned())),
                    Some(a)
                        if l.agency_account
                            .as_deref()
                            .is_some_and(|n| n != a.agency_account) =>
                    {
                        (
                            false,
                            Some("the agency account number does not match".to_owned()),
                        )
                    }
                    Some(a) => match a.standing {
                        Standing::Open | Standing::Suspended => {
                            a.standing = Standing::Recalled;
                            (true, None)
                        }
                        Standing::Recalled => (true, Some("already recalled".to_owned())),
                        // Nothing is being worked: what a recall asks for holds.
                        Standing::Closed => (true, Some("already closed by the agency".to_owned())),
                    },
                }
            };
            self.recalls.push(ReceivedRecall {
                key: key.to_owned(),
                debtor_ref: l.debtor_ref.clone(),
                agency_account: l.agency_account,
                reason: l.reason,
                accepted,
            });
            receipts.push(
                json!({"debtor_ref": l.debtor_ref, "accepted": accepted, "message": message}),
            );
        }
        let answer = (200, json!({"receipts": receipts}));
        self.remember("recall", key, body, &answer);
        answer
    }

    /// The updates after cursor `since` (a sequence number; none: from the
    /// start), at most `limit`.
    pub fn list(&self, client: &str, since: Option<&str>, limit: usize) -> Answer {
        if client != self.client {
            return refusal(
                422,
                format!("client number `{client}` is not this agency's client"),
            );
        }
        let after = match since {
            None | Some("") => 0,
            Some(s) => match s.parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    return refusal(400, format!("since `{s}` is not a cursor of this agency"));
                }
            },
        };
        let page: Vec<&Update> = self
            .updates
            .iter()
            .filter(|u| u.seq > after)
            .take(limit.clamp(1, 5000))
            .collect();
        let next = page.last().map_or(after, |u| u.seq);
        (
            200,
            json!({"updates": page, "next_cursor": next.to_string()}),
        )
    }

    /// Records a CAN update telling the client a placement line (or a
    /// whole placement file) was refused, for clients that have no answer
    /// channel (the SFTP folders); its sequence number comes from the same
    /// counter as scripted updates. No account changes.
    pub fn refusal_update(
        &mut self,
        debtor_ref: &str,
        agency_account: &str,
        reason: String,
        today: NaiveDate,
    ) -> u64 {
        let seq = self.updates.len() as u64 + 1;
        self.updates.push(Update {
            seq,
            code: "CAN".to_owned(),
            debtor_ref: debtor_ref.to_owned(),
            agency_account: agency_account.to_owned(),
            date: today.format("%Y-%m-%d").to_string(),
            gross_cents: None,
            fee_cents: None,
            net_cents: None,
            reason: Some(reason),
        });
        seq
    }

    /// Adds a scripted update for an account the agency holds.
    ///
    /// # Errors
    /// A refusal naming what is wrong with the script.
    pub fn script(&mut self, s: Script, today: NaiveDate) -> Result<Value, Answer> {
        let code = s.code.to_ascii_uppercase();
        let Some(a) = self.accounts.get_mut(&s.debtor_ref) else {
            return Err(refusal(404, format!("no account {}", s.debtor_ref)));
        };
        let date = s
            .date
            .unwrap_or_else(|| today.format("%Y-%m-%d").to_string());
        let mut u = Update {
            seq: self.updates.len() as u64 + 1,
            code: code.clone(),
            debtor_ref: s.debtor_ref.clone(),
            agency_account: a.agency_account.clone(),
            date,
            gross_cents: None,
            fee_cents: None,
            net_cents: None,
            reason: None,
        };
        match code.as_str() {
            "PAY" | "PIF" => {
                let gross = match (code.as_str(), s.gross_cents) {
                    (_, Some(g)) => g,
                    ("PIF", None) => a.balance_cents,
                    _ => return Err(refusal(422, "PAY needs gross_cents")),
                };
                let fee = s.fee_cents.unwrap_or(0);
                if gross <= 0 || fee < 0 || fee > gross {
                    return Err(refusal(
                        422,
                        "gross_cents must be positive and fee_cents 0 to gross",
                    ));
                }
                a.balance_cents -= gross;
                if code == "PIF" {
                    a.standing = Standing::Closed;
                }
                u.gross_cents = Some(gross);
                u.fee_cents = Some(fee);
                u.net_cents = Some(gross - fee);
            }
            "CAN" => {
                a.standing = Standing::Closed;
                u.reason = s.reason;
            }
            "SUS" => {
                a.standing = Standing::Suspended;
                u.reason = s.reason;
            }
            "REI" => a.standing = Standing::Open,
            "DSP" => u.reason = s.reason,
            _ => {
                return Err(refusal(
                    422,
                    format!("code `{code}` is not PAY, PIF, CAN, SUS, REI or DSP"),
                ));
            }
        }
        let v = serde_json::to_value(&u).unwrap_or_default();
        self.updates.push(u);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE_A: &str = "D|CL1|PA|SMITH|TED|Q||236 N MAIN ST||MIAMI|FL|33413|3055550142|19730501|20260701|12345||20260610|20260612";
    const LINE_B: &str = "D|CL1|PB|DOE|JANE|||1 ELM ST|APT 2|TAMPA|FL|336021234||19800202|20260702|655|20260801|20260611|20260611";

    fn file(details: &[&str], count: usize, total: i64) -> String {
        let mut f = format!("H|BCP1|CL1|20261202|{count}|{total}\n");
        for d in details {
            f.push_str(d);
            f.push('\n');
        }
        f.push_str(&format!("T|{count}|{total}\n"));
        f
    }

    fn receipts(a: &Answer) -> Vec<Value> {
        a.1["receipts"].as_array().unwrap().clone()
    }

    #[test]
    fn a_good_file_opens_accounts_and_a_resend_under_its_key_places_nothing_again() {
        let mut ag = Agency::new("CL1");
        let body = file(&[LINE_A, LINE_B], 2, 13_000);
        let first = ag.place("k1", body.as_bytes());
        assert_eq!(first.0, 200, "{}", first.1);
        let r = receipts(&first);
        assert_eq!(r[0]["accepted"], true);
        assert_eq!(r[0]["agency_account"], "AG000001");
        assert_eq!(r[1]["agency_account"], "AG000002");
        assert_eq!(ag.accounts["PB"].balance_cents, 655);
        let again = ag.place("k1", body.as_bytes());
        assert_eq!(again, first);
        assert_eq!(ag.files.len(), 1);
        assert_eq!(ag.replays, 1);
        // The same key with another file is refused; a new key for an open
        // account is refused line by line.
        assert_eq!(ag.place("k1", file(&[LINE_A], 1, 12_345).as_bytes()).0, 409);
        let other = ag.place("k2", file(&[LINE_A], 1, 12_345).as_bytes());
        assert_eq!(receipts(&other)[0]["accepted"], false);
        assert_eq!(ag.files.len(), 2);
        assert_eq!(ag.place("", body.as_bytes()).0, 400);
    }

    #[test]
    fn a_bad_line_is_refused_with_its_line_and_field_and_the_others_are_placed() {
        let mut ag = Agency::new("CL1");
        let bad_zip = LINE_B.replace("336021234", "3360");
        let short = "D|CL1|PC|X";
        let f = file(&[LINE_A, &bad_zip, short], 3, 12_345 + 655);
        let a = ag.place("k", f.as_bytes());
        assert_eq!(a.0, 200, "{}", a.1);
        let r = receipts(&a);
        assert_eq!(r[0]["accepted"], true);
        assert_eq!(r[1]["accepted"], false);
        assert_eq!(r[1]["debtor_ref"], "PB");
        assert_eq!(
            r[1]["message"],
            "line 3: field 12 (zip): must be 5 or 9 digits"
        );
        assert_eq!(r[2]["message"], "line 4: 19 fields expected, found 4");
        assert!(!ag.accounts.contains_key("PB"));
        for (edit, want) in [
            (LINE_A.replace("|FL|", "|fl|"), "field 11 (state)"),
            (LINE_A.replace("|12345|", "|-5|"), "field 16 (amount due)"),
            (
                LINE_A.replace("|19730501|", "|19730231|"),
                "field 14 (birth date)",
            ),
            (
                LINE_A.replace("|20260612", "|20260601"),
                "field 19 (services to)",
            ),
            (LINE_A.replace("|SMITH|", "| SMITH|"), "field 4 (last name)"),
            (LINE_A.replace("|CL1|", "|CL2|"), "field 2 (client number)"),
            (
                LINE_A.replace("|3055550142|", "|555-0142|"),
                "field 13 (phone)",
            ),
        ] {
            let amount = if want.contains("amount") { -5 } else { 12_345 };
            let lines = read_file(&file(&[&edit], 1, amount), "CL1").unwrap();
            let msg = lines[0].clone().unwrap_err().1;
            assert!(msg.contains(want), "{want}: {msg}");
        }
    }

    #[test]
    fn a_file_whose_header_or_trailer_is_wrong_is_refused_whole() {
        let mut ag = Agency::new("CL1");
        for (f, want) in [
            (file(&[LINE_A], 1, 999), "cents"),
            (file(&[LINE_A], 2, 12_345), "detail records"),
            (file(&[LINE_A], 1, 12_345).replace("BCP1", "XYZ9"), "line 1"),
            (
                file(&[LINE_A], 1, 12_345).replace("H|BCP1|CL1", "H|BCP1|CL9"),
                "not this agency's client",
            ),
            (
                file(&[LINE_A], 1, 12_345).trim_end().to_owned(),
                "line feed",
            ),
            (file(&[LINE_A, "X|1"], 1, 12_345), "line 3: a detail record"),
        ] {
            let a = ag.place(&format!("k-{want}"), f.as_bytes());
            assert_eq!(a.0, 422, "{want}");
            assert!(
                a.1["error"].as_str().unwrap().contains(want),
                "{want}: {}",
                a.1
            );
        }
        assert!(ag.files.is_empty() && ag.accounts.is_empty());
    }

    #[test]
    fn recalls_are_recorded_and_idempotent() {
        let mut ag = Agency::new("CL1");
        ag.place("k", file(&[LINE_A], 1, 12_345).as_bytes());
        let body = br#"{"client":"CL1","recalls":[{"debtor_ref":"PA","agency_account":"AG000001","reason":"DSP"},{"debtor_ref":"ZZ","agency_account":null,"reason":"REQ"}]}"#;
        let a = ag.recall("r1", body);
        assert_eq!(a.0, 200);
        let r = receipts(&a);
        assert_eq!(r[0]["accepted"], true);
        assert_eq!(r[1]["accepted"], false);
        assert_eq!(ag.accounts["PA"].standing, Standing::Recalled);
        assert_eq!(ag.recall("r1", body), a);
        assert_eq!(ag.recalls.len(), 2);
        let bad = br#"{"client":"CL1","recalls":[{"debtor_ref":"PA","reason":"NOPE"}]}"#;
        assert_eq!(receipts(&ag.recall("r2", bad))[0]["accepted"], false);
        // A recalled account may be placed again.
        let again = ag.place("k3", file(&[LINE_A], 1, 12_345).as_bytes());
        assert_eq!(receipts(&again)[0]["accepted"], true);
        assert_eq!(receipts(&again)[0]["agency_account"], "AG000001");
    }

    #[test]
    fn scripted_updates_are_listed_behind_a_cursor() {
        let mut ag = Agency::new("CL1");
        ag.place("k", file(&[LINE_A, LINE_B], 2, 13_000).as_bytes());
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let s = |code: &str, who: &str, gross: Option<i64>| Script {
            code: code.into(),
            debtor_ref: who.into(),
            gross_cents: gross,
            fee_cents: gross.map(|g| g / 4),
            reason: Some("why".into()),
            date: None,
        };
        let pay = ag.script(s("PAY", "PA", Some(4000)), day).unwrap();
        assert_eq!(pay["net_cents"], 3000);
        assert_eq!(pay["date"], "2026-12-02");
        ag.script(s("DSP", "PB", None), day).unwrap();
        ag.script(s("PIF", "PA", None), day).unwrap();
        assert_eq!(ag.accounts["PA"].standing, Standing::Closed);
        assert_eq!(ag.updates[2].gross_cents, Some(12_345 - 4000));
        // A recall of an account the agency closed is answered yes.
        let recall = ag.recall(
            "r",
            br#"{"client":"CL1","recalls":[{"debtor_ref":"PA","reason":"PIF"}]}"#,
        );
        assert_eq!(receipts(&recall)[0]["accepted"], true);
        assert_eq!(
            receipts(&recall)[0]["message"],
            "already closed by the agency"
        );
        assert_eq!(
            ag.script(s("PAY", "NOBODY", Some(1)), day).unwrap_err().0,
            404
        );
        assert_eq!(ag.script(s("PAY", "PB", None), day).unwrap_err().0, 422);
        assert_eq!(ag.script(s("XXX", "PB", None), day).unwrap_err().0, 422);

        let (st, first) = ag.list("CL1", None, 2);
        assert_eq!(st, 200);
        assert_eq!(first["updates"].as_array().unwrap().len(), 2);
        assert_eq!(first["next_cursor"], "2");
        let (_, second) = ag.list("CL1", Some("2"), 2);
        assert_eq!(second["updates"][0]["code"], "PIF");
        assert_eq!(second["next_cursor"], "3");
        let (_, none) = ag.list("CL1", Some("3"), 2);
        assert!(none["updates"].as_array().unwrap().is_empty());
        assert_eq!(none["next_cursor"], "3");
        assert_eq!(ag.list("CL1", Some("x"), 2).0, 400);
        assert_eq!(ag.list("CL9", None, 2).0, 422);
    }
}
