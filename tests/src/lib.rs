//! Helpers shared by billd's end-to-end tests: the freshly built `billd`
//! binary, temporary configurations, a daemon handle that is stopped on drop,
//! and real servers on loopback (an aiosmtpd SMTP sink).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The `billd` binary (debug build), built from the current sources on first use.
pub fn billd_bin() -> &'static Path {
    billd_bin_profile(false)
}

/// The `billd` binary in the debug or release profile, built from the
/// current sources on first use.
pub fn billd_bin_profile(release: bool) -> &'static Path {
    static DEBUG: OnceLock<PathBuf> = OnceLock::new();
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    let cell = if release { &RELEASE } else { &DEBUG };
    cell.get_or_init(|| cargo_build("billd", "billd", release))
}

/// The `billd-sandbox` test payer (debug build), built on first use.
pub fn sandbox_bin() -> &'static Path {
    sandbox_bin_profile(false)
}

/// The `billd-sandbox` test payer in the debug or release profile, built
/// on first use.
pub fn sandbox_bin_profile(release: bool) -> &'static Path {
    static DEBUG: OnceLock<PathBuf> = OnceLock::new();
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    let cell = if release { &RELEASE } else { &DEBUG };
    cell.get_or_init(|| cargo_build("billd-sandbox", "billd-sandbox", release))
}

/// `billd-sandbox payer` on the first free port of 8090-8099 (the range
/// the core-clearinghouse manifest allows), archiving every payload it
/// receives; killed on drop.
pub struct PayerSandbox {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where it archives payloads (`NNNN-<PayloadType>-<PayloadID>.x12`).
    pub archive: PathBuf,
}

impl PayerSandbox {
    /// Starts the debug-built sandbox with a scenario file, archiving into
    /// `archive`.
    pub fn start(scenario: &Path, archive: PathBuf) -> Self {
        Self::start_with(sandbox_bin(), scenario, archive)
    }

    /// [`PayerSandbox::start`] with a given `billd-sandbox` binary.
    pub fn start_with(program: &Path, scenario: &Path, archive: PathBuf) -> Self {
        Self::start_args(program, scenario, archive, &[])
    }

    /// [`PayerSandbox::start_with`] with more arguments (`--sftp-root DIR`,
    /// sandbox/README.md).
    pub fn start_args(program: &Path, scenario: &Path, archive: PathBuf, extra: &[&OsStr]) -> Self {
        let mut args = vec![
            OsStr::new("payer"),
            OsStr::new("--scenario"),
            scenario.as_os_str(),
            OsStr::new("--archive"),
            archive.as_os_str(),
        ];
        args.extend_from_slice(extra);
        let (child, port) = start_listening(program, &args, 8090..8100, "the sandbox");
        Self {
            child,
            port,
            archive,
        }
    }

    /// Its origin, `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A control-API request (`/_sandbox/...`); asserts a 2xx answer and
    /// returns its body.
    pub fn control(&self, method: &str, path: &str, body: &str) -> String {
        loopback_request(self.port, method, path, body)
    }

    /// Arms a fault (its JSON spec, sandbox/README.md).
    pub fn fault(&self, spec: &str) {
        self.control("POST", "/_sandbox/faults", spec);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.control("DELETE", "/_sandbox/faults", "");
    }

    /// Archived payloads of one PayloadType, in arrival order: (PayloadID,
    /// path).
    pub fn archived(&self, payload_type: &str) -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&self.archive)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "x12"))
            .filter_map(|p| {
                let name = p.file_stem()?.to_str()?.to_owned();
                let (_, rest) = name.split_once('-')?;
                let id = rest.strip_prefix(payload_type)?.strip_prefix('-')?;
                Some((id.to_owned(), p.clone()))
            })
            .collect();
        let arrival = |p: &Path| -> u64 {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(u64::MAX)
        };
        v.sort_by_key(|(_, p)| arrival(p));
        v
    }
}

