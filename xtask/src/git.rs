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
        info.dirty = !self
            .repo
            .statuses(Some(&mut opts))
            .context("cannot read the working tree status")?
            .is_empty();
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
            head.shorthand().map(String::from)
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
        let target = r.symbolic_target()?;
        target
            .strip_prefix("refs/remotes/origin/")
            .map(String::from)
    }

    /// Versions of the release tags in this repository: `v1.2.3` ones for `scope = None`,
    /// `name/v1.2.3` ones for `scope = Some(name)`. Tags that are not semver are ignored.
    pub fn released_versions(&self, scope: Option<&str>) -> Result<Vec<Version>> {
        let names = self.repo.tag_names(None).context("cannot list git tags")?;
        let mut out: Vec<Version> = names
            .iter()
            .flatten()
            .filter_map(|tag| {
                let rest = match (scope, tag.rsplit_once('/')) {
                    (None, None) => tag,
                    (Some(s), Some((svc, rest))) if svc == s => rest,
                    _ => return None,
                };
                Version::parse(rest.strip_prefix('v').unwrap_or(rest)).ok()
            })
            .collect();
        out.sort();
        Ok(out)
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

        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(
            r.released_versions(None).unwrap(),
            [v("1.2.0"), v("1.10.0-rc.1")]
        );
        assert_eq!(r.released_versions(Some("api")).unwrap(), [v("2.0.0")]);
        assert!(r.released_versions(Some("worker")).unwrap().is_empty());

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
