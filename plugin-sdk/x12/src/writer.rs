//! Writes segments and typed documents as X12 with chosen delimiters and
//! fresh envelopes. Control numbers come from a [`ControlNumbers`] source
//! the caller supplies (and persists), so they never repeat; dates come from
//! the caller too, since the library does not read the clock.

use crate::document::{Document, Group, Interchange};
use crate::error::WriteError;
use crate::segment::{Delimiters, Element, Segment};

/// Which envelope a control number is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// ISA13 / IEA02 (9 digits).
    Interchange,
    /// GS06 / GE02.
    Group,
    /// ST02 / SE02 (billd writes 4 or more digits).
    Transaction,
}

/// A source of control numbers that never repeats for a sender. Implement it
/// over durable storage; [`SequentialControlNumbers`] is the in-memory form.
pub trait ControlNumbers {
    /// The next unused number of this kind (at least 1).
    fn next(&mut self, kind: ControlKind) -> u64;
}

/// In-memory counters starting from given values (persist `next_*` after
/// use to keep numbers unique across runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequentialControlNumbers {
    /// Next ISA13.
    pub next_interchange: u64,
    /// Next GS06.
    pub next_group: u64,
    /// Next ST02.
    pub next_transaction: u64,
}

impl SequentialControlNumbers {
    /// Counters that all start at `start` (at least 1).
    #[must_use]
    pub fn starting_at(start: u64) -> Self {
        let s = start.max(1);
        SequentialControlNumbers {
            next_interchange: s,
            next_group: s,
            next_transaction: s,
        }
    }
}

impl ControlNumbers for SequentialControlNumbers {
    fn next(&mut self, kind: ControlKind) -> u64 {
        let slot = match kind {
            ControlKind::Interchange => &mut self.next_interchange,
            ControlKind::Group => &mut self.next_group,
            ControlKind::Transaction => &mut self.next_transaction,
        };
        let n = *slot;
        *slot += 1;
        n
    }
}

/// How to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Delimiters; `None` picks ones that occur in no element value.
    pub delimiters: Option<Delimiters>,
    /// Envelope date CCYYMMDD (ISA09 uses its last six digits).
    pub date: String,
    /// Envelope time HHMM.
    pub time: String,
    /// Put a newline after each segment terminator (readable; allowed by
    /// most trading partners).
    pub newlines: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            delimiters: None,
            date: "20000101".into(),
            time: "0000".into(),
            newlines: true,
        }
    }
}

/// Writes one segment.
///
/// # Errors
/// [`WriteError::DelimiterInData`] when a value contains a delimiter.
pub fn write_segment(out: &mut String, seg: &Segment, d: &Delimiters) -> Result<(), WriteError> {
    let check = |s: &str, pos: usize| -> Result<(), WriteError> {
        if s.bytes().any(|b| d.is_delimiter(b)) {
            Err(WriteError::DelimiterInData {
                segment: seg.id.to_string(),
                element: pos as u16,
            })
        } else {
            Ok(())
        }
    };
    out.push_str(&seg.id);
    let e = d.element as char;
    let c = d.component as char;
    for (i, el) in seg.elements.iter().enumerate() {
        out.push(e);
        match el {
            Element::Simple(s) => {
                check(s, i + 1)?;
                out.push_str(s);
            }
            Element::Composite(comps) => {
                for (j, s) in comps.iter().enumerate() {
                    check(s, i + 1)?;
                    if j > 0 {
                        out.push(c);
                    }
                    out.push_str(s);
                }
            }
            Element::Repeated(reps) => {
                let r = d.repetition.ok_or_else(|| {
                    WriteError::Incomplete("repeated element without a repetition separator".into())
                })? as char;
                for (k, comps) in reps.iter().enumerate() {
                    if k > 0 {
                        out.push(r);
                    }
                    for (j, s) in comps.iter().enumerate() {
                        check(s, i + 1)?;
                        if j > 0 {
                            out.push(c);
                        }
                        out.push_str(s);
                    }
                }
            }
        }
    }
    out.push(d.segment as char);
    Ok(())
}

fn pad(s: &str, w: usize) -> String {
    let mut v: String = s.chars().take(w).collect();
    while v.chars().count() < w {
        v.push(' ');
    }
    v
}

/// Picks delimiters that no value in `doc` contains, preferring `* : ^ ~`.
#[must_use]
pub fn choose_delimiters(doc: &Document) -> Delimiters {
    let mut used = [false; 128];
    let mut mark = |s: &str| {
        for b in s.bytes() {
            if b < 128 {
                used[b as usize] = true;
            }
        }
    };
    for ic in &doc.interchanges {
        let h = &ic.header;
        for s in [&h.sender_id, &h.receiver_id, &h.authorization, &h.security] {
            mark(s);
        }
        for g in &ic.groups {
            mark(&g.sender);
            mark(&g.receiver);
            for t in &g.transactions {
                for seg in t.body.to_segments() {
                    for el in &seg.elements {
                        for rep in el.repetitions() {
                            for c in rep {
                                mark(&c);
                            }
                        }
                    }
                }
            }
        }
    }
    let pick = |cands: &[u8], taken: &[u8]| -> u8 {
        *cands
            .iter()
            .find(|c| !used[**c as usize] && !taken.contains(c))
            .unwrap_or(&cands[0])
    };
    let element = pick(b"*|\x1d", &[]);
    let component = pick(b":>\x1f", &[element]);
    let repetition = pick(b"^{\x1e", &[element, component]);
    let segment = pick(b"~!\x1c", &[element, component, repetition]);
    Delimiters {
        element,
        component,
        repetition: Some(repetition),
        segment,
    }
}

