//! The agency's SFTP folders. Collection agencies commonly take placement
//! files over SFTP rather than an HTTP API, and have no answer channel
//! there: what becomes of a file comes back later as files the practice
//! downloads. This feed lets tests and the demo reach `billd-sandbox
//! agency` that way, through an sshd on loopback serving `--sftp-root`:
//! it polls `placements/` (BCP1 placement files) and `recalls/` (BCR1
//! recall files), hands each finished upload to the same [`Agency`] the
//! HTTP endpoints use, with the file name as the idempotency key, and
//! removes it (names starting with a dot are uploads still in progress and
//! are left alone); and it writes every update new since its last pass,
//! scripted or a placement refusal, as one BCU1 file in `updates/`, under
//! a temporary dot-name first, then renamed, so a downloader never sees
//! half a file. Modelled on the payer's feed, [`crate::folders`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::Value;

use crate::agency::{Agency, RecallLine, RecallRequest, Update};
use crate::agency_server::{Sandbox, Shared};
use crate::folders::{finished, write_whole};

/// How often the folders are looked at.
const POLL: Duration = Duration::from_millis(100);

/// The recall file layout's name in its header.
pub const RECALL_LAYOUT: &str = "BCR1";

/// The update file layout's name in its header.
pub const UPDATE_LAYOUT: &str = "BCU1";

/// The folders under the root, in the order a pass works them.
const FOLDERS: [&str; 3] = ["placements", "recalls", "updates"];