/// Starts `program ARGS --listen 127.0.0.1:PORT` on the first port of
/// `ports` it can listen on (a sandbox prints `listening on ADDR` first),
/// its stdout read and its stderr dropped; panics naming `what` when no
/// port is free.
pub fn start_listening(
    program: &Path,
    args: &[&OsStr],
    ports: std::ops::Range<u16>,
    what: &str,
) -> (Child, u16) {
    for port in ports.clone() {
        let mut child = Command::new(program)
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        if line.starts_with("listening on ") {
            return (child, port);
        }
        let _ = child.wait();
    }
    panic!(
        "no free port in 127.0.0.1:{}-{} for {what}",
        ports.start,
        ports.end - 1
    );
}

/// One HTTP/1.1 request with a JSON body to a server on 127.0.0.1:`port`
/// (a sandbox's control API); asserts a 2xx answer and returns its body.
pub fn loopback_request(port: u16, method: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 2"), "{out}");
    out.split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default()
}

/// A benchmarked `program --config CONFIG ARGS`: its wall seconds, peak RSS
/// (KiB) and stdout, run under `/usr/bin/time -v` (and the words of
/// `BILLD_BENCH_WRAP` before it, for example a profiler); panics with its
/// output when it fails.
pub fn measured(program: &Path, config: &Path, args: &[&str]) -> (f64, u64, String) {
    let t0 = Instant::now();
    let wrap = std::env::var("BILLD_BENCH_WRAP").unwrap_or_default();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .args(wrap.split_whitespace())
        .arg(program)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let wall = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "billd {args:?} failed:\n{stdout}\n{stderr}"
    );
    let peak = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("/usr/bin/time -v reports the peak RSS");
    (wall, peak, stdout)
}

/// The ports the fhir-ehr manifest allows.
pub const FHIR_PORTS: std::ops::Range<u16> = 8180..8190;

/// The built fhir-ehr package; panics with the fix if missing.
pub fn fhir_package() -> PathBuf {
    let p = workspace_root().join("plugins/dist/fhir-ehr");
    assert!(
        p.join("plugin.toml").exists(),
        "{} is missing: run scripts/build-plugins.sh",
        p.display()
    );
    p
}

/// The `[[plugin]]` table of the fhir-ehr connector (pinned by its sha256)
/// against the FHIR server at `origin`, with `settings` inside its settings
/// after the base URL (`, timeout-ms = 5000`) and `extra` lines after.
pub fn fhir_plugin_table(origin: &str, settings: &str, extra: &str) -> String {
    let pkg = fhir_package();
    format!(
        r#"[[plugin]]
name = "fhir-ehr"
path = "{}"
sha256 = "{}"
allowed_hosts = ["{origin}"]
settings = {{ base-url = "{origin}/fhir"{settings} }}
{extra}
"#,
        pkg.display(),
        sha256_file(&pkg.join("fhir_ehr.wasm")),
    )
}

/// `billd-sandbox fhir` on the first free port the fhir-ehr manifest
/// allows; killed on drop.
pub struct FhirSandbox {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl FhirSandbox {
    /// The debug-built sandbox over the repository's FHIR fixtures, with
    /// `auth` flags (`--static-token T`, `--jwks F --client-id C`).
    pub fn start(auth: &[&str]) -> FhirSandbox {
        let data = workspace_root().join("tests/fixtures/fhir");
        let mut args = vec!["--data", data.to_str().expect("a UTF-8 path")];
        args.extend_from_slice(auth);
        Self::start_with(sandbox_bin(), &args)
    }

    /// `program fhir ARGS --listen 127.0.0.1:PORT`.
    pub fn start_with(program: &Path, args: &[&str]) -> FhirSandbox {
        let mut all = vec![std::ffi::OsStr::new("fhir")];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        let (child, port) = start_listening(program, &all, FHIR_PORTS, "the FHIR sandbox");
        FhirSandbox { child, port }
    }

