//! What change detection found for every service at the last state it read, kept in the git
//! directory (`slipway/changed-memo.json`: never in the working tree, never shared), so the
//! next call recomputes only what a change since then can reach. It is never trusted
//! blindly:
//!
//! - A memo written by another binary, for another workspace or environment is ignored.
//! - The paths that differ between its state and the one asked for are read from git (tree
//!   diff, plus the working-tree paths of both). Any of them that shapes the configuration or
//!   the cargo graph (`Cargo.toml`, `Cargo.lock`, `service.toml`, a path in `services/`
//!   outside a known service, a service's own Dockerfile) means a full evaluation.
//! - Each service keeps two sets of paths, each the paths its inputs are read at or below:
//!   its *shape* (everything but `watch`/`shared_paths` globs: what decides its components,
//!   and their content) and its *reach* (the shape plus the globs' directories). A context
//!   counts whole, a glob from its literal directory: wider than the fast path's test.
//! - A service whose shape a changed path touches (at, below or above) is evaluated again,
//!   with what builds on it. One whose reach only is touched keeps its components: only its
//!   glob fingerprints and the digests of what it builds on are read again ("light").
//!   Every other service keeps its entry.
//! - A service evaluated again that now builds on other services means a full evaluation.
//!
//! `--exhaustive` neither reads nor writes it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::PathBuf;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::inputs::{Component, Kind, Reader, Source};
use super::spec::{rp, Owner, Spec};
use crate::globs::within;

const FORMAT: u32 = 3;

/// The file: `slipway-changed-memo <length of the header>`, a newline, the header (JSON), a
/// newline, then each service's fingerprints (JSON), read only where needed.
const MAGIC: &str = "slipway-changed-memo";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    key: String,
    tree: String,
    overlay: Vec<String>,
    paths: Vec<String>,
    services: BTreeMap<String, Entry>,
    /// Where each service's fingerprints are (offset, length) after the header, in
    /// `services` order.
    fps: Vec<(u64, u32)>,
}

/// Where a memo's fingerprints are.
#[derive(Debug)]
enum Fps {
    /// In the file, after the header: read a service at a time.
    File {
        file: std::fs::File,
        start: u64,
        at: HashMap<String, (u64, u32)>,
        /// All of them, once many are wanted (a memo written again).
        all: std::cell::OnceCell<Option<Vec<u8>>>,
    },
    /// In memory (a memo about to be written).
    Text {
        text: String,
        at: HashMap<String, Range<usize>>,
    },
}

impl Fps {
    /// A service's fingerprints; `bulk`: many will be wanted, read them all at once.
    fn raw(&self, name: &str, bulk: bool) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        match self {
            Fps::File {
                file,
                start,
                at,
                all,
            } => {
                let (off, len) = *at.get(name)?;
                let range = usize::try_from(off).ok()?..usize::try_from(off).ok()? + len as usize;
                if bulk || all.get().is_some() {
                    let all = all.get_or_init(|| {
                        let mut f = file;
                        f.seek(SeekFrom::Start(*start)).ok()?;
                        let mut buf = Vec::new();
                        f.read_to_end(&mut buf).ok()?;
                        Some(buf)
                    });
                    return String::from_utf8(all.as_ref()?.get(range)?.to_vec()).ok();
                }
                let mut buf = vec![0; len as usize];
                #[cfg(unix)]
                {
                    use std::os::unix::fs::FileExt;
                    file.read_exact_at(&mut buf, start + off).ok()?;
                }
                #[cfg(not(unix))]
                {
                    let mut f = file;
                    f.seek(SeekFrom::Start(start + off)).ok()?;
                    f.read_exact(&mut buf).ok()?;
                }
                String::from_utf8(buf).ok()
            }
            Fps::Text { text, at } => text.get(at.get(name)?.clone()).map(String::from),
        }
    }
}

#[derive(Debug)]
pub struct Memo {
    /// Format, binary, workspace and environment; a memo with another key is ignored.
    pub key: String,
    /// The commit tree read, and the working-tree paths that were laid over it.
    pub tree: String,
    pub overlay: Vec<String>,
    /// Repository-relative paths services read at or below; `Entry::reach`/`shape` index
    /// into it.
    pub paths: Vec<String>,
    pub services: BTreeMap<String, Entry>,
    /// Each service's fingerprints, as JSON.
    fps: Fps,
    /// Fingerprints parsed so far.
    parsed: RefCell<HashMap<String, Rc<BTreeMap<String, String>>>>,
}

