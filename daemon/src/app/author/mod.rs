//! The connector author's kit: scaffold a standalone plugin crate
//! ([`scaffold`]) and build it into a package the host loads ([`build`]),
//! as `billd plugins new` and `billd plugins build` do.
//!
//! A scaffolded crate builds outside billd's repository: it inherits
//! nothing from a workspace, names the SDK (and the `billd-plugin-test`
//! dev-dependency) by absolute path into the SDK checkout, and its package
//! name, manifest name and component file name agree by construction. The
//! templates are compiled into billd (`templates/`), one set per world.

pub mod build;
pub mod scaffold;

pub use build::{BuildError, BuildOptions, Built, build_package};
pub use scaffold::{NewPlugin, ScaffoldError, Scaffolded, new_plugin};
