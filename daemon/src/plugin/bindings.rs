//! Host-side bindings generated from the one WIT source of truth,
//! `plugin-sdk/wit`. One module per world; the shared interfaces (`types`,
//! `host`) are generated once, in [`payer`], and reused by the others, so a
//! single implementation of the host imports serves
//! every world.

// Generated code: the WIT's doc comments become the items' docs; the
// helpers bindgen adds around them have none.

/// The payer-connector world, and the shared `types` and `host` interfaces.
#[allow(missing_docs)]
pub mod payer {
    wasmtime::component::bindgen!({
        world: "payer-connector",
        path: "../plugin-sdk/wit",
        imports: { "billd:connector/host.http-send": async | trappable, default: trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

/// The ehr-connector world.
#[allow(missing_docs)]
pub mod ehr {
    wasmtime::component::bindgen!({
        world: "ehr-connector",
        path: "../plugin-sdk/wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        with: {
            "billd:connector/types": super::payer::billd::connector::types,
            "billd:connector/host": super::payer::billd::connector::host,
        },
    });
}

/// The collections-connector world.
#[allow(missing_docs)]
pub mod collections {
    wasmtime::component::bindgen!({
        world: "collections-connector",
        path: "../plugin-sdk/wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        with: {
            "billd:connector/types": super::payer::billd::connector::types,
            "billd:connector/host": super::payer::billd::connector::host,
        },
    });
}

pub use collections::exports::billd::connector::collections as collections_api;
pub use ehr::exports::billd::connector::ehr as ehr_api;
pub use payer::billd::connector::host as host_api;
pub use payer::billd::connector::types;
pub use payer::exports::billd::connector::payer as payer_api;
