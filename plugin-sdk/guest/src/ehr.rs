//! EHR connectors: appointments in a window; patients, coverages and
//! encounters (with charges) changed since a cursor.
//!
//! Implement [`EhrConnector`] and export it with
//! [`export_ehr_connector!`](crate::export_ehr_connector).

pub use crate::ehr_world::exports::billd::connector0_1_0::ehr::{
    Appointment, AppointmentStatus, Charge, Coverage, CoveragePage, CoveragePriority, Encounter,
    EncounterPage, Patient, PatientPage, Window,
};
use crate::types::ConnectorError;

/// A connector to an EHR. `key` is billd's idempotency key for the call.
pub trait EhrConnector {
    /// Appointments starting inside the window.
    fn appointments(key: &str, window: Window) -> Result<Vec<Appointment>, ConnectorError> {
        let _ = (key, window);
        Err(ConnectorError::unsupported("appointments"))
    }

    /// Patients created or changed since the cursor.
    fn patients_changed(key: &str, since: Option<String>) -> Result<PatientPage, ConnectorError> {
        let _ = (key, since);
        Err(ConnectorError::unsupported("patients-changed"))
    }

    /// Coverages created or changed since the cursor.
    fn coverages_changed(key: &str, since: Option<String>) -> Result<CoveragePage, ConnectorError> {
        let _ = (key, since);
        Err(ConnectorError::unsupported("coverages-changed"))
    }

    /// Encounters (with charges) created or changed since the cursor.
    fn encounters_changed(
        key: &str,
        since: Option<String>,
    ) -> Result<EncounterPage, ConnectorError> {
        let _ = (key, since);
        Err(ConnectorError::unsupported("encounters-changed"))
    }
}

/// Exports an [`EhrConnector`](crate::ehr::EhrConnector) as this
/// component's `ehr-connector` world.
#[macro_export]
macro_rules! export_ehr_connector {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __BilldEhrExport;

        impl $crate::ehr_world::exports::billd::connector0_1_0::ehr::Guest for __BilldEhrExport {
            fn appointments(
                key: ::std::string::String,
                window: $crate::ehr::Window,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::ehr::Appointment>, $crate::types::ConnectorError>
            {
                <$ty as $crate::ehr::EhrConnector>::appointments(&key, window)
            }
            fn patients_changed(
                key: ::std::string::String,
                since: ::core::option::Option<::std::string::String>,
            ) -> ::core::result::Result<$crate::ehr::PatientPage, $crate::types::ConnectorError> {
                <$ty as $crate::ehr::EhrConnector>::patients_changed(&key, since)
            }
            fn coverages_changed(
                key: ::std::string::String,
                since: ::core::option::Option<::std::string::String>,
            ) -> ::core::result::Result<$crate::ehr::CoveragePage, $crate::types::ConnectorError> {
                <$ty as $crate::ehr::EhrConnector>::coverages_changed(&key, since)
            }
            fn encounters_changed(
                key: ::std::string::String,
                since: ::core::option::Option<::std::string::String>,
            ) -> ::core::result::Result<$crate::ehr::EncounterPage, $crate::types::ConnectorError> {
                <$ty as $crate::ehr::EhrConnector>::encounters_changed(&key, since)
            }
        }

        $crate::ehr_world::__export_ehr_connector!(__BilldEhrExport with_types_in $crate::ehr_world);
    };
}
