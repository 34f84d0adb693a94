//! Starting the sandbox binary on a free loopback port, building the X12 a
//! provider sends (270, 276, 837P), and speaking CORE SOAP and MIME to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;

/// A running sandbox; killed on drop.
pub struct Sandbox {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The archive directory.
    pub archive: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo scenario.
pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/demo.toml")
}

/// Starts the sandbox with a scenario.
pub fn start(scenario: &Path) -> Sandbox {
    start_with(scenario, &[])
}

/// [`start`] with more arguments (`--sftp-root DIR`).
pub fn start_with(scenario: &Path, extra: &[&std::ffi::OsStr]) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let mut args: Vec<&std::ffi::OsStr> = vec!["payer".as_ref(), "--scenario".as_ref()];
    args.push(scenario.as_os_str());
    args.extend(["--listen", "127.0.0.1:0", "--archive"].map(std::ffi::OsStr::new));
    args.push(archive.as_os_str());
    args.extend_from_slice(extra);
    let (child, addr) = spawn_listening(&args);
    Sandbox {
        child,
        base: format!("http://{addr}"),
        archive,
        _dir: dir,
    }
}

/// Starts `billd-sandbox ARGS` (which must include `--listen`) and reads
/// the `listening on ADDR` line it prints first: the child and ADDR.
pub fn spawn_listening(args: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_billd-sandbox"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("sandbox starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_owned();
    (child, addr)
}

/// The names in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits (at most 20 s) until `cond` holds; panics naming `what`.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

const ISA_SENDER: &str = "BILLDCLINIC    ";
const ISA_RECEIVER: &str = "SANDBOXPAYER   ";