/// Writes `doc` with fresh envelopes: new ISA13/GS06/ST02 from `numbers`,
/// dates from `opts`, counts recomputed. Everything else is written from the
/// model.
///
/// # Errors
/// When a value contains a delimiter or a model cannot be written.
pub fn write_document(
    doc: &Document,
    opts: &WriteOptions,
    numbers: &mut dyn ControlNumbers,
) -> Result<String, WriteError> {
    let d = opts.delimiters.unwrap_or_else(|| choose_delimiters(doc));
    let mut out = String::new();
    for ic in &doc.interchanges {
        write_interchange(&mut out, ic, &d, opts, numbers)?;
    }
    Ok(out)
}

fn write_interchange(
    out: &mut String,
    ic: &Interchange,
    d: &Delimiters,
    opts: &WriteOptions,
    numbers: &mut dyn ControlNumbers,
) -> Result<(), WriteError> {
    let nl = |out: &mut String| {
        if opts.newlines {
            out.push('\n');
        }
    };
    let h = &ic.header;
    let control = format!(
        "{:09}",
        numbers.next(ControlKind::Interchange) % 1_000_000_000
    );
    let date6: String = opts.date.chars().skip(2).take(6).collect();
    let version = if h.version.is_empty() {
        "00501"
    } else {
        &h.version
    };
    let isa = Segment {
        id: "ISA".into(),
        elements: [
            pad(or(&h.authorization_qualifier, "00"), 2),
            pad(&h.authorization, 10),
            pad(or(&h.security_qualifier, "00"), 2),
            pad(&h.security, 10),
            pad(or(&h.sender_qualifier, "ZZ"), 2),
            pad(&h.sender_id, 15),
            pad(or(&h.receiver_qualifier, "ZZ"), 2),
            pad(&h.receiver_id, 15),
            pad(&date6, 6),
            pad(&opts.time, 4),
            (d.repetition.unwrap_or(b'U') as char).to_string(),
            pad(version, 5),
            control.clone(),
            pad(or(&h.ack_requested, "0"), 1),
            pad(or(&h.usage, "P"), 1),
            (d.component as char).to_string(),
        ]
        .into_iter()
        .map(Element::Simple)
        .collect(),
    };
    // The ISA holds the separators themselves; write it by hand.
    out.push_str("ISA");
    for e in &isa.elements {
        out.push(d.element as char);
        out.push_str(e.value());
    }
    out.push(d.segment as char);
    nl(out);
    for g in &ic.groups {
        write_group(out, g, d, opts, numbers)?;
    }
    write_segment(
        out,
        &Segment::new("IEA", &[&ic.groups.len().to_string(), &control]),
        d,
    )?;
    nl(out);
    Ok(())
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

fn write_group(
    out: &mut String,
    g: &Group,
    d: &Delimiters,
    opts: &WriteOptions,
    numbers: &mut dyn ControlNumbers,
) -> Result<(), WriteError> {
    let nl = |out: &mut String| {
        if opts.newlines {
            out.push('\n');
        }
    };
    let control = numbers.next(ControlKind::Group).to_string();
    let version = match (g.version.is_empty(), g.transactions.first()) {
        (true, Some(t)) => t.body.guide().unwrap_or("005010").to_owned(),
        _ => g.version.clone(),
    };
    let functional = if g.functional_id.is_empty() {
        g.transactions
            .first()
            .map(|t| functional_id(t.body.set_id()))
            .unwrap_or("")
            .to_owned()
    } else {
        g.functional_id.clone()
    };
    write_segment(
        out,
        &Segment::new(
            "GS",
            &[
                &functional,
                &g.sender,
                &g.receiver,
                &opts.date,
                &opts.time,
                &control,
                or(&g.agency, "X"),
                &version,
            ],
        ),
        d,
    )?;
    nl(out);
    for t in &g.transactions {
        let st02 = format!(
            "{:04}",
            numbers.next(ControlKind::Transaction) % 1_000_000_000
        );
        let mut st = vec![t.body.set_id().to_owned(), st02.clone()];
        if let Some(guide) = &t.guide {
            st.push(guide.clone());
        }
        let st_seg = Segment {
            id: "ST".into(),
            elements: st.into_iter().map(Element::Simple).collect(),
        };
        write_segment(out, &st_seg, d)?;
        nl(out);
        // A segment without elements is a required segment a lenient read
        // found missing; it has nothing to write.
        let body: Vec<Segment> = t
            .body
            .to_segments()
            .into_iter()
            .filter(|s| !s.elements.is_empty())
            .collect();
        for s in &body {
            write_segment(out, s, d)?;
            nl(out);
        }
        let count = (body.len() + 2).to_string();
        write_segment(out, &Segment::new("SE", &[&count, &st02]), d)?;
        nl(out);
    }
    write_segment(
        out,
        &Segment::new("GE", &[&g.transactions.len().to_string(), &control]),
        d,
    )?;
    nl(out);
    Ok(())
}

/// GS01 functional identifier for a transaction set.
#[must_use]
pub fn functional_id(set_id: &str) -> &'static str {
    match set_id {
        "835" => "HP",
        "837" => "HC",
        "270" => "HS",
        "271" => "HB",
        "276" => "HR",
        "277" => "HN",
        "999" => "FA",
        _ => "",
    }
}
