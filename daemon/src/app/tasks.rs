//! Task operations: the biller task queue (list with filters, show, add by
//! hand, assign to a biller, close).

use serde::{Deserialize, Serialize};

use super::{App, AppError};
use crate::domain::task::{self as domain, NewTask, Priority, Task, TaskError, TaskStatus};

/// Which tasks [`list`] returns. The default: open tasks of any kind and
/// assignee.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskFilter {
    /// Include closed tasks.
    pub include_closed: bool,
    /// Only tasks assigned to this biller.
    pub assignee: Option<String>,
    /// Only tasks of this kind.
    pub kind: Option<String>,
}

impl TaskFilter {
    /// Whether `t` passes the filter.
    pub fn matches(&self, t: &Task) -> bool {
        (self.include_closed || t.status == TaskStatus::Open)
            && self
                .assignee
                .as_ref()
                .is_none_or(|a| t.assignee.as_ref() == Some(a))
            && self.kind.as_ref().is_none_or(|k| &t.kind == k)
    }
}

/// A task raised by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTask {
    /// Kind, for routing to billers (for example `denial`).
    pub kind: String,
    /// What it is about: ids and codes, no patient details.
    pub subject: String,
    /// Urgency.
    pub priority: Priority,
    /// The configured biller it is for.
    #[serde(default)]
    pub assignee: Option<String>,
}

/// The tasks passing `filter`, oldest first.
pub fn list(app: &App, filter: &TaskFilter) -> Result<Vec<Task>, AppError> {
    Ok(domain::all(app.db())?
        .into_iter()
        .filter(|t| filter.matches(t))
        .collect())
}

/// The task with id `id`.
pub fn show(app: &App, id: &str) -> Result<Task, AppError> {
    app.db()
        .get::<Task>(id)?
        .ok_or_else(|| TaskError::NotFound(id.to_string()).into())
}

fn biller(app: &App, name: &str) -> Result<(), AppError> {
    if app.config().billers.iter().any(|b| b.name == name) {
        Ok(())
    } else {
        Err(AppError::NoSuchBiller(name.to_string()))
    }
}

/// Raises a task by hand; each call raises a new one. The assignee must be
/// a configured biller.
pub fn add(app: &App, new: AddTask) -> Result<Task, AppError> {
    if let Some(a) = &new.assignee {
        biller(app, a)?;
    }
    // A hand-raised task is its own problem: a store counter gives each
    // one a dedupe key no other can have (two adds in one clock tick too).
    let serial = app.db().next_counter("manual-task")?;
    let (t, _) = domain::raise(
        app.db(),
        app.now(),
        NewTask {
            kind: new.kind,
            subject: new.subject,
            priority: new.priority,
            due: None,
            assignee: new.assignee,
            payer: None,
            dedupe_key: format!("manual/{serial}"),
        },
    )?;
    app.db().flush()?;
    Ok(t)
}

/// Assigns open task `id` to the configured biller `to`; `by` is who did
/// it (kept in a note).
pub fn assign(app: &App, id: &str, to: &str, by: &str) -> Result<Task, AppError> {
    biller(app, to)?;
    Ok(domain::assign(app.db(), id, app.now(), by, to)?)
}

/// Closes open task `id`; `by` is who closed it, `note` what was done.
pub fn close(app: &App, id: &str, by: &str, note: Option<&str>) -> Result<Task, AppError> {
    Ok(domain::close(app.db(), id, app.now(), by, note)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::ErrorKind;

    fn app() -> App {
        crate::app::testing::app("")
    }

    fn add_one(app: &App, kind: &str, assignee: Option<&str>) -> Task {
        add(
            app,
            AddTask {
                kind: kind.into(),
                subject: "claim C-1 denied: CARC 50".into(),
                priority: Priority::High,
                assignee: assignee.map(Into::into),
            },
        )
        .unwrap()
    }

    #[test]
    fn add_show_and_list_with_filters() {
        let app = app();
        let a = add_one(&app, "denial", Some("dana"));
        let b = add_one(&app, "rejection", None);
        assert_ne!(a.id, b.id, "every manual add raises a new task");
        assert_eq!(a.created_at, app.now());
        assert_eq!(show(&app, &a.id).unwrap(), a);

        let ids = |f: TaskFilter| -> Vec<String> {
            list(&app, &f).unwrap().into_iter().map(|t| t.id).collect()
        };
        assert_eq!(ids(TaskFilter::default()), [a.id.as_str(), b.id.as_str()]);
        let dana = TaskFilter {
            assignee: Some("dana".into()),
            ..Default::default()
        };
        assert_eq!(ids(dana.clone()), [a.id.as_str()]);
        let rejections = TaskFilter {
            kind: Some("rejection".into()),
            ..Default::default()
        };
        assert_eq!(ids(rejections), [b.id.as_str()]);

        close(&app, &a.id, "dana", Some("appealed")).unwrap();
        assert!(ids(dana.clone()).is_empty(), "closed tasks are left out");
        let all = TaskFilter {
            include_closed: true,
            ..dana
        };
        assert_eq!(ids(all), [a.id.as_str()]);
    }

    #[test]
    fn unknown_ids_and_billers_are_typed_errors() {
        let app = app();
        let e = show(&app, "T999999").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.message(), "no task with id T999999");

        let e = add(
            &app,
            AddTask {
                kind: "denial".into(),
                subject: "x".into(),
                priority: Priority::Normal,
                assignee: Some("nobody".into()),
            },
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(e.message(), "no biller named `nobody`");
        assert!(list(&app, &TaskFilter::default()).unwrap().is_empty());
    }

    #[test]
    fn assign_moves_an_open_task_to_a_configured_biller() {
        let app = app();
        let t = add_one(&app, "denial", Some("dana"));
        let moved = assign(&app, &t.id, "lee", "sam").unwrap();
        assert_eq!(moved.assignee.as_deref(), Some("lee"));
        let note = moved.notes.last().unwrap();
        assert_eq!(
            (note.author.as_str(), note.text.as_str()),
            ("sam", "assigned to lee (was dana)")
        );
        assert_eq!(show(&app, &t.id).unwrap(), moved, "the change is stored");

        let e = assign(&app, &t.id, "nobody", "sam").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = assign(&app, "T999999", "lee", "sam").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);

        close(&app, &t.id, "lee", None).unwrap();
        let e = assign(&app, &t.id, "dana", "sam").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.message(), format!("task {} is already closed", t.id));
        assert_eq!(
            show(&app, &t.id).unwrap().assignee.as_deref(),
            Some("lee"),
            "a refused assignment changes nothing"
        );
    }
}
