use super::*;
use crate::context::BuildContext;

fn cx(trigger: Trigger, default: bool, release_branch: bool, dirty: bool) -> BuildContext {
    BuildContext {
        trigger,
        branch: Some("b".into()),
        revision: "r".into(),
        default_branch: "main".into(),
        is_default_branch: default,
        is_release_branch: release_branch,
        dirty,
        push_before: None,
        event: String::new(),
        event_base: None,
        pr_head: None,
        marked_prerelease: false,
        notes: Vec::new(),
    }
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn release(tag: &str) -> Trigger {
    Trigger::Release {
        tag: tag.into(),
        version: v(tag.trim_start_matches('v')),
        service: None,
    }
}

#[test]
fn templates_per_context() {
    let p = TagPolicy::default();
    let stable = v("1.2.3");
    let pr = Trigger::PullRequest {
        number: 1,
        base: "main".into(),
    };
    let cases: Vec<(BuildContext, &[&str], bool, &str)> = vec![
        (
            cx(Trigger::Local, true, false, false),
            &["{branch}", "{sha7}"],
            false,
            "",
        ),
        (
            cx(Trigger::Local, true, false, true),
            &["{branch}", "{sha7}"],
            false,
            "-dirty",
        ),
        (
            cx(pr, false, false, false),
            &["pr-{pr}", "{sha7}"],
            false,
            "",
        ),
        (
            cx(Trigger::Branch, true, false, false),
            &["{version}", "{branch}", "{sha7}", "{timestamp}"],
            true,
            "",
        ),
        (
            cx(Trigger::Branch, false, true, false),
            &["{version}", "{branch}", "{sha7}"],
            false,
            "",
        ),
        (
            cx(Trigger::Branch, false, false, false),
            &["{branch}", "{sha7}"],
            false,
            "",
        ),
        (
            cx(release("v1.2.3"), false, false, false),
            &["v{version}", "{version}", "{major}.{minor}", "{major}"],
            true,
            "",
        ),
    ];
    for (c, templates, latest, suffix) in cases {
        let w = wanted(&p, &c, &stable, None);
        assert_eq!(w.templates, templates, "{}", c.describe());
        assert_eq!(w.latest, latest, "{}", c.describe());
        assert_eq!(w.suffix, suffix, "{}", c.describe());
    }
}

#[test]
fn pre_releases_get_only_their_full_version_and_never_latest() {
    let p = TagPolicy::default();
    let rc = v("1.3.0-rc.1");
    let w = wanted(
        &p,
        &cx(release("v1.3.0-rc.1"), false, false, false),
        &rc,
        None,
    );
    assert_eq!(w.templates, ["v{version}", "{version}"]);
    assert!(!w.latest);
    let dev = v("0.2.0-dev");
    let w = wanted(&p, &cx(Trigger::Branch, true, false, false), &dev, None);
    assert!(!w.latest);
    assert_eq!(
        w.notes,
        ["latest: 0.2.0-dev is a pre-release; latest never points at one"]
    );
}

#[test]
fn latest_rule_is_configurable() {
    let stable = v("1.2.3");
    let main = cx(Trigger::Branch, true, false, false);
    let tag = cx(release("v1.2.3"), false, false, false);
    let with = |rule| TagPolicy {
        latest: rule,
        ..TagPolicy::default()
    };
    assert!(!wanted(&with(LatestRule::Release), &main, &stable, None).latest);
    assert!(wanted(&with(LatestRule::Release), &tag, &stable, None).latest);
    assert!(wanted(&with(LatestRule::DefaultBranch), &main, &stable, None).latest);
    assert!(!wanted(&with(LatestRule::DefaultBranch), &tag, &stable, None).latest);
    assert!(!wanted(&with(LatestRule::Never), &main, &stable, None).latest);
}

#[test]
fn explicit_tags_replace_the_lists_but_latest_still_obeys_the_rules() {
    let p = TagPolicy::default();
    let stable = v("1.2.3");
    let explicit = vec!["{sha7}".to_string(), "latest".to_string()];
    let w = wanted(
        &p,
        &cx(Trigger::Branch, true, false, false),
        &stable,
        Some(&explicit),
    );
    assert_eq!(w.templates, ["{sha7}"]);
    assert!(w.latest);
    let w = wanted(
        &p,
        &cx(Trigger::Branch, false, false, false),
        &stable,
        Some(&explicit),
    );
    assert!(!w.latest);
    assert!(
        w.notes[0].contains("not moved from a branch that is not the default branch"),
        "{:?}",
        w.notes
    );
    let only_sha = ["{sha7}".to_string()];
    let w = wanted(
        &p,
        &cx(Trigger::Branch, true, false, false),
        &stable,
        Some(&only_sha),
    );
    assert!(!w.latest, "explicit tags without latest ask for none");
}

#[test]
fn release_lines() {
    assert!(is_line_template("{major}") && is_line_template("{major}.{minor}"));
    assert!(!is_line_template("{version}") && !is_line_template("{major}.{minor}.{patch}"));
    let released = [v("1.1.4"), v("1.2.0"), v("1.3.0-rc.1")];
    assert!(line_verdict("{major}.{minor}", &v("1.1.5"), &released).is_ok());
    assert!(line_verdict("{major}", &v("1.1.5"), &released).is_err());
    assert!(
        line_verdict("{major}", &v("1.2.1"), &released).is_ok(),
        "pre-releases do not count"
    );
    assert!(line_verdict("{major}.{minor}", &v("1.1.3"), &released).is_err());
    let err = line_verdict("{major}", &v("0.4.0"), &[]).unwrap_err();
    assert!(err.contains("0.x has no stable major line"), "{err}");
    assert!(line_verdict("{major}.{minor}", &v("0.4.0"), &[]).is_ok());
}

#[test]
fn latest_verdicts() {
    let ours = v("1.2.3");
    let present = |version: Option<&str>, revision: Option<&str>, descends| LatestState::Present {
        version: version.map(String::from),
        revision: revision.map(String::from),
        ours_descends: descends,
    };
    assert!(latest_verdict(&ours, &[], &LatestState::Absent, false).is_ok());
    assert!(latest_verdict(
        &ours,
        &[],
        &present(Some("1.2.2"), Some("abc"), Some(true)),
        false
    )
    .is_ok());
    assert!(
        latest_verdict(
            &ours,
            &[],
            &present(Some("1.2.3"), Some("abc"), Some(true)),
            false
        )
        .is_ok(),
        "idempotent re-run"
    );
    let cases = [
        (
            present(Some("1.3.0"), Some("abc"), Some(true)),
            "newer than 1.2.3; latest never moves backwards",
        ),
        (
            present(Some("1.2.0"), Some("abcdef0123"), Some(false)),
            "at abcdef0, which this commit does not descend from",
        ),
        (
            present(Some("1.2.0"), Some("abcdef0123"), None),
            "fetch with fetch-depth: 0",
        ),
        (
            present(None, Some("abc"), Some(true)),
            "no semver org.opencontainers.image.version label",
        ),
        (present(Some("1.2.0"), None, None), "has no revision label"),
        (
            LatestState::Unknown("connection refused".into()),
            "cannot read what latest points to now (connection refused)",
        ),
    ];
    for (state, want) in cases {
        let err = latest_verdict(&ours, &[], &state, false).unwrap_err();
        assert!(err.contains(want), "{state:?}: {err}");
    }
    let err = latest_verdict(
        &ours,
        &[v("1.3.0-rc.1"), v("2.0.0")],
        &LatestState::Absent,
        false,
    )
    .unwrap_err();
    assert!(err.contains("2.0.0 is already released"), "{err}");
    assert!(latest_verdict(&ours, &[v("1.3.0-rc.1")], &LatestState::Absent, false).is_ok());
}
