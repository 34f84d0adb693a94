//! Test connector: its eligibility answer names this plugin (identity-a),
//! so the compiled-code cache tests can tell whose code actually ran.
hostile_common::identity_connector!("identity-a");