    /// Its origin, `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it served (`/_sandbox/stats`).
    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&loopback_request(self.port, "GET", "/_sandbox/stats", ""))
            .expect("stats are JSON")
    }

    /// A control-API POST.
    pub fn post(&self, path: &str, body: &str) {
        loopback_request(self.port, "POST", path, body);
    }

    /// Replaces a resource (the sandbox stamps it updated now).
    pub fn put(&self, resource: &serde_json::Value) {
        let path = format!(
            "/fhir/{}/{}",
            resource["resourceType"].as_str().expect("a resourceType"),
            resource["id"].as_str().expect("an id")
        );
        loopback_request(self.port, "PUT", &path, &resource.to_string());
    }
}

impl Drop for FhirSandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The head of a payer sandbox scenario: the sandbox payer, claim statuses
/// advancing one step per inquiry, and the credentials
/// [`core_plugin_table`] gives the connector.
pub const PAYER_SCENARIO_HEAD: &str = r#"status_advance = "per-inquiry"
[payer]
id = "SANDBOXPAYER"
name = "SANDBOX HEALTH PLAN"
core_id = "SANDBOXPAYER"
[[credentials]]
username = "billd"
password = "sandbox-password"
"#;

/// The built core-clearinghouse package; panics with the fix if missing.
pub fn core_package() -> PathBuf {
    let p = workspace_root().join("plugins/dist/core-clearinghouse");
    assert!(
        p.join("plugin.toml").exists(),
        "{} is missing: run scripts/build-plugins.sh",
        p.display()
    );
    p
}

/// The `[[plugin]]` table of the core-clearinghouse connector (pinned by
/// its sha256) against `sandbox` over `transport`, with `settings_extra`
/// inside its settings (`, timeout-ms = 3000`) and `extra` lines after;
/// writes the credential files its secrets name into `s`.
pub fn core_plugin_table(
    s: &Scratch,
    sandbox: &PayerSandbox,
    transport: &str,
    settings_extra: &str,
    extra: &str,
) -> String {
    let pkg = core_package();
    std::fs::write(s.path("core.user"), "billd\n").expect("write core.user");
    std::fs::write(s.path("core.pass"), "sandbox-password\n").expect("write core.pass");
    let origin = sandbox.origin();
    format!(
        r#"[[plugin]]
name = "core-clearinghouse"
path = "{}"
sha256 = "{}"
allowed_hosts = ["{origin}"]
settings = {{ base-url = "{origin}", transport = "{transport}"{settings_extra} }}
{extra}secrets = {{ username = "file:core.user", password = "file:core.pass" }}
"#,
        pkg.display(),
        sha256_file(&pkg.join("core_clearinghouse.wasm")),
    )
}

impl Drop for PayerSandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds one binary of a workspace package; returns its path.
fn cargo_build(package: &str, bin: &str, release: bool) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "build",
        "-p",
        package,
        "--bin",
        bin,
        "--message-format=json",
    ];
    if release {
        args.push("--release");
    }
    let mut cmd = Command::new(cargo);
    // Cargo gives a test or bench process the variables of its own package
    // (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...). Passed on, they change the
    // fingerprints of dependencies that read them, so this build and a
    // plain `cargo build` would rebuild each other's artifacts every time.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            )
        {
            cmd.env_remove(name.as_ref());
        }
    }
    let out = cmd
        .args(&args)
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(out.status.success(), "building {bin} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| {
            v.get("executable")
                .and_then(|e| e.as_str())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| panic!("cargo reported no {bin} executable"))
}

/// `n` clean professional claims: copies of a public 837P sample
/// (LinuxForHealth's demo.example1) with their own CLM01, member id and
/// interchange number, ICD-10 diagnoses and a recent date of service, the
/// patient made the subscriber (the contract's dependent carries no
/// address, which an 837P needs), one interchange each, in one file. Every
/// patient is named TED SMITH; [`claims_837_named`] gives each their own.
pub fn claims_837(n: usize, prefix: &str) -> String {
    claims_837_named(prefix, &vec![("TED".to_string(), "SMITH".to_string()); n])
}

