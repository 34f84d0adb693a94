//! The FHIR R4 resources the `fhir` sandbox serves, and the searches billd's
//! EHR connector makes: by type, `_lastUpdated` (gt/ge), Appointment `date`
//! (ge/lt on `start`), ChargeItem `context` and Claim `encounter` (a
//! comma-separated list of references, any of which matches), `_count` with
//! offset paging, `_id`, `_sort=_lastUpdated`. Test-only.
//!
//! Resources come from a directory of FHIR JSON (one resource or a Bundle
//! per `.json` file, one resource a line per `.ndjson` file) and, for
//! benchmarks, from a generator. A resource without `meta.lastUpdated` or
//! `meta.versionId` gets [`DEFAULT_LAST_UPDATED`] and version 1, so a
//! fixture loads the same way every time.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

/// `meta.lastUpdated` of a fixture that does not carry one.
pub const DEFAULT_LAST_UPDATED: &str = "2026-01-01T00:00:00Z";

/// The largest page a search returns.
pub const MAX_COUNT: usize = 1000;

/// One stored resource with its parsed update instant.
#[derive(Debug, Clone)]
struct Stored {
    updated: DateTime<Utc>,
    resource: Value,
}

/// Every resource, by type then id.
#[derive(Debug, Default)]
pub struct FhirStore {
    by_type: BTreeMap<String, BTreeMap<String, Stored>>,
}

/// A search that could not be run, answered with an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError(pub String);

/// A prefix comparison of a search parameter (`gt2026-01-01`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn parse_cmp(name: &str, value: &str) -> Result<(Cmp, DateTime<Utc>), SearchError> {
    let (cmp, rest) = match value.get(..2) {
        Some("gt") => (Cmp::Gt, &value[2..]),
        Some("ge") => (Cmp::Ge, &value[2..]),
        Some("lt") => (Cmp::Lt, &value[2..]),
        Some("le") => (Cmp::Le, &value[2..]),
        Some("eq") => (Cmp::Eq, &value[2..]),
        _ => (Cmp::Eq, value),
    };
    let t = parse_instant(rest)
        .ok_or_else(|| SearchError(format!("{name}={value}: not a FHIR date or instant")))?;
    Ok((cmp, t))
}

/// The references of a resource a reference search parameter looks at.
type RefPath = fn(&Value) -> Vec<&str>;

/// The references a reference search parameter looks at, for the ones the
/// sandbox supports: ChargeItem `context` (`context.reference`) and Claim
/// `encounter` (`item.encounter.reference`).
fn reference_param(kind: &str, name: &str) -> Option<RefPath> {
    match (kind, name) {
        ("ChargeItem", "context") => {
            Some(|r| r["context"]["reference"].as_str().into_iter().collect())
        }
        ("Claim", "encounter") => Some(|r| {
            r["item"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|i| i["encounter"].as_array().into_iter().flatten())
                .filter_map(|e| e["reference"].as_str())
                .collect()
        }),
        _ => None,
    }
}

/// Whether a stored reference matches a searched one: the same text, or
/// the same `Type/id` at the end of an absolute reference.
fn reference_matches(have: &str, want: &str) -> bool {
    have == want || (want.contains('/') && have.ends_with(&format!("/{want}")))
}

fn holds(cmp: Cmp, have: DateTime<Utc>, want: DateTime<Utc>) -> bool {
    match cmp {
        Cmp::Gt => have > want,
        Cmp::Ge => have >= want,
        Cmp::Lt => have < want,
        Cmp::Le => have <= want,
        Cmp::Eq => have == want,
    }
}

/// One page of a search.
#[derive(Debug)]
pub struct Page {
    /// The matching resources on this page.
    pub resources: Vec<Value>,
    /// How many match in all.
    pub total: usize,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<usize>,
}

