//! What the app layer's tests share: a configuration with two billers and
//! an app over an in-memory store on a manual clock.

use std::path::Path;
use std::sync::Arc;

use super::App;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::store::Db;

/// When a test app's clock starts.
pub const START: &str = "2026-03-02T14:00:00Z";

/// A configuration in `dir` (mail to an outbox there) with billers `dana`
/// (receives denials) and `lee` (digests, missed runs, rejections), then `extra`.
pub fn config_in(dir: &Path, extra: &str) -> Arc<Config> {
    let text = format!(
        r#"[practice]
name = "Test Practice"
npi = "1234567893"
tax_id = "12-3456789"
timezone = "America/New_York"

[store]
path = "store"
key_file = "store.key"

[mail]
from = "billd <billing@example.org>"
outbox_dir = "outbox"

[[billers]]
name = "dana"
email = "dana@example.org"
receives = ["denial"]

[[billers]]
name = "lee"
email = "lee@example.org"
receives = ["digest", "missed-run", "rejection"]
{extra}"#
    );
    Arc::new(Config::from_str(&text, &dir.join("billd.toml")).expect("test configuration"))
}

/// An app over a fresh in-memory store, the clock at [`START`], configured
/// with [`config_in`] in a directory nobody writes to.
pub fn app(extra: &str) -> App {
    app_in(Path::new("/nonexistent/billd-test"), extra)
}

/// Like [`app`], configured in `dir`.
pub fn app_in(dir: &Path, extra: &str) -> App {
    App::local(config_in(dir, extra), Db::in_memory())
        .with_clock(Arc::new(ManualClock::new(START.parse().unwrap())))
}
