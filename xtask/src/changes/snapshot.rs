//! One state of the repository as change detection reads it: a commit's tree, plus — for
//! local builds — the working tree's changes laid over it. Paths are relative to the
//! repository root. Entries are (mode, object id) exactly as git would store them, and the id
//! of a directory holding uncommitted edits is computed the way `git commit` would compute it
//! (without writing anything), so an uncommitted edit and the same content committed read the
//! same.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result};
use git2::{ObjectType, Oid};

use crate::files::CommitTree;

pub const TREE: i32 = 0o040000;
pub const LINK: i32 = 0o120000;
pub const GITLINK: i32 = 0o160000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Item {
    pub id: Oid,
    pub mode: i32,
}

impl Item {
    pub fn is_tree(&self) -> bool {
        self.mode == TREE
    }
}

/// A working-tree file that differs from the commit: its raw path, and what it is now
/// (`None`: deleted).
struct Overlaid {
    raw: Vec<u8>,
    item: Option<Item>,
}

pub struct Snapshot<'r> {
    commit: CommitTree<'r>,
    workdir: Option<PathBuf>,
    overlay: BTreeMap<String, Overlaid>,
    /// Ids of directories that hold overlaid paths, computed once.
    dirs: RefCell<HashMap<String, Option<Item>>>,
    /// `item` answers.
    items: RefCell<HashMap<String, Option<Item>>>,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl<'r> Snapshot<'r> {
    /// The commit as it is.
    pub fn commit(repo: &'r git2::Repository, tree: git2::Tree<'r>) -> Snapshot<'r> {
        Snapshot {
            commit: CommitTree::new(repo, tree, String::new()),
            workdir: None,
            overlay: BTreeMap::new(),
            dirs: RefCell::new(HashMap::new()),
            items: RefCell::new(HashMap::new()),
        }
    }

    /// The commit with the working tree's changes (`paths`: raw repository-relative paths
    /// that differ: index, unstaged, untracked, submodules) laid over it.
    pub fn with_working_tree(
        repo: &'r git2::Repository,
        tree: git2::Tree<'r>,
        paths: &[Vec<u8>],
    ) -> Result<Snapshot<'r>> {
        let workdir = repo
            .workdir()
            .context("the repository has no working tree")?
            .to_path_buf();
        let mut overlay = BTreeMap::new();
        for raw in paths {
            let item = disk_item(repo, &workdir, raw)?;
            let key = String::from_utf8_lossy(raw).into_owned();
            overlay.insert(
                key,
                Overlaid {
                    raw: raw.clone(),
                    item,
                },
            );
        }
        Ok(Snapshot {
            commit: CommitTree::new(repo, tree, String::new()),
            workdir: Some(workdir),
            overlay,
            dirs: RefCell::new(HashMap::new()),
            items: RefCell::new(HashMap::new()),
        })
    }

    /// Some overlaid path is strictly below `dir`.
    fn touched_below(&self, dir: &str) -> bool {
        let start = format!("{dir}/");
        self.overlay
            .range(start.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&start))
    }

    /// Some overlaid path is `dir` or below it.
    fn touched(&self, dir: &str) -> bool {
        if self.overlay.is_empty() {
            return false;
        }
        if dir.is_empty() {
            return true;
        }
        let start = format!("{dir}/");
        self.overlay.contains_key(dir)
            || self
                .overlay
                .range(start.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&start))
    }

    /// What is at `path` (`""` = the root tree), looked up once.
    pub fn item(&self, path: &str) -> Option<Item> {
        if let Some(i) = self.items.borrow().get(path) {
            return *i;
        }
        let i = self.lookup(path);
        self.items.borrow_mut().insert(path.to_string(), i);
        i
    }

    fn lookup(&self, path: &str) -> Option<Item> {
        if let Some(o) = self.overlay.get(path) {
            // Gone as it was (a file or a link), but a directory with files is there now.
            if o.item.is_none() && self.touched_below(path) {
                return self.dir_item(path);
            }
            return o.item;
        }
        if self.touched(path) {
            return self.dir_item(path);
        }
        if path.is_empty() {
            return Some(Item {
                id: self.commit.tree.id(),
                mode: TREE,
            });
        }
        self.commit
            .raw_entry(path)
            .map(|(id, mode)| Item { id, mode })
    }

    /// The entries of the directory `dir`, sorted by raw name.
    pub fn entries(&self, dir: &str) -> Vec<(Vec<u8>, Item)> {
        let mut out: BTreeMap<Vec<u8>, Item> = BTreeMap::new();
        if self.commit.is_tree_at(dir) {
            for (name, id, mode) in self.commit.list(dir) {
                out.insert(name, Item { id, mode });
            }
        }
        if !self.touched(dir) {
            return out.into_iter().collect();
        }
        let start = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut children: Vec<(Vec<u8>, bool)> = Vec::new();
        for (k, o) in self.overlay.range(start.clone()..) {
            let Some(rest) = k.strip_prefix(&start) else {
                break;
            };
            let raw_rest = &o.raw[start.len()..];
            match rest.find('/') {
                None => children.push((raw_rest.to_vec(), true)),
                Some(_) => {
                    let i = raw_rest.iter().position(|b| *b == b'/').unwrap_or(0);
                    children.push((raw_rest[..i].to_vec(), false));
                }
            }
        }
        // A name both overlaid itself and with paths below (a link replaced by a directory)
        // is the directory.
        children.sort();
        children.dedup_by(|a, b| a.0 == b.0);
        for (name, direct) in children {
            let child = join(dir, &String::from_utf8_lossy(&name));
            let item = if direct && self.overlay.contains_key(&child) {
                self.lookup(&child)
            } else {
                self.dir_item(&child)
            };
            match item {
                Some(i) => out.insert(name, i),
                None => out.remove(&name),
            };
        }
        out.into_iter().collect()
    }

    /// A directory with overlaid paths below it, hashed as git would store it.
    fn dir_item(&self, dir: &str) -> Option<Item> {
        if let Some(i) = self.dirs.borrow().get(dir) {
            return *i;
        }
        let entries = self.entries(dir);
        let item = (!entries.is_empty()).then(|| Item {
            id: tree_id(&entries),
            mode: TREE,
        });
        self.dirs.borrow_mut().insert(dir.to_string(), item);
        item
    }

    /// `path` with every symbolic link along it followed (relative targets, inside the
    /// repository, at most 16 hops); `None` when a link leaves the repository or loops.
    /// Also every link passed through on the way (each decides where the path leads, so each
    /// is an input of what reads it), also when it fails.
    pub fn resolve_links(&self, path: &str) -> (Option<String>, Vec<String>) {
        let mut links: Vec<String> = Vec::new();
        let real = self.walk_links(path, &mut links);
        (real, links)
    }

    fn walk_links(&self, path: &str, links: &mut Vec<String>) -> Option<String> {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        let mut hops = 0;
        'walk: loop {
            for n in 1..=todo.len() {
                let here = todo[..n].join("/");
                match self.item(&here) {
                    Some(i) if i.mode == LINK => {
                        hops += 1;
                        links.push(here.clone());
                        let target = self.read_text(&here)?;
                        if hops > 16 || target.starts_with('/') {
                            return None;
                        }
                        // The link's directory, then its target, then the rest; folded.
                        let mut folded: Vec<String> = Vec::new();
                        let segments = todo[..n - 1]
                            .iter()
                            .cloned()
                            .chain(target.split('/').map(String::from))
                            .chain(todo[n..].iter().cloned());
                        for seg in segments {
                            match seg.as_str() {
                                "" | "." => {}
                                ".." => {
                                    folded.pop()?;
                                }
                                _ => folded.push(seg),
                            }
                        }
                        todo = folded;
                        continue 'walk;
                    }
                    Some(_) => {}
                    None => break 'walk,
                }
            }
            break;
        }
        Some(todo.join("/"))
    }

    /// The bytes of the file at `path`.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        if let (Some(o), Some(w)) = (self.overlay.get(path), &self.workdir) {
            if o.item.is_some_and(|i| i.mode == LINK) {
                let target = std::fs::read_link(w.join(raw_path(&o.raw))).ok()?;
                return Some(target.as_os_str().as_encoded_bytes().to_vec());
            }
            o.item?;
            return std::fs::read(w.join(raw_path(&o.raw))).ok();
        }
        let (id, mode) = self.commit.raw_entry(path)?;
        if mode == TREE || mode == GITLINK {
            return None;
        }
        self.commit
            .repo
            .find_blob(id)
            .ok()
            .map(|b| b.content().to_vec())
    }

    pub fn read_text(&self, path: &str) -> Option<String> {
        self.read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

#[cfg(unix)]
fn raw_path(raw: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(raw))
}

