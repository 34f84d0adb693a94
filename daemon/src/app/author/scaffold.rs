//! `billd plugins new`: writes a connector crate for one world from the
//! templates compiled into billd.

use crate::plugin::World;
use crate::plugin::manifest::{CONTRACT_VERSION, valid_name};
use std::path::{Path, PathBuf};

/// Where this billd's plugin SDK was when billd was built: the default the
/// scaffold's dependencies point at.
pub const BUILT_SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk");

/// Files every scaffold gets: (path in the crate, template).
const COMMON: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("templates/common/Cargo.toml")),
    ("plugin.toml", include_str!("templates/common/plugin.toml")),
    ("README.md", include_str!("templates/common/README.md")),
    (".gitignore", include_str!("templates/common/gitignore")),
];

/// The helpers every world's `tests/connector.rs` includes.
const TEST_HELPERS: &str = include_str!("templates/common/test_helpers.rs");

/// What differs between the worlds.
struct WorldKit {
    world: World,
    trait_name: &'static str,
    operation: &'static str,
    origin: &'static str,
    description: &'static str,
    input_file: &'static str,
    files: [(&'static str, &'static str); 4],
}

fn kit(world: World) -> WorldKit {
    match world {
        World::PayerConnector => WorldKit {
            world,
            trait_name: "PayerConnector",
            operation: "check-eligibility",
            origin: "https://api.payer.example",
            description: "Asks a payer's JSON API whether a member is covered.",
            input_file: "eligibility-inquiry.json",
            files: [
                // The in-repository template is the payer scaffold.
                (
                    "src/lib.rs",
                    include_str!("../../../../plugins/template/src/lib.rs"),
                ),
                (
                    "tests/connector.rs",
                    include_str!("templates/payer/test.rs"),
                ),
                (
                    "fixtures/eligibility-inquiry.json",
                    include_str!("../../../../plugins/template/fixtures/eligibility-inquiry.json"),
                ),
                (
                    "fixtures/http/coverage.json",
                    include_str!("../../../../plugins/template/fixtures/http/coverage.json"),
                ),
            ],
        },
        World::EhrConnector => WorldKit {
            world,
            trait_name: "EhrConnector",
            operation: "appointments",
            origin: "https://api.ehr.example",
            description: "Reads the practice's schedule from an EHR's JSON API.",
            input_file: "window.json",
            files: [
                ("src/lib.rs", include_str!("templates/ehr/lib.rs")),
                ("tests/connector.rs", include_str!("templates/ehr/test.rs")),
                (
                    "fixtures/window.json",
                    include_str!("templates/ehr/input.json"),
                ),
                (
                    "fixtures/http/appointments.json",
                    include_str!("templates/ehr/http.json"),
                ),
            ],
        },
        World::CollectionsConnector => WorldKit {
            world,
            trait_name: "CollectionsConnector",
            operation: "place-accounts",
            origin: "https://api.agency.example",
            description: "Hands accounts to a collection agency's JSON API.",
            input_file: "placements.json",
            files: [
                ("src/lib.rs", include_str!("templates/collections/lib.rs")),
                (
                    "tests/connector.rs",
                    include_str!("templates/collections/test.rs"),
                ),
                (
                    "fixtures/placements.json",
                    include_str!("templates/collections/input.json"),
                ),
                (
                    "fixtures/http/placements.json",
                    include_str!("templates/collections/http.json"),
                ),
            ],
        },
    }
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's name: package, manifest and component all follow it.
    pub name: String,
    /// The world it implements.
    pub world: World,
    /// The directory the crate is created in (as `<dir>/<name>`).
    pub dir: PathBuf,
    /// The SDK checkout (the `plugin-sdk` directory holding `guest/` and
    /// `test/`); default [`BUILT_SDK_DIR`].
    pub sdk: Option<PathBuf>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaffolded {
    /// The new crate's directory.
    pub dir: PathBuf,
    /// The files written, relative to it.
    pub files: Vec<String>,
    /// The component file cargo will build (and `plugin.toml` names).
    pub component: String,
    /// The export to try first (`billd plugins call --func`).
    pub operation: &'static str,
    /// Its input fixture, relative to the crate.
    pub input_file: String,
}

/// Why nothing was scaffolded. Nothing is written unless every check
/// passes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name cannot name a plugin and a cargo package.
    #[error(
        "plugin name {0:?}: use 1 to 64 lower-case letters, digits and `-`, starting with a letter"
    )]
    Name(String),
    /// The target exists.
    #[error("{0} already exists; pick another name or --dir")]
    Exists(String),
    /// The SDK is not where the scaffold would point.
    #[error(
        "the billd plugin SDK is not at {0} (no guest/Cargo.toml and test/Cargo.toml there); pass --sdk with your billd checkout's plugin-sdk directory"
    )]
    NoSdk(String),
    /// A template failed to render (a bug in billd).
    #[error("template {file}: {reason}")]
    Template {
        /// The file.
        file: String,
        /// What minijinja said.
        reason: String,
    },
    /// A file could not be written.
    #[error("{path}: {reason}")]
    Write {
        /// The file or directory.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// Whether `name` can be a plugin name and a cargo package name.
fn usable_name(name: &str) -> bool {
    valid_name(name) && name.starts_with(|c: char| c.is_ascii_lowercase()) && !name.ends_with('-')
}

/// Scaffolds the crate `<dir>/<name>`.
pub fn new_plugin(req: &NewPlugin) -> Result<Scaffolded, ScaffoldError> {
    if !usable_name(&req.name) {
        return Err(ScaffoldError::Name(req.name.clone()));
    }
    let root = req.dir.join(&req.name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root.display().to_string()));
    }
    let sdk_given = req
        .sdk
        .clone()
        .unwrap_or_else(|| PathBuf::from(BUILT_SDK_DIR));
    let sdk = std::fs::canonicalize(&sdk_given)
        .ok()
        .filter(|d| d.join("guest/Cargo.toml").is_file() && d.join("test/Cargo.toml").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(sdk_given.display().to_string()))?;
    let k = kit(req.world);
    let crate_name = req.name.replace('-', "_");
    let component = format!("{crate_name}.wasm");
    let vars = minijinja::context! {
        name => req.name,
        description => k.description,
        world => k.world.wit_name(),
        trait_name => k.trait_name,
        operation => k.operation,
        origin => k.origin,
        input_file => k.input_file,
        component => component,
        sdk_version => CONTRACT_VERSION,
        sdk_guest => toml_path(&sdk.join("guest")),
        sdk_test => toml_path(&sdk.join("test")),
    };
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // What every world's test shares.
    env.add_template("test_helpers.rs", TEST_HELPERS)
        .map_err(|e| ScaffoldError::Template {
            file: "test_helpers.rs".into(),
            reason: format!("{e:#}"),
        })?;
    let mut rendered = Vec::new();
    for (file, template) in COMMON.iter().chain(k.files.iter()) {
        let text = env
            .render_str(template, &vars)
            .map_err(|e| ScaffoldError::Template {
                file: (*file).to_string(),
                reason: format!("{e:#}"),
            })?;
        rendered.push((*file, text));
    }
    // The versions the SDK's own plugins are built and tested with, so a
    // first build resolves offline and shares their compiled dependencies.
    if let Ok(lock) = std::fs::read_to_string(sdk.join("../plugins/Cargo.lock")) {
        rendered.push(("Cargo.lock", lock));
    }
    for (file, text) in &rendered {
        write_new(&root.join(file), text)?;
    }
    Ok(Scaffolded {
        dir: root,
        files: rendered.iter().map(|(f, _)| (*f).to_string()).collect(),
        component,
        operation: k.operation,
        input_file: format!("fixtures/{}", k.input_file),
    })
}

