//! The generic X12 data model: segments made of elements, elements made of
//! components and repetitions. Everything typed is built on top of this, and
//! anything billd does not model in a typed way is kept here so that nothing
//! read is ever lost.
//!
//! JSON form of an [`Element`]: a string for a simple element, an array of
//! strings for a composite (`["HC","99213","25"]`), an array of arrays for a
//! repeated element (each inner array one repetition's components).

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// The four X12 separators, as given by an ISA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delimiters {
    /// Element separator (ISA byte 4), usually `*`.
    pub element: u8,
    /// Component separator (ISA16), usually `:`.
    pub component: u8,
    /// Repetition separator (ISA11 in 5010), usually `^`; `None` when the
    /// interchange has none (4010 sends `U` there).
    pub repetition: Option<u8>,
    /// Segment terminator, usually `~`.
    pub segment: u8,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            element: b'*',
            component: b':',
            repetition: Some(b'^'),
            segment: b'~',
        }
    }
}

impl Delimiters {
    /// True when `b` is one of the four separators.
    #[must_use]
    pub fn is_delimiter(&self, b: u8) -> bool {
        b == self.element || b == self.component || b == self.segment || self.repetition == Some(b)
    }
}

/// One element: a simple value, a composite of components, or repetitions of
/// composites.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Element {
    /// A simple element (possibly empty).
    Simple(String),
    /// A composite: components in order (at least two).
    Composite(Vec<String>),
    /// Repetitions (at least two), each a list of components.
    Repeated(Vec<Vec<String>>),
}

impl Default for Element {
    fn default() -> Self {
        Element::Simple(String::new())
    }
}

impl fmt::Debug for Element {
    // Element values may be patient data: Debug shows the shape only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Simple(s) => write!(f, "Simple(<{} chars>)", s.len()),
            Element::Composite(c) => write!(f, "Composite(<{} components>)", c.len()),
            Element::Repeated(r) => write!(f, "Repeated(<{} repetitions>)", r.len()),
        }
    }
}

impl From<&str> for Element {
    fn from(s: &str) -> Self {
        Element::Simple(s.to_owned())
    }
}

impl From<String> for Element {
    fn from(s: String) -> Self {
        Element::Simple(s)
    }
}

impl Element {
    /// Builds an element from components, collapsing to `Simple` when there
    /// is only one and dropping trailing empty components.
    #[must_use]
    pub fn from_components(mut comps: Vec<String>) -> Element {
        while comps.len() > 1 && comps.last().is_some_and(String::is_empty) {
            comps.pop();
        }
        if comps.len() <= 1 {
            Element::Simple(comps.pop().unwrap_or_default())
        } else {
            Element::Composite(comps)
        }
    }

    /// The first component of the first repetition ("the value").
    #[must_use]
    pub fn value(&self) -> &str {
        match self {
            Element::Simple(s) => s,
            Element::Composite(c) => c.first().map_or("", String::as_str),
            Element::Repeated(r) => r.first().and_then(|c| c.first()).map_or("", String::as_str),
        }
    }

    /// Component `i` (1-based) of the first repetition, or "".
    #[must_use]
    pub fn component(&self, i: usize) -> &str {
        match self {
            Element::Simple(s) if i == 1 => s,
            Element::Simple(_) => "",
            Element::Composite(c) => c.get(i - 1).map_or("", String::as_str),
            Element::Repeated(r) => r
                .first()
                .and_then(|c| c.get(i - 1))
                .map_or("", String::as_str),
        }
    }

    /// Every repetition as a list of components.
    #[must_use]
    pub fn repetitions(&self) -> Vec<Vec<String>> {
        match self {
            Element::Simple(s) => vec![vec![s.clone()]],
            Element::Composite(c) => vec![c.clone()],
            Element::Repeated(r) => r.clone(),
        }
    }

    /// True for an empty simple element.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        matches!(self, Element::Simple(s) if s.is_empty())
    }
}