#[cfg(not(unix))]
fn raw_path(raw: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(raw).into_owned())
}

/// What the working tree holds at `raw`, as git would store it.
fn disk_item(
    repo: &git2::Repository,
    workdir: &std::path::Path,
    raw: &[u8],
) -> Result<Option<Item>> {
    let path = workdir.join(raw_path(raw));
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&path)?;
        let id = Oid::hash_object(ObjectType::Blob, target.as_os_str().as_encoded_bytes())?;
        return Ok(Some(Item { id, mode: LINK }));
    }
    if meta.is_dir() {
        // A submodule: its checked-out commit, or — with uncommitted changes inside — a key
        // over those changes too, so the digest moves with them.
        // A plain directory where git has a file or a link: what it holds is listed on its
        // own (untracked files); the path itself is no longer a file.
        let Ok(sub) = git2::Repository::open(&path) else {
            return Ok(None);
        };
        let head = sub.head()?.peel_to_commit()?.id();
        let changed = super::diff::working_tree_paths(&sub)?;
        if changed.is_empty() {
            return Ok(Some(Item {
                id: head,
                mode: GITLINK,
            }));
        }
        let mut key = format!("dirty submodule {head}\n").into_bytes();
        for p in changed {
            let f = path.join(raw_path(&p));
            let h = Oid::hash_file(ObjectType::Blob, &f).map_or("-".into(), |i| i.to_string());
            key.extend_from_slice(&p);
            key.extend_from_slice(format!(" {h}\n").as_bytes());
        }
        let id = Oid::hash_object(ObjectType::Blob, &key)?;
        return Ok(Some(Item { id, mode: GITLINK }));
    }
    let id = Oid::hash_file(ObjectType::Blob, &path)
        .with_context(|| format!("cannot hash {}", path.display()))?;
    #[cfg(unix)]
    let exec = {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    };
    #[cfg(not(unix))]
    let exec = false;
    let mode = if exec
        && repo
            .config()
            .and_then(|c| c.get_bool("core.filemode"))
            .unwrap_or(true)
    {
        0o100755
    } else {
        0o100644
    };
    Ok(Some(Item { id, mode }))
}

