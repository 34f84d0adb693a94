//! An EHR connector over FHIR R4 REST.
//!
//! - `appointments`: `Appointment?date=ge{start}&date=lt{end}`, every page.
//! - `patients-changed`, `coverages-changed`, `encounters-changed`: one
//!   Bundle page per call, ordered by `_lastUpdated`; the cursor billd keeps
//!   is JSON holding the Bundle's `next` link (mid-listing) or the highest
//!   `meta.lastUpdated` seen (`_lastUpdated=gt...` on the next sync); a
//!   `next` link the server no longer serves restarts from `ge` that mark.
//!   Encounters come with the ChargeItems (`context`) and Claims
//!   (`encounter`) that reference them.
//! - Auth ([`auth`]): SMART Backend Services (a client assertion billd
//!   signs with the practice's key `client-key`, the access token kept in
//!   the plugin's state and renewed before it expires or when refused), or
//!   a static bearer token (secret `bearer-token`).
//! - HTTP failures and OperationOutcome issues map onto the contract's
//!   connector errors ([`fhirhttp::outcome_error`]).

pub mod auth;
pub mod cursor;
pub mod fhir;
pub mod fhirhttp;
pub mod map;

use billd_plugin_sdk::ehr::*;
use billd_plugin_sdk::prelude::*;
use serde::de::DeserializeOwned;

use cursor::Cursor;
use fhir::Resource;
use fhirhttp::Client;

struct FhirEhr;

fn page_size() -> u32 {
    settings::integer("page-size").unwrap_or(200).clamp(1, 1000) as u32
}