impl Serialize for Element {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Element::Simple(v) => s.serialize_str(v),
            Element::Composite(c) => c.serialize(s),
            Element::Repeated(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            S(String),
            C(Vec<String>),
            R(Vec<Vec<String>>),
        }
        match Repr::deserialize(d)? {
            Repr::S(s) => Ok(Element::Simple(s)),
            Repr::C(c) if c.len() >= 2 => Ok(Element::Composite(c)),
            Repr::C(c) => Ok(Element::from_components(c)),
            Repr::R(r) if r.len() >= 2 => Ok(Element::Repeated(r)),
            Repr::R(mut r) => match r.pop() {
                Some(c) => Ok(Element::from_components(c)),
                None => Err(de::Error::custom("empty repetition list")),
            },
        }
    }
}

/// A segment identifier. Identifiers of the X12 5010 segments billd knows
/// are borrowed from a static table, so reading a segment does not allocate
/// for its name; others are owned.
pub type SegmentId = std::borrow::Cow<'static, str>;

/// Segment identifiers interned by [`intern_id`].
const KNOWN_IDS: &[&str] = &[
    "AAA", "ACT", "AK1", "AK2", "AK9", "AMT", "BHT", "BPR", "CAS", "CLM", "CLP", "CN1", "CR1",
    "CR2", "CR3", "CRC", "CTX", "CUR", "DMG", "DTM", "DTP", "EB", "EQ", "FRM", "GE", "GS", "HCP",
    "HI", "HL", "HSD", "IEA", "III", "IK3", "IK4", "IK5", "INS", "K3", "LE", "LIN", "LQ", "LS",
    "LX", "MEA", "MIA", "MOA", "MPI", "MSG", "N1", "N3", "N4", "NM1", "NTE", "OI", "PAT", "PER",
    "PLB", "PRV", "PS1", "PWK", "QTY", "RDM", "REF", "SBR", "SE", "ST", "STC", "SV1", "SV5", "SVC",
    "SVD", "TRN", "TS2", "TS3",
];

/// The identifier for `text`, borrowed from the static table when known.
#[must_use]
pub fn intern_id(text: &str) -> SegmentId {
    // Identifiers are at most three bytes: each is one integer key, found
    // in an open-addressed table (this runs for every segment read).
    const SLOTS: usize = 256;
    fn key(b: &[u8]) -> Option<u32> {
        (!b.is_empty() && b.len() <= 3)
            .then(|| b.iter().fold(0u32, |k, &c| (k << 8) | u32::from(c)) | (b.len() as u32) << 24)
    }
    fn slot(k: u32) -> usize {
        (k.wrapping_mul(0x9E37_79B1) >> 24) as usize % SLOTS
    }
    static TABLE: std::sync::OnceLock<Vec<(u32, &'static str)>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        // Key 0 marks an empty slot (no identifier has it).
        let mut t = vec![(0u32, ""); SLOTS];
        for id in KNOWN_IDS {
            if let Some(k) = key(id.as_bytes()) {
                let mut i = slot(k);
                while t[i].0 != 0 {
                    i = (i + 1) % SLOTS;
                }
                t[i] = (k, *id);
            }
        }
        t
    });
    if let Some(k) = key(text.as_bytes()) {
        let mut i = slot(k);
        while table[i].0 != 0 {
            if table[i].0 == k {
                return SegmentId::Borrowed(table[i].1);
            }
            i = (i + 1) % SLOTS;
        }
    }
    SegmentId::Owned(text.to_owned())
}

/// True when `a` equals `b`, compared inline for identifiers and codes of
/// up to three bytes (the reader and the loop builder compare these for
/// every segment; a library call per comparison cost more than the work).
#[inline]
#[must_use]
pub fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        0 => true,
        1 => a[0] == b[0],
        2 => a[0] == b[0] && a[1] == b[1],
        3 => a[0] == b[0] && a[1] == b[1] && a[2] == b[2],
        _ => a == b,
    }
}

