//! The git facts a build depends on, read with git2 from the repository that holds the
//! workspace: HEAD (commit, branch, commit time, dirty state), the default branch, release
//! tags, and whether one commit descends from another.

use std::path::Path;

use anyhow::{Context, Result};
use semver::Version;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitInfo {
    /// Full commit id of HEAD.
    pub sha: String,
    /// The checked-out branch; `None` on a detached HEAD.
    pub branch: Option<String>,
    /// Commit time of HEAD, seconds since the epoch (UTC).
    pub commit_time: i64,
    /// Tracked files modified, staged or untracked-but-not-ignored files present.
    pub dirty: bool,
    /// HEAD's parents (two for a merge, such as a pull request's synthetic merge).
    pub parents: Vec<String>,
}

pub struct Repo {
    repo: git2::Repository,
}

impl Repo {
    /// The repository containing `root`.
    pub fn open(root: &Path) -> Result<Repo> {
        let repo = git2::Repository::discover(root).with_context(|| {
            format!(
                "{} is not inside a git repository: images are stamped with a commit, so run `git init && git commit` first",
                root.display()
            )
        })?;
        Ok(Repo { repo })
    }

    /// HEAD and the working tree's state.
    pub fn info(&self) -> Result<GitInfo> {
        let mut info = self.head()?;
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(false)
            .include_ignored(false)
            .exclude_submodules(true);
        // Slipway's own outputs (`target/slipway/`: logs, reports, SBOMs), and cargo's
        // `target/` when it is not ignored, never make the tree dirty: a re-run would
        // otherwise tag `-dirty` and rebuild what the first run published.
        info.dirty = self
            .repo
            .statuses(Some(&mut opts))
            .context("cannot read the working tree status")?
            .iter()
            .any(|e| {
                let p = e.path_bytes();
                !(p == b"target/" || p.starts_with(b"target/slipway/"))
            });
        Ok(info)
    }

    /// HEAD only, `dirty` left false: the working tree scan costs a `stat` per file, and
    /// change detection reads the working tree its own way.
    pub fn head(&self) -> Result<GitInfo> {
        let head = self.repo.head().context(
            "the repository has no commit yet: commit once so images can carry a revision",
        )?;
        let commit = head
            .peel_to_commit()
            .context("HEAD does not point at a commit")?;
        let branch = if head.is_branch() {
            head.shorthand().ok().map(String::from)
        } else {
            None
        };
        Ok(GitInfo {
            sha: commit.id().to_string(),
            branch,
            commit_time: commit.time().seconds(),
            dirty: false,
            parents: commit.parent_ids().map(|p| p.to_string()).collect(),
        })
    }

    /// The libgit2 repository, for the modules that walk it themselves.
    pub fn raw(&self) -> &git2::Repository {
        &self.repo
    }

    /// The branch `origin/HEAD` points to, when the clone recorded it.
    pub fn default_branch(&self) -> Option<String> {
        let r = self.repo.find_reference("refs/remotes/origin/HEAD").ok()?;
        let target = r.symbolic_target().ok()??;
        target
            .strip_prefix("refs/remotes/origin/")
            .map(String::from)
    }

    /// The releases in git that version `service`: its own `service/v…` tags, and — unless it
    /// has its own VERSION — the workspace's `v…` tags. Each with the commit it points at.
    pub fn releases(&self, service: &str, own_version: bool) -> Result<Vec<(Version, String)>> {
        let names = self.repo.tag_names(None).context("cannot list git tags")?;
        let mut out = Vec::new();
        for tag in names.iter().flatten().flatten() {
            let rest = match tag.rsplit_once('/') {
                None if !own_version => tag,
                Some((svc, rest)) if svc == service => rest,
                _ => continue,
            };
            let Some(v) = rest
                .strip_prefix(['v', 'V'])
                .or(Some(rest))
                .and_then(|r| Version::parse(r).ok())
            else {
                continue;
            };
            let commit = self
                .repo
                .revparse_single(&format!("refs/tags/{tag}"))
                .and_then(|o| o.peel_to_commit())
                .map(|c| c.id().to_string())
                .unwrap_or_default();
            out.push((v, commit));
        }
        out.sort();
        Ok(out)
    }

