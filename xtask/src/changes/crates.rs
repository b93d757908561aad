//! The cargo graph a service's binary compiles, read from the manifests in a [`Snapshot`]
//! (so `--head REF` sees REF's graph, not the checkout's): the path crates it builds (members,
//! `[workspace] exclude`d ones, `[patch]`ed ones, `workspace = true` ones), target paths that
//! lie outside their crate, and the locked packages it compiles — normal and build
//! dependencies only, for the service's targets and the features a release build enables.
//! Where it cannot tell (a manifest it cannot read, a lock that lacks a package, a `cfg` it
//! does not know), it includes rather than leaves out, and says so in a note.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;

use super::cfg;
use super::lock::Lock;
use super::snapshot::Snapshot;
use crate::services::Package;

/// What one package's release build reads, beyond its own directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Repository-relative directories of every path crate compiled (the package's own too).
    pub dirs: BTreeSet<String>,
    /// Repository-relative paths outside those directories that targets or build scripts read.
    pub extra: BTreeSet<String>,
    /// `name version source checksum` of the locked packages compiled; `None` when the lock
    /// cannot say (then the whole lock is an input).
    pub locked: Option<BTreeSet<String>>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
struct Dep {
    /// A dev-dependency: never compiled into a release binary, but under resolver 1 its
    /// feature requests still apply to the packages that are.
    dev: bool,
    /// The key in the manifest (what features refer to).
    key: String,
    /// The package's real name.
    package: String,
    path: Option<String>,
    optional: bool,
    default_features: bool,
    features: Vec<String>,
}

#[derive(Debug, Clone)]
struct Manifest {
    name: String,
    dir: String,
    features: BTreeMap<String, Vec<String>>,
    deps: Vec<Dep>,
    bins: Vec<String>,
    /// Target and build-script paths outside `dir`.
    outside: Vec<String>,
}

/// What the cargo graph is read from: a snapshot (a commit, or one with the working tree over
/// it) or the files on disk.
pub trait Tree {
    fn read_text(&self, path: &str) -> Option<String>;
    fn exists(&self, path: &str) -> bool;
    /// The names directly under `dir`, each with whether it is a directory.
    fn list(&self, dir: &str) -> Vec<(String, bool)>;
}

impl Tree for Snapshot<'_> {
    fn read_text(&self, path: &str) -> Option<String> {
        Snapshot::read_text(self, path)
    }
    fn exists(&self, path: &str) -> bool {
        self.item(path).is_some()
    }
    fn list(&self, dir: &str) -> Vec<(String, bool)> {
        self.entries(dir)
            .into_iter()
            .map(|(n, i)| (String::from_utf8_lossy(&n).into_owned(), i.is_tree()))
            .collect()
    }
}

/// The working tree as it is on disk, from the workspace root.
pub struct DiskTree<'a>(pub &'a std::path::Path);

impl Tree for DiskTree<'_> {
    fn read_text(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(path)).ok()
    }
    fn exists(&self, path: &str) -> bool {
        self.0.join(path).exists()
    }
    fn list(&self, dir: &str) -> Vec<(String, bool)> {
        let Ok(entries) = std::fs::read_dir(self.0.join(dir)) else {
            return Vec::new();
        };
        let mut out: Vec<(String, bool)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let is_dir = e.path().is_dir();
                e.file_name().to_str().map(|n| (n.to_string(), is_dir))
            })
            .collect();
        out.sort();
        out
    }
}

/// The workspace packages (members, with their binaries) as they are on disk.
pub fn disk_packages(root: &std::path::Path) -> Vec<Package> {
    Crates::new(&DiskTree(root), "")
        .map(|mut c| c.packages())
        .unwrap_or_default()
}

pub struct Crates<'s> {
    snap: &'s dyn Tree,
    /// The workspace root, repository-relative (`""` at the root).
    ws: String,
    root: toml::Table,
    /// `[patch.*]` / `[replace]` by package name → directory.
    patches: HashMap<String, String>,
    /// Feature resolver 1 (a virtual workspace without `resolver`, or edition < 2021):
    /// dev-dependency features unify into release builds.
    resolver1: bool,
    /// Member manifests that cannot be read: (path, why).
    pub broken: Vec<(String, String)>,
    cache: HashMap<String, Result<Manifest, String>>,
}

