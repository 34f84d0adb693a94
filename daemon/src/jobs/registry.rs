//! The one list of job kinds.
//!
//! Each kind lives in its own module and brings two things: its typed
//! params (a serde struct with `deny_unknown_fields`) and a constructor that
//! takes those params, the job's own settings ([`JobSetup`]) and the
//! daemon's [`Services`]. Adding a kind means one new file and one line in
//! [`KINDS`]. The configuration checks `[job.params]` through
//! [`check_params`], so a mistyped or unknown param is reported with its
//! file, line and column by `billd check-config`, and the same struct is
//! what the constructor receives.

use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;

use super::SharedJobKind;
use crate::clock::SharedClock;
use crate::domain::practice::{Biller, Practice};
use crate::notify::mail::Mailer;
use crate::notify::routing::NotifyConfig;
use crate::plugin::{AuditSink, PluginRegistry};
use crate::store::Db;

/// What every job kind may use, built once by the daemon (after the plugins
/// have loaded, so jobs can call connectors).
#[derive(Clone)]
pub struct Services {
    /// The store.
    pub db: Db,
    /// The clock (never the wall clock directly).
    pub clock: SharedClock,
    /// Outgoing mail.
    pub mailer: Arc<Mailer>,
    /// The loaded connector plugins, when any are configured.
    pub plugins: Option<Arc<PluginRegistry>>,
    /// Where audit records go (connector calls, effects).
    pub audit: Arc<dyn AuditSink>,
    /// The practice billd works for.
    pub practice: Practice,
    /// The billers, in configuration order.
    pub billers: Vec<Biller>,
    /// `[notify]`: routes (the digest honours those to billers).
    pub notify: Arc<NotifyConfig>,
    /// The configuration file's directory: relative paths in params start
    /// here.
    pub base_dir: PathBuf,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("practice", &self.practice.name)
            .field("billers", &self.billers.len())
            .field("plugins", &self.plugins.as_ref().map(|p| p.list().len()))
            .finish_non_exhaustive()
    }
}

/// Services for a job kind's tests: the store and clock given, an outbox
/// mailer nobody reads, no plugins, a test practice, relative paths from
/// `base_dir`.
#[cfg(test)]
pub(crate) fn test_services(db: &Db, clock: SharedClock, base_dir: &std::path::Path) -> Services {
    Services {
        db: db.clone(),
        clock,
        mailer: Arc::new(Mailer::outbox(
            "b <b@example.invalid>".parse().expect("a mailbox"),
            std::path::Path::new("/nonexistent"),
        )),
        plugins: None,
        audit: Arc::new(crate::plugin::TracingAudit),
        practice: Practice {
            name: "Test Practice".into(),
            npi: "1234567893".into(),
            tax_id: "123456789".into(),
            timezone: chrono_tz::UTC,
        },
        billers: vec![],
        notify: Default::default(),
        base_dir: base_dir.to_path_buf(),
    }
}

/// One configured job, as its kind's constructor sees it.
#[derive(Debug, Clone)]
pub struct JobSetup {
    /// The job's name.
    pub name: String,
    /// The timezone its schedule (and its notion of "today") is read in.
    pub timezone: chrono_tz::Tz,
}

/// Why a job could not be built from its params.
#[derive(Debug, thiserror::Error)]
#[error("job param `{key}`: {reason}")]
pub struct BuildError {
    /// The param at fault (or the kind, when the whole job is at fault).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// One problem with a job's params, for the configuration to locate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    /// The param at fault; `None` for the table as a whole (a missing
    /// required param).
    pub param: Option<String>,
    /// Whether the param's value (rather than its name) is at fault.
    pub at_value: bool,
    /// What is wrong.
    pub message: String,
}

/// A job kind in the registry.
pub struct KindEntry {
    /// The name written in `[[job]] kind = ...`.
    pub name: &'static str,
    /// Checks a `[job.params]` table against the kind's params type.
    pub check: fn(kind: &str, params: &toml::Table) -> Vec<ParamProblem>,
    /// Builds the kind for one job.
    pub build: fn(&toml::Table, &JobSetup, &Services) -> Result<SharedJobKind, BuildError>,
}

/// Every job kind billd knows. Add a kind here.
pub static KINDS: &[KindEntry] = &[
    super::digest::KIND,
    super::prune::KIND,
    super::eligibility::KIND,
    super::submission::KIND,
    super::claim_status::KIND,
    super::remittance_posting::KIND,
    super::dunning::KIND,
    super::ehr_sync::KIND,
    super::collections::KIND,
];

/// The names of the known kinds, in registry order.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

/// The kind named `name`.
pub fn kind(name: &str) -> Option<&'static KindEntry> {
    KINDS.iter().find(|k| k.name == name)
}

/// Builds the job kind for a configured job.
pub fn build(
    kind_name: &str,
    params: &toml::Table,
    setup: &JobSetup,
    services: &Services,
) -> Result<SharedJobKind, BuildError> {
    let entry = kind(kind_name).ok_or_else(|| BuildError {
        key: "kind".into(),
        reason: format!("unknown job kind `{kind_name}`"),
    })?;
    (entry.build)(params, setup, services)
}

