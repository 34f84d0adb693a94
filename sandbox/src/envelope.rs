//! CAQH CORE Connectivity (vC2.2.0) envelopes, both ways: SOAP 1.2 with a
//! WS-Security UsernameToken, and HTTP+MIME multipart/form-data with the
//! same fields. Parsing yields one [`CoreMessage`] whatever the transport;
//! rendering writes the answer in the transport the request came in.

use base64::Engine as _;
use sha1::Digest as _;

/// SOAP 1.2 envelope namespace.
pub const SOAP_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// The CORE rule 2.2.0 envelope schema namespace.
pub const CORE_NS: &str = "http://www.caqh.org/SOAP/WSDL/CORERule2.2.0.xsd";
/// WS-Security secext namespace.
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";

/// Which CORE operation.
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
    /// The SOAP request element.
    #[must_use]
    pub fn request_element(self) -> &'static str {
        match self {
            Operation::RealTime => "COREEnvelopeRealTimeRequest",
            Operation::BatchSubmission => "COREEnvelopeBatchSubmission",
            Operation::AckRetrieval => "COREEnvelopeBatchSubmissionAckRetrievalRequest",
            Operation::ResultsRetrieval => "COREEnvelopeBatchResultsRetrievalRequest",
        }
    }

    /// The SOAP response element.
    #[must_use]
    pub fn response_element(self) -> &'static str {
        match self {
            Operation::RealTime => "COREEnvelopeRealTimeResponse",
            Operation::BatchSubmission => "COREEnvelopeBatchSubmissionResponse",
            Operation::AckRetrieval => "COREEnvelopeBatchSubmissionAckRetrievalResponse",
            Operation::ResultsRetrieval => "COREEnvelopeBatchResultsRetrievalResponse",
        }
    }

    fn from_element(name: &str) -> Option<Operation> {
        [
            Operation::RealTime,
            Operation::BatchSubmission,
            Operation::AckRetrieval,
            Operation::ResultsRetrieval,
        ]
        .into_iter()
        .find(|o| o.request_element() == name)
    }

    /// Carries a base64 payload with length and checksum on SOAP.
    #[must_use]
    pub fn is_batch(self) -> bool {
        self != Operation::RealTime
    }
}

/// How the request arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// SOAP 1.2.
    Soap,
    /// HTTP+MIME multipart/form-data.
    Mime,
}

