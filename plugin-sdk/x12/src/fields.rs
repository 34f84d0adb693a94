//! Typed element values (amounts, composites, repetitions) and the machinery
//! that maps a generic [`Segment`](crate::segment::Segment) onto a typed segment struct and back
//! without losing anything: positions a struct does not name are kept in its
//! `extra` map, and an element whose shape does not fit its field is kept
//! there too (with an issue), so writing a typed segment always reproduces
//! the segment that was read.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::IssueKind;
use crate::segment::Element;

/// A monetary amount (X12 type R) kept as its exact text, so that writing it
/// back reproduces the input; [`Amount::units`] gives its value for sums.
///
/// JSON: a string such as `"125.50"` or `"-12"`.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(String);

/// Fixed-point scale of [`Amount::units`]: ten-thousandths.
pub const AMOUNT_SCALE: i64 = 10_000;

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Amount {
    /// Parses X12 decimal text (`-` sign, digits, optional point).
    ///
    /// # Errors
    /// When the text is not such a number or has more than 4 decimals or 15
    /// integer digits.
    pub fn parse(text: &str) -> Result<Amount, IssueKind> {
        if to_units(text).is_some() {
            Ok(Amount(text.to_owned()))
        } else {
            Err(IssueKind::BadNumber {
                what: "amount".into(),
            })
        }
    }

    /// An amount from a count of cents, written the way X12 prefers (no
    /// trailing zero decimals: `12.5`, `12`, `0.05`).
    #[must_use]
    pub fn from_cents(cents: i64) -> Amount {
        Amount::from_units(cents * (AMOUNT_SCALE / 100))
    }

    /// An amount from ten-thousandths.
    #[must_use]
    pub fn from_units(units: i64) -> Amount {
        let neg = units < 0;
        let abs = units.unsigned_abs();
        let whole = abs / AMOUNT_SCALE as u64;
        let frac = abs % AMOUNT_SCALE as u64;
        let mut s = if neg { "-".to_owned() } else { String::new() };
        s.push_str(&whole.to_string());
        if frac != 0 {
            let f = format!("{frac:04}");
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
        }
        Amount(s)
    }

    /// The text as read or built.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when no amount was given.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Value in ten-thousandths; an empty amount is 0.
    #[must_use]
    pub fn units(&self) -> i64 {
        to_units(&self.0).unwrap_or(0)
    }
}

fn to_units(text: &str) -> Option<i64> {
    if text.is_empty() {
        return Some(0);
    }
    let (neg, body) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &[][..]),
    };
    if (int.is_empty() && frac.is_empty()) || int.len() > 15 || frac.len() > 4 {
        return None;
    }
    // Digits only (a second '.', a sign or a space fails), read in the one
    // pass that checks them.
    let digits = |s: &[u8]| {
        s.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let i = digits(int)?;
    let mut f = digits(frac)?;
    for _ in frac.len()..4 {
        f *= 10;
    }
    let v = i * AMOUNT_SCALE + f;
    Some(if neg { -v } else { v })
}

/// Formats ten-thousandths as a plain decimal with two places (for
/// messages about sums).
#[must_use]
pub fn format_units(units: i64) -> String {
    let neg = units < 0;
    let abs = units.unsigned_abs();
    let whole = abs / AMOUNT_SCALE as u64;
    let frac = abs % AMOUNT_SCALE as u64;
    let mut s = format!("{}{whole}.{:02}", if neg { "-" } else { "" }, frac / 100);
    if !frac.is_multiple_of(100) {
        s.push_str(&format!("{:02}", frac % 100));
    }
    s
}

/// A composite element's components (`HC:99213:25` is
/// `["HC","99213","25"]`). JSON: an array of strings.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Composite(pub Vec<String>);

impl fmt::Debug for Composite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Composite(<{} components>)", self.0.len())
    }
}

