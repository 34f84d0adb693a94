//! The X12 this connector sends: 270 (005010X279A1), 276 (005010X212) and
//! 837P (005010X222A1), built as segments from billd's records and written
//! by billd-x12 with envelopes numbered by the caller. Pure: tested on the
//! host target.

use billd_plugin_sdk::payer::{Claim, ClaimFrequency, EligibilityInquiry, StatusInquiry};
use billd_plugin_sdk::types::{
    Address, Date, Dependent, PersonName, ProcedureCodeSet, Provider, Relationship, Sex,
};
use billd_x12::WriteError;
use billd_x12::document::{Body, Document, Generic};
use billd_x12::fields::Amount;
use billd_x12::segment::Segment;
use billd_x12::writer::{ControlKind, ControlNumbers, WriteOptions, write_document};

/// Who we are and whom we write to (from the settings).
#[derive(Clone, Debug, Default)]
pub struct Parties {
    /// ISA06 / GS02; 837 submitter id (NM109 of 1000A); 276 receiver id.
    pub sender: String,
    /// ISA08 / GS03; 837 receiver id (NM109 of 1000B).
    pub receiver: String,
    /// Submitter name.
    pub submitter_name: String,
    /// Submitter contact.
    pub contact: String,
    /// Submitter phone.
    pub phone: String,
    /// Payer / receiver name.
    pub receiver_name: String,
    /// Billing address: line, city, state, zip.
    pub billing_address: [String; 4],
    /// SBR09.
    pub filing_indicator: String,
    /// ISA15.
    pub usage: String,
}

/// When the X12 is written.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// CCYYMMDD.
    pub date: String,
    /// HHMM.
    pub time: String,
}

/// Control numbers fixed by the caller: ISA13 = GS06 = `number`, ST02 = 1.
struct Fixed(u64);

impl ControlNumbers for Fixed {
    fn next(&mut self, kind: ControlKind) -> u64 {
        match kind {
            ControlKind::Interchange | ControlKind::Group => self.0,
            ControlKind::Transaction => 1,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian: the
/// date of an X12 stamp.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn seg(id: &str, values: &[&str]) -> Segment {
    Segment::new(id, values)
}

fn amount(cents: i64) -> String {
    Amount::from_cents(cents).as_str().to_owned()
}

fn d8(d: &Date) -> String {
    format!("{:04}{:02}{:02}", d.year, d.month, d.day)
}

fn sex(s: &Sex) -> &'static str {
    match s {
        Sex::Female => "F",
        Sex::Male => "M",
        Sex::Unknown => "U",
    }
}

/// Makes a value safe for X12: upper case, no delimiter candidates, trimmed
/// to `max` characters.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !matches!(c, '*' | '~' | ':' | '^' | '|' | '\n' | '\r'))
        .take(max)
        .collect::<String>()
        .trim()
        .to_uppercase()
}

fn nm1_person(entity: &str, n: &PersonName, qualifier: &str, id: &str) -> Segment {
    seg(
        "NM1",
        &[
            entity,
            "1",
            &clean(&n.last, 60),
            &clean(&n.first, 35),
            &clean(n.middle.as_deref().unwrap_or(""), 25),
            "",
            &clean(n.suffix.as_deref().unwrap_or(""), 10),
            qualifier,
            id,
        ],
    )
}

fn nm1_provider(entity: &str, p: &Provider) -> Segment {
    let person = p.first_name.is_some();
    seg(
        "NM1",
        &[
            entity,
            if person { "1" } else { "2" },
            &clean(&p.name, 60),
            &clean(p.first_name.as_deref().unwrap_or(""), 35),
            "",
            "",
            "",
            "XX",
            &p.npi,
        ],
    )
}

fn nm1_org(entity: &str, name: &str, qualifier: &str, id: &str) -> Segment {
    seg(
        "NM1",
        &[entity, "2", &clean(name, 60), "", "", "", "", qualifier, id],
    )
}

fn hl(id: usize, parent: Option<usize>, level: &str, child: bool) -> Segment {
    let parent = parent.map(|p| p.to_string()).unwrap_or_default();
    seg(
        "HL",
        &[
            &id.to_string(),
            &parent,
            level,
            if child { "1" } else { "0" },
        ],
    )
}

fn address(a: &Address) -> Vec<Segment> {
    let mut v = vec![seg(
        "N3",
        &[
            &clean(&a.line1, 55),
            &clean(a.line2.as_deref().unwrap_or(""), 55),
        ],
    )];
    v.push(seg(
        "N4",
        &[
            &clean(&a.city, 30),
            &clean(&a.state, 2),
            &clean(&a.postal_code.replace('-', ""), 15),
        ],
    ));
    v
}

