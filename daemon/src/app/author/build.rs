//! `billd plugins build`: compiles a connector crate for wasm32-wasip2 and
//! lays out its package (`plugin.toml` and the component it names), checked
//! the way the host will check it, with the sha256 a practice pins.
//!
//! The manifest is read first, so a mistake in it is reported before a
//! long build. cargo's own diagnostics go to stderr as it prints them; the
//! component is found from cargo's JSON messages, so `CARGO_TARGET_DIR` and
//! `build.target-dir` are honoured.

use crate::plugin::manifest::{MANIFEST_FILE, Manifest, ManifestError};
use crate::plugin::{EngineSettings, PluginEngine, World, dynamic};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Rust target connectors are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The crate directory (holding `Cargo.toml` and `plugin.toml`).
    pub dir: PathBuf,
    /// Where the package goes (default `<dir>/dist/<name>`).
    pub out: Option<PathBuf>,
}

/// A built package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its world.
    pub world: World,
    /// The package directory.
    pub package: PathBuf,
    /// The component file in it.
    pub component: PathBuf,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Its sha256, to pin.
    pub sha256: String,
    /// The origins the manifest asks for.
    pub allowed_hosts: Vec<String>,
}

/// Why no package was built. Each message names the file or field once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The crate directory has no `Cargo.toml`.
    #[error("{0}: no Cargo.toml here; pass the connector crate's directory")]
    NotACrate(String),
    /// `plugin.toml` is missing or wrong (the problem is in the message,
    /// not a source, so it prints once).
    #[error("{0}")]
    Manifest(ManifestError),
    /// cargo could not be run.
    #[error("cannot run {program}: {reason}")]
    Cargo {
        /// The program.
        program: String,
        /// What the OS said.
        reason: String,
    },
    /// The build failed (cargo printed why above).
    #[error("cargo build for {TARGET} failed{hint}")]
    Compile {
        /// A hint when the target looks missing.
        hint: String,
    },
    /// cargo built no component for this crate.
    #[error(
        "{manifest}: cargo built no {TARGET} component for this package; set `crate-type = [\"cdylib\"]` under [lib]"
    )]
    NoComponent {
        /// The crate's Cargo.toml.
        manifest: String,
    },
    /// The component does not implement the manifest's world.
    #[error(
        "{manifest}: world = {world:?}, but the component does not export {interface}; export it with the matching billd_plugin_sdk macro or change `world`"
    )]
    WrongWorld {
        /// `plugin.toml`.
        manifest: String,
        /// The manifest's world.
        world: String,
        /// The interface the world needs.
        interface: &'static str,
    },
    /// The host refused the package (the same check the daemon makes).
    #[error("{0}")]
    Refused(String),
    /// The package could not be written.
    #[error("{path}: {reason}")]
    Write {
        /// The file or directory.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// Builds the crate and lays out its package.
pub fn build_package(opts: &BuildOptions) -> Result<Built, BuildError> {
    let cargo_toml = opts.dir.join("Cargo.toml");
    if !cargo_toml.is_file() {
        return Err(BuildError::NotACrate(opts.dir.display().to_string()));
    }
    let manifest_path = opts.dir.join(MANIFEST_FILE);
    let manifest = Manifest::load(&manifest_path).map_err(BuildError::Manifest)?;
    let wasm = cargo_build(&cargo_toml)?;

    // The checks the host makes at load, before anything is packaged: the
    // component compiles for billd's engine and exports the manifest's
    // world (the manifest itself was checked above).
    let engine = PluginEngine::new(EngineSettings::small(), None)
        .map_err(|e| BuildError::Refused(e.to_string()))?;
    let i = dynamic::inspect(&engine, &wasm).map_err(|e| BuildError::Refused(e.to_string()))?;
    if i.world != Some(manifest.world) {
        return Err(BuildError::WrongWorld {
            manifest: manifest_path.display().to_string(),
            world: manifest.world.to_string(),
            interface: manifest.world.export_interface(),
        });
    }

    let package = opts
        .out
        .clone()
        .unwrap_or_else(|| opts.dir.join("dist").join(&manifest.name));
    let write_err = |p: &Path, e: std::io::Error| BuildError::Write {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(&package).map_err(|e| write_err(&package, e))?;
    // Absolute, so the printed path can go into a practice's configuration.
    let package = std::fs::canonicalize(&package).map_err(|e| write_err(&package, e))?;
    let component = package.join(manifest.component_file());
    copy_atomically(&wasm, &component).map_err(|e| write_err(&component, e))?;
    let packaged_manifest = package.join(MANIFEST_FILE);
    copy_atomically(&manifest_path, &packaged_manifest)
        .map_err(|e| write_err(&packaged_manifest, e))?;
    Ok(Built {
        name: manifest.name,
        version: manifest.version,
        world: manifest.world,
        package,
        component,
        size_bytes: i.size_bytes,
        sha256: i.sha256,
        allowed_hosts: manifest.allowed_hosts,
    })
}

/// Copies through a temporary file and a rename, so a host loading the
/// package meanwhile (a test running beside a build) sees the old file or
/// the new one, never half of one.
fn copy_atomically(from: &Path, to: &Path) -> std::io::Result<()> {
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Runs cargo and returns the component it built for this package.
fn cargo_build(cargo_toml: &Path) -> Result<PathBuf, BuildError> {
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(&program)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(cargo_toml)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BuildError::Cargo {
            program: program.clone(),
            reason: e.to_string(),
        })?;
    let ours = std::fs::canonicalize(cargo_toml).unwrap_or_else(|_| cargo_toml.to_path_buf());
    let mut wasm = None;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
    {
        if let Some(p) = component_in(&line, &ours) {
            wasm = Some(p);
        }
    }
    let status = child.wait().map_err(|e| BuildError::Cargo {
        program,
        reason: e.to_string(),
    })?;
    if !status.success() {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l == TARGET)
            })
            .unwrap_or(true);
        return Err(BuildError::Compile {
            hint: if installed {
                String::new()
            } else {
                format!(" (the {TARGET} target is not installed: rustup target add {TARGET})")
            },
        });
    }
    wasm.ok_or_else(|| BuildError::NoComponent {
        manifest: cargo_toml.display().to_string(),
    })
}

