//! Checking `[notify]`: urgent kinds, `[[notify.webhook]]` and
//! `[[notify.route]]`, each problem located at its value.
//!
//! Routes are checked after the whole file is read, so a route may name a
//! biller defined below it.

use std::collections::HashMap;

use secrecy::ExposeSecret;
use toml::Spanned;

use super::super::raw::{RawNotify, RawRoute, RawWebhook};
use super::super::secret::SecretRef;
use super::{Checker, is_identifier, is_loopback};
use crate::domain::practice::Biller;
use crate::notify::routing::{
    DEFAULT_WEBHOOK_TIMEOUT, Destination, NotifyConfig, Route, WebhookConfig, WebhookSecret,
};

impl Checker<'_> {
    /// `[notify]` as written (`None`: the section is absent) into a
    /// [`NotifyConfig`]; `None` when it has problems.
    pub(super) fn notify(
        &mut self,
        raw: Option<RawNotify>,
        billers: Option<&[Biller]>,
    ) -> Option<NotifyConfig> {
        let Some(raw) = raw else {
            return Some(NotifyConfig::default());
        };
        let before = self.problems.len();
        let mut cfg = NotifyConfig::default();
        if let Some(urgent) = &raw.urgent {
            cfg.urgent = self.names(urgent, "notify.urgent", "a task kind");
        }
        if let Some(interval) = &raw.interval {
            match self.duration(interval, "notify.interval") {
                Some(d) if !d.is_zero() => cfg.interval = d,
                Some(_) => {
                    self.problem(
                        Some(&interval.span()),
                        "notify.interval",
                        "must be longer than zero",
                    );
                }
                None => {}
            }
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, hook) in raw.webhook.iter().enumerate() {
            if let Some(w) = self.webhook(i, hook, &mut names) {
                cfg.webhooks.push(w);
            }
        }
        for (i, route) in raw.route.iter().enumerate() {
            if let Some(r) = self.route(i, route, billers, &names) {
                cfg.routes.push(r);
            }
        }
        (self.problems.len() == before).then_some(cfg)
    }

    /// A list of identifiers (task kinds), each once.
    fn names(&mut self, raw: &Spanned<Vec<Spanned<String>>>, key: &str, what: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (j, name) in raw.get_ref().iter().enumerate() {
            let key = format!("{key}[{j}]");
            if !is_identifier(name.get_ref()) {
                self.problem(
                    Some(&name.span()),
                    &key,
                    format!("must be {what} (letters, digits, - and _)"),
                );
            } else if out.contains(name.get_ref()) {
                self.problem(
                    Some(&name.span()),
                    &key,
                    format!("{:?} is listed twice", name.get_ref()),
                );
            } else {
                out.push(name.get_ref().clone());
            }
        }
        out
    }

    fn webhook(
        &mut self,
        i: usize,
        raw: &Spanned<RawWebhook>,
        names: &mut HashMap<String, usize>,
    ) -> Option<WebhookConfig> {
        let before = self.problems.len();
        let prefix = format!("notify.webhook[{i}]");
        let hook = raw.get_ref();
        let name = hook.name.get_ref().clone();
        if !is_identifier(&name) {
            self.problem(
                Some(&hook.name.span()),
                &format!("{prefix}.name"),
                "must be letters, digits, - and _ only, and not empty",
            );
        } else if let Some(line) = names.get(&name) {
            self.problem(
                Some(&hook.name.span()),
                &format!("{prefix}.name"),
                format!("duplicate webhook name {name:?} (first defined at line {line})"),
            );
        } else {
            names.insert(name.clone(), self.src.at(&hook.name.span()).line);
        }
        let url_key = format!("{prefix}.url");
        // The URL is never echoed: a Slack-style URL is itself a credential.
        let url = match url::Url::parse(hook.url.get_ref()) {
            Ok(url) if url.scheme() == "https" => Some(url),
            Ok(url) if url.scheme() == "http" && is_loopback(&url) => Some(url),
            Ok(url) if url.scheme() == "http" => {
                self.problem(
                    Some(&hook.url.span()),
                    &url_key,
                    "http:// is allowed only to a loopback address; use https://",
                );
                None
            }
            Ok(_) => {
                self.problem(
                    Some(&hook.url.span()),
                    &url_key,
                    "the scheme must be https:// (or http:// to loopback)",
                );
                None
            }
            Err(e) => {
                self.problem(Some(&hook.url.span()), &url_key, format!("not a URL ({e})"));
                None
            }
        };
        let secret_key = format!("{prefix}.secret");
        let secret = SecretRef::parse(hook.secret.get_ref())
            .and_then(|r| r.resolve_with(&self.base, self.env))
            .map_err(|e| e.to_string())
            .and_then(|s| WebhookSecret::parse(s.expose_secret()).map_err(|e| e.to_string()));
        let secret = match secret {
            Ok(s) => Some(s),
            Err(message) => {
                self.problem(Some(&hook.secret.span()), &secret_key, message);
                None
            }
        };
        let timeout = match &hook.timeout {
            None => Some(DEFAULT_WEBHOOK_TIMEOUT),
            Some(t) => match self.duration(t, &format!("{prefix}.timeout")) {
                Some(d) if !d.is_zero() => Some(d),
                Some(_) => {
                    self.problem(
                        Some(&t.span()),
                        &format!("{prefix}.timeout"),
                        "must be longer than zero",
                    );
                    None
                }
                None => None,
            },
        };
        if self.problems.len() != before {
            return None;
        }
        Some(WebhookConfig {
            name,
            url: url?,
            secret: secret?,
            timeout: timeout?,
        })
    }

    fn route(
        &mut self,
        i: usize,
        raw: &Spanned<RawRoute>,
        billers: Option<&[Biller]>,
        webhooks: &HashMap<String, usize>,
    ) -> Option<Route> {
        let before = self.problems.len();
        let prefix = format!("notify.route[{i}]");
        let route = raw.get_ref();
        let kinds = route
            .kinds
            .as_ref()
            .map(|k| self.names(k, &format!("{prefix}.kinds"), "a task kind"))
            .unwrap_or_default();
        let mut payers: Vec<String> = Vec::new();
        if let Some(list) = &route.payers {
            for (j, p) in list.get_ref().iter().enumerate() {
                let key = format!("{prefix}.payers[{j}]");
                let id = p.get_ref().trim();
                if id.is_empty() || id.chars().any(char::is_whitespace) {
                    self.problem(Some(&p.span()), &key, "must be a payer id, without spaces");
                } else if payers.iter().any(|x| x == id) {
                    self.problem(Some(&p.span()), &key, format!("{id:?} is listed twice"));
                } else {
                    payers.push(id.to_string());
                }
            }
        }
        let to = match (&route.biller, &route.webhook) {
            (Some(_), Some(w)) => {
                self.problem(
                    Some(&w.span()),
                    &format!("{prefix}.webhook"),
                    "a route names one destination: set biller or webhook, not both",
                );
                None
            }
            (None, None) => {
                self.problem(
                    Some(&raw.span()),
                    &prefix,
                    "a route needs a destination: biller = \"NAME\" or webhook = \"NAME\"",
                );
                None
            }
            (Some(b), None) => {
                let known = billers.is_none_or(|all| all.iter().any(|x| &x.name == b.get_ref()));
                if known {
                    Some(Destination::Biller(b.get_ref().clone()))
                } else {
                    let all = billers.unwrap_or_default();
                    self.problem(
                        Some(&b.span()),
                        &format!("{prefix}.biller"),
                        format!(
                            "no biller named {:?} (billers: {})",
                            b.get_ref(),
                            list(all.iter().map(|x| x.name.as_str()))
                        ),
                    );
                    None
                }
            }
            (None, Some(w)) => {
                if webhooks.contains_key(w.get_ref()) {
                    Some(Destination::Webhook(w.get_ref().clone()))
                } else {
                    let mut known: Vec<&str> = webhooks.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    self.problem(
                        Some(&w.span()),
                        &format!("{prefix}.webhook"),
                        format!(
                            "no [[notify.webhook]] named {:?} (webhooks: {})",
                            w.get_ref(),
                            list(known.into_iter())
                        ),
                    );
                    None
                }
            }
        };
        if self.problems.len() != before {
            return None;
        }
        Some(Route {
            kinds,
            payers,
            to: to?,
        })
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