/// One service at the memo's state (short names: the file is read on every call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Repository-relative.
    #[serde(rename = "d")]
    pub dir: String,
    #[serde(rename = "h")]
    pub digest: String,
    /// As reported (widening, implicit dependencies).
    #[serde(rename = "n", default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Services it builds on, and why.
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<(String, String)>,
    /// Its Dockerfile reads images (of other services, possibly).
    #[serde(rename = "i", default, skip_serializing_if = "std::ops::Not::not")]
    pub images: bool,
    /// Its Dockerfile has ONBUILD instructions.
    #[serde(rename = "o", default, skip_serializing_if = "std::ops::Not::not")]
    pub onbuild: bool,
    /// Its image: the repository, and the registries.
    #[serde(rename = "r")]
    pub repository: String,
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<String>,
    /// Indexes into `Memo::paths`.
    #[serde(rename = "a")]
    pub reach: Vec<u32>,
    #[serde(rename = "s")]
    pub shape: Vec<u32>,
}

impl Entry {
    pub fn owner<'a>(&'a self, name: &'a str) -> Owner<'a> {
        Owner {
            name,
            repository: &self.repository,
            registries: &self.registries,
        }
    }
}

/// What a service's entry is made of when a memo is written.
pub struct Record {
    pub entry: Entry,
    pub reach: BTreeSet<String>,
    pub shape: BTreeSet<String>,
    /// Its fingerprints, as JSON.
    pub fps: String,
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

/// The memo, when there is a whole one with this key.
pub fn load(repo: &git2::Repository, key: &str) -> Option<Memo> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(file(repo)).ok()?;
    let size = file.metadata().ok()?.len();
    let mut r = std::io::BufReader::new(&file);
    let mut first = String::new();
    r.read_line(&mut first).ok()?;
    let len: u64 = first.trim_end().strip_prefix(MAGIC)?.trim().parse().ok()?;
    let mut text = vec![0; usize::try_from(len).ok()?];
    r.read_exact(&mut text).ok()?;
    let header: Header = serde_json::from_slice(&text).ok()?;
    if header.key != key || header.fps.len() != header.services.len() {
        return None;
    }
    let start = first.len() as u64 + len + 1;
    // A file cut short is no memo.
    if header
        .fps
        .iter()
        .any(|(off, n)| start + off + u64::from(*n) > size)
    {
        return None;
    }
    let at = header
        .services
        .keys()
        .cloned()
        .zip(header.fps.iter().copied())
        .collect();
    drop(r);
    Some(Memo {
        key: header.key,
        tree: header.tree,
        overlay: header.overlay,
        paths: header.paths,
        services: header.services,
        fps: Fps::File {
            file,
            start,
            at,
            all: std::cell::OnceCell::new(),
        },
        parsed: RefCell::default(),
    })
}

/// Writes the memo (through a temporary file, so a reader never sees half of it). A memo
/// that cannot be written only costs the next call its speed.
pub fn save(repo: &git2::Repository, memo: &Memo) {
    let path = file(repo);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut body = String::new();
    let mut fps = Vec::with_capacity(memo.services.len());
    for name in memo.services.keys() {
        let raw = memo.fps.raw(name, true).unwrap_or_else(|| "{}".into());
        fps.push((body.len() as u64, raw.len() as u32));
        body.push_str(&raw);
        body.push('\n');
    }
    let header = Header {
        key: memo.key.clone(),
        tree: memo.tree.clone(),
        overlay: memo.overlay.clone(),
        paths: memo.paths.clone(),
        services: memo.services.clone(),
        fps,
    };
    let Ok(head) = serde_json::to_string(&header) else {
        return;
    };
    let text = format!("{MAGIC} {}\n{head}\n{body}", head.len());
    let tmp = dir.join(format!("changed-memo.{}.tmp", std::process::id()));
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

/// A component whose content never decides the spec: a `watch` or `shared_paths` glob.
fn is_glob(c: &Component) -> bool {
    matches!(c.source, Source::Glob(_))
}

/// `(reach, shape)` of a spec: the paths its inputs are read at or below, with and without
/// its globs (see the module comment).
pub fn reach(spec: &Spec) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut shape = BTreeSet::new();
    let mut globs = BTreeSet::new();
    shape.insert(spec.dir.clone());
    for c in &spec.components {
        match &c.source {
            Source::Path(p) => {
                shape.insert(p.clone());
            }
            Source::Filtered { root, .. } => {
                shape.insert(root.clone());
            }
            Source::Glob(p) => {
                globs.insert(p.literal_prefix().to_string());
            }
            Source::Value(_) => {}
        }
        shape.extend(c.defined_by.iter().cloned());
    }
    let mut reach = shape.clone();
    reach.extend(globs);
    (minimal(reach), minimal(shape))
}