/// Writes one transaction set in an interchange numbered `number`.
fn envelope(
    p: &Parties,
    stamp: &Stamp,
    number: u64,
    set_id: &str,
    guide: &str,
    segments: Vec<Segment>,
) -> Result<String, WriteError> {
    let body = Body::Generic(Generic {
        set_id: set_id.into(),
        segments,
    });
    let usage = if p.usage == "P" { "P" } else { "T" };
    let doc = Document::single(&p.sender, &p.receiver, usage, guide, body);
    let opts = WriteOptions {
        date: stamp.date.clone(),
        time: stamp.time.clone(),
        ..WriteOptions::default()
    };
    write_document(&doc, &opts, &mut Fixed(number))
}

/// A 270 for one inquiry; `trace` is TRN02 (unique per inquiry).
pub fn eligibility_270(
    p: &Parties,
    stamp: &Stamp,
    number: u64,
    trace: &str,
    q: &EligibilityInquiry,
) -> Result<String, WriteError> {
    let types: Vec<String> = if q.service_types.is_empty() {
        vec!["30".into()]
    } else {
        q.service_types.iter().map(|s| clean(s, 2)).collect()
    };
    let date = d8(&q.service_date);
    let eq_and_dates = |out: &mut Vec<Segment>| {
        out.push(seg("DTP", &["291", "D8", &date]));
        for t in &types {
            out.push(seg("EQ", &[t]));
        }
    };
    let mut s = vec![
        seg("BHT", &["0022", "13", trace, &stamp.date, &stamp.time]),
        hl(1, None, "20", true),
        nm1_org("PR", &p.receiver_name, "PI", &clean(&q.payer_id, 80)),
        hl(2, Some(1), "21", true),
        nm1_provider("1P", &q.provider),
        hl(3, Some(2), "22", q.dependent.is_some()),
        seg("TRN", &["1", trace, "9BILLDCORE"]),
        nm1_person(
            "IL",
            &q.subscriber.name,
            "MI",
            &clean(&q.subscriber.member_id, 80),
        ),
    ];
    if let Some(g) = &q.subscriber.group_number {
        s.push(seg("REF", &["6P", &clean(g, 50)]));
    }
    s.push(seg(
        "DMG",
        &["D8", &d8(&q.subscriber.birth_date), sex(&q.subscriber.sex)],
    ));
    match &q.dependent {
        None => eq_and_dates(&mut s),
        Some(d) => {
            s.push(hl(4, Some(3), "23", false));
            s.push(seg("TRN", &["1", &format!("{trace}D"), "9BILLDCORE"]));
            s.push(nm1_person("03", &d.name, "", ""));
            s.push(seg("DMG", &["D8", &d8(&d.birth_date), sex(&d.sex)]));
            eq_and_dates(&mut s);
        }
    }
    envelope(p, stamp, number, "270", "005010X279A1", s)
}

/// The TRN02 of inquiry `i` of a 276 traced `trace`.
pub fn status_trace(trace: &str, i: usize) -> String {
    format!("{trace}-{}", i + 1)
}

