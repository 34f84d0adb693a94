//! `plugin.toml`: what a plugin says about itself.
//!
//! A plugin package is a directory holding the component and its manifest.
//! The manifest names the world the component implements, the hosts it may
//! reach, the secrets it needs and the settings it accepts (with types and
//! defaults). billd trusts none of it blindly: the world is checked against
//! the component's exports at load, and the hosts are intersected with the
//! practice's own allow-list.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The contract version this host implements (`billd:connector@0.4.0`) and
/// new plugins are built with.
pub const CONTRACT_VERSION: &str = "0.4.0";

/// The contract lines (major.minor) whose plugins this host loads: 0.4.0 is
/// additive over 0.3.0, 0.2.0 and 0.1.0 (the same exported interfaces, more
/// host imports), so an older plugin links against a subset of what the
/// host offers.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1", "0.2", "0.3", "0.4"];

/// The file name of a manifest inside a plugin package.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// The file name of a package's detached signature.
pub const SIGNATURE_FILE: &str = "plugin.sig";

/// Why a manifest was refused. Each names the file and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: cannot read plugin manifest: {reason}")]
    Read {
        /// The manifest file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The TOML did not parse or had unknown or missing fields.
    #[error("{path}: {reason}")]
    Parse {
        /// The manifest file.
        path: String,
        /// What the parser said (with line and column).
        reason: String,
    },
    /// A field had a value billd cannot accept.
    #[error("{path}: field `{field}`: {reason}")]
    Field {
        /// The manifest file.
        path: String,
        /// The field, dotted.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// The three kinds of connector, one per WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `payer-connector`: eligibility, claims, acknowledgments, remittances.
    PayerConnector,
    /// `ehr-connector`: appointments, patients, coverages, encounters.
    EhrConnector,
    /// `collections-connector`: placements, recalls, agency updates.
    CollectionsConnector,
}

impl World {
    /// The world's WIT name.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::PayerConnector => "payer-connector",
            World::EhrConnector => "ehr-connector",
            World::CollectionsConnector => "collections-connector",
        }
    }

    /// The fully qualified name of the interface the world exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            World::PayerConnector => "billd:connector/payer@0.1.0",
            World::EhrConnector => "billd:connector/ehr@0.1.0",
            World::CollectionsConnector => "billd:connector/collections@0.1.0",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wit_name())
    }
}

/// The type of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettingType {
    /// Text.
    String,
    /// A signed 64-bit integer.
    Integer,
    /// `true` or `false`.
    Boolean,
}

/// A setting's value, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// Text.
    Text(String),
}

impl SettingValue {
    /// Converts a TOML value of the declared type; `None` if it does not fit.
    pub fn from_toml(ty: SettingType, v: &toml::Value) -> Option<SettingValue> {
        match (ty, v) {
            (SettingType::String, toml::Value::String(s)) => Some(SettingValue::Text(s.clone())),
            (SettingType::Integer, toml::Value::Integer(i)) => Some(SettingValue::Integer(*i)),
            (SettingType::Boolean, toml::Value::Boolean(b)) => Some(SettingValue::Boolean(*b)),
            _ => None,
        }
    }

    /// Parses text (from the command line) as the declared type.
    pub fn parse(ty: SettingType, text: &str) -> Option<SettingValue> {
        match ty {
            SettingType::String => Some(SettingValue::Text(text.to_string())),
            SettingType::Integer => text.trim().parse().ok().map(SettingValue::Integer),
            SettingType::Boolean => text.trim().parse().ok().map(SettingValue::Boolean),
        }
    }
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Boolean(b) => write!(f, "{b}"),
            SettingValue::Integer(i) => write!(f, "{i}"),
            SettingValue::Text(s) => f.write_str(s),
        }
    }
}

/// One setting a plugin accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SettingSpec {
    /// Its type.
    #[serde(rename = "type")]
    pub ty: SettingType,
    /// The value used when the practice gives none.
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// Whether the practice must give a value (only without a default).
    #[serde(default)]
    pub required: bool,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

/// One secret a plugin needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecretSpec {
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Whether the plugin cannot work without it.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// One SFTP server a plugin uses (`[sftp.NAME]`). Every required server must
/// be configured by the practice, and only declared ones may be; an optional
/// one (`required = false`, for a plugin that reaches its service another
/// way too) may be left out, and the plugin's calls to it are then refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SftpServerSpec {
    /// What the plugin uses it for, for the practice.
    #[serde(default)]
    pub description: String,
    /// Whether the plugin cannot work without it.
    #[serde(default = "yes")]
    pub required: bool,
}