/// Wraps transaction segments (no ST/SE) in ISA/GS/ST envelopes.
pub fn envelope(functional: &str, set: &str, guide: &str, control: u32, body: &[String]) -> String {
    let mut out = format!(
        "ISA*00*          *00*          *ZZ*{ISA_SENDER}*ZZ*{ISA_RECEIVER}*240110*1200*^*00501*{control:09}*0*T*:~\nGS*{functional}*BILLDCLINIC*SANDBOXPAYER*20240110*1200*{control}*X*{guide}~\nST*{set}*0001*{guide}~\n"
    );
    for s in body {
        out.push_str(s);
        out.push_str("~\n");
    }
    out.push_str(&format!(
        "SE*{}*0001~\nGE*1*{control}~\nIEA*1*{control:09}~\n",
        body.len() + 2
    ));
    out
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A 270 about one member.
pub fn x270(member: &str, last: &str, dob: &str) -> String {
    envelope(
        "HS",
        "270",
        "005010X279A1",
        101,
        &lines(&format!(
            "BHT*0022*13*REF0001*20240110*1200
             HL*1**20*1
             NM1*PR*2*SANDBOX HEALTH PLAN*****PI*SANDBOXPAYER
             HL*2*1*21*1
             NM1*1P*2*BILLD CLINIC*****XX*1234567893
             HL*3*2*22*0
             TRN*1*TRACE0001*9877281234
             NM1*IL*1*{last}*JANE****MI*{member}
             DMG*D8*{dob}
             DTP*291*D8*20240110
             EQ*30"
        )),
    )
}

/// A 276 about claims (CLM01, cents).
pub fn x276(claims: &[(&str, i64)]) -> String {
    let mut body = lines(
        "BHT*0010*13*REF0002*20240110*1200
         HL*1**20*1
         NM1*PR*2*SANDBOX HEALTH PLAN*****PI*SANDBOXPAYER
         HL*2*1*21*1
         NM1*41*2*BILLD CLINIC*****46*BILLDCLINIC
         HL*3*2*19*1
         NM1*1P*2*BILLD CLINIC*****XX*1234567893",
    );
    for (i, (id, cents)) in claims.iter().enumerate() {
        body.extend(lines(&format!(
            "HL*{}*3*22*0
             DMG*D8*19800402*F
             NM1*IL*1*DOE*JANE****MI*M1001
             TRN*1*TRACE{i:04}
             REF*EJ*{id}
             AMT*T3*{}
             DTP*472*RD8*20240105-20240105",
            4 + i,
            billd_x12::fields::Amount::from_cents(*cents).as_str()
        )));
    }
    envelope("HR", "276", "005010X212", 102, &body)
}

/// An 837P with one claim of 125.00 per CLM01.
pub fn x837(claims: &[&str], control: u32) -> String {
    let mut body = lines(
        "BHT*0019*00*BATCH0001*20240110*1200*CH
         NM1*41*2*BILLD CLINIC*****46*BILLDCLINIC
         PER*IC*BILLING OFFICE*TE*2175550100
         NM1*40*2*SANDBOX HEALTH PLAN*****46*SANDBOXPAYER
         HL*1**20*1
         NM1*85*2*BILLD CLINIC*****XX*1234567893
         N3*100 CLINIC WAY
         N4*SPRINGFIELD*IL*627010001
         REF*EI*371234567",
    );
    for (i, id) in claims.iter().enumerate() {
        body.extend(lines(&format!(
            "HL*{}*1*22*0
             SBR*P*18*GRP100******CI
             NM1*IL*1*DOE*JANE****MI*M1001
             N3*1 MAIN ST
             N4*SPRINGFIELD*IL*62701
             DMG*D8*19800402*F
             NM1*PR*2*SANDBOX HEALTH PLAN*****PI*SANDBOXPAYER
             CLM*{id}*125***11:B:1*Y*A*Y*Y
             HI*ABK:J449
             LX*1
             SV1*HC:99213*125*UN*1***1
             DTP*472*D8*20240105",
            i + 2
        )));
    }
    envelope("HC", "837", "005010X222A1", control, &body)
}

/// SOAP namespaces.
pub const SOAP_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// CORE envelope namespace.
pub const CORE_NS: &str = "http://www.caqh.org/SOAP/WSDL/CORERule2.2.0.xsd";
/// WS-Security namespace.
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";

/// One CORE request.
#[derive(Clone, Debug)]
pub struct Req {
    /// SOAP request element.
    pub element: &'static str,
    /// PayloadType.
    pub payload_type: String,
    /// RealTime or Batch.
    pub mode: &'static str,
    /// PayloadID.
    pub payload_id: String,
    /// X12 (or empty).
    pub payload: String,
    /// UserName.
    pub user: String,
    /// Password.
    pub password: String,
    /// SenderID.
    pub sender: String,
}

impl Req {
    /// A real-time request.
    pub fn real_time(payload_type: &str, payload: String) -> Req {
        Req {
            element: "COREEnvelopeRealTimeRequest",
            payload_type: payload_type.into(),
            mode: "RealTime",
            payload_id: new_id(),
            payload,
            user: "billd".into(),
            password: "sandbox-password".into(),
            sender: "BILLDCLINIC".into(),
        }
    }

    /// A batch request of the given element.
    pub fn batch(element: &'static str, payload_type: &str, payload: String) -> Req {
        Req {
            element,
            mode: "Batch",
            ..Req::real_time(payload_type, payload)
        }
    }
}

/// A batch 837P submission.
pub fn submission(x12: String) -> Req {
    Req::batch(
        "COREEnvelopeBatchSubmission",
        "X12_837_Request_005010X222A1",
        x12,
    )
}

/// A retrieval request (999, 277CA or 835 by its PayloadType).
pub fn retrieval(payload_type: &str) -> Req {
    let element = if payload_type.starts_with("X12_835") {
        "COREEnvelopeBatchResultsRetrievalRequest"
    } else {
        "COREEnvelopeBatchSubmissionAckRetrievalRequest"
    };
    Req::batch(element, payload_type, String::new())
}

/// A fresh v4-looking UUID from the clock and a counter.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (t >> 32) as u32,
        (t >> 16) as u16,
        (t & 0xfff) as u16,
        (n & 0xfff) as u16,
        n ^ (t << 8) & 0xffff_ffff_ffff
    )
}

/// The answer's fields and status.
#[derive(Clone, Debug, Default)]
pub struct Ans {
    /// HTTP status.
    pub status: u16,
    /// Retry-After.
    pub retry_after: Option<String>,
    /// PayloadType.
    pub payload_type: String,
    /// PayloadID.
    pub payload_id: String,
    /// Payload (decoded).
    pub payload: String,
    /// ErrorCode.
    pub error_code: String,
    /// ErrorMessage.
    pub error_message: String,
}

/// Status and Retry-After of a response.
fn head(resp: &reqwest::Response) -> Ans {
    Ans {
        status: resp.status().as_u16(),
        retry_after: resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        ..Ans::default()
    }
}

