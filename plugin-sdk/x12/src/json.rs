//! The stable JSON form of every model: what `billd x12 parse --json`
//! prints and `billd x12 render` reads back. It is the serde form of
//! [`Document`], described here so that integrators can rely on it.
//!
//! # Shape
//! ```text
//! { "interchanges": [ {
//!     "header": { "authorization_qualifier", "authorization", "security_qualifier",
//!                 "security", "sender_qualifier", "sender_id", "receiver_qualifier",
//!                 "receiver_id", "date", "time", "version", "control_number",
//!                 "ack_requested", "usage" },          // ISA, padding removed
//!     "groups": [ {
//!       "functional_id", "sender", "receiver", "date", "time",
//!       "control_number", "agency", "version",        // GS
//!       "transactions": [ {
//!         "control_number": "0001",                  // ST02
//!         "guide": "005010X221A1",                   // ST03, when sent
//!         "body": { "type": "835" | "837P" | "270" | "271" | "276" | "277"
//!                           | "277CA" | "999" | "generic",
//!                   "model": { ... } } } ] } ] } ] }
//! ```
//!
//! # Rules
//! - Typed segments are objects whose keys are the element names documented
//!   on each struct in [`crate::segments`] (`Clp::payment` is `"payment"`,
//!   CLP04). Absent elements are omitted. Element positions a struct does not
//!   name are kept under `"extra"`, keyed by position (`{"13": "Y"}`), so
//!   nothing read is lost.
//! - Amounts are strings holding the exact decimal text (`"125.5"`,
//!   `"-12"`): no floating point anywhere.
//! - Composites are arrays of components (`["HC","99213","25"]`); repeated
//!   simple elements (EB03, EQ01) are arrays of values.
//! - Segments billd keeps generically are `{"id": "REF", "elements": [...]}`
//!   where each element is a string, an array of components, or an array of
//!   repetitions (arrays of components).
//! - Loop structs follow the implementation guide: for example an 835 model
//!   is `{ "financial" (BPR), "trace" (TRN), "header_other", "payer",
//!   "payee", "header_numbers": [ { "lx", "other", "claims": [ { "clp",
//!   "adjustments" (CAS), "names", "references", "dates", "amounts",
//!   "other", "services": [ { "svc", ... } ] } ] } ], "provider_adjustments"
//!   (PLB) }`. See [`crate::t835`], [`crate::t837p`], [`crate::thl`] and
//!   [`crate::t999`] for every field.
//! - Rendering writes fresh envelopes: ISA13, GS06 and ST02 come from the
//!   caller's control-number source and dates from the caller, so those
//!   fields may be left empty in JSON written by hand. Everything else is
//!   written as given.
//!
//! Unknown keys are rejected inside typed segments, so a misspelt element
//! name is an error rather than silently dropped data.

use crate::document::Document;

/// The JSON form of a document (pretty-printed).
///
/// # Errors
/// Only if serialization fails, which the models never cause.
pub fn to_json(doc: &Document) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(doc)
}

/// Reads the JSON form back.
///
/// # Errors
/// When the text is not a billd X12 document (the error names line and
/// column).
pub fn from_json(text: &str) -> Result<Document, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::Mode;

    const X: &str = "ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20240101*1200*1*X*005010X221A1~ST*835*0001~BPR*I*80*C*CHK************20240101~TRN*1*T1*1~N1*PR*PAYER~N1*PE*CLINIC*XX*1234567893~LX*1~CLP*A*1*100*80**12~CAS*CO*45*20~SVC*HC:99213:25*100*80~SE*10*0001~GE*1*1~IEA*1*000000001~";

    #[test]
    fn the_json_form_is_stable() {
        let doc = crate::parse(X.as_bytes(), Mode::Strict).unwrap().document;
        let v: serde_json::Value = serde_json::from_str(&to_json(&doc).unwrap()).unwrap();
        let t = &v["interchanges"][0]["groups"][0]["transactions"][0];
        assert_eq!(t["control_number"], "0001");
        assert_eq!(t["body"]["type"], "835");
        let m = &t["body"]["model"];
        assert_eq!(m["financial"]["total_payment"], "80");
        assert_eq!(m["financial"]["method"], "CHK");
        let claim = &m["header_numbers"][0]["claims"][0];
        assert_eq!(
            claim["clp"],
            serde_json::json!({"claim_id": "A", "status": "1", "total_charge": "100", "payment": "80", "filing_indicator": "12"})
        );
        assert_eq!(
            claim["adjustments"][0],
            serde_json::json!({"group": "CO", "adjustments": [{"reason": "45", "amount": "20"}]})
        );
        assert_eq!(
            claim["services"][0]["svc"]["procedure"],
            serde_json::json!(["HC", "99213", "25"])
        );
        assert_eq!(from_json(&to_json(&doc).unwrap()).unwrap(), doc);
    }

    #[test]
    fn misspelt_element_names_are_rejected() {
        let doc = crate::parse(X.as_bytes(), Mode::Strict).unwrap().document;
        let text = to_json(&doc)
            .unwrap()
            .replace("\"claim_id\"", "\"claim_idd\"");
        assert!(from_json(&text).is_err());
    }
}
