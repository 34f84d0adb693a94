//! The practice billd works for and the billers who work its tasks: who
//! bills (name, NPI, tax id, timezone) and who receives what.

/// The practice: the billing provider (`[practice]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Practice {
    /// The practice's name, as printed on statements.
    pub name: String,
    /// The 10-digit National Provider Identifier (check digit verified).
    pub npi: String,
    /// The federal tax id (EIN): nine digits, without the dash.
    pub tax_id: String,
    /// The practice's IANA timezone; jobs default to it.
    pub timezone: chrono_tz::Tz,
}

/// A person who receives tasks and digests (`[[billers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Biller {
    /// A unique name, used in task assignment and logs.
    pub name: String,
    /// Where their mail goes.
    pub email: lettre::message::Mailbox,
    /// What they receive: task kinds and/or `"digest"`.
    pub receives: Vec<String>,
}