/// A path as the inside of a TOML basic string.
fn toml_path(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

fn write_new(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    let err = |p: &Path, e: std::io::Error| ScaffoldError::Write {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err(parent, e))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .map_err(|e| err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Manifest;

    fn scaffold(dir: &Path, name: &str, world: World) -> Result<Scaffolded, ScaffoldError> {
        new_plugin(&NewPlugin {
            name: name.into(),
            world,
            dir: dir.to_path_buf(),
            sdk: None,
        })
    }

    #[test]
    fn every_world_scaffolds_a_crate_whose_names_agree() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, world) in [
            ("acme-payer", World::PayerConnector),
            ("acme-ehr", World::EhrConnector),
            ("acme-agency", World::CollectionsConnector),
        ] {
            let s = scaffold(tmp.path(), name, world).unwrap();
            let m = Manifest::load(&s.dir.join("plugin.toml")).unwrap();
            assert_eq!(m.name, name);
            assert_eq!(m.world, world);
            assert_eq!(
                m.component_file(),
                format!("{}.wasm", name.replace('-', "_"))
            );
            assert_eq!(m.allowed_hosts.len(), 1);
            let cargo: toml::Table =
                toml::from_str(&std::fs::read_to_string(s.dir.join("Cargo.toml")).unwrap())
                    .unwrap();
            assert_eq!(cargo["package"]["name"].as_str(), Some(name));
            // Standalone: its own workspace, no inherited fields, the SDK
            // by absolute path.
            assert!(cargo.contains_key("workspace"));
            assert!(
                !std::fs::read_to_string(s.dir.join("Cargo.toml"))
                    .unwrap()
                    .contains(".workspace")
            );
            let sdk = cargo["dependencies"]["billd-plugin-sdk"]["path"]
                .as_str()
                .unwrap();
            assert!(
                Path::new(sdk).is_absolute() && Path::new(sdk).join("Cargo.toml").is_file(),
                "{sdk}"
            );
            let test = cargo["dev-dependencies"]["billd-plugin-test"]["path"]
                .as_str()
                .unwrap();
            assert!(Path::new(test).join("Cargo.toml").is_file(), "{test}");
            assert!(s.dir.join(&s.input_file).is_file());
            assert!(s.dir.join("tests/connector.rs").is_file());
            // Every JSON fixture parses.
            for f in s.files.iter().filter(|f| f.ends_with(".json")) {
                let text = std::fs::read_to_string(s.dir.join(f)).unwrap();
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{f}: {e}"));
            }
            let lib = std::fs::read_to_string(s.dir.join("src/lib.rs")).unwrap();
            let export = format!("export_{}!", world.wit_name().replace('-', "_"));
            assert!(lib.contains(&export), "{lib}");
        }
    }

    #[test]
    fn bad_names_an_existing_directory_and_a_missing_sdk_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["", "Acme", "acme_payer", "9lives", "-x", "x-", "a/b"] {
            let e = scaffold(tmp.path(), bad, World::PayerConnector).unwrap_err();
            assert!(matches!(e, ScaffoldError::Name(_)), "{bad}: {e}");
        }
        scaffold(tmp.path(), "twice", World::EhrConnector).unwrap();
        let e = scaffold(tmp.path(), "twice", World::EhrConnector).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let e = new_plugin(&NewPlugin {
            name: "nosdk".into(),
            world: World::PayerConnector,
            dir: tmp.path().to_path_buf(),
            sdk: Some(tmp.path().join("nowhere")),
        })
        .unwrap_err();
        assert!(e.to_string().contains("--sdk"), "{e}");
        assert!(!tmp.path().join("nosdk").exists());
    }
}
