//! What counts as a service's input, on real git repositories: Rust graph shapes (crates
//! outside the service, `[patch]`, excluded path crates, `workspace = true`, targets outside
//! the crate, and what is *not* an input: dev-dependencies, other targets, disabled optional
//! features), Dockerfile forms that narrow or widen, Dockerfiles and contexts outside the
//! service, `<Dockerfile>.dockerignore`, the root VERSION, images of other services, and the
//! working tree (uncommitted digests, non-UTF-8 names, submodules), the memo. Every `changed`
//! call runs the fast path (with the memo earlier calls left, and with its own) and
//! `--exhaustive`, which must agree.

mod support;

use std::path::Path;

use support::repo::{between, changed, commit, digest, git, notes, reasons, selected, write};
use support::{stderr, stdout, xtask};

fn krate(r: &Path, dir: &str, name: &str, body: &str) {
    write(
        r,
        &format!("{dir}/Cargo.toml"),
        &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{body}"),
    );
    write(r, &format!("{dir}/src/lib.rs"), "// lib\n");
}

/// A service `a` whose binary is package `app-a` in `apps/a`, reaching crates every way
/// cargo allows — and a few that are not part of its release build.
fn rust_repo() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    write(
        r,
        "Cargo.toml",
        "[workspace]\nresolver = \"2\"\nmembers = [\"apps/*\", \"crates/*\"]\nexclude = [\"excluded/ex\"]\n\n\
         [workspace.dependencies]\nwsdep = { path = \"crates/wsdep\" }\n\n\
         [patch.crates-io]\npatched = { path = \"vendor/patched\" }\n\n\
         [workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    write(r, ".gitignore", "/target\n");
    write(
        r,
        "apps/a/Cargo.toml",
        "[package]\nname = \"app-a\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [[bin]]\nname = \"a\"\npath = \"../../bins/a/main.rs\"\n\n\
         [dependencies]\ncore = { path = \"../../crates/core\" }\nex = { path = \"../../excluded/ex\" }\n\
         wsdep = { workspace = true }\npatched = \"1\"\n",
    );
    write(r, "apps/a/src/lib.rs", "// app lib\n");
    write(r, "bins/a/main.rs", "fn main() {}\n");
    krate(
        r,
        "crates/core",
        "core",
        "[features]\ndefault = []\nextra = [\"dep:extra\"]\n\n\
         [dependencies]\nextra = { path = \"../extra\", optional = true }\n\n\
         [build-dependencies]\ngen = { path = \"../gen\" }\n\n\
         [dev-dependencies]\ntestkit = { path = \"../testkit\" }\n\n\
         [target.'cfg(windows)'.dependencies]\nwinonly = { path = \"../winonly\" }\n",
    );
    for c in ["extra", "gen", "testkit", "winonly", "wsdep"] {
        krate(r, &format!("crates/{c}"), c, "");
    }
    krate(r, "vendor/patched", "patched", "");
    krate(r, "excluded/ex", "ex", "");
    write(
        r,
        "services/a/Dockerfile",
        "FROM scratch\nCOPY bin/ /bin/\n",
    );
    write(
        r,
        "services/a/service.toml",
        "[cargo]\npackage = \"app-a\"\n",
    );
    // Hides everything from the context: the crates are compiled on the host anyway.
    write(r, "services/a/.dockerignore", "*\n");
    write(
        r,
        "services/site/Dockerfile",
        "FROM busybox:1.35\nCOPY www/ /www/\n",
    );
    write(r, "services/site/www/index.html", "hi\n");
    let base = commit(r, "base");
    (d, base)
}

