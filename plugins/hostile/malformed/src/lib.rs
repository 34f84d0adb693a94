//! Hostile test plugin: answers an eligibility inquiry with a result that
//! is malformed at the canonical ABI. Its plan name is a "string" whose
//! bytes are not UTF-8 (and hold patient data), so billd must refuse to
//! lift it and fail the call with a typed error that does not repeat it.
//!
//! This plugin is deliberately hostile: it breaks `String`'s UTF-8 invariant
//! on purpose, with the one `unsafe` block allowed below. The string is
//! never used as `str` in the guest; the bindings only copy its bytes
//! across the boundary, where the host must reject them.
#![allow(unsafe_code)]

use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::types::*;

struct Malformed;

impl PayerConnector for Malformed {
    fn check_eligibility(
        _key: &str,
        inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let mut bytes = format!("plan for member {} ", inquiry.subscriber.member_id).into_bytes();
        bytes.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
        // SAFETY: none: deliberately hostile test plugin. The bytes are not
        // UTF-8; the string is only lowered (its bytes copied) into the
        // result, never read as `str` here, so the host sees invalid UTF-8.
        let plan_name = unsafe { String::from_utf8_unchecked(bytes) };
        Ok(Eligibility {
            status: CoverageStatus::Active,
            plan_name: Some(plan_name),
            group_number: None,
            coverage_begin: None,
            coverage_end: None,
            benefits: Vec::new(),
            payer_reference: None,
        })
    }
}

billd_plugin_sdk::export_payer_connector!(Malformed);