impl Composite {
    /// Component `i` (1-based), or "".
    #[must_use]
    pub fn get(&self, i: usize) -> &str {
        if i == 0 {
            return "";
        }
        self.0.get(i - 1).map_or("", String::as_str)
    }

    /// True when absent.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(String::is_empty)
    }
}

/// A repeated simple element (for example EB03 service types `30^1^33`).
/// JSON: an array of strings.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize, Debug)]
#[serde(transparent)]
pub struct Repeats(pub Vec<String>);

/// Problems found while typing a segment: (element position, problem).
pub type Problems = Vec<(u16, IssueKind)>;

/// Element positions a typed segment does not name (or could not type),
/// keyed by position. JSON: an object such as `{"13": "Y"}`.
pub type Extra = BTreeMap<u16, Element>;

/// A value that one element position can hold.
pub trait Field: Sized {
    /// Reads the element (None when the segment is shorter).
    ///
    /// # Errors
    /// When the element's shape or text does not fit.
    fn read(el: Option<&Element>) -> Result<Self, IssueKind>;
    /// Like [`Field::read`] but moves the value out of the element when it
    /// fits (leaving it empty); on error the element is left as it was.
    ///
    /// # Errors
    /// As [`Field::read`].
    fn take(el: Option<&mut Element>) -> Result<Self, IssueKind> {
        Self::read(el.map(|e| &*e))
    }
    /// The element to write (an empty simple element when absent).
    fn write(&self) -> Element;
    /// True when nothing is held (omitted from JSON).
    fn is_absent(&self) -> bool;
}

fn simple(el: Option<&Element>) -> Result<&str, IssueKind> {
    match el {
        None => Ok(""),
        Some(Element::Simple(s)) => Ok(s),
        Some(Element::Composite(_)) => Err(IssueKind::ElementShape {
            what: "components".into(),
        }),
        Some(Element::Repeated(_)) => Err(IssueKind::ElementShape {
            what: "repetitions".into(),
        }),
    }
}

impl Field for String {
    fn read(el: Option<&Element>) -> Result<Self, IssueKind> {
        simple(el).map(str::to_owned)
    }
    fn take(el: Option<&mut Element>) -> Result<Self, IssueKind> {
        match el {
            Some(Element::Simple(s)) => Ok(std::mem::take(s)),
            other => Self::read(other.map(|e| &*e)),
        }
    }
    fn write(&self) -> Element {
        Element::Simple(self.clone())
    }
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}

impl Field for Option<String> {
    fn read(el: Option<&Element>) -> Result<Self, IssueKind> {
        let s = simple(el)?;
        Ok((!s.is_empty()).then(|| s.to_owned()))
    }
    fn take(el: Option<&mut Element>) -> Result<Self, IssueKind> {
        match el {
            Some(Element::Simple(s)) if s.is_empty() => Ok(None),
            Some(Element::Simple(s)) => Ok(Some(std::mem::take(s))),
            other => Self::read(other.map(|e| &*e)),
        }
    }
    fn write(&self) -> Element {
        Element::Simple(self.clone().unwrap_or_default())
    }
    fn is_absent(&self) -> bool {
        self.as_deref().is_none_or(str::is_empty)
    }
}

impl Field for Amount {
    fn read(el: Option<&Element>) -> Result<Self, IssueKind> {
        Amount::parse(simple(el)?)
    }
    fn take(el: Option<&mut Element>) -> Result<Self, IssueKind> {
        match el {
            Some(Element::Simple(s)) if to_units(s).is_some() => Ok(Amount(std::mem::take(s))),
            other => Self::read(other.map(|e| &*e)),
        }
    }
    fn write(&self) -> Element {
        Element::Simple(self.0.clone())
    }
    fn is_absent(&self) -> bool {
        self.0.is_empty()
    }
}

