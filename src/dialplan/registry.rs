//! Hot reload: the hotline calls start on is swapped atomically when its file changes; a call
//! in progress keeps the version it started with (it holds an `Arc`), and a broken file is
//! refused whole while the old version keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::engine::Hotline;
use super::error::DialplanError;
use crate::nlu::intent::Embedder;

/// The current version of one hotline.
pub struct HotlineRegistry {
    path: PathBuf,
    embedder: Arc<dyn Embedder>,
    current: RwLock<Arc<Hotline>>,
    version: std::sync::atomic::AtomicU64,
}

impl HotlineRegistry {
    /// Loads the first version; fails if the file is broken.
    pub fn load(path: &Path, embedder: Arc<dyn Embedder>) -> Result<Self, DialplanError> {
        let plan = super::load_file(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(Hotline::build(plan, embedder.clone()))),
            embedder,
            version: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// What new calls start on.
    pub fn current(&self) -> Arc<Hotline> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loaded versions so far (1 after `load`).
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Re-reads the file. On any problem the current version stays and the problems are
    /// returned; otherwise the new version (trained before the swap) replaces it.
    pub fn reload(&self) -> Result<u64, DialplanError> {
        let reloads = &crate::ops::metrics::metrics().dialplan_reloads_total;
        let plan = super::load_file(&self.path).inspect_err(|_| reloads.inc(&["refused"]))?;
        reloads.inc(&["ok"]);
        let hotline = Arc::new(Hotline::build(plan, self.embedder.clone()));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = hotline;
        Ok(self
            .version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialplan::engine::{CallEngine, Event};
    use crate::nlu::intent::BagOfWords;

    const V1: &str = "name: t\nintents:\n  hello:\n    examples: [hello there, hi, good morning]\nprompts:\n  hi: \"Version one.\"\nhandlers: { no_input: bye, no_match: bye }\nstart: greet\nnodes:\n  greet: { say: hi, next: ask }\n  ask:\n    ask: { prompt: \"Say something.\" }\n    next: bye\n  bye: { hangup: \"Bye.\" }\n";

    #[test]
    fn calls_keep_their_version_and_broken_files_are_refused_whole() {
        let dir = std::env::temp_dir().join(format!("voxnav-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.yaml");
        std::fs::write(&file, V1).unwrap();
        let registry = HotlineRegistry::load(&file, Arc::new(BagOfWords)).unwrap();
        let mut old_call = CallEngine::new(registry.current(), Default::default());
        let said = |e: &mut CallEngine| format!("{:?}", e.handle(Event::Start).actions);
        assert!(said(&mut old_call).contains("Version one."));

        std::fs::write(&file, V1.replace("Version one.", "Version two.")).unwrap();
        assert_eq!(registry.reload().unwrap(), 2);
        let mut new_call = CallEngine::new(registry.current(), Default::default());
        assert!(said(&mut new_call).contains("Version two."));
        assert_eq!(
            old_call.hotline().plan.prompts["hi"],
            "Version one.",
            "the old call keeps v1"
        );

        std::fs::write(&file, V1.replace("next: bye\n  bye:", "next: byee\n  bye:")).unwrap();
        let err = registry.reload().unwrap_err();
        assert!(err.to_string().contains("unknown node `byee`"), "{err}");
        assert_eq!(registry.version(), 2);
        let mut after = CallEngine::new(registry.current(), Default::default());
        assert!(
            said(&mut after).contains("Version two."),
            "the broken file did not replace v2"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