#[test]
fn every_path_crate_a_binary_compiles_is_an_input_and_nothing_else() {
    let (d, base) = rust_repo();
    let r = d.path();
    let inputs = [
        (
            "apps/a/src/lib.rs",
            "dependency apps/a changed: apps/a/src/lib.rs",
        ),
        (
            "bins/a/main.rs",
            "dependency bins/a changed: bins/a/main.rs",
        ),
        ("crates/core/src/lib.rs", "dependency crates/core changed"),
        ("crates/gen/src/lib.rs", "dependency crates/gen changed"),
        ("crates/wsdep/src/lib.rs", "dependency crates/wsdep changed"),
        (
            "vendor/patched/src/lib.rs",
            "dependency vendor/patched changed",
        ),
        ("excluded/ex/src/lib.rs", "dependency excluded/ex changed"),
    ];
    let mut prev = base.clone();
    for (file, why) in inputs {
        write(r, file, "// edited\n");
        let head = commit(r, file);
        let v = between(r, &prev, &head);
        assert_eq!(selected(&v), ["a"], "{file}: {v}");
        assert!(
            reasons(&v, "a").starts_with(why),
            "{file}: {}",
            reasons(&v, "a")
        );
        prev = head;
    }
    // Not part of a release build for linux/amd64 with default features.
    for file in [
        "crates/testkit/src/lib.rs",
        "crates/winonly/src/lib.rs",
        "crates/extra/src/lib.rs",
    ] {
        write(r, file, "// edited\n");
        let head = commit(r, file);
        let v = between(r, &prev, &head);
        assert!(selected(&v).is_empty(), "{file} is not an input: {v}");
        prev = head;
    }
    // Turning the optional feature on makes `extra` an input.
    let core = std::fs::read_to_string(r.join("crates/core/Cargo.toml")).unwrap();
    write(
        r,
        "crates/core/Cargo.toml",
        &core.replace("default = []", "default = [\"extra\"]"),
    );
    let on = commit(r, "extra on");
    write(r, "crates/extra/src/lib.rs", "// edited again\n");
    let head = commit(r, "extra edit");
    let v = between(r, &on, &head);
    assert_eq!(selected(&v), ["a"], "{v}");
    assert!(
        reasons(&v, "a").contains("dependency crates/extra changed"),
        "{v}"
    );
}

#[test]
fn dockerfile_forms_narrow_only_where_understood() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    write(
        r,
        "Cargo.toml",
        "[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    write(
        r,
        "services/narrow/Dockerfile",
        "# syntax=docker/dockerfile:1\nFROM busybox:1.35\nARG CONF=conf\nCOPY --chown=1:1 [\"${CONF}/\", \"/conf/\"]\n\
         RUN --mount=type=bind,source=scripts,target=/s \\\n  # comment inside\n  sh /s/run.sh\n",
    );
    write(r, "services/narrow/conf/app.toml", "a = 1\n");
    write(r, "services/narrow/scripts/run.sh", "true\n");
    write(r, "services/narrow/notes.txt", "n\n");
    write(
        r,
        "services/wide/Dockerfile",
        "FROM busybox:1.35\nARG WHERE\nCOPY ${WHERE}/a /a\n",
    );
    write(r, "services/wide/notes.txt", "n\n");
    let base = commit(r, "base");
    for f in ["services/narrow/notes.txt", "services/wide/notes.txt"] {
        write(r, f, "edited\n");
    }
    let head = commit(r, "notes");
    let v = between(r, &base, &head);
    assert_eq!(selected(&v), ["wide"], "{v}");
    assert!(
        notes(&v, "wide").contains("services/wide/Dockerfile line 3")
            && notes(&v, "wide").contains("${WHERE}")
            && notes(&v, "wide").contains("the whole context is an input"),
        "{v}"
    );
    write(r, "services/narrow/scripts/run.sh", "echo\n");
    let head2 = commit(r, "script");
    let v = between(r, &head, &head2);
    assert_eq!(
        selected(&v),
        ["narrow"],
        "a bind-mounted source is an input"
    );
}