/// Less every path below another of the set: whatever touches it touches the other.
fn minimal(mut set: BTreeSet<String>) -> BTreeSet<String> {
    if set.contains("") {
        return [String::new()].into();
    }
    let below: Vec<String> = set
        .iter()
        .filter(|p| crate::globs::ancestors(p).skip(1).any(|a| set.contains(a)))
        .cloned()
        .collect();
    for p in below {
        set.remove(&p);
    }
    set
}

/// `path` is at, below or above `prefix`.
pub fn touches(path: &str, prefix: &str) -> bool {
    within(path, prefix) || within(prefix, path)
}

impl Memo {
    /// A memo of `records`.
    pub fn new(
        key: String,
        tree: String,
        overlay: Vec<String>,
        records: BTreeMap<String, Record>,
    ) -> Memo {
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut paths: Vec<String> = Vec::new();
        let mut intern = |set: BTreeSet<String>| -> Vec<u32> {
            set.into_iter()
                .map(|p| {
                    *index.entry(p.clone()).or_insert_with(|| {
                        paths.push(p);
                        (paths.len() - 1) as u32
                    })
                })
                .collect()
        };
        let mut services = BTreeMap::new();
        let mut at = HashMap::new();
        let mut text = String::new();
        for (name, r) in records {
            let mut entry = r.entry;
            entry.reach = intern(r.reach);
            entry.shape = intern(r.shape);
            services.insert(name.clone(), entry);
            at.insert(name, text.len()..text.len() + r.fps.len());
            text.push_str(&r.fps);
        }
        Memo {
            key,
            tree,
            overlay,
            paths,
            services,
            fps: Fps::Text { text, at },
            parsed: RefCell::default(),
        }
    }

    fn set(&self, ids: &[u32]) -> BTreeSet<String> {
        ids.iter()
            .filter_map(|i| self.paths.get(*i as usize).cloned())
            .collect()
    }

    /// A service's `entry` (this memo's, or one taken from it) as a record, to be written
    /// again.
    pub fn record(&self, name: &str, entry: &Entry) -> Option<Record> {
        Some(Record {
            entry: entry.clone(),
            reach: self.set(&entry.reach),
            shape: self.set(&entry.shape),
            fps: self.fps.raw(name, true)?,
        })
    }

    /// A service's fingerprints at the memo's state (each parsed once).
    pub fn fps(&self, name: &str) -> Option<Rc<BTreeMap<String, String>>> {
        if let Some(f) = self.parsed.borrow().get(name) {
            return Some(Rc::clone(f));
        }
        let f: Rc<BTreeMap<String, String>> =
            Rc::new(serde_json::from_str(&self.fps.raw(name, false)?).ok()?);
        self.parsed
            .borrow_mut()
            .insert(name.to_string(), Rc::clone(&f));
        Some(f)
    }

