//! A real OpenSSH server on loopback for SFTP tests.
//!
//! [`Sshd::start`] makes a temporary directory with a fresh ed25519 host
//! key, a fresh ed25519 client key (authorised) and a second client key
//! (not authorised), writes an `sshd_config` (127.0.0.1 on a free port,
//! public-key login only, `Subsystem sftp internal-sftp`, no PAM, no strict
//! modes, its pid file in the directory), starts `/usr/sbin/sshd -D -e -f
//! CONFIG` and waits until the port answers. Files live under
//! [`Sshd::root`] (absolute paths; no chroot). Dropping it stops the server.
//!
//! The server is Debian's `openssh-server`, which `scripts/test` installs.
//! Without it the test fails with a message saying so: these tests never
//! skip.
//!
//! This file uses only std and `tempfile`, so the end-to-end tests include
//! it too (`#[path]`).

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's openssh-server puts the daemon.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd and the keys to reach it.
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The account to log in as (the user running the tests).
    pub user: String,
    /// Its host key, as an OpenSSH public key line (the pin).
    pub host_key: String,
    /// The authorised client's private key file (OpenSSH format).
    pub client_key: PathBuf,
    /// A client key the server does not authorise.
    pub stranger_key: PathBuf,
    /// A host key line of another server (a pin that does not match).
    pub other_host_key: String,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "billd-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ssh-keygen ({e}): run scripts/test, which installs openssh-server")
        });
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_pub(path: &Path) -> String {
    let p = PathBuf::from(format!("{}.pub", path.display()));
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn current_user() -> String {
    if let Ok(u) = std::env::var("USER")
        && !u.is_empty()
    {
        return u;
    }
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("cannot run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Sshd {
    /// Starts a server. Panics, naming what to do, when sshd is missing or
    /// does not come up.
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run scripts/test (it installs Debian's openssh-server), \
             or `apt-get install -y openssh-server`"
        );
        // sshd wants its privilege-separation directory even with -D.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let host = d.join("host_ed25519");
        let client = d.join("client_ed25519");
        let stranger = d.join("stranger_ed25519");
        let other = d.join("other_host_ed25519");
        for k in [&host, &client, &stranger, &other] {
            keygen(k);
        }
        std::fs::write(d.join("authorized_keys"), read_pub(&client) + "\n").unwrap();
        std::fs::create_dir_all(d.join("files")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\n\
                 Port {port}\n\
                 HostKey {host}\n\
                 AuthorizedKeysFile {auth}\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PidFile {pid}\n\
                 Subsystem sftp internal-sftp\n\
                 LogLevel VERBOSE\n",
                host = host.display(),
                auth = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sshd exited ({status}) before listening: {}",
                    std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                );
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!(
                    "sshd did not listen on {addr} within 15 s: {}",
                    std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd {
            port,
            user: current_user(),
            host_key: read_pub(&host),
            client_key: client,
            stranger_key: stranger,
            other_host_key: read_pub(&other),
            child,
            dir,
        }
    }

    /// The directory the tests' files live in (absolute).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    /// Makes `dir` (relative to [`Sshd::root`]) and returns its absolute
    /// path as text, as the plugin names it.
    pub fn folder(&self, dir: &str) -> String {
        let p = self.root().join(dir);
        std::fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    }

    /// The listening sshd's process id (each session is a child of it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
