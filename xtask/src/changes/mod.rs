//! Which services a change selects, and why. The changed paths between a base and a head
//! (plus the working tree locally) are mapped to services through their directories,
//! Dockerfiles and `COPY` sources (less what `.dockerignore` leaves out), `watch` globs, the
//! workspace crates they depend on, their locked dependencies, global paths and `depends_on`.
//! Every service gets reasons either way, and an input digest: a content key over everything
//! that can select it.

mod base;
pub mod diff;
mod lock;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::context::BuildContext;
use crate::dockerfile::{self, Ignore};
use crate::files::{CommitTree, Disk, Files};
use crate::services::{Package, Service, Workspace};

/// The `changed --json` contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The base commit compared against; `null` when everything is selected for want of one.
    pub base: Option<String>,
    pub head: Option<String>,
    /// How the base was chosen (or why there is none).
    pub comparison: String,
    /// The working tree and index were included (local, no `--head`).
    pub working_tree: bool,
    /// Changed paths, relative to the workspace root.
    pub changed_paths: usize,
    /// Sorted by name; services removed by the change are listed with `removed: true`.
    pub services: Vec<ServiceChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceChange {
    pub name: String,
    pub selected: bool,
    pub reasons: Vec<String>,
    /// `sha256:…` over the service's inputs at head; absent for removed services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_digest: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

pub struct Request<'a> {
    pub base: Option<&'a str>,
    pub head: Option<&'a str>,
    pub strict: bool,
    pub context: &'a BuildContext,
}

/// What a file looks like at head: the working tree locally, else the head commit.
struct Head<'r> {
    tree: CommitTree<'r>,
    root: &'r Path,
    /// Set when the working tree is included: files are read from disk.
    disk: Option<Disk<'r>>,
}

impl Head<'_> {
    /// Where files are read from.
    fn files(&self) -> &dyn Files {
        match &self.disk {
            Some(d) => d,
            None => &self.tree,
        }
    }

    fn read(&self, rel: &str) -> Option<String> {
        self.files().read(Path::new(rel)).ok().flatten()
    }

    /// The object id at `rel` in the head commit (a tree or a blob).
    fn id(&self, rel: &str) -> Option<git2::Oid> {
        self.tree.id(rel)
    }

    fn exists(&self, rel: &str) -> bool {
        self.files().is_file(Path::new(rel))
    }
}