impl Field for Option<Amount> {
    fn take(el: Option<&mut Element>) -> Result<Self, IssueKind> {
        match el {
            Some(Element::Simple(s)) if s.is_empty() => Ok(None),
            Some(Element::Simple(s)) if to_units(s).is_some() => {
                Ok(Some(Amount(std::mem::take(s))))
            }
            other => Self::read(other.map(|e| &*e)),
        }
    }
    fn read(el: Option<&Element>) -> Result<Self, IssueKind> {
        let s = simple(el)?;
        if s.is_empty() {
            Ok(None)
        } else {
            Amount::parse(s).map(Some)
        }
    }
    fn write(&self) -> Element {
        Element::Simple(self.as_ref().map(|a| a.0.clone()).unwrap_or_default())
    }
    fn is_absent(&self) -> bool {
        self.as_ref().is_none_or(Amount::is_empty)
    }
}

impl Field for Composite {
    fn take(el: Option<&mut Element>) -> Result<Self, IssueKind> {
        match el {
            Some(Element::Composite(c)) => Ok(Composite(std::mem::take(c))),
            Some(Element::Simple(s)) if !s.is_empty() => Ok(Composite(vec![std::mem::take(s)])),
            other => Self::read(other.map(|e| &*e)),
        }
    }
    fn read(el: Option<&Element>) -> Result<Self, IssueKind> {
        match el {
            None => Ok(Composite::default()),
            Some(Element::Simple(s)) if s.is_empty() => Ok(Composite::default()),
            Some(Element::Simple(s)) => Ok(Composite(vec![s.clone()])),
            Some(Element::Composite(c)) => Ok(Composite(c.clone())),
            Some(Element::Repeated(_)) => Err(IssueKind::ElementShape {
                what: "repetitions".into(),
            }),
        }
    }
    fn write(&self) -> Element {
        Element::from_components(self.0.clone())
    }
    fn is_absent(&self) -> bool {
        self.0.is_empty()
    }
}

impl Field for Repeats {
    fn read(el: Option<&Element>) -> Result<Self, IssueKind> {
        match el {
            None => Ok(Repeats::default()),
            Some(Element::Simple(s)) if s.is_empty() => Ok(Repeats::default()),
            Some(Element::Simple(s)) => Ok(Repeats(vec![s.clone()])),
            Some(Element::Composite(_)) => Err(IssueKind::ElementShape {
                what: "components".into(),
            }),
            Some(Element::Repeated(r)) => {
                if r.iter().all(|c| c.len() == 1) {
                    Ok(Repeats(r.iter().map(|c| c[0].clone()).collect()))
                } else {
                    Err(IssueKind::ElementShape {
                        what: "components".into(),
                    })
                }
            }
        }
    }
    fn write(&self) -> Element {
        match self.0.len() {
            0 => Element::default(),
            1 => Element::Simple(self.0[0].clone()),
            _ => Element::Repeated(self.0.iter().map(|s| vec![s.clone()]).collect()),
        }
    }
    fn is_absent(&self) -> bool {
        self.0.is_empty()
    }
}

