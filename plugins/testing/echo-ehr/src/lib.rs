//! A test EHR connector: one appointment in any window, one patient page.
//! Shows the ehr-connector world end to end.
use billd_plugin_sdk::ehr::*;
use billd_plugin_sdk::types::*;

struct EchoEhr;

impl EhrConnector for EchoEhr {
    fn appointments(_key: &str, window: Window) -> Result<Vec<Appointment>, ConnectorError> {
        if window.end.seconds <= window.start.seconds {
            return Err(ConnectorError::invalid(
                "window.end",
                "must be after window.start",
            ));
        }
        Ok(vec![Appointment {
            appointment_id: "A-1".into(),
            patient_id: "P-1".into(),
            provider_npi: "1234567893".into(),
            start: window.start,
            minutes: 30,
            status: AppointmentStatus::Booked,
            location: None,
        }])
    }

    fn patients_changed(_key: &str, since: Option<String>) -> Result<PatientPage, ConnectorError> {
        let items = if since.is_some() {
            Vec::new()
        } else {
            vec![Patient {
                patient_id: "P-1".into(),
                name: PersonName {
                    last: "Doe".into(),
                    first: "Jane".into(),
                    middle: None,
                    suffix: None,
                },
                birth_date: Date::new(1980, 2, 29),
                sex: Sex::Female,
                address: None,
                email: None,
                phone: None,
            }]
        };
        Ok(PatientPage {
            items,
            next: Some("cursor-1".into()),
        })
    }
}

billd_plugin_sdk::export_ehr_connector!(EchoEhr);
