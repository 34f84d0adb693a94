//! CAQH CORE Connectivity vC2.2.0 envelopes as a client writes and reads
//! them: SOAP 1.2 with a WS-Security UsernameToken, or HTTP+MIME
//! multipart/form-data with the same fields. Pure functions: no host calls,
//! so they are tested on the host target.

use base64::Engine as _;
use sha1::Digest as _;

/// SOAP 1.2 envelope namespace.
pub const SOAP_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// CORE rule 2.2.0 envelope namespace.
pub const CORE_NS: &str = "http://www.caqh.org/SOAP/WSDL/CORERule2.2.0.xsd";
/// WS-Security secext namespace.
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// WS-Security PasswordText type.
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";

/// Which CORE request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// COREEnvelopeRealTimeRequest.
    RealTime,
    /// COREEnvelopeBatchSubmission.
    BatchSubmission,
    /// COREEnvelopeBatchSubmissionAckRetrievalRequest.
    AckRetrieval,
    /// COREEnvelopeBatchResultsRetrievalRequest.
    ResultsRetrieval,
}

impl Operation {
    fn element(self) -> &'static str {
        match self {
            Operation::RealTime => "COREEnvelopeRealTimeRequest",
            Operation::BatchSubmission => "COREEnvelopeBatchSubmission",
            Operation::AckRetrieval => "COREEnvelopeBatchSubmissionAckRetrievalRequest",
            Operation::ResultsRetrieval => "COREEnvelopeBatchResultsRetrievalRequest",
        }
    }

    fn mode(self) -> &'static str {
        if self == Operation::RealTime {
            "RealTime"
        } else {
            "Batch"
        }
    }
}

/// The fields of a request.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The operation.
    pub op: Operation,
    /// PayloadType.
    pub payload_type: &'a str,
    /// PayloadID (RFC 4122 UUID).
    pub payload_id: &'a str,
    /// TimeStamp (XML dateTime, UTC).
    pub timestamp: &'a str,
    /// SenderID.
    pub sender_id: &'a str,
    /// ReceiverID.
    pub receiver_id: &'a str,
    /// The X12 (empty for retrievals).
    pub payload: &'a [u8],
    /// UserName.
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
}

/// The fields of an answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// PayloadType.
    pub payload_type: String,
    /// PayloadID.
    pub payload_id: String,
    /// Payload, decoded.
    pub payload: Vec<u8>,
    /// ErrorCode (`Success` when none).
    pub error_code: String,
    /// ErrorMessage.
    pub error_message: String,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// SHA-1 of the payload, lower-case hex (the batch CheckSum).
pub fn checksum(payload: &[u8]) -> String {
    sha1::Sha1::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A SOAP 1.2 request body.
pub fn soap(r: &Request<'_>) -> String {
    let batch = r.op != Operation::RealTime;
    let mut fields = vec![
        ("PayloadType", r.payload_type.to_owned()),
        ("ProcessingMode", r.op.mode().to_owned()),
        ("PayloadID", r.payload_id.to_owned()),
    ];
    if batch && !r.payload.is_empty() {
        fields.push(("PayloadLength", r.payload.len().to_string()));
    }
    fields.extend([
        ("TimeStamp", r.timestamp.to_owned()),
        ("SenderID", r.sender_id.to_owned()),
        ("ReceiverID", r.receiver_id.to_owned()),
        ("CORERuleVersion", "2.2.0".to_owned()),
    ]);
    if batch && !r.payload.is_empty() {
        fields.push(("CheckSum", checksum(r.payload)));
    }
    let payload = if batch {
        base64::engine::general_purpose::STANDARD.encode(r.payload)
    } else {
        String::from_utf8_lossy(r.payload).into_owned()
    };
    fields.push(("Payload", payload));
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<soap:Envelope xmlns:soap=\"{SOAP_NS}\"><soap:Header>\
<wsse:Security xmlns:wsse=\"{WSSE_NS}\" soap:mustUnderstand=\"true\"><wsse:UsernameToken>\
<wsse:Username>{}</wsse:Username><wsse:Password Type=\"{PASSWORD_TEXT}\">{}</wsse:Password>\
</wsse:UsernameToken></wsse:Security></soap:Header><soap:Body><cor:{} xmlns:cor=\"{CORE_NS}\">",
        escape(r.username),
        escape(r.password),
        r.op.element()
    );
    for (name, value) in fields {
        out.push_str(&format!("<{name}>{}</{name}>", escape(&value)));
    }
    out.push_str(&format!(
        "</cor:{}></soap:Body></soap:Envelope>",
        r.op.element()
    ));
    out
}

