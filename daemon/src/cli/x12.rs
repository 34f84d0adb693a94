//! `billd x12 ...`: the X12 tools a biller or integrator reaches for —
//! read a file and show (or dump as JSON) its typed model, list everything
//! wrong with it, and write X12 back from the JSON form with fresh envelopes.
//!
//! Exit codes: 0 success; `parse` exits 2 with located errors on stderr for
//! malformed input; `validate` exits 1 when any finding is an error.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use billd_x12::document::Body;
use billd_x12::prefetch::Prefetch;
use billd_x12::stream::{StreamError, Transactions};
use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};
use billd_x12::{Document, Mode, parse};

/// `billd x12` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum X12Command {
    /// Read an X12 file; print a summary, or the typed model as JSON.
    Parse {
        /// The X12 file.
        file: PathBuf,
        /// Print the JSON form (which `billd x12 render` reads back).
        #[arg(long)]
        json: bool,
    },
    /// List envelope, structure, code-value and 835 balancing findings.
    Validate {
        /// The X12 file.
        file: PathBuf,
    },
    /// Write X12 to stdout from the JSON `billd x12 parse --json` printed,
    /// with fresh control numbers and dates.
    Render {
        /// The JSON file.
        file: PathBuf,
    },
}

/// Runs a subcommand against the real stdout/stderr and clock.
///
/// # Errors
/// When the file cannot be read or the output cannot be written.
pub fn run(cmd: &X12Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = match cmd {
        X12Command::Parse { file, json } => {
            let bytes = read(file)?;
            parse_cmd(
                &file.display().to_string(),
                &bytes,
                *json,
                &mut out,
                &mut err,
            )?
        }
        X12Command::Validate { file } => {
            let input = std::fs::File::open(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            // The file is read ahead on its own thread while this one
            // parses and checks it.
            let mut input = Prefetch::spawn(input).context("cannot start reading")?;
            validate_cmd(&file.display().to_string(), &mut input, &mut out)?
        }
        X12Command::Render { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let now = chrono::Utc::now();
            // The CLI has no durable counter: seed from the clock so two
            // renders a second or more apart never share control numbers.
            // The daemon supplies a store-backed source instead.
            let seed = (now.timestamp() as u64) % 900_000_000 + 1;
            let mut numbers = SequentialControlNumbers::starting_at(seed);
            let opts = WriteOptions {
                date: now.format("%Y%m%d").to_string(),
                time: now.format("%H%M").to_string(),
                ..WriteOptions::default()
            };
            render_cmd(
                &file.display().to_string(),
                &text,
                &opts,
                &mut numbers,
                &mut out,
                &mut err,
            )?
        }
    };
    Ok(ExitCode::from(code))
}

fn read(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

/// `parse`: 0 with a summary (or JSON) on `out`; 2 with every located error
/// on `err` when the input is malformed.
///
/// # Errors
/// Only when writing fails.
pub fn parse_cmd(
    name: &str,
    bytes: &[u8],
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    match parse(bytes, Mode::Strict) {
        Err(e) => {
            for i in &e.issues {
                writeln!(err, "{name}: {i}")?;
            }
            writeln!(err, "{name}: {} error(s); not parsed", e.issues.len())?;
            Ok(2)
        }
        Ok(p) => {
            for w in &p.issues {
                writeln!(err, "{name}: {w}")?;
            }
            if json {
                serde_json::to_writer_pretty(&mut *out, &p.document)?;
                writeln!(out)?;
            } else {
                summary(&p.document, out)?;
            }
            Ok(0)
        }
    }
}

fn summary(doc: &Document, out: &mut dyn Write) -> anyhow::Result<()> {
    for (i, ic) in doc.interchanges.iter().enumerate() {
        let h = &ic.header;
        writeln!(
            out,
            "interchange {}: {}/{} -> {}/{}, control {}, usage {}",
            i + 1,
            h.sender_qualifier,
            h.sender_id,
            h.receiver_qualifier,
            h.receiver_id,
            h.control_number,
            h.usage
        )?;
        for g in &ic.groups {
            writeln!(
                out,
                "  group {} {} control {}: {} transaction(s)",
                g.functional_id,
                g.version,
                g.control_number,
                g.transactions.len()
            )?;
            for t in &g.transactions {
                let what = match &t.body {
                    Body::Remittance(r) => format!(
                        "835 remittance: {} claim(s), payment {} {} by {}, trace {}, {} provider adjustment(s)",
                        r.claims().count(),
                        r.financial.total_payment,
                        r.financial.credit_debit,
                        r.financial.method,
                        r.trace.trace_number,
                        r.provider_adjustments.len()
                    ),
                    Body::Professional(p) => {
                        let claims: Vec<_> = p.claims().collect();
                        let lines: usize = claims.iter().map(|c| c.2.lines.len()).sum();
                        format!(
                            "837P professional claims: {} billing provider(s), {} claim(s), {} service line(s)",
                            p.billing_providers.len(),
                            claims.len(),
                            lines
                        )
                    }
                    Body::EligibilityInquiry(h) => format!(
                        "270 eligibility inquiry: {} HL level(s)",
                        h.all_levels().len()
                    ),
                    Body::EligibilityResponse(h) => format!(
                        "271 eligibility response: coverage {}, {} rejection(s)",
                        h.coverage()
                            .map_or("not stated".to_owned(), |c| format!("{c:?}").to_lowercase()),
                        h.rejections().len()
                    ),
                    Body::StatusRequest(h) => format!(
                        "276 claim status request: {} HL level(s)",
                        h.all_levels().len()
                    ),
                    Body::StatusResponse(h) => format!(
                        "277 claim status response: {} HL level(s)",
                        h.all_levels().len()
                    ),
                    Body::ClaimAck(h) => format!(
                        "277CA claim acknowledgment: {} HL level(s)",
                        h.all_levels().len()
                    ),
                    Body::Ack(a) => format!(
                        "999 acknowledgment of group {}: {} ({} set response(s))",
                        a.ak1.group_control,
                        if a.accepted() { "accepted" } else { "rejected" },
                        a.responses.len()
                    ),
                    Body::Generic(g) => {
                        format!("{} (not typed): {} segment(s)", g.set_id, g.segments.len())
                    }
                };
                writeln!(out, "    transaction {}: {what}", t.control_number)?;
            }
        }
    }
    Ok(())
}

/// `validate`: every finding on `out`; 1 when any is an error, else 0.
/// The input is read transaction set by transaction set, so memory stays
/// bounded by the largest set whatever the file's size.
///
/// # Errors
/// When reading `input` or writing fails.
pub fn validate_cmd(name: &str, input: &mut dyn Read, out: &mut dyn Write) -> anyhow::Result<u8> {
    let cannot_read = || format!("cannot read {name}");
    let mut stream = Transactions::validate(input);
    for item in &mut stream {
        for i in &item.with_context(cannot_read)?.issues {
            writeln!(out, "{name}: {i}")?;
        }
    }
    match stream.finish() {
        Err(StreamError::Io(e)) => Err(anyhow::Error::new(e).context(cannot_read())),
        Err(StreamError::Read(e)) => {
            for i in &e.issues {
                writeln!(out, "{name}: {i}")?;
            }
            Ok(1)
        }
        Ok(end) => {
            for i in &end.issues {
                writeln!(out, "{name}: {i}")?;
            }
            writeln!(
                out,
                "{name}: {} error(s), {} warning(s)",
                end.errors, end.warnings
            )?;
            Ok(u8::from(end.errors > 0))
        }
    }
}

/// `render`: X12 on `out` from the JSON document in `json`; 2 with the
/// reason on `err` when the JSON is not a billd X12 document or cannot be
/// written.
///
/// # Errors
/// Only when writing fails.
pub fn render_cmd(
    name: &str,
    json: &str,
    opts: &WriteOptions,
    numbers: &mut SequentialControlNumbers,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let doc: Document = match serde_json::from_str(json) {
        Ok(d) => d,
        Err(e) => {
            writeln!(err, "{name}: not a billd X12 JSON document: {e}")?;
            return Ok(2);
        }
    };
    match write_document(&doc, opts, numbers) {
        Ok(text) => {
            out.write_all(text.as_bytes())?;
            Ok(0)
        }
        Err(e) => {
            writeln!(err, "{name}: {e}")?;
            Ok(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/x12")
            .join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn parse_summarises_and_exits_0() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = parse_cmd(
            "f",
            &fixture("835/tasty__profee.edi"),
            false,
            &mut out,
            &mut err,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
        assert!(out.contains("835 remittance: "), "{out}");
    }

    #[test]
    fn parse_of_malformed_input_exits_2_with_located_errors() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = parse_cmd(
            "bad.x12",
            &fixture("837P/ims__x12_valid.txt"),
            false,
            &mut out,
            &mut err,
        )
        .unwrap();
        let err = String::from_utf8(err).unwrap();
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(
            err.contains("bad.x12: error: interchange 1, segment 36 (SE) [transaction segment 34], element 01: SE01 says 25, counted 34"),
            "{err}"
        );
    }

    #[test]
    fn validate_exits_1_on_errors_and_0_when_clean() {
        let mut out = Vec::new();
        assert_eq!(
            validate_cmd(
                "f",
                &mut &fixture("835/lfh__tertiary-payment.835")[..],
                &mut out
            )
            .unwrap(),
            1
        );
        assert!(String::from_utf8(out).unwrap().contains("must equal"));
        let mut out = Vec::new();
        assert_eq!(
            validate_cmd("f", &mut &fixture("835/tasty__profee.edi")[..], &mut out).unwrap(),
            0
        );
        assert!(
            String::from_utf8(out)
                .unwrap()
                .ends_with("f: 0 error(s), 0 warning(s)\n")
        );
    }

    #[test]
    fn render_of_parse_json_reproduces_the_transactions() {
        let src = fixture("835/tasty__profee-multiple.edi");
        let (mut json, mut err) = (Vec::new(), Vec::new());
        assert_eq!(parse_cmd("f", &src, true, &mut json, &mut err).unwrap(), 0);
        let mut numbers = SequentialControlNumbers::starting_at(42);
        let (mut x12, mut err) = (Vec::new(), Vec::new());
        let code = render_cmd(
            "f.json",
            std::str::from_utf8(&json).unwrap(),
            &WriteOptions::default(),
            &mut numbers,
            &mut x12,
            &mut err,
        )
        .unwrap();
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
        let a = parse(&src, Mode::Strict).unwrap();
        let b = parse(&x12, Mode::Strict).unwrap();
        let body = |d: &Document| -> Vec<Vec<billd_x12::Segment>> {
            d.interchanges
                .iter()
                .flat_map(|i| &i.groups)
                .flat_map(|g| &g.transactions)
                .map(|t| t.body.to_segments())
                .collect()
        };
        assert_eq!(body(&a.document), body(&b.document));
        assert_eq!(
            b.document.interchanges[0].header.control_number,
            "000000042"
        );
        let (mut x, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            render_cmd(
                "j",
                "{",
                &WriteOptions::default(),
                &mut numbers,
                &mut x,
                &mut err
            )
            .unwrap(),
            2
        );
    }
}
