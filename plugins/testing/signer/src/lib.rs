//! A test EHR connector for contract 0.2.0's `signing` import. Its
//! `appointments` answers one appointment whose id is the JWT billd signed
//! for it (or the error), and whose location reports what the plugin could
//! read of the key by other means (`secret()` and `setting()` under the
//! key's name): the host's tests check it read nothing.
use billd_plugin_sdk::ehr::*;
use billd_plugin_sdk::types::*;
use billd_plugin_sdk::{secrets, settings, signing};

struct Signer;

impl EhrConnector for Signer {
    fn appointments(key: &str, window: Window) -> Result<Vec<Appointment>, ConnectorError> {
        let name = settings::text("key-name").unwrap_or_else(|| "assertion".into());
        let claims = serde_json::json!({
            "iss": "signer-test", "sub": "signer-test", "jti": key,
            "exp": window.end.seconds,
        });
        let token = match signing::sign_jwt(&name, &claims.to_string()) {
            Ok(t) => t,
            Err(e) => format!("error: {e:?}"),
        };
        let mut seen = Vec::new();
        if secrets::get(&name).is_some() {
            seen.push("secret");
        }
        if settings::text(&name).is_some() {
            seen.push("setting");
        }
        Ok(vec![Appointment {
            appointment_id: token,
            patient_id: "P-1".into(),
            provider_npi: "1234567893".into(),
            start: window.start,
            minutes: 1,
            status: AppointmentStatus::Booked,
            location: Some(if seen.is_empty() {
                "nothing".into()
            } else {
                seen.join(",")
            }),
        }])
    }

    fn patients_changed(_key: &str, _since: Option<String>) -> Result<PatientPage, ConnectorError> {
        Err(ConnectorError::unsupported("patients-changed"))
    }
}

billd_plugin_sdk::export_ehr_connector!(Signer);