/// Sends a request as SOAP.
pub async fn soap(sb: &Sandbox, r: &Req) -> Ans {
    let batch = r.element != "COREEnvelopeRealTimeRequest";
    let payload = if batch {
        base64::engine::general_purpose::STANDARD.encode(&r.payload)
    } else {
        r.payload.replace('&', "&amp;").replace('<', "&lt;")
    };
    let xml = format!(
        "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"{SOAP_NS}\"><soap:Header><wsse:Security xmlns:wsse=\"{WSSE_NS}\"><wsse:UsernameToken><wsse:Username>{}</wsse:Username><wsse:Password Type=\"PasswordText\">{}</wsse:Password></wsse:UsernameToken></wsse:Security></soap:Header><soap:Body><cor:{el} xmlns:cor=\"{CORE_NS}\"><PayloadType>{}</PayloadType><ProcessingMode>{}</ProcessingMode><PayloadID>{}</PayloadID><TimeStamp>2024-01-10T12:00:00Z</TimeStamp><SenderID>{}</SenderID><ReceiverID>SANDBOXPAYER</ReceiverID><CORERuleVersion>2.2.0</CORERuleVersion><Payload>{payload}</Payload></cor:{el}></soap:Body></soap:Envelope>",
        r.user,
        r.password,
        r.payload_type,
        r.mode,
        r.payload_id,
        r.sender,
        el = r.element
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/core", sb.base))
        .header("content-type", "application/soap+xml; charset=utf-8")
        .body(xml)
        .send()
        .await
        .unwrap();
    let mut a = head(&resp);
    let text = resp.text().await.unwrap();
    if text.is_empty() {
        return a;
    }
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let get = |n: &str| {
        doc.descendants()
            .find(|x| x.tag_name().name() == n)
            .and_then(|x| x.text())
            .unwrap_or("")
            .to_owned()
    };
    a.payload_type = get("PayloadType");
    a.payload_id = get("PayloadID");
    a.error_code = get("ErrorCode");
    a.error_message = get("ErrorMessage");
    let p = get("Payload");
    a.payload = if batch {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(p).unwrap()).unwrap()
    } else {
        p
    };
    a
}

/// Sends a request as HTTP+MIME multipart/form-data.
pub async fn mime(sb: &Sandbox, r: &Req) -> Ans {
    let form = reqwest::multipart::Form::new()
        .text("PayloadType", r.payload_type.clone())
        .text("ProcessingMode", r.mode)
        .text("PayloadID", r.payload_id.clone())
        .text("TimeStamp", "2024-01-10T12:00:00Z")
        .text("SenderID", r.sender.clone())
        .text("ReceiverID", "SANDBOXPAYER")
        .text("CORERuleVersion", "2.2.0")
        .text("UserName", r.user.clone())
        .text("Password", r.password.clone())
        .text("Payload", r.payload.clone());
    let resp = reqwest::Client::new()
        .post(format!("{}/core", sb.base))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let mut a = head(&resp);
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    let Some(boundary) = ct.split("boundary=").nth(1) else {
        return a;
    };
    for part in body.split(&format!("--{boundary}")) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let Some(name) = head
            .split("name=\"")
            .nth(1)
            .and_then(|n| n.split('"').next())
        else {
            continue;
        };
        let value = value.strip_suffix("\r\n").unwrap_or(value).to_owned();
        match name {
            "PayloadType" => a.payload_type = value,
            "PayloadID" => a.payload_id = value,
            "Payload" => a.payload = value,
            "ErrorCode" => a.error_code = value,
            "ErrorMessage" => a.error_message = value,
            _ => {}
        }
    }
    a
}

/// Arms a fault through the control API.
pub async fn fault(sb: &Sandbox, spec: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.base))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

/// The stats.
pub async fn stats(sb: &Sandbox) -> serde_json::Value {
    reqwest::get(format!("{}/_sandbox/stats", sb.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Asserts billd-x12 validates `x12` with no error; returns its document.
pub fn valid(x12: &str) -> billd_x12::Document {
    let parsed = billd_x12::validate::validate(x12.as_bytes())
        .unwrap_or_else(|e| panic!("unreadable X12: {e}\n{x12}"));
    let errors: Vec<String> = parsed
        .issues
        .iter()
        .filter(|i| i.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "billd-x12 finds errors: {errors:#?}\n{x12}"
    );
    parsed.document
}

/// The segments (as text) of an X12 answer, for simple assertions.
pub fn segments(x12: &str) -> Vec<String> {
    x12.split('~')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `<workspace>/.venv/bin/NAME`, if the venv exists.
pub fn venv(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/bin")
        .join(name);
    p.exists().then_some(p)
}
