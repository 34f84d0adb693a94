//! Biller tasks: the work billd hands to a person.
//!
//! A task says what needs a human (a job that did not run, a denial, a
//! rejected claim) in record ids and codes, never in patient details, so it
//! can travel in a digest email. The same problem never makes two open
//! tasks: each task has a dedupe key claimed atomically in the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Db, Record, StoreError};

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
    fn key(&self) -> String {
        self.id.clone()
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

/// A named counter, for short sequential ids billers can say aloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Counter name.
    pub name: String,
    /// Last value handed out.
    pub value: u64,
}

impl Record for Counter {
    const COLLECTION: &'static str = "counters";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// Hands out the next value of counter `name` (1, 2, 3, ...).
pub fn next_counter(db: &Db, name: &str) -> Result<u64, StoreError> {
    let updated = db.update::<Counter, _>(name, |c| {
        let mut c = c.unwrap_or(Counter {
            name: name.to_string(),
            value: 0,
        });
        c.value += 1;
        Some(c)
    })?;
    Ok(updated.map(|c| c.value).unwrap_or(1))
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

/// Raises a task unless one with the same dedupe key exists; returns the task
/// and whether it is new.
pub fn raise(db: &Db, now: DateTime<Utc>, new: NewTask) -> Result<(Task, bool), StoreError> {
    if let Some(d) = db.get::<TaskDedupe>(&new.dedupe_key)?
        && let Some(t) = db.get::<Task>(&d.task_id)?
    {
        return Ok((t, false));
    }
    let id = format!("T{:06}", next_counter(db, "task")?);
    let claimed = db.insert_new(&TaskDedupe {
        dedupe_key: new.dedupe_key.clone(),
        task_id: id.clone(),
    })?;
    if !claimed {
        // Another writer raised it between our read and our claim.
        if let Some(d) = db.get::<TaskDedupe>(&new.dedupe_key)?
            && let Some(t) = db.get::<Task>(&d.task_id)?
        {
            return Ok((t, false));
        }
    }
    let task = Task {
        id,
        kind: new.kind,
        subject: new.subject,
        priority: new.priority,
        created_at: now,
        due: new.due,
        assignee: new.assignee,
        status: TaskStatus::Open,
        notes: Vec::new(),
        dedupe_key: new.dedupe_key,
    };
    db.put(&task)?;
    tracing::info!(task = %task.id, kind = %task.kind, "task raised");
    Ok((task, true))
}

/// Every task, oldest first.
pub fn all(db: &Db) -> Result<Vec<Task>, StoreError> {
    db.scan::<Task>("T")
}

/// Open tasks a biller should see: those assigned to them, and unassigned
/// ones of a kind they receive.
pub fn open_for(db: &Db, biller: &str, receives: &[String]) -> Result<Vec<Task>, StoreError> {
    Ok(all(db)?
        .into_iter()
        .filter(|t| t.status == TaskStatus::Open)
        .filter(|t| match &t.assignee {
            Some(a) => a == biller,
            None => receives.iter().any(|k| k == &t.kind || k == "*"),
        })
        .collect())
}

/// Closes a task with an optional note.
pub fn close(
    db: &Db,
    id: &str,
    now: DateTime<Utc>,
    author: &str,
    note: Option<&str>,
) -> Result<Task, TaskError> {
    let mut outcome: Result<(), TaskError> = Ok(());
    let updated = db.update::<Task, _>(id, |t| {
        let mut t = match t {
            None => {
                outcome = Err(TaskError::NotFound(id.to_string()));
                return None;
            }
            Some(t) => t,
        };
        if t.status == TaskStatus::Closed {
            outcome = Err(TaskError::AlreadyClosed(id.to_string()));
            return Some(t);
        }
        outcome = Ok(());
        t.status = TaskStatus::Closed;
        if let Some(text) = note {
            t.notes.push(TaskNote {
                at: now,
                author: author.to_string(),
                text: text.to_string(),
            });
        }
        Some(t)
    })?;
    outcome?;
    let task = updated.ok_or_else(|| TaskError::NotFound(id.to_string()))?;
    // Free the dedupe key so the same problem can be raised again later.
    db.remove::<TaskDedupe>(&task.dedupe_key)?;
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
}