/// A multipart/form-data request: (content type, body).
pub fn mime(r: &Request<'_>) -> (String, Vec<u8>) {
    let boundary = format!("billd-core-{}", r.payload_id.replace('-', ""));
    let mut out = Vec::new();
    let mut part = |name: &str, value: &[u8]| {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    part("PayloadType", r.payload_type.as_bytes());
    part("ProcessingMode", r.op.mode().as_bytes());
    part("PayloadID", r.payload_id.as_bytes());
    part("TimeStamp", r.timestamp.as_bytes());
    part("SenderID", r.sender_id.as_bytes());
    part("ReceiverID", r.receiver_id.as_bytes());
    part("CORERuleVersion", b"2.2.0");
    part("UserName", r.username.as_bytes());
    part("Password", r.password.as_bytes());
    part("Payload", r.payload);
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

/// Reads a SOAP answer; `Err` says what is wrong with it.
pub fn read_soap(body: &[u8]) -> Result<Answer, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_owned())?;
    let doc =
        roxmltree::Document::parse(text).map_err(|e| format!("the answer is not XML: {e}"))?;
    let env = doc
        .descendants()
        .find(|n| {
            n.is_element()
                && n.tag_name().namespace() == Some(CORE_NS)
                && n.tag_name().name().starts_with("COREEnvelope")
        })
        .ok_or_else(|| "the answer holds no CORE envelope".to_owned())?;
    let field = |name: &str| {
        env.children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
            .and_then(|c| c.text())
            .unwrap_or("")
            .to_owned()
    };
    let batch = !env.tag_name().name().contains("RealTime");
    let raw = field("Payload");
    let payload = if batch {
        let compact: String = raw.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| "the batch Payload is not base64".to_owned())?
    } else {
        raw.into_bytes()
    };
    Ok(Answer {
        payload_type: field("PayloadType").trim().to_owned(),
        payload_id: field("PayloadID").trim().to_owned(),
        payload,
        error_code: field("ErrorCode").trim().to_owned(),
        error_message: field("ErrorMessage").trim().to_owned(),
    })
}

/// Reads a multipart/form-data answer given its content type.
pub fn read_mime(content_type: &str, body: &[u8]) -> Result<Answer, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_owned())
        .ok_or_else(|| "the answer is not multipart/form-data".to_owned())?;
    let delim = format!("--{boundary}");
    let mut a = Answer::default();
    let mut found = false;
    for part in split(body, delim.as_bytes()) {
        let Some(at) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..at]);
        let mut value = &part[at + 4..];
        if value.ends_with(b"\r\n") {
            value = &value[..value.len() - 2];
        }
        let Some(name) = head
            .split("name=\"")
            .nth(1)
            .and_then(|n| n.split('"').next())
        else {
            continue;
        };
        let text = || String::from_utf8_lossy(value).trim().to_owned();
        found = true;
        match name {
            "PayloadType" => a.payload_type = text(),
            "PayloadID" => a.payload_id = text(),
            "Payload" => a.payload = value.to_vec(),
            "ErrorCode" => a.error_code = text(),
            "ErrorMessage" => a.error_message = text(),
            _ => {}
        }
    }
    if found {
        Ok(a)
    } else {
        Err("the multipart answer has no parts".into())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut hay: &'a [u8], delim: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(hay, delim) {
        out.push(&hay[..i]);
        hay = &hay[i + delim.len()..];
    }
    out.push(hay);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: Operation, payload: &[u8]) -> Request<'_> {
        Request {
            op,
            payload_type: "X12_837_Request_005010X222A1",
            payload_id: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            timestamp: "2024-01-10T12:00:00Z",
            sender_id: "S",
            receiver_id: "R",
            payload,
            username: "u<",
            password: "p&",
        }
    }

    #[test]
    fn a_batch_soap_request_carries_base64_length_and_checksum() {
        let xml = soap(&req(Operation::BatchSubmission, b"ISA*"));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let text = |n: &str| {
            doc.descendants()
                .find(|x| x.tag_name().name() == n)
                .and_then(|x| x.text())
                .unwrap()
                .to_owned()
        };
        assert_eq!(text("Payload"), "SVNBKg==");
        assert_eq!(text("PayloadLength"), "4");
        assert_eq!(text("CheckSum"), checksum(b"ISA*"));
        assert_eq!(text("Username"), "u<");
        assert_eq!(text("Password"), "p&");
    }

    #[test]
    fn a_mime_answer_reads_back_its_fields() {
        let (ct, body) = mime(&req(Operation::RealTime, b"ISA*1~\r\nGS*2~"));
        let a = read_mime(&ct, &body).unwrap();
        assert_eq!(a.payload, b"ISA*1~\r\nGS*2~");
        assert_eq!(a.payload_type, "X12_837_Request_005010X222A1");
    }

    #[test]
    fn a_soap_answer_without_an_envelope_is_an_error() {
        assert!(read_soap(b"<a/>").is_err());
        assert!(read_soap(b"not xml").is_err());
    }
}
