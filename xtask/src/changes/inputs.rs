//! A service's inputs as data: named components (its build context after `.dockerignore`
//! and the Dockerfile's sources, the Dockerfile, crates, locked packages, settings, toolchain,
//! watched paths, the images it builds FROM), each with a fingerprint read from a
//! [`Snapshot`]. The input digest is a hash over the fingerprints; two states of a service
//! differ exactly where their components do, and that difference is the reason it is picked.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::snapshot::{Item, Snapshot, GITLINK};
use crate::dockerfile::Ignore;
use crate::globs::{within, Pattern};

/// Where a component's content comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file or a whole tree, as git stores it (a submodule by its commit).
    Path(String),
    /// The files under `root` that `filter` keeps (a build context).
    Filtered { root: String, filter: Arc<Filter> },
    /// The files a pattern matches (`watch`, `shared_paths`).
    Glob(Arc<Pattern>),
    /// A value (settings, locked packages, versions).
    Value(String),
}

/// Which files of a build context a build reads.
#[derive(Debug, Default)]
pub struct Filter {
    pub ignore: Ignore,
    /// The Dockerfile's sources; `None` = the whole context.
    pub sources: Option<Vec<Arc<Pattern>>>,
}

impl Filter {
    pub fn keeps(&self, rel: &str) -> bool {
        !self.ignore.excludes(rel)
            && self
                .sources
                .as_ref()
                .is_none_or(|s| s.iter().any(|p| p.covers(rel)))
    }

    /// Some path strictly below the directory `rel` could be kept.
    pub fn may_keep_below(&self, rel: &str) -> bool {
        let sourced = self
            .sources
            .as_ref()
            .is_none_or(|s| s.iter().any(|p| p.covers(rel) || p.may_match_below(rel)));
        sourced && (!self.ignore.excludes(rel) || self.ignore.has_exceptions())
    }

    /// Everything below the directory `rel` is kept (it can be taken by its tree id).
    fn keeps_all_below(&self, rel: &str) -> bool {
        self.keeps(rel) && !self.ignore.may_match_below(rel)
    }
}

/// How a differing component is worded in a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The build context (in the service directory).
    Context,
    /// The build context outside the service directory: COPY sources.
    Copied,
    Dockerfile,
    Ignore,
    /// A path crate the binary compiles.
    Crate,
    Lock,
    Setting,
    Version,
    Toolchain,
    Manifest,
    Watch,
    Shared,
    /// A `.gitattributes` that decides how checked-out files look.
    Attributes,
}

#[derive(Debug, Clone)]
pub struct Component {
    /// Unique within a service; also the line's label in the digest.
    pub key: String,
    pub kind: Kind,
    pub source: Source,
    /// Files that define this component (a change there may change it).
    pub defined_by: Vec<String>,
}

impl Component {
    pub fn new(key: impl Into<String>, kind: Kind, source: Source) -> Component {
        Component {
            key: key.into(),
            kind,
            source,
            defined_by: Vec::new(),
        }
    }

    pub fn defined_by(mut self, paths: impl IntoIterator<Item = String>) -> Component {
        self.defined_by.extend(paths);
        self
    }

    /// A changed path (repository-relative) may change this component.
    pub fn covers(&self, path: &str) -> bool {
        if self.defined_by.iter().any(|d| d == path) {
            return true;
        }
        match &self.source {
            Source::Path(p) => within(path, p) || within(p, path),
            Source::Filtered { root, filter } => {
                if within(root, path) {
                    return true;
                }
                let Some(rel) = rel_to(path, root) else {
                    return false;
                };
                filter.keeps(rel) || filter.may_keep_below(rel)
            }
            Source::Glob(p) => p.covers(path) || p.may_match_below(path),
            Source::Value(_) => false,
        }
    }
}

/// `path` relative to `root` when it is inside it.
pub fn rel_to<'p>(path: &'p str, root: &str) -> Option<&'p str> {
    if root.is_empty() {
        return Some(path);
    }
    if path == root {
        return Some("");
    }
    path.strip_prefix(root)?.strip_prefix('/')
}

fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => dir.to_string(),
        (false, false) => format!("{dir}/{name}"),
    }
}

fn item_text(i: Option<Item>) -> String {
    i.map_or("-".to_string(), |i| format!("{:o} {}", i.mode, i.id))
}

/// Fingerprints of components in one snapshot, with the walks memoised (services share
/// crates, watched directories and contexts).
pub struct Reader<'s, 'r> {
    pub snap: &'s Snapshot<'r>,
    memo: HashMap<String, String>,
}

impl<'s, 'r> Reader<'s, 'r> {
    pub fn new(snap: &'s Snapshot<'r>) -> Self {
        Reader {
            snap,
            memo: HashMap::new(),
        }
    }

    pub fn fingerprint(&mut self, c: &Component) -> String {
        match &c.source {
            Source::Value(v) => v.clone(),
            Source::Path(p) => item_text(self.snap.item(p)),
            Source::Filtered { root, filter } => {
                let key = format!("\0F {root} {:p}", Arc::as_ptr(filter));
                if let Some(v) = self.memo.get(&key) {
                    return v.clone();
                }
                let v = match self.snap.item(root) {
                    Some(i) if i.is_tree() && filter.keeps_all_below("") => item_text(Some(i)),
                    Some(i) if i.is_tree() => {
                        let mut h = Sha256::new();
                        self.walk_filtered(root, "", filter, &mut h);
                        hex(h)
                    }
                    other => item_text(other),
                };
                self.memo.insert(key, v.clone());
                v
            }
            Source::Glob(p) => {
                // Services share globs: each distinct one is read once.
                if let Some(v) = self.memo.get(p.as_str()) {
                    return v.clone();
                }
                let v = if p.is_prefix() {
                    item_text(self.snap.item(p.literal_prefix()))
                } else {
                    let mut h = Sha256::new();
                    self.walk_glob(p, p.literal_prefix(), &mut h);
                    hex(h)
                };
                self.memo.insert(p.as_str().to_string(), v.clone());
                v
            }
        }
    }

    fn walk_filtered(&self, root: &str, rel_dir: &str, f: &Filter, h: &mut Sha256) {
        let abs_dir = join(root, rel_dir);
        for (name, item) in self.snap.entries(&abs_dir) {
            let rel = join(rel_dir, &String::from_utf8_lossy(&name));
            let line = |h: &mut Sha256, tag: &str| {
                h.update(tag.as_bytes());
                h.update(&name);
                h.update(format!(" {:o} {}\n", item.mode, item.id).as_bytes());
            };
            if item.is_tree() {
                if !f.may_keep_below(&rel) {
                    continue;
                }
                if f.keeps_all_below(&rel) {
                    line(h, "T ");
                } else {
                    h.update(b"D ");
                    h.update(&name);
                    h.update(b" {\n");
                    self.walk_filtered(root, &rel, f, h);
                    h.update(b"}\n");
                }
            } else if f.keeps(&rel) || (item.mode == GITLINK && f.may_keep_below(&rel)) {
                line(h, "F ");
            }
        }
    }

    fn walk_glob(&self, p: &Pattern, dir: &str, h: &mut Sha256) {
        for (name, item) in self.snap.entries(dir) {
            let path = join(dir, &String::from_utf8_lossy(&name));
            let matched = p.is_match(&path);
            if matched || (!item.is_tree() && item.mode == GITLINK && p.may_match_below(&path)) {
                h.update(path.as_bytes());
                h.update(format!(" {:o} {}\n", item.mode, item.id).as_bytes());
            } else if item.is_tree() && p.may_match_below(&path) {
                self.walk_glob(p, &path, h);
            }
        }
    }
}

fn hex(h: Sha256) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// The input digest over fingerprints (sorted by key).
pub fn digest(fingerprints: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(b"slipway inputs v2\n");
    for (k, v) in fingerprints {
        h.update(k.as_bytes());
        h.update(b"\t");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    format!("sha256:{}", hex(h))
}
