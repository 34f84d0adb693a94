//! Collection agency connectors: place accounts, recall them, and hear
//! back (payments collected, disputes, closures).
//!
//! Implement [`CollectionsConnector`] and export it with
//! [`export_collections_connector!`](crate::export_collections_connector).

pub use crate::collections_world::exports::billd::connector0_1_0::collections::{
    AgencyEvent, AgencyUpdate, AgencyUpdatePage, CollectedPayment, Debtor, Placement,
    PlacementReceipt, Recall, RecallReason, RecallReceipt,
};
use crate::types::ConnectorError;

/// A connector to a collection agency. `key` is billd's idempotency key.
pub trait CollectionsConnector {
    /// Hands accounts to the agency; one receipt per placement.
    fn place_accounts(
        key: &str,
        placements: Vec<Placement>,
    ) -> Result<Vec<PlacementReceipt>, ConnectorError> {
        let _ = (key, placements);
        Err(ConnectorError::unsupported("place-accounts"))
    }

    /// Calls accounts back; one receipt per recall.
    fn recall_accounts(
        key: &str,
        recalls: Vec<Recall>,
    ) -> Result<Vec<RecallReceipt>, ConnectorError> {
        let _ = (key, recalls);
        Err(ConnectorError::unsupported("recall-accounts"))
    }

    /// Payments collected, disputes and closures since the cursor.
    fn fetch_agency_updates(
        key: &str,
        since: Option<String>,
    ) -> Result<AgencyUpdatePage, ConnectorError> {
        let _ = (key, since);
        Err(ConnectorError::unsupported("fetch-agency-updates"))
    }
}

/// Exports a [`CollectionsConnector`](crate::collections::CollectionsConnector)
/// as this component's `collections-connector` world.
#[macro_export]
macro_rules! export_collections_connector {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __BilldCollectionsExport;

        impl $crate::collections_world::exports::billd::connector0_1_0::collections::Guest
            for __BilldCollectionsExport
        {
            fn place_accounts(
                key: ::std::string::String,
                placements: ::std::vec::Vec<$crate::collections::Placement>,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::collections::PlacementReceipt>,
                $crate::types::ConnectorError,
            > {
                <$ty as $crate::collections::CollectionsConnector>::place_accounts(&key, placements)
            }
            fn recall_accounts(
                key: ::std::string::String,
                recalls: ::std::vec::Vec<$crate::collections::Recall>,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::collections::RecallReceipt>,
                $crate::types::ConnectorError,
            > {
                <$ty as $crate::collections::CollectionsConnector>::recall_accounts(&key, recalls)
            }
            fn fetch_agency_updates(
                key: ::std::string::String,
                since: ::core::option::Option<::std::string::String>,
            ) -> ::core::result::Result<$crate::collections::AgencyUpdatePage, $crate::types::ConnectorError>
            {
                <$ty as $crate::collections::CollectionsConnector>::fetch_agency_updates(&key, since)
            }
        }

        $crate::collections_world::__export_collections_connector!(
            __BilldCollectionsExport with_types_in $crate::collections_world
        );
    };
}