    /// A shallow clone with no tags at all: whether a version was released cannot be told.
    pub fn tags_unknown(&self) -> bool {
        self.repo.is_shallow()
            && self
                .repo
                .tag_names(None)
                .map(|t| t.is_empty())
                .unwrap_or(true)
    }

    /// Does `ours` descend from (or equal) `theirs`? `None` when either is not in this clone.
    pub fn descends(&self, ours: &str, theirs: &str) -> Option<bool> {
        let ours = git2::Oid::from_str(ours).ok()?;
        let theirs = git2::Oid::from_str(theirs).ok()?;
        self.repo.find_commit(ours).ok()?;
        self.repo.find_commit(theirs).ok()?;
        if ours == theirs {
            return Some(true);
        }
        self.repo.graph_descendant_of(ours, theirs).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(repo: &git2::Repository, file: &str, msg: &str) -> git2::Oid {
        std::fs::write(repo.workdir().unwrap().join(file), msg).unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new(file)).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig =
            git2::Signature::new("t", "t@example.invalid", &git2::Time::new(1_700_000_000, 0))
                .unwrap();
        let parents: Vec<git2::Commit> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs)
            .unwrap()
    }

    #[test]
    fn info_tags_ancestry_and_default_branch() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = git2::Repository::init_opts(dir.path(), &opts).unwrap();
        let a = commit(&repo, "a.txt", "one");
        let b = commit(&repo, "a.txt", "two");
        let obj = repo.find_object(a, None).unwrap();
        for t in [
            "v1.2.0",
            "v1.10.0-rc.1",
            "api/v2.0.0",
            "nightly",
            "web/v0.3.0",
        ] {
            repo.tag_lightweight(t, &obj, false).unwrap();
        }
        repo.reference_symbolic(
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/trunk",
            true,
            "t",
        )
        .unwrap();

        let r = Repo::open(dir.path()).unwrap();
        let info = r.info().unwrap();
        assert_eq!(info.sha, b.to_string());
        assert_eq!(info.branch.as_deref(), Some("main"));
        assert_eq!(info.commit_time, 1_700_000_000);
        assert!(!info.dirty);
        std::fs::write(dir.path().join("new.txt"), "x").unwrap();
        assert!(
            r.info().unwrap().dirty,
            "untracked files make the tree dirty"
        );
        std::fs::remove_file(dir.path().join("new.txt")).unwrap();
        std::fs::create_dir_all(dir.path().join("target/slipway/logs")).unwrap();
        std::fs::write(dir.path().join("target/slipway/logs/api.log"), "x").unwrap();
        assert!(
            !r.info().unwrap().dirty,
            "Slipway's own outputs do not make the tree dirty"
        );

        let v = |s: &str| Version::parse(s).unwrap();
        let versions = |name: &str, own: bool| -> Vec<Version> {
            r.releases(name, own)
                .unwrap()
                .into_iter()
                .map(|(v, commit)| {
                    assert_eq!(commit.len(), 40, "each release with its commit");
                    v
                })
                .collect()
        };
        // A service versioned by the workspace is released by v… tags and its own tags.
        assert_eq!(
            versions("api", false),
            [v("1.2.0"), v("1.10.0-rc.1"), v("2.0.0")]
        );
        assert_eq!(versions("api", true), [v("2.0.0")], "own VERSION: own tags");
        assert!(versions("worker", true).is_empty());
        assert!(!r.tags_unknown(), "not shallow");

        assert_eq!(r.descends(&b.to_string(), &a.to_string()), Some(true));
        assert_eq!(r.descends(&a.to_string(), &b.to_string()), Some(false));
        assert_eq!(r.descends(&a.to_string(), &a.to_string()), Some(true));
        assert_eq!(
            r.descends(&b.to_string(), &"1".repeat(40)),
            None,
            "unknown commit"
        );
        assert_eq!(r.default_branch().as_deref(), Some("trunk"));
    }
}
