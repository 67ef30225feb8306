//! The trainers' change log of one dialplan file: who changed what and when, and the file as it
//! was before each change, so any change can be reverted in one step. One JSON object per line
//! in `.history/NAME.yaml.jsonl` beside the file (a dot-folder: `voxnav check dialplans` and the
//! server never read it as a dialplan). Appends only; the file is the audit trail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// One entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// 1, 2, ... in this file's log.
    pub id: u64,
    pub at_ms: u64,
    /// Who did it (the name the trainer gave).
    pub trainer: String,
    /// `example` (a phrasing added to `target`), `out_of_scope` (reviewed, no file change)
    /// or `revert` (of change `reverts`).
    pub action: String,
    /// The phrasing reviewed (empty for a revert).
    pub text: String,
    /// `intent:NAME`, `kb:ID` or `out_of_scope`.
    pub target: String,
    /// The hotline version serving after the change (None: no file change).
    pub version: Option<u64>,
    /// The change this one undid.
    pub reverts: Option<u64>,
    /// Content hashes of the file before and after (equal when no file change).
    pub before_sha: String,
    pub after_sha: String,
    /// The file before the change (for the revert; empty when no file change).
    #[serde(default)]
    pub before: String,
}

/// The hex SHA-256 of a file's text.
pub fn sha(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serialises appends within this process (ids are read-then-written).
static APPEND: Mutex<()> = Mutex::new(());

/// The log of one dialplan file.
#[derive(Debug, Clone)]
pub struct ChangeLog {
    path: PathBuf,
}

impl ChangeLog {
    /// The log of `dialplan` (`dir/.history/NAME.jsonl`).
    pub fn of(dialplan: &Path) -> Self {
        let name = dialplan
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            path: dialplan
                .with_file_name(".history")
                .join(format!("{name}.jsonl")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every change, oldest first (a line that does not parse is skipped: a torn last line
    /// after a crash loses that entry, never the rest).
    pub fn list(&self) -> Vec<Change> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Appends `change` with the next id; returns it as written.
    pub fn append(&self, mut change: Change) -> std::io::Result<Change> {
        let _guard = APPEND.lock().unwrap_or_else(|p| p.into_inner());
        change.id = self.list().last().map_or(1, |c| c.id + 1);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_string(&change).map_err(std::io::Error::other)?;
        line.push('\n');
        // After a torn last line (a crash mid-write), start on a line of our own.
        let torn = std::fs::read(&self.path)
            .ok()
            .and_then(|b| b.last().copied())
            .is_some_and(|b| b != b'\n');
        if torn {
            line.insert(0, '\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        Ok(change)
    }

    /// The phrasings reviewed and still in effect (lower-cased): those the queue leaves out.
    pub fn reviewed(&self) -> std::collections::BTreeSet<String> {
        let changes = self.list();
        let reverted: Vec<u64> = changes.iter().filter_map(|c| c.reverts).collect();
        changes
            .iter()
            .filter(|c| c.action != "revert" && !reverted.contains(&c.id))
            .map(|c| c.text.to_lowercase())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_number_changes_and_a_revert_puts_a_phrasing_back_in_the_queue() {
        let dir = std::env::temp_dir().join(format!("voxnav-history-{}", std::process::id()));
        let log = ChangeLog::of(&dir.join("t.yaml"));
        assert!(log.path().ends_with(".history/t.yaml.jsonl"));
        let change = |action: &str, text: &str, reverts| Change {
            id: 0,
            at_ms: 1,
            trainer: "ana".into(),
            action: action.into(),
            text: text.into(),
            target: "intent:hello".into(),
            version: Some(2),
            reverts,
            before_sha: sha("a"),
            after_sha: sha("b"),
            before: "a".into(),
        };
        assert_eq!(
            log.append(change("example", "Hi There", None)).unwrap().id,
            1
        );
        assert_eq!(log.append(change("example", "yo", None)).unwrap().id, 2);
        assert_eq!(
            log.reviewed().into_iter().collect::<Vec<_>>(),
            ["hi there", "yo"]
        );
        assert_eq!(log.append(change("revert", "", Some(2))).unwrap().id, 3);
        assert_eq!(log.reviewed().into_iter().collect::<Vec<_>>(), ["hi there"]);
        // A torn last line (a crash mid-write) loses only itself.
        std::fs::write(
            log.path(),
            std::fs::read_to_string(log.path()).unwrap() + "{\"id\": 4, \"at",
        )
        .unwrap();
        assert_eq!(log.list().len(), 3);
        assert_eq!(log.append(change("example", "hey", None)).unwrap().id, 4);
        assert_eq!(
            log.list().len(),
            4,
            "the next append is not lost to the torn line"
        );
        assert_eq!(sha("a").len(), 64);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
