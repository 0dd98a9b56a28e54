//! Signatures and inventory replaced while `live` runs. A reload (SIGHUP,
//! or a changed signature or inventory file, polled every
//! [`RELOAD_POLL`]) loads and validates the whole new set first; a bad one
//! is refused with one log line and the running set stays. A good one is
//! [`Published`] to the capture threads (each checks a generation counter,
//! one atomic load per packet, and swaps its worker's matcher) and
//! handed to the merger thread (which names hits by the set that made them,
//! and exports the active version and the reload results as metrics).

use crate::inventory::Inventory;
use crate::matcher::Matcher;
use crate::signatures::{Category, SignatureSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How often signature and inventory files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The matcher capture threads should use.
pub struct Published {
    generation: AtomicU64,
    current: Mutex<Arc<Matcher>>,
}

impl Published {
    pub fn new(m: Arc<Matcher>) -> Arc<Self> {
        Arc::new(Published {
            generation: AtomicU64::new(0),
            current: Mutex::new(m),
        })
    }

    /// Bumped on every publish: compare to notice a new set cheaply.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Option<Arc<Matcher>> {
        self.current.lock().ok().map(|m| m.clone())
    }

    pub fn publish(&self, m: Arc<Matcher>) {
        if let Ok(mut g) = self.current.lock() {
            *g = m;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// A validated replacement, for the merger thread.
pub struct Loaded {
    pub matcher: Arc<Matcher>,
    pub counts: Vec<(Category, usize)>,
    pub version: String,
    pub inventory: Option<Arc<Inventory>>,
}

/// The active version of a set: `file=version` for each file.
pub fn version_of(set: &SignatureSet) -> String {
    set.files
        .iter()
        .map(|f| {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{name}={}", f.version)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Load and validate the signatures (and inventory) from the same paths as
/// at start. The error is the one-line reason.
pub fn load(sigs: &[PathBuf], inventory: Option<&std::path::Path>) -> Result<Loaded, String> {
    let (set, matcher) = crate::run::load_matcher(sigs).map_err(|e| e.to_string())?;
    let inventory = Inventory::load_opt(inventory).map_err(|e| e.to_string())?;
    Ok(Loaded {
        counts: set.count_by_category(),
        version: version_of(&set),
        matcher,
        inventory,
    })
}

/// Modification times of the watched files (signature files, the files of
/// signature directories, the inventory), to notice edits.
pub fn stamp(
    sigs: &[PathBuf],
    inventory: Option<&std::path::Path>,
) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in crate::run::signature_paths(sigs) {
        match std::fs::read_dir(&p) {
            Ok(rd) => {
                let mut v: Vec<PathBuf> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                    .collect();
                v.sort();
                files.push(p);
                files.extend(v);
            }
            Err(_) => files.push(p),
        }
    }
    files.extend(inventory.map(PathBuf::from));
    files
        .into_iter()
        .map(|f| {
            let t = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            (f, t)
        })
        .collect()
}