fn join(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = if dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn str_list(v: Option<&toml::Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl<'s> Crates<'s> {
    /// The workspace at `ws` (repository-relative) in `snap`; `None` without a root manifest.
    pub fn new(snap: &'s dyn Tree, ws: &str) -> Option<Crates<'s>> {
        let text = snap.read_text(&join(ws, "Cargo.toml")?)?;
        let root: toml::Table = text.parse().ok()?;
        let mut c = Crates {
            snap,
            ws: ws.to_string(),
            root,
            patches: HashMap::new(),
            resolver1: false,
            broken: Vec::new(),
            cache: HashMap::new(),
        };
        c.patches = c.read_patches();
        let resolver = c
            .root
            .get("workspace")
            .and_then(|w| w.get("resolver"))
            .or_else(|| c.root.get("package").and_then(|p| p.get("resolver")))
            .and_then(|r| r.as_str());
        let edition = c
            .root
            .get("package")
            .and_then(|p| p.get("edition"))
            .and_then(|e| e.as_str())
            .unwrap_or("2015");
        c.resolver1 = match resolver {
            Some(r) => r == "1",
            None => !c.root.contains_key("package") || edition < "2021",
        };
        Some(c)
    }

    fn read_patches(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        let mut add = |name: &str, v: &toml::Value| {
            if let Some(p) = v.get("path").and_then(|p| p.as_str()) {
                let pkg = v.get("package").and_then(|p| p.as_str()).unwrap_or(name);
                let pkg = pkg.split(':').next().unwrap_or(pkg);
                if let Some(d) = join(&self.ws, p) {
                    out.insert(pkg.to_string(), d);
                }
            }
        };
        if let Some(t) = self.root.get("patch").and_then(|p| p.as_table()) {
            for (_, reg) in t {
                for (name, v) in reg.as_table().into_iter().flatten() {
                    add(name, v);
                }
            }
        }
        if let Some(t) = self.root.get("replace").and_then(|p| p.as_table()) {
            for (name, v) in t {
                add(name, v);
            }
        }
        out
    }

    /// Workspace members (and the root package), with their binaries.
    pub fn packages(&mut self) -> Vec<Package> {
        let ws = self.root.get("workspace");
        let members = str_list(ws.and_then(|w| w.get("members")));
        let exclude: Vec<String> = str_list(ws.and_then(|w| w.get("exclude")))
            .iter()
            .filter_map(|e| join(&self.ws, e))
            .collect();
        let mut dirs: BTreeSet<String> = BTreeSet::new();
        if self.root.contains_key("package") {
            dirs.insert(self.ws.clone());
        }
        for m in members {
            for d in self.expand(&m) {
                if !exclude.iter().any(|e| crate::globs::within(&d, e)) {
                    dirs.insert(d);
                }
            }
        }
        let mut out = Vec::new();
        for d in dirs {
            let m = self.manifest(&d);
            if let Err(e) = &m {
                let path = join(&d, "Cargo.toml").unwrap_or_default();
                if !self.broken.iter().any(|(p, _)| *p == path) {
                    self.broken.push((path, e.clone()));
                }
            }
            if let Ok(m) = m {
                let rel = d
                    .strip_prefix(&self.ws)
                    .map(|r| r.trim_start_matches('/'))
                    .unwrap_or(&d);
                out.push(Package {
                    name: m.name.clone(),
                    dir: PathBuf::from(rel),
                    bins: m.bins.clone(),
                    deps: m
                        .deps
                        .iter()
                        .filter(|d| d.path.is_some())
                        .map(|d| d.package.clone())
                        .collect(),
                });
            }
        }
        out
    }

    /// A `members` glob as directories holding a Cargo.toml.
    fn expand(&self, pattern: &str) -> Vec<String> {
        let mut cur = vec![self.ws.clone()];
        for seg in pattern.trim_end_matches('/').split('/') {
            if seg.is_empty() || seg == "." {
                continue;
            }
            let mut next = Vec::new();
            for dir in &cur {
                if seg.contains(['*', '?', '[']) {
                    let Ok(m) = globset::Glob::new(seg).map(|g| g.compile_matcher()) else {
                        continue;
                    };
                    for (name, is_dir) in self.snap.list(dir) {
                        if is_dir && m.is_match(&name) {
                            next.extend(join(dir, &name));
                        }
                    }
                } else {
                    next.extend(join(dir, seg));
                }
            }
            cur = next;
        }
        cur.into_iter()
            .filter(|d| {
                self.snap
                    .exists(format!("{d}/Cargo.toml").trim_start_matches('/'))
            })
            .collect()
    }

    fn manifest(&mut self, dir: &str) -> Result<Manifest, String> {
        if let Some(m) = self.cache.get(dir) {
            return m.clone();
        }
        let m = self.read_manifest(dir);
        self.cache.insert(dir.to_string(), m.clone());
        m
    }

    fn read_manifest(&self, dir: &str) -> Result<Manifest, String> {
        let path = join(dir, "Cargo.toml").unwrap_or_default();
        let text = self
            .snap
            .read_text(&path)
            .ok_or_else(|| format!("{path} does not exist"))?;
        let t: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| format!("{path}: {}", e.message()))?;
        let name = t
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| format!("{path}: no [package] name"))?
            .to_string();
        let mut features = BTreeMap::new();
        for (k, v) in t
            .get("features")
            .and_then(|f| f.as_table())
            .into_iter()
            .flatten()
        {
            features.insert(k.clone(), str_list(Some(v)));
        }
        let mut deps = Vec::new();
        let mut tables: Vec<(&toml::Value, Option<&str>)> = Vec::new();
        for key in ["dependencies", "build-dependencies", "build_dependencies"] {
            if let Some(d) = t.get(key) {
                tables.push((d, None));
            }
        }
        for (spec, tt) in t
            .get("target")
            .and_then(|x| x.as_table())
            .into_iter()
            .flatten()
        {
            for key in ["dependencies", "build-dependencies", "build_dependencies"] {
                if let Some(d) = tt.get(key) {
                    tables.push((d, Some(spec.as_str())));
                }
            }
        }
        for (key, v) in t
            .get("dev-dependencies")
            .or_else(|| t.get("dev_dependencies"))
            .and_then(|d| d.as_table())
            .into_iter()
            .flatten()
        {
            let mut dep = self.dep(dir, key, v);
            dep.dev = true;
            deps.push(dep);
        }
        for (table, spec) in tables {
            for (key, v) in table.as_table().into_iter().flatten() {
                let mut dep = self.dep(dir, key, v);
                if let Some(s) = spec {
                    dep.key = key.clone();
                    dep.features.push(format!("\u{0}target {s}"));
                }
                deps.push(dep);
            }
        }
        let pkg = t.get("package");
        let mut outside = Vec::new();
        let mut note_path = |p: &str| {
            if let Some(full) = join(dir, p) {
                if !crate::globs::within(&full, dir) {
                    // A target file outside the crate: its directory (modules live beside it).
                    let parent = full.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                    outside.push(parent);
                }
            }
        };
        if let Some(b) = pkg.and_then(|p| p.get("build")).and_then(|b| b.as_str()) {
            note_path(b);
        }
        if let Some(l) = t
            .get("lib")
            .and_then(|l| l.get("path"))
            .and_then(|p| p.as_str())
        {
            note_path(l);
        }
        let mut bins = Vec::new();
        for b in t
            .get("bin")
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(p) = b.get("path").and_then(|p| p.as_str()) {
                note_path(p);
            }
            if let Some(n) = b.get("name").and_then(|n| n.as_str()) {
                bins.push(n.to_string());
            }
        }
        let autobins = pkg
            .and_then(|p| p.get("autobins"))
            .and_then(|a| a.as_bool())
            .unwrap_or(true);
        if autobins {
            if self
                .snap
                .exists(&join(dir, "src/main.rs").unwrap_or_default())
                && !bins.contains(&name)
            {
                bins.push(name.clone());
            }
            for (n, is_dir) in self.snap.list(&join(dir, "src/bin").unwrap_or_default()) {
                let bin = match n.strip_suffix(".rs") {
                    Some(b) if !is_dir => Some(b.to_string()),
                    _ if is_dir => Some(n.clone()),
                    _ => None,
                };
                if let Some(b) = bin {
                    if !bins.contains(&b) {
                        bins.push(b);
                    }
                }
            }
        }
        bins.sort();
        Ok(Manifest {
            name,
            dir: dir.to_string(),
            features,
            deps,
            bins,
            outside,
        })
    }

    fn dep(&self, dir: &str, key: &str, v: &toml::Value) -> Dep {
        let mut dep = Dep {
            dev: false,
            key: key.to_string(),
            package: key.to_string(),
            path: None,
            optional: false,
            default_features: true,
            features: Vec::new(),
        };
        let Some(t) = v.as_table() else {
            return dep; // "1.0": a registry version
        };
        let mut from = t.clone();
        let mut base_dir = dir.to_string();
        if t.get("workspace").and_then(|w| w.as_bool()) == Some(true) {
            if let Some(w) = self
                .root
                .get("workspace")
                .and_then(|w| w.get("dependencies"))
                .and_then(|d| d.get(key))
            {
                base_dir = self.ws.clone();
                from = match w {
                    toml::Value::Table(wt) => wt.clone(),
                    _ => toml::Table::new(),
                };
                // The member adds features and may make it optional.
                let mut f = str_list(from.get("features"));
                f.extend(str_list(t.get("features")));
                from.insert(
                    "features".into(),
                    toml::Value::Array(f.into_iter().map(toml::Value::String).collect()),
                );
                if let Some(o) = t.get("optional") {
                    from.insert("optional".into(), o.clone());
                }
            }
        }
        if let Some(p) = from.get("package").and_then(|p| p.as_str()) {
            dep.package = p.to_string();
        }
        dep.path = from
            .get("path")
            .and_then(|p| p.as_str())
            .and_then(|p| join(&base_dir, p));
        dep.optional = from
            .get("optional")
            .and_then(|o| o.as_bool())
            .unwrap_or(false);
        dep.default_features = from
            .get("default-features")
            .or_else(|| from.get("default_features"))
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        dep.features = str_list(from.get("features"));
        dep
    }

    /// The graph of `package`'s release build for `targets` (Rust target triples; empty = any),
    /// with default features.
    pub fn graph(&mut self, package: &str, targets: &[String], lock: Option<&Lock>) -> Graph {
        let mut g = Graph::default();
        let Some(start) = self.package_dir(package) else {
            g.notes.push(format!("package `{package}` is not in the workspace at this commit: the whole workspace is an input"));
            g.dirs.insert(self.ws.clone());
            return g;
        };
        // (dir, feature) and (dir, dep key) activations, each processed once.
        let mut features: BTreeSet<(String, String)> = BTreeSet::new();
        let mut enabled: BTreeSet<(String, String)> = BTreeSet::new();
        let mut registry: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut queue: VecDeque<Work> = VecDeque::new();
        queue.push_back(Work::Package(start.clone()));
        queue.push_back(Work::Feature(start, "default".into()));
        while let Some(w) = queue.pop_front() {
            match w {
                Work::Package(dir) => {
                    if !g.dirs.insert(dir.clone()) {
                        continue;
                    }
                    match self.manifest(&dir) {
                        Ok(m) => {
                            g.extra.extend(m.outside.iter().cloned());
                            for d in m.deps.iter().filter(|d| !d.optional && !d.dev) {
                                queue.push_back(Work::Dep(dir.clone(), d.key.clone()));
                            }
                            if self.resolver1 {
                                // Resolver 1: what dev-dependencies ask of packages the
                                // binary compiles anyway is compiled in too.
                                for d in m.deps.iter().filter(|d| d.dev) {
                                    if let Some(target) = self.dep_dir(d) {
                                        for f in &d.features {
                                            queue.push_back(Work::Feature(
                                                target.clone(),
                                                f.clone(),
                                            ));
                                        }
                                        if d.default_features {
                                            queue.push_back(Work::Feature(
                                                target.clone(),
                                                "default".into(),
                                            ));
                                        }
                                    }
                                }
                            }
                        }
                        Err(e) => g
                            .notes
                            .push(format!("cannot read {e}: its directory is an input")),
                    }
                }
                Work::Feature(dir, f) => {
                    if !features.insert((dir.clone(), f.clone())) {
                        continue;
                    }
                    let Ok(m) = self.manifest(&dir) else { continue };
                    let explicit_dep = |k: &str| {
                        m.features
                            .values()
                            .flatten()
                            .any(|e| e == &format!("dep:{k}"))
                    };
                    match m.features.get(&f) {
                        Some(entries) => {
                            for e in entries {
                                if let Some(d) = e.strip_prefix("dep:") {
                                    queue.push_back(Work::Dep(dir.clone(), d.to_string()));
                                } else if let Some((d, sub)) = e.split_once('/') {
                                    let (d, weak) = match d.strip_suffix('?') {
                                        Some(d) => (d, true),
                                        None => (d, false),
                                    };
                                    if !weak {
                                        queue.push_back(Work::Dep(dir.clone(), d.to_string()));
                                    }
                                    queue.push_back(Work::DepFeature(
                                        dir.clone(),
                                        d.to_string(),
                                        sub.to_string(),
                                        weak,
                                    ));
                                } else {
                                    queue.push_back(Work::Feature(dir.clone(), e.clone()));
                                }
                            }
                        }
                        None if !explicit_dep(&f)
                            && m.deps.iter().any(|d| d.key == f && d.optional) =>
                        {
                            queue.push_back(Work::Dep(dir.clone(), f.clone()));
                        }
                        None => {}
                    }
                }
                Work::Dep(dir, key) => {
                    if !enabled.insert((dir.clone(), key.clone())) {
                        continue;
                    }
                    let Ok(m) = self.manifest(&dir) else { continue };
                    for d in m.deps.iter().filter(|d| d.key == key && !d.dev) {
                        if !self.for_targets(d, targets, &mut g) {
                            continue;
                        }
                        match self.dep_dir(d) {
                            Some(target) => {
                                queue.push_back(Work::Package(target.clone()));
                                if d.default_features {
                                    queue
                                        .push_back(Work::Feature(target.clone(), "default".into()));
                                }
                                for f in d.features.iter().filter(|f| !f.starts_with('\u{0}')) {
                                    queue.push_back(Work::Feature(target.clone(), f.clone()));
                                }
                                // Feature requests `key/f` made before the dep was enabled.
                                for ((fdir, fkey), subs) in self.pending(&features, &m) {
                                    if fdir == dir && fkey == key {
                                        for s in subs {
                                            queue.push_back(Work::Feature(target.clone(), s));
                                        }
                                    }
                                }
                            }
                            None => {
                                registry
                                    .entry(dir.clone())
                                    .or_default()
                                    .insert(d.package.clone());
                            }
                        }
                    }
                }
                Work::DepFeature(dir, key, sub, weak) => {
                    if weak && !enabled.contains(&(dir.clone(), key.clone())) {
                        continue; // applied if the dep is enabled later (see `pending`)
                    }
                    let Ok(m) = self.manifest(&dir) else { continue };
                    for d in m.deps.iter().filter(|d| d.key == key && !d.dev) {
                        if let Some(target) = self.dep_dir(d) {
                            queue.push_back(Work::Feature(target, sub.clone()));
                        }
                    }
                }
            }
        }
        g.locked = self.locked(&g, &registry, lock);
        g
    }

    /// `key/sub` feature entries of `m` among the enabled features: (dir, key) → subs.
    fn pending(
        &self,
        features: &BTreeSet<(String, String)>,
        m: &Manifest,
    ) -> Vec<((String, String), Vec<String>)> {
        let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (dir, f) in features.iter().filter(|(d, _)| *d == m.dir) {
            for e in m.features.get(f).into_iter().flatten() {
                if let Some((d, sub)) = e.split_once('/') {
                    let d = d.trim_end_matches('?');
                    out.entry((dir.clone(), d.to_string()))
                        .or_default()
                        .push(sub.to_string());
                }
            }
        }
        out.into_iter().collect()
    }

    /// A target-specific dependency applies to one of `targets` (or cannot be ruled out).
    fn for_targets(&self, d: &Dep, targets: &[String], g: &mut Graph) -> bool {
        let Some(spec) = d
            .features
            .iter()
            .find_map(|f| f.strip_prefix("\u{0}target "))
        else {
            return true;
        };
        if targets.is_empty() {
            return true;
        }
        let mut host = targets.to_vec();
        host.push("x86_64-unknown-linux-gnu".into()); // build scripts run on the host
        match cfg::applies(spec, &host) {
            Some(b) => b,
            None => {
                let note = format!("[target.'{spec}'] is not understood: its dependencies count");
                if !g.notes.contains(&note) {
                    g.notes.push(note);
                }
                true
            }
        }
    }

    fn dep_dir(&self, d: &Dep) -> Option<String> {
        d.path
            .clone()
            .or_else(|| self.patches.get(&d.package).cloned())
    }

    fn package_dir(&mut self, name: &str) -> Option<String> {
        let members = self.packages();
        members
            .iter()
            .find(|p| p.name == name)
            .map(|p| join(&self.ws, &p.dir.display().to_string()).unwrap_or_default())
            .or_else(|| self.patches.get(name).cloned())
    }

    /// The lock lines of the registry packages the graph compiles (and what they reach).
    fn locked(
        &self,
        g: &Graph,
        registry: &BTreeMap<String, BTreeSet<String>>,
        lock: Option<&Lock>,
    ) -> Option<BTreeSet<String>> {
        let lock = lock?;
        let mut roots = Vec::new();
        for dir in &g.dirs {
            let Some(Ok(m)) = self.cache.get(dir) else {
                continue;
            };
            let Some(want) = registry.get(dir) else {
                continue;
            };
            let deps = lock.local_dependencies(&m.name)?;
            for name in want {
                let found: Vec<&String> = deps
                    .iter()
                    .filter(|d| d.split_whitespace().next() == Some(name))
                    .collect();
                if found.is_empty() {
                    return None; // the lock does not have it: out of date
                }
                roots.extend(found.into_iter().cloned());
            }
        }
        Some(lock.reachable_from(&roots))
    }
}

enum Work {
    Package(String),
    Feature(String, String),
    Dep(String, String),
    /// `key/feature` (weak with `?`).
    DepFeature(String, String, String, bool),
}