#[test]
fn dockerfile_and_context_outside_the_service_and_dockerfile_dockerignore() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    write(
        r,
        "Cargo.toml",
        "[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    write(
        r,
        "services/o/service.toml",
        "dockerfile = \"../../docker/o.Dockerfile\"\ncontext = \"../..\"\n",
    );
    write(
        r,
        "docker/o.Dockerfile",
        "FROM busybox:1.35\nCOPY shared/ /s/\n",
    );
    write(r, "docker/o.Dockerfile.dockerignore", "shared/*.md\n");
    write(r, ".dockerignore", "shared/*.txt\n");
    write(r, "shared/a.md", "a\n");
    write(r, "shared/b.txt", "b\n");
    let base = commit(r, "base");
    write(r, "shared/a.md", "edited\n");
    let h1 = commit(r, "md");
    let v = between(r, &base, &h1);
    assert!(
        selected(&v).is_empty(),
        "<Dockerfile>.dockerignore wins: {v}"
    );
    write(r, "shared/b.txt", "edited\n");
    let h2 = commit(r, "txt");
    let v = between(r, &h1, &h2);
    assert_eq!(
        selected(&v),
        ["o"],
        "the root .dockerignore is not the one used: {v}"
    );
    assert_eq!(reasons(&v, "o"), "COPY source changed: shared/b.txt");
    write(
        r,
        "docker/o.Dockerfile",
        "FROM busybox:1.35\nCOPY shared/ /srv/\n",
    );
    let h3 = commit(r, "dockerfile");
    let v = between(r, &h2, &h3);
    assert_eq!(reasons(&v, "o"), "changed: docker/o.Dockerfile");
}

#[test]
fn root_version_and_images_of_other_services() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    write(
        r,
        "Cargo.toml",
        "[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\nprefix = \"acme\"\n",
    );
    write(r, "VERSION", "1.0.0\n");
    write(
        r,
        "services/base/Dockerfile",
        "FROM busybox:1.35\nCOPY etc/ /etc/\n",
    );
    write(r, "services/base/etc/x.conf", "x\n");
    write(
        r,
        "services/app/Dockerfile",
        "ARG REG=127.0.0.1:1\nFROM ${REG}/acme/base:1\n",
    );
    write(r, "services/own/Dockerfile", "FROM busybox:1.35\n");
    write(r, "services/own/VERSION", "3.0.0\n");
    let base = commit(r, "base");
    write(r, "VERSION", "1.1.0\n");
    let h1 = commit(r, "bump");
    let v = between(r, &base, &h1);
    assert_eq!(selected(&v), ["app", "base"], "{v}");
    assert_eq!(reasons(&v, "base"), "VERSION 1.0.0 → 1.1.0");
    assert_eq!(reasons(&v, "own"), "no change in its inputs");
    write(r, "services/base/etc/x.conf", "y\n");
    let h2 = commit(r, "base conf");
    let v = between(r, &h1, &h2);
    assert_eq!(selected(&v), ["app", "base"]);
    assert_eq!(reasons(&v, "app"), "builds FROM base, which changed");
    assert!(
        notes(&v, "app").contains("line 2 reads the image of service `base`")
            && notes(&v, "app").contains("treated as depends_on"),
        "{v}"
    );
}

#[test]
fn the_working_tree_hashes_as_it_would_commit() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    write(
        r,
        "Cargo.toml",
        "[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    write(
        r,
        "services/web/Dockerfile",
        "FROM busybox:1.35\nCOPY www/ /www/\n",
    );
    write(r, "services/web/www/index.html", "one\n");
    commit(r, "base");
    write(r, "services/web/www/index.html", "two\n");
    write(r, "services/web/www/new/page.html", "new\n");
    let local = changed(r, &[], &[]);
    assert_eq!(selected(&local), ["web"]);
    let head = commit(r, "same content");
    let committed = changed(r, &["--base", &head, "--head", &head], &[]);
    assert_eq!(
        digest(&local, "web"),
        digest(&committed, "web"),
        "an uncommitted edit has the digest of the same content committed"
    );

    // A file name that is not UTF-8.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9.html");
        std::fs::write(r.join("services/web/www").join(name), "bytes\n").unwrap();
        let v = changed(r, &[], &[]);
        assert_eq!(selected(&v), ["web"], "{v}");
        std::fs::remove_file(r.join("services/web/www").join(name)).unwrap();
    }

    // A submodule checked out at another commit, not yet committed in the superproject.
    let sub = tempfile::tempdir().unwrap();
    git(sub.path(), &["init", "-q"]);
    write(sub.path(), "lib.txt", "v1\n");
    commit(sub.path(), "v1");
    let url = format!("file://{}", sub.path().display());
    git(
        r,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &url,
            "services/web/www/vendor",
        ],
    );
    let with_sub = commit(r, "add submodule");
    write(sub.path(), "lib.txt", "v2\n");
    commit(sub.path(), "v2");
    let inner = r.join("services/web/www/vendor");
    git(
        &inner,
        &[
            "-c",
            "protocol.file.allow=always",
            "pull",
            "-q",
            "origin",
            "main",
        ],
    );
    let v = changed(r, &["--base", &with_sub], &[]);
    assert_eq!(selected(&v), ["web"], "the submodule moved: {v}");
}