/// One segment: identifier and elements (element 1 is `elements[0]`).
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Segment {
    /// Segment identifier, e.g. `CLP`.
    pub id: SegmentId,
    /// Elements in order; trailing empty elements are not kept.
    #[serde(default)]
    pub elements: Vec<Element>,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Segment({} with {} elements)",
            self.id,
            self.elements.len()
        )
    }
}

impl Segment {
    /// A segment from simple string values (convenient in tests and
    /// builders). Trailing empty values are dropped.
    #[must_use]
    pub fn new(id: &str, values: &[&str]) -> Segment {
        let mut s = Segment {
            id: intern_id(id),
            elements: values.iter().map(|v| Element::from(*v)).collect(),
        };
        s.trim();
        s
    }

    /// Element `i` (1-based), if present.
    #[must_use]
    pub fn element(&self, i: usize) -> Option<&Element> {
        if i == 0 {
            return None;
        }
        self.elements.get(i - 1)
    }

    /// Value of element `i` (1-based; first component), or "".
    #[must_use]
    pub fn get(&self, i: usize) -> &str {
        self.element(i).map_or("", Element::value)
    }

    /// Drops trailing empty elements (X12 forbids trailing separators).
    pub fn trim(&mut self) {
        while self.elements.last().is_some_and(Element::is_empty) {
            self.elements.pop();
        }
    }

    /// True when the identifier is `id` and element 1 is one of `quals`
    /// (any qualifier when `quals` is empty).
    #[must_use]
    pub fn is(&self, id: &str, quals: &[&str]) -> bool {
        short_eq(&self.id, id)
            && (quals.is_empty() || quals.iter().any(|q| short_eq(q, self.get(1))))
    }
}

/// A segment with where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The segment.
    pub segment: Segment,
    /// 1-based segment number in the file.
    pub number: u32,
    /// 1-based position in its transaction set (ST = 1), if inside one.
    pub in_transaction: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_json_shapes_round_trip() {
        let els = vec![
            Element::Simple("A".into()),
            Element::Composite(vec!["HC".into(), "99213".into()]),
            Element::Repeated(vec![vec!["1".into()], vec!["30".into(), "X".into()]]),
        ];
        let json = serde_json::to_string(&els).unwrap();
        assert_eq!(json, r#"["A",["HC","99213"],[["1"],["30","X"]]]"#);
        let back: Vec<Element> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, els);
    }

    #[test]
    fn debug_hides_values() {
        let s = Segment::new("NM1", &["IL", "1", "DOE", "JANE"]);
        let d = format!("{s:?} {:?}", s.elements);
        assert!(!d.contains("DOE"));
        assert!(d.contains("NM1"));
    }

    #[test]
    fn known_ids_are_sorted_for_binary_search() {
        assert!(KNOWN_IDS.windows(2).all(|w| w[0] < w[1]));
        assert!(matches!(intern_id("CLP"), SegmentId::Borrowed(_)));
        assert!(matches!(intern_id("ZZZ"), SegmentId::Owned(_)));
        for id in KNOWN_IDS {
            assert!(matches!(intern_id(id), SegmentId::Borrowed(b) if b == *id));
        }
        for other in ["", "C", "CL", "CLPX", "clp", "\u{e9}A"] {
            assert!(matches!(intern_id(other), SegmentId::Owned(ref o) if o == other));
        }
    }

    #[test]
    fn trailing_empties_trimmed() {
        let s = Segment::new("REF", &["EV", "X", "", ""]);
        assert_eq!(s.elements.len(), 2);
        assert_eq!(s.get(2), "X");
        assert_eq!(s.get(9), "");
        assert!(s.is("REF", &["EV"]));
        assert!(!s.is("REF", &["F8"]));
    }
}
