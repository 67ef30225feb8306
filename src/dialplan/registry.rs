//! Hot reload: the hotline calls start on is swapped atomically when its file changes; a call
//! in progress keeps the version it started with (it holds an `Arc`), and a broken file is
//! refused whole while the old version keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::engine::Hotline;
use super::error::DialplanError;
use super::training::TrainError;
use crate::nlu::intent::{CachedEmbedder, Embedder};
use crate::report::{Report, Reporter};

/// The current version of one hotline.
pub struct HotlineRegistry {
    path: PathBuf,
    embedder: Arc<dyn Embedder>,
    current: RwLock<Arc<Hotline>>,
    version: std::sync::atomic::AtomicU64,
    /// Held while a new version is read, trained and swapped in, so the file watcher and the
    /// admin API never interleave two reloads.
    reloading: Mutex<ReloadState>,
    /// Where reloads (and refusals) are reported.
    reporter: Reporter,
}

/// A change `HotlineRegistry::edit` made live.
pub struct Edited<'a, G> {
    pub version: u64,
    /// The file's text before and after.
    pub before: &'a str,
    pub after: &'a str,
    /// What the gate said.
    pub judged: G,
}

/// What the registry knows about its file.
#[derive(Debug, Clone, Default)]
struct ReloadState {
    /// The file's modification time when it was last read.
    modified: Option<SystemTime>,
    loaded_ms: u64,
    refused: Option<Refusal>,
}

/// The last refused version of the file (cleared by the next good one).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub at_ms: u64,
    pub error: DialplanError,
}

/// The registry's state for the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct HotlineStatus {
    pub name: String,
    pub file: PathBuf,
    pub version: u64,
    /// When the serving version was loaded (Unix ms).
    pub loaded_ms: u64,
    pub nodes: usize,
    pub intents: usize,
    pub refused: Option<Refusal>,
}