/// A scheme, host and port that a plugin may reach.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host name or address, lower case.
    pub host: String,
    /// The port (the scheme's default when not written).
    pub port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (no path, query or credentials).
    pub fn parse(text: &str) -> Result<Origin, String> {
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let origin = Origin::of_url(&url)?;
        if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
            return Err(format!(
                "{text:?}: give only scheme://host:port, without a path or query"
            ));
        }
        Ok(origin)
    }

    /// The origin a URL points at; only `http` and `https` without
    /// credentials are accepted.
    pub fn of_url(url: &url::Url) -> Result<Origin, String> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme {scheme:?} is not http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not allowed".to_string());
        }
        let host = url
            .host_str()
            .ok_or_else(|| "the URL has no host".to_string())?
            .to_ascii_lowercase();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| "the URL has no port".to_string())?;
        Ok(Origin {
            scheme: scheme.to_string(),
            host,
            port,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// `plugin.toml`, as written by the plugin's author.
///
/// Keys are spelled like the practice configuration's (`sdk_version`,
/// `allowed_hosts`); the older kebab-case spellings (`sdk-version`,
/// `allowed-hosts`) are still read, so existing packages keep loading.
/// The names of settings and secrets are the author's and keep their
/// spelling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: lower-case letters, digits and `-`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The world the component implements.
    pub world: World,
    /// The version of the billd plugin SDK (and contract) it was built with.
    #[serde(alias = "sdk-version")]
    pub sdk_version: String,
    /// What it connects to, for people.
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the manifest (default `<name>.wasm`).
    #[serde(default)]
    pub component: Option<String>,
    /// Origins (`scheme://host[:port]`) the plugin may send requests to.
    #[serde(default, alias = "allowed-hosts")]
    pub allowed_hosts: Vec<String>,
    /// Secrets it needs, by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Private keys billd signs with on the plugin's behalf (contract
    /// 0.2.0 `signing`), by name; the plugin never reads them.
    #[serde(default, alias = "signing-keys")]
    pub signing_keys: BTreeMap<String, SecretSpec>,
    /// SFTP servers billd reaches for it (contract 0.3.0 `sftp`), by name;
    /// the practice configures every one (where, who, host key,
    /// credential), and the plugin never reads the credential.
    #[serde(default)]
    pub sftp: BTreeMap<String, SftpServerSpec>,
    /// Settings it accepts, by name.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingSpec>,
}

impl Manifest {
    /// Reads and validates `plugin.toml` at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Manifest::parse(&text, path)
    }

    /// Parses and validates manifest text; `path` is used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        m.validate(path)?;
        Ok(m)
    }

    fn validate(&self, path: &Path) -> Result<(), ManifestError> {
        let field = |field: &str, reason: String| ManifestError::Field {
            path: path.display().to_string(),
            field: field.to_string(),
            reason,
        };
        if !valid_name(&self.name) {
            return Err(field(
                "name",
                "use 1 to 64 lower-case letters, digits and '-'".into(),
            ));
        }
        if self.version.trim().is_empty() {
            return Err(field("version", "must not be empty".into()));
        }
        if !sdk_compatible(&self.sdk_version) {
            return Err(field(
                "sdk_version",
                format!(
                    "{:?} is not compatible with this billd (contract {CONTRACT_VERSION}); rebuild the plugin with a 0.1, 0.2, 0.3 or 0.4 SDK",
                    self.sdk_version
                ),
            ));
        }
        if let Some(c) = &self.component
            && (c.contains('/') || c.contains('\\') || c.starts_with('.'))
        {
            return Err(field(
                "component",
                "give a file name in the package directory".into(),
            ));
        }
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            Origin::parse(h).map_err(|e| field(&format!("allowed_hosts[{i}]"), e))?;
        }
        for (table, names) in [
            ("secrets", self.secrets.keys().collect::<Vec<_>>()),
            ("signing_keys", self.signing_keys.keys().collect()),
            ("sftp", self.sftp.keys().collect()),
        ] {
            for name in names {
                if !valid_name(name) {
                    return Err(field(
                        &format!("{table}.{name}"),
                        "use lower-case letters, digits and '-'".into(),
                    ));
                }
            }
        }
        for (name, spec) in &self.settings {
            if !valid_name(name) {
                return Err(field(
                    &format!("settings.{name}"),
                    "use lower-case letters, digits and '-'".into(),
                ));
            }
            if let Some(d) = &spec.default
                && SettingValue::from_toml(spec.ty, d).is_none()
            {
                return Err(field(
                    &format!("settings.{name}.default"),
                    format!("is not a {:?}", spec.ty).to_lowercase(),
                ));
            }
        }
        Ok(())
    }

    /// The allowed origins, parsed (validation has already checked them).
    pub fn origins(&self) -> Vec<Origin> {
        self.allowed_hosts
            .iter()
            .filter_map(|h| Origin::parse(h).ok())
            .collect()
    }

    /// The component file name inside the package.
    pub fn component_file(&self) -> String {
        self.component
            .clone()
            .unwrap_or_else(|| format!("{}.wasm", self.name))
    }
}

/// Where a plugin package's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagePaths {
    /// The package directory.
    pub dir: PathBuf,
    /// Its `plugin.toml`.
    pub manifest: PathBuf,
}

impl PackagePaths {
    /// Accepts the package directory, its `plugin.toml`, or the component
    /// file beside the manifest.
    pub fn locate(path: &Path) -> PackagePaths {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        let manifest = dir.join(MANIFEST_FILE);
        PackagePaths { dir, manifest }
    }

