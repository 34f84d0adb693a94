//! End-to-end tests: each topic module drives the real `billd` binary
//! against real servers on loopback and a real store on a temp dir.

mod author_kit;
mod collections;
mod config_errors;
mod crash;
mod downtime;
mod dunning;
mod ehr_sync;
mod eligibility;
mod fhir_ehr;
mod mail;
mod notify;
mod payer_core;
mod payer_flow;
mod plugins;
mod remits;
mod schedule;
mod second_daemon;
mod sftp_clearinghouse;
/// The real OpenSSH server the SFTP tests start (shared with the
/// daemon's own SFTP tests).
#[path = "../../daemon/src/plugin/testing/sshd.rs"]
mod sshd;
mod tasks;
