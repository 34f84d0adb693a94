//! Biller tasks: the work billd hands to a person.
//!
//! A task says what needs a human (a job that did not run, a denial, a
//! rejected claim) in record ids and codes, never in patient details, so it
//! can travel in a digest email. The same problem never makes two open
//! tasks: each task has a dedupe key claimed atomically in the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Db, Record, StoreError, Tx};

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Whenever.
    Low,
    /// Normal work.
    Normal,
    /// Today.
    High,
    /// Now.
    Urgent,
}

impl Priority {
    /// The lower-case name billers see (`low`, `normal`, `high`, `urgent`).
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

/// Whether a task still needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a biller.
    Open,
    /// Done.
    Closed,
}

impl TaskStatus {
    /// The lower-case name (`open`, `closed`).
    pub fn name(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Closed => "closed",
        }
    }
}

/// A note on a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskNote {
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Who wrote it.
    pub author: String,
    /// The note.
    pub text: String,
}

/// Work billd hands to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Task id (`T` followed by a sortable number).
    pub id: String,
    /// Kind, for routing to billers (for example `missed-run`, `denial`).
    pub kind: String,
    /// What it is about: record ids and codes, never patient details.
    pub subject: String,
    /// Urgency.
    pub priority: Priority,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it should be done.
    #[serde(default)]
    pub due: Option<DateTime<Utc>>,
    /// Biller name it is assigned to.
    #[serde(default)]
    pub assignee: Option<String>,
    /// The payer id of the claim or remittance it is about, when there is
    /// one (for routing to the biller or webhook that handles that payer).
    #[serde(default)]
    pub payer: Option<String>,
    /// Open or closed.
    pub status: TaskStatus,
    /// Notes, oldest first.
    #[serde(default)]
    pub notes: Vec<TaskNote>,
    /// Key that stops the same problem from making two tasks.
    pub dedupe_key: String,
}

impl Record for Task {
    const COLLECTION: &'static str = "tasks";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_STATUS, BY_STATUS_ASSIGNEE, BY_STATUS_KIND];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        let status = self.status.name();
        vec![
            (BY_STATUS, status.to_string()),
            (
                BY_STATUS_ASSIGNEE,
                format!("{status}/{}", self.assignee.as_deref().unwrap_or("")),
            ),
            (BY_STATUS_KIND, format!("{status}/{}", self.kind)),
        ]
    }
}

/// Maps a problem's dedupe key to the task raised for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDedupe {
    /// The dedupe key.
    pub dedupe_key: String,
    /// The task raised for it.
    pub task_id: String,
}

impl Record for TaskDedupe {
    const COLLECTION: &'static str = "task_dedupe";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.dedupe_key.clone()
    }
}

/// What a new task needs.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Kind, for routing (`missed-run`, `denial`, ...).
    pub kind: String,
    /// What it is about, in ids and codes.
    pub subject: String,
    /// Urgency.
    pub priority: Priority,
    /// When it should be done.
    pub due: Option<DateTime<Utc>>,
    /// Who it is for, if decided.
    pub assignee: Option<String>,
    /// The payer id of the claim or remittance it is about, if any.
    pub payer: Option<String>,
    /// The same key never opens two tasks.
    pub dedupe_key: String,
}

/// Errors from task operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No task has that id.
    #[error("no task with id {0}")]
    NotFound(String),
    /// The task was closed already.
    #[error("task {0} is already closed")]
    AlreadyClosed(String),
}

/// The index of tasks by status (`open`, `closed`).
pub const BY_STATUS: &str = "status";
/// The index of tasks by status and assignee (`open/dana`; `open/` for
/// unassigned tasks).
pub const BY_STATUS_ASSIGNEE: &str = "status_assignee";

/// The index of tasks by status and kind (`open/job-failing`).
pub const BY_STATUS_KIND: &str = "status_kind";

/// Raises a task unless an open one with the same dedupe key exists;
/// returns the task and whether it is new. One transaction: of any number
/// of concurrent raises with one key exactly one creates the task, and a
/// crash leaves either the task with its dedupe entry or neither.
pub fn raise(db: &Db, now: DateTime<Utc>, new: NewTask) -> Result<(Task, bool), StoreError> {
    let raised = db.transact(|tx| raise_in(tx, now, &new))?;
    if raised.1 {
        tracing::info!(task = %raised.0.id, kind = %raised.0.kind, "task raised");
    }
    Ok(raised)
}

