//! Payer and clearinghouse connectors: eligibility, claim status, claim
//! submission, acknowledgments (999/277CA) and remittances (835).
//!
//! Implement [`PayerConnector`] (every operation you leave out answers
//! "unsupported") and export it with
//! [`export_payer_connector!`](crate::export_payer_connector).

pub use crate::payer_world::exports::billd::connector0_1_0::payer::{
    Acknowledgment, AcknowledgmentError, AcknowledgmentKind, AcknowledgmentOutcome,
    AcknowledgmentPage, Benefit, BenefitKind, Claim, ClaimFrequency, ClaimPayment, ClaimState,
    CoverageLevel, CoverageStatus, Eligibility, EligibilityInquiry, LinePayment, Network,
    ProviderAdjustment, Remittance, RemittancePage, ServiceLine, StatusInquiry, StatusResponse,
    SubmissionReceipt,
};
use crate::types::ConnectorError;

/// A connector to a payer or clearinghouse. `key` is billd's idempotency
/// key for the call: the same work retried keeps its key.
pub trait PayerConnector {
    /// Is the patient covered on the date (an X12 270/271)?
    fn check_eligibility(
        key: &str,
        inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let _ = (key, inquiry);
        Err(ConnectorError::unsupported("check-eligibility"))
    }

    /// Where do these claims stand (an X12 276/277)? One answer per inquiry.
    fn claim_status(
        key: &str,
        inquiries: Vec<StatusInquiry>,
    ) -> Result<Vec<StatusResponse>, ConnectorError> {
        let _ = (key, inquiries);
        Err(ConnectorError::unsupported("claim-status"))
    }

    /// Sends claims (an X12 837P).
    fn submit_claims(key: &str, claims: Vec<Claim>) -> Result<SubmissionReceipt, ConnectorError> {
        let _ = (key, claims);
        Err(ConnectorError::unsupported("submit-claims"))
    }

    /// 999 and 277CA outcomes since the cursor.
    fn fetch_acknowledgments(
        key: &str,
        since: Option<String>,
    ) -> Result<AcknowledgmentPage, ConnectorError> {
        let _ = (key, since);
        Err(ConnectorError::unsupported("fetch-acknowledgments"))
    }

    /// Remittances (835) since the cursor.
    fn fetch_remittances(
        key: &str,
        since: Option<String>,
    ) -> Result<RemittancePage, ConnectorError> {
        let _ = (key, since);
        Err(ConnectorError::unsupported("fetch-remittances"))
    }
}

/// Exports a [`PayerConnector`](crate::payer::PayerConnector) as this
/// component's `payer-connector` world. Use once, at the crate root.
#[macro_export]
macro_rules! export_payer_connector {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __BilldPayerExport;

        impl $crate::payer_world::exports::billd::connector0_1_0::payer::Guest for __BilldPayerExport {
            fn check_eligibility(
                key: ::std::string::String,
                inquiry: $crate::payer::EligibilityInquiry,
            ) -> ::core::result::Result<$crate::payer::Eligibility, $crate::types::ConnectorError> {
                <$ty as $crate::payer::PayerConnector>::check_eligibility(&key, inquiry)
            }
            fn claim_status(
                key: ::std::string::String,
                inquiries: ::std::vec::Vec<$crate::payer::StatusInquiry>,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::payer::StatusResponse>,
                $crate::types::ConnectorError,
            > {
                <$ty as $crate::payer::PayerConnector>::claim_status(&key, inquiries)
            }
            fn submit_claims(
                key: ::std::string::String,
                claims: ::std::vec::Vec<$crate::payer::Claim>,
            ) -> ::core::result::Result<$crate::payer::SubmissionReceipt, $crate::types::ConnectorError>
            {
                <$ty as $crate::payer::PayerConnector>::submit_claims(&key, claims)
            }
            fn fetch_acknowledgments(
                key: ::std::string::String,
                since: ::core::option::Option<::std::string::String>,
            ) -> ::core::result::Result<$crate::payer::AcknowledgmentPage, $crate::types::ConnectorError>
            {
                <$ty as $crate::payer::PayerConnector>::fetch_acknowledgments(&key, since)
            }
            fn fetch_remittances(
                key: ::std::string::String,
                since: ::core::option::Option<::std::string::String>,
            ) -> ::core::result::Result<$crate::payer::RemittancePage, $crate::types::ConnectorError>
            {
                <$ty as $crate::payer::PayerConnector>::fetch_remittances(&key, since)
            }
        }

        $crate::payer_world::__export_payer_connector!(__BilldPayerExport with_types_in $crate::payer_world);
    };
}
