//! `cargo xtask bench push`: the publish pipeline on the local stack (see `push`).
//!
//! `cargo xtask bench changes`: times change detection on synthetic monorepos (500 services,
//! 25k to 300k files, a short history, packed) — the `changed` binary as a whole process
//! against `git diff --name-only` on the same refs — and prints the figures: with the memo of
//! the same call (a repeated call), with the memo of a call at the base (the previous call was
//! one commit behind, as in CI or after a commit), and with no memo at all. On demand, never
//! in tests. Run it from a release build: `cargo run --release -p xtask -- bench changes`.

use crate::ui::out;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::BenchArgs;
use crate::exec::Runner;
use crate::tools::CommandSpec;
use crate::Ctx;

const SERVICES: usize = 500;
/// Services 0..WATCHERS watch `libs/common/**`; service i+1 builds FROM service i for i < CHAIN.
const WATCHERS: usize = 10;
const CHAIN: usize = 20;
/// Every service also watches WATCH_EACH of LIBS library directories (`libs/lib-NN/**`):
/// 3,000 watch globs, 50 distinct, as in a monorepo where services list what they use.
const LIBS: usize = 50;
const WATCH_EACH: usize = 6;

pub fn run(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    match args.what {
        crate::cli::BenchTarget::Changes => changes(ctx, args),
        crate::cli::BenchTarget::Push => push(ctx, args),
    }
}

/// Services in the push benchmark's repository.
const PUSH_SERVICES: usize = 20;
/// Services built per run in the `-j 1` / `-j 2` comparison.
const PARALLEL_SERVICES: usize = 4;