/// A 276 asking about every inquiry (one subscriber level each, grouped
/// under their providers).
pub fn status_276(
    p: &Parties,
    stamp: &Stamp,
    number: u64,
    trace: &str,
    inquiries: &[StatusInquiry],
) -> Result<String, WriteError> {
    let payer_id = inquiries
        .first()
        .map(|q| q.payer_id.clone())
        .unwrap_or_default();
    let mut s = vec![
        seg("BHT", &["0010", "13", trace, &stamp.date, &stamp.time]),
        hl(1, None, "20", true),
        nm1_org("PR", &p.receiver_name, "PI", &clean(&payer_id, 80)),
        hl(2, Some(1), "21", true),
        nm1_org("41", &p.submitter_name, "46", &p.sender),
    ];
    let mut next = 3;
    let mut providers: Vec<&str> = Vec::new();
    for q in inquiries {
        if !providers.contains(&q.provider.npi.as_str()) {
            providers.push(&q.provider.npi);
        }
    }
    for npi in providers {
        let pid = next;
        next += 1;
        let first = inquiries.iter().find(|q| q.provider.npi == npi);
        s.push(hl(pid, Some(2), "19", true));
        if let Some(q) = first {
            s.push(nm1_provider("1P", &q.provider));
        }
        for (i, q) in inquiries
            .iter()
            .enumerate()
            .filter(|(_, q)| q.provider.npi == npi)
        {
            let sid = next;
            next += 1;
            s.push(hl(sid, Some(pid), "22", q.dependent.is_some()));
            let tracking = |s: &mut Vec<Segment>| {
                s.push(seg("TRN", &["1", &status_trace(trace, i)]));
                if let Some(icn) = &q.payer_claim_id {
                    s.push(seg("REF", &["1K", &clean(icn, 50)]));
                }
                s.push(seg("REF", &["EJ", &clean(&q.claim_id, 50)]));
                s.push(seg("AMT", &["T3", &amount(q.billed)]));
                s.push(seg(
                    "DTP",
                    &[
                        "472",
                        "RD8",
                        &format!("{}-{}", d8(&q.service_from), d8(&q.service_to)),
                    ],
                ));
            };
            match &q.dependent {
                None => {
                    s.push(seg(
                        "DMG",
                        &["D8", &d8(&q.subscriber.birth_date), sex(&q.subscriber.sex)],
                    ));
                    s.push(nm1_person(
                        "IL",
                        &q.subscriber.name,
                        "MI",
                        &clean(&q.subscriber.member_id, 80),
                    ));
                    tracking(&mut s);
                }
                Some(d) => {
                    s.push(nm1_person(
                        "IL",
                        &q.subscriber.name,
                        "MI",
                        &clean(&q.subscriber.member_id, 80),
                    ));
                    s.push(hl(next, Some(sid), "23", false));
                    next += 1;
                    s.push(seg("DMG", &["D8", &d8(&d.birth_date), sex(&d.sex)]));
                    s.push(nm1_person("QC", &d.name, "", ""));
                    tracking(&mut s);
                }
            }
        }
    }
    envelope(p, stamp, number, "276", "005010X212", s)
}

fn relationship(d: &Dependent) -> &'static str {
    match d.relationship {
        Relationship::Spouse => "01",
        Relationship::Child => "19",
        Relationship::Other => "G8",
    }
}

/// Why a claim cannot be written as an 837P: (field path, message).
pub type Invalid = (String, String);

/// An 837P with every claim (one transaction set); BHT03 is `batch`.
pub fn professional_837(
    p: &Parties,
    stamp: &Stamp,
    number: u64,
    batch: &str,
    claims: &[Claim],
) -> Result<Result<String, WriteError>, Invalid> {
    let mut s = vec![
        seg(
            "BHT",
            &["0019", "00", batch, &stamp.date, &stamp.time, "CH"],
        ),
        nm1_org("41", &p.submitter_name, "46", &p.sender),
        seg("PER", &["IC", &clean(&p.contact, 60), "TE", &p.phone]),
        nm1_org("40", &p.receiver_name, "46", &p.receiver),
    ];
    let mut next = 1;
    let mut billing: Vec<&str> = Vec::new();
    for c in claims {
        if !billing.contains(&c.billing_provider.npi.as_str()) {
            billing.push(&c.billing_provider.npi);
        }
    }
    for npi in billing {
        let group: Vec<(usize, &Claim)> = claims
            .iter()
            .enumerate()
            .filter(|(_, c)| c.billing_provider.npi == npi)
            .collect();
        let bp = &group[0].1.billing_provider;
        let tax = bp.tax_id.as_deref().ok_or_else(|| {
            (
                format!("claims[{}].billing-provider.tax-id", group[0].0),
                "the 837P needs the billing provider's tax id".to_owned(),
            )
        })?;
        let bid = next;
        next += 1;
        s.push(hl(bid, None, "20", true));
        if let Some(t) = &bp.taxonomy {
            s.push(seg("PRV", &["BI", "PXC", &clean(t, 50)]));
        }
        s.push(nm1_provider("85", bp));
        let [line, city, state, zip] = &p.billing_address;
        s.push(seg("N3", &[line]));
        s.push(seg("N4", &[city, state, zip]));
        s.push(seg("REF", &["EI", &clean(&tax.replace('-', ""), 50)]));
        for (i, c) in group {
            let sid = next;
            next += 1;
            s.push(hl(sid, Some(bid), "22", c.dependent.is_some()));
            s.push(seg(
                "SBR",
                &[
                    "P",
                    if c.dependent.is_none() { "18" } else { "" },
                    &clean(c.subscriber.group_number.as_deref().unwrap_or(""), 50),
                    "",
                    "",
                    "",
                    "",
                    "",
                    &p.filing_indicator,
                ],
            ));
            s.push(nm1_person(
                "IL",
                &c.subscriber.name,
                "MI",
                &clean(&c.subscriber.member_id, 80),
            ));
            if let Some(a) = &c.subscriber.address {
                s.extend(address(a));
            }
            s.push(seg(
                "DMG",
                &["D8", &d8(&c.subscriber.birth_date), sex(&c.subscriber.sex)],
            ));
            s.push(nm1_org(
                "PR",
                &p.receiver_name,
                "PI",
                &clean(&c.payer_id, 80),
            ));
            if let Some(d) = &c.dependent {
                s.push(hl(next, Some(sid), "23", false));
                next += 1;
                s.push(seg("PAT", &[relationship(d)]));
                s.push(nm1_person("QC", &d.name, "", ""));
                if let Some(a) = &c.subscriber.address {
                    s.extend(address(a));
                }
                s.push(seg("DMG", &["D8", &d8(&d.birth_date), sex(&d.sex)]));
            }
            claim_segments(&mut s, i, c)?;
        }
    }
    Ok(envelope(p, stamp, number, "837", "005010X222A1", s))
}

