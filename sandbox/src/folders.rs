//! The payer's SFTP folders, for tests and the demo that reach the payer
//! the way batch clearinghouses take claims: the directory an sshd on
//! loopback serves holds `inbound/` (where practices upload 837P batches)
//! and `outbound/` (where the payer leaves 999s, 277CAs and 835s). This
//! feed polls `inbound/`, hands each finished upload to [`Payer`] (files
//! whose name starts with a dot are uploads still in progress, as billd's
//! temporary names are) and removes it, and writes new mailbox files into
//! `outbound/` under a temporary dot-name first, then renames them, so a
//! downloader never sees half a file. [`finished`] and [`write_whole`] are
//! shared with the agency's feed (`agency_folders`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::payer::Payer;

/// How often the folders are looked at.
const POLL: Duration = Duration::from_millis(100);

/// Creates `root/inbound` and `root/outbound`.
///
/// # Errors
/// When either cannot be created.
pub fn prepare(root: &Path) -> anyhow::Result<()> {
    for dir in ["inbound", "outbound"] {
        let path = root.join(dir);
        std::fs::create_dir_all(&path)
            .map_err(|e| anyhow::anyhow!("--sftp-root: cannot create {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Feeds the folders under `root` until the process ends.
pub async fn feed(payer: Arc<Mutex<Payer>>, root: PathBuf) {
    loop {
        if let Err(e) = feed_once(&payer, &root) {
            eprintln!("billd-sandbox: sftp folders: {e}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One pass: every finished upload taken, every new answer written.
fn feed_once(payer: &Mutex<Payer>, root: &Path) -> std::io::Result<()> {
    let inbound = root.join("inbound");
    let names = finished(&inbound)?;
    let mut payer = payer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for name in names {
        let path = inbound.join(&name);
        let bytes = std::fs::read(&path)?;
        if let Err((code, text)) = payer.take_file(&name, &bytes) {
            eprintln!("billd-sandbox: inbound file {name} refused: {code}: {text}");
        }
        std::fs::remove_file(&path)?;
    }
    let outbound = root.join("outbound");
    for file in payer.take_outbound() {
        write_whole(&outbound, &file.name, file.text.as_bytes())?;
    }
    Ok(())
}

/// The finished uploads in `dir`, by name: plain files whose name does not
/// start with a dot (a dot-name is an upload still in progress).
pub fn finished(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Writes `dir/name` under a hidden `.name.part` first, then renames it,
/// so a downloader never sees half a file.
pub fn write_whole(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let part = dir.join(format!(".{name}.part"));
    std::fs::write(&part, bytes)?;
    std::fs::rename(&part, dir.join(name))
}