/// Creates `root/placements`, `root/recalls` and `root/updates`.
///
/// # Errors
/// When any of them cannot be created.
pub fn prepare(root: &Path) -> anyhow::Result<()> {
    for dir in FOLDERS {
        let path = root.join(dir);
        std::fs::create_dir_all(&path)
            .map_err(|e| anyhow::anyhow!("--sftp-root: cannot create {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Feeds the folders under `root` (made by [`prepare`]) until the process
/// ends.
pub async fn feed(state: Shared, root: PathBuf) {
    let mut feed = Feed::new(root);
    loop {
        let today = chrono::Utc::now().date_naive();
        if let Err(e) = feed.once(&state, today) {
            eprintln!("billd-sandbox: agency sftp folders: {e}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads a recall file in layout BCR1 into the request `POST /recalls`
/// takes:
///
/// ```text
/// H|BCR1|{client}|{file date YYYYMMDD}|{count}
/// R|{client}|{debtor ref}|{agency account or empty}|{reason code}
/// T|{count}
/// ```
///
/// Pipe-delimited, LF line ends, a final LF required. The reason code is
/// left to the agency to judge, line by line, as in the JSON request.
///
/// # Errors
/// Why the whole file is refused, naming its line.
pub fn read_recalls(text: &str) -> Result<RecallRequest, String> {
    let Some(body) = text.strip_suffix('\n') else {
        return Err("the file must end with a line feed after the trailer".into());
    };
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.len() < 2 {
        return Err("a file needs a header and a trailer".into());
    }
    if let Some(i) = lines.iter().position(|l| l.chars().any(char::is_control)) {
        return Err(format!(
            "line {}: contains a control character (lines end with a bare LF)",
            i + 1
        ));
    }
    let head: Vec<&str> = lines[0].split('|').collect();
    if head.len() != 5 || head[0] != "H" || head[1] != RECALL_LAYOUT {
        return Err(format!(
            "line 1: the header must be H|{RECALL_LAYOUT}|client|YYYYMMDD|count"
        ));
    }
    let client = head[2];
    if NaiveDate::parse_from_str(head[3], "%Y%m%d").is_err() || head[3].len() != 8 {
        return Err("line 1: field 4 (file date) must be a date YYYYMMDD".into());
    }
    let last = lines.len();
    let tail: Vec<&str> = lines[last - 1].split('|').collect();
    if tail.len() != 2 || tail[0] != "T" {
        return Err(format!("line {last}: the trailer must be T|count"));
    }
    let mut recalls = Vec::new();
    for (i, line) in lines[1..last - 1].iter().enumerate() {
        let n = i + 2;
        let f: Vec<&str> = line.split('|').collect();
        if f[0] != "R" {
            return Err(format!("line {n}: a recall record (R) expected"));
        }
        if f.len() != 5 {
            return Err(format!("line {n}: 5 fields expected, found {}", f.len()));
        }
        if f[1] != client {
            return Err(format!(
                "line {n}: field 2 (client number) is not this file's client number"
            ));
        }
        if f[2].is_empty() {
            return Err(format!("line {n}: field 3 (debtor reference) is required"));
        }
        recalls.push(RecallLine {
            debtor_ref: f[2].to_owned(),
            agency_account: (!f[3].is_empty()).then(|| f[3].to_owned()),
            reason: f[4].to_owned(),
        });
    }
    let count = recalls.len().to_string();
    if head[4] != count || tail[1] != count {
        return Err(format!(
            "the header says {} and the trailer {} recall records; the file has {count}",
            head[4], tail[1]
        ));
    }
    Ok(RecallRequest {
        client: client.to_owned(),
        recalls,
    })
}

/// Writes updates as a file in layout BCU1, dated `date`:
///
/// ```text
/// H|BCU1|{client}|{file date YYYYMMDD}|{count}
/// U|{seq}|{code}|{debtor ref}|{agency account}|{date YYYYMMDD}|{gross}|{fee}|{net}|{reason}
/// T|{count}
/// ```
///
/// Amounts in cents; a field the update does not have is empty. A `|` or
/// a line break in a text field is replaced by a space.
#[must_use]
pub fn write_updates(client: &str, date: NaiveDate, updates: &[Update]) -> String {
    let text = |s: &str| s.replace(['|', '\r', '\n'], " ");
    let cents = |c: Option<i64>| c.map(|c| c.to_string()).unwrap_or_default();
    let count = updates.len();
    let mut out = format!(
        "H|{UPDATE_LAYOUT}|{}|{}|{count}\n",
        text(client),
        date.format("%Y%m%d")
    );
    for u in updates {
        let day = NaiveDate::parse_from_str(&u.date, "%Y-%m-%d").map_or_else(
            |_| text(&u.date.replace('-', "")),
            |d| d.format("%Y%m%d").to_string(),
        );
        out.push_str(&format!(
            "U|{}|{}|{}|{}|{day}|{}|{}|{}|{}\n",
            u.seq,
            text(&u.code),
            text(&u.debtor_ref),
            text(&u.agency_account),
            cents(u.gross_cents),
            cents(u.fee_cents),
            cents(u.net_cents),
            text(u.reason.as_deref().unwrap_or_default()),
        ));
    }
    out.push_str(&format!("T|{count}\n"));
    out
}

/// The longest debtor reference a refusal update names. A refused line's
/// reference may be malformed (that may be why it was refused); one an
/// update file's reader could not take (billd's connector reads
/// references of up to 40 letters, digits, `-`, `_` or `.`, and refuses
/// a whole file over one bad record) is reported on stderr instead, so it
/// cannot hold back the other updates of its file.
const NAMEABLE: usize = 40;

/// Whether a refusal update can name `debtor`.
fn nameable(debtor: &str) -> bool {
    crate::agency::is_reference(debtor, NAMEABLE)
}

/// What the feed remembers between passes.
struct Feed {
    root: PathBuf,
    /// The highest sequence number written to an update file.
    written: u64,
    /// Update files written (the last one's number).
    files: u32,
    /// Placement files refused whole (name, bytes): the agency does not
    /// remember those under their key, but an SFTP client sending one
    /// again gets no second set of refusals.
    refused: HashSet<(String, Vec<u8>)>,
}

impl Feed {
    /// A feed for `root`; update files are numbered after any already in
    /// `root/updates`, so a restart over the same folder overwrites none.
    fn new(root: PathBuf) -> Self {
        let files = std::fs::read_dir(root.join("updates"))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_suffix("-updates.txt")?.parse::<u32>().ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        Self {
            root,
            written: 0,
            files,
            refused: HashSet::new(),
        }
    }

    /// One pass: every finished placement and recall file taken, the new
    /// updates written.
    fn once(&mut self, state: &Mutex<Sandbox>, today: NaiveDate) -> std::io::Result<()> {
        let placements = self.root.join("placements");
        let recalls = self.root.join("recalls");
        let placement_names = finished(&placements)?;
        let recall_names = finished(&recalls)?;
        let mut s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for name in placement_names {
            let path = placements.join(&name);
            let bytes = std::fs::read(&path)?;
            self.place(&mut s.agency, &name, &bytes, today);
            std::fs::remove_file(&path)?;
        }
        for name in recall_names {
            let path = recalls.join(&name);
            let bytes = std::fs::read(&path)?;
            recall(&mut s.agency, &name, &bytes);
            std::fs::remove_file(&path)?;
        }
        let updates = &s.agency.updates;
        let new = &updates[updates.partition_point(|u| u.seq <= self.written)..];
        if let Some(last) = new.last() {
            let name = format!("{:06}-updates.txt", self.files + 1);
            let text = write_updates(&s.agency.client, today, new);
            write_whole(&self.root.join("updates"), &name, text.as_bytes())?;
            self.files += 1;
            self.written = last.seq;
        }
        Ok(())
    }

    /// A placement file: placed as `POST /placements` places it, its
    /// refusals recorded as CAN updates.
    fn place(&mut self, agency: &mut Agency, name: &str, bytes: &[u8], today: NaiveDate) {
        let sent = (name.to_owned(), bytes.to_vec());
        if self.refused.contains(&sent) {
            eprintln!("billd-sandbox: placement file {name} sent again, refused before");
            return;
        }
        let replays = agency.replays;
        let (status, answer) = agency.place(name, bytes);
        if agency.replays > replays {
            // Answered from the idempotency record: nothing new to say.
            return;
        }
        if status == 200 {
            refuse_lines(agency, name, &answer, today);
            return;
        }
        let error = if status == 409 {
            "a file of this name came with different content before".to_owned()
        } else {
            answer["error"].as_str().unwrap_or_default().to_owned()
        };
        refuse_file(agency, name, bytes, &error, today);
        self.refused.insert(sent);
    }
}

/// A CAN update for each detail line the agency refused.
fn refuse_lines(agency: &mut Agency, name: &str, answer: &Value, today: NaiveDate) {
    let receipts = answer["receipts"].as_array().cloned().unwrap_or_default();
    for r in receipts.iter().filter(|r| r["accepted"] != true) {
        let message = r["message"].as_str().unwrap_or_default();
        match r["debtor_ref"].as_str().filter(|d| nameable(d)) {
            Some(debtor) => {
                agency.refusal_update(
                    debtor,
                    r["agency_account"].as_str().unwrap_or_default(),
                    format!("placement refused: {message}"),
                    today,
                );
            }
            None => eprintln!(
                "billd-sandbox: placement file {name}: a line naming no usable debtor reference ({}) refused: {message}",
                r["debtor_ref"]
            ),
        }
    }
}

/// A CAN update for each debtor reference the D lines of a file refused
/// whole name (field 3; only references a refusal can name), after the
/// error on stderr.
fn refuse_file(agency: &mut Agency, name: &str, bytes: &[u8], error: &str, today: NaiveDate) {
    eprintln!("billd-sandbox: placement file {name} refused: {error}");
    let text = String::from_utf8_lossy(bytes);
    let mut debtors: Vec<&str> = Vec::new();
    for line in text.split('\n').filter(|l| l.starts_with("D|")) {
        if let Some(d) = line.split('|').nth(2).filter(|d| nameable(d))
            && !debtors.contains(&d)
        {
            debtors.push(d);
        }
    }
    for debtor in debtors {
        agency.refusal_update(
            debtor,
            "",
            format!("placement file refused: {error}"),
            today,
        );
    }
}

/// A recall file: recalled as `POST /recalls` recalls; what the agency
/// refuses goes to stderr (billd needs nothing back).
fn recall(agency: &mut Agency, name: &str, bytes: &[u8]) {
    let replays = agency.replays;
    let (status, answer) = agency.recall_with(name, bytes, |b| {
        let text = std::str::from_utf8(b).map_err(|_| "the file is not UTF-8".to_owned())?;
        read_recalls(text)
    });
    if agency.replays > replays {
        return;
    }
    match status {
        200 => {
            let receipts = answer["receipts"].as_array().cloned().unwrap_or_default();
            for r in receipts.iter().filter(|r| r["accepted"] != true) {
                eprintln!(
                    "billd-sandbox: recall file {name}: {} refused: {}",
                    r["debtor_ref"].as_str().unwrap_or_default(),
                    r["message"].as_str().unwrap_or_default()
                );
            }
        }
        409 => eprintln!(
            "billd-sandbox: recall file {name} refused: a file of this name came with different content before"
        ),
        _ => eprintln!(
            "billd-sandbox: recall file {name} refused: {}",
            answer["error"].as_str().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE_A: &str = "D|CL1|PA|SMITH|TED|Q||236 N MAIN ST||MIAMI|FL|33413|3055550142|19730501|20260701|12345||20260610|20260612";

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()
    }

    #[test]
    fn a_recall_file_reads_into_a_recall_request() {
        let req =
            read_recalls("H|BCR1|CL1|20261202|2\nR|CL1|PA|AG000001|DSP\nR|CL1|PB||REQ\nT|2\n")
                .unwrap();
        assert_eq!(req.client, "CL1");
        assert_eq!(
            req.recalls,
            [
                RecallLine {
                    debtor_ref: "PA".into(),
                    agency_account: Some("AG000001".into()),
                    reason: "DSP".into()
                },
                RecallLine {
                    debtor_ref: "PB".into(),
                    agency_account: None,
                    reason: "REQ".into()
                },
            ]
        );
        assert!(
            read_recalls("H|BCR1|CL1|20261202|0\nT|0\n")
                .unwrap()
                .recalls
                .is_empty()
        );
        for (text, want) in [
            ("H|BCR1|CL1|20261202|1\nR|CL1|PA||REQ\nT|1", "line feed"),
            ("H|BCR1|CL1|20261202|1\n", "a header and a trailer"),
            (
                "H|BCP1|CL1|20261202|1\nR|CL1|PA||REQ\nT|1\n",
                "line 1: the header",
            ),
            (
                "H|BCR1|CL1|20261232|1\nR|CL1|PA||REQ\nT|1\n",
                "field 4 (file date)",
            ),
            (
                "H|BCR1|CL1|20261202|1\nR|CL1|PA||REQ\nX|1\n",
                "line 3: the trailer",
            ),
            (
                "H|BCR1|CL1|20261202|1\nD|CL1|PA||REQ\nT|1\n",
                "line 2: a recall record",
            ),
            (
                "H|BCR1|CL1|20261202|1\nR|CL1|PA|REQ\nT|1\n",
                "line 2: 5 fields",
            ),
            (
                "H|BCR1|CL1|20261202|1\nR|CL2|PA||REQ\nT|1\n",
                "field 2 (client number)",
            ),
            (
                "H|BCR1|CL1|20261202|1\nR|CL1|||REQ\nT|1\n",
                "field 3 (debtor reference)",
            ),
            (
                "H|BCR1|CL1|20261202|2\nR|CL1|PA||REQ\nT|2\n",
                "recall records",
            ),
            (
                "H|BCR1|CL1|20261202|1\r\nR|CL1|PA||REQ\r\nT|1\r\n",
                "control character",
            ),
        ] {
            let e = read_recalls(text).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn updates_are_written_in_layout_bcu1() {
        let mut ag = Agency::new("CL1");
        ag.place(
            "k",
            format!("H|BCP1|CL1|20261202|1|12345\n{LINE_A}\nT|1|12345\n").as_bytes(),
        );
        let script = |code: &str, gross: Option<i64>, reason: Option<&str>| crate::agency::Script {
            code: code.into(),
            debtor_ref: "PA".into(),
            gross_cents: gross,
            fee_cents: gross.map(|g| g / 4),
            reason: reason.map(str::to_owned),
            date: Some("2026-12-01".into()),
        };
        ag.script(script("PAY", Some(4000), None), day()).unwrap();
        ag.script(script("DSP", None, Some("says|paid\r\nalready")), day())
            .unwrap();
        ag.refusal_update("PZ", "", "placement refused: line 2: bad".into(), day());
        assert_eq!(
            write_updates("CL1", day(), &ag.updates),
            "H|BCU1|CL1|20261202|3\n\
             U|1|PAY|PA|AG000001|20261201|4000|1000|3000|\n\
             U|2|DSP|PA|AG000001|20261201||||says paid  already\n\
             U|3|CAN|PZ||20261202||||placement refused: line 2: bad\n\
             T|3\n"
        );
        assert_eq!(
            write_updates("CL1", day(), &[]),
            "H|BCU1|CL1|20261202|0\nT|0\n"
        );
    }

    #[test]
    fn a_placement_file_refused_whole_names_its_debtors_once() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path()).unwrap();
        let state = Mutex::new(Sandbox {
            agency: Agency::new("CL1"),
            api_key: None,
            lose_answers: 0,
        });
        let mut feed = Feed::new(dir.path().to_owned());
        let placements = dir.path().join("placements");
        let updates = dir.path().join("updates");
        let line_b = LINE_A.replace("|PA|", "|PB|");
        // A wrong total refuses the file; its two debtors get a CAN each.
        let bad = format!("H|BCP1|CL1|20261202|2|1\n{LINE_A}\n{line_b}\nT|2|1\n");
        std::fs::write(placements.join("p1.txt"), &bad).unwrap();
        feed.once(&state, day()).unwrap();
        let text = std::fs::read_to_string(updates.join("000001-updates.txt")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[1]
                .starts_with("U|1|CAN|PA||20261202||||placement file refused: the header says 1")
        );
        assert!(lines[2].starts_with("U|2|CAN|PB||"));
        // The same file again: nothing new; no file without updates.
        std::fs::write(placements.join("p1.txt"), &bad).unwrap();
        feed.once(&state, day()).unwrap();
        assert!(!placements.join("p1.txt").exists());
        assert_eq!(std::fs::read_dir(&updates).unwrap().count(), 1);
        // Placed under a name, then other bytes under it: a 409's CAN.
        let good = format!("H|BCP1|CL1|20261202|1|12345\n{LINE_A}\nT|1|12345\n");
        std::fs::write(placements.join("p2.txt"), &good).unwrap();
        feed.once(&state, day()).unwrap();
        assert_eq!(std::fs::read_dir(&updates).unwrap().count(), 1);
        std::fs::write(placements.join("p2.txt"), good.replace("|PA|", "|PC|")).unwrap();
        feed.once(&state, day()).unwrap();
        let text = std::fs::read_to_string(updates.join("000002-updates.txt")).unwrap();
        assert_eq!(
            text,
            "H|BCU1|CL1|20261202|1\nU|3|CAN|PC||20261202||||placement file refused: a file of this name came with different content before\nT|1\n"
        );
        // Nothing a debtor can be read from, or only malformed references
        // (refused whole, or line by line): stderr only.
        std::fs::write(placements.join("p3.txt"), "nonsense").unwrap();
        let odd = LINE_A.replace("|PA|", "|P A|");
        std::fs::write(
            placements.join("p4.txt"),
            format!("H|BCP1|CL1|20261202|1|0\n{odd}\nT|1|0\n"),
        )
        .unwrap();
        std::fs::write(
            placements.join("p5.txt"),
            format!("H|BCP1|CL1|20261202|1|12345\n{odd}\nT|1|12345\n"),
        )
        .unwrap();
        feed.once(&state, day()).unwrap();
        assert_eq!(state.lock().unwrap().agency.updates.len(), 3);
        assert_eq!(state.lock().unwrap().agency.files.len(), 2);
        assert_eq!(std::fs::read_dir(&placements).unwrap().count(), 0);
        // A restart numbers its files after those already there.
        assert_eq!(Feed::new(dir.path().to_owned()).files, 2);
    }
}
