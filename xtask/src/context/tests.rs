use super::*;

const HEAD: &str = "1111111111111111111111111111111111111111";
const MERGE: &str = "2222222222222222222222222222222222222222";
const PUSHED: &str = "3333333333333333333333333333333333333333";

fn git(branch: Option<&str>, dirty: bool) -> GitInfo {
    GitInfo {
        sha: HEAD.into(),
        branch: branch.map(String::from),
        commit_time: 0,
        dirty,
        parents: Vec::new(),
    }
}

fn release_set() -> globset::GlobSet {
    let mut b = globset::GlobSetBuilder::new();
    b.add(globset::Glob::new("release-*").unwrap());
    b.build().unwrap()
}

/// Detects with GitHub Actions variables `vars` (GITHUB_ACTIONS=true added when any) and event.
fn detect_with(vars: &[(&str, &str)], event: Option<&str>, git: &GitInfo) -> Result<BuildContext> {
    let mut all: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !vars.is_empty() {
        all.push(("GITHUB_ACTIONS".into(), "true".into()));
    }
    let env = move |k: &str| all.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let set = release_set();
    detect(&Facts {
        env: &env,
        event,
        git,
        git_default_branch: None,
        configured_default_branch: None,
        release_branches: &set,
    })
}

fn push_event(r: &str) -> String {
    format!(
        r#"{{"ref":"{r}","before":"0000000000000000000000000000000000000000","after":"{PUSHED}","repository":{{"default_branch":"main"}}}}"#
    )
}

struct Case<'a> {
    name: &'a str,
    vars: Vec<(&'a str, String)>,
    event: Option<String>,
    trigger: Trigger,
    branch: Option<String>,
    revision: &'a str,
    default: bool,
    release_branch: bool,
}

fn push(r: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_EVENT_NAME", "push".to_string()),
        ("GITHUB_REF", r.to_string()),
        ("GITHUB_SHA", PUSHED.to_string()),
    ]
}

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).unwrap()
}

fn tag_case<'a>(name: &'a str, tag: &str, version: &str, service: Option<&str>) -> Case<'a> {
    Case {
        name,
        vars: push(&format!("refs/tags/{tag}")),
        event: Some(push_event(&format!("refs/tags/{tag}"))),
        trigger: Trigger::Release {
            tag: tag.into(),
            version: v(version),
            service: service.map(String::from),
        },
        branch: None,
        revision: PUSHED,
        default: false,
        release_branch: false,
    }
}

#[test]
fn github_actions_contexts() {
    let pr_event = format!(
        r#"{{"action":"synchronize","number":42,"pull_request":{{"number":42,"head":{{"sha":"{HEAD}","ref":"feature/login"}},"base":{{"ref":"main","sha":"{PUSHED}"}}}},"repository":{{"default_branch":"main"}}}}"#
    );
    let long = format!("feature/{}", "x/".repeat(100));
    let branch_case = |name, branch: &str, default, release_branch| Case {
        name,
        vars: push(&format!("refs/heads/{branch}")),
        event: Some(push_event(&format!("refs/heads/{branch}"))),
        trigger: Trigger::Branch,
        branch: Some(branch.to_string()),
        revision: PUSHED,
        default,
        release_branch,
    };
    let cases = vec![
        Case {
            name: "pull_request uses the PR head, not the merge commit",
            vars: vec![
                ("GITHUB_EVENT_NAME", "pull_request".into()),
                ("GITHUB_REF", "refs/pull/42/merge".into()),
                ("GITHUB_SHA", MERGE.into()),
            ],
            event: Some(pr_event),
            trigger: Trigger::PullRequest {
                number: 42,
                base: "main".into(),
            },
            branch: Some("feature/login".into()),
            revision: HEAD,
            default: false,
            release_branch: false,
        },
        branch_case("push to main", "main", true, false),
        branch_case("push to release-1.2", "release-1.2", false, true),
        branch_case("a 200-character branch with slashes", &long, false, false),
        tag_case("tag v1.2.3", "v1.2.3", "1.2.3", None),
        tag_case("pre-release tag", "v1.3.0-rc.1", "1.3.0-rc.1", None),
        tag_case("hotfix tag", "v1.1.5", "1.1.5", None),
        tag_case(
            "per-service release tag",
            "api/v1.2.3",
            "1.2.3",
            Some("api"),
        ),
    ];
    for c in cases {
        let vars: Vec<(&str, &str)> = c.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // The checkout is the commit the event names (as actions/checkout does).
        let checkout = GitInfo {
            sha: c.revision.into(),
            ..git(None, false)
        };
        let got = detect_with(&vars, c.event.as_deref(), &checkout)
            .unwrap_or_else(|e| panic!("{}: {e:#}", c.name));
        assert!(got.notes.is_empty(), "{}: {:?}", c.name, got.notes);
        assert_eq!(got.trigger, c.trigger, "{}", c.name);
        assert_eq!(got.branch, c.branch, "{}", c.name);
        assert_eq!(got.revision, c.revision, "{}", c.name);
        assert_eq!(got.is_default_branch, c.default, "{}", c.name);
        assert_eq!(got.is_release_branch, c.release_branch, "{}", c.name);
        assert!(!got.dirty, "{}: CI builds are never dirty", c.name);
    }
}

