//! The business model: one module per concept a billing office works with.
//!
//! Each record type is defined here by its owner and implements the store's
//! [`Record`](crate::store::Record) trait; the store keeps only that trait,
//! its codec, crypto and backends. Nothing here knows which backend holds
//! the records, the plugin contract's types (the mapping module converts) or the
//! jobs that use them.
//!
//! - [`patient`]: patients and their insurance coverage.
//! - [`appointment`]: the schedule.
//! - [`claim`]: the professional claim and its state machine.
//! - [`claim_batch`]: claims sent together, recorded before they go.
//! - [`account`]: patient accounts and their ledger.
//! - [`hold`]: holds on an account, and the one hold check jobs ask.
//! - [`plan`]: payment plans, their schedule and standing (pure).
//! - [`dunning`]: the statement cadence, its gates and notice records.
//! - [`remittance`]: a remittance as billd posts it and its posting plan.
//! - [`posting`]: the durable records of posting (postings, PLB, quarantine).
//! - [`practice`]: the practice itself and its billers.
//! - [`scrub`]: the checks a claim passes before it goes out.
//! - [`task`]: work handed to billers.

pub mod account;
pub mod appointment;
pub mod claim;
pub mod claim_batch;
pub mod dunning;
pub mod hold;
pub mod patient;
pub mod plan;
pub mod posting;
pub mod practice;
pub mod remittance;
pub mod scrub;
pub mod task;

pub use account::{Account, LedgerEntry, LedgerKind};
pub use appointment::{Appointment, AppointmentStatus};
pub use claim::{Claim, ClaimEvent, ClaimEventSource, ClaimState, ServiceLine, TransitionError};
pub use patient::{
    Address, Coverage, EligibilityStatus, EligibilityVerdict, Patient, PayerPriority, PersonName,
    Relationship, Sex,
};
pub use task::{NewTask, Priority, Task, TaskError, TaskNote, TaskStatus};
