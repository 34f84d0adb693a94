//! Test connector: its eligibility answer names this plugin (identity-b),
//! so the compiled-code cache tests can tell whose code actually ran.
hostile_common::identity_connector!("identity-b");