/// The diagnosis codes (ICD-10, as the HI segment writes them) of every
/// claim [`claims_837_named`] writes.
pub const CLAIMS_837_DIAGNOSES: [&str; 2] = ["J029", "Z0000"];

/// The procedure codes (CPT) of every claim [`claims_837_named`] writes.
pub const CLAIMS_837_PROCEDURES: [&str; 4] = ["99213", "87070", "99214", "86663"];

/// The patient's birth date (DMG03) of every claim [`claims_837_named`]
/// writes.
pub const CLAIMS_837_BIRTH_DATE: &str = "1973-05-01";

/// The payer (NM1*PR id) of every claim [`claims_837_named`] writes.
pub const CLAIMS_837_PAYER: &str = "999996666";

/// CLM01 of claim `i` of `n` written by [`claims_837_named`]: the prefix
/// and the claim's number, at least four digits. The member id is `M` and
/// the same.
pub fn control_number(prefix: &str, i: usize, n: usize) -> String {
    let width = (n.saturating_sub(1)).to_string().len().max(4);
    format!("{prefix}{i:0width$}")
}

/// One claim per `(first, last)` name of `names`, as [`claims_837`]
/// writes them: claim `i` has CLM01 [`control_number`]`(prefix, i, n)` and
/// its patient (the subscriber) is `names[i]`.
pub fn claims_837_named(prefix: &str, names: &[(String, String)]) -> String {
    let sample = std::fs::read_to_string(
        workspace_root().join("tests/fixtures/x12/837P/lfh__demo.example1.837"),
    )
    .unwrap();
    let n = names.len();
    let dos = (chrono::Utc::now().date_naive() - chrono::Days::new(10))
        .format("%Y%m%d")
        .to_string();
    names
        .iter()
        .enumerate()
        .map(|(i, (first, last))| {
            let number = control_number(prefix, i, n);
            sample
                .replace("HL*2*1*22*1~", "HL*2*1*22*0~")
                .replace("SBR*P**2222-SJ", "SBR*P*18*2222-SJ")
                .replace(
                    "NM1*IL*1*SMITH*JANE****MI*JS00111223333~\nNM1*PR*2*KEY INSURANCE COMPANY*****PI*999996666~\nHL*3*2*23*0~\nPAT*19~\nNM1*QC*1*SMITH*TED~\nN3*236 N MAIN ST~\nN4*MIAMI*FL*33413~\nDMG*D8*19730501*M~\n",
                    &format!("NM1*IL*1*{last}*{first}****MI*JS00111223333~\nN3*236 N MAIN ST~\nN4*MIAMI*FL*33413~\nDMG*D8*19730501*M~\nNM1*PR*2*KEY INSURANCE COMPANY*****PI*999996666~\n"),
                )
                .replace("SE*40*0021", "SE*37*0021")
                .replace("CLM*26463774*", &format!("CLM*{number}*"))
                .replace("JS00111223333", &format!("M{number}"))
                .replace("000000907", &format!("{:09}", 100 + i))
                .replace("HI*BK:0340*BF:V7389", "HI*ABK:J029*ABF:Z0000")
                .replace("20061003", &dos)
                .replace("20061010", &dos)
        })
        .collect()
}

/// `n` patient names, (first, last), made of syllables so that no two
/// patients share a first or a last name and no first name is anyone's
/// last name: a message that names the wrong patient shows.
pub fn distinct_names(n: usize) -> Vec<(String, String)> {
    const FIRST: [&str; 10] = ["BA", "DE", "KI", "LO", "MU", "NA", "PE", "RI", "SO", "TU"];
    const LAST: [&str; 10] = ["ZA", "VO", "GU", "HE", "JI", "FO", "WA", "YE", "XU", "QI"];
    let width = (n.saturating_sub(1)).to_string().len().max(3);
    let spell = |i: usize, syllables: &[&str; 10]| -> String {
        format!("{i:0width$}")
            .bytes()
            .map(|d| syllables[usize::from(d - b'0')])
            .collect()
    };
    (0..n)
        .map(|i| (spell(i, &FIRST), format!("{}N", spell(i, &LAST))))
        .collect()
}