/// Detects the change. The workspace is loaded through `load` as it is at head: from the
/// head commit, or from disk when the working tree is included.
pub fn detect(
    repo: &git2::Repository,
    root: &Path,
    load: &dyn Fn(&dyn Files) -> Result<Workspace>,
    packages: &dyn Fn() -> Result<Vec<Package>>,
    req: &Request,
) -> Result<Report> {
    // Objects come from our own repository: re-hashing each one on read is wasted work here.
    git2::opts::strict_hash_verification(false);
    let range = base::resolve(
        repo,
        &base::Request {
            base: req.base,
            head: req.head,
            context: req.context,
        },
    )?;
    if req.strict {
        base::strict(&range)?;
    }
    let workdir = repo
        .workdir()
        .and_then(|w| w.canonicalize().ok())
        .context("the repository has no working tree")?;
    let prefix = match root.strip_prefix(&workdir) {
        Ok(p) if p.as_os_str().is_empty() => String::new(),
        Ok(p) => format!("{}/", p.display()),
        Err(_) => String::new(),
    };
    let head = Head {
        tree: CommitTree::new(repo, repo.find_commit(range.head)?.tree()?, prefix.clone()),
        root,
        disk: range.working_tree.then_some(Disk { root }),
    };
    let ws = load(head.files())?;
    let base = match range.base {
        Some(b) => Some(CommitTree::new(
            repo,
            repo.find_commit(b)?.tree()?,
            prefix.clone(),
        )),
        None => None,
    };
    let mut paths = match &base {
        Some(b) => diff::changed_paths(repo, Some(&b.tree), Some(&head.tree.tree))?,
        None => Vec::new(),
    };
    let mut wt_paths = Vec::new();
    if range.working_tree {
        wt_paths = diff::working_tree_paths(repo)?;
        paths.extend(wt_paths.iter().cloned());
        paths.sort();
        paths.dedup();
    }
    let paths: Vec<String> = paths
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix).map(String::from))
        .collect();
    let wt_paths: BTreeSet<String> = wt_paths
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix).map(String::from))
        .collect();
    let read_base = |rel: &str| base.as_ref()?.read(Path::new(rel)).ok().flatten();

    // Reasons that select every service.
    let shared = glob_set(&ws.settings.shared_paths)?;
    let mut global = Vec::new();
    let hits: Vec<&String> = paths
        .iter()
        .filter(|p| shared.is_match(p.as_str()))
        .collect();
    if !hits.is_empty() {
        global.push(format!("global: {}", list(&hits)));
    }
    if paths.iter().any(|p| p == "Cargo.toml") {
        if let Some(why) = root_manifest_change(read_base("Cargo.toml"), head.read("Cargo.toml")) {
            global.push(why);
        }
    }
    if let Some(why) = &range.fallback {
        global.push(why.clone());
    }

    // The cargo graph, only when a service is a Rust package: package name and the
    // directories of the workspace crates it depends on, per service.
    let members = workspace_members(head.read("Cargo.toml").as_deref());
    let is_rust = |s: &Service| {
        s.cargo.is_some()
            || (members.is_match(s.dir.as_path())
                && head.exists(&format!("{}/Cargo.toml", s.dir.display())))
    };
    let mut rust: BTreeMap<&str, (String, Vec<String>)> = BTreeMap::new();
    if ws.services.iter().any(is_rust) {
        let pkgs = packages()?;
        for s in ws.services.iter().filter(|s| is_rust(s)) {
            let name = match &s.cargo {
                Some(c) => Some(c.package.clone()),
                None => pkgs.iter().find(|p| p.dir == s.dir).map(|p| p.name.clone()),
            };
            if let Some(name) = name {
                let dirs = dependency_dirs(&name, &pkgs);
                rust.insert(s.name.as_str(), (name, dirs));
            }
        }
    }
    let lock_changed = paths.iter().any(|p| p == "Cargo.lock");
    let head_lock = if rust.is_empty() {
        None
    } else {
        head.read("Cargo.lock")
            .and_then(|t| lock::Lock::parse(&t).ok())
    };
    let base_lock = if lock_changed && !rust.is_empty() {
        read_base("Cargo.lock").and_then(|t| lock::Lock::parse(&t).ok())
    } else {
        None
    };

    let mut out: Vec<ServiceChange> = Vec::new();
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    for svc in &ws.services {
        let inputs = ServiceInputs::read(svc, &head)?;
        let (pkg, crate_dirs) = match rust.get(svc.name.as_str()) {
            Some((p, d)) => (Some(p), d.as_slice()),
            None => (None, &[][..]),
        };
        let (mut reasons, ignored) = inputs.reasons(&paths, crate_dirs);
        if let Some(pkg) = pkg {
            if lock_changed {
                let new = head_lock.as_ref().and_then(|l| l.reachable(pkg));
                let old = base_lock.as_ref().and_then(|l| l.reachable(pkg));
                match (old, new) {
                    (Some(o), Some(n)) if o != n => {
                        reasons.push(format!("Cargo.lock: {}", lock::describe(&o, &n)))
                    }
                    (Some(_), Some(_)) => {}
                    _ => reasons.push(format!(
                        "Cargo.lock changed and `{pkg}` cannot be compared in it"
                    )),
                }
            }
        }
        reasons.extend(global.iter().cloned());
        let selected = !reasons.is_empty();
        if !selected {
            reasons.push(if ignored.is_empty() {
                "no change in its inputs".to_string()
            } else {
                format!(
                    "only files .dockerignore leaves out changed: {}",
                    list(&ignored.iter().collect::<Vec<_>>())
                )
            });
        }
        out.push(ServiceChange {
            name: svc.name.clone(),
            selected,
            reasons,
            input_digest: None,
            removed: false,
        });
    }

    // depends_on: selected when what it builds on is.
    loop {
        let selected: BTreeSet<String> = out
            .iter()
            .filter(|s| s.selected)
            .map(|s| s.name.clone())
            .collect();
        let mut grew = false;
        for (i, svc) in ws.services.iter().enumerate() {
            if out[i].selected {
                continue;
            }
            if let Some(d) = svc.depends_on.iter().find(|d| selected.contains(*d)) {
                out[i].selected = true;
                out[i].reasons = vec![format!("builds FROM {d}, which is selected")];
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }

    // Input digests, dependencies first.
    let shared_ids: Vec<String> = ws
        .settings
        .shared_paths
        .iter()
        .map(|g| {
            format!(
                "{g} {}",
                head.id(literal_prefix(g))
                    .map_or("-".into(), |i| i.to_string())
            )
        })
        .collect();
    let mut pending: Vec<usize> = (0..ws.services.len()).collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|&i| {
            let svc = &ws.services[i];
            if svc.depends_on.iter().any(|d| !digests.contains_key(d)) {
                return true;
            }
            let (pkg, crate_dirs) = match rust.get(svc.name.as_str()) {
                Some((p, d)) => (Some(p), d.as_slice()),
                None => (None, &[][..]),
            };
            let lock_entries =
                pkg.and_then(|pkg| head_lock.as_ref().and_then(|l| l.reachable(pkg)));
            let d = input_digest(
                svc,
                &head,
                crate_dirs,
                lock_entries.as_ref(),
                &shared_ids,
                &digests,
                &wt_paths,
            );
            digests.insert(svc.name.clone(), d.clone());
            out[i].input_digest = Some(d);
            false
        });
        if pending.len() == before {
            break; // a cycle; refused when the config was read
        }
    }

    // Services the change removed: their files are among the changed paths.
    if let Some(b) = &base {
        let gone: BTreeSet<&str> = paths
            .iter()
            .filter_map(|p| p.strip_prefix("services/")?.split_once('/').map(|(n, _)| n))
            .filter(|n| !ws.services.iter().any(|s| s.name == *n))
            .collect();
        for name in gone {
            let dir = Path::new("services").join(name);
            if b.is_file(&dir.join("Dockerfile")) || b.is_file(&dir.join("service.toml")) {
                out.push(ServiceChange {
                    name: name.to_string(),
                    selected: false,
                    reasons: vec![format!("removed: services/{name} is gone at head")],
                    input_digest: None,
                    removed: true,
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Report {
        base: range.base.map(|b| b.to_string()),
        head: Some(range.head.to_string()),
        comparison: range.how,
        working_tree: range.working_tree,
        changed_paths: paths.len(),
        services: out,
    })
}

/// Everything of one service that a path can hit.
struct ServiceInputs {
    dir: String,
    dockerfile: String,
    context: String,
    /// COPY/ADD sources, when the context reaches outside the service directory.
    sources: Option<Vec<String>>,
    ignore: Ignore,
    watch: Vec<(String, globset::GlobMatcher)>,
}

/// Files that configure the build itself: they count even when `.dockerignore` hides them.
const CONFIG_FILES: &[&str] = &["service.toml", "VERSION", ".dockerignore"];

impl ServiceInputs {
    fn read(svc: &Service, head: &Head) -> Result<ServiceInputs> {
        let dir = svc.dir.display().to_string();
        let context = svc.context.display().to_string();
        let dockerfile = svc.dockerfile.display().to_string();
        let within = |p: &str, d: &str| d.is_empty() || p == d || p.starts_with(&format!("{d}/"));
        let sources = if within(&context, &dir) {
            None
        } else {
            head.read(&dockerfile)
                .map(|t| dockerfile::parse(&t).sources)
        };
        let ignore_path = if context.is_empty() {
            ".dockerignore".to_string()
        } else {
            format!("{context}/.dockerignore")
        };
        let ignore = match head.read(&ignore_path) {
            Some(text) => Ignore::parse(&text).with_context(|| ignore_path.clone())?,
            None => Ignore::default(),
        };
        let watch = svc
            .watch
            .iter()
            .map(|g| Ok((g.clone(), dockerfile::glob(g)?)))
            .collect::<Result<Vec<_>, globset::Error>>()?;
        Ok(ServiceInputs {
            dir,
            dockerfile,
            context,
            sources,
            ignore,
            watch,
        })
    }

    /// The path relative to the context, when it is inside it.
    fn in_context<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.context.is_empty() {
            return Some(path);
        }
        path.strip_prefix(&self.context)?.strip_prefix('/')
    }

    /// The reasons these paths select the service, and the `.dockerignore`d paths that did not.
    fn reasons(&self, paths: &[String], crate_dirs: &[String]) -> (Vec<String>, Vec<String>) {
        let mut own = Vec::new();
        let mut copied = Vec::new();
        let mut watched = Vec::new();
        let mut crates: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
        let mut ignored = Vec::new();
        for p in paths {
            let in_dir_rel = p
                .strip_prefix(self.dir.as_str())
                .and_then(|r| r.strip_prefix('/'));
            let in_dir = in_dir_rel.is_some();
            let is_config = in_dir_rel.is_some_and(|r| CONFIG_FILES.contains(&r));
            // Only paths that could select the service are checked against .dockerignore.
            let relevant = in_dir || self.sources.is_some();
            let hidden = relevant
                && self
                    .in_context(p)
                    .is_some_and(|rel| self.ignore.excludes(rel));
            if p == &self.dockerfile || is_config {
                own.push(p);
            } else if in_dir {
                if hidden {
                    ignored.push(p.clone());
                } else {
                    own.push(p);
                }
            } else if let (Some(sources), Some(rel)) = (&self.sources, self.in_context(p)) {
                if dockerfile::copies(sources, rel) {
                    if hidden {
                        ignored.push(p.clone());
                    } else {
                        copied.push(p);
                    }
                }
            }
            if let Some((g, _)) = self.watch.iter().find(|(_, m)| m.is_match(p.as_str())) {
                watched.push((g.as_str(), p));
            }
            if let Some(d) = crate_dirs.iter().find(|d| {
                p.strip_prefix(d.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            }) {
                crates.entry(d.as_str()).or_default().push(p);
            }
        }
        let mut reasons = Vec::new();
        if !own.is_empty() {
            reasons.push(format!("changed: {}", list(&own)));
        }
        if !copied.is_empty() {
            reasons.push(format!("COPY source changed: {}", list(&copied)));
        }
        for (d, ps) in crates {
            reasons.push(format!("dependency {d} changed: {}", list(&ps)));
        }
        if !watched.is_empty() {
            let ps: Vec<&String> = watched.iter().map(|(_, p)| *p).collect();
            reasons.push(format!("watched ({}): {}", watched[0].0, list(&ps)));
        }
        (reasons, ignored)
    }
}

/// Directories of the workspace packages `pkg` depends on, transitively (not its own).
fn dependency_dirs(pkg: &str, pkgs: &[Package]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = pkgs
        .iter()
        .find(|p| p.name == pkg)
        .map(|p| p.deps.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(n) = stack.pop() {
        if n == pkg || !seen.insert(n) {
            continue;
        }
        if let Some(p) = pkgs.iter().find(|p| p.name == n) {
            stack.extend(p.deps.iter().map(String::as_str));
        }
    }
    let mut dirs: Vec<String> = seen
        .iter()
        .filter_map(|n| pkgs.iter().find(|p| p.name == *n))
        .map(|p| p.dir.display().to_string())
        .collect();
    dirs.sort();
    dirs
}

/// The root manifest's `[workspace] members` globs (none when it has none).
fn workspace_members(manifest: Option<&str>) -> globset::GlobSet {
    let members: Vec<String> = manifest
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("workspace")?.get("members")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.as_str().map(|s| s.trim_end_matches('/').to_string()))
        .collect();
    glob_set(&members).unwrap_or_else(|_| globset::GlobSet::empty())
}

/// Up to three paths, then how many more.
fn list<S: AsRef<str>>(paths: &[S]) -> String {
    let mut shown: Vec<&str> = paths.iter().take(3).map(|p| p.as_ref()).collect();
    let more = paths.len().saturating_sub(3);
    let more_text = format!("and {more} more");
    if more > 0 {
        shown.push(&more_text);
    }
    shown.join(", ")
}

fn glob_set(globs: &[String]) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        b.add(dockerfile::glob_pattern(g).with_context(|| format!("bad glob `{g}`"))?);
    }
    Ok(b.build()?)
}

/// The directory part of a glob before its first wildcard (`docs/api/**` → `docs/api`).
fn literal_prefix(glob: &str) -> &str {
    let end = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    match glob[..end].rfind('/') {
        Some(i) if end < glob.len() => &glob[..i],
        _ if end < glob.len() => "",
        _ => glob,
    }
}

/// What changed in the root manifest that matters to every service: anything but
/// `[workspace] members` and `exclude` (the image config counts: it sets tags and labels).
fn root_manifest_change(old: Option<String>, new: Option<String>) -> Option<String> {
    let parse = |t: Option<String>| -> Option<toml::Table> { t.and_then(|t| t.parse().ok()) };
    let (Some(mut old), Some(mut new)) = (parse(old), parse(new)) else {
        return Some("global: Cargo.toml changed (and cannot be compared)".into());
    };
    for t in [&mut old, &mut new] {
        if let Some(toml::Value::Table(w)) = t.get_mut("workspace") {
            w.remove("members");
            w.remove("exclude");
        }
    }
    let mut sections: Vec<String> = Vec::new();
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for k in keys {
        match (old.get(k), new.get(k)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) if a != b => {
                let sub: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for s in sub {
                    if a.get(s) != b.get(s) {
                        sections.push(format!("[{k}.{s}]"));
                    }
                }
            }
            (a, b) if a != b => sections.push(format!("[{k}]")),
            _ => {}
        }
    }
    if sections.is_empty() {
        None
    } else {
        Some(format!(
            "global: Cargo.toml {} changed",
            sections.join(", ")
        ))
    }
}