/// One envelope's fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreMessage {
    /// PayloadType.
    pub payload_type: String,
    /// ProcessingMode: RealTime or Batch.
    pub processing_mode: String,
    /// PayloadID (an RFC 4122 UUID).
    pub payload_id: String,
    /// TimeStamp (XML dateTime).
    pub timestamp: String,
    /// SenderID.
    pub sender_id: String,
    /// ReceiverID.
    pub receiver_id: String,
    /// CORERuleVersion.
    pub core_rule_version: String,
    /// The payload (X12), decoded.
    pub payload: Vec<u8>,
    /// UserName (MIME) or wsse:Username (SOAP).
    pub username: String,
    /// Password (MIME) or wsse:Password (SOAP).
    pub password: String,
    /// ErrorCode of an answer (`Success` when none).
    pub error_code: String,
    /// ErrorMessage of an answer.
    pub error_message: String,
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// Parses a SOAP 1.2 CORE request.
///
/// # Errors
/// A CORE error code and message when the XML is not a CORE envelope.
pub fn parse_soap(body: &[u8]) -> Result<(Operation, CoreMessage), (String, String)> {
    let text = std::str::from_utf8(body).map_err(|_| {
        (
            "EnvelopeError".to_owned(),
            "the body is not UTF-8".to_owned(),
        )
    })?;
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| ("EnvelopeError".to_owned(), format!("not XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "Envelope" || root.tag_name().namespace() != Some(SOAP_NS) {
        return Err((
            "EnvelopeError".into(),
            "the root is not a SOAP 1.2 Envelope".into(),
        ));
    }
    let mut msg = CoreMessage::default();
    if let Some(token) = child(root, "Header")
        .and_then(|h| child(h, "Security"))
        .filter(|s| s.tag_name().namespace() == Some(WSSE_NS))
        .and_then(|s| child(s, "UsernameToken"))
    {
        msg.username = child(token, "Username")
            .and_then(|n| n.text())
            .unwrap_or("")
            .trim()
            .to_owned();
        msg.password = child(token, "Password")
            .and_then(|n| n.text())
            .unwrap_or("")
            .to_owned();
    }
    let body_el = child(root, "Body")
        .ok_or_else(|| ("EnvelopeError".to_owned(), "no SOAP Body".to_owned()))?;
    let env = body_el
        .children()
        .find(roxmltree::Node::is_element)
        .ok_or_else(|| ("EnvelopeError".to_owned(), "an empty SOAP Body".to_owned()))?;
    let op = Operation::from_element(env.tag_name().name())
        .filter(|_| env.tag_name().namespace() == Some(CORE_NS))
        .ok_or_else(|| {
            (
                "EnvelopeError".to_owned(),
                format!(
                    "{} is not a CORE request envelope in {CORE_NS}",
                    env.tag_name().name()
                ),
            )
        })?;
    let field = |name: &str| {
        child(env, name)
            .map(|n| n.text().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    msg.payload_type = field("PayloadType").trim().to_owned();
    msg.processing_mode = field("ProcessingMode").trim().to_owned();
    msg.payload_id = field("PayloadID").trim().to_owned();
    msg.timestamp = field("TimeStamp").trim().to_owned();
    msg.sender_id = field("SenderID").trim().to_owned();
    msg.receiver_id = field("ReceiverID").trim().to_owned();
    msg.core_rule_version = field("CORERuleVersion").trim().to_owned();
    let payload = field("Payload");
    if op.is_batch() && !payload.trim().is_empty() {
        let compact: String = payload.split_whitespace().collect();
        msg.payload = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| {
                (
                    "PayloadEncodingIncorrect".to_owned(),
                    "a batch Payload must be base64".to_owned(),
                )
            })?;
        let length = field("PayloadLength");
        if !length.trim().is_empty() && length.trim() != msg.payload.len().to_string() {
            return Err((
                "PayloadLengthIncorrect".into(),
                "PayloadLength does not match the decoded Payload".into(),
            ));
        }
        let sum = field("CheckSum");
        if !sum.trim().is_empty() && !sum.trim().eq_ignore_ascii_case(&checksum(&msg.payload)) {
            return Err((
                "ChecksumMismatch".into(),
                "CheckSum is not the SHA-1 of the Payload".into(),
            ));
        }
    } else {
        msg.payload = payload.into_bytes();
    }
    Ok((op, msg))
}

/// SHA-1 of a payload in lower-case hex (the CORE batch CheckSum).
#[must_use]
pub fn checksum(payload: &[u8]) -> String {
    let digest = sha1::Sha1::digest(payload);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The operation a MIME request asks for, from its ProcessingMode and
/// PayloadType.
#[must_use]
pub fn mime_operation(msg: &CoreMessage) -> Operation {
    if msg.processing_mode.eq_ignore_ascii_case("RealTime") {
        Operation::RealTime
    } else if msg.payload_type.contains("RetrievalRequest") {
        if msg.payload_type.starts_with("X12_835") {
            Operation::ResultsRetrieval
        } else {
            Operation::AckRetrieval
        }
    } else {
        Operation::BatchSubmission
    }
}

/// Sets one MIME field by its CORE name; unknown names are ignored.
pub fn set_mime_field(msg: &mut CoreMessage, name: &str, value: Vec<u8>) {
    let text = || String::from_utf8_lossy(&value).trim().to_owned();
    match name {
        "PayloadType" => msg.payload_type = text(),
        "ProcessingMode" => msg.processing_mode = text(),
        "PayloadID" => msg.payload_id = text(),
        "TimeStamp" => msg.timestamp = text(),
        "SenderID" => msg.sender_id = text(),
        "ReceiverID" => msg.receiver_id = text(),
        "CORERuleVersion" => msg.core_rule_version = text(),
        "UserName" => msg.username = text(),
        "Password" => msg.password = String::from_utf8_lossy(&value).into_owned(),
        "Payload" => msg.payload = value,
        _ => {}
    }
}

/// Escapes text for XML content.
#[must_use]
pub fn xml_escape(s: &str) -> String {
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

/// Writes an answer as a SOAP 1.2 envelope.
#[must_use]
pub fn render_soap(op: Operation, msg: &CoreMessage) -> String {
    let mut fields = vec![
        ("PayloadType", msg.payload_type.clone()),
        ("ProcessingMode", msg.processing_mode.clone()),
        ("PayloadID", msg.payload_id.clone()),
    ];
    let payload_text = if op.is_batch() {
        if !msg.payload.is_empty() {
            fields.push(("PayloadLength", msg.payload.len().to_string()));
        }
        base64::engine::general_purpose::STANDARD.encode(&msg.payload)
    } else {
        String::from_utf8_lossy(&msg.payload).into_owned()
    };
    fields.extend([
        ("TimeStamp", msg.timestamp.clone()),
        ("SenderID", msg.sender_id.clone()),
        ("ReceiverID", msg.receiver_id.clone()),
        ("CORERuleVersion", msg.core_rule_version.clone()),
    ]);
    if op.is_batch() && !msg.payload.is_empty() {
        fields.push(("CheckSum", checksum(&msg.payload)));
    }
    if !msg.payload.is_empty() {
        fields.push(("Payload", payload_text));
    }
    fields.push(("ErrorCode", msg.error_code.clone()));
    fields.push(("ErrorMessage", msg.error_message.clone()));
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"{SOAP_NS}\" xmlns:cor=\"{CORE_NS}\">\n<soapenv:Header/>\n<soapenv:Body>\n<cor:{}>\n",
        op.response_element()
    );
    for (name, value) in fields {
        out.push_str(&format!("<{name}>{}</{name}>\n", xml_escape(&value)));
    }
    out.push_str(&format!(
        "</cor:{}>\n</soapenv:Body>\n</soapenv:Envelope>\n",
        op.response_element()
    ));
    out
}

/// Writes an answer as multipart/form-data; returns (content type, body).
#[must_use]
pub fn render_mime(msg: &CoreMessage) -> (String, Vec<u8>) {
    let boundary = format!("core-{}", msg.payload_id.replace('-', ""));
    let mut out = Vec::new();
    let mut part = |name: &str, value: &[u8]| {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    part("PayloadType", msg.payload_type.as_bytes());
    part("ProcessingMode", msg.processing_mode.as_bytes());
    part("PayloadID", msg.payload_id.as_bytes());
    part("TimeStamp", msg.timestamp.as_bytes());
    part("SenderID", msg.sender_id.as_bytes());
    part("ReceiverID", msg.receiver_id.as_bytes());
    part("CORERuleVersion", msg.core_rule_version.as_bytes());
    if !msg.payload.is_empty() {
        part("Payload", &msg.payload);
    }
    part("ErrorCode", msg.error_code.as_bytes());
    part("ErrorMessage", msg.error_message.as_bytes());
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(op: Operation, payload_b64: &str, length: usize) -> String {
        format!(
            "<s:Envelope xmlns:s=\"{SOAP_NS}\"><s:Header><wsse:Security xmlns:wsse=\"{WSSE_NS}\"><wsse:UsernameToken><wsse:Username>u</wsse:Username><wsse:Password>p&amp;q</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header><s:Body><c:{el} xmlns:c=\"{CORE_NS}\"><PayloadType>X12_837_Request_005010X222A1</PayloadType><ProcessingMode>Batch</ProcessingMode><PayloadID>f81d4fae-7dec-11d0-a765-00a0c91e6bf6</PayloadID><PayloadLength>{length}</PayloadLength><TimeStamp>2024-01-10T12:00:00Z</TimeStamp><SenderID>S</SenderID><ReceiverID>R</ReceiverID><CORERuleVersion>2.2.0</CORERuleVersion><Payload>{payload_b64}</Payload></c:{el}></s:Body></s:Envelope>",
            el = op.request_element()
        )
    }

    #[test]
    fn a_soap_batch_submission_reads_with_its_credentials_and_payload() {
        let (op, msg) =
            parse_soap(request(Operation::BatchSubmission, "SVNBKg==", 4).as_bytes()).unwrap();
        assert_eq!(op, Operation::BatchSubmission);
        assert_eq!(msg.payload, b"ISA*");
        assert_eq!((msg.username.as_str(), msg.password.as_str()), ("u", "p&q"));
        assert_eq!(msg.payload_type, "X12_837_Request_005010X222A1");
    }

    #[test]
    fn a_wrong_payload_length_is_an_envelope_error() {
        let e =
            parse_soap(request(Operation::BatchSubmission, "SVNBKg==", 5).as_bytes()).unwrap_err();
        assert_eq!(e.0, "PayloadLengthIncorrect");
    }

    #[test]
    fn a_soap_answer_escapes_its_payload_and_reads_back() {
        let msg = CoreMessage {
            payload: b"ISA*<&>".to_vec(),
            payload_id: "x".into(),
            error_code: "Success".into(),
            ..CoreMessage::default()
        };
        let xml = render_soap(Operation::RealTime, &msg);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let p = doc
            .descendants()
            .find(|n| n.tag_name().name() == "Payload")
            .unwrap();
        assert_eq!(p.text(), Some("ISA*<&>"));
    }
}