/// An 835 from payer `payer` (TRN03) to the payee of the
/// [`claims_837`] sample (Ben Kildare Service, NPI 1912301953) with BPR02
/// `paid`, TRN02 `trace` and `claims` (CLP loops, each ending in `~`).
pub fn era_835(payer: &str, paid: &str, trace: &str, claims: &str) -> String {
    let body = format!(
        "BPR*I*{paid}*C*ACH************20260301~TRN*1*{trace}*{payer}~N1*PR*SOME PAYER~N1*PE*BEN KILDARE SERVICE*XX*1912301953~LX*1~{claims}"
    );
    let n = body.matches('~').count() + 2;
    format!(
        "ISA*00*          *00*          *ZZ*A              *ZZ*B              *260301*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20260301*1200*1*X*005010X221A1~ST*835*0001~{body}SE*{n}*0001~GE*1*1~IEA*1*000000001~"
    )
}

/// A Python tool from the test virtualenv; panics with the fix if missing.
pub fn venv_tool(name: &str) -> PathBuf {
    let p = workspace_root().join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/test (it creates .venv with the test tools)",
        p.display()
    );
    p
}

/// A scratch directory with a `billd.toml` in it.
pub struct Scratch {
    /// The directory (deleted on drop).
    pub dir: tempfile::TempDir,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// A new empty scratch directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Path of a file inside it.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The configuration file path.
    pub fn config(&self) -> PathBuf {
        self.path("billd.toml")
    }