/// The publish pipeline on the local stack (its environment sourced), in a fresh repository
/// of 20 busybox services whose build has a one-second RUN step (re-run per commit):
/// publishing all of them; Slipway's own time per service (wall minus the tools' time, from
/// `--json`); `push --changed` and `push --all` with nothing to do (zero builds expected);
/// and 4 services at `-j 1` against `-j 2`, alternated, each on a fresh commit.
fn push(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    let registry = std::env::var("SLIPWAY_STACK_REGISTRY").map_err(|_| {
        anyhow::anyhow!("bench push needs the local stack: scripts/stack.sh up, then source the env file it prints")
    })?;
    let runner = ctx.runner(false);
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let dir = args.dir.join(format!("push-{stamp}"));
    std::fs::create_dir_all(&dir)?;
    let d = dir.display().to_string();
    let write = |rel: &str, text: &str| -> Result<()> {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(&dir))?;
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
    };
    write(
        "Cargo.toml",
        &format!("[workspace]\nmembers = []\n\n[workspace.metadata.images]\nregistries = [\"{registry}\"]\nprefix = \"bench-{stamp}\"\n"),
    )?;
    write("VERSION", "1.0.0\n")?;
    write(".gitignore", "/target/\n")?;
    let names: Vec<String> = (0..PUSH_SERVICES).map(|i| format!("svc-{i:02}")).collect();
    for n in &names {
        // The RUN step names the service: identical steps would be served from the cache.
        write(
            &format!("services/{n}/Dockerfile"),
            &format!("FROM busybox:1.35\nARG VCS_REF\nRUN echo \"{n} $VCS_REF\" > /ref && sleep 1\nCOPY f.txt /f.txt\nUSER 65534:65534\n"),
        )?;
        write(&format!("services/{n}/f.txt"), "0\n")?;
    }
    let git = |a: &[&str]| -> Result<()> {
        let mut c = CommandSpec::new("git")
            .args(["-C", &d])
            .args(a.iter().copied());
        for (k, v) in [
            ("GIT_AUTHOR_NAME", "bench"),
            ("GIT_AUTHOR_EMAIL", "bench@example.invalid"),
            ("GIT_COMMITTER_NAME", "bench"),
            ("GIT_COMMITTER_EMAIL", "bench@example.invalid"),
        ] {
            c = c.env(k, v);
        }
        runner.run(&c).map(|_| ())
    };
    git(&["init", "-q", "-b", "main"])?;
    let commit = |msg: &str| -> Result<()> {
        git(&["add", "-A"])?;
        git(&["commit", "-q", "-m", msg])
    };
    commit("bench")?;
    // One run of `push ARGS --json`: (wall seconds, the JSON).
    let push = |a: &[&str]| -> Result<(f64, serde_json::Value)> {
        let cmd = CommandSpec::new(exe.display().to_string())
            .args(["--repo", &d, "push", "--json"])
            .args(a.iter().copied());
        let t = Instant::now();
        let out = runner.probe(&cmd)?;
        let secs = t.elapsed().as_secs_f64();
        if !out.success() {
            bail!("{}", runner.failure(&cmd, &out));
        }
        Ok((secs, serde_json::from_str(&out.stdout)?))
    };
    let results = |v: &serde_json::Value, what: &str| {
        v["services"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["result"] == what).count())
    };
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    ctx.ui.info(format!(
        "bench push: {} ({profile} build), {PUSH_SERVICES} services in {d}, registry {registry}",
        exe.display()
    ));

    let (all_secs, all) = push(&["--all", "-j", "2"])?;
    let mut own: Vec<f64> = all["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["seconds"].as_f64().unwrap_or(0.0) - s["tool_seconds"].as_f64().unwrap_or(0.0))
        .collect();
    own.sort_by(|a, b| a.total_cmp(b));
    let published = results(&all, "published");

    let mut nothing_changed = Vec::new();
    let mut nothing_built = 0;
    for _ in 0..args.runs.clamp(1, 5) {
        let (s, v) = push(&["--changed"])?;
        nothing_changed.push(s);
        nothing_built += v["services"].as_array().map_or(0, Vec::len);
    }
    nothing_changed.sort_by(|a, b| a.total_cmp(b));
    let (again_secs, again) = push(&["--all", "-j", "2"])?;
    let reused = results(&again, "already published");

    // -j 1 against -j 2, alternated, each on a fresh commit (so every build runs).
    let some: Vec<&str> = names[..PARALLEL_SERVICES]
        .iter()
        .map(String::as_str)
        .collect();
    let mut j1 = Vec::new();
    let mut j2 = Vec::new();
    // -j 1: the wall time outside every service (plan, registry reads, report).
    let mut outside = Vec::new();
    for round in 0..2 {
        for (jobs, into) in [("1", &mut j1), ("2", &mut j2)] {
            for n in &some {
                write(&format!("services/{n}/f.txt"), &format!("{round}-{jobs}\n"))?;
            }
            commit(&format!("round {round} -j {jobs}"))?;
            let mut a = some.clone();
            a.extend(["-j", jobs]);
            let (s, v) = push(&a)?;
            if results(&v, "published") != PARALLEL_SERVICES {
                bail!("-j {jobs}: not every service was published: {v}");
            }
            if jobs == "1" {
                let inside: f64 = v["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["seconds"].as_f64())
                    .sum();
                outside.push(s - inside);
            }
            into.push(s);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (m1, m2) = (median(&mut j1), median(&mut j2));
    let serial = median(&mut outside);
    out!("| measurement | figure |");
    out!("|---|---|");
    out!("| publish {PUSH_SERVICES} services, -j 2 (build, scan, push) | {all_secs:.2} s, {published} published |");
    out!(
        "| Slipway's own time per service (wall − tools), median / max | {:.1} ms / {:.1} ms |",
        own.get(own.len() / 2).copied().unwrap_or(0.0) * 1000.0,
        own.last().copied().unwrap_or(0.0) * 1000.0
    );
    out!(
        "| `push --changed`, nothing changed, median of {} | {:.3} s, {nothing_built} services built |",
        nothing_changed.len(),
        nothing_changed[nothing_changed.len() / 2]
    );
    out!("| `push --all` again (all published) | {again_secs:.2} s, {reused} already published, {} built |", PUSH_SERVICES - reused);
    out!(
        "| {PARALLEL_SERVICES} services -j 1 (median of {}) | {m1:.2} s |",
        j1.len()
    );
    out!(
        "| {PARALLEL_SERVICES} services -j 2 (median of {}) | {m2:.2} s |",
        j2.len()
    );
    out!("| speed-up -j 2 / -j 1 | {:.2}x |", m1 / m2);
    out!(
        "| -j 1: time outside the services (plan, registry reads, report) | {:.2} s |",
        serial
    );
    Ok(())
}

fn changes(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    let runner = ctx.runner(false);
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    ctx.ui.info(format!(
        "bench: {} ({profile} build), {} runs each, {SERVICES} services",
        exe.display(),
        args.runs
    ));
    let mut rows = Vec::new();
    for &files in &args.files {
        let dir = args.dir.join(format!("files-{files}"));
        let fresh = !dir.join(".bench-refs").exists();
        let (base, head) =
            generate(&dir, files).with_context(|| format!("generating {}", dir.display()))?;
        if fresh {
            // Packed, as a clone is: loose objects would measure the generator, not git.
            let d = dir.display().to_string();
            runner.run(&CommandSpec::new("git").args(["-C", &d, "gc", "-q"]))?;
        }
        let changed = CommandSpec::new(exe.display().to_string()).args([
            "--repo",
            &dir.display().to_string(),
            "changed",
            "--json",
            "--base",
            &base,
            "--head",
            &head,
        ]);
        let diff = CommandSpec::new("git").args([
            "-C",
            &dir.display().to_string(),
            "diff",
            "--name-only",
            &base,
            &head,
        ]);
        // Check the answer before timing it: the same with and without the memo.
        let memo = dir.join(".git/slipway/changed-memo.json");
        let answer = |cmd: &CommandSpec| -> Result<serde_json::Value> {
            let out = runner.probe(cmd)?;
            if !out.success() {
                bail!("{}", runner.failure(cmd, &out));
            }
            Ok(serde_json::from_str(&out.stdout)?)
        };
        let _ = std::fs::remove_file(&memo);
        let v = answer(&changed)?;
        let mut exhaustive = changed.clone();
        exhaustive.args.push("--exhaustive".into());
        if answer(&changed)? != v || answer(&exhaustive)? != v {
            bail!("files={files}: `changed` with the memo disagrees with `--exhaustive`");
        }
        let selected = v["services"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["selected"] == true).count());
        let paths = runner.probe(&diff)?.stdout.lines().count();
        // The memo a call at the base leaves.
        let mut at_base = changed.clone();
        if let Some(h) = at_base.args.iter_mut().rev().find(|a| **a == head) {
            *h = base.clone();
        }
        let _ = std::fs::remove_file(&memo);
        answer(&at_base)?;
        let behind = std::fs::read(&memo).context("the memo a call at the base writes")?;
        let _ = std::fs::remove_file(&memo);
        answer(&changed)?;
        let same = std::fs::read(&memo).context("the memo a call writes")?;
        let t_warm = time(&runner, &changed, args.runs, &|| {
            std::fs::write(&memo, &same).context("restoring the memo")
        })?;
        let t_behind = time(&runner, &changed, args.runs, &|| {
            std::fs::write(&memo, &behind).context("restoring the memo")
        })?;
        let t_cold = time(&runner, &changed, args.runs, &|| {
            let _ = std::fs::remove_file(&memo);
            Ok(())
        })?;
        let t_diff = time(&runner, &diff, args.runs, &|| Ok(()))?;
        ctx.ui.info(format!(
            "files={files}: {paths} changed paths, {selected} services selected; changed median {:.1} ms (memo of the same call), {:.1} ms (memo one commit behind), {:.1} ms (no memo); git diff median {:.1} ms",
            t_warm.0, t_behind.0, t_cold.0, t_diff.0
        ));
        rows.push((files, paths, selected, [t_warm, t_behind, t_cold], t_diff));
    }
    out!("| files | changed paths | selected | `changed`, memo of the same call | memo one commit behind | no memo | `git diff --name-only` | memo / git diff |");
    out!("|---|---|---|---|---|---|---|---|");
    for (files, paths, selected, [w, b, c], d) in &rows {
        out!(
            "| {files} | {paths} | {selected} | {:.1} ({:.1}) | {:.1} ({:.1}) | {:.1} ({:.1}) | {:.1} ({:.1}) | {:.1}x / {:.1}x |",
            w.0,
            w.1,
            b.0,
            b.1,
            c.0,
            c.1,
            d.0,
            d.1,
            w.0 / d.0,
            b.0 / d.0
        );
    }
    out!("\nMedian (min) milliseconds of whole processes, measured in the same run.");
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if rows.len() > 1 {
            out!(
                "`changed` at {} files / at {} files: {:.2}x (memo of the same call), {:.2}x (one commit behind), {:.2}x (no memo) (medians)",
                last.0,
                first.0,
                last.3[0].0 / first.3[0].0,
                last.3[1].0 / first.3[1].0,
                last.3[2].0 / first.3[2].0
            );
        }
    }
    Ok(())
}

/// (median, min) wall milliseconds over `runs` runs, after one warm-up; `before` runs
/// before each, untimed.
fn time(
    runner: &Runner,
    cmd: &CommandSpec,
    runs: usize,
    before: &dyn Fn() -> Result<()>,
) -> Result<(f64, f64)> {
    before()?;
    runner.probe(cmd)?;
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        before()?;
        let t = Instant::now();
        let out = runner.probe(cmd)?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if !out.success() {
            bail!("{}", runner.failure(cmd, &out));
        }
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok((ms[ms.len() / 2], ms[0]))
}

/// A repository with `files` files under 500 services (built as git objects; only the small
/// per-service files the tool reads from disk are written out), ten commits of history, and a
/// last commit that changes 19 files: 15 in one service, 2 in a library ten services watch and
/// 2 in one of the 50 libraries every service picks six of.
/// Returns (base, head). Reused when it exists.
fn generate(dir: &Path, files: usize) -> Result<(String, String)> {
    let marker = dir.join(".bench-refs-v3");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        if let Some((b, h)) = text.trim().split_once(' ') {
            return Ok((b.to_string(), h.to_string()));
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let repo = git2::Repository::init(dir)?;
    let sig = git2::Signature::new(
        "bench",
        "bench@example.invalid",
        &git2::Time::new(1_700_000_000, 0),
    )?;
    let write_file = |rel: &str, text: &str| -> Result<()> {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
        std::fs::write(p, text)?;
        Ok(())
    };
    write_file("Cargo.toml", "[workspace]\nmembers = []\n\n[workspace.metadata.images]\nregistries = [\"127.0.0.1:5000\"]\n")?;
    write_file("VERSION", "1.0.0\n")?;
    let per_service = (files / SERVICES).max(3) - 2;
    let mut configs = Vec::new();
    for i in 0..SERVICES {
        let name = format!("svc-{i:03}");
        let mut toml = String::new();
        let mut watch: Vec<String> = (0..WATCH_EACH)
            .map(|k| format!("\"libs/lib-{:02}/**\"", (i * 7 + k) % LIBS))
            .collect();
        if i < WATCHERS {
            watch.push("\"libs/common/**\"".into());
        }
        toml.push_str(&format!("watch = [{}]\n", watch.join(", ")));
        if i > 0 && i <= CHAIN {
            toml.push_str(&format!("depends_on = [\"svc-{:03}\"]\n", i - 1));
        }
        // Each its own (real monorepos do not share one Dockerfile blob).
        let dockerfile = format!(
            "FROM busybox:1.35\nARG VERSION\nLABEL com.example.service={name}\nCOPY src/ /src/\nUSER 10001\n"
        );
        write_file(&format!("services/{name}/Dockerfile"), &dockerfile)?;
        write_file(&format!("services/{name}/service.toml"), &toml)?;
        configs.push((name, dockerfile, toml));
    }

    // Blobs are written once per content (later commits reuse all but the edited ones).
    let blobs = std::cell::RefCell::new(std::collections::HashMap::<String, git2::Oid>::new());
    let blob = |text: &str| -> Result<git2::Oid, git2::Error> {
        if let Some(id) = blobs.borrow().get(text) {
            return Ok(*id);
        }
        let id = repo.blob(text.as_bytes())?;
        blobs.borrow_mut().insert(text.to_string(), id);
        Ok(id)
    };
    // `touch(service, file)`: the version a file was last edited at, if ever.
    let tree_for = |touch: &dyn Fn(usize, usize) -> Option<u32>| -> Result<git2::Oid> {
        let mut services = repo.treebuilder(None)?;
        for (i, (name, dockerfile, toml)) in configs.iter().enumerate() {
            let mut svc = repo.treebuilder(None)?;
            svc.insert("Dockerfile", blob(dockerfile)?, 0o100644)?;
            svc.insert("service.toml", blob(toml)?, 0o100644)?;
            let mut src = repo.treebuilder(None)?;
            for chunk in 0..per_service.div_ceil(50) {
                let mut m = repo.treebuilder(None)?;
                for f in (chunk * 50)..((chunk + 1) * 50).min(per_service) {
                    // Distinct contents, as in a real repository: every file its own blob.
                    let text = match touch(i, f) {
                        Some(v) => format!("v{v} {i} {f}\n"),
                        None => format!("{i} {f}\n"),
                    };
                    m.insert(format!("file-{f:04}.txt"), blob(&text)?, 0o100644)?;
                }
                src.insert(format!("mod-{chunk:02}"), m.write()?, 0o040000)?;
            }
            svc.insert("src", src.write()?, 0o040000)?;
            services.insert(name, svc.write()?, 0o040000)?;
        }
        let mut common = repo.treebuilder(None)?;
        for f in 0..20 {
            let text = match touch(usize::MAX, f) {
                Some(v) => format!("v{v} lib {f}\n"),
                None => format!("lib {f}\n"),
            };
            common.insert(format!("lib-{f}.rs"), blob(&text)?, 0o100644)?;
        }
        let mut libs = repo.treebuilder(None)?;
        libs.insert("common", common.write()?, 0o040000)?;
        for l in 0..LIBS {
            let mut lib = repo.treebuilder(None)?;
            for f in 0..20 {
                let text = match touch(usize::MAX - 1 - l, f) {
                    Some(v) => format!("v{v} lib {l} {f}\n"),
                    None => format!("lib {l} {f}\n"),
                };
                lib.insert(format!("lib-{f}.rs"), blob(&text)?, 0o100644)?;
            }
            libs.insert(format!("lib-{l:02}"), lib.write()?, 0o040000)?;
        }
        let mut root = repo.treebuilder(None)?;
        root.insert("services", services.write()?, 0o040000)?;
        root.insert("libs", libs.write()?, 0o040000)?;
        root.insert(
            "Cargo.toml",
            blob(&std::fs::read_to_string(dir.join("Cargo.toml"))?)?,
            0o100644,
        )?;
        root.insert("VERSION", blob("1.0.0\n")?, 0o100644)?;
        Ok(root.write()?)
    };
    let mut parent: Option<git2::Oid> = None;
    let commit =
        |tree: git2::Oid, msg: &str, parent: &mut Option<git2::Oid>| -> Result<git2::Oid> {
            let t = repo.find_tree(tree)?;
            let parents: Vec<git2::Commit> = parent
                .iter()
                .map(|p| repo.find_commit(*p))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            let id = repo.commit(Some("HEAD"), &sig, &sig, msg, &t, &refs)?;
            *parent = Some(id);
            Ok(id)
        };
    // History: three files edited per commit, in services spread over the tree.
    let history = |upto: u32| {
        move |i: usize, f: usize| {
            (0..upto)
                .rev()
                .find(|step| i == (*step as usize * 37 + 5) % SERVICES && f < 3)
        }
    };
    for step in 1..=10u32 {
        let tree = tree_for(&history(step))?;
        commit(tree, &format!("history {step}"), &mut parent)?;
    }
    let base = parent.context("no history")?;
    // The change: 15 files in svc-000 (which starts a depends_on chain), 2 in libs/common
    // and 2 in libs/lib-00 (watched by 60 services).
    let old = history(10);
    let tree = tree_for(&|i, f| {
        if (i == 0 && f < 15) || ((i == usize::MAX || i == usize::MAX - 1) && f < 2) {
            Some(99)
        } else {
            old(i, f)
        }
    })?;
    let head = commit(tree, "the change", &mut parent)?;
    let (b, h) = (base.to_string(), head.to_string());
    std::fs::write(&marker, format!("{b} {h}\n"))?;
    Ok((b, h))
}

/// Where generated repositories go by default.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("slipway-bench")
}
