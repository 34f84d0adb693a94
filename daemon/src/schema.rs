//! Every record type billd keeps that has secondary indexes, in one list,
//! so a store is brought up to date when it is opened: a type that gained
//! an index (or a store written before indexes existed) gets its index
//! entries built once, before anything queries them.

use crate::domain::claim_batch::ClaimBatch;
use crate::domain::posting::Posting;
use crate::domain::{Account, Appointment, Claim, Coverage, Task};
use crate::jobs::JobRun;
use crate::notify::OutboxMessage;
use crate::notify::delivery::Delivery;
use crate::scheduler::Occurrence;
use crate::store::{Db, StoreError};

/// Builds the indexes any indexed record type is missing; returns how many
/// records were rewritten (0 on a store that is up to date).
pub fn prepare(db: &Db) -> Result<u64, StoreError> {
    let mut n = 0;
    n += db.ensure_indexed::<Task>()?;
    n += db.ensure_indexed::<Claim>()?;
    n += db.ensure_indexed::<Appointment>()?;
    n += db.ensure_indexed::<Coverage>()?;
    n += db.ensure_indexed::<ClaimBatch>()?;
    n += db.ensure_indexed::<Account>()?;
    n += db.ensure_indexed::<Posting>()?;
    n += db.ensure_indexed::<JobRun>()?;
    n += db.ensure_indexed::<Occurrence>()?;
    n += db.ensure_indexed::<OutboxMessage>()?;
    n += db.ensure_indexed::<Delivery>()?;
    if n > 0 {
        tracing::info!(records = n, "store indexes built");
    }
    Ok(n)
}