/// The `.wasm` of a `compiler-artifact` message for the package whose
/// manifest is `ours`.
fn component_in(line: &str, ours: &Path) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["reason"] != "compiler-artifact" {
        return None;
    }
    let theirs = Path::new(v["manifest_path"].as_str()?);
    if std::fs::canonicalize(theirs).ok()? != ours {
        return None;
    }
    v["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_taken_from_this_packages_artifact_only() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = tmp.path().join("Cargo.toml");
        std::fs::write(&ours, "").unwrap();
        let msg = |manifest: &Path, reason: &str, file: &str| {
            serde_json::json!({
                "reason": reason,
                "manifest_path": manifest,
                "filenames": [format!("/t/{file}.d"), format!("/t/{file}")],
            })
            .to_string()
        };
        assert_eq!(
            component_in(&msg(&ours, "compiler-artifact", "acme.wasm"), &ours),
            Some(PathBuf::from("/t/acme.wasm"))
        );
        let dep = tmp.path().join("dep.toml");
        std::fs::write(&dep, "").unwrap();
        assert_eq!(
            component_in(&msg(&dep, "compiler-artifact", "dep.wasm"), &ours),
            None
        );
        assert_eq!(
            component_in(&msg(&ours, "build-finished", "acme.wasm"), &ours),
            None
        );
        assert_eq!(
            component_in(&msg(&ours, "compiler-artifact", "libacme.rlib"), &ours),
            None
        );
        assert_eq!(component_in("Compiling acme", &ours), None);
    }

    #[test]
    fn a_bad_manifest_is_reported_before_building() {
        let tmp = tempfile::tempdir().unwrap();
        let e = build_package(&BuildOptions {
            dir: tmp.path().to_path_buf(),
            out: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("no Cargo.toml"), "{e}");
        // A Cargo.toml that would not even build: the manifest is read first.
        std::fs::write(tmp.path().join("Cargo.toml"), "not toml [").unwrap();
        std::fs::write(
            tmp.path().join("plugin.toml"),
            "name = \"x\"\nversion = \"1\"\nworld = \"payer-connector\"\nsdk_version = \"0.1.0\"\nallowed_hosts = [\"ftp://x\"]\n",
        )
        .unwrap();
        let e = build_package(&BuildOptions {
            dir: tmp.path().to_path_buf(),
            out: None,
        })
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("plugin.toml") && msg.contains("allowed_hosts"),
            "{msg}"
        );
        assert_eq!(msg.matches("allowed_hosts").count(), 1, "{msg}");
    }
}
