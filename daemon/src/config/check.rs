//! Turning the file as written into a [`Config`], collecting every problem.
//!
//! Each top-level section and each `[[billers]]`/`[[job]]` entry is
//! deserialized on its own, so a typo in one job does not hide a bad cron
//! expression in the next: the administrator sees all problems in one pass.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::SourceText;
use super::raw::{RawBiller, RawJob, RawMail, RawNotify, RawPractice, RawStore};
use super::secret::{SecretEnv, SecretRef};
use super::{
    Biller, Config, ConfigError, DEFAULT_CACHE_BYTES, DEFAULT_CATCH_UP_WINDOW,
    DEFAULT_JOB_CONCURRENCY, DEFAULT_SMTP_POOL_MAX, DEFAULT_SMTP_TIMEOUT, JobConfig, MailConfig,
    MailTransport, Misfire, Practice, Problem, SmtpTls, StoreConfig, parse_schedule,
};
use crate::plugin::{PluginEntry, PluginPool, PluginTrust};

mod notify;

const SECTIONS: &[&str] = &[
    "practice",
    "store",
    "mail",
    "billers",
    "notify",
    "job",
    "plugin",
    "plugin_trust",
    "plugin_pool",
];

/// Validates `text` (read from `source`) into a [`Config`].
pub(super) fn check(text: &str, source: &Path, env: &dyn SecretEnv) -> Result<Config, ConfigError> {
    let src = SourceText::new(source, text);
    let mut checker = Checker {
        src: &src,
        problems: Vec::new(),
        base: base_dir(source),
        env,
    };

    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(err) => {
            checker.problem(err.span().as_ref(), "syntax", err.message());
            return Err(checker.into_error());
        }
    };
    let config = checker.config(root.into_inner());
    match config {
        Some(config) if checker.problems.is_empty() => Ok(config),
        _ => Err(checker.into_error()),
    }
}

/// The directory relative paths are resolved against: the config file's,
/// made absolute.
fn base_dir(source: &Path) -> PathBuf {
    let dir = source.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

struct Checker<'a> {
    src: &'a SourceText<'a>,
    problems: Vec<Problem>,
    base: PathBuf,
    env: &'a dyn SecretEnv,
}

