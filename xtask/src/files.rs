//! Where configuration and inputs are read from: the working tree on disk, or the tree of a
//! commit (so `changed --head REF` sees the services as they are at REF, with no file I/O), or
//! (change detection in a checkout) the commit with the working tree laid over it, as git
//! would commit it.
//!
//! All three read configuration the way git stores it: a configuration file that is a
//! symbolic link is refused (in a commit it is only its target's name), and a service
//! directory that is a link is not a service.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

pub trait Files {
    /// The text of `rel` (relative to the workspace root); `None` when there is no such file.
    fn read(&self, rel: &Path) -> Result<Option<String>>;
    fn is_file(&self, rel: &Path) -> bool;
    fn is_dir(&self, rel: &Path) -> bool;
    /// Names of the directories directly under `rel`, sorted; none when `rel` is missing.
    fn subdirs(&self, rel: &Path) -> Result<Vec<String>>;
}

/// The working tree.
pub struct Disk<'a> {
    pub root: &'a Path,
}

/// git's mode for a symbolic link.
const LINK: i32 = 0o120000;

/// The error for a configuration file that is a symbolic link.
pub fn linked(rel: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is a symbolic link: configuration is read as git stores it (a link is only the name of its target), so make it a regular file",
        rel.display()
    )
}

impl Files for Disk<'_> {
    fn read(&self, rel: &Path) -> Result<Option<String>> {
        if std::fs::symlink_metadata(self.root.join(rel)).is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(linked(rel));
        }
        match std::fs::read_to_string(self.root.join(rel)) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", rel.display())),
        }
    }

    fn is_file(&self, rel: &Path) -> bool {
        self.root.join(rel).is_file()
    }

    fn is_dir(&self, rel: &Path) -> bool {
        self.root.join(rel).is_dir()
    }

    fn subdirs(&self, rel: &Path) -> Result<Vec<String>> {
        let dir = self.root.join(rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        // The directory entry's own type: no extra `stat` per entry (a link to a directory is
        // not one: git stores it as a link).
        let mut out: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// A commit's tree, read through a cache of subtrees (libgit2 does not cache trees over 4 KB,
/// and most lookups go through the same few large directories).
pub struct CommitTree<'r> {
    pub repo: &'r git2::Repository,
    pub tree: git2::Tree<'r>,
    /// The workspace root relative to the repository root, with a trailing `/` (or empty).
    pub prefix: String,
    cache: RefCell<BTreeMap<String, git2::Tree<'r>>>,
}

impl<'r> CommitTree<'r> {
    pub fn new(repo: &'r git2::Repository, tree: git2::Tree<'r>, prefix: String) -> Self {
        CommitTree {
            repo,
            tree,
            prefix,
            cache: RefCell::new(BTreeMap::new()),
        }
    }

    fn full(&self, rel: &str) -> String {
        let rel = rel.trim_end_matches('/');
        let rel = if rel == "." { "" } else { rel };
        format!("{}{rel}", self.prefix)
            .trim_end_matches('/')
            .to_string()
    }

    /// The entry at `rel` (a tree or a blob): its id and whether it is a tree.
    pub fn entry(&self, rel: &str) -> Option<(git2::Oid, bool)> {
        let full = self.full(rel);
        if full.is_empty() {
            return Some((self.tree.id(), true));
        }
        let (dir, name) = full.rsplit_once('/').unwrap_or(("", &full));
        let t = self.tree_at(dir)?;
        let e = t.get_name(name)?;
        Some((e.id(), e.kind() == Some(git2::ObjectType::Tree)))
    }

    /// The entry at `rel` with its git file mode (blob, executable, link, tree, gitlink).
    pub fn raw_entry(&self, rel: &str) -> Option<(git2::Oid, i32)> {
        let full = self.full(rel);
        if full.is_empty() {
            return Some((self.tree.id(), 0o040000));
        }
        let (dir, name) = full.rsplit_once('/').unwrap_or(("", &full));
        let t = self.tree_at(dir)?;
        let e = t.get_name(name).or_else(|| {
            // A name that is not UTF-8 arrives here in its lossy form.
            t.iter()
                .find(|e| String::from_utf8_lossy(e.name_bytes()) == name)
        })?;
        Some((e.id(), e.filemode()))
    }

    /// `rel` is a directory in this commit.
    pub fn is_tree_at(&self, rel: &str) -> bool {
        self.tree_at(&self.full(rel)).is_some()
    }

    /// The entries directly under the directory `rel`: raw name, id, mode.
    pub fn list(&self, rel: &str) -> Vec<(Vec<u8>, git2::Oid, i32)> {
        match self.tree_at(&self.full(rel)) {
            Some(t) => t
                .iter()
                .map(|e| (e.name_bytes().to_vec(), e.id(), e.filemode()))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The tree at a repository-relative `dir` (`""` = the root), each level read once.
    fn tree_at(&self, dir: &str) -> Option<git2::Tree<'r>> {
        if dir.is_empty() {
            return Some(self.tree.clone());
        }
        if let Some(t) = self.cache.borrow().get(dir) {
            return Some(t.clone());
        }
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        let id = self
            .tree_at(parent)?
            .get_name(name)
            .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
            .map(|e| e.id())?;
        let tree = self.repo.find_tree(id).ok()?;
        self.cache
            .borrow_mut()
            .insert(dir.to_string(), tree.clone());
        Some(tree)
    }
}

fn rel_str(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

impl Files for CommitTree<'_> {
    fn read(&self, rel: &Path) -> Result<Option<String>> {
        if self
            .raw_entry(&rel_str(rel))
            .is_some_and(|(_, mode)| mode == LINK)
        {
            return Err(linked(rel));
        }
        match self.entry(&rel_str(rel)) {
            Some((id, false)) => {
                let blob = self.repo.find_blob(id)?;
                Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
            }
            _ => Ok(None),
        }
    }

    fn is_file(&self, rel: &Path) -> bool {
        matches!(self.entry(&rel_str(rel)), Some((_, false)))
    }

    fn is_dir(&self, rel: &Path) -> bool {
        matches!(self.entry(&rel_str(rel)), Some((_, true)))
    }

    fn subdirs(&self, rel: &Path) -> Result<Vec<String>> {
        let full = self.full(&rel_str(rel));
        let Some(t) = self.tree_at(&full) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<String> = t
            .iter()
            .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
            .filter_map(|e| e.name().ok().map(String::from))
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_and_commit_tree_agree() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("ws/services/api")).unwrap();
        std::fs::create_dir_all(r.join("ws/services/web")).unwrap();
        std::fs::write(r.join("ws/services/api/Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(r.join("ws/services/web/Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::write(r.join("ws/Cargo.toml"), "[workspace]\n").unwrap();
        // Links: to a directory (not a service directory), as a configuration file (refused).
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("api", r.join("ws/services/linked")).unwrap();
            std::os::unix::fs::symlink("../../Cargo.toml", r.join("ws/services/web/service.toml"))
                .unwrap();
        }
        let repo = git2::Repository::init(r).unwrap();
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let commit = CommitTree::new(&repo, tree, "ws/".into());
        let root = r.join("ws");
        let disk = Disk { root: &root };
        for files in [&disk as &dyn Files, &commit as &dyn Files] {
            assert_eq!(
                files.subdirs(Path::new("services")).unwrap(),
                ["api", "web"]
            );
            assert_eq!(
                files.subdirs(Path::new("nope")).unwrap(),
                Vec::<String>::new()
            );
            assert_eq!(
                files
                    .read(Path::new("services/web/Dockerfile"))
                    .unwrap()
                    .as_deref(),
                Some("FROM busybox\n")
            );
            assert_eq!(files.read(Path::new("services/web/VERSION")).unwrap(), None);
            assert!(files.is_file(Path::new("Cargo.toml")));
            assert!(!files.is_file(Path::new("services")));
            assert!(files.is_dir(Path::new("services/api")));
            assert!(files.is_dir(Path::new(".")));
            #[cfg(unix)]
            assert!(files
                .read(Path::new("services/web/service.toml"))
                .unwrap_err()
                .to_string()
                .contains("is a symbolic link"));
        }
        assert_eq!(
            commit.raw_entry("services/api/Dockerfile").map(|(_, m)| m),
            Some(0o100644)
        );
        assert!(commit.raw_entry("services/api/nope").is_none());
    }
}