fn claim_segments(s: &mut Vec<Segment>, i: usize, c: &Claim) -> Result<(), Invalid> {
    let field = |f: &str| format!("claims[{i}].{f}");
    if c.diagnoses.is_empty() {
        return Err((field("diagnoses"), "a claim needs a diagnosis".into()));
    }
    if c.service_lines.is_empty() {
        return Err((
            field("service-lines"),
            "a claim needs a service line".into(),
        ));
    }
    let frequency = match c.frequency {
        ClaimFrequency::Original => "1",
        ClaimFrequency::Replacement => "7",
        ClaimFrequency::Void => "8",
    };
    let mut clm = seg(
        "CLM",
        &[
            &clean(&c.claim_id, 38),
            &amount(c.total_charge),
            "",
            "",
            "",
            "Y",
            "A",
            "Y",
            "Y",
        ],
    );
    clm.elements[4] = billd_x12::Element::from_components(vec![
        clean(&c.place_of_service, 2),
        "B".into(),
        frequency.into(),
    ]);
    s.push(clm);
    if let Some(a) = &c.prior_authorization {
        s.push(seg("REF", &["G1", &clean(a, 50)]));
    }
    if c.frequency != ClaimFrequency::Original {
        let orig = c.original_payer_claim_id.as_deref().ok_or_else(|| {
            (
                field("original-payer-claim-id"),
                "a replacement or void names the claim it replaces".to_owned(),
            )
        })?;
        s.push(seg("REF", &["F8", &clean(orig, 50)]));
    }
    let mut hi = Segment {
        id: "HI".into(),
        elements: Vec::new(),
    };
    for (k, d) in c.diagnoses.iter().take(12).enumerate() {
        let code = clean(&d.replace('.', ""), 30);
        hi.elements.push(billd_x12::Element::from_components(vec![
            if k == 0 { "ABK" } else { "ABF" }.to_owned(),
            code,
        ]));
    }
    s.push(hi);
    if let Some(r) = &c.rendering_provider {
        s.push(nm1_provider("82", r));
        if let Some(t) = &r.taxonomy {
            s.push(seg("PRV", &["PE", "PXC", &clean(t, 50)]));
        }
    }
    for (k, l) in c.service_lines.iter().enumerate() {
        let qualifier = match l.procedure.code_set {
            ProcedureCodeSet::Cpt | ProcedureCodeSet::Hcpcs => "HC",
        };
        let mut procedure = vec![qualifier.to_owned(), clean(&l.procedure.code, 48)];
        procedure.extend(l.procedure.modifiers.iter().take(4).map(|m| clean(m, 2)));
        let pointers: Vec<String> = l
            .diagnosis_pointers
            .iter()
            .take(4)
            .map(u8::to_string)
            .collect();
        if pointers.is_empty() {
            return Err((
                field(&format!("service-lines[{k}].diagnosis-pointers")),
                "a service line points at a diagnosis".into(),
            ));
        }
        s.push(seg("LX", &[&(k + 1).to_string()]));
        let mut sv1 = seg(
            "SV1",
            &[
                "",
                &amount(l.charge),
                "UN",
                &l.units.to_string(),
                &l.place_of_service
                    .as_deref()
                    .map(|p| clean(p, 2))
                    .unwrap_or_default(),
                "",
                "",
            ],
        );
        sv1.elements.resize(7, billd_x12::Element::from(""));
        sv1.elements[0] = billd_x12::Element::from_components(procedure);
        sv1.elements[6] = billd_x12::Element::from_components(pointers);
        s.push(sv1);
        s.push(seg("DTP", &["472", "D8", &d8(&l.service_date)]));
        if let Some(ndc) = &l.ndc {
            s.push(seg("LIN", &["", "N4", &clean(&ndc.replace('-', ""), 48)]));
            s.push(seg("CTP", &["", "", "", &l.units.to_string(), "UN"]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WIT JSON form (kebab-case names and cases, as `billd plugins
    /// call` reads it) in the bindings' serde form (snake-case fields,
    /// Pascal-case enum cases).
    fn bindings_form(v: serde_json::Value, key: &str) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| {
                        let v = bindings_form(v, &k);
                        (k.replace('-', "_"), v)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| bindings_form(v, key)).collect()),
            Value::String(s) if ["sex", "code-set", "frequency", "relationship"].contains(&key) => {
                Value::String(
                    s.split('-')
                        .map(|w| {
                            let mut c = w.chars();
                            c.next()
                                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                                .unwrap_or_default()
                        })
                        .collect(),
                )
            }
            other => other,
        }
    }

    fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
        // Through the crate's own name: sftp-clearinghouse compiles this
        // file too, and runs these tests from its own directory.
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core-clearinghouse/fixtures")
            .join(name);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        serde_json::from_value(bindings_form(v, "")).unwrap()
    }

    fn parties() -> Parties {
        Parties {
            sender: "BILLDCLINIC".into(),
            receiver: "SANDBOXPAYER".into(),
            submitter_name: "BILLD CLINIC".into(),
            contact: "BILLING OFFICE".into(),
            phone: "8005550100".into(),
            receiver_name: "SANDBOX HEALTH PLAN".into(),
            billing_address: [
                "100 CLINIC WAY".into(),
                "SPRINGFIELD".into(),
                "IL".into(),
                "627010001".into(),
            ],
            filing_indicator: "CI".into(),
            usage: "T".into(),
        }
    }

    fn stamp() -> Stamp {
        Stamp {
            date: "20240110".into(),
            time: "1200".into(),
        }
    }

    /// billd-x12 reads it strictly and its validator finds no error.
    fn clean_x12(x12: &str, body: fn(&billd_x12::Body) -> bool) {
        let parsed = billd_x12::validate::validate(x12.as_bytes()).unwrap();
        let errors: Vec<String> = parsed
            .issues
            .iter()
            .filter(|i| i.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{x12}");
        let t = &parsed.document.interchanges[0].groups[0].transactions[0];
        assert!(body(&t.body), "{x12}");
    }

    #[test]
    fn the_270_837p_and_276_validate() {
        let q: EligibilityInquiry = fixture("eligibility-active.json");
        let x = eligibility_270(&parties(), &stamp(), 7, "TRACE1", &q).unwrap();
        clean_x12(&x, |b| matches!(b, billd_x12::Body::EligibilityInquiry(_)));
        assert!(x.contains("NM1*IL*1*DOE*JANE****MI*M1001~"), "{x}");

        let claims: Vec<Claim> = fixture("claims.json");
        let x = professional_837(&parties(), &stamp(), 8, "8", &claims)
            .unwrap()
            .unwrap();
        clean_x12(&x, |b| matches!(b, billd_x12::Body::Professional(_)));
        assert!(x.contains("CLM*PCN1001*125***11:B:1*Y*A*Y*Y~"), "{x}");
        assert!(x.contains("ISA*00*") && x.contains("*000000008*"), "{x}");

        let inquiries: Vec<StatusInquiry> = fixture("status.json");
        let x = status_276(&parties(), &stamp(), 9, "TRACE2", &inquiries).unwrap();
        clean_x12(&x, |b| matches!(b, billd_x12::Body::StatusRequest(_)));
        assert!(x.contains("TRN*1*TRACE2-2~"), "{x}");
    }

    #[test]
    fn a_claim_without_a_tax_id_or_diagnosis_names_the_field() {
        let mut claims: Vec<Claim> = fixture("claims.json");
        claims[0].billing_provider.tax_id = None;
        let e = professional_837(&parties(), &stamp(), 1, "1", &claims).unwrap_err();
        assert_eq!(e.0, "claims[0].billing-provider.tax-id");
        let mut claims: Vec<Claim> = fixture("claims.json");
        claims[0].diagnoses.clear();
        let e = professional_837(&parties(), &stamp(), 1, "1", &claims).unwrap_err();
        assert_eq!(e.0, "claims[0].diagnoses");
    }
}
