//! The X12 the sandbox answers with (271, 277, 999, 277CA, 835), built as
//! segments and written by billd-x12's writer with fresh envelopes from the
//! sandbox's own control numbers.

use billd_x12::WriteError;
use billd_x12::document::{Body, Document, Generic};
use billd_x12::fields::Amount;
use billd_x12::segment::Segment;
use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};

/// Who writes to whom, and when.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// ISA06 / GS02.
    pub sender: String,
    /// ISA08 / GS03.
    pub receiver: String,
    /// CCYYMMDD.
    pub date: String,
    /// HHMM.
    pub time: String,
}

/// A segment from text values; `:` in a value separates its components
/// (free text is cleaned of `:` by [`text`] first).
pub fn seg(id: &str, values: &[&str]) -> Segment {
    let mut s = Segment::new(id, values);
    for e in &mut s.elements {
        if e.value().contains(':') {
            let parts = e.value().split(':').map(str::to_owned).collect();
            *e = billd_x12::Element::from_components(parts);
        }
    }
    s
}

/// Free text made safe for [`seg`]: no component separator.
#[must_use]
pub fn text(s: &str) -> String {
    s.replace(':', " ")
}

/// Dollars as X12 writes them.
#[must_use]
pub fn amount(cents: i64) -> String {
    Amount::from_cents(cents).as_str().to_owned()
}

/// Writes one transaction set (`set_id`, `guide`) in its own interchange;
/// returns the text and its ISA13.
///
/// # Errors
/// When a value holds every candidate delimiter (cannot happen for the
/// values the sandbox writes, but the writer says so rather than panic).
pub fn write(
    env: &Envelope,
    set_id: &str,
    guide: &str,
    segments: Vec<Segment>,
    numbers: &mut SequentialControlNumbers,
) -> Result<(String, u64), WriteError> {
    let isa13 = numbers.next_interchange;
    let body = Body::Generic(Generic {
        set_id: set_id.into(),
        segments,
    });
    let doc = Document::single(&env.sender, &env.receiver, "T", guide, body);
    let opts = WriteOptions {
        date: env.date.clone(),
        time: env.time.clone(),
        ..WriteOptions::default()
    };
    let text = write_document(&doc, &opts, numbers)?;
    Ok((text, isa13))
}

/// A name (NM1) with its id.
#[derive(Clone, Debug, Default)]
pub struct Party {
    /// NM101.
    pub entity: String,
    /// NM102: 1 person, 2 organisation.
    pub kind: String,
    /// NM103.
    pub last: String,
    /// NM104.
    pub first: String,
    /// NM108.
    pub id_qualifier: String,
    /// NM109.
    pub id: String,
}

impl Party {
    /// The NM1 segment.
    #[must_use]
    pub fn nm1(&self) -> Segment {
        seg(
            "NM1",
            &[
                &self.entity,
                &self.kind,
                &self.last,
                &self.first,
                "",
                "",
                "",
                &self.id_qualifier,
                &self.id,
            ],
        )
    }

    /// The same party under another entity code.
    #[must_use]
    pub fn as_entity(&self, entity: &str) -> Party {
        Party {
            entity: entity.into(),
            ..self.clone()
        }
    }
}

/// An HL segment.
#[must_use]
pub fn hl(id: u32, parent: Option<u32>, level: &str, child: bool) -> Segment {
    let parent = parent.map(|p| p.to_string()).unwrap_or_default();
    seg(
        "HL",
        &[
            &id.to_string(),
            &parent,
            level,
            if child { "1" } else { "0" },
        ],
    )
}