#[test]
fn a_release_tag_selects_in_changed_as_in_plan() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    write(
        r,
        "Cargo.toml",
        "[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    write(r, "VERSION", "1.0.0\n");
    for s in ["api", "web"] {
        write(
            r,
            &format!("services/{s}/Dockerfile"),
            "FROM busybox:1.35\n",
        );
    }
    write(r, "services/web/VERSION", "2.1.0\n");
    let head = commit(r, "base");
    let fake = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        support::fake_buildx(fake.path()).display()
    );
    let env = [
        ("PATH", path.as_str()),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_REF", "refs/tags/web/v2.1.0"),
        ("GITHUB_SHA", head.as_str()),
    ];
    let v = changed(r, &[], &env);
    assert_eq!(selected(&v), ["web"], "{v}");
    let out = xtask(r, &["plan", "--json", "--changed"], &env);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let planned: Vec<&str> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["selected"] == true)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["web"]);
}

fn plain_repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q"]);
    write(
        d.path(),
        "Cargo.toml",
        "[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    d
}

#[cfg(unix)]
#[test]
fn symbolic_links_are_followed_where_docker_follows_them() {
    use std::os::unix::fs::symlink;
    let d = plain_repo();
    let r = d.path();
    // A Dockerfile and a .dockerignore that are links to shared files.
    write(
        r,
        "services/a/Dockerfile",
        "FROM busybox:1.35\nCOPY . /app/\n",
    );
    std::fs::create_dir_all(r.join("services/b")).unwrap();
    symlink("../a/Dockerfile", r.join("services/b/Dockerfile")).unwrap();
    write(r, "docker/common.dockerignore", "secret.env\n");
    symlink(
        "../../docker/common.dockerignore",
        r.join("services/b/.dockerignore"),
    )
    .unwrap();
    write(r, "services/b/secret.env", "1\n");
    // COPY sources that go through links inside the context.
    write(
        r,
        "services/c/Dockerfile",
        "FROM busybox:1.35\nCOPY config /etc/app/\nCOPY link/app.conf /app.conf\n",
    );
    write(r, "services/c/real/app.conf", "1\n");
    symlink("real", r.join("services/c/config")).unwrap();
    symlink("real", r.join("services/c/link")).unwrap();
    let base = commit(r, "base");
    write(
        r,
        "services/a/Dockerfile",
        "FROM busybox:1.36\nCOPY . /app/\n",
    );
    let h1 = commit(r, "dockerfile");
    let v = between(r, &base, &h1);
    assert_eq!(selected(&v), ["a", "b"], "{v}");
    write(r, "docker/common.dockerignore", "*.md\n");
    let h2 = commit(r, "ignore");
    let v = between(r, &h1, &h2);
    assert_eq!(selected(&v), ["b"], "secret.env is in the context now: {v}");
    write(r, "services/c/real/app.conf", "2\n");
    let h3 = commit(r, "through a link");
    let v = between(r, &h2, &h3);
    assert_eq!(selected(&v), ["c"], "{v}");
    // A Dockerfile reached through two links: the one in the middle moves.
    write(r, "docker/r1.Dockerfile", "FROM busybox:1.35\n");
    write(r, "docker/r2.Dockerfile", "FROM busybox:1.36\n");
    symlink("r1.Dockerfile", r.join("docker/l.Dockerfile")).unwrap();
    std::fs::create_dir_all(r.join("services/d")).unwrap();
    symlink("../../docker/l.Dockerfile", r.join("services/d/Dockerfile")).unwrap();
    let h4 = commit(r, "two links");
    between(r, &h4, &h4);
    std::fs::remove_file(r.join("docker/l.Dockerfile")).unwrap();
    symlink("r2.Dockerfile", r.join("docker/l.Dockerfile")).unwrap();
    let h5 = commit(r, "relink");
    let v = between(r, &h4, &h5);
    assert_eq!(selected(&v), ["d"], "{v}");
    assert!(reasons(&v, "d").contains("docker/l.Dockerfile"), "{v}");
    // In the working tree: a linked directory replaced by a real one.
    symlink("real", r.join("services/c/conf2")).unwrap();
    let h6 = commit(r, "conf2 link");
    std::fs::remove_file(r.join("services/c/conf2")).unwrap();
    write(r, "services/c/conf2/x", "1\n");
    let v = changed(r, &["--base", &h6], &[]);
    assert!(
        v["changed_paths"]
            .to_string()
            .contains("services/c/conf2/x"),
        "{v}"
    );
}