impl Checker<'_> {
    fn problem(&mut self, span: Option<&Range<usize>>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            location: span.map(|span| self.src.at(span)),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn into_error(mut self) -> ConfigError {
        // File order; problems without a place (missing sections) last.
        self.problems.sort_by_key(|p| {
            p.location
                .as_ref()
                .map_or((usize::MAX, 0), |l| (l.line, l.column))
        });
        ConfigError::Invalid {
            file: self.src_file(),
            problems: self.problems,
        }
    }

    fn src_file(&self) -> PathBuf {
        self.src.location(0).file
    }

    fn path(&self, raw: &str) -> PathBuf {
        self.base.join(raw)
    }

    fn config(&mut self, root: DeTable<'_>) -> Option<Config> {
        let mut practice = None;
        let mut store = None;
        let mut mail = None;
        let mut billers = Some(Vec::new());
        let mut notify_raw = None;
        let mut notify_ok = true;
        let mut jobs_raw = Vec::new();
        let mut plugins = Vec::new();
        let mut plugin_spans = Vec::new();
        let mut plugin_trust = PluginTrust::default();
        let mut trust_span = None;
        let mut plugin_pool = PluginPool::default();
        let mut pool_span = None;
        let mut seen = Vec::new();

        for (key, value) in root {
            let name = key.get_ref().as_ref();
            seen.push(name.to_string());
            match name {
                "practice" => {
                    practice = self
                        .section::<RawPractice>("practice", value)
                        .and_then(|raw| self.practice(raw));
                }
                "store" => {
                    store = self
                        .section::<RawStore>("store", value)
                        .and_then(|raw| self.store(raw));
                }
                "mail" => {
                    let span = key.span();
                    mail = self
                        .section::<RawMail>("mail", value)
                        .and_then(|raw| self.mail(raw, &span));
                }
                "billers" => billers = self.billers(value),
                "notify" => {
                    notify_raw = self.section::<RawNotify>("notify", value);
                    notify_ok = notify_raw.is_some();
                }
                "job" => jobs_raw = self.job_entries(value),
                "plugin" => {
                    for (i, entry) in self
                        .entries("plugin", value)
                        .unwrap_or_default()
                        .into_iter()
                        .enumerate()
                    {
                        let span = entry.span();
                        if let Some(p) = self.section::<PluginEntry>(&format!("plugin[{i}]"), entry)
                        {
                            plugins.push(p);
                            plugin_spans.push(span);
                        }
                    }
                }
                "plugin_trust" => {
                    trust_span = Some(key.span());
                    if let Some(t) = self.section::<PluginTrust>("plugin_trust", value) {
                        plugin_trust = t;
                    }
                }
                "plugin_pool" => {
                    pool_span = Some(key.span());
                    if let Some(p) = self.section::<PluginPool>("plugin_pool", value) {
                        plugin_pool = p;
                    }
                }
                other => {
                    let hint = match other {
                        "jobs" => " (did you mean [[job]]?)".to_string(),
                        "biller" => " (did you mean [[billers]]?)".to_string(),
                        _ => String::new(),
                    };
                    self.problem(
                        Some(&key.span()),
                        other,
                        format!("unknown key; expected one of {}{hint}", quoted(SECTIONS)),
                    );
                }
            }
        }
        for required in ["practice", "store", "mail"] {
            if !seen.iter().any(|s| s == required) {
                self.problem(None, required, format!("missing section [{required}]"));
            }
        }

        // Jobs default to the practice's timezone, so they are checked after
        // [practice] wherever it appears in the file.
        let default_tz = practice
            .as_ref()
            .map_or(chrono_tz::UTC, |p: &Practice| p.timezone);
        let jobs = self.jobs(jobs_raw, default_tz);
        // Routes name billers, so they are checked once all are read.
        let notify = self
            .notify(notify_raw, billers.as_deref())
            .filter(|_| notify_ok);
        self.plugins(&plugins, &plugin_spans, &plugin_trust, trust_span.as_ref());
        if let Some(jobs) = &jobs {
            // Every job may run at once, each with its concurrency.
            let calls_at_once = jobs.iter().map(|j| j.concurrency).sum();
            for problem in plugin_pool.validate(calls_at_once) {
                self.problem(pool_span.as_ref(), &problem.field, problem.reason);
            }
        }

        Some(Config {
            source: self.src_file(),
            practice: practice?,
            store: store?,
            mail: mail?,
            billers: billers?,
            notify: notify?,
            jobs: jobs?,
            plugins,
            plugin_trust,
            plugin_pool,
        })
    }

    /// Checks `[[plugin]]` entries and `[plugin_trust]`, and that every
    /// plugin secret reference resolves now.
    fn plugins(
        &mut self,
        entries: &[PluginEntry],
        spans: &[Range<usize>],
        trust: &PluginTrust,
        trust_span: Option<&Range<usize>>,
    ) {
        for problem in crate::plugin::config::validate(entries, trust) {
            let span = problem
                .field
                .strip_prefix("plugin[")
                .and_then(|rest| rest.split(']').next())
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| spans.get(i))
                .or(trust_span);
            self.problem(span, &problem.field, problem.reason);
        }
        for (i, entry) in entries.iter().enumerate() {
            for (name, reference) in &entry.secrets {
                let Ok(r) = SecretRef::parse(reference) else {
                    continue; // reported by validate
                };
                if let Err(e) = r.resolve_with(&self.base, self.env) {
                    self.problem(
                        spans.get(i),
                        &format!("plugin[{i}].secrets.{name}"),
                        e.to_string(),
                    );
                }
            }
        }
    }

    /// Deserializes one table, reporting a failure with the key it concerns.
    fn section<T: for<'de> Deserialize<'de>>(
        &mut self,
        prefix: &str,
        value: Spanned<DeValue<'_>>,
    ) -> Option<T> {
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            self.problem(Some(&value.span()), prefix, "expected a table");
            return None;
        }
        let for_keys = value.clone();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(raw) => Some(raw),
            Err(err) => {
                self.serde_problem(prefix, &for_keys, &err);
                None
            }
        }
    }

    fn serde_problem(&mut self, prefix: &str, value: &Spanned<DeValue<'_>>, err: &toml::de::Error) {
        let message = err.message();
        let span = err.span();
        if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some((field, expected)) = rest.split_once('`')
        {
            let expected = expected.trim_start_matches(", ");
            let mut key = key_at(prefix, value, span.as_ref());
            if !key.ends_with(&format!(".{field}")) {
                key = format!("{key}.{field}");
            }
            let message = if expected.is_empty() {
                "unknown key".to_string()
            } else {
                format!("unknown key; {expected}")
            };
            self.problem(span.as_ref(), &key, message);
        } else if let Some(rest) = message.strip_prefix("missing field `")
            && let Some((field, _)) = rest.split_once('`')
        {
            self.problem(
                span.as_ref(),
                &format!("{}.{field}", key_at(prefix, value, span.as_ref())),
                "missing required key",
            );
        } else {
            let key = key_at(prefix, value, span.as_ref());
            self.problem(span.as_ref(), &key, message);
        }
    }

    fn practice(&mut self, raw: RawPractice) -> Option<Practice> {
        let before = self.problems.len();
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            self.problem(Some(&raw.name.span()), "practice.name", "must not be empty");
        }
        if let Err(message) = check_npi(raw.npi.get_ref()) {
            self.problem(Some(&raw.npi.span()), "practice.npi", message);
        }
        let tax_id = match normalize_tax_id(raw.tax_id.get_ref()) {
            Some(tax_id) => tax_id,
            None => {
                self.problem(
                    Some(&raw.tax_id.span()),
                    "practice.tax_id",
                    "must be 9 digits, optionally written NN-NNNNNNN",
                );
                String::new()
            }
        };
        let timezone = self.timezone(&raw.timezone, "practice.timezone");
        (self.problems.len() == before).then(|| Practice {
            name,
            npi: raw.npi.into_inner(),
            tax_id,
            timezone: timezone.unwrap_or(chrono_tz::UTC),
        })
    }

    fn timezone(&mut self, raw: &Spanned<String>, key: &str) -> Option<chrono_tz::Tz> {
        match raw.get_ref().parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.problem(
                    Some(&raw.span()),
                    key,
                    format!(
                        "unknown timezone {:?} (use an IANA name such as \"America/New_York\")",
                        raw.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn non_empty_path(&mut self, raw: &Spanned<String>, key: &str) -> Option<PathBuf> {
        if raw.get_ref().trim().is_empty() {
            self.problem(Some(&raw.span()), key, "must not be empty");
            None
        } else {
            Some(self.path(raw.get_ref()))
        }
    }

    fn store(&mut self, raw: RawStore) -> Option<StoreConfig> {
        let path = self.non_empty_path(&raw.path, "store.path");
        let key_file = self.non_empty_path(&raw.key_file, "store.key_file");
        let cache_bytes = match &raw.cache_bytes {
            None => Some(DEFAULT_CACHE_BYTES),
            Some(value) => match u64::try_from(*value.get_ref()) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.problem(
                        Some(&value.span()),
                        "store.cache_bytes",
                        "must be a positive number of bytes",
                    );
                    None
                }
            },
        };
        Some(StoreConfig {
            path: path?,
            key_file: key_file?,
            cache_bytes: cache_bytes?,
        })
    }

    fn mailbox(&mut self, raw: &Spanned<String>, key: &str) -> Option<lettre::message::Mailbox> {
        match raw.get_ref().parse::<lettre::message::Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(err) => {
                self.problem(
                    Some(&raw.span()),
                    key,
                    format!(
                        "not an email address ({err}); write \"name@example.org\" or \"Name <name@example.org>\""
                    ),
                );
                None
            }
        }
    }

    fn mail(&mut self, raw: RawMail, section: &Range<usize>) -> Option<MailConfig> {
        let from = self.mailbox(&raw.from, "mail.from");
        let transport = match (&raw.smtp_url, &raw.outbox_dir) {
            (Some(url), Some(outbox)) => {
                self.problem(
                    Some(&outbox.span()),
                    "mail.outbox_dir",
                    "set either mail.smtp_url or mail.outbox_dir, not both",
                );
                // Still check the URL, so a password in it is reported now.
                let _ = self.smtp(&raw, url);
                None
            }
            (None, None) => {
                self.problem(
                    Some(section),
                    "mail",
                    "set one of mail.smtp_url (send through SMTP) or mail.outbox_dir (write .eml files)",
                );
                None
            }
            (None, Some(outbox)) => {
                let smtp_only = [
                    ("tls", raw.tls.as_ref().map(Spanned::span)),
                    ("username", raw.username.as_ref().map(Spanned::span)),
                    ("password", raw.password.as_ref().map(Spanned::span)),
                    ("pool_max", raw.pool_max.as_ref().map(Spanned::span)),
                    ("timeout", raw.timeout.as_ref().map(Spanned::span)),
                ];
                let mut ok = true;
                for (key, span) in smtp_only {
                    if let Some(span) = span {
                        ok = false;
                        self.problem(
                            Some(&span),
                            &format!("mail.{key}"),
                            "only used with mail.smtp_url; remove it when using mail.outbox_dir",
                        );
                    }
                }
                let dir = self.non_empty_path(outbox, "mail.outbox_dir");
                ok.then_some(MailTransport::Outbox { dir: dir? })
            }
            (Some(url), None) => self.smtp(&raw, url),
        };
        Some(MailConfig {
            from: from?,
            transport: transport?,
        })
    }

    fn smtp(&mut self, raw: &RawMail, url_raw: &Spanned<String>) -> Option<MailTransport> {
        let before = self.problems.len();
        let url_span = url_raw.span();
        let key = "mail.smtp_url";
        // The URL is never echoed: it might contain a password.
        let url = match url::Url::parse(url_raw.get_ref()) {
            Ok(url) => url,
            Err(err) => {
                self.problem(
                    Some(&url_span),
                    key,
                    format!("not a URL ({err}); write e.g. \"smtps://mail.example.org\""),
                );
                return None;
            }
        };
        let implicit = match url.scheme() {
            "smtps" => true,
            "smtp" => false,
            _ => {
                self.problem(
                    Some(&url_span),
                    key,
                    "the scheme must be smtp:// (STARTTLS or none, see mail.tls) or smtps:// (TLS)",
                );
                return None;
            }
        };
        if url.password().is_some() {
            self.problem(
                Some(&url_span),
                key,
                "secrets by reference only: remove the password from the URL and set mail.password = \"env:NAME\" or \"file:PATH\"",
            );
        } else if !url.username().is_empty() {
            self.problem(
                Some(&url_span),
                key,
                "remove the user name from the URL and set mail.username",
            );
        }
        let host = url.host_str().unwrap_or("").to_string();
        if host.is_empty() {
            self.problem(Some(&url_span), key, "the URL needs a host");
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            self.problem(
                Some(&url_span),
                key,
                "write only scheme://host[:port]; choose TLS with mail.tls",
            );
        }
        let tls = match (&raw.tls, implicit) {
            (None, true) => Some(SmtpTls::Implicit),
            (None, false) => Some(SmtpTls::StartTls),
            (Some(tls), true) => {
                self.problem(
                    Some(&tls.span()),
                    "mail.tls",
                    "smtps:// always uses TLS; remove mail.tls (or use smtp:// for STARTTLS)",
                );
                None
            }
            (Some(tls), false) => match tls.get_ref().as_str() {
                "starttls" => Some(SmtpTls::StartTls),
                "none" => Some(SmtpTls::None),
                _ => {
                    self.problem(
                        Some(&tls.span()),
                        "mail.tls",
                        "must be \"starttls\" (the default) or \"none\"",
                    );
                    None
                }
            },
        };
        let username = raw.username.as_ref().and_then(|u| {
            if u.get_ref().is_empty() {
                self.problem(Some(&u.span()), "mail.username", "must not be empty");
                None
            } else {
                Some(u.get_ref().clone())
            }
        });
        let password = raw.password.as_ref().and_then(|p| {
            let resolved = SecretRef::parse(p.get_ref())
                .and_then(|secret| secret.resolve_with(&self.base, self.env));
            match resolved {
                Ok(secret) => Some(secret),
                Err(err) => {
                    self.problem(Some(&p.span()), "mail.password", err.to_string());
                    None
                }
            }
        });
        match (&raw.username, &raw.password) {
            (Some(u), None) => self.problem(
                Some(&u.span()),
                "mail.username",
                "needs mail.password as well (\"env:NAME\" or \"file:PATH\")",
            ),
            (None, Some(p)) => self.problem(
                Some(&p.span()),
                "mail.password",
                "needs mail.username as well",
            ),
            _ => {}
        }
        if let (Some(SmtpTls::None), Some(p)) = (tls, &raw.password)
            && !is_loopback(&url)
        {
            self.problem(
                Some(&p.span()),
                "mail.password",
                "would cross the network unencrypted; use tls = \"starttls\" or smtps://",
            );
        }
        let pool_max = match &raw.pool_max {
            None => DEFAULT_SMTP_POOL_MAX,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    self.problem(Some(&n.span()), "mail.pool_max", "must be at least 1");
                    0
                }
            },
        };
        let timeout = match &raw.timeout {
            None => DEFAULT_SMTP_TIMEOUT,
            Some(t) => match self.duration(t, "mail.timeout") {
                Some(d) if !d.is_zero() => d,
                Some(_) => {
                    self.problem(Some(&t.span()), "mail.timeout", "must be longer than zero");
                    Duration::ZERO
                }
                None => Duration::ZERO,
            },
        };
        if self.problems.len() != before {
            return None;
        }
        let tls = tls?;
        let port = url.port().unwrap_or(match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 587,
            SmtpTls::None => 25,
        });
        let host_for_url = url.host().map(|h| h.to_string()).unwrap_or_default();
        let lettre_url = match tls {
            SmtpTls::Implicit => format!("smtps://{host_for_url}:{port}"),
            SmtpTls::StartTls => format!("smtp://{host_for_url}:{port}?tls=required"),
            SmtpTls::None => format!("smtp://{host_for_url}:{port}"),
        };
        Some(MailTransport::Smtp {
            url: lettre_url,
            host,
            port,
            tls,
            username,
            password,
            pool_max,
            timeout,
        })
    }

    fn duration(&mut self, raw: &Spanned<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(raw.get_ref()) {
            Ok(duration) => Some(duration),
            Err(err) => {
                self.problem(
                    Some(&raw.span()),
                    key,
                    format!("not a duration ({err}); write e.g. \"6h\", \"30m\" or \"1h 30m\""),
                );
                None
            }
        }
    }

    /// The entries of an array of tables (`[[billers]]`, `[[job]]`).
    fn entries<'i>(
        &mut self,
        prefix: &str,
        value: Spanned<DeValue<'i>>,
    ) -> Option<Vec<Spanned<DeValue<'i>>>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) => Some(items.into_iter().collect()),
            _ => {
                self.problem(Some(&span), prefix, format!("expected [[{prefix}]] tables"));
                None
            }
        }
    }

    fn billers(&mut self, value: Spanned<DeValue<'_>>) -> Option<Vec<Biller>> {
        let entries = self.entries("billers", value)?;
        let mut billers = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut ok = true;
        for (i, entry) in entries.into_iter().enumerate() {
            let prefix = format!("billers[{i}]");
            let Some(raw) = self.section::<RawBiller>(&prefix, entry) else {
                ok = false;
                continue;
            };
            let before = self.problems.len();
            let name = raw.name.get_ref().trim().to_string();
            if name.is_empty() {
                self.problem(
                    Some(&raw.name.span()),
                    &format!("{prefix}.name"),
                    "must not be empty",
                );
            } else if let Some(first_line) = names.get(&name) {
                self.problem(
                    Some(&raw.name.span()),
                    &format!("{prefix}.name"),
                    format!("duplicate biller name {name:?} (first defined at line {first_line})"),
                );
            } else {
                names.insert(name.clone(), self.src.at(&raw.name.span()).line);
            }
            let email = self.mailbox(&raw.email, &format!("{prefix}.email"));
            let mut receives: Vec<String> = Vec::new();
            if raw.receives.get_ref().is_empty() {
                self.problem(
                    Some(&raw.receives.span()),
                    &format!("{prefix}.receives"),
                    "must list at least one task kind or \"digest\"",
                );
            }
            for (j, what) in raw.receives.get_ref().iter().enumerate() {
                let key = format!("{prefix}.receives[{j}]");
                if !is_identifier(what.get_ref()) {
                    self.problem(
                        Some(&what.span()),
                        &key,
                        "must be a task kind or \"digest\" (letters, digits, - and _)",
                    );
                } else if receives.contains(what.get_ref()) {
                    self.problem(
                        Some(&what.span()),
                        &key,
                        format!("{:?} is listed twice", what.get_ref()),
                    );
                } else {
                    receives.push(what.get_ref().clone());
                }
            }
            match email {
                Some(email) if self.problems.len() == before => billers.push(Biller {
                    name,
                    email,
                    receives,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(billers)
    }

    fn job_entries<'i>(&mut self, value: Spanned<DeValue<'i>>) -> Vec<Spanned<DeValue<'i>>> {
        self.entries("job", value).unwrap_or_default()
    }

    fn jobs(
        &mut self,
        entries: Vec<Spanned<DeValue<'_>>>,
        default_tz: chrono_tz::Tz,
    ) -> Option<Vec<JobConfig>> {
        let mut jobs = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut ok = true;
        for (i, entry) in entries.into_iter().enumerate() {
            let prefix = format!("job[{i}]");
            let header = entry.span();
            let params_keys = entry_params(&entry);
            let Some(raw) = self.section::<RawJob>(&prefix, entry) else {
                ok = false;
                continue;
            };
            let before = self.problems.len();
            let key = |field: &str| format!("{prefix}.{field}");

            let name = raw.name.get_ref().clone();
            if !is_identifier(&name) {
                self.problem(
                    Some(&raw.name.span()),
                    &key("name"),
                    "must be letters, digits, - and _ only, and not empty",
                );
            } else if let Some(first_line) = names.get(&name) {
                self.problem(
                    Some(&raw.name.span()),
                    &key("name"),
                    format!("duplicate job name {name:?} (first defined at line {first_line})"),
                );
            } else {
                names.insert(name.clone(), self.src.at(&raw.name.span()).line);
            }

            let kind = raw.kind.get_ref().clone();
            if crate::jobs::registry::kind(&kind).is_none() {
                self.problem(
                    Some(&raw.kind.span()),
                    &key("kind"),
                    format!(
                        "unknown job kind {kind:?}; known kinds: {}",
                        quoted(&crate::jobs::registry::kind_names())
                    ),
                );
            }

            if let Err(err) = parse_schedule(raw.schedule.get_ref()) {
                self.problem(
                    Some(&raw.schedule.span()),
                    &key("schedule"),
                    format!(
                        "bad cron expression {:?}: {err} (5 fields \"min hour day month weekday\", or 6 with seconds first)",
                        raw.schedule.get_ref()
                    ),
                );
            }

            let timezone = match &raw.timezone {
                None => Some(default_tz),
                Some(tz) => self.timezone(tz, &key("timezone")),
            };

            let misfire = match &raw.misfire {
                None => Some(Misfire::RunOnce),
                Some(m) => match m.get_ref().as_str() {
                    "run-once" => Some(Misfire::RunOnce),
                    "skip" => Some(Misfire::Skip),
                    _ => {
                        self.problem(
                            Some(&m.span()),
                            &key("misfire"),
                            "must be \"run-once\" or \"skip\"",
                        );
                        None
                    }
                },
            };

            let catch_up_window = match &raw.catch_up_window {
                None => Some(DEFAULT_CATCH_UP_WINDOW),
                Some(w) => self.duration(w, &key("catch_up_window")),
            };

            let concurrency = match &raw.concurrency {
                None => Some(DEFAULT_JOB_CONCURRENCY),
                Some(c) => match usize::try_from(*c.get_ref()) {
                    Ok(n) if n >= 1 => Some(n),
                    _ => {
                        self.problem(Some(&c.span()), &key("concurrency"), "must be at least 1");
                        None
                    }
                },
            };

            let params = raw.params.unwrap_or_default();
            self.check_params(&prefix, &kind, &params, &params_keys, &header);

            if self.problems.len() != before {
                ok = false;
                continue;
            }
            jobs.push(JobConfig {
                name,
                kind,
                schedule: raw.schedule.into_inner(),
                timezone: timezone?,
                misfire: misfire?,
                catch_up_window: catch_up_window?,
                enabled: raw.enabled.unwrap_or(true),
                concurrency: concurrency?,
                params,
                location: self.src.at(&header),
            });
        }
        ok.then_some(jobs)
    }

    fn check_params(
        &mut self,
        prefix: &str,
        kind: &str,
        params: &toml::Table,
        key_spans: &HashMap<String, (Range<usize>, Range<usize>)>,
        header: &Range<usize>,
    ) {
        let Some(entry) = crate::jobs::registry::kind(kind) else {
            return;
        };
        for problem in (entry.check)(kind, params) {
            let (key, span) = match &problem.param {
                Some(name) => {
                    let (key_span, value_span) = key_spans
                        .get(name)
                        .cloned()
                        .unwrap_or((header.clone(), header.clone()));
                    (
                        format!("{prefix}.params.{name}"),
                        if problem.at_value {
                            value_span
                        } else {
                            key_span
                        },
                    )
                }
                None => (format!("{prefix}.params"), header.clone()),
            };
            self.problem(Some(&span), &key, problem.message);
        }
    }
}

/// Key and value spans of the entries of a job's `params` table.
fn entry_params(entry: &Spanned<DeValue<'_>>) -> HashMap<String, (Range<usize>, Range<usize>)> {
    let mut spans = HashMap::new();
    if let DeValue::Table(table) = entry.get_ref()
        && let Some(params) = table.get("params")
        && let DeValue::Table(params) = params.get_ref()
    {
        for (key, value) in params.iter() {
            spans.insert(key.get_ref().to_string(), (key.span(), value.span()));
        }
    }
    spans
}

/// The dotted key path of the innermost entry under `value` whose key or
/// value contains `span`'s start; `prefix` when none does.
fn key_at(prefix: &str, value: &Spanned<DeValue<'_>>, span: Option<&Range<usize>>) -> String {
    let Some(span) = span else {
        return prefix.to_string();
    };
    let offset = span.start;
    let contains = |r: &Range<usize>| r.start <= offset && offset < r.end.max(r.start + 1);
    match value.get_ref() {
        DeValue::Table(table) => {
            for (key, child) in table.iter() {
                if contains(&key.span()) {
                    return format!("{prefix}.{}", key.get_ref());
                }
                let path = format!("{prefix}.{}", key.get_ref());
                let inner = key_at(&path, child, Some(span));
                if inner != path || contains(&child.span()) {
                    return inner;
                }
            }
            prefix.to_string()
        }
        DeValue::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                let inner = key_at(&path, child, Some(span));
                if inner != path || contains(&child.span()) {
                    return inner;
                }
            }
            prefix.to_string()
        }
        _ => prefix.to_string(),
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks a National Provider Identifier: 10 digits whose last is the Luhn
/// check digit computed over the prefix 80840 and the first nine. The error
/// says what is wrong in words fit for a config message.
pub fn check_npi(npi: &str) -> Result<(), &'static str> {
    if npi.len() != 10 || !npi.bytes().all(|b| b.is_ascii_digit()) {
        return Err("an NPI is exactly 10 digits");
    }
    // One Luhn implementation for the whole project: the X12 toolkit's.
    if billd_x12::validate::npi_valid(npi) {
        Ok(())
    } else {
        Err("not a valid NPI: the check digit (last digit) does not match")
    }
}

/// Nine digits from `12-3456789` or `123456789`; `None` for anything else.
pub(super) fn normalize_tax_id(tax_id: &str) -> Option<String> {
    let digits: String = match tax_id.as_bytes() {
        [a, b, b'-', rest @ ..] if rest.len() == 7 => {
            let mut s = String::from_utf8(vec![*a, *b]).ok()?;
            s.push_str(std::str::from_utf8(rest).ok()?);
            s
        }
        _ => tax_id.to_string(),
    };
    (digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}
