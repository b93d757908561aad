//! Which two states a change is measured between: the base commit (a merge-base, never a
//! guess) and the head (a commit, plus the working tree for local builds). When the base cannot
//! be had — a shallow clone, an unknown `before`, a first push — the answer is "everything",
//! with the reason, never "nothing".

use anyhow::{bail, Context, Result};

use crate::context::{BuildContext, Trigger};

/// What to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// `None`: no usable base; every service is selected for `fallback`.
    pub base: Option<git2::Oid>,
    pub head: git2::Oid,
    /// Include the index and the working tree (local builds without `--head`).
    pub working_tree: bool,
    /// How the base was chosen, for people.
    pub how: String,
    /// Why everything is selected (set exactly when `base` is `None`).
    pub fallback: Option<String>,
}

pub struct Request<'a> {
    pub base: Option<&'a str>,
    pub head: Option<&'a str>,
    pub context: &'a BuildContext,
}

const ZERO: &str = "0000000000000000000000000000000000000000";

pub fn resolve(repo: &git2::Repository, req: &Request) -> Result<Range> {
    let cx = req.context;
    let in_ci = !matches!(cx.trigger, Trigger::Local);
    let mut head_missing = false;
    let (head, working_tree) = match req.head {
        Some(r) => (commit_of(repo, r)?, false),
        None if in_ci => match lookup(repo, cx.pr_head.as_deref().unwrap_or(&cx.revision)) {
            Some(id) => (id, false),
            None => {
                head_missing = true;
                (commit_of(repo, "HEAD")?, false)
            }
        },
        None => (commit_of(repo, "HEAD")?, true),
    };
    let event = if cx.event.is_empty() {
        "push"
    } else {
        cx.event.as_str()
    };
    let short = |id: git2::Oid| id.to_string()[..7].to_string();
    let everything = |why: String| Range {
        base: None,
        head,
        working_tree,
        how: why.clone(),
        fallback: Some(why),
    };
    let merge_base = |other: git2::Oid, label: &str| -> Result<Range> {
        match repo.merge_base(other, head) {
            Ok(mb) => Ok(Range {
                base: Some(mb),
                head,
                working_tree,
                how: format!("merge-base of {label} and {} = {}", short(head), short(mb)),
                fallback: None,
            }),
            Err(_) if repo.is_shallow() => Ok(everything(format!(
                "{label} and {} share no history in this shallow clone (depth {}): fetch with fetch-depth: 0",
                short(head),
                depth(repo, head)
            ))),
            Err(_) => Ok(everything(format!(
                "{label} and {} have no common ancestor",
                short(head)
            ))),
        }
    };
    let missing = |what: String| -> Range {
        if repo.is_shallow() {
            everything(format!(
                "{what} is not in this shallow clone (depth {}): fetch with fetch-depth: 0",
                depth(repo, head)
            ))
        } else {
            everything(format!("{what} is not in this repository"))
        }
    };
    let default_ref = |repo: &git2::Repository| first_ref(repo, &branch_refs(&cx.default_branch));
    if head_missing {
        // The commit the event names is not here: comparing HEAD instead could say "nothing".
        let rev = cx.pr_head.as_deref().unwrap_or(&cx.revision);
        let rev = &rev[..7.min(rev.len())];
        let hint = if event == "pull_request_target" {
            "pull_request_target checks out the base branch; check out the pull request head (with fetch-depth: 0) to compare it"
        } else {
            "fetch it (actions/checkout with fetch-depth: 0)"
        };
        return Ok(everything(format!(
            "{event}: the commit {rev} is not in this clone: {hint}"
        )));
    }

    if let Some(b) = req.base {
        let looks_like_sha = b.len() >= 7 && b.chars().all(|c| c.is_ascii_hexdigit());
        return match commit_of(repo, b) {
            Ok(base) => merge_base(base, b),
            // A commit the clone does not have: everything, with the reason (never nothing).
            Err(_) if looks_like_sha && repo.is_shallow() => {
                Ok(missing(format!("base {}", &b[..7])))
            }
            Err(e) => Err(e),
        };
    }
    match &cx.trigger {
        Trigger::PullRequest { base, .. } => {
            match first_ref(repo, &branch_refs(base)) {
                Some((id, name)) => merge_base(id, &name),
                None => Ok(missing(format!("the pull request's base branch `{base}`"))),
            }
        }
        Trigger::Branch | Trigger::Tag { .. } if in_ci => {
            if let Some(b) = &cx.event_base {
                let b7 = &b[..7.min(b.len())];
                return Ok(match lookup(repo, b) {
                    Some(id) => Range {
                        base: Some(id),
                        head,
                        working_tree,
                        how: format!("{event}: its base {}", short(id)),
                        fallback: None,
                    },
                    None => missing(format!("{event}: its base {b7}")),
                });
            }
            let before = cx.push_before.as_deref().unwrap_or("");
            let to_default = |why: &str| -> Result<Range> {
                let on_default = cx.branch.as_deref() == Some(cx.default_branch.as_str());
                match default_ref(repo) {
                    Some((id, name)) if !(on_default && repo.merge_base(id, head).ok() == Some(head)) => {
                        let mut r = merge_base(id, &name)?;
                        r.how = format!("{why}; {}", r.how);
                        Ok(r)
                    }
                    Some(_) => Ok(everything(format!("{why}, on the default branch itself: every service"))),
                    None => Ok(missing(format!("{why}; the default branch `{}`", cx.default_branch))),
                }
            };
            if before.is_empty() {
                to_default(&format!("{event} has no previous commit to compare with"))
            } else if before == ZERO {
                to_default("a new branch (before is all zeros)")
            } else {
                let b7 = &before[..7.min(before.len())];
                match lookup(repo, before) {
                    None if repo.is_shallow() => Ok(missing(format!("base {b7}"))),
                    None => Ok(everything(format!(
                        "before {b7} is not in this clone (a force push?): what the commits it dropped changed cannot be compared; fetch it or build everything"
                    ))),
                    Some(id) if id == head || repo.graph_descendant_of(head, id).unwrap_or(false) => Ok(Range {
                        base: Some(id),
                        head,
                        working_tree,
                        how: format!("the push's before = {}", short(id)),
                        fallback: None,
                    }),
                    // A force push: the previous tip itself, so what the dropped commits
                    // changed counts as well as what the new ones do.
                    Some(id) => Ok(Range {
                        base: Some(id),
                        head,
                        working_tree,
                        how: format!(
                            "force push: before {} is not an ancestor of {}; compared with it directly",
                            short(id),
                            short(head)
                        ),
                        fallback: None,
                    }),
                }
            }
        }
        Trigger::Release { tag, .. } => Ok(everything(format!("release tag {tag}: every service is released"))),
        _ => match local_default(repo, cx) {
            Some((id, name)) => merge_base(id, &name),
            None => Ok(everything(format!(
                "no default branch to compare with (no origin/HEAD, origin/{b} or {b}): pass --base",
                b = cx.default_branch
            ))),
        },
    }
}

