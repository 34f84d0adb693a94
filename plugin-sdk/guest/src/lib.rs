//! Write connectors for billd.
//!
//! A connector is a WebAssembly component that billd runs in a sandbox to
//! talk to one outside party on a practice's behalf: a payer or
//! clearinghouse ([`payer`]), an EHR ([`ehr`]), or a collection agency
//! ([`collections`]). You implement one trait in the billing vocabulary
//! (subscribers, NPIs, CPT codes, cents) and export it with one macro; this
//! crate generates the component bindings for `billd:connector@0.4.0` and
//! gives you typed helpers for what billd lets a plugin do: [`http`] to the
//! hosts your manifest and the practice allow, [`settings`], [`secrets`],
//! [`signing`] (JWTs billd signs with a key you never see), [`sftp`] (files
//! on SFTP servers billd logs in to with credentials you never see),
//! [`coordination`] (for a payer connector: what earlier payers paid and
//! adjusted on a secondary claim), [`state`] (a key-value store of your
//! own), [`log`] and [`now`].
//!
//! # A complete connector
//!
//! ```no_run
//! use billd_plugin_sdk::payer::*;
//! use billd_plugin_sdk::types::*;
//! use billd_plugin_sdk::{http, secrets, settings};
//!
//! struct MyPayer;
//!
//! #[derive(serde::Deserialize)]
//! struct Answer { active: bool, plan: Option<String> }
//!
//! impl PayerConnector for MyPayer {
//!     fn check_eligibility(key: &str, inquiry: EligibilityInquiry)
//!         -> Result<Eligibility, ConnectorError>
//!     {
//!         let base = settings::require_text("base-url")?;
//!         let token = secrets::require("api-key")?;
//!         let answer: Answer = http::Request::post(format!("{base}/eligibility"))
//!             .bearer(&token)
//!             .header("idempotency-key", key)
//!             .json(&serde_json::json!({
//!                 "member": inquiry.subscriber.member_id,
//!                 "date": inquiry.service_date.to_iso(),
//!             }))
//!             .send()?
//!             .error_for_status()?
//!             .json()?;
//!         Ok(Eligibility {
//!             status: if answer.active { CoverageStatus::Active } else { CoverageStatus::Inactive },
//!             plan_name: answer.plan,
//!             group_number: None,
//!             coverage_begin: None,
//!             coverage_end: None,
//!             benefits: Vec::new(),
//!             payer_reference: None,
//!         })
//!     }
//! }
//!
//! billd_plugin_sdk::export_payer_connector!(MyPayer);
//! ```
//!
//! `billd plugins new NAME --world payer|ehr|collections` scaffolds such a
//! crate (a `cdylib`) with a `plugin.toml` that names the world, the hosts
//! and the secrets; `billd plugins build` compiles it for wasm32-wasip2 and
//! packages it, `billd plugins call` runs one export against scripted HTTP
//! responses, and the `billd-plugin-test` crate does the same from
//! `cargo test`.
//!
//! # What a plugin cannot do
//! Open files, read environment variables, open sockets, or reach a host
//! not allowed by both its manifest and the practice. Each call runs in a
//! fresh instance with a memory cap and a deadline: keep nothing in statics
//! between calls (use [`state`]). Never log patient data.

#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate self as billd_plugin_sdk;

/// Generated bindings for the `payer-connector` world (its `coordination`
/// import, and the shared `types`, `host`, `signing` and `sftp`
/// interfaces). Use [`payer`], [`coordination`] and [`types`] instead.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code)]
pub mod payer_world {
    wit_bindgen::generate!({
        world: "billd:connector/payer-connector@0.4.0",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_payer_connector",
        default_bindings_module: "billd_plugin_sdk::payer_world",
        runtime_path: "billd_plugin_sdk::__rt",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        generate_all,
    });
}

/// Generated bindings for the `ehr-connector` world. Use [`ehr`].
#[doc(hidden)]
#[allow(missing_docs, unsafe_code)]
pub mod ehr_world {
    wit_bindgen::generate!({
        world: "billd:connector/ehr-connector@0.4.0",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_ehr_connector",
        default_bindings_module: "billd_plugin_sdk::ehr_world",
        runtime_path: "billd_plugin_sdk::__rt",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        with: {
            "billd:connector/types@0.1.0": crate::payer_world::billd::connector0_1_0::types,
            "billd:connector/host@0.1.0": crate::payer_world::billd::connector0_1_0::host,
            "billd:connector/signing@0.2.0": crate::payer_world::billd::connector0_2_0::signing,
            "billd:connector/sftp@0.3.0": crate::payer_world::billd::connector0_3_0::sftp,
        },
    });
}

/// Generated bindings for the `collections-connector` world. Use
/// [`collections`].
#[doc(hidden)]
#[allow(missing_docs, unsafe_code)]
pub mod collections_world {
    wit_bindgen::generate!({
        world: "billd:connector/collections-connector@0.4.0",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_collections_connector",
        default_bindings_module: "billd_plugin_sdk::collections_world",
        runtime_path: "billd_plugin_sdk::__rt",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        with: {
            "billd:connector/types@0.1.0": crate::payer_world::billd::connector0_1_0::types,
            "billd:connector/host@0.1.0": crate::payer_world::billd::connector0_1_0::host,
            "billd:connector/signing@0.2.0": crate::payer_world::billd::connector0_2_0::signing,
            "billd:connector/sftp@0.3.0": crate::payer_world::billd::connector0_3_0::sftp,
        },
    });
}

#[doc(hidden)]
pub use serde as __serde;
#[doc(hidden)]
pub use wit_bindgen::rt as __rt;

pub mod collections;
pub mod coordination;
pub mod ehr;
pub mod http;
pub mod log;
pub mod payer;
pub mod secrets;
pub mod settings;
pub mod sftp;
pub mod signing;
pub mod state;
pub mod types;

/// The SDK (and contract) version; put it in `plugin.toml` as
/// `sdk-version`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The current time as billd sees it.
pub fn now() -> types::Timestamp {
    payer_world::billd::connector0_1_0::host::now()
}

/// Everything a connector usually needs, in one import.
pub mod prelude {
    pub use crate::http::{Request, Response};
    pub use crate::types::*;
    pub use crate::{log, now, secrets, settings, state};
}