#[test]
fn local_checkouts() {
    let cx = detect_with(&[], None, &git(Some("main"), true)).unwrap();
    assert_eq!(cx.trigger, Trigger::Local);
    assert_eq!(
        (cx.branch.as_deref(), cx.revision.as_str()),
        (Some("main"), HEAD)
    );
    assert!(cx.dirty && cx.is_default_branch);
    assert_eq!(
        cx.describe(),
        "local checkout of main (uncommitted changes)"
    );
    let detached = detect_with(&[], None, &git(None, false)).unwrap();
    assert_eq!(detached.branch, None);
    assert_eq!(detached.describe(), "local checkout of a detached HEAD");
}

#[test]
fn default_branch_comes_from_config_then_event_then_origin_then_main() {
    let g = git(Some("trunk"), false);
    let set = release_set();
    let none = |_: &str| None;
    let facts = |configured, origin: Option<&str>| Facts {
        env: &none,
        event: None,
        git: &g,
        git_default_branch: origin.map(String::from),
        configured_default_branch: configured,
        release_branches: &set,
    };
    assert!(
        detect(&facts(None, Some("trunk")))
            .unwrap()
            .is_default_branch
    );
    assert!(
        !detect(&facts(None, None)).unwrap().is_default_branch,
        "falls back to main"
    );
    assert!(
        detect(&facts(Some("trunk"), Some("main")))
            .unwrap()
            .is_default_branch
    );
}