/// Locally: `origin/HEAD`'s branch, else the default branch, remote first.
fn local_default(repo: &git2::Repository, cx: &BuildContext) -> Option<(git2::Oid, String)> {
    let mut names = vec!["refs/remotes/origin/HEAD".to_string()];
    names.extend(branch_refs(&cx.default_branch));
    first_ref(repo, &names)
}

/// A branch's remote-tracking ref, then the local one.
fn branch_refs(branch: &str) -> [String; 2] {
    [
        format!("refs/remotes/origin/{branch}"),
        format!("refs/heads/{branch}"),
    ]
}

/// The first of `names` that exists: its commit and its short name (`origin/main`, `main`).
fn first_ref(repo: &git2::Repository, names: &[String]) -> Option<(git2::Oid, String)> {
    names.iter().find_map(|r| {
        let id = repo.refname_to_id(r).ok()?;
        let short = r
            .trim_start_matches("refs/remotes/")
            .trim_start_matches("refs/heads/");
        Some((id, short.to_string()))
    })
}

fn lookup(repo: &git2::Repository, sha: &str) -> Option<git2::Oid> {
    let id = git2::Oid::from_str(sha).ok()?;
    repo.find_commit(id).ok().map(|c| c.id())
}

/// A ref, branch, tag or sha as a commit; an unknown one is an error that says so.
pub fn commit_of(repo: &git2::Repository, spec: &str) -> Result<git2::Oid> {
    let obj = repo.revparse_single(spec).with_context(|| {
        format!("`{spec}` is not a commit, branch or tag in this repository (a shallow clone may lack it: fetch with fetch-depth: 0)")
    })?;
    let commit = obj
        .peel_to_commit()
        .with_context(|| format!("`{spec}` does not point at a commit"))?;
    Ok(commit.id())
}

/// How many commits a shallow clone holds below `head`.
fn depth(repo: &git2::Repository, head: git2::Oid) -> usize {
    let Ok(mut walk) = repo.revwalk() else {
        return 0;
    };
    if walk.push(head).is_err() {
        return 0;
    }
    walk.take(10_000).filter(|c| c.is_ok()).count()
}

/// `--strict`: a fallback is an error.
pub fn strict(range: &Range) -> Result<()> {
    if let Some(why) = &range.fallback {
        bail!("--strict: cannot tell what changed: {why}");
    }
    Ok(())
}