    /// Writes the configuration file.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).expect("writing config");
    }

    /// A `billd` command with `--config` set.
    pub fn billd(&self) -> Command {
        let mut c = Command::new(billd_bin());
        c.arg("--config")
            .arg(self.config())
            .current_dir(self.dir.path());
        c.env_remove("BILLD_CONFIG")
            .env("BILLD_LOG", "info,billd=debug");
        c
    }

    /// Runs `billd ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.billd().args(args).output().expect("running billd")
    }

    /// Runs `billd ARGS` to completion with its wall clock `days` days off
    /// (negative: in the past), under libfaketime (`faketime`, which
    /// `scripts/test` installs); monotonic time is left alone.
    pub fn run_shifted(&self, days: i64, args: &[&str]) -> Output {
        let faketime = Path::new("/usr/bin/faketime");
        assert!(
            faketime.exists(),
            "{} is missing: scripts/test installs it (apt-get install faketime)",
            faketime.display()
        );
        let billd = self.billd();
        let mut c = Command::new(faketime);
        c.arg("-f")
            .arg(format!("{days:+}d"))
            .arg(billd.get_program())
            .args(billd.get_args())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("BILLD_CONFIG")
            .env("BILLD_LOG", "info,billd=debug")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        c.output().expect("running billd under faketime")
    }

    /// Starts `billd ARGS` without waiting, its stdout dropped and its
    /// stderr in `log_name`.
    pub fn spawn(&self, args: &[&str], log_name: &str) -> std::process::Child {
        let log = std::fs::File::create(self.path(log_name)).expect("log file");
        self.billd()
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting billd")
    }

    /// Runs `billd init`, asserting success.
    pub fn init(&self) {
        let out = self.run(&["init"]);
        assert!(
            out.status.success(),
            "billd init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the daemon with its log in `log_name`.
    pub fn start_daemon(&self, log_name: &str) -> Daemon {
        let log = std::fs::File::create(self.path(log_name)).expect("log file");
        let child = self
            .billd()
            .args(["run"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting daemon");
        Daemon {
            child: Some(child),
            log: self.path(log_name),
        }
    }

    /// [`Scratch::start_daemon`], then waits (at most `limit`) until its
    /// control socket is ready.
    pub fn start_daemon_ready(&self, log_name: &str, limit: Duration) -> Daemon {
        let d = self.start_daemon(log_name);
        wait_until(limit, "the control socket", || {
            d.log_text().contains("control socket ready")
        });
        d
    }
}

/// The standard header of a test configuration: practice, store, mail.
pub fn base_config(mail: &str) -> String {
    format!(
        r#"[practice]
name = "Riverside Family Medicine"
npi = "1234567893"
tax_id = "12-3456789"
timezone = "America/New_York"

[store]
path = "store"
key_file = "store.key"

[mail]
from = "billd <billing@example.org>"
{mail}
"#
    )
}

/// A running daemon; killed on drop if still running.
pub struct Daemon {
    child: Option<Child>,
    /// Its stderr log.
    pub log: PathBuf,
}

impl Daemon {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Waits up to `limit` for exit; returns the exit code (None if killed by signal).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("running");
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return st.code();
            }
            assert!(
                start.elapsed() < limit,
                "daemon did not exit within {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// SIGTERM, then waits for a clean exit and returns its code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait(Duration::from_secs(30))
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.wait(Duration::from_secs(10));
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log so far without its terminal colours (ANSI escapes), so
    /// fields read `key=value`.
    pub fn log_plain(&self) -> String {
        let log = self.log_text();
        let mut plain = String::with_capacity(log.len());
        let mut rest = log.as_str();
        while let Some(i) = rest.find('\u{1b}') {
            plain.push_str(&rest[..i]);
            rest = rest[i..].split_once('m').map_or("", |(_, r)| r);
        }
        plain.push_str(rest);
        plain
    }
}

/// The names of the entries in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1; stopped on drop.
pub struct SmtpSink {
    child: Child,
    /// Its port.
    pub port: u16,
    /// JSON lines, one per accepted message.
    pub spool: PathBuf,
}

/// Starts `tests/support/<script>` with `python` and `args`; returns the
/// process and the port it printed on its first line.
fn start_sink(python: &Path, script: &str, args: &[&OsStr]) -> (Child, u16) {
    let mut child = Command::new(python)
        .arg(workspace_root().join("tests/support").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {script}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("reading sink port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{script} printed {line:?}, not a port"));
    (child, port)
}

/// The JSON lines a sink appended to `spool` so far.
fn spooled(spool: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(spool)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("sink wrote JSON"))
        .collect()
}

impl SmtpSink {
    /// Starts the sink, recording into `spool`.
    pub fn start(spool: PathBuf) -> Self {
        let (child, port) = start_sink(&venv_tool("python"), "smtp_sink.py", &[spool.as_os_str()]);
        Self { child, port, spool }
    }

    /// Messages accepted so far.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        spooled(&self.spool)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real HTTP webhook receiver (tests/support/webhook_sink.py) on
/// 127.0.0.1 that checks each POST's Standard Webhooks signature with
/// Python's hmac module; stopped on drop.
pub struct WebhookSink {
    child: Child,
    /// Its port.
    pub port: u16,
    /// JSON lines, one per request: `id`, `timestamp`, `signature`,
    /// `verified`, `body`, `path`.
    pub spool: PathBuf,
}

impl WebhookSink {
    /// Starts the receiver verifying against `secret` (`whsec_<base64>`),
    /// recording into `spool`.
    pub fn start(spool: PathBuf, secret: &str) -> Self {
        // The standard library is all it needs: the system's python3.
        let (child, port) = start_sink(
            Path::new("python3"),
            "webhook_sink.py",
            &[spool.as_os_str(), OsStr::new(secret)],
        );
        Self { child, port, spool }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        spooled(&self.spool)
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Text of a command's stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Text of a command's stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The sha256 of a file, as a plugin pin is written.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Asserts pyx12 (`x12valid` from `.venv`) finds every file valid.
pub fn pyx12_passes(files: &[PathBuf]) {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        // x12valid writes its 997 beside the input: check a copy.
        let copy = dir.path().join(f.file_name().unwrap());
        std::fs::copy(f, &copy).unwrap();
        let out = Command::new(venv_tool("x12valid"))
            .arg(&copy)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let verdict = format!("{}: OK", copy.display());
        assert!(text.lines().any(|l| l.trim() == verdict), "pyx12: {text}");
    }
}