/// A tree object's id: entries in git's order (a directory sorts as `name/`).
fn tree_id(entries: &[(Vec<u8>, Item)]) -> Oid {
    let mut sorted: Vec<&(Vec<u8>, Item)> = entries.iter().collect();
    let key = |(n, i): &&(Vec<u8>, Item)| {
        let mut k = n.clone();
        if i.is_tree() {
            k.push(b'/');
        }
        k
    };
    sorted.sort_by_key(key);
    let mut body = Vec::new();
    for (name, item) in sorted {
        body.extend_from_slice(format!("{:o} ", item.mode).as_bytes());
        body.extend_from_slice(name);
        body.push(0);
        body.extend_from_slice(item.id.as_bytes());
    }
    Oid::hash_object(ObjectType::Tree, &body).expect("hashing a buffer cannot fail")
}

/// A snapshot as [`Files`](crate::files::Files) for loading the configuration, paths
/// relative to the workspace (`prefix`: `""` or `dir/`): what is there as git would commit it
/// (untracked files count, ignored ones do not, links are not followed).
pub struct SnapFiles<'s, 'r> {
    pub snap: &'s Snapshot<'r>,
    pub prefix: String,
}

impl SnapFiles<'_, '_> {
    fn at(&self, rel: &std::path::Path) -> String {
        let rel = rel.to_string_lossy();
        let rel = rel.trim_end_matches('/');
        let rel = if rel == "." { "" } else { rel };
        format!("{}{rel}", self.prefix)
            .trim_end_matches('/')
            .to_string()
    }
}

