//! Test support for the plugin host's tests: real servers the host talks
//! to (an OpenSSH sshd for `sftp`).

pub mod sshd;
