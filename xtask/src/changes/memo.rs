//! What change detection found for every service at the last state it read, kept in the git
//! directory (`slipway/changed-memo.json`: never in the working tree, never shared), so the
//! next call recomputes only the services that a change since then can reach. It is never
//! trusted blindly:
//!
//! - A memo written by another binary, for another workspace or environment is ignored.
//! - The paths that differ between its state and the one asked for are read from git (tree
//!   diff, plus the working-tree paths of both). Any of them that shapes the configuration or
//!   the cargo graph (`Cargo.toml`, `Cargo.lock`, `service.toml`, a path in `services/`
//!   outside a known service, a service's own Dockerfile) means a full evaluation.
//! - A service is reused only when none of those paths is at or below (or above) a path its
//!   inputs are read from: the same test the fast path makes with the components, made wider
//!   (a context counts whole, a glob from its literal directory).
//! - Whatever builds on a recomputed service is recomputed; a recomputed service that now
//!   builds on other services than before means a full evaluation.
//!
//! `--exhaustive` neither reads nor writes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::inputs::Source;
use super::spec::{Owner, Spec};
use crate::globs::within;

const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memo {
    /// Format, binary, workspace and environment; a memo with another key is ignored.
    pub key: String,
    /// The commit tree read, and the working-tree paths that were laid over it.
    pub tree: String,
    pub overlay: Vec<String>,
    /// Repository-relative paths the services' inputs are read at or below; `Entry::reach`
    /// indexes into it.
    pub paths: Vec<String>,
    pub services: BTreeMap<String, Entry>,
}

/// One service at the memo's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Repository-relative.
    pub dir: String,
    pub digest: String,
    /// As reported (widening, implicit dependencies).
    pub notes: Vec<String>,
    /// Services it builds on, and why.
    pub deps: Vec<(String, String)>,
    /// Its Dockerfile reads images (of other services, possibly).
    pub images: bool,
    /// Its Dockerfile has ONBUILD instructions.
    pub onbuild: bool,
    pub owner: Owner,
    /// Indexes into `Memo::paths`.
    pub reach: Vec<u32>,
}

/// Where the memo lives.
fn file(repo: &git2::Repository) -> PathBuf {
    repo.path().join("slipway").join("changed-memo.json")
}

/// The key for this binary, workspace (`ws`, repository-relative) and environment (`env`:
/// what the configuration reads from it, as text).
pub fn key(ws: &str, env: &str) -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}-{t}", m.len())
        })
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "v{FORMAT} {} {exe} ws={ws} env={env}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The memo, when there is one with this key.
pub fn load(repo: &git2::Repository, key: &str) -> Option<Memo> {
    let text = std::fs::read(file(repo)).ok()?;
    let memo: Memo = serde_json::from_slice(&text).ok()?;
    (memo.key == key).then_some(memo)
}

/// Writes the memo (through a temporary file, so a reader never sees half of it). A memo
/// that cannot be written only costs the next call its speed.
pub fn save(repo: &git2::Repository, memo: &Memo) {
    let path = file(repo);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!("changed-memo.{}.tmp", std::process::id()));
    let Ok(text) = serde_json::to_vec(memo) else {
        return;
    };
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Paths whose change may change the service list, a service's configuration or the cargo
/// graph: those are never reasoned about from a memo.
pub fn structural(path: &str, services_dir: &str, dirs: &[&str]) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if matches!(name, "Cargo.toml" | "Cargo.lock" | "service.toml") {
        return true;
    }
    if !within(path, services_dir) && !within(services_dir, path) {
        return false;
    }
    // In `services/`: a known service's files, other than the Dockerfile that makes it one.
    match dirs.iter().find(|d| within(path, d)) {
        Some(d) => path == format!("{d}/Dockerfile"),
        None => true,
    }
}

/// The paths a service's inputs are read at or below: every component's path, context root,
/// glob directory and defining files, and the service directory.
pub fn reach(spec: &Spec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    out.insert(spec.dir.clone());
    for c in &spec.components {
        match &c.source {
            Source::Path(p) => {
                out.insert(p.clone());
            }
            Source::Filtered { root, .. } => {
                out.insert(root.clone());
            }
            Source::Glob(p) => {
                out.insert(p.literal_prefix().to_string());
            }
            Source::Value(_) => {}
        }
        out.extend(c.defined_by.iter().cloned());
    }
    out
}