impl FhirStore {
    /// Loads every `.json` and `.ndjson` file under `dir` (recursively).
    ///
    /// # Errors
    /// Naming the file (and line) that is not FHIR JSON.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Self> {
        let mut store = Self::default();
        let mut files = Vec::new();
        collect(dir, &mut files)?;
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if file.extension().is_some_and(|e| e == "ndjson") {
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let v: Value = serde_json::from_str(line)
                        .map_err(|e| anyhow::anyhow!("{} line {}: {e}", file.display(), n + 1))?;
                    store
                        .insert(v)
                        .map_err(|e| anyhow::anyhow!("{} line {}: {e}", file.display(), n + 1))?;
                }
            } else {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                if v["resourceType"] == "Bundle" {
                    for entry in v["entry"].as_array().into_iter().flatten() {
                        store
                            .insert(entry["resource"].clone())
                            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                    }
                } else {
                    store
                        .insert(v)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                }
            }
        }
        Ok(store)
    }

    /// Adds (or replaces) a resource as loaded, filling in missing meta.
    ///
    /// # Errors
    /// When it has no `resourceType` or `id`, or a bad `meta.lastUpdated`.
    pub fn insert(&mut self, mut resource: Value) -> Result<(), String> {
        let kind = resource["resourceType"]
            .as_str()
            .ok_or("a resource without resourceType")?
            .to_owned();
        let id = resource["id"]
            .as_str()
            .ok_or_else(|| format!("a {kind} without id"))?
            .to_owned();
        if !resource["meta"].is_object() {
            resource["meta"] = json!({});
        }
        if resource["meta"]["lastUpdated"].as_str().is_none() {
            resource["meta"]["lastUpdated"] = json!(DEFAULT_LAST_UPDATED);
        }
        if resource["meta"]["versionId"].as_str().is_none() {
            resource["meta"]["versionId"] = json!("1");
        }
        let stamp = resource["meta"]["lastUpdated"].as_str().unwrap_or_default();
        let updated = parse_instant(stamp)
            .ok_or_else(|| format!("{kind}/{id}: meta.lastUpdated {stamp:?} is not an instant"))?;
        self.by_type
            .entry(kind)
            .or_default()
            .insert(id, Stored { updated, resource });
        Ok(())
    }

    /// Replaces a resource as an update would: the next version, updated at
    /// `now`. Returns the new version id.
    ///
    /// # Errors
    /// When the body's type or id differ from the path's.
    pub fn update(
        &mut self,
        kind: &str,
        id: &str,
        mut resource: Value,
        now: DateTime<Utc>,
    ) -> Result<String, String> {
        if resource["resourceType"] != kind || resource["id"] != id {
            return Err(format!("the body is not {kind}/{id}"));
        }
        let version = self
            .by_type
            .get(kind)
            .and_then(|m| m.get(id))
            .and_then(|s| s.resource["meta"]["versionId"].as_str())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        if !resource["meta"].is_object() {
            resource["meta"] = json!({});
        }
        resource["meta"]["versionId"] = json!(version.to_string());
        resource["meta"]["lastUpdated"] =
            json!(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        self.insert(resource)?;
        Ok(version.to_string())
    }

    /// One resource by type and id.
    #[must_use]
    pub fn read(&self, kind: &str, id: &str) -> Option<&Value> {
        self.by_type
            .get(kind)
            .and_then(|m| m.get(id))
            .map(|s| &s.resource)
    }

    /// Runs a search: the matches ordered by (`meta.lastUpdated`, id), one
    /// page from `_offset`.
    ///
    /// # Errors
    /// On a parameter the sandbox does not support or cannot parse.
    pub fn search(&self, kind: &str, params: &[(String, String)]) -> Result<Page, SearchError> {
        let mut updated = Vec::new();
        let mut dates = Vec::new();
        let mut ids: Option<Vec<String>> = None;
        let mut refs: Vec<(RefPath, Vec<String>)> = Vec::new();
        let mut count = 50usize;
        let mut offset = 0usize;
        for (name, value) in params {
            match name.as_str() {
                "_lastUpdated" => updated.push(parse_cmp(name, value)?),
                "date" if kind == "Appointment" => dates.push(parse_cmp(name, value)?),
                "_id" => ids = Some(value.split(',').map(str::to_owned).collect()),
                name if reference_param(kind, name).is_some() => {
                    let wanted: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if wanted.is_empty() {
                        return Err(SearchError(format!("{name}= names no reference")));
                    }
                    if let Some(path) = reference_param(kind, name) {
                        refs.push((path, wanted));
                    }
                }
                "_count" => {
                    count = value
                        .parse::<usize>()
                        .map_err(|_| SearchError(format!("_count={value}: not a number")))?
                        .clamp(1, MAX_COUNT);
                }
                "_offset" => {
                    offset = value
                        .parse()
                        .map_err(|_| SearchError(format!("_offset={value}: not a number")))?;
                }
                "_sort" if value == "_lastUpdated" => {}
                "_format" | "_total" => {}
                other => {
                    return Err(SearchError(format!(
                        "the sandbox does not support the search parameter {other:?} on {kind}"
                    )));
                }
            }
        }
        let mut matches: Vec<&Stored> = self
            .by_type
            .get(kind)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|s| updated.iter().all(|(c, t)| holds(*c, s.updated, *t)))
            .filter(|s| {
                ids.as_ref()
                    .is_none_or(|ids| ids.iter().any(|i| s.resource["id"] == i.as_str()))
            })
            .filter(|s| {
                refs.iter().all(|(path, wanted)| {
                    path(&s.resource)
                        .iter()
                        .any(|have| wanted.iter().any(|w| reference_matches(have, w)))
                })
            })
            .filter(|s| {
                dates.is_empty()
                    || s.resource["start"]
                        .as_str()
                        .and_then(parse_instant)
                        .is_some_and(|start| dates.iter().all(|(c, t)| holds(*c, start, *t)))
            })
            .collect();
        matches.sort_by(|a, b| {
            a.updated
                .cmp(&b.updated)
                .then_with(|| a.resource["id"].as_str().cmp(&b.resource["id"].as_str()))
        });
        let total = matches.len();
        let resources: Vec<Value> = matches
            .iter()
            .skip(offset)
            .take(count)
            .map(|s| s.resource.clone())
            .collect();
        let end = offset.saturating_add(resources.len());
        Ok(Page {
            resources,
            total,
            next_offset: (end < total).then_some(end),
        })
    }

    /// Adds `n` generated patients, each with one Coverage (payor
    /// `Organization/gen-payer`) and one booked Appointment on `day`, for
    /// benchmarks.
    pub fn generate(&mut self, n: usize, day: NaiveDate) {
        for i in 0..n {
            let pid = format!("gen-p{i:06}");
            let birth = format!("19{:02}-{:02}-{:02}", 40 + i % 60, 1 + i % 12, 1 + i % 28);
            let hour = 8 + (i % 9);
            let minute = (i / 9) % 4 * 15;
            let start = format!("{day}T{hour:02}:{minute:02}:00Z");
            let records = [
                json!({"resourceType": "Patient", "id": pid,
                    "name": [{"family": format!("Family{i}"), "given": [format!("Given{i}")]}],
                    "gender": if i % 2 == 0 { "female" } else { "male" },
                    "birthDate": birth,
                    "address": [{"line": [format!("{i} Main St")], "city": "Springfield",
                                 "state": "IL", "postalCode": "62701"}]}),
                json!({"resourceType": "Coverage", "id": format!("gen-c{i:06}"), "status": "active",
                    "subscriberId": format!("M{i:09}"),
                    "beneficiary": {"reference": format!("Patient/{pid}")},
                    "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
                    "payor": [{"reference": "Organization/gen-payer", "display": "Generated Health Plan"}],
                    "order": 1,
                    "period": {"start": "2026-01-01"}}),
                json!({"resourceType": "Appointment", "id": format!("gen-a{i:06}"), "status": "booked",
                "start": start, "minutesDuration": 15,
                "participant": [
                    {"actor": {"reference": format!("Patient/{pid}")}, "status": "accepted"},
                    {"actor": {"reference": "Practitioner/gen-doc", "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}, "status": "accepted"}
                ]}),
            ];
            for r in records {
                // Generated resources always carry type and id.
                let _ = self.insert(r);
            }
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("--data {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "json" || e == "ndjson")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// An OperationOutcome with one issue.
#[must_use]
pub fn outcome(code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn pages_cover_every_match_once_in_update_order() {
        let mut s = FhirStore::default();
        s.generate(25, NaiveDate::from_ymd_opt(2026, 12, 3).unwrap());
        let mut seen = Vec::new();
        let mut offset = Some(0);
        while let Some(o) = offset {
            let page = s
                .search(
                    "Patient",
                    &params(&[("_count", "10"), ("_offset", &o.to_string())]),
                )
                .unwrap();
            assert_eq!(page.total, 25);
            seen.extend(
                page.resources
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned()),
            );
            offset = page.next_offset;
        }
        assert_eq!(seen.len(), 25);
        let mut sorted = seen.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 25);
    }

    #[test]
    fn last_updated_and_appointment_date_filter() {
        let mut s = FhirStore::default();
        s.generate(3, NaiveDate::from_ymd_opt(2026, 12, 3).unwrap());
        let later = parse_instant("2026-06-01T00:00:00Z").unwrap();
        let mut p = s.read("Patient", "gen-p000001").unwrap().clone();
        p["gender"] = json!("other");
        assert_eq!(s.update("Patient", "gen-p000001", p, later).unwrap(), "2");
        let changed = s
            .search(
                "Patient",
                &params(&[("_lastUpdated", "gt2026-01-01T00:00:00Z")]),
            )
            .unwrap();
        assert_eq!(changed.total, 1);
        assert_eq!(changed.resources[0]["meta"]["versionId"], "2");
        let day = s
            .search(
                "Appointment",
                &params(&[("date", "ge2026-12-03"), ("date", "lt2026-12-04")]),
            )
            .unwrap();
        assert_eq!(day.total, 3);
        let none = s
            .search("Appointment", &params(&[("date", "ge2026-12-04")]))
            .unwrap();
        assert_eq!(none.total, 0);
        assert!(s.search("Patient", &params(&[("name", "x")])).is_err());
        assert!(
            s.search("Patient", &params(&[("_lastUpdated", "gtxx")]))
                .is_err()
        );
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.resources
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn charge_items_by_context_and_claims_by_encounter_match_any_listed_reference() {
        let mut s = FhirStore::default();
        for r in [
            json!({"resourceType": "ChargeItem", "id": "ci1", "context": {"reference": "Encounter/e1"}}),
            json!({"resourceType": "ChargeItem", "id": "ci2", "context": {"reference": "http://x.example/fhir/Encounter/e2"}}),
            json!({"resourceType": "ChargeItem", "id": "ci3", "context": {"reference": "Encounter/e3"}}),
            json!({"resourceType": "Claim", "id": "cl1", "item": [
                {"sequence": 1},
                {"sequence": 2, "encounter": [{"reference": "Encounter/e3"}, {"reference": "Encounter/e2"}]}
            ]}),
            json!({"resourceType": "Claim", "id": "cl2", "item": [{"sequence": 1, "encounter": [{"reference": "Encounter/e1"}]}]}),
        ] {
            s.insert(r).unwrap();
        }
        let ci = s
            .search(
                "ChargeItem",
                &params(&[("context", "Encounter/e1,Encounter/e2")]),
            )
            .unwrap();
        assert_eq!(ids(&ci), ["ci1", "ci2"]);
        let cl = s
            .search("Claim", &params(&[("encounter", "Encounter/e2")]))
            .unwrap();
        assert_eq!(ids(&cl), ["cl1"]);
        let none = s
            .search("Claim", &params(&[("encounter", "Encounter/e9")]))
            .unwrap();
        assert_eq!(none.total, 0);
        // A parameter of another type, or an empty list, is refused.
        assert!(
            s.search("Claim", &params(&[("context", "Encounter/e1")]))
                .is_err()
        );
        assert!(
            s.search("ChargeItem", &params(&[("context", ",")]))
                .is_err()
        );
    }

    #[test]
    fn sorted_pages_after_a_high_water_mark_list_only_later_updates() {
        let mut s = FhirStore::default();
        s.generate(5, NaiveDate::from_ymd_opt(2026, 12, 3).unwrap());
        let later = parse_instant("2026-06-01T12:00:00.250Z").unwrap();
        let p = s.read("Patient", "gen-p000003").unwrap().clone();
        s.update("Patient", "gen-p000003", p, later).unwrap();
        let all = s
            .search(
                "Patient",
                &params(&[("_sort", "_lastUpdated"), ("_count", "10")]),
            )
            .unwrap();
        assert_eq!(ids(&all).last(), Some(&"gen-p000003"));
        let mark = all.resources.last().unwrap()["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(mark, "2026-06-01T12:00:00.250Z");
        let after = s
            .search(
                "Patient",
                &params(&[
                    ("_sort", "_lastUpdated"),
                    ("_lastUpdated", &format!("gt{mark}")),
                ]),
            )
            .unwrap();
        assert_eq!(after.total, 0);
        assert!(s.search("Patient", &params(&[("_sort", "name")])).is_err());
    }
}