#[test]
fn broken_inputs_are_clear_errors() {
    let vars = [
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_REF", "refs/pull/7/merge"),
    ];
    let err = detect_with(
        &vars,
        Some(r#"{"number":7,"pull_request":{}}"#),
        &git(None, false),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no pull_request.head.sha"),
        "{err}"
    );
    let err = detect_with(&vars, Some("{not json"), &git(None, false)).unwrap_err();
    assert!(err.to_string().contains("is not JSON"), "{err}");
    // A tag that looks like a release but is not a well-formed one stays an error.
    let err = detect_with(
        &[("GITHUB_REF", "refs/tags/a/b/v1.0.0")],
        None,
        &git(None, false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("one service name"), "{err}");
    assert!(release_trigger("a/b/v1.0.0").is_err());
    assert!(release_trigger("1.0.0").is_ok(), "the v is optional");
}

#[test]
fn labels_name_the_tree_actually_built_on_pull_requests() {
    let event = format!(
        r#"{{"number":7,"pull_request":{{"number":7,"head":{{"sha":"{HEAD}","ref":"topic"}},"base":{{"ref":"main"}}}},"repository":{{"default_branch":"main"}}}}"#
    );
    let vars = |e: &'static str| vec![("GITHUB_EVENT_NAME", e), ("GITHUB_REF", "refs/heads/main")];
    // pull_request_target checks out the base tip: neither the head nor a merge of it.
    let base_tip = GitInfo {
        sha: PUSHED.into(),
        parents: vec!["4444444444444444444444444444444444444444".into()],
        ..git(Some("main"), false)
    };
    let cx = detect_with(&vars("pull_request_target"), Some(&event), &base_tip).unwrap();
    assert_eq!(cx.revision, PUSHED, "tags and labels name HEAD");
    assert_eq!(
        cx.pr_head.as_deref(),
        Some(HEAD),
        "change detection still sees the head"
    );
    assert!(
        cx.notes[0].contains("neither the pull request head"),
        "{:?}",
        cx.notes
    );
    // A synthetic merge of the head (actions/checkout on pull_request): the head, as documented.
    let merge = GitInfo {
        sha: MERGE.into(),
        parents: vec![PUSHED.into(), HEAD.into()],
        ..git(None, false)
    };
    let cx = detect_with(&vars("pull_request"), Some(&event), &merge).unwrap();
    assert_eq!(cx.revision, HEAD);
    assert!(cx.notes.is_empty());
}

#[test]
fn the_default_branch_is_never_guessed_silently() {
    let g = git(Some("master"), false);
    // A schedule payload has no repository.default_branch: scheduled runs are on it.
    let cx = detect_with(
        &[
            ("GITHUB_EVENT_NAME", "schedule"),
            ("GITHUB_REF", "refs/heads/master"),
        ],
        Some(r#"{"schedule":"0 3 * * *"}"#),
        &g,
    )
    .unwrap();
    assert_eq!(cx.default_branch, "master");
    assert!(cx.is_default_branch);
    assert!(cx.notes.is_empty());
    // Nothing names it: the guess is said out loud, with the setting to fix it.
    let cx = detect_with(
        &[
            ("GITHUB_EVENT_NAME", "workflow_dispatch"),
            ("GITHUB_REF", "refs/heads/master"),
        ],
        Some("{}"),
        &g,
    )
    .unwrap();
    assert_eq!(cx.default_branch, "main");
    assert!(cx.notes[0].contains("default_branch"), "{:?}", cx.notes);
}

#[test]
fn tags_that_are_not_releases_get_a_tag_context() {
    for tag in ["nightly", "release1", "1.2", "v1.2.3rc2", "api/nightly"] {
        let r = format!("refs/tags/{tag}");
        let cx = detect_with(
            &push(&r)
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
            None,
            &git(None, false),
        )
        .unwrap();
        assert_eq!(cx.trigger, Trigger::Tag { tag: tag.into() }, "{tag}");
    }
    // A GitHub release marked pre-release, whatever its version says.
    let cx = detect_with(
        &[
            ("GITHUB_EVENT_NAME", "release"),
            ("GITHUB_REF", "refs/tags/v2.0.0"),
        ],
        Some(r#"{"release":{"tag_name":"v2.0.0","prerelease":true}}"#),
        &git(None, false),
    )
    .unwrap();
    assert!(matches!(cx.trigger, Trigger::Release { .. }));
    assert!(cx.marked_prerelease);
}

#[test]
fn labels_name_head_when_the_event_names_another_commit() {
    // workflow_run checking out another commit, or a tag workflow that checks out a branch.
    let cx = detect_with(
        &[
            ("GITHUB_EVENT_NAME", "workflow_run"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_SHA", PUSHED),
        ],
        Some(r#"{"repository":{"default_branch":"main"}}"#),
        &git(Some("main"), false),
    )
    .unwrap();
    assert_eq!(cx.revision, HEAD, "the tree built");
    assert!(
        cx.notes[0].contains("is not the checked-out HEAD"),
        "{:?}",
        cx.notes
    );
    // An uppercase V is a release tag too (so VERSION is checked).
    let cx = detect_with(
        &[("GITHUB_REF", "refs/tags/V1.2.3")],
        None,
        &git(None, false),
    )
    .unwrap();
    assert!(
        matches!(cx.trigger, Trigger::Release { .. }),
        "{:?}",
        cx.trigger
    );
    // The configured default branch wins over a schedule's ref.
    let set = release_set();
    let env = |k: &str| match k {
        "GITHUB_ACTIONS" => Some("true".to_string()),
        "GITHUB_EVENT_NAME" => Some("schedule".to_string()),
        "GITHUB_REF" => Some("refs/heads/develop".to_string()),
        _ => None,
    };
    let cx = detect(&Facts {
        env: &env,
        event: Some("{}"),
        git: &git(Some("develop"), false),
        git_default_branch: None,
        configured_default_branch: Some("main"),
        release_branches: &set,
    })
    .unwrap();
    assert_eq!(cx.default_branch, "main");
    assert!(!cx.is_default_branch);
}
