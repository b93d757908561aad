//! Where a build happens, which decides its tags: a local checkout, a pull request, a push to
//! a branch, or a release tag (`v1.2.3`, or `api/v1.2.3` for one service). Read from the GitHub
//! Actions environment and event file when present, else from git. `detect` is pure.

use anyhow::{bail, Context as _, Result};
use semver::Version;
use serde::Serialize;

use crate::git::GitInfo;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// A developer's checkout (no CI).
    Local,
    /// A pull request; `head` is the PR head commit, not the synthetic merge commit.
    PullRequest { number: u64, base: String },
    /// A push (or other event) on a branch.
    Branch,
    /// A release tag; `service` is set for `name/v1.2.3` tags.
    Release {
        tag: String,
        version: Version,
        service: Option<String>,
    },
    /// A git tag that is not a release (`nightly`, `1.2`, `v1.2.3rc2`): `{tag}`, never `latest`.
    Tag { tag: String },
}

/// Everything about the build's origin that tags and labels depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildContext {
    pub trigger: Trigger,
    /// The branch `{branch}` names (`None` on a detached HEAD or a tag).
    pub branch: Option<String>,
    /// The commit the image is built from and labelled with.
    pub revision: String,
    pub default_branch: String,
    pub is_default_branch: bool,
    /// The branch matches one of the release-branch patterns (`release-*`).
    pub is_release_branch: bool,
    /// Local only: the working tree has uncommitted changes.
    pub dirty: bool,
    /// A push event's `before` (the previous tip of the branch; all zeros for a new branch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_before: Option<String>,
    /// The GitHub event that started the run (`push`, `pull_request_target`, `schedule`, …);
    /// empty locally.
    #[serde(skip)]
    pub event: String,
    /// The commit the event says to compare with (`merge_group.base_sha`).
    #[serde(skip)]
    pub event_base: Option<String>,
    /// A pull request's head commit (what change detection compares, even where the
    /// checkout is something else and `revision` names that).
    #[serde(skip)]
    pub pr_head: Option<String>,
    /// A GitHub release marked pre-release: no `latest`, no release lines.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub marked_prerelease: bool,
    /// What was inferred and how sure it is (a guessed default branch, a revision that is not
    /// the pull request head), for warnings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl BuildContext {
    /// A short description for progress lines and plan output.
    pub fn describe(&self) -> String {
        match &self.trigger {
            Trigger::Local => format!(
                "local checkout of {}{}",
                self.branch.as_deref().unwrap_or("a detached HEAD"),
                if self.dirty {
                    " (uncommitted changes)"
                } else {
                    ""
                }
            ),
            Trigger::PullRequest { number, base } => {
                format!("pull request #{number} into {base}")
            }
            Trigger::Branch => format!(
                "push to {}{}",
                self.branch.as_deref().unwrap_or("a detached HEAD"),
                if self.is_default_branch {
                    " (default branch)"
                } else if self.is_release_branch {
                    " (release branch)"
                } else {
                    ""
                }
            ),
            Trigger::Release { tag, .. } => format!(
                "release tag {tag}{}",
                if self.marked_prerelease {
                    " (GitHub pre-release)"
                } else {
                    ""
                }
            ),
            Trigger::Tag { tag } => format!("git tag {tag} (not a release)"),
        }
    }
}

/// The facts `detect` works from, all read beforehand.
pub struct Facts<'a> {
    /// An environment variable's value.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The contents of `$GITHUB_EVENT_PATH`, when there is one.
    pub event: Option<&'a str>,
    pub git: &'a GitInfo,
    /// The repository's default branch as git knows it (`origin/HEAD`), if it does.
    pub git_default_branch: Option<String>,
    /// From the config; wins over everything else.
    pub configured_default_branch: Option<&'a str>,
    /// Release-branch patterns, compiled.
    pub release_branches: &'a globset::GlobSet,
}