    /// The detached signature file.
    pub fn signature(&self) -> PathBuf {
        self.dir.join(SIGNATURE_FILE)
    }
}

/// Plugin, secret and setting names: 1 to 64 of `[a-z0-9-]`, not starting
/// with `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether a plugin built with `sdk` can run on this host: its major.minor
/// is one of [`SUPPORTED_CONTRACTS`].
fn sdk_compatible(sdk: &str) -> bool {
    let theirs: Vec<&str> = sdk.trim().split('.').collect();
    theirs.len() >= 2
        && theirs
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && SUPPORTED_CONTRACTS.contains(&format!("{}.{}", theirs[0], theirs[1]).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "sandbox-payer"
version = "1.2.0"
world = "payer-connector"
sdk_version = "0.1.0"
description = "Payer sandbox over JSON"
allowed_hosts = ["https://api.payer.example", "http://127.0.0.1:8080"]

[secrets.api-key]
description = "API key"

[settings.base-url]
type = "string"
default = "https://api.payer.example"

[settings.max-batch]
type = "integer"
default = 50
"#;

    #[test]
    fn sftp_servers_are_required_unless_marked_optional() {
        let text = GOOD.replace("sdk_version = \"0.1.0\"", "sdk_version = \"0.3.0\"")
            + "\n[sftp.drop]\ndescription = \"files\"\n\n[sftp.spare]\nrequired = false\n";
        let m = Manifest::parse(&text, Path::new("plugin.toml")).unwrap();
        assert!(m.sftp["drop"].required);
        assert!(!m.sftp["spare"].required);
    }

    #[test]
    fn the_old_kebab_case_keys_still_load_but_not_both_spellings() {
        let old = GOOD
            .replace("sdk_version", "sdk-version")
            .replace("allowed_hosts", "allowed-hosts");
        assert_eq!(
            Manifest::parse(&old, Path::new("plugin.toml")).unwrap(),
            Manifest::parse(GOOD, Path::new("plugin.toml")).unwrap()
        );
        let both = format!("{GOOD}\n")
            .replace("allowed_hosts = [", "allowed-hosts = []\nallowed_hosts = [");
        let e = Manifest::parse(&both, Path::new("plugin.toml")).unwrap_err();
        assert!(e.to_string().contains("allowed_hosts"), "{e}");
    }

    #[test]
    fn parses_a_complete_manifest() {
        let m = Manifest::parse(GOOD, Path::new("plugin.toml")).unwrap();
        assert_eq!(m.world, World::PayerConnector);
        assert_eq!(m.component_file(), "sandbox-payer.wasm");
        assert_eq!(
            m.origins()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["https://api.payer.example:443", "http://127.0.0.1:8080"]
        );
        assert!(m.secrets["api-key"].required);
        assert_eq!(m.settings["max-batch"].ty, SettingType::Integer);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = GOOD.replace(
            "\"http://127.0.0.1:8080\"",
            "\"http://127.0.0.1:8080/path\"",
        );
        let e = Manifest::parse(&bad, Path::new("x/plugin.toml")).unwrap_err();
        assert!(e.to_string().contains("allowed_hosts[1]"), "{e}");
        assert!(e.to_string().contains("x/plugin.toml"), "{e}");

        let bad = GOOD.replace("default = 50", "default = \"fifty\"");
        let e = Manifest::parse(&bad, Path::new("plugin.toml")).unwrap_err();
        assert!(e.to_string().contains("settings.max-batch.default"), "{e}");

        for v in ["0.5.0", "1.0.0", "0", "0.x.1"] {
            let bad = GOOD.replace("sdk_version = \"0.1.0\"", &format!("sdk_version = \"{v}\""));
            let e = Manifest::parse(&bad, Path::new("plugin.toml")).unwrap_err();
            assert!(e.to_string().contains("sdk_version"), "{v}: {e}");
        }
        for v in ["0.1.3", "0.2.0", "0.3.0", "0.4.0"] {
            let ok = GOOD.replace("sdk_version = \"0.1.0\"", &format!("sdk_version = \"{v}\""));
            assert!(
                Manifest::parse(&ok, Path::new("plugin.toml")).is_ok(),
                "{v}"
            );
        }

        let bad = GOOD.replace("name = \"sandbox-payer\"", "name = \"Sandbox Payer\"");
        let e = Manifest::parse(&bad, Path::new("plugin.toml")).unwrap_err();
        assert!(e.to_string().contains("`name`"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = format!("{GOOD}\nextra = 1\n");
        let e = Manifest::parse(&bad, Path::new("plugin.toml")).unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
    }

    #[test]
    fn origins_refuse_other_schemes_and_credentials() {
        assert!(Origin::parse("ftp://x.example").is_err());
        assert!(Origin::parse("https://user:pw@x.example").is_err());
        assert_eq!(
            Origin::parse("HTTPS://API.Example:8443")
                .unwrap()
                .to_string(),
            "https://api.example:8443"
        );
    }
}
