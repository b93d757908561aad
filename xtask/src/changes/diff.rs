//! Which paths differ between two commits, found by walking both trees together and descending
//! only into subtrees whose ids differ — so the cost follows the size of the change, not of the
//! repository (libgit2's tree-to-tree diff expands every subtree). Plus the working tree's
//! changes (index, unstaged, untracked-but-not-ignored) for local builds.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

/// One entry of a tree, as far as the comparison needs it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: git2::Oid,
    mode: i32,
    is_tree: bool,
}

fn entries(tree: Option<&git2::Tree>) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    if let Some(t) = tree {
        for e in t.iter() {
            out.insert(
                e.name_bytes().to_vec(),
                Entry {
                    id: e.id(),
                    mode: e.filemode(),
                    is_tree: e.kind() == Some(git2::ObjectType::Tree),
                },
            );
        }
    }
    out
}

/// Paths (with `/`) that differ between `old` and `new`: added, deleted, modified, mode
/// changes; a rename shows as both its old and its new path. Sorted.
pub fn changed_paths(
    repo: &git2::Repository,
    old: Option<&git2::Tree>,
    new: Option<&git2::Tree>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    walk(repo, old, new, "", &mut out)?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(
    repo: &git2::Repository,
    old: Option<&git2::Tree>,
    new: Option<&git2::Tree>,
    prefix: &str,
    out: &mut Vec<String>,
) -> Result<()> {
    let (a, b) = (entries(old), entries(new));
    let mut names: Vec<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (ea, eb) = (a.get(name).copied(), b.get(name).copied());
        if ea == eb {
            continue;
        }
        let path = format!("{prefix}{}", String::from_utf8_lossy(name));
        let tree_of = |e: Option<Entry>| -> Result<Option<git2::Tree>> {
            match e {
                Some(e) if e.is_tree => {
                    Ok(Some(repo.find_tree(e.id).with_context(|| {
                        format!("tree {} at {path} is missing", e.id)
                    })?))
                }
                _ => Ok(None),
            }
        };
        let (ta, tb) = (tree_of(ea)?, tree_of(eb)?);
        // A blob on either side is a changed path of its own.
        if ea.is_some_and(|e| !e.is_tree) || eb.is_some_and(|e| !e.is_tree) {
            out.push(path.clone());
        }
        if ta.is_some() || tb.is_some() {
            walk(repo, ta.as_ref(), tb.as_ref(), &format!("{path}/"), out)?;
        }
    }
    Ok(())
}

/// Paths the index and the working tree change against HEAD, untracked files included and
/// ignored ones not; a rename shows as both paths.
pub fn working_tree_paths(repo: &git2::Repository) -> Result<Vec<Vec<u8>>> {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(false)
        .exclude_submodules(false)
        .renames_head_to_index(false)
        .renames_index_to_workdir(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .context("cannot read the working tree status")?;
    let mut out: Vec<Vec<u8>> = statuses.iter().map(|s| s.path_bytes().to_vec()).collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo() -> (tempfile::TempDir, git2::Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        (dir, repo)
    }

    fn write(repo: &git2::Repository, rel: &str, text: &str) {
        let p = repo.workdir().unwrap().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Stages everything (deletions too) and returns the tree.
    fn snapshot(repo: &git2::Repository) -> git2::Oid {
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        index.write_tree().unwrap()
    }

    fn diff(repo: &git2::Repository, a: git2::Oid, b: git2::Oid) -> Vec<String> {
        let (ta, tb) = (repo.find_tree(a).unwrap(), repo.find_tree(b).unwrap());
        changed_paths(repo, Some(&ta), Some(&tb)).unwrap()
    }

    /// What libgit2's own diff says, for comparison.
    fn libgit2_paths(repo: &git2::Repository, a: git2::Oid, b: git2::Oid) -> Vec<String> {
        let (ta, tb) = (repo.find_tree(a).unwrap(), repo.find_tree(b).unwrap());
        let d = repo.diff_tree_to_tree(Some(&ta), Some(&tb), None).unwrap();
        let mut out = Vec::new();
        for delta in d.deltas() {
            for f in [delta.old_file(), delta.new_file()] {
                if let Some(p) = f.path() {
                    out.push(p.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn edits_adds_deletes_renames_and_mode_changes() {
        let (_d, repo) = repo();
        write(&repo, "services/api/src/main.rs", "fn main() {}");
        write(&repo, "services/web/www/index.html", "<p>");
        write(&repo, "crates/common/src/lib.rs", "");
        write(&repo, "README.md", "x");
        let a = snapshot(&repo);
        write(&repo, "services/api/src/main.rs", "fn main() { }");
        std::fs::rename(
            repo.workdir().unwrap().join("services/web/www/index.html"),
            repo.workdir().unwrap().join("services/web/www/home.html"),
        )
        .unwrap();
        std::fs::remove_dir_all(repo.workdir().unwrap().join("crates")).unwrap();
        write(&repo, "docs/new/deep/file.md", "new");
        use std::os::unix::fs::PermissionsExt;
        let readme = repo.workdir().unwrap().join("README.md");
        std::fs::set_permissions(&readme, std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = snapshot(&repo);
        let got = diff(&repo, a, b);
        assert_eq!(
            got,
            [
                "README.md",
                "crates/common/src/lib.rs",
                "docs/new/deep/file.md",
                "services/api/src/main.rs",
                "services/web/www/home.html",
                "services/web/www/index.html",
            ]
        );
        assert_eq!(got, libgit2_paths(&repo, a, b), "same answer as libgit2");
        assert!(diff(&repo, a, a).is_empty());
    }

    #[test]
    fn a_file_replaced_by_a_directory_lists_both() {
        let (_d, repo) = repo();
        write(&repo, "thing", "file");
        let a = snapshot(&repo);
        std::fs::remove_file(repo.workdir().unwrap().join("thing")).unwrap();
        write(&repo, "thing/inside.txt", "dir");
        let b = snapshot(&repo);
        assert_eq!(diff(&repo, a, b), ["thing", "thing/inside.txt"]);
        assert_eq!(diff(&repo, b, a), ["thing", "thing/inside.txt"]);
    }

    #[test]
    fn against_nothing_everything_is_new() {
        let (_d, repo) = repo();
        write(&repo, "a/b.txt", "1");
        write(&repo, "c.txt", "2");
        let t = repo.find_tree(snapshot(&repo)).unwrap();
        assert_eq!(
            changed_paths(&repo, None, Some(&t)).unwrap(),
            ["a/b.txt", "c.txt"]
        );
    }

    #[test]
    fn working_tree_staged_unstaged_untracked_not_ignored() {
        let (_d, repo) = repo();
        write(&repo, ".gitignore", "/target\n");
        write(&repo, "staged.txt", "1");
        write(&repo, "unstaged.txt", "1");
        let tree = repo.find_tree(snapshot(&repo)).unwrap();
        let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap();
        write(&repo, "staged.txt", "2");
        repo.index()
            .unwrap()
            .add_path(Path::new("staged.txt"))
            .unwrap();
        let mut idx = repo.index().unwrap();
        idx.add_path(Path::new("staged.txt")).unwrap();
        idx.write().unwrap();
        write(&repo, "unstaged.txt", "2");
        write(&repo, "new/dir/untracked.txt", "1");
        write(&repo, "target/ignored.txt", "1");
        assert_eq!(
            working_tree_paths(&repo).unwrap(),
            [
                &b"new/dir/untracked.txt"[..],
                b"staged.txt",
                b"unstaged.txt"
            ]
        );
    }
}
