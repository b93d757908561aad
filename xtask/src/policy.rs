//! The tag policy: which tag templates a build gets in its context (local, pull request,
//! branch push, release tag), and when moving tags (`latest`, `1`, `1.2`) may move. Every
//! decision not to move one comes with a reason. Pure.

use semver::Version;
use serde::Serialize;

use crate::context::{BuildContext, Trigger};

/// When `latest` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatestRule {
    DefaultBranch,
    Release,
    Both,
    Never,
}

impl LatestRule {
    pub const NAMES: &'static [&'static str] = &["default-branch", "release", "both", "never"];

    pub fn name(self) -> &'static str {
        match self {
            LatestRule::DefaultBranch => "default-branch",
            LatestRule::Release => "release",
            LatestRule::Both => "both",
            LatestRule::Never => "never",
        }
    }

    pub fn parse(s: &str) -> Option<LatestRule> {
        Some(match s {
            "default-branch" => LatestRule::DefaultBranch,
            "release" => LatestRule::Release,
            "both" => LatestRule::Both,
            "never" => LatestRule::Never,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPolicy {
    pub local: Vec<String>,
    pub pull_request: Vec<String>,
    pub default_branch: Vec<String>,
    pub release_branch: Vec<String>,
    pub branch: Vec<String>,
    pub release: Vec<String>,
    pub prerelease: Vec<String>,
    /// Pushed git tags that are not releases (`nightly`).
    pub tag: Vec<String>,
    pub latest: LatestRule,
    pub release_branches: Vec<String>,
    pub dirty_suffix: String,
    pub push_pull_requests: bool,
    /// `{timestamp}` from the build time instead of the commit time.
    pub timestamp_from_build: bool,
    /// A build whose version tag is already released fails (`released_versions = "fail"`)
    /// instead of leaving that tag out with a note.
    pub fail_on_released: bool,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Default for TagPolicy {
    fn default() -> TagPolicy {
        TagPolicy {
            local: strings(&["{branch}", "{sha7}"]),
            pull_request: strings(&["pr-{pr}", "{sha7}"]),
            default_branch: strings(&["{version}", "{branch}", "{sha7}", "{timestamp}"]),
            release_branch: strings(&["{version}", "{branch}", "{sha7}"]),
            branch: strings(&["{branch}", "{sha7}"]),
            release: strings(&["v{version}", "{version}", "{major}.{minor}", "{major}"]),
            prerelease: strings(&["v{version}", "{version}"]),
            tag: strings(&["{tag}", "{sha7}"]),
            latest: LatestRule::Both,
            release_branches: strings(&["release-*"]),
            dirty_suffix: "-dirty".to_string(),
            push_pull_requests: false,
            timestamp_from_build: false,
            fail_on_released: false,
        }
    }
}

/// What the policy asks for, before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Templates, in order; never the literal `latest`.
    pub templates: Vec<String>,
    /// `latest` is asked for here (still subject to [`latest_verdict`]).
    pub latest: bool,
    /// Appended to every tag (the dirty marker of local builds).
    pub suffix: String,
    /// Why `latest` is not asked for, when that is worth saying.
    pub notes: Vec<String>,
}

/// The templates for this context. `explicit` (a service's or the global `tags`, or
/// `DOCKER_TAGS`) replaces the per-context lists; a literal `latest` in it still obeys the rules.
pub fn wanted(
    policy: &TagPolicy,
    cx: &BuildContext,
    version: &Version,
    explicit: Option<&[String]>,
) -> Wanted {
    let prerelease = !version.pre.is_empty() || cx.marked_prerelease;
    let (list, latest_here) = match &cx.trigger {
        Trigger::Local => (&policy.local, false),
        Trigger::PullRequest { .. } => (&policy.pull_request, false),
        Trigger::Branch if cx.is_default_branch => (
            &policy.default_branch,
            matches!(policy.latest, LatestRule::DefaultBranch | LatestRule::Both),
        ),
        Trigger::Branch if cx.is_release_branch => (&policy.release_branch, false),
        Trigger::Branch => (&policy.branch, false),
        Trigger::Release { .. } if prerelease => (&policy.prerelease, false),
        Trigger::Release { .. } => (
            &policy.release,
            matches!(policy.latest, LatestRule::Release | LatestRule::Both),
        ),
        Trigger::Tag { .. } => (&policy.tag, false),
    };
    let source: Vec<String> = explicit
        .map(<[String]>::to_vec)
        .unwrap_or_else(|| list.clone());
    let asked_latest = explicit.is_some_and(|e| e.iter().any(|t| t == "latest"));
    let mut notes = Vec::new();
    let latest = if explicit.is_some() {
        if asked_latest && !latest_here {
            notes.push(format!(
                "latest: not moved from a {} (latest = \"{}\" in the tag policy)",
                match cx.trigger {
                    Trigger::Local => "local build",
                    Trigger::PullRequest { .. } => "pull request",
                    Trigger::Branch => "branch that is not the default branch",
                    Trigger::Release { .. } => "release tag",
                    Trigger::Tag { .. } => "git tag that is not a release",
                },
                policy.latest.name()
            ));
        }
        asked_latest && latest_here
    } else {
        latest_here
    };
    // `default-branch`: every push to the default branch moves latest (forward by ancestry),
    // whatever the VERSION's pre-release part (X.Y.Z-dev on main). `both`: the release rule
    // (never a pre-release) wins.
    let by_branch = policy.latest == LatestRule::DefaultBranch
        && matches!(cx.trigger, Trigger::Branch)
        && cx.is_default_branch;
    let latest = if latest && prerelease && !by_branch {
        notes.push(if version.pre.is_empty() {
            "latest: the GitHub release is marked pre-release; latest never points at one"
                .to_string()
        } else {
            format!("latest: {version} is a pre-release; latest never points at one")
        });
        false
    } else {
        latest
    };
    let suffix = if matches!(cx.trigger, Trigger::Local) && cx.dirty {
        policy.dirty_suffix.clone()
    } else {
        String::new()
    };
    Wanted {
        templates: source.into_iter().filter(|t| t != "latest").collect(),
        latest,
        suffix,
        notes,
    }
}

/// A template that names one version (`{version}`, `v{version}`, `{major}.{minor}.{patch}`).
pub fn is_version_template(template: &str) -> bool {
    template.contains("{version}")
        || (template.contains("{major}")
            && template.contains("{minor}")
            && template.contains("{patch}"))
}

/// A template that renders something shaped like a stable version or line (`{major}`,
/// `{major}.{minor}`, `{major}.{minor}.{patch}`) without the pre-release part.
pub fn is_stable_shaped(template: &str) -> bool {
    (template.contains("{major}") || template.contains("{minor}") || template.contains("{patch}"))
        && !template.contains("{version}")
        && !template.contains("{sha")
}

/// A template that names a release line (`{major}`, `{major}.{minor}`) rather than one version.
pub fn is_line_template(template: &str) -> bool {
    (template.contains("{major}") || template.contains("{minor}"))
        && !template.contains("{patch}")
        && !template.contains("{version}")
        && !template.contains("{sha")
}

/// May a release-line tag (`1`, `1.2`) move to `ours`? Not when a higher stable release of
/// that line is already tagged in git, and not for the `0` line.
pub fn line_verdict(template: &str, ours: &Version, released: &[Version]) -> Result<(), String> {
    let minor_line = template.contains("{minor}");
    if !minor_line && ours.major == 0 {
        return Err(format!(
            "{template}: 0.x has no stable major line; not tagged"
        ));
    }
    let newer = released.iter().filter(|v| v.pre.is_empty()).find(|v| {
        v.major == ours.major
            && (!minor_line || v.minor == ours.minor)
            && v.cmp_precedence(ours).is_gt()
    });
    match newer {
        Some(v) => Err(format!(
            "{template}: {v} is already released on this line; {ours} does not move it back"
        )),
        None => Ok(()),
    }
}

/// What `latest` points to in one registry now, as read before planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LatestState {
    /// No `latest` tag yet.
    Absent,
    Present {
        version: Option<String>,
        revision: Option<String>,
        /// Our revision descends from (or is) theirs; `None` when git cannot tell.
        ours_descends: Option<bool>,
    },
    /// The registry could not be asked; the reason.
    Unknown(String),
}

/// May `latest` move to (`ours`, built from `revision`)? Only forward: not to an older version
/// (semver), not off the line of history it points to now (git ancestry), not past a higher
/// stable release already tagged in git, and never blindly.
pub fn latest_verdict(
    ours: &Version,
    released: &[Version],
    state: &LatestState,
    ancestry_only: bool,
) -> Result<(), String> {
    if ancestry_only {
        // `latest = "default-branch"`: forward along the default branch's history only.
        return match state {
            LatestState::Absent => Ok(()),
            LatestState::Unknown(why) => Err(format!(
                "latest: cannot read what latest points to now ({why}); not moved"
            )),
            LatestState::Present {
                revision: None, ..
            } => Err("latest: the image it points to has no revision label; not moved".into()),
            LatestState::Present {
                revision: Some(r),
                ours_descends,
                ..
            } => match ours_descends {
                Some(true) => Ok(()),
                Some(false) => Err(format!(
                    "latest: points to {}, which this commit does not descend from; not moved",
                    r.chars().take(7).collect::<String>()
                )),
                None => Err(format!(
                    "latest: cannot tell whether this commit descends from {} (not in this clone? fetch with fetch-depth: 0); not moved",
                    r.chars().take(7).collect::<String>()
                )),
            },
        };
    }
    if let Some(v) = released
        .iter()
        .filter(|v| v.pre.is_empty())
        .find(|v| v.cmp_precedence(ours).is_gt())
    {
        return Err(format!(
            "latest: {v} is already released; {ours} does not move latest back"
        ));
    }
    match state {
        LatestState::Absent => Ok(()),
        LatestState::Unknown(why) => Err(format!(
            "latest: cannot read what latest points to now ({why}); not moved"
        )),
        LatestState::Present {
            version,
            revision,
            ours_descends,
        } => {
            let Some(theirs) = version.as_deref().and_then(|v| Version::parse(v).ok()) else {
                return Err(format!(
                    "latest: the image it points to has no semver org.opencontainers.image.version label ({}); not moved",
                    version.as_deref().unwrap_or("none")
                ));
            };
            if theirs.cmp_precedence(ours).is_gt() {
                return Err(format!(
                    "latest: points to {theirs}, newer than {ours}; latest never moves backwards"
                ));
            }
            let short = |r: &str| r.chars().take(7).collect::<String>();
            match (revision.as_deref(), ours_descends) {
                (None, _) => Err(format!(
                    "latest: the image it points to ({theirs}) has no revision label; not moved"
                )),
                (Some(r), Some(false)) => Err(format!(
                    "latest: points to {theirs} at {}, which this commit does not descend from; not moved",
                    short(r)
                )),
                (Some(r), None) => Err(format!(
                    "latest: cannot tell whether this commit descends from {} (not in this clone? fetch with fetch-depth: 0); not moved",
                    short(r)
                )),
                (Some(_), Some(true)) => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
