//! Data in from files, before (or beside) an EHR connector: CSV exports of
//! patients, coverages and appointments, and the 837P batches practice
//! systems already write.
//!
//! Reading is all or nothing: a file that cannot be read whole is refused
//! with every problem located by line and column (CSV) or segment (X12),
//! and nothing of it is kept. What a file holds becomes domain records
//! here; writing them is the app layer's business. Messages name lines,
//! columns and codes, never values: the values are patient data.

pub mod claims837;
pub mod csv_rows;
pub mod remit835;

/// One problem with an input file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// The 1-based line in the file (for X12: the segment's line), when
    /// known.
    pub line: Option<u64>,
    /// The column (CSV) or element/segment (X12) at fault, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at `line` in `field`.
    pub fn at(line: u64, field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            line: Some(line),
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// Why a file was refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{file}: {} problem(s), nothing imported:{}", problems.len(), render(file, problems))]
pub struct Refused {
    /// The file as the user named it.
    pub file: String,
    /// Every problem found, in file order.
    pub problems: Vec<Problem>,
}

fn render(file: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for p in problems {
        out.push_str("\n  ");
        out.push_str(file);
        if let Some(line) = p.line {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
        if let Some(field) = &p.field {
            out.push_str(&format!("{field}: "));
        }
        out.push_str(&p.message);
    }
    out
}

/// A stable, opaque id derived from values that identify a record (payer,
/// member id, birth date): the same inputs always give the same id, and
/// the id shows none of them.
pub fn derived_id(prefix: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    format!("{prefix}{}", &hex::encode(h.finalize())[..16])
}
