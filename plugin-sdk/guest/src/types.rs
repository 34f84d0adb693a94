//! Records shared by every connector kind: dates, money, people, providers,
//! procedures, adjustments, and [`ConnectorError`].

pub use crate::payer_world::billd::connector0_1_0::types::*;

impl Date {
    /// A date from its parts (not checked against the calendar).
    pub fn new(year: u16, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    /// Parses `YYYY-MM-DD` (also `YYYYMMDD`, as in X12), checking that the
    /// day exists.
    pub fn parse_iso(text: &str) -> Option<Date> {
        let t = text.trim();
        let (y, m, d) = if t.len() == 10 && &t[4..5] == "-" && &t[7..8] == "-" {
            (&t[0..4], &t[5..7], &t[8..10])
        } else if t.len() == 8 {
            (&t[0..4], &t[4..6], &t[6..8])
        } else {
            return None;
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !(all_digits(y) && all_digits(m) && all_digits(d)) {
            return None;
        }
        let date = Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        let leap = (date.year % 4 == 0 && date.year % 100 != 0) || date.year % 400 == 0;
        let days = match date.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (date.day >= 1 && date.day <= days).then_some(date)
    }

    /// `YYYY-MM-DD`.
    pub fn to_iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl AdjustmentGroup {
    /// The X12 claim adjustment group code (CAS01): `CO`, `PR`, `OA`, `PI`,
    /// `CR`.
    ///
    /// ```
    /// use billd_plugin_sdk::types::AdjustmentGroup;
    /// assert_eq!(AdjustmentGroup::PatientResponsibility.x12_code(), "PR");
    /// assert_eq!(AdjustmentGroup::from_x12_code("PR"), AdjustmentGroup::PatientResponsibility);
    /// assert_eq!(AdjustmentGroup::from_x12_code("ZZ"), AdjustmentGroup::Other);
    /// ```
    pub fn x12_code(self) -> &'static str {
        match self {
            AdjustmentGroup::Contractual => "CO",
            AdjustmentGroup::PatientResponsibility => "PR",
            AdjustmentGroup::Other => "OA",
            AdjustmentGroup::PayerInitiated => "PI",
            AdjustmentGroup::Correction => "CR",
        }
    }

    /// The group of an X12 group code (CAS01); a code outside the list
    /// reads as [`AdjustmentGroup::Other`].
    pub fn from_x12_code(code: &str) -> AdjustmentGroup {
        match code {
            "CO" => AdjustmentGroup::Contractual,
            "PR" => AdjustmentGroup::PatientResponsibility,
            "PI" => AdjustmentGroup::PayerInitiated,
            "CR" => AdjustmentGroup::Correction,
            _ => AdjustmentGroup::Other,
        }
    }
}

impl ConnectorError {
    /// A failure that may pass: retry later.
    pub fn transient(message: impl Into<String>) -> Self {
        ConnectorError::Transient(message.into())
    }

    /// A request field that is wrong; retrying cannot help.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectorError::InvalidRequest(InvalidField {
            field: field.into(),
            message: message.into(),
        })
    }

    /// Credentials missing or refused.
    pub fn authentication(message: impl Into<String>) -> Self {
        ConnectorError::Authentication(message.into())
    }

    /// Refused by the other side on the merits, with its code.
    pub fn rejected(code: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectorError::Rejected(Rejection {
            code: code.into(),
            message: message.into(),
        })
    }

    /// Told to slow down.
    pub fn rate_limited(retry_after_seconds: u32, message: impl Into<String>) -> Self {
        ConnectorError::RateLimited(RateLimit {
            retry_after_seconds,
            message: message.into(),
        })
    }

    /// The connector does not offer this operation.
    pub fn unsupported(operation: &str) -> Self {
        ConnectorError::Unsupported(format!("this connector does not offer {operation}"))
    }
}

/// Formats cents as dollars (`12345` → `"123.45"`, `-5` → `"-0.05"`).
pub fn cents_to_decimal(cents: Cents) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// Parses a decimal dollar amount (`"123.45"`, `"-7"`, `"0.5"`) into cents;
/// `None` for more than two decimals or anything not a number.
pub fn decimal_to_cents(text: &str) -> Option<Cents> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
    {
        return None;
    }
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let f: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    let v = w.checked_mul(100)?.checked_add(f)?;
    Some(if neg { -v } else { v })
}