/// [`raise`] inside a caller's transaction, so a task and the records that
/// gave rise to it commit together (an imported claim and its scrub
/// problems, a posting and its denial).
pub fn raise_in(
    tx: &mut Tx<'_>,
    now: DateTime<Utc>,
    new: &NewTask,
) -> Result<(Task, bool), StoreError> {
    if let Some(d) = tx.get::<TaskDedupe>(&new.dedupe_key)?
        && let Some(t) = tx.get::<Task>(&d.task_id)?
    {
        return Ok((t, false));
    }
    // Ids are never reused; skipping taken ones also carries stores whose
    // ids came from an earlier counter.
    let id = loop {
        let id = format!("T{:06}", tx.next_counter("task")?);
        if !tx.contains::<Task>(&id)? {
            break id;
        }
    };
    let task = Task {
        id: id.clone(),
        kind: new.kind.clone(),
        subject: new.subject.clone(),
        priority: new.priority,
        created_at: now,
        due: new.due,
        assignee: new.assignee.clone(),
        payer: new.payer.clone(),
        status: TaskStatus::Open,
        notes: Vec::new(),
        dedupe_key: new.dedupe_key.clone(),
    };
    tx.put(&TaskDedupe {
        dedupe_key: new.dedupe_key.clone(),
        task_id: id,
    })?;
    tx.put(&task)?;
    Ok((task, true))
}

/// Closes the open task raised under `dedupe_key`, if there is one, inside
/// the caller's transaction, noting why (a problem the job that raised it
/// saw go away); returns whether one was closed.
pub fn resolve_in(
    tx: &mut Tx<'_>,
    dedupe_key: &str,
    now: DateTime<Utc>,
    author: &str,
    note: &str,
) -> Result<bool, StoreError> {
    let Some(d) = tx.get::<TaskDedupe>(dedupe_key)? else {
        return Ok(false);
    };
    tx.remove::<TaskDedupe>(dedupe_key)?;
    let Some(mut t) = tx.get::<Task>(&d.task_id)? else {
        return Ok(false);
    };
    if t.status == TaskStatus::Closed {
        return Ok(false);
    }
    t.status = TaskStatus::Closed;
    t.notes.push(TaskNote {
        at: now,
        author: author.to_string(),
        text: note.to_string(),
    });
    tx.put(&t)?;
    Ok(true)
}

/// Every task, oldest first.
pub fn all(db: &Db) -> Result<Vec<Task>, StoreError> {
    db.scan::<Task>("T")
}

/// Open tasks, oldest first, read through the status index.
pub fn open(db: &Db) -> Result<Vec<Task>, StoreError> {
    use std::ops::Bound::Included;
    Ok(db
        .index_range::<Task>(BY_STATUS, Included("open"), Included("open"), None, false)?
        .items)
}

/// Tasks with `status` assigned to `assignee` (`None`: unassigned), oldest
/// first, read through the status-and-assignee index.
pub fn with_status_for(
    db: &Db,
    status: TaskStatus,
    assignee: Option<&str>,
) -> Result<Vec<Task>, StoreError> {
    use std::ops::Bound::Included;
    let value = format!("{}/{}", status.name(), assignee.unwrap_or(""));
    Ok(db
        .index_range::<Task>(
            BY_STATUS_ASSIGNEE,
            Included(&value),
            Included(&value),
            None,
            false,
        )?
        .items)
}

/// Ids of the open tasks of `kind`, oldest first, read through the
/// status-and-kind index without decoding a task.
pub fn open_ids_of_kind(db: &Db, kind: &str) -> Result<Vec<String>, StoreError> {
    use std::ops::Bound::Included;
    let value = format!("open/{kind}");
    Ok(db
        .index_range_keys::<Task>(
            BY_STATUS_KIND,
            Included(&value),
            Included(&value),
            None,
            false,
        )?
        .items)
}

/// Open tasks a biller should see: those assigned to them, and unassigned
/// ones of a kind they receive.
pub fn open_for(db: &Db, biller: &str, receives: &[String]) -> Result<Vec<Task>, StoreError> {
    let mut tasks = with_status_for(db, TaskStatus::Open, Some(biller))?;
    tasks.extend(
        with_status_for(db, TaskStatus::Open, None)?
            .into_iter()
            .filter(|t| receives.iter().any(|k| k == &t.kind || k == "*")),
    );
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tasks)
}

/// Closes a task with an optional note, and frees its dedupe key (so the
/// same problem can be raised again later) in the same transaction.
pub fn close(
    db: &Db,
    id: &str,
    now: DateTime<Utc>,
    author: &str,
    note: Option<&str>,
) -> Result<Task, TaskError> {
    let task = db.transact(|tx| {
        let mut t = tx
            .get::<Task>(id)?
            .ok_or_else(|| TaskError::NotFound(id.to_string()))?;
        if t.status == TaskStatus::Closed {
            return Err(TaskError::AlreadyClosed(id.to_string()));
        }
        t.status = TaskStatus::Closed;
        if let Some(text) = note {
            t.notes.push(TaskNote {
                at: now,
                author: author.to_string(),
                text: text.to_string(),
            });
        }
        tx.put(&t)?;
        if tx
            .get::<TaskDedupe>(&t.dedupe_key)?
            .is_some_and(|d| d.task_id == t.id)
        {
            tx.remove::<TaskDedupe>(&t.dedupe_key)?;
        }
        Ok(t)
    })?;
    db.flush()?;
    Ok(task)
}

