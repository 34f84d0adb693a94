//! A test collection-agency connector: accepts every placement with a
//! positive balance. Shows the collections-connector world end to end.
use billd_plugin_sdk::collections::*;
use billd_plugin_sdk::types::*;

struct EchoAgency;

impl CollectionsConnector for EchoAgency {
    fn place_accounts(
        _key: &str,
        placements: Vec<Placement>,
    ) -> Result<Vec<PlacementReceipt>, ConnectorError> {
        Ok(placements
            .into_iter()
            .map(|p| PlacementReceipt {
                accepted: p.balance > 0,
                agency_account_id: (p.balance > 0).then(|| format!("AG-{}", p.account_id)),
                message: (p.balance <= 0).then(|| "nothing to collect".to_string()),
                account_id: p.account_id,
            })
            .collect())
    }
}

billd_plugin_sdk::export_collections_connector!(EchoAgency);