/// Defines a typed segment struct with named element positions, `extra` for
/// the rest, lossless `from_segment` / `to_segment`, and a Debug that shows
/// no values.
macro_rules! typed_segment {
    (
        $(#[$m:meta])*
        $name:ident = $id:literal {
            $( $(#[$fm:meta])* $pos:literal => $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(default, skip_serializing_if = "crate::fields::Field::is_absent")]
                pub $field: $ty,
            )*
            /// Element positions not named above, kept so that nothing read
            /// is lost.
            #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
            pub extra: crate::fields::Extra,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }

        impl $name {
            /// The segment identifier.
            pub const ID: &'static str = $id;

            /// Reads the typed segment; elements that do not fit their field
            /// are kept in `extra` and reported as (position, problem).
            #[must_use]
            pub fn from_segment(
                seg: &crate::segment::Segment,
            ) -> (Self, Vec<(u16, crate::error::IssueKind)>) {
                let mut out = Self::default();
                let mut problems = Vec::new();
                const NAMED: &[usize] = &[$($pos),*];
                $(
                    match crate::fields::Field::read(seg.element($pos)) {
                        Ok(v) => out.$field = v,
                        Err(k) => {
                            if let Some(e) = seg.element($pos) {
                                out.extra.insert($pos, e.clone());
                            }
                            problems.push(($pos as u16, k));
                        }
                    }
                )*
                for (i, e) in seg.elements.iter().enumerate() {
                    if !NAMED.contains(&(i + 1)) && !e.is_empty() {
                        out.extra.insert((i + 1) as u16, e.clone());
                    }
                }
                (out, problems)
            }

            /// Like `from_segment` but moves the values out of `seg`.
            #[must_use]
            pub fn from_owned(
                mut seg: crate::segment::Segment,
            ) -> (Self, Vec<(u16, crate::error::IssueKind)>) {
                let mut out = Self::default();
                let mut problems = Vec::new();
                const NAMED: &[usize] = &[$($pos),*];
                $(
                    match crate::fields::Field::take(seg.elements.get_mut($pos - 1)) {
                        Ok(v) => out.$field = v,
                        Err(k) => {
                            if let Some(e) = seg.elements.get_mut($pos - 1) {
                                out.extra.insert($pos, std::mem::take(e));
                            }
                            problems.push(($pos as u16, k));
                        }
                    }
                )*
                for (i, e) in seg.elements.iter_mut().enumerate() {
                    if !NAMED.contains(&(i + 1)) && !e.is_empty() {
                        out.extra.insert((i + 1) as u16, std::mem::take(e));
                    }
                }
                (out, problems)
            }

            /// Writes the segment back (trailing empty elements dropped).
            #[must_use]
            pub fn to_segment(&self) -> crate::segment::Segment {
                let mut els: Vec<crate::segment::Element> = Vec::new();
                let mut put = |pos: usize, e: crate::segment::Element| {
                    if els.len() < pos {
                        els.resize(pos, crate::segment::Element::default());
                    }
                    els[pos - 1] = e;
                };
                $(
                    if !crate::fields::Field::is_absent(&self.$field) {
                        put($pos, crate::fields::Field::write(&self.$field));
                    }
                )*
                for (p, e) in &self.extra {
                    if *p > 0 {
                        put(*p as usize, e.clone());
                    }
                }
                let mut s = crate::segment::Segment {
                    id: std::borrow::Cow::Borrowed($id),
                    elements: els,
                };
                s.trim();
                s
            }
        }
    };
}

pub(crate) use typed_segment;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amounts_parse_and_format() {
        assert_eq!(Amount::parse("125.5").unwrap().units(), 1_255_000);
        assert_eq!(Amount::parse("-12").unwrap().units(), -120_000);
        assert_eq!(Amount::parse(".05").unwrap().units(), 500);
        assert!(Amount::parse("1.2.3").is_err());
        assert!(Amount::parse("12a").is_err());
        assert!(Amount::parse("-").is_err());
        for bad in [
            ".",
            "+5",
            " 5",
            "5 ",
            "1.23456",
            "1234567890123456",
            "--1",
            "-.",
            "1..2",
        ] {
            assert!(Amount::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Amount::parse("5.").unwrap().units(), 50_000);
        assert_eq!(Amount::parse("-0.0001").unwrap().units(), -1);
        assert_eq!(
            Amount::parse("123456789012345.9999").unwrap().units(),
            1_234_567_890_123_459_999
        );
        assert_eq!(Amount::from_cents(1250).as_str(), "12.5");
        assert_eq!(Amount::from_cents(-5).as_str(), "-0.05");
        assert_eq!(Amount::from_cents(300).as_str(), "3");
        assert_eq!(format_units(-1_255_000), "-125.50");
    }

    proptest! {
        #[test]
        fn amount_units_round_trip(c in -10_000_000_000i64..10_000_000_000) {
            let a = Amount::from_cents(c);
            prop_assert_eq!(a.units(), c * 100);
            prop_assert_eq!(Amount::parse(a.as_str()).unwrap(), a);
        }
    }
}