/// A content key: object ids at head of everything the service is built from, its build
/// settings, its locked dependencies and the digests of the services it builds on.
fn input_digest(
    svc: &Service,
    head: &Head,
    crate_dirs: &[String],
    lock_entries: Option<&BTreeSet<String>>,
    shared: &[String],
    done: &BTreeMap<String, String>,
    wt_paths: &BTreeSet<String>,
) -> String {
    let mut h = Sha256::new();
    let mut line = |s: String| {
        h.update(s.as_bytes());
        h.update(b"\n");
    };
    let id = |p: &str| head.id(p).map_or("-".to_string(), |i| i.to_string());
    let dir = svc.dir.display().to_string();
    let context = svc.context.display().to_string();
    let dockerfile = svc.dockerfile.display().to_string();
    line(format!("dockerfile {dockerfile} {}", id(&dockerfile)));
    line(format!("dir {dir} {}", id(&dir)));
    let mut roots = vec![dir.clone(), dockerfile.clone()];
    if context != dir && !context.starts_with(&format!("{dir}/")) {
        let sources = head
            .read(&dockerfile)
            .map(|t| dockerfile::parse(&t).sources)
            .unwrap_or_default();
        for s in sources {
            let p = if context.is_empty() {
                s.clone()
            } else {
                format!("{context}/{s}")
            };
            let p = literal_prefix(&p).to_string();
            line(format!("source {s} {}", id(&p)));
            roots.push(p);
        }
        line(format!(
            "dockerignore {}",
            id(&format!("{context}/.dockerignore"))
        ));
    }
    for g in &svc.watch {
        let p = literal_prefix(g).to_string();
        line(format!("watch {g} {}", id(&p)));
        roots.push(p);
    }
    for d in crate_dirs {
        line(format!("crate {d} {}", id(d)));
        roots.push(d.clone());
    }
    if let Some(entries) = lock_entries {
        for e in entries {
            line(format!("lock {e}"));
        }
    }
    for s in shared {
        line(format!("shared {s}"));
    }
    line(format!("platforms {}", svc.platforms.join(",")));
    line(format!("target {}", svc.target.as_deref().unwrap_or("-")));
    for (k, v) in &svc.build_args {
        line(format!("arg {k}={v}"));
    }
    for d in &svc.depends_on {
        line(format!(
            "depends {d} {}",
            done.get(d).map_or("-", String::as_str)
        ));
    }
    // Local edits not yet committed, inside any of the roots above.
    for p in wt_paths {
        if roots
            .iter()
            .any(|r| r.is_empty() || p == r || p.starts_with(&format!("{r}/")))
        {
            let content = git2::Oid::hash_file(git2::ObjectType::Blob, head.root.join(p))
                .map_or("deleted".to_string(), |i| i.to_string());
            line(format!("worktree {p} {content}"));
        }
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests;