/// Reports and keeps a refused version (for the admin API); returns its error.
fn refuse(reporter: &Reporter, state: &mut ReloadState, error: DialplanError) -> DialplanError {
    reporter.report(Report::DialplanReload { ok: false });
    state.refused = Some(Refusal {
        at_ms: now_ms(),
        error: error.clone(),
    });
    error
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Unix milliseconds (the registry's and the change log's timestamps).
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl HotlineRegistry {
    /// Loads the first version; fails if the file is broken.
    /// Embeddings are remembered across versions (`CachedEmbedder`): a reload or a trainer's
    /// change embeds only new texts.
    pub fn load(path: &Path, embedder: Arc<dyn Embedder>) -> Result<Self, DialplanError> {
        let embedder: Arc<dyn Embedder> = Arc::new(CachedEmbedder::new(
            embedder,
            CachedEmbedder::DEFAULT_CAPACITY,
        ));
        let seen = modified(path);
        let plan = super::load_file(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(Hotline::build(plan, embedder.clone()))),
            embedder,
            version: std::sync::atomic::AtomicU64::new(1),
            reloading: Mutex::new(ReloadState {
                modified: seen,
                loaded_ms: now_ms(),
                refused: None,
            }),
            reporter: Reporter::default(),
        })
    }

    /// Reports reloads to `reporter` from now on.
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = reporter;
        self
    }

    /// What new calls start on.
    pub fn current(&self) -> Arc<Hotline> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The dialplan file.
    pub fn file(&self) -> PathBuf {
        self.path.clone()
    }

    /// Loaded versions so far (1 after `load`).
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ReloadState> {
        self.reloading.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Name, file, version and the last refusal, for the admin API.
    pub fn status(&self) -> HotlineStatus {
        let state = self.state().clone();
        let hotline = self.current();
        HotlineStatus {
            name: hotline.plan.name.clone(),
            file: self.path.clone(),
            version: self.version(),
            loaded_ms: state.loaded_ms,
            nodes: hotline.plan.nodes.len(),
            intents: hotline.plan.intents.len(),
            refused: state.refused,
        }
    }

    /// Re-reads the file. On any problem the current version stays and the problems are
    /// returned; otherwise the new version (trained before the swap) replaces it.
    pub fn reload(&self) -> Result<u64, DialplanError> {
        let mut state = self.state();
        self.reload_locked(&mut state)
    }

    /// Reloads only if the file changed since it was last read (the file watcher's check).
    pub fn reload_if_changed(&self) -> Option<Result<u64, DialplanError>> {
        let mut state = self.state();
        (modified(&self.path) != state.modified).then(|| self.reload_locked(&mut state))
    }

    /// Checks `source` as this hotline's file; if it is sound, writes it over the file
    /// (atomically: a temporary file renamed over it) and loads it. A refused text leaves the
    /// file and the serving version untouched.
    pub fn replace(&self, source: &str) -> Result<u64, DialplanError> {
        let mut state = self.state();
        let shown = self.path.display().to_string();
        if let Err(error) = super::load_str(&shown, source) {
            return Err(refuse(&self.reporter, &mut state, error));
        }
        let temporary = self.path.with_extension("yaml.new");
        std::fs::write(&temporary, source)
            .and_then(|_| std::fs::rename(&temporary, &self.path))
            .map_err(|e| DialplanError {
                problems: vec![super::error::Problem {
                    file: shown,
                    pos: super::yaml::Pos { line: 1, col: 1 },
                    message: format!("cannot write: {e}"),
                    hint: "check the permissions of the dialplans folder".into(),
                }],
            })?;
        self.reload_locked(&mut state)
    }

    fn reload_locked(&self, state: &mut ReloadState) -> Result<u64, DialplanError> {
        state.modified = modified(&self.path);
        let plan = super::load_file(&self.path).map_err(|e| refuse(&self.reporter, state, e))?;
        let hotline = Arc::new(Hotline::build(plan, self.embedder.clone()));
        Ok(self.swap_in(state, hotline))
    }

    /// Makes `hotline` the one new calls start on; returns its version.
    fn swap_in(&self, state: &mut ReloadState, hotline: Arc<Hotline>) -> u64 {
        self.reporter.report(Report::DialplanReload { ok: true });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = hotline;
        state.loaded_ms = now_ms();
        state.refused = None;
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// A trainer's change, under the reload lock (so two changes, or a change and the file
    /// watcher, never interleave): `edit` turns the file's text into the new text, which is
    /// checked like an upload, trained, and judged by `gate` against the serving version; only
    /// then is it written (atomically) and swapped in, and `record` runs (still under the lock,
    /// so the change log's order is the order the versions went live). A file changed on disk
    /// since it was loaded is refused untouched: the edit would be judged against a version
    /// that is not the one on disk.
    pub fn edit<G, R>(
        &self,
        edit: impl FnOnce(&str) -> Result<String, TrainError>,
        gate: impl FnOnce(&Arc<Hotline>, &Arc<Hotline>) -> Result<G, TrainError>,
        record: impl FnOnce(Edited<'_, G>) -> Result<R, TrainError>,
    ) -> Result<R, TrainError> {
        let mut state = self.state();
        let shown = self.path.display().to_string();
        if modified(&self.path) != state.modified {
            return Err(TrainError::ChangedOnDisk {
                file: shown,
                version: self.version(),
            });
        }
        let before = std::fs::read_to_string(&self.path)
            .map_err(|e| TrainError::Io(format!("{shown}: {e}")))?;
        let after = edit(&before)?;
        let plan = super::load_str(&shown, &after).map_err(TrainError::Refused)?;
        let candidate = Arc::new(Hotline::build(plan, self.embedder.clone()));
        let judged = gate(&self.current(), &candidate)?;
        let temporary = self.path.with_extension("yaml.new");
        std::fs::write(&temporary, &after)
            .and_then(|_| std::fs::rename(&temporary, &self.path))
            .map_err(|e| TrainError::Io(format!("{shown}: cannot write: {e}")))?;
        state.modified = modified(&self.path);
        let version = self.swap_in(&mut state, candidate);
        record(Edited {
            version,
            before: &before,
            after: &after,
            judged,
        })
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
        let status = registry.status();
        assert_eq!((status.name.as_str(), status.version), ("t", 2));
        let refused = status
            .refused
            .expect("the refusal is kept for the admin API");
        assert_eq!(refused.error, err);
        assert!(registry.reload_if_changed().is_none(), "file unchanged");

        // Through `replace` (the admin API's upload): a broken text is refused before it
        // touches the file; a sound one is written and served.
        let on_disk = std::fs::read_to_string(&file).unwrap();
        let err = registry.replace("name: t\nstart: nowhere\n").unwrap_err();
        assert!(err.to_string().contains("t.yaml:"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), on_disk);
        assert_eq!(registry.version(), 2);
        assert_eq!(registry.status().refused.map(|r| r.error), Some(err));
        assert_eq!(
            registry.replace(&V1.replace("Version one.", "Version three.")),
            Ok(3)
        );
        assert!(registry.status().refused.is_none());
        let mut third = CallEngine::new(registry.current(), Default::default());
        assert!(said(&mut third).contains("Version three."));
        assert!(
            registry.reload_if_changed().is_none(),
            "its own write is not a change"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
