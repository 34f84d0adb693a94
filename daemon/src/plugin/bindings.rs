//! Host-side bindings generated from the one WIT source of truth,
//! `plugin-sdk/wit` (contract 0.4.0, which imports the frozen 0.1.0, 0.2.0
//! and 0.3.0 packages from `plugin-sdk/wit/deps`). One module per world;
//! the shared interfaces (`types`, `host`, `signing`, `sftp`) are generated
//! once, in [`payer`], and reused by the others, so a single implementation
//! of the host imports serves every world and every contract version: a
//! 0.1.0, 0.2.0 or 0.3.0 component imports a subset of what a 0.4.0 world
//! links. `coordination` (0.4.0) is the payer world's alone.

// Generated code: the WIT's doc comments become the items' docs; the
// helpers bindgen adds around them have none.

/// The payer-connector world with its `coordination` import, and the shared
/// `types`, `host`, `signing` and `sftp` interfaces.
#[allow(missing_docs)]
pub mod payer {
    wasmtime::component::bindgen!({
        world: "billd:connector/payer-connector@0.4.0",
        path: "../plugin-sdk/wit",
        imports: {
            "billd:connector/host@0.1.0.http-send": async | trappable,
            "billd:connector/sftp@0.3.0": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

/// The ehr-connector world.
#[allow(missing_docs)]
pub mod ehr {
    wasmtime::component::bindgen!({
        world: "billd:connector/ehr-connector@0.4.0",
        path: "../plugin-sdk/wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        with: {
            "billd:connector/types@0.1.0": super::payer::billd::connector0_1_0::types,
            "billd:connector/host@0.1.0": super::payer::billd::connector0_1_0::host,
            "billd:connector/signing@0.2.0": super::payer::billd::connector0_2_0::signing,
            "billd:connector/sftp@0.3.0": super::payer::billd::connector0_3_0::sftp,
        },
    });
}

/// The collections-connector world.
#[allow(missing_docs)]
pub mod collections {
    wasmtime::component::bindgen!({
        world: "billd:connector/collections-connector@0.4.0",
        path: "../plugin-sdk/wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        with: {
            "billd:connector/types@0.1.0": super::payer::billd::connector0_1_0::types,
            "billd:connector/host@0.1.0": super::payer::billd::connector0_1_0::host,
            "billd:connector/signing@0.2.0": super::payer::billd::connector0_2_0::signing,
            "billd:connector/sftp@0.3.0": super::payer::billd::connector0_3_0::sftp,
        },
    });
}

pub use collections::exports::billd::connector0_1_0::collections as collections_api;
pub use ehr::exports::billd::connector0_1_0::ehr as ehr_api;
pub use payer::billd::connector0_1_0::host as host_api;
pub use payer::billd::connector0_1_0::types;
pub use payer::billd::connector0_2_0::signing as signing_api;
pub use payer::billd::connector0_3_0::sftp as sftp_api;
pub use payer::billd::connector0_4_0::coordination as coordination_api;
pub use payer::exports::billd::connector0_1_0::payer as payer_api;