fn signed_statuses() -> Vec<String> {
    settings::text("signed-statuses")
        .unwrap_or_else(|| "finished".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn iso(t: &Timestamp) -> Result<String, ConnectorError> {
    chrono::DateTime::from_timestamp(t.seconds, t.nanoseconds)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .ok_or_else(|| ConnectorError::invalid("window", "the instant is out of range"))
}

/// Every resource of a search, following its `next` links.
fn every_page<R: DeserializeOwned + Resource>(
    client: &Client,
    first: String,
) -> Result<Vec<R>, ConnectorError> {
    let mut out = Vec::new();
    let mut url = Some(first);
    while let Some(u) = url {
        let bundle = client.get_bundle::<R>(&u)?;
        url = bundle.next_link();
        out.extend(bundle.into_resources());
    }
    Ok(out)
}

/// The search of `kind` ordered by `_lastUpdated`, after (`gt`) or from
/// (`ge`) a high-water mark.
fn changed_search(client: &Client, kind: &str, cmp: &str, since: Option<&str>) -> String {
    let mut url = format!(
        "{}/{kind}?_sort=_lastUpdated&_count={}",
        client.base,
        page_size()
    );
    if let Some(hw) = since {
        url.push_str(&format!("&_lastUpdated={cmp}{}", fhirhttp::encode(hw)));
    }
    url
}

/// One page of a `*-changed` listing: the resources and the cursor after.
/// A `next` link the server no longer serves restarts the listing from
/// (`ge`) its high-water mark: what comes again is delivered twice, which
/// billd's upserts absorb, and nothing updated at that instant is skipped.
fn changed_page<R: DeserializeOwned + Resource>(
    client: &Client,
    kind: &str,
    since: Option<String>,
) -> Result<(Vec<R>, String), ConnectorError> {
    let cur = Cursor::parse(since.as_deref())?;
    let bundle: fhir::Bundle<R> = match &cur.next {
        Some(next) => match client.follow(next)? {
            Some(b) => b,
            None => {
                log::info(&format!(
                    "the server no longer has the next {kind} page; listing again from the last change seen"
                ));
                client.get_bundle(&changed_search(client, kind, "ge", cur.since.as_deref()))?
            }
        },
        None => client.get_bundle(&changed_search(client, kind, "gt", cur.since.as_deref()))?,
    };
    let next = bundle.next_link();
    let items: Vec<R> = bundle.into_resources().collect();
    let mut after = cur.advanced(items.iter().filter_map(Resource::last_updated));
    after.next = next;
    Ok((items, after.to_string()))
}

impl EhrConnector for FhirEhr {
    fn appointments(_key: &str, window: Window) -> Result<Vec<Appointment>, ConnectorError> {
        if window.end.seconds <= window.start.seconds {
            return Err(ConnectorError::invalid(
                "window.end",
                "must be after window.start",
            ));
        }
        let client = Client::from_settings()?;
        let first = format!(
            "{}/Appointment?date=ge{}&date=lt{}&_count={}",
            client.base,
            fhirhttp::encode(&iso(&window.start)?),
            fhirhttp::encode(&iso(&window.end)?),
            page_size()
        );
        let found = every_page::<fhir::Appointment>(&client, first)?;
        let out: Vec<Appointment> = found.iter().filter_map(map::appointment).collect();
        let unmappable = found.len() - out.len();
        if unmappable > 0 {
            log::warn(&format!(
                "{unmappable} appointments without an id were left out"
            ));
        }
        Ok(out)
    }

    fn patients_changed(_key: &str, since: Option<String>) -> Result<PatientPage, ConnectorError> {
        let client = Client::from_settings()?;
        let (items, next) = changed_page::<fhir::Patient>(&client, "Patient", since)?;
        let mapped: Vec<Patient> = items.iter().filter_map(map::patient).collect();
        if mapped.len() < items.len() {
            log::warn(&format!(
                "{} patients without an id were left out",
                items.len() - mapped.len()
            ));
        }
        Ok(PatientPage {
            items: mapped,
            next: Some(next),
        })
    }

    fn coverages_changed(
        _key: &str,
        since: Option<String>,
    ) -> Result<CoveragePage, ConnectorError> {
        let client = Client::from_settings()?;
        let (items, next) = changed_page::<fhir::Coverage>(&client, "Coverage", since)?;
        let mut out = Vec::with_capacity(items.len());
        // A family's dependents share a subscriber: read each one once.
        let mut read: std::collections::HashMap<String, Option<fhir::Patient>> =
            std::collections::HashMap::new();
        for r in &items {
            let dependent = r.relationship_code().is_some_and(|c| c != "self");
            let subscriber = if dependent {
                let reference = r.subscriber.reference.as_deref().unwrap_or_default();
                let readable = ["Patient/", "RelatedPerson/"]
                    .iter()
                    .any(|k| reference.starts_with(k) && !reference.contains('?'));
                if !readable {
                    None
                } else if let Some(known) = read.get(reference) {
                    known.clone()
                } else {
                    let got = client.read(reference)?;
                    read.insert(reference.to_owned(), got.clone());
                    got
                }
            } else {
                None
            };
            if let Some(c) = map::coverage(r, subscriber.as_ref()) {
                out.push(c);
            }
        }
        Ok(CoveragePage {
            items: out,
            next: Some(next),
        })
    }

    fn encounters_changed(
        _key: &str,
        since: Option<String>,
    ) -> Result<EncounterPage, ConnectorError> {
        let client = Client::from_settings()?;
        let (items, next) = changed_page::<fhir::Encounter>(&client, "Encounter", since)?;
        let ids: Vec<String> = items
            .iter()
            .filter_map(|r| r.id.as_deref())
            .map(|id| format!("Encounter/{id}"))
            .collect();
        let sources = settings::text("charge-sources").unwrap_or_else(|| "ChargeItem,Claim".into());
        let mut charge_items: Vec<fhir::ChargeItem> = Vec::new();
        let mut claims: Vec<fhir::Claim> = Vec::new();
        if !ids.is_empty() {
            for source in sources.split(',').map(str::trim) {
                // One search per page of encounters, in chunks the URL can hold.
                let search = |param: &str, chunk: &[String]| {
                    format!(
                        "{}/{source}?{param}={}&_count=1000",
                        client.base,
                        fhirhttp::encode(&chunk.join(","))
                    )
                };
                for chunk in ids.chunks(50) {
                    match source {
                        "ChargeItem" => {
                            charge_items.extend(every_page(&client, search("context", chunk))?);
                        }
                        "Claim" => claims.extend(every_page(&client, search("encounter", chunk))?),
                        "" => break,
                        other => {
                            return Err(ConnectorError::invalid(
                                "settings.charge-sources",
                                format!("{other:?} is neither ChargeItem nor Claim"),
                            ));
                        }
                    }
                }
            }
        }
        let signed = signed_statuses();
        let mut out = Vec::with_capacity(items.len());
        for r in &items {
            let me = format!("Encounter/{}", r.id.as_deref().unwrap_or_default());
            let refers = |e: &fhir::Reference| e.reference.as_deref() == Some(me.as_str());
            let cis: Vec<&fhir::ChargeItem> =
                charge_items.iter().filter(|c| refers(&c.context)).collect();
            let cls: Vec<&fhir::Claim> = claims
                .iter()
                .filter(|c| c.item.iter().any(|i| i.encounter.iter().any(refers)))
                .collect();
            if let Some(e) = map::encounter(r, &cis, &cls, &signed) {
                out.push(e);
            }
        }
        Ok(EncounterPage {
            items: out,
            next: Some(next),
        })
    }
}

billd_plugin_sdk::export_ehr_connector!(FhirEhr);