/// The memo (`.git/slipway/changed-memo.json`) is what makes repeated calls fast; every call
/// in these suites runs with and without it (`support::repo::changed`). Here: the cases a
/// review found, and proof that it is used at all.
#[test]
fn the_memo_answers_as_a_fresh_read_would() {
    let d = plain_repo();
    let r = d.path();
    write(r, "services/a/Dockerfile", "FROM busybox:1.35\n");
    write(r, "services/b/Dockerfile", "FROM 127.0.0.1:1/a:latest\n");
    write(
        r,
        "services/c/Dockerfile",
        "FROM busybox:1.35\nCOPY src/ /src/\n",
    );
    write(r, "services/c/src/main.sh", "1\n");
    write(r, "services/c/service.toml", "watch = [\"libs/x/**\"]\n");
    write(r, "services/e/Dockerfile", "FROM 127.0.0.1:1/c:latest\n");
    write(r, "libs/x/lib.sh", "1\n");
    write(r, "libs/y/lib.sh", "1\n");
    let c0 = commit(r, "base");
    between(r, &c0, &c0);
    // Another service's image renamed: b no longer builds on a.
    write(r, "services/a/service.toml", "image = \"a2\"\n");
    let c1 = commit(r, "rename a");
    let v = between(r, &c0, &c1);
    assert_eq!(selected(&v), ["a", "b"], "{v}");
    assert!(reasons(&v, "b").contains("no longer builds on a"), "{v}");
    // A service evaluated in full at the base still finds the image of one read light.
    write(r, "services/b/service.toml", "# a comment\n");
    let c2 = commit(r, "comment");
    let v = between(r, &c1, &c2);
    assert_eq!(selected(&v), Vec::<String>::new(), "{v}");
    write(
        r,
        "services/b/Dockerfile",
        "FROM 127.0.0.1:1/a2:latest\nRUN true\n",
    );
    let c2b = commit(r, "b's Dockerfile");
    between(r, &c2, &c2b);
    write(
        r,
        "services/b/Dockerfile",
        "FROM 127.0.0.1:1/a2:latest\nRUN false\n",
    );
    let c2c = commit(r, "b's Dockerfile again");
    let v = between(r, &c2b, &c2c);
    assert_eq!(selected(&v), ["b"], "{v}");
    assert_eq!(reasons(&v, "b"), "changed: services/b/Dockerfile", "{v}");
    // A watched library: c is read light, e (FROM c) follows it.
    write(r, "libs/x/lib.sh", "2\n");
    write(r, "libs/y/lib.sh", "2\n");
    let c3 = commit(r, "libs");
    let v = between(r, &c2c, &c3);
    assert_eq!(selected(&v), ["c", "e"], "{v}");
    assert!(reasons(&v, "c").contains("watched (libs/x/**)"), "{v}");
    // The memo is used: a digest planted in it for a service no change reaches comes back.
    let memo = r.join(".git/slipway/changed-memo.json");
    let text = std::fs::read_to_string(&memo).unwrap();
    let real = digest(&v, "a");
    assert!(text.contains(&real), "{text}");
    let planted = format!("sha256:{}", "0".repeat(64));
    std::fs::write(&memo, text.replace(&real, &planted)).unwrap();
    let out = xtask(
        r,
        &["changed", "--json", "--base", &c2c, "--head", &c3],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(digest(&v, "a"), planted, "{v}");
    assert_eq!(selected(&v), ["c", "e"], "{v}");
    // … and not by --exhaustive, nor when it is not whole.
    let run = |args: &[&str]| -> serde_json::Value {
        let out = xtask(r, args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let v = run(&[
        "changed",
        "--json",
        "--exhaustive",
        "--base",
        &c2c,
        "--head",
        &c3,
    ]);
    assert_eq!(digest(&v, "a"), real);
    std::fs::write(&memo, "{\"key\":").unwrap();
    let v = run(&["changed", "--json", "--base", &c2c, "--head", &c3]);
    assert_eq!(digest(&v, "a"), real, "{v}");
}

#[test]
fn onbuild_in_a_parent_image_reads_the_child_context() {
    let d = plain_repo();
    let r = d.path();
    write(
        r,
        "services/base/Dockerfile",
        "FROM busybox:1.35\nONBUILD COPY app/ /app/\n",
    );
    write(r, "services/child/Dockerfile", "FROM 127.0.0.1:1/base\n");
    write(r, "services/child/app/main.sh", "1\n");
    let base = commit(r, "base");
    write(r, "services/child/app/main.sh", "2\n");
    let head = commit(r, "child app");
    let v = between(r, &base, &head);
    assert_eq!(selected(&v), ["child"], "{v}");
    assert!(notes(&v, "child").contains("ONBUILD"), "{v}");
}

#[test]
fn cargo_quirks_count_as_cargo_counts_them() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    // No `resolver`: a virtual workspace defaults to resolver 1.
    write(
        r,
        "Cargo.toml",
        "[workspace]\nmembers = [\"apps/*\", \"crates/*\"]\n\n[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    krate(
        r,
        "crates/core",
        "core",
        "[features]\nextra = [\"dep:extra\"]\n[dependencies]\nextra = { path = \"../extra\", optional = true }\n",
    );
    krate(r, "crates/extra", "extra", "");
    krate(r, "crates/dbg", "dbg", "");
    write(
        r,
        "apps/a/Cargo.toml",
        "[package]\nname = \"a\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncore = { path = \"../../crates/core\" }\n\n\
         [dev-dependencies]\ncore = { path = \"../../crates/core\", features = [\"extra\"] }\n\n\
         [target.'cfg(debug_assertions)'.dependencies]\ndbg = { path = \"../../crates/dbg\" }\n",
    );
    write(r, "apps/a/src/main.rs", "fn main() {}\n");
    write(r, "services/a/Dockerfile", "FROM scratch\nCOPY bin/ /\n");
    write(r, "services/a/service.toml", "[cargo]\npackage = \"a\"\n");
    let base = commit(r, "base");
    for (file, why) in [
        (
            "crates/extra/src/lib.rs",
            "resolver 1 unifies dev-dependency features",
        ),
        (
            "crates/dbg/src/lib.rs",
            "cargo evaluates cfg(debug_assertions) as true",
        ),
    ] {
        write(r, file, "// edited\n");
        let head = commit(r, file);
        let v = between(r, &base, &head);
        assert_eq!(selected(&v), ["a"], "{why}: {v}");
        assert!(notes(&v, "a").contains("no Cargo.lock"), "{v}");
    }
    // A member manifest cargo cannot read: every Rust service is affected, with a note.
    let before = git(r, &["rev-parse", "HEAD"]);
    write(r, "crates/extra/Cargo.toml", "[package\nname = \"extra\"\n");
    let broken = commit(r, "broken manifest");
    let v = between(r, &before, &broken);
    assert_eq!(selected(&v), ["a"], "{v}");
    assert!(
        notes(&v, "a").contains("cargo cannot load the workspace"),
        "{v}"
    );
}

#[test]
fn gitattributes_and_implicit_cycles() {
    let d = plain_repo();
    let r = d.path();
    write(
        r,
        "services/a/Dockerfile",
        "FROM 127.0.0.1:1/b\nCOPY run.sh /run.sh\n",
    );
    write(r, "services/a/run.sh", "echo hi\n");
    write(r, "services/b/Dockerfile", "FROM 127.0.0.1:1/a\n");
    let base = commit(r, "base");
    write(r, ".gitattributes", "*.sh text eol=crlf\n");
    let head = commit(r, "attributes");
    let v = between(r, &base, &head);
    assert!(selected(&v).contains(&"a".to_string()), "{v}");
    assert!(
        reasons(&v, "a").contains(".gitattributes (it decides how files are checked out)"),
        "{v}"
    );
    let cycle = format!("{};{}", notes(&v, "a"), notes(&v, "b"));
    assert!(cycle.contains("a cycle"), "{v}");
}

/// In a checkout, what is compared is what a commit of it would hold: ignored files are not
/// there, links are links (a review found the configuration read from disk instead).
#[cfg(unix)]
#[test]
fn the_working_tree_is_read_as_git_would_commit_it() {
    use std::os::unix::fs::symlink;
    let d = plain_repo();
    let r = d.path();
    write(r, ".gitignore", "services/a/VERSION\n/services/gen/\n");
    write(r, "services/a/Dockerfile", "FROM busybox:1.35\n");
    write(r, "services/b/Dockerfile", "FROM 127.0.0.1:1/a:latest\n");
    std::fs::create_dir_all(r.join("services/c")).unwrap();
    symlink("../../docker/c.Dockerfile", r.join("services/c/Dockerfile")).unwrap();
    let base = commit(r, "base");
    // An ignored VERSION is not an input (CI would not have it either).
    write(r, "services/a/VERSION", "1.0.0\n");
    let v = changed(r, &["--base", &base], &[]);
    assert_eq!(selected(&v), Vec::<String>::new(), "{v}");
    write(r, "services/a/VERSION", "2.0.0\n");
    let v = changed(r, &["--base", &base], &[]);
    assert_eq!(selected(&v), Vec::<String>::new(), "{v}");
    // A Dockerfile link whose target appears (untracked): c was a service all along.
    write(r, "docker/c.Dockerfile", "FROM busybox:1.35\n");
    let v = changed(r, &["--base", &base], &[]);
    assert_eq!(selected(&v), ["c"], "{v}");
    // An ignored service directory and a linked one are not services.
    write(r, "services/gen/Dockerfile", "FROM busybox:1.35\n");
    write(r, "other/d/Dockerfile", "FROM busybox:1.35\n");
    symlink("../other/d", r.join("services/d")).unwrap();
    let v = changed(r, &["--base", &base], &[]);
    let names: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"], "{v}");
    // b no longer reads a's image: said, though a is not compared.
    write(r, "services/b/Dockerfile", "FROM busybox:1.35\n");
    let head = commit(r, "b alone");
    let v = between(r, &base, &head);
    assert!(reasons(&v, "b").contains("no longer builds on a"), "{v}");
    // A configuration file that is a link is refused, naming it.
    write(r, "conf/a.toml", "image = \"a2\"\n");
    symlink("../../conf/a.toml", r.join("services/a/service.toml")).unwrap();
    let out = xtask(r, &["changed", "--base", &base], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("services/a/service.toml is a symbolic link"),
        "{}",
        stderr(&out)
    );
}

/// A service whose configuration cannot be read at the base is selected, saying so; the others
/// are still compared (with the fast path and with --exhaustive alike).
#[test]
fn one_unreadable_configuration_at_the_base_leaves_the_others_compared() {
    let d = plain_repo();
    let r = d.path();
    write(r, "services/bad/Dockerfile", "FROM busybox:1.35\n");
    write(r, "services/bad/service.toml", "imagee = \"x\"\n");
    write(
        r,
        "services/ok/Dockerfile",
        "FROM busybox:1.35\nCOPY a /a\n",
    );
    write(r, "services/ok/a", "1\n");
    write(r, "services/still/Dockerfile", "FROM busybox:1.35\n");
    let base = commit(r, "base, bad config");
    write(r, "services/bad/service.toml", "image = \"x\"\n");
    write(r, "services/ok/a", "2\n");
    let head = commit(r, "fixed");
    let v = between(r, &base, &head);
    assert_eq!(selected(&v), ["bad", "ok"], "{v}");
    assert!(
        reasons(&v, "bad").contains("cannot be read") && reasons(&v, "bad").contains("imagee"),
        "{v}"
    );
    assert_eq!(reasons(&v, "ok"), "changed: services/ok/a", "{v}");
    assert_eq!(reasons(&v, "still"), "no change in its inputs", "{v}");
}