/// `path` is at, below or above `prefix`.
fn touches(path: &str, prefix: &str) -> bool {
    within(path, prefix) || within(prefix, path)
}

impl Memo {
    /// A memo of `entries`, each with its reach.
    pub fn new(
        key: String,
        tree: String,
        overlay: Vec<String>,
        entries: BTreeMap<String, (Entry, BTreeSet<String>)>,
    ) -> Memo {
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut paths: Vec<String> = Vec::new();
        let mut services = BTreeMap::new();
        for (name, (mut entry, reach)) in entries {
            entry.reach = reach
                .into_iter()
                .map(|p| {
                    *index.entry(p.clone()).or_insert_with(|| {
                        paths.push(p);
                        (paths.len() - 1) as u32
                    })
                })
                .collect();
            services.insert(name, entry);
        }
        Memo {
            key,
            tree,
            overlay,
            paths,
            services,
        }
    }

    /// The reach of a service, as paths.
    pub fn reach_of(&self, entry: &Entry) -> BTreeSet<String> {
        entry
            .reach
            .iter()
            .filter_map(|i| self.paths.get(*i as usize).cloned())
            .collect()
    }

    /// Services whose reach some of `changed` touches.
    pub fn reached(&self, changed: &[String]) -> BTreeSet<String> {
        if changed.is_empty() {
            return BTreeSet::new();
        }
        let hit: Vec<bool> = self
            .paths
            .iter()
            .map(|r| changed.iter().any(|p| touches(p, r)))
            .collect();
        self.services
            .iter()
            .filter(|(_, e)| {
                e.reach
                    .iter()
                    .any(|i| hit.get(*i as usize).copied().unwrap_or(true))
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// `seeds` and every service that builds on one of them, transitively.
    pub fn with_dependents(&self, seeds: BTreeSet<String>) -> BTreeSet<String> {
        let mut out = seeds;
        loop {
            let before = out.len();
            for (name, e) in &self.services {
                if e.deps.iter().any(|(d, _)| out.contains(d)) {
                    out.insert(name.clone());
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// The service directories, for [`structural`].
    pub fn dirs(&self) -> Vec<&str> {
        self.services.values().map(|e| e.dir.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_paths() {
        let dirs = ["services/api", "services/web"];
        let s = |p: &str| structural(p, "services", &dirs);
        assert!(s("Cargo.toml"));
        assert!(s("libs/x/Cargo.toml"));
        assert!(s("Cargo.lock"));
        assert!(s("services/api/service.toml"));
        assert!(s("services/api/Dockerfile"));
        assert!(s("services/new/Dockerfile"));
        assert!(s("services/README.md"));
        assert!(s("services"));
        assert!(!s("services/api/src/main.rs"));
        assert!(!s("services/api/docker/Dockerfile"));
        assert!(!s("libs/x/src/lib.rs"));
        assert!(!s("VERSION"));
    }

    #[test]
    fn reached_touches_both_ways_and_follows_dependents() {
        let entry = |dir: &str, deps: &[&str]| Entry {
            dir: dir.into(),
            digest: "d".into(),
            notes: vec![],
            deps: deps.iter().map(|d| (d.to_string(), "why".into())).collect(),
            images: false,
            onbuild: false,
            owner: Owner {
                name: dir.into(),
                repository: dir.into(),
                registries: vec![],
            },
            reach: vec![],
        };
        let mut entries = BTreeMap::new();
        entries.insert(
            "api".to_string(),
            (
                entry("services/api", &[]),
                ["services/api", "libs/a"].map(String::from).into(),
            ),
        );
        entries.insert(
            "web".to_string(),
            (
                entry("services/web", &["api"]),
                ["services/web"].map(String::from).into(),
            ),
        );
        entries.insert(
            "all".to_string(),
            (entry("services/all", &[]), [""].map(String::from).into()),
        );
        let m = Memo::new("k".into(), "t".into(), vec![], entries);
        let names = |v: BTreeSet<String>| v.into_iter().collect::<Vec<_>>().join(" ");
        assert_eq!(names(m.reached(&["libs/a/x.rs".into()])), "all api");
        // A changed directory above a reach (a link replaced by a tree) touches it.
        assert_eq!(names(m.reached(&["libs".into()])), "all api");
        assert_eq!(names(m.reached(&["libs/b/x.rs".into()])), "all");
        assert_eq!(names(m.reached(&[])), "");
        assert_eq!(
            names(m.with_dependents(["api".to_string()].into())),
            "api web"
        );
    }
}
