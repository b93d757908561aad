//! `Cargo.lock` as change detection needs it: the locked packages a workspace package reaches,
//! so a lock bump selects only the services whose resolved dependencies changed.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Debug, Clone, Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// A parsed lock file.
#[derive(Debug, Default)]
pub struct Lock {
    packages: Vec<LockPackage>,
}

impl Lock {
    pub fn parse(text: &str) -> Result<Lock> {
        let f: LockFile = toml::from_str(text).context("Cargo.lock is not a valid lock file")?;
        Ok(Lock {
            packages: f.package,
        })
    }

    /// The position of the package a dependency entry names (`name`, `name version` or
    /// `name version (source)`).
    fn find(&self, dep: &str) -> Option<usize> {
        let mut parts = dep.split_whitespace();
        let name = parts.next()?;
        let version = parts.next();
        let mut candidates = self
            .packages
            .iter()
            .enumerate()
            .filter(|(_, p)| p.name == name);
        match version {
            None => candidates.next().map(|(i, _)| i),
            Some(v) => candidates.find(|(_, p)| p.version == v).map(|(i, _)| i),
        }
    }

    /// The dependency entries of the local (path) package `name`, as the lock lists them
    /// (normal, build and dev alike); `None` when the lock does not have it.
    pub fn local_dependencies(&self, name: &str) -> Option<Vec<String>> {
        self.packages
            .iter()
            .find(|p| p.name == name && p.source.is_none())
            .map(|p| p.dependencies.clone())
    }

    /// `name version source checksum` of every package the dependency entries `roots` reach,
    /// themselves included.
    pub fn reachable_from(&self, roots: &[String]) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = roots.iter().filter_map(|d| self.find(d)).collect();
        let mut out = BTreeSet::new();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            let p = &self.packages[i];
            out.insert(format!(
                "{} {} {} {}",
                p.name,
                p.version,
                p.source.as_deref().unwrap_or("-"),
                p.checksum.as_deref().unwrap_or("-")
            ));
            stack.extend(p.dependencies.iter().filter_map(|d| self.find(d)));
        }
        out
    }

    /// Every package `root` (a local package) reaches through the lock, itself included.
    #[cfg(test)]
    pub fn reachable(&self, root: &str) -> Option<BTreeSet<String>> {
        self.local_dependencies(root)?;
        Some(self.reachable_from(&[root.to_string()]))
    }
}

/// A short "what changed" for a reason: `serde 1.0.1 → 1.0.2`-style, at most three entries.
pub fn describe(old: &BTreeSet<String>, new: &BTreeSet<String>) -> String {
    let short = |s: &String| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let removed: Vec<String> = old.difference(new).map(short).collect();
    let added: Vec<String> = new.difference(old).map(short).collect();
    let mut parts = Vec::new();
    for a in &added {
        let name = a.split(' ').next().unwrap_or("");
        match removed.iter().find(|r| r.split(' ').next() == Some(name)) {
            Some(r) if r != a => parts.push(format!("{r} → {}", a.trim_start_matches(name).trim())),
            Some(_) => parts.push(format!("{name} (source or checksum)")),
            None => parts.push(format!("+{a}")),
        }
    }
    for r in &removed {
        let name = r.split(' ').next().unwrap_or("");
        if !added.iter().any(|a| a.split(' ').next() == Some(name)) {
            parts.push(format!("-{r}"));
        }
    }
    let n = parts.len();
    parts.truncate(3);
    if n > 3 {
        parts.push(format!("{} more", n - 3));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "api"
version = "0.1.0"
dependencies = ["common", "serde"]

[[package]]
name = "common"
version = "0.1.0"
dependencies = ["itoa 1.0.9"]

[[package]]
name = "worker"
version = "0.1.0"
dependencies = ["common"]

[[package]]
name = "serde"
version = "1.0.1"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aa"

[[package]]
name = "itoa"
version = "1.0.9"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bb"
"#;

    #[test]
    fn reachable_sets_follow_the_lock_graph() {
        let lock = Lock::parse(LOCK).unwrap();
        let api = lock.reachable("api").unwrap();
        assert_eq!(api.len(), 4, "{api:?}");
        let worker = lock.reachable("worker").unwrap();
        assert_eq!(worker.len(), 3);
        assert!(!worker.iter().any(|p| p.starts_with("serde")));
        assert!(
            lock.reachable("serde").is_none(),
            "only workspace packages are roots"
        );
        assert!(lock.reachable("nope").is_none());
    }

    #[test]
    fn a_bump_changes_only_the_services_that_reach_it() {
        let old = Lock::parse(LOCK).unwrap();
        let new = Lock::parse(
            &LOCK
                .replace("1.0.1\"\nsource", "1.0.2\"\nsource")
                .replace("checksum = \"aa\"", "checksum = \"cc\""),
        )
        .unwrap();
        assert_ne!(old.reachable("api"), new.reachable("api"));
        assert_eq!(old.reachable("worker"), new.reachable("worker"));
        let d = describe(
            &old.reachable("api").unwrap(),
            &new.reachable("api").unwrap(),
        );
        assert_eq!(d, "serde 1.0.1 → 1.0.2");
    }

    #[test]
    fn a_broken_lock_is_an_error() {
        assert!(Lock::parse("[[package]]\nname = 1").is_err());
    }
}
