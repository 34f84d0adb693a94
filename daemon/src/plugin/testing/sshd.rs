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
//! [`Sshd::start_with_password`] starts one that takes password logins
//! instead, for a dedicated system account (`billd-sftp-test`, created if
//! missing) given a fresh random password each time: password logins need
//! sshd running as root (it reads the shadow file), as `scripts/test` runs.
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
    /// For [`Sshd::start_with_password`]: the file holding the account's
    /// password (no newline).
    pub password_file: Option<PathBuf>,
}

/// The system account password logins are tested with.
pub const PASSWORD_USER: &str = "billd-sftp-test";

/// `n` random bytes as hex, from the kernel.
fn random_hex(n: usize) -> String {
    use std::io::Read as _;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("reading /dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes sure [`PASSWORD_USER`] exists (no home, no login shell) and sets
/// its password to a fresh random one, which it returns.
fn password_account() -> String {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .expect("cannot run id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "password logins need sshd running as root (it reads /etc/shadow) and an account to \
         log in as: run scripts/test as root, as CI does"
    );
    let known = Command::new("id")
        .arg(PASSWORD_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !known {
        // Several test processes may race to create it.
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
            .args(["--shell", "/usr/sbin/nologin", PASSWORD_USER])
            .stdin(Stdio::null())
            .output();
        run_ok(Command::new("id").arg(PASSWORD_USER), "id billd-sftp-test");
    }
    let password = random_hex(16);
    let mut child = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run chpasswd");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("chpasswd's stdin");
        writeln!(stdin, "{PASSWORD_USER}:{password}").expect("writing to chpasswd");
    }
    let out = child.wait_with_output().expect("chpasswd ends");
    assert!(
        out.status.success(),
        "chpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    password
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
        Self::start_as(false)
    }

    /// Starts a server that takes only password logins, for
    /// [`PASSWORD_USER`] (its [`Sshd::user`]); the password is in
    /// [`Sshd::password_file`], and [`Sshd::root`] belongs to that account.
    /// Each start sets the account's password afresh, so two such servers
    /// alive at once in one run would race: one test uses it.
    pub fn start_with_password() -> Sshd {
        Self::start_as(true)
    }

    fn start_as(password: bool) -> Sshd {
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
        let password = password.then(password_account);
        let password_file = password.as_ref().map(|pw| {
            let f = d.join("password");
            std::fs::write(&f, pw).unwrap();
            // The account reaches its files through the (0700) temp dir.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
            run_ok(
                Command::new("chown")
                    .arg(format!("{PASSWORD_USER}:"))
                    .arg(d.join("files")),
                "chown",
            );
            f
        });
        let logins = if password.is_some() {
            format!(
                "PubkeyAuthentication no\n\
                 PasswordAuthentication yes\n\
                 PermitEmptyPasswords no\n\
                 AllowUsers {PASSWORD_USER}\n"
            )
        } else {
            "PubkeyAuthentication yes\nPasswordAuthentication no\n".to_string()
        };
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
                 {logins}\
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
            user: if password_file.is_some() {
                PASSWORD_USER.to_string()
            } else {
                current_user()
            },
            password_file,
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
    /// path as text, as the plugin names it; owned by the login account.
    pub fn folder(&self, dir: &str) -> String {
        let p = self.root().join(dir);
        std::fs::create_dir_all(&p).unwrap();
        if self.password_file.is_some() {
            run_ok(
                Command::new("chown")
                    .arg(format!("{PASSWORD_USER}:"))
                    .arg(&p),
                "chown",
            );
        }
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