/// Assigns an open task to biller `to`, noting who did it and who had it
/// before.
pub fn assign(
    db: &Db,
    id: &str,
    now: DateTime<Utc>,
    author: &str,
    to: &str,
) -> Result<Task, TaskError> {
    let mut outcome: Result<(), TaskError> = Err(TaskError::NotFound(id.to_string()));
    let updated = db.modify::<Task, _>(id, |t| {
        if t.status == TaskStatus::Closed {
            outcome = Err(TaskError::AlreadyClosed(id.to_string()));
            return;
        }
        outcome = Ok(());
        let text = match t.assignee.replace(to.to_string()) {
            Some(before) => format!("assigned to {to} (was {before})"),
            None => format!("assigned to {to}"),
        };
        t.notes.push(TaskNote {
            at: now,
            author: author.to_string(),
            text,
        });
    })?;
    outcome?;
    let task = updated.ok_or_else(|| TaskError::NotFound(id.to_string()))?;
    db.flush()?;
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;
    fn test_db() -> Db {
        Db::in_memory()
    }

    fn new(key: &str) -> NewTask {
        NewTask {
            kind: "missed-run".into(),
            subject: "job x did not run".into(),
            priority: Priority::Normal,
            due: None,
            assignee: None,
            payer: None,
            dedupe_key: key.into(),
        }
    }

    #[test]
    fn same_problem_raises_one_task_until_closed() {
        let db = test_db();
        let now = Utc::now();
        let (a, fresh_a) = raise(&db, now, new("k1")).unwrap();
        let (b, fresh_b) = raise(&db, now, new("k1")).unwrap();
        assert!(fresh_a && !fresh_b);
        assert_eq!(a.id, b.id);
        let (c, _) = raise(&db, now, new("k2")).unwrap();
        assert_ne!(a.id, c.id);
        assert_eq!(all(&db).unwrap().len(), 2);
        close(&db, &a.id, now, "dana", Some("rescheduled")).unwrap();
        assert!(matches!(
            close(&db, &a.id, now, "dana", None),
            Err(TaskError::AlreadyClosed(_))
        ));
        let (d, fresh_d) = raise(&db, now, new("k1")).unwrap();
        assert!(fresh_d);
        assert_ne!(d.id, a.id);
    }

    #[test]
    fn routing_by_assignee_and_kind() {
        let db = test_db();
        let now = Utc::now();
        let mut assigned = new("a");
        assigned.assignee = Some("dana".into());
        raise(&db, now, assigned).unwrap();
        raise(&db, now, new("b")).unwrap();
        let mut denial = new("c");
        denial.kind = "denial".into();
        raise(&db, now, denial).unwrap();
        let dana = open_for(&db, "dana", &["denial".into()]).unwrap();
        assert_eq!(dana.len(), 2);
        let lee = open_for(&db, "lee", &["missed-run".into()]).unwrap();
        assert_eq!(lee.len(), 1);
        assert!(matches!(
            close(&db, "T999999", now, "x", None),
            Err(TaskError::NotFound(_))
        ));
    }

    #[test]
    fn sixteen_concurrent_raises_with_one_key_create_one_task() {
        let dir = tempfile::tempdir().unwrap();
        let sled = Db::open_sled(
            &dir.path().join("store"),
            &{
                let k = dir.path().join("k");
                crate::store::StoreKey::generate_to(&k).unwrap();
                k
            },
            8 << 20,
        )
        .unwrap();
        for db in [sled, test_db()] {
            let barrier = std::sync::Barrier::new(16);
            let fresh: Vec<(String, bool)> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..16)
                    .map(|_| {
                        let (db, barrier) = (&db, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            let (t, fresh) = raise(db, Utc::now(), new("same-problem")).unwrap();
                            (t.id, fresh)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(fresh.iter().filter(|(_, f)| *f).count(), 1, "{fresh:?}");
            let ids: std::collections::BTreeSet<&String> = fresh.iter().map(|(id, _)| id).collect();
            assert_eq!(ids.len(), 1, "{fresh:?}");
            assert_eq!(all(&db).unwrap().len(), 1);
            assert!(db.check_indexes::<Task>().unwrap().is_consistent());
        }
    }

    #[test]
    fn open_tasks_come_from_the_index_and_closing_moves_them() {
        let db = test_db();
        let now = Utc::now();
        for k in 0..5 {
            raise(&db, now, new(&format!("k{k}"))).unwrap();
        }
        let before = db.decode_count();
        assert_eq!(open(&db).unwrap().len(), 5);
        assert_eq!(db.decode_count() - before, 5);
        close(&db, "T000002", now, "dana", None).unwrap();
        assert_eq!(open(&db).unwrap().len(), 4);
        assert_eq!(
            with_status_for(&db, TaskStatus::Closed, None).unwrap()[0].id,
            "T000002"
        );
        assert!(db.check_indexes::<Task>().unwrap().is_consistent());
    }

    #[test]
    fn ids_skip_any_taken_by_an_earlier_counter() {
        let db = test_db();
        let now = Utc::now();
        let mut old = raise(&db, now, new("a")).unwrap().0;
        old.id = "T000002".into();
        old.dedupe_key = "old".into();
        db.put(&old).unwrap();
        let (t, _) = raise(&db, now, new("b")).unwrap();
        assert_eq!(t.id, "T000003");
    }
}