/// Reads a params table into the kind's typed params (the constructor's
/// side of [`check_params`]).
pub fn parse_params<P: DeserializeOwned>(params: &toml::Table) -> Result<P, BuildError> {
    serde_path_to_error::deserialize(toml::Value::Table(params.clone())).map_err(|e| {
        let path = e.path().to_string();
        BuildError {
            key: if path == "." { "params".into() } else { path },
            reason: plain_message(&e.into_inner().to_string()),
        }
    })
}

/// Every problem with `params` for the kind whose params type is `P`: each
/// unknown name, each value of the wrong type, and missing required params.
pub fn check_params<P: DeserializeOwned>(kind: &str, params: &toml::Table) -> Vec<ParamProblem> {
    let fields = field_names::<P>();
    let mut problems = Vec::new();
    for (name, value) in params {
        if !fields.contains(&name.as_str()) {
            let expected: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
            problems.push(ParamProblem {
                param: Some(name.clone()),
                at_value: false,
                message: format!(
                    "unknown parameter for kind {kind:?}; expected one of {}",
                    expected.join(", ")
                ),
            });
            continue;
        }
        // Each known param on its own, so every bad value is reported.
        let alone = toml::Table::from_iter([(name.clone(), value.clone())]);
        if let Err(e) = serde_path_to_error::deserialize::<_, P>(toml::Value::Table(alone))
            && e.path().to_string() == *name
        {
            problems.push(ParamProblem {
                param: Some(name.clone()),
                at_value: true,
                message: plain_message(&e.into_inner().to_string()),
            });
        }
    }
    if problems.is_empty()
        && let Err(e) = parse_params::<P>(params)
    {
        problems.push(ParamProblem {
            param: (e.key != "params").then_some(e.key),
            at_value: true,
            message: e.reason,
        });
    }
    problems
}

/// serde's "invalid type: integer `3`, expected a string" as a biller reads
/// it: "must be a string".
fn plain_message(serde_msg: &str) -> String {
    let first = serde_msg.lines().next().unwrap_or(serde_msg);
    match first.split_once(", expected ") {
        Some((head, want))
            if head.starts_with("invalid type") || head.starts_with("invalid value") =>
        {
            let want = match want {
                "a boolean" => "true or false",
                w if w.starts_with('u') || w.starts_with('i') && w[1..].parse::<u32>().is_ok() => {
                    "a whole number"
                }
                w => w,
            };
            format!("must be {want}")
        }
        _ => first.to_string(),
    }
}

/// The field names of a struct's serde implementation, as its derive lists
/// them (read by asking it to deserialize from a deserializer that only
/// records the list).
pub fn field_names<P: DeserializeOwned>() -> &'static [&'static str] {
    let mut probe = FieldProbe(&[]);
    let _ = P::deserialize(&mut probe);
    probe.0
}

struct FieldProbe(&'static [&'static str]);

impl<'de> serde::Deserializer<'de> for &mut FieldProbe {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("params must be a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(serde::de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Params {
        name: String,
        #[serde(default)]
        count: u32,
        #[serde(default)]
        loud: bool,
    }

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn field_names_come_from_the_derive() {
        assert_eq!(field_names::<Params>(), ["name", "count", "loud"]);
    }

    #[test]
    fn every_problem_is_reported_with_its_param() {
        let p = check_params::<Params>("k", &table("nmae = 'x'\ncount = 'many'\nloud = 3\n"));
        let shown: Vec<(Option<&str>, &str)> = p
            .iter()
            .map(|p| (p.param.as_deref(), p.message.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (Some("count"), "must be a whole number"),
                (Some("loud"), "must be true or false"),
                (
                    Some("nmae"),
                    "unknown parameter for kind \"k\"; expected one of `name`, `count`, `loud`"
                ),
            ]
        );
        let missing = check_params::<Params>("k", &table("count = 2\n"));
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].param, None);
        assert!(
            missing[0].message.contains("missing field `name`"),
            "{missing:?}"
        );
    }

    #[test]
    fn good_params_parse_into_the_struct() {
        assert!(check_params::<Params>("k", &table("name = 'x'\n")).is_empty());
        assert_eq!(
            parse_params::<Params>(&table("name = 'x'\nloud = true\n")).unwrap(),
            Params {
                name: "x".into(),
                count: 0,
                loud: true
            }
        );
    }

    #[test]
    fn every_registered_kind_has_a_unique_name_and_struct_params() {
        let mut names = kind_names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        for k in KINDS {
            // A params table that is not a struct would make every param
            // "unknown"; an empty table is fine or names what is missing.
            let problems = (k.check)(k.name, &toml::Table::new());
            assert!(
                problems.iter().all(|p| p.param.is_none()),
                "{}: {problems:?}",
                k.name
            );
        }
    }
}
