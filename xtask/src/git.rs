//! The git facts a build is stamped with (commit, branch, commit time, dirty state), read with
//! git2 from the repository that holds the workspace.

use std::path::Path;

use anyhow::{Context, Result};
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
}

impl GitInfo {
    pub fn sha7(&self) -> &str {
        &self.sha[..7.min(self.sha.len())]
    }
}

/// Reads HEAD of the repository containing `root`.
pub fn read(root: &Path) -> Result<GitInfo> {
    let repo = git2::Repository::discover(root).with_context(|| {
        format!(
            "{} is not inside a git repository: images are stamped with a commit, so run `git init && git commit` first",
            root.display()
        )
    })?;
    let head = repo.head().with_context(|| {
        format!(
            "the repository at {} has no commit yet: commit once so images can carry a revision",
            root.display()
        )
    })?;
    let commit = head
        .peel_to_commit()
        .context("HEAD does not point at a commit")?;
    let branch = if head.is_branch() {
        head.shorthand().map(String::from)
    } else {
        None
    };
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let dirty = !repo
        .statuses(Some(&mut opts))
        .context("cannot read the working tree status")?
        .is_empty();
    Ok(GitInfo {
        sha: commit.id().to_string(),
        branch,
        commit_time: commit.time().seconds(),
        dirty,
    })
}
