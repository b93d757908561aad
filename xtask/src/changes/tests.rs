use super::*;

#[test]
fn literal_prefixes_of_globs() {
    assert_eq!(literal_prefix("docs/api/**"), "docs/api");
    assert_eq!(literal_prefix("docs/*.md"), "docs");
    assert_eq!(literal_prefix("*.md"), "");
    assert_eq!(literal_prefix("rust-toolchain.toml"), "rust-toolchain.toml");
    assert_eq!(literal_prefix(".cargo/**"), ".cargo");
}

#[test]
fn lists_are_short() {
    assert_eq!(list(&["a"]), "a");
    assert_eq!(list(&["a", "b", "c", "d", "e"]), "a, b, c, and 2 more");
}

#[test]
fn root_manifest_changes_that_matter() {
    let base = "[workspace]\nmembers = [\"a\"]\n[profile.release]\nlto = false\n";
    let same = |new: &str| root_manifest_change(Some(base.into()), Some(new.into()));
    assert_eq!(
        same("[workspace]\nmembers = [\"a\", \"b\"]\n[profile.release]\nlto = false\n"),
        None,
        "members only"
    );
    assert_eq!(
        same("[workspace]\nmembers = [\"a\"]\n[profile.release]\nlto = true\n").as_deref(),
        Some("global: Cargo.toml [profile.release] changed")
    );
    assert_eq!(
        same("[workspace]\nmembers = [\"a\"]\n[workspace.dependencies]\nserde = \"1\"\n[profile.release]\nlto = false\n").as_deref(),
        Some("global: Cargo.toml [workspace.dependencies] changed")
    );
    assert!(root_manifest_change(None, Some(base.into()))
        .unwrap()
        .contains("cannot be compared"));
}

#[test]
fn dependency_dirs_are_transitive_and_exclude_the_package_itself() {
    let p = |name: &str, dir: &str, deps: &[&str]| Package {
        name: name.into(),
        dir: dir.into(),
        bins: vec![],
        deps: deps.iter().map(|d| d.to_string()).collect(),
    };
    let pkgs = vec![
        p("api", "services/api", &["common"]),
        p("common", "crates/common", &["util"]),
        p("util", "crates/util", &[]),
        p("worker", "services/worker", &["other"]),
        p("other", "crates/other", &["api"]),
    ];
    assert_eq!(
        dependency_dirs("api", &pkgs),
        ["crates/common", "crates/util"]
    );
    assert_eq!(dependency_dirs("util", &pkgs), Vec::<String>::new());
    assert_eq!(
        dependency_dirs("worker", &pkgs),
        [
            "crates/common",
            "crates/other",
            "crates/util",
            "services/api"
        ]
    );
}
