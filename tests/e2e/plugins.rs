//! The daemon with connector plugins: pins checked at start-up (a mismatch
//! stops it with exit 2 and a clear message), SIGHUP reloads the set, and a
//! reload that fails verification leaves the old set in place.

use billd_e2e::{Scratch, base_config, sha256_file, stderr, stdout, wait_until, workspace_root};
use std::path::PathBuf;
use std::time::Duration;

fn package() -> PathBuf {
    let p = workspace_root().join("plugins/dist/sandbox-payer");
    assert!(
        p.join("plugin.toml").exists(),
        "{} is missing: run scripts/build-plugins.sh",
        p.display()
    );
    p
}

fn config(s: &Scratch, pin: &str) {
    std::fs::write(s.path("payer.key"), "sandbox-key\n").unwrap();
    s.write_config(&format!(
        r#"{}
[[plugin]]
name = "sandbox-payer"
path = "{}"
sha256 = "{pin}"
allowed_hosts = ["http://127.0.0.1:8089"]
secrets = {{ api-key = "file:payer.key" }}
"#,
        base_config("outbox_dir = \"outbox\""),
        package().display()
    ));
}

fn good_pin() -> String {
    sha256_file(&package().join("sandbox_payer.wasm"))
}

#[test]
fn wrong_pin_stops_start_up_with_a_clear_message() {
    let s = Scratch::new();
    config(&s, &"0".repeat(64));
    s.init();
    let out = s.billd().arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains("sandbox-payer") && msg.contains("sha256"),
        "unclear refusal: {msg}"
    );
}

#[test]
fn sighup_reloads_plugins_and_a_bad_reload_changes_nothing() {
    let s = Scratch::new();
    config(&s, &good_pin());
    s.init();
    let out = s.billd().args(["plugins", "list"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("sandbox-payer"), "{}", stdout(&out));

    let mut d = s.start_daemon("daemon.log");
    let text = || std::fs::read_to_string(s.path("daemon.log")).unwrap_or_default();
    wait_until(Duration::from_secs(90), "plugins to load", || {
        text().contains("plugins loaded")
    });
    let hup = || d.signal("HUP");
    hup();
    wait_until(Duration::from_secs(90), "the reload", || {
        text().contains("plugins reloaded")
    });
    // The same through the control socket, no pid needed.
    let out = s.run(&["plugins", "reload"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("plugins reloaded"),
        "{}",
        stdout(&out)
    );

    config(&s, &"f".repeat(64));
    let out = s.run(&["plugins", "reload"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a plugin that fails to verify is not sent to the daemon"
    );
    assert!(stderr(&out).contains("not reloading"), "{}", stderr(&out));
    hup();
    wait_until(Duration::from_secs(90), "the refused reload", || {
        text().contains("plugins unchanged")
    });
    assert!(d.running(), "a bad reload must not stop the daemon");
    assert_eq!(d.stop(), Some(0), "{}", text());
}