    /// Services whose reach (`shape: false`) or shape (`true`) some of `changed` touches.
    pub fn reached(&self, changed: &[String], shape: bool) -> BTreeSet<String> {
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
                let ids = if shape { &e.shape } else { &e.reach };
                ids.iter()
                    .any(|i| hit.get(*i as usize).copied().unwrap_or(true))
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// `seeds` and every service that builds on one of them, transitively.
    pub fn with_dependents(&self, seeds: BTreeSet<String>) -> BTreeSet<String> {
        with_dependents(&self.services, seeds)
    }

    /// The service directories, for [`structural`].
    pub fn dirs(&self) -> Vec<&str> {
        self.services.values().map(|e| e.dir.as_str()).collect()
    }
}

/// `seeds` and every service of `entries` that builds on one of them, transitively.
pub fn with_dependents(
    entries: &BTreeMap<String, Entry>,
    seeds: BTreeSet<String>,
) -> BTreeSet<String> {
    let mut out = seeds;
    loop {
        let before = out.len();
        for (name, e) in entries {
            if e.deps.iter().any(|(d, _)| out.contains(d)) {
                out.insert(name.clone());
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// A `watch`/`shared_paths` component from its fingerprint key (`watch libs/a/**`), as the
/// spec would have built it; `None` for other keys.
pub fn glob_component(key: &str, ws: &str) -> Option<Component> {
    let (kind, g) = if let Some(g) = key.strip_prefix("watch ") {
        (Kind::Watch, g)
    } else {
        (Kind::Shared, key.strip_prefix("shared ")?)
    };
    let p = crate::globs::compile(&rp(ws, std::path::Path::new(g))).ok()?;
    Some(Component::new(key, kind, Source::Glob(p)))
}

/// A light service at another state: its fingerprints at the memo's state (`old`) with the
/// globs some of `touched` reaches read again from `reader`, less what it builds on (the
/// caller adds their digests at that state). Also the spec that explains them: its
/// directory, its ONBUILD, and its glob components.
pub fn light(
    old: &BTreeMap<String, String>,
    entry: &Entry,
    touched: &[String],
    reader: &mut Reader,
    ws: &str,
    globs: &mut HashMap<String, Option<Component>>,
) -> (BTreeMap<String, String>, Spec) {
    let mut spec = Spec {
        dir: entry.dir.clone(),
        onbuild: entry.onbuild,
        ..Spec::default()
    };
    let mut fps = BTreeMap::new();
    for (key, value) in old {
        if key.starts_with("from ") {
            continue;
        }
        let mut value = value.clone();
        let c = globs
            .entry(key.clone())
            .or_insert_with(|| glob_component(key, ws));
        if let Some(c) = c.clone() {
            if let Source::Glob(p) = &c.source {
                if touched.iter().any(|t| touches(t, p.literal_prefix())) {
                    value = reader.fingerprint(&c);
                }
            }
            spec.components.push(c);
        }
        fps.insert(key.clone(), value);
    }
    debug_assert!(spec.components.iter().all(is_glob));
    (fps, spec)
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
    fn minimal_keeps_only_the_outermost_paths() {
        let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
        assert_eq!(
            minimal(set(&["a", "a/b", "a/b/c", "ab", "a-b/c", "x/y"])),
            set(&["a", "ab", "a-b/c", "x/y"])
        );
        assert_eq!(minimal(set(&["", "a"])), set(&[""]));
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
            repository: dir.into(),
            registries: vec![],
            reach: vec![],
            shape: vec![],
        };
        let record = |e: Entry, reach: &[&str], shape: &[&str]| Record {
            entry: e,
            reach: reach.iter().map(|s| s.to_string()).collect(),
            shape: shape.iter().map(|s| s.to_string()).collect(),
            fps: "{}".into(),
        };
        let mut records = BTreeMap::new();
        records.insert(
            "api".to_string(),
            record(
                entry("services/api", &[]),
                &["services/api", "libs/a"],
                &["services/api"],
            ),
        );
        records.insert(
            "web".to_string(),
            record(
                entry("services/web", &["api"]),
                &["services/web"],
                &["services/web"],
            ),
        );
        records.insert(
            "all".to_string(),
            record(entry("services/all", &[]), &[""], &[""]),
        );
        let m = Memo::new("k".into(), "t".into(), vec![], records);
        let names = |v: BTreeSet<String>| v.into_iter().collect::<Vec<_>>().join(" ");
        assert_eq!(names(m.reached(&["libs/a/x.rs".into()], false)), "all api");
        assert_eq!(names(m.reached(&["libs/a/x.rs".into()], true)), "all");
        // A changed directory above a reach (a link replaced by a tree) touches it.
        assert_eq!(names(m.reached(&["libs".into()], false)), "all api");
        assert_eq!(names(m.reached(&["libs/b/x.rs".into()], false)), "all");
        assert_eq!(names(m.reached(&[], false)), "");
        assert_eq!(
            names(m.with_dependents(["api".to_string()].into())),
            "api web"
        );
        let web = m.services["web"].clone();
        assert_eq!(
            m.record("web", &web).unwrap().reach,
            ["services/web".to_string()].into()
        );
    }
}