pub fn detect(f: &Facts) -> Result<BuildContext> {
    let event: Option<serde_json::Value> = match f.event {
        Some(text) => Some(
            serde_json::from_str(text)
                .context("the GitHub event file ($GITHUB_EVENT_PATH) is not JSON")?,
        ),
        None => None,
    };
    let field = |path: &[&str]| -> Option<String> {
        let mut v = event.as_ref()?;
        for p in path {
            v = v.get(p)?;
        }
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let in_actions = (f.env)("GITHUB_ACTIONS").is_some_and(|v| v == "true");
    let event_name = (f.env)("GITHUB_EVENT_NAME").unwrap_or_default();
    let github_ref = (f.env)("GITHUB_REF").unwrap_or_default();
    let mut notes = Vec::new();
    // Scheduled workflows always run on the default branch: its ref is the fact (after the
    // configuration, which is the user's word).
    let scheduled = (in_actions && event_name == "schedule")
        .then(|| github_ref.strip_prefix("refs/heads/").map(String::from))
        .flatten();
    let default_branch = match f
        .configured_default_branch
        .map(String::from)
        .or(scheduled)
        .or_else(|| field(&["repository", "default_branch"]))
        .or_else(|| f.git_default_branch.clone())
    {
        Some(b) => b,
        None => {
            if in_actions {
                notes.push("the default branch is a guess (`main`): neither the event nor the clone names it; set default_branch = \"...\" under [workspace.metadata.images] in Cargo.toml".to_string());
            }
            "main".to_string()
        }
    };

    let mut cx = BuildContext {
        trigger: Trigger::Local,
        branch: f.git.branch.clone(),
        revision: f.git.sha.clone(),
        default_branch: default_branch.clone(),
        is_default_branch: false,
        is_release_branch: false,
        dirty: f.git.dirty,
        push_before: None,
        event: if in_actions {
            event_name.clone()
        } else {
            String::new()
        },
        event_base: None,
        pr_head: None,
        marked_prerelease: false,
        notes,
    };
    if in_actions && matches!(event_name.as_str(), "pull_request" | "pull_request_target") {
        let number = field(&["number"])
            .or_else(|| field(&["pull_request", "number"]))
            .or_else(|| {
                github_ref
                    .strip_prefix("refs/pull/")
                    .and_then(|r| r.split('/').next())
                    .map(String::from)
            })
            .context("pull_request event without a PR number (event file and GITHUB_REF)")?;
        let number: u64 = number
            .parse()
            .with_context(|| format!("PR number `{number}` is not a number"))?;
        let head = field(&["pull_request", "head", "sha"]).with_context(|| {
            format!("pull request #{number}: the event file has no pull_request.head.sha; tags would name the synthetic merge commit")
        })?;
        let base = field(&["pull_request", "base", "ref"])
            .or_else(|| (f.env)("GITHUB_BASE_REF"))
            .unwrap_or_else(|| default_branch.clone());
        cx.trigger = Trigger::PullRequest { number, base };
        // Tags and labels name the tree built: the PR head, or a synthetic merge of it
        // (labelled with the head, as documented); anything else (pull_request_target checks
        // out the base branch) is labelled with HEAD, and says so.
        let git_head = &f.git.sha;
        if *git_head == head || f.git.parents.contains(&head) {
            cx.revision = head.clone();
        } else {
            cx.revision = git_head.clone();
            cx.notes.push(format!(
                "{event_name}: HEAD {} is neither the pull request head {} nor a merge of it (pull_request_target checks out the base branch): tags and labels name HEAD, the tree that is built",
                &git_head[..7.min(git_head.len())],
                &head[..7.min(head.len())]
            ));
        }
        cx.pr_head = Some(head);
        cx.branch = field(&["pull_request", "head", "ref"]).or_else(|| (f.env)("GITHUB_HEAD_REF"));
        cx.dirty = false;
    } else if in_actions {
        cx.dirty = false;
        // Tags and labels name the tree built: HEAD. GITHUB_SHA names the event's commit,
        // which a workflow may not have checked out (workflow_run, a tag workflow that checks
        // out a branch).
        if let Some(sha) = (f.env)("GITHUB_SHA").filter(|s| !s.is_empty()) {
            if sha != f.git.sha {
                cx.notes.push(format!(
                    "GITHUB_SHA {} is not the checked-out HEAD {}: tags and labels name HEAD, the tree that is built",
                    &sha[..7.min(sha.len())],
                    &f.git.sha[..7.min(f.git.sha.len())]
                ));
            }
        }
        if let Some(tag) = github_ref.strip_prefix("refs/tags/") {
            cx.trigger = tag_trigger(tag)?;
            cx.branch = None;
            if event_name == "release" {
                cx.marked_prerelease = event
                    .as_ref()
                    .and_then(|e| e.get("release")?.get("prerelease")?.as_bool())
                    .unwrap_or(false);
            }
        } else if let Some(branch) = github_ref.strip_prefix("refs/heads/") {
            cx.trigger = Trigger::Branch;
            cx.branch = Some(branch.to_string());
            if event_name == "push" {
                cx.push_before = field(&["before"]);
            }
            if event_name == "merge_group" {
                cx.event_base = field(&["merge_group", "base_sha"]);
            }
        } else {
            cx.trigger = Trigger::Branch;
        }
    }
    if let Some(b) = &cx.branch {
        cx.is_default_branch =
            *b == default_branch && !matches!(cx.trigger, Trigger::PullRequest { .. });
        cx.is_release_branch = f.release_branches.is_match(b);
    }
    Ok(cx)
}

/// A release tag (`v1.2.3`, `service/v1.2.3`: semver, optional `v`), or any other tag.
pub fn tag_trigger(tag: &str) -> Result<Trigger> {
    let version_part = tag.rsplit_once('/').map_or(tag, |(_, v)| v);
    let raw = version_part
        .strip_prefix(['v', 'V'])
        .unwrap_or(version_part);
    if Version::parse(raw).is_ok() {
        release_trigger(tag)
    } else {
        Ok(Trigger::Tag {
            tag: tag.to_string(),
        })
    }
}

/// `v1.2.3` or `service/v1.2.3` (the `v` is optional); anything else is an error that says
/// what a release tag looks like.
pub fn release_trigger(tag: &str) -> Result<Trigger> {
    let (service, version_part) = match tag.rsplit_once('/') {
        Some((svc, v)) => (Some(svc.to_string()), v),
        None => (None, tag),
    };
    let raw = version_part
        .strip_prefix(['v', 'V'])
        .unwrap_or(version_part);
    let version = Version::parse(raw).map_err(|e| {
        anyhow::anyhow!("git tag `{tag}` is not a release tag ({e}): release tags are v1.2.3 or SERVICE/v1.2.3 (semver, optional pre-release)")
    })?;
    if let Some(s) = &service {
        if s.is_empty() || s.contains('/') {
            bail!("git tag `{tag}`: a per-service release tag is SERVICE/v1.2.3 with one service name");
        }
    }
    Ok(Trigger::Release {
        tag: tag.to_string(),
        version,
        service,
    })
}

#[cfg(test)]
mod tests;