impl crate::files::Files for SnapFiles<'_, '_> {
    fn read(&self, rel: &std::path::Path) -> Result<Option<String>> {
        let path = self.at(rel);
        match self.snap.item(&path) {
            Some(i) if i.mode == LINK => Err(crate::files::linked(rel)),
            Some(i) if i.is_tree() || i.mode == GITLINK => Ok(None),
            Some(_) => Ok(self.snap.read_text(&path)),
            None => Ok(None),
        }
    }

    fn is_file(&self, rel: &std::path::Path) -> bool {
        self.snap
            .item(&self.at(rel))
            .is_some_and(|i| !i.is_tree() && i.mode != GITLINK)
    }

    fn is_dir(&self, rel: &std::path::Path) -> bool {
        self.snap.item(&self.at(rel)).is_some_and(|i| i.is_tree())
    }

    fn subdirs(&self, rel: &std::path::Path) -> Result<Vec<String>> {
        let dir = self.at(rel);
        if !self.is_dir(rel) {
            return Ok(Vec::new());
        }
        let mut out: Vec<String> = self
            .snap
            .entries(&dir)
            .into_iter()
            .filter(|(_, i)| i.is_tree())
            .filter_map(|(n, _)| String::from_utf8(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn commit_all(repo: &git2::Repository) -> Oid {
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        index.write_tree().unwrap()
    }

    #[test]
    fn overlaid_directories_hash_like_the_commit_would() {
        let d = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(d.path()).unwrap();
        write(d.path(), "a/b/c.txt", "one");
        write(d.path(), "a/keep.txt", "k");
        write(d.path(), "z.txt", "z");
        let first = commit_all(&repo);
        // Edit, add and delete in the working tree.
        write(d.path(), "a/b/c.txt", "two");
        write(d.path(), "a/new/n.txt", "n");
        std::fs::remove_file(d.path().join("z.txt")).unwrap();
        let paths: Vec<Vec<u8>> = ["a/b/c.txt", "a/new/n.txt", "z.txt"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let snap =
            Snapshot::with_working_tree(&repo, repo.find_tree(first).unwrap(), &paths).unwrap();
        let second = commit_all(&repo);
        let committed = Snapshot::commit(&repo, repo.find_tree(second).unwrap());
        for p in ["", "a", "a/b", "a/new", "a/b/c.txt", "a/keep.txt", "z.txt"] {
            assert_eq!(snap.item(p), committed.item(p), "{p}");
        }
        assert_eq!(snap.read_text("a/b/c.txt").as_deref(), Some("two"));
        assert_eq!(committed.read_text("a/b/c.txt").as_deref(), Some("two"));
        let names: Vec<String> = snap
            .entries("a")
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert_eq!(names, ["b", "keep.txt", "new"]);
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_resolve_inside_the_repository() {
        let d = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(d.path()).unwrap();
        write(d.path(), "a/real/app.conf", "x");
        std::os::unix::fs::symlink("real", d.path().join("a/config")).unwrap();
        std::os::unix::fs::symlink("../a/real/app.conf", d.path().join("a/file")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("a/abs")).unwrap();
        std::os::unix::fs::symlink("loop", d.path().join("a/loop")).unwrap();
        let tree = commit_all(&repo);
        let snap = Snapshot::commit(&repo, repo.find_tree(tree).unwrap());
        assert_eq!(
            snap.resolve_links("a/config/app.conf"),
            (
                Some("a/real/app.conf".to_string()),
                vec!["a/config".to_string()]
            )
        );
        assert_eq!(
            snap.resolve_links("a/loop").1.len(),
            17,
            "every hop of a loop until it gives up"
        );
        let resolve = |p: &str| snap.resolve_links(p).0;
        assert_eq!(
            resolve("a/config/app.conf").as_deref(),
            Some("a/real/app.conf")
        );
        assert_eq!(resolve("a/file").as_deref(), Some("a/real/app.conf"));
        assert_eq!(resolve("a/real").as_deref(), Some("a/real"));
        assert_eq!(resolve("a/missing/x").as_deref(), Some("a/missing/x"));
        assert_eq!(resolve("a/abs"), None, "absolute: outside the repository");
        assert_eq!(resolve("a/loop"), None, "a loop");
    }
}
