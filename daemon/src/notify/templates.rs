//! Editable email templates.
//!
//! Offices reword their emails without a rebuild: a job may point at its own
//! template files; otherwise the defaults from `config/templates` (compiled
//! in) are used. Templates are plain text rendered with minijinja; undefined
//! variables are errors, so a typo fails the check instead of sending a
//! half-empty email.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::path::Path;

/// The built-in digest body (config/templates/digest.txt).
pub const DIGEST_BODY: &str = include_str!("../../../config/templates/digest.txt");
/// The built-in digest subject (config/templates/digest-subject.txt).
pub const DIGEST_SUBJECT: &str = include_str!("../../../config/templates/digest-subject.txt");

/// The built-in notice templates (config/templates), by name: (subject,
/// body).
pub const NOTICES: &[(&str, &str, &str)] = &[
    (
        "statement",
        include_str!("../../../config/templates/statement-subject.txt"),
        include_str!("../../../config/templates/statement.txt"),
    ),
    (
        "reminder",
        include_str!("../../../config/templates/reminder-subject.txt"),
        include_str!("../../../config/templates/reminder.txt"),
    ),
    (
        "final-notice",
        include_str!("../../../config/templates/final-notice-subject.txt"),
        include_str!("../../../config/templates/final-notice.txt"),
    ),
];

/// Why a template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read template {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The template is malformed or used an unknown variable.
    #[error("template {name}: {reason}")]
    Render {
        /// Template name or path.
        name: String,
        /// What minijinja said (line included).
        reason: String,
    },
}

/// A subject and body template pair.
pub struct MailTemplates {
    env: Environment<'static>,
}

impl std::fmt::Debug for MailTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailTemplates").finish_non_exhaustive()
    }
}

impl MailTemplates {
    /// Builds from template sources; `name` is used in error messages.
    pub fn new(name: &str, subject: String, body: String) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let err = |e: minijinja::Error| TemplateError::Render {
            name: name.to_string(),
            reason: e.to_string(),
        };
        env.add_template_owned("subject", subject).map_err(err)?;
        env.add_template_owned("body", body).map_err(err)?;
        Ok(Self { env })
    }

    /// The digest templates: the files given, or the built-in defaults.
    pub fn digest(
        subject_file: Option<&Path>,
        body_file: Option<&Path>,
    ) -> Result<Self, TemplateError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| TemplateError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let subject = subject_file
            .map(read)
            .transpose()?
            .unwrap_or_else(|| DIGEST_SUBJECT.to_string());
        let body = body_file
            .map(read)
            .transpose()?
            .unwrap_or_else(|| DIGEST_BODY.to_string());
        let name = body_file
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "digest".into());
        Self::new(&name, subject, body)
    }

    /// The notice templates named `name`: `<dir>/<name>-subject.txt` and
    /// `<dir>/<name>.txt` when `dir` is given, else the built-in ones
    /// ([`NOTICES`]).
    pub fn notice(name: &str, dir: Option<&Path>) -> Result<Self, TemplateError> {
        let read = |p: std::path::PathBuf| {
            std::fs::read_to_string(&p).map_err(|source| TemplateError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        match dir {
            Some(dir) => {
                let body = dir.join(format!("{name}.txt"));
                let subject = read(dir.join(format!("{name}-subject.txt")))?;
                Self::new(&body.display().to_string(), subject, read(body.clone())?)
            }
            None => {
                let (_, subject, body) = NOTICES
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .ok_or_else(|| TemplateError::Render {
                        name: name.to_string(),
                        reason: format!(
                            "no built-in template `{name}` (built in: statement, reminder, final-notice); set template_dir"
                        ),
                    })?;
                Self::new(name, subject.to_string(), body.to_string())
            }
        }
    }

    /// Renders (subject, body). The subject is trimmed to one line.
    pub fn render<C: Serialize>(&self, ctx: &C) -> Result<(String, String), TemplateError> {
        let render = |n: &str| {
            self.env
                .get_template(n)
                .and_then(|t| t.render(ctx))
                .map_err(|e| TemplateError::Render {
                    name: n.to_string(),
                    reason: e.to_string(),
                })
        };
        let subject = render("subject")?;
        let subject = subject.lines().next().unwrap_or("").trim().to_string();
        Ok((subject, render("body")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn undefined_variables_are_errors() {
        let t = MailTemplates::new("t", "{{ nope }}".into(), "x".into()).unwrap();
        assert!(matches!(
            t.render(&json!({})),
            Err(TemplateError::Render { .. })
        ));
    }

    #[test]
    fn custom_files_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("s.txt");
        std::fs::write(&s, "Tasks: {{ total }}\nsecond line ignored").unwrap();
        let t = MailTemplates::digest(Some(&s), None).unwrap();
        let (subject, _) = t
            .render(
                &json!({"total": 2, "biller": "b", "practice": "p", "generated": "g",
                "by_priority": [], "by_kind": [], "tasks": [], "shown": 0, "omitted": 0}),
            )
            .unwrap();
        assert_eq!(subject, "Tasks: 2");
        assert!(matches!(
            MailTemplates::digest(Some(&dir.path().join("missing")), None),
            Err(TemplateError::Read { .. })
        ));
    }
}
