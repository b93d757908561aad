//! Executes a [`Plan`] through the [`Runner`]: the shared prepare steps, then each selected
//! service's steps with up to `jobs` services at once, reading back what steps produce
//! (image ids, digests) and checking built images. One failing service does not hide another.

use crate::ui::out;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::exec::Runner;
use crate::plan::{Plan, ServicePlan, Step};
use crate::tools::docker;
use crate::ui::Ui;

/// What happened to one selected service.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub name: String,
    pub images: Vec<String>,
    /// `None` when the service was not attempted (an earlier failure stopped the run).
    pub error: Option<String>,
    pub attempted: bool,
    pub image_id: Option<String>,
    /// Pushed reference → digest.
    pub digests: BTreeMap<String, String>,
    /// Bytes, when the image was inspected.
    pub size: Option<u64>,
    /// The built image declares a HEALTHCHECK (read by the verify step).
    pub has_healthcheck: bool,
    /// Seconds the image's HEALTHCHECK settings may need to report (0: none).
    pub health_budget: u64,
    /// Findings per severity, when the image was scanned.
    pub vulnerabilities: Option<BTreeMap<String, usize>>,
    /// `repo@digest` signed (and verified) by this run, or found already signed, with the
    /// command that verifies it.
    pub signed: Vec<String>,
    pub seconds: f64,
    /// Of `seconds`, the time spent in the tools (docker, trivy, skopeo, cosign…); the rest is
    /// Slipway's own.
    pub tool_seconds: f64,
    /// The CycloneDX SBOM converted from this run's scan.
    pub sbom: Option<std::path::PathBuf>,
    /// `repo@digest` whose SBOM attestation this run attached (or found) and verified.
    pub attested: Vec<String>,
    /// This service's content digest (the `dev.slipway.input-digest` label it is built with).
    pub input_digest: Option<String>,
    /// What the run decided for this service on the way (base images it read).
    pub notes: Vec<String>,
    /// Already published with the same inputs: nothing was built, missing tags were added.
    pub reused: bool,
    /// Every command this service ran, with its whole output (`target/slipway/logs/`).
    pub log: Option<std::path::PathBuf>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.attempted && self.error.is_none()
    }
}

pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
}

pub fn execute(plan: &Plan, runner: &Runner, ui: &Ui, opts: &Options) -> Vec<Outcome> {
    let selected: Vec<&ServicePlan> = plan.services.iter().filter(|s| s.selected).collect();
    let blank = |s: &ServicePlan| Outcome {
        name: s.name.clone(),
        images: s.images.clone(),
        ..Outcome::default()
    };
    for step in &plan.prepare {
        let task = ui.task("prepare");
        task.step(&step.label());
        if let Err(e) = run_step(step, runner, &mut Outcome::default()) {
            task.finish("failed");
            let msg = format!("{:#}", e.context("the shared prepare step failed"));
            return selected
                .iter()
                .map(|s| Outcome {
                    attempted: true,
                    error: Some(msg.clone()),
                    ..blank(s)
                })
                .collect();
        }
        task.finish("done");
    }
    let jobs = if runner.dry_run { 1 } else { opts.jobs.max(1) };
    let sched = Schedule::new(&selected);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Outcome>> = Mutex::new(selected.iter().map(|s| blank(s)).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(selected.len()) {
            scope.spawn(|| {
                while let Some(next) = sched.next(&stop) {
                    let i = next.index();
                    let outcome = match next {
                        Next::Run(i) => {
                            let bases = bases_built(&selected, i, &results);
                            run_service(selected[i], runner, ui, &bases)
                        }
                        Next::Skip(i, why) => Outcome {
                            attempted: true,
                            error: Some(why),
                            ..blank(selected[i])
                        },
                    };
                    let ok = outcome.error.is_none();
                    if !ok && !opts.keep_going {
                        stop.store(true, Ordering::SeqCst);
                    }
                    results.lock().expect("results lock")[i] = outcome;
                    sched.finish(i, ok);
                }
            });
        }
    });
    results.into_inner().expect("results lock")
}

/// `step` reading the image by the id this run's build produced instead of its tag (a tag in
/// the local store can be moved by another run on the same daemon).
fn with_image_id(step: &Step, images: &[String], id: &str) -> Step {
    let mut step = step.clone();
    if let Step::Verify { command, .. }
    | Step::Scan { command, .. }
    | Step::Health { run: command, .. } = &mut step
    {
        for a in command.args.iter_mut().filter(|a| images.contains(a)) {
            *a = id.to_string();
        }
    }
    step
}

/// What a base image reference is pinned to.
#[derive(Debug, Clone)]
struct Pin {
    reference: String,
    service: String,
    /// `repo@digest` in a registry, when there is one.
    at: Option<String>,
    /// The image in the local Docker, when this run built it.
    image_id: Option<String>,
    how: &'static str,
}

/// The base images service `i` reads, pinned: to what this run built or found published for
/// this commit (a selected base), or to what the plan found published (a base not selected).
fn bases_built(selected: &[&ServicePlan], i: usize, results: &Mutex<Vec<Outcome>>) -> Vec<Pin> {
    let results = results.lock().expect("results lock");
    selected[i]
        .base_images
        .iter()
        .filter_map(|b| {
            let repo = repo_of(&b.reference);
            let Some(j) = selected.iter().position(|s| s.name == b.service) else {
                return b.published.as_ref().map(|at| Pin {
                    reference: b.reference.clone(),
                    service: b.service.clone(),
                    at: Some(at.clone()),
                    image_id: None,
                    how: "published for this commit",
                });
            };
            let o = &results[j];
            if !o.ok() {
                return None;
            }
            let at = o.digests.iter().find_map(|(r, d)| {
                (r.rsplit_once(':').map(|(x, _)| x) == Some(repo)).then(|| format!("{repo}@{d}"))
            });
            (at.is_some() || o.image_id.is_some()).then(|| Pin {
                reference: b.reference.clone(),
                service: b.service.clone(),
                at,
                image_id: o.image_id.clone(),
                how: if o.reused {
                    "already published for this commit"
                } else {
                    "built in this run"
                },
            })
        })
        .collect()
}

/// `registry/repo` of `registry/repo:tag`.
fn repo_of(reference: &str) -> &str {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => &reference[..i],
        _ => reference,
    }
}

/// Makes the build read each base image as pinned, never what the reference held before.
/// buildx gets a named context by digest; the other builders read the local image store,
/// where the reference is tagged (after pulling the pinned digest when this run did not
/// build it).
fn pin_bases(
    build: &crate::tools::CommandSpec,
    bases: &[Pin],
    runner: &Runner,
    out: &mut Outcome,
) -> Result<crate::tools::CommandSpec> {
    let mut build = build.clone();
    let docker = build.program.clone();
    for p in bases {
        let what = match (&p.at, &p.image_id, docker::is_buildx(&build)) {
            (Some(at), _, true) => {
                build = docker::with_named_image(&build, &p.reference, at);
                at.clone()
            }
            (_, Some(id), _) => {
                runner.run(&docker::tag(&docker, id, &p.reference))?;
                id.clone()
            }
            (Some(at), None, false) => {
                runner.run_retrying(&docker::pull(&docker, at), 3)?;
                runner.run(&docker::tag(&docker, at, &p.reference))?;
                at.clone()
            }
            (None, None, _) => continue,
        };
        out.notes.push(format!(
            "reads {} as {what}, {} by {}",
            p.reference, p.how, p.service
        ));
    }
    Ok(build)
}

/// What a worker does next.
enum Next {
    Run(usize),
    /// Not built: what it builds on failed.
    Skip(usize, String),
}

impl Next {
    fn index(&self) -> usize {
        match self {
            Next::Run(i) | Next::Skip(i, _) => *i,
        }
    }
}

/// `depends_on` order under `-j`: a service starts when every selected service it builds on
/// has finished; if one of them failed, it is not built (and says why). Services that are not
/// selected are taken as already published.
struct Schedule {
    deps: Vec<Vec<usize>>,
    names: Vec<String>,
    state: Mutex<(Vec<usize>, usize, BTreeMap<usize, bool>)>,
    changed: std::sync::Condvar,
}

impl Schedule {
    fn new(selected: &[&ServicePlan]) -> Schedule {
        let index: BTreeMap<&str, usize> = selected
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let deps = selected
            .iter()
            .map(|s| {
                s.depends_on
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect()
            })
            .collect();
        Schedule {
            deps,
            names: selected.iter().map(|s| s.name.clone()).collect(),
            // pending (in plan order), running count, finished → ok
            state: Mutex::new(((0..selected.len()).collect(), 0, BTreeMap::new())),
            changed: std::sync::Condvar::new(),
        }
    }

    fn next(&self, stop: &AtomicBool) -> Option<Next> {
        let mut st = self.state.lock().expect("schedule lock");
        loop {
            if stop.load(Ordering::SeqCst) || crate::exec::interrupted() || st.0.is_empty() {
                return None;
            }
            let (pending, running, done) = &mut *st;
            let ready = pending
                .iter()
                .position(|&i| self.deps[i].iter().all(|d| done.contains_key(d)));
            if let Some(p) = ready {
                let i = pending.remove(p);
                *running += 1;
                if let Some(d) = self.deps[i].iter().find(|d| done.get(d) == Some(&false)) {
                    return Some(Next::Skip(
                        i,
                        format!("not built: it builds on {}, which failed", self.names[*d]),
                    ));
                }
                return Some(Next::Run(i));
            }
            if *running == 0 {
                // Nothing runs and nothing is ready: a cycle. Break it rather than hang.
                let i = pending.remove(0);
                *running += 1;
                return Some(Next::Run(i));
            }
            st = self.changed.wait(st).expect("schedule lock");
        }
    }

    fn finish(&self, i: usize, ok: bool) {
        let mut st = self.state.lock().expect("schedule lock");
        st.1 -= 1;
        st.2.insert(i, ok);
        self.changed.notify_all();
    }
}

fn run_service(svc: &ServicePlan, runner: &Runner, ui: &Ui, bases: &[Pin]) -> Outcome {
    let start = Instant::now();
    let tools_before = crate::exec::tool_time();
    let task = ui.task(&svc.name);
    let mut out = Outcome {
        name: svc.name.clone(),
        images: svc.images.clone(),
        attempted: true,
        input_digest: svc.labels.get(crate::plan::INPUT_LABEL).cloned(),
        reused: !svc.steps.iter().any(|s| matches!(s, Step::Build { .. }))
            && svc.steps.iter().any(|s| matches!(s, Step::Tag { .. })),
        ..Outcome::default()
    };
    let log = Path::new(crate::plan::WORK_DIR)
        .join("logs")
        .join(format!("{}.log", svc.name));
    let _guard = if runner.dry_run {
        None
    } else {
        match crate::exec::log_to(&runner.root.join(&log)) {
            Ok(g) => {
                out.log = Some(log);
                Some(g)
            }
            Err(e) => {
                ui.info(format!("[{}] {e:#}: running without a log", svc.name));
                None
            }
        }
    };
    for step in &svc.steps {
        if crate::exec::interrupted() {
            out.error = Some(format!(
                "interrupted (Ctrl-C) before {}: nothing further was pushed",
                step.label()
            ));
            break;
        }
        task.step(&step.label());
        let by_id;
        let step = match (&out.image_id, step) {
            (Some(id), Step::Verify { .. } | Step::Scan { .. } | Step::Health { .. }) => {
                by_id = with_image_id(step, &svc.images, id);
                &by_id
            }
            _ => step,
        };
        let pinned;
        let step = match step {
            Step::Build {
                command,
                iidfile,
                metadata_file,
            } if !bases.is_empty() => match pin_bases(command, bases, runner, &mut out) {
                Ok(c) => {
                    pinned = Step::Build {
                        command: c,
                        iidfile: iidfile.clone(),
                        metadata_file: metadata_file.clone(),
                    };
                    for n in &out.notes {
                        ui.info(format!("[{}] {n}", svc.name));
                    }
                    &pinned
                }
                Err(e) => {
                    out.error = Some(format!("{}: {:#}", step.label(), e));
                    break;
                }
            },
            _ => step,
        };
        if let Err(e) = run_step(step, runner, &mut out) {
            out.error = Some(format!("{}: {:#}", step.label(), e));
            break;
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.tool_seconds = (crate::exec::tool_time() - tools_before).as_secs_f64();
    task.finish(if out.error.is_some() {
        "FAILED"
    } else {
        "done"
    });
    out
}

fn run_step(step: &Step, runner: &Runner, out: &mut Outcome) -> Result<()> {
    match step {
        Step::Compile { command } => {
            runner.run(command)?;
        }
        Step::Stage {
            context,
            dest,
            files,
        } => {
            if runner.dry_run {
                out!(
                    "# stage: copy {} to {} and add {}",
                    context.display(),
                    dest.display(),
                    files
                        .iter()
                        .map(|(from, to)| format!("{} as {}", from.display(), to.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Ok(());
            }
            stage(&runner.root, context, dest, files)?;
        }
        Step::Mirror {
            dockerfile,
            dest,
            mirror,
            keep,
        } => {
            let text = std::fs::read_to_string(runner.root.join(dockerfile))
                .with_context(|| format!("cannot read {}", dockerfile.display()))?;
            // This repository's own images (any registry, any tag) stay as written.
            let ours = |r: &str| {
                let path = r.split('@').next().unwrap_or(r);
                let path = match path.rfind(':') {
                    Some(i) if !path[i..].contains('/') => &path[..i],
                    _ => path,
                };
                keep.iter()
                    .any(|k| path == k || path.ends_with(&format!("/{k}")))
            };
            let (rewritten, moved, unsure) = crate::dockerfile::mirror(&text, mirror, &ours);
            for (from, to) in &moved {
                out.notes
                    .push(format!("reads {from} from the mirror: {to}"));
            }
            for r in &unsure {
                out.notes.push(if r.starts_with("FROM split") {
                    format!("a FROM split over lines is not redirected to the mirror {mirror}: write it on one line")
                } else {
                    format!(
                        "{r} holds a variable: not redirected to the mirror {mirror} (write the image itself, or set the argument to the mirror's reference)"
                    )
                });
            }
            if runner.dry_run {
                out!(
                    "# write {} with {} base image(s) from {mirror}",
                    dest.display(),
                    moved.len()
                );
                return Ok(());
            }
            let dest_abs = runner.root.join(dest);
            make_parent(runner, dest)?;
            std::fs::write(&dest_abs, rewritten)
                .with_context(|| format!("cannot write {}", dest_abs.display()))?;
            // BuildKit reads `<Dockerfile>.dockerignore` next to the Dockerfile first.
            let ignore = runner
                .root
                .join(format!("{}.dockerignore", dockerfile.display()));
            let copy = std::path::PathBuf::from(format!("{}.dockerignore", dest_abs.display()));
            if ignore.is_file() {
                std::fs::copy(&ignore, &copy)
                    .with_context(|| format!("cannot copy {}", ignore.display()))?;
            } else if copy.exists() {
                // Gone from the source: an old copy must not keep excluding files.
                std::fs::remove_file(&copy)
                    .with_context(|| format!("cannot remove {}", copy.display()))?;
            }
        }
        Step::Build {
            command,
            iidfile,
            metadata_file,
        } => {
            make_parent(runner, iidfile)?;
            // buildx may push in the build: a transient registry failure is tried again
            // (a build error is not).
            runner.run_retrying(command, 3)?;
            if runner.dry_run {
                return Ok(());
            }
            let iid = std::fs::read_to_string(runner.root.join(iidfile))
                .with_context(|| format!("the build wrote no image id to {}", iidfile.display()))?;
            out.image_id = Some(iid.trim().to_string());
            if let Some(meta) = metadata_file {
                if let Ok(text) = std::fs::read_to_string(runner.root.join(meta)) {
                    if let Ok(d) = docker::parse_metadata_digest(&text) {
                        for r in &out.images {
                            out.digests.insert(r.clone(), d.clone());
                        }
                    }
                }
            }
        }
        Step::Verify {
            command,
            platform,
            non_root,
            max_size,
        } => {
            let res = runner.run(command)?;
            if runner.dry_run {
                return Ok(());
            }
            let info = docker::parse_inspect(&res.stdout)?;
            check_image(&info, platform, *non_root)?;
            if let (true, Some(user)) = (*non_root, info.user_name()) {
                // A user by name is root if its uid is 0: read the image's /etc/passwd.
                let image = command.args.last().cloned().unwrap_or_default();
                let name = format!(
                    "slipway-passwd-{}-{}",
                    std::process::id(),
                    out.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                );
                let uid = runner
                    .run(&docker::create(&command.program, &name, &image))
                    .and_then(|_| {
                        runner.probe(&docker::copy_out(&command.program, &name, "/etc/passwd"))
                    });
                let _ = runner.probe(&docker::remove(&command.program, &name));
                match uid.ok().filter(|o| o.success()).and_then(|o| docker::passwd_uid(&o.stdout, user)) {
                    Some(0) => bail!(
                        "the image runs as root: USER `{user}` has uid 0 in its /etc/passwd; use a user with another uid, or set `non_root = false` in service.toml"
                    ),
                    Some(_) => {}
                    None => bail!(
                        "cannot tell whether USER `{user}` is root: it is not in the image's /etc/passwd; use a numeric USER (e.g. `USER 10001:10001`), or set `non_root = false` in service.toml"
                    ),
                }
            }
            out.size = Some(info.size);
            out.has_healthcheck = info.has_healthcheck();
            out.health_budget = info.health_budget_secs();
            if let Some(max) = max_size {
                if info.size > *max {
                    bail!(
                        "the image is {}, over its budget of {} (max_size in service.toml): make it smaller, or raise the budget",
                        crate::config::show_size(info.size),
                        crate::config::show_size(*max)
                    );
                }
            }
        }
        Step::Health {
            run,
            status,
            logs,
            remove,
            timeout_secs,
        } => {
            if runner.dry_run {
                runner.run(run)?;
                runner.run(remove)?;
                return Ok(());
            }
            if !out.has_healthcheck {
                return Ok(());
            }
            // The planned name plus this process: two runs of one commit on one daemon (two
            // clones, a matrix) must not remove or read each other's container.
            let planned = remove.args.last().cloned().unwrap_or_default();
            let name = format!("{planned}-{}", std::process::id());
            let named = |c: &crate::tools::CommandSpec| {
                let mut c = c.clone();
                for a in c.args.iter_mut().filter(|a| **a == planned) {
                    a.clone_from(&name);
                }
                c
            };
            let (run, status, logs, remove) =
                (named(run), named(status), named(logs), named(remove));
            let _ = runner.probe(&remove); // left by an interrupted run of this process id
                                           // Removed also when the process must leave at once (a second Ctrl-C, SIGTERM).
            let abort = crate::exec::on_abort(crate::exec::Cleanup::Command(remove.clone()));
            if let Err(e) = runner.run(&run) {
                let _ = runner.probe(&remove); // `run` can fail after creating it
                crate::exec::cleaned(abort);
                return Err(e);
            }
            // The image's own settings may need longer than the plan's floor.
            let timeout = (*timeout_secs).max(out.health_budget.min(900));
            let verdict = wait_healthy(runner, &status, timeout);
            let mut seen = runner
                .probe(&logs)
                .map(|o| format!("{}{}", o.stdout, o.stderr))
                .unwrap_or_default();
            let probes = runner
                .probe(&docker::health_log(&run.program, &name))
                .map(|o| o.stdout)
                .unwrap_or_default();
            let _ = runner.probe(&remove);
            crate::exec::cleaned(abort);
            if let Err(why) = verdict {
                if seen.trim().is_empty() {
                    seen = "(none)".into();
                }
                bail!(
                    "the image's HEALTHCHECK did not pass ({why}); nothing was pushed. It ran with --network none, so a check must not need the network (health_check = false in service.toml skips it).\nThe check's last results:\n{}\nThe container's last lines:\n{}",
                    if probes.trim().is_empty() { "(none)" } else { probes.trim_end() },
                    seen.trim_end()
                );
            }
        }
        Step::Scan {
            command,
            report,
            sarif,
            sbom,
            sbom_file,
            fail_on,
        } => {
            make_parent(runner, report)?;
            runner.run(command)?;
            runner.run(sarif)?;
            runner.run(sbom)?;
            out.sbom = Some(sbom_file.clone());
            if runner.dry_run {
                return Ok(());
            }
            let text = std::fs::read_to_string(runner.root.join(report))
                .with_context(|| format!("trivy wrote no report to {}", report.display()))?;
            let findings = crate::tools::trivy::parse_report(&text)?;
            out.vulnerabilities = Some(crate::tools::trivy::counts(&findings));
            let blocking: Vec<String> = findings
                .iter()
                .filter(|f| fail_on.contains(&f.severity))
                .map(|f| {
                    format!(
                        "{} {} in {} {}{}",
                        f.severity,
                        f.id,
                        f.package,
                        f.installed,
                        if f.fixed.is_empty() {
                            " (no fix yet)".to_string()
                        } else {
                            format!(" (fixed in {})", f.fixed)
                        }
                    )
                })
                .collect();
            if !blocking.is_empty() {
                bail!(
                    "the scan gate failed ({} finding(s) at {}): {}; nothing was pushed. Fix or update the package, or list the id in .trivyignore with a reason",
                    blocking.len(),
                    fail_on.join("/"),
                    blocking.join("; ")
                );
            }
        }
        Step::Tag {
            command,
            reference,
            digest,
        } => {
            if let Some(c) = command {
                runner.run_retrying(c, 3)?;
            }
            if !runner.dry_run {
                out.digests.insert(reference.clone(), digest.clone());
            }
        }
        Step::Sign {
            repositories,
            signer,
            cosign,
            skopeo,
            recursive,
        } => {
            let Some(signer) = signer else {
                bail!(
                    "no signing key or identity is configured ([workspace.metadata.images.sign])"
                );
            };
            for repo in repositories {
                sign_repository(runner, out, repo, signer, cosign, skopeo, *recursive)?;
            }
        }
        Step::CopyTag {
            from,
            reference,
            skopeo,
        } => {
            let repo = from.rsplit_once(':').map_or(from.as_str(), |(r, _)| r);
            let digest = if runner.dry_run {
                "<digest>".to_string()
            } else {
                out.digests.get(from).cloned().with_context(|| {
                    format!("{from} was not pushed, so {reference} has nothing to point at")
                })?
            };
            runner.run_retrying(
                &crate::tools::skopeo::copy(skopeo, &format!("{repo}@{digest}"), reference),
                3,
            )?;
            if !runner.dry_run {
                out.digests.insert(reference.clone(), digest);
            }
        }
        Step::Push { command, reference } => {
            // The local tag is shared with every run on this Docker daemon: point it at this
            // run's image right before the push, and check what the registry received after.
            if let (Some(id), false) = (&out.image_id, runner.dry_run) {
                runner.run(&docker::tag(&command.program, id, reference))?;
            }
            let res = match runner.run_retrying(command, 3) {
                Ok(res) => res,
                Err(e) if crate::tools::docker::is_immutable_refusal(&format!("{e:#}")) => {
                    let theirs = runner
                        .probe(&crate::tools::skopeo::inspect("skopeo", reference))
                        .ok()
                        .filter(|o| o.success())
                        .and_then(|o| crate::tools::skopeo::parse_inspect(&o.stdout).ok())
                        .map_or("another image (its digest could not be read)".into(), |i| {
                            i.digest
                        });
                    bail!(
                        "{reference} already holds {theirs}, and the repository keeps tags immutable; this run built image {} (different content, or it would have been reused). Nothing was overwritten. Bump VERSION for a new release, or let moving tags stay mutable (ECR: IMMUTABLE_WITH_EXCLUSION).\n{e:#}",
                        out.image_id.as_deref().unwrap_or("(unknown)")
                    );
                }
                Err(e) => return Err(e),
            };
            if runner.dry_run {
                return Ok(());
            }
            let digest = docker::parse_push_digest(&res.stdout).with_context(|| {
                format!(
                    "`docker push {reference}` printed no digest:\n{}",
                    res.stdout
                )
            })?;
            // What the registry received must carry this run's content digest (whatever the
            // image store: the label travels with the image).
            if let Some(ours) = &out.input_digest {
                let repo = reference
                    .rsplit_once(':')
                    .map_or(reference.as_str(), |(r, _)| r);
                let theirs = runner
                    .probe(&crate::tools::skopeo::inspect(
                        "skopeo",
                        &format!("{repo}@{digest}"),
                    ))
                    .ok()
                    .filter(|o| o.success())
                    .and_then(|o| crate::tools::skopeo::parse_inspect(&o.stdout).ok())
                    .and_then(|i| i.labels)
                    .and_then(|l| l.get(crate::plan::INPUT_LABEL).cloned());
                if let Some(theirs) = theirs.filter(|t| t != ours) {
                    bail!(
                        "the registry received another image than this run built: {reference} is now {digest}, whose content digest is {theirs}, not this run's {ours}. Another run on this Docker daemon retagged it between build and push; re-run this one"
                    );
                }
            }
            out.digests.insert(reference.clone(), digest);
        }
    }
    Ok(())
}

/// Signs what was pushed to `repo`, by its digest, unless the registry already holds that
/// digest's signature tag; then verifies the signature with the same key or identity.
fn sign_repository(
    runner: &Runner,
    out: &mut Outcome,
    repo: &str,
    signer: &crate::tools::cosign::Signer,
    cosign: &str,
    skopeo: &str,
    recursive: bool,
) -> Result<()> {
    use crate::tools::cosign as cs;
    let digest = if runner.dry_run {
        "<digest>".to_string()
    } else {
        out.digests
            .iter()
            .find(|(reference, _)| reference.rsplit_once(':').map(|(r, _)| r) == Some(repo))
            .map(|(_, d)| d.clone())
            .with_context(|| {
                format!("no digest was recorded for {repo}, so there is nothing to sign by digest (a tag is never signed)")
            })?
    };
    let at = format!("{repo}@{digest}");
    let verify = cs::verify(cosign, signer, &at);
    let shown = |note: &str| format!("{at}{note}; check it with: {}", runner.display(&verify));
    if !runner.dry_run {
        let sig = format!("{repo}:{}", cs::signature_tag(&digest));
        let probe = runner.probe(&crate::tools::skopeo::inspect(skopeo, &sig))?;
        if probe.success() {
            // A signature is there: it counts only if it verifies with our key or identity
            // (another key, a rotated one, or a broken signature is signed again).
            match runner.run_retrying(&verify, 3) {
                Ok(_) => {
                    out.signed.push(shown(" (already signed)"));
                    return Ok(());
                }
                Err(e) => eprintln!(
                    "{at} has a signature that does not verify with the configured key or identity; signing it: {}",
                    format!("{e:#}").lines().next().unwrap_or_default()
                ),
            }
        } else if !crate::tools::skopeo::is_not_found(&probe.stderr) {
            bail!(
                "cannot tell whether {at} is signed: {}",
                crate::tools::skopeo::error_message(&probe.stderr)
            );
        }
    }
    runner.run_retrying(&cs::sign(cosign, signer, &at, recursive), 3)?;
    runner
        .run_retrying(&verify, 3)
        .with_context(|| format!("{at} was signed but its signature does not verify"))?;
    if !runner.dry_run {
        out.signed.push(shown(""));
    }
    attest_sbom(runner, out, repo, &at, signer, cosign, skopeo)
}

/// Attaches this run's SBOM to `at` as a signed CycloneDX attestation (the registry holds it
/// beside the image, `sha256-<hex>.att`), unless one that verifies is there; then verifies it.
fn attest_sbom(
    runner: &Runner,
    out: &mut Outcome,
    repo: &str,
    at: &str,
    signer: &crate::tools::cosign::Signer,
    cosign: &str,
    skopeo: &str,
) -> Result<()> {
    use crate::tools::cosign as cs;
    let verify = cs::verify_sbom(cosign, signer, at);
    if !runner.dry_run {
        let digest = at.rsplit_once('@').map_or("", |(_, d)| d);
        let att = format!("{repo}:{}", cs::attestation_tag(digest));
        let probe = runner.probe(&crate::tools::skopeo::inspect(skopeo, &att))?;
        if probe.success() && runner.run_retrying(&verify, 3).is_ok() {
            out.attested.push(at.to_string());
            return Ok(());
        }
    }
    let sbom = match out.sbom.clone() {
        Some(s) => s,
        // Not scanned in this run (reused, or `sign`): the SBOM of the digest in the registry.
        None if runner.dry_run => return Ok(()),
        None => {
            if which::which("trivy").is_err() {
                eprintln!("{at}: no SBOM attestation (trivy is not installed to write one)");
                return Ok(());
            }
            let hex = at.rsplit_once(':').map_or("", |(_, h)| h);
            let file = std::path::Path::new(crate::plan::WORK_DIR)
                .join("out")
                .join(&out.name)
                .join(format!("sbom-{}.cdx.json", &hex[..hex.len().min(12)]));
            make_parent(runner, &file)?;
            runner.run(&crate::tools::trivy::sbom_remote("trivy", at, &file))?;
            out.sbom = Some(file.clone());
            file
        }
    };
    runner.run_retrying(
        &cs::attest_sbom(cosign, signer, at, &sbom.display().to_string()),
        3,
    )?;
    runner
        .run_retrying(&verify, 3)
        .with_context(|| format!("the SBOM attestation of {at} does not verify"))?;
    if !runner.dry_run {
        out.attested.push(at.to_string());
    }
    Ok(())
}

/// Creates the directory a tool will write `file` (relative to the root) into; nothing under
/// `--dry-run`.
fn make_parent(runner: &Runner, file: &Path) -> Result<()> {
    if runner.dry_run {
        return Ok(());
    }
    match runner.root.join(file).parent() {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        }
        None => Ok(()),
    }
}

/// Polls the container's health until `healthy`, a failure, or `timeout` seconds.
fn wait_healthy(
    runner: &Runner,
    status: &crate::tools::CommandSpec,
    timeout: u64,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if crate::exec::interrupted() {
            return Err("interrupted (Ctrl-C)".into());
        }
        let out = runner.probe(status).map_err(|e| format!("{e:#}"))?;
        let text = out.stdout.trim().to_string();
        // An exited container also reads `unhealthy`: say that it stopped.
        match text.split_whitespace().collect::<Vec<_>>().as_slice() {
            [state, ..] if *state == "exited" || *state == "dead" => {
                return Err(format!("the container {state} before it was healthy"))
            }
            [_, "healthy"] => return Ok(()),
            [_, "unhealthy"] => return Err("unhealthy".into()),
            _ => {}
        }
        if start.elapsed().as_secs() >= timeout {
            return Err(format!("not healthy after {timeout} s (last: {text})"));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The image is for the platform asked for (the classic builder silently builds the host's
/// platform) and, when required, does not run as root.
pub fn check_image(info: &docker::ImageInfo, platform: &str, non_root: bool) -> Result<()> {
    let got = info.platform();
    let wanted_parts = platform.split('/').count();
    let comparable: String = got
        .split('/')
        .take(wanted_parts)
        .collect::<Vec<_>>()
        .join("/");
    if comparable != platform {
        bail!("the image was built for {got}, not {platform}: this builder cannot build for another platform; install docker buildx (with QEMU or a native builder for {platform})");
    }
    if non_root && info.runs_as_root() {
        bail!(
            "the image runs as root (USER is `{}`): add `USER 10001:10001` (or another non-root user) to the Dockerfile, or set `non_root = false` in service.toml",
            info.config.user
        );
    }
    Ok(())
}

/// Copies `context` to `dest` (fresh) and adds the compiled files.
fn stage(
    root: &Path,
    context: &Path,
    dest: &Path,
    files: &[(std::path::PathBuf, std::path::PathBuf)],
) -> Result<()> {
    let dest_abs = root.join(dest);
    if dest_abs.exists() {
        std::fs::remove_dir_all(&dest_abs)
            .with_context(|| format!("cannot clear {}", dest_abs.display()))?;
    }
    copy_dir(&root.join(context), &dest_abs)?;
    for (from, to) in files {
        let from_abs = root.join(from);
        if !from_abs.is_file() {
            bail!(
                "{} is missing: the compile step did not produce it (is the Rust target installed? `rustup target list --installed`)",
                from.display()
            );
        }
        let to_abs = dest_abs.join(to);
        if let Some(dir) = to_abs.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(&from_abs, &to_abs).with_context(|| {
            format!("cannot copy {} to {}", from_abs.display(), to_abs.display())
        })?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(arch: &str, user: &str) -> docker::ImageInfo {
        docker::parse_inspect(&format!(
            r#"{{"Id":"sha256:x","Architecture":"{arch}","Os":"linux","Config":{{"User":"{user}"}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn image_checks() {
        assert!(check_image(&info("amd64", "10001"), "linux/amd64", true).is_ok());
        let err = check_image(&info("amd64", "10001"), "linux/arm64", true).unwrap_err();
        assert!(
            err.to_string()
                .contains("built for linux/amd64, not linux/arm64"),
            "{err}"
        );
        let err = check_image(&info("amd64", ""), "linux/amd64", true).unwrap_err();
        assert!(err.to_string().contains("runs as root"), "{err}");
        assert!(check_image(&info("amd64", "root"), "linux/amd64", false).is_ok());
    }

    #[test]
    fn stage_copies_context_and_binaries() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("svc/sub")).unwrap();
        std::fs::write(r.join("svc/Dockerfile"), "FROM scratch").unwrap();
        std::fs::write(r.join("svc/sub/a.txt"), "a").unwrap();
        std::fs::create_dir_all(r.join("out")).unwrap();
        std::fs::write(r.join("out/app"), "binary").unwrap();
        std::fs::create_dir_all(r.join("dest/stale")).unwrap();
        let files = vec![("out/app".into(), "bin/amd64/app".into())];
        stage(r, Path::new("svc"), Path::new("dest"), &files).unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join("dest/sub/a.txt")).unwrap(),
            "a"
        );
        assert_eq!(
            std::fs::read_to_string(r.join("dest/bin/amd64/app")).unwrap(),
            "binary"
        );
        assert!(
            !r.join("dest/stale").exists(),
            "dest is rebuilt from scratch"
        );
        let missing = vec![("out/nope".into(), "bin/amd64/nope".into())];
        let err = stage(r, Path::new("svc"), Path::new("dest"), &missing).unwrap_err();
        assert!(err.to_string().contains("out/nope is missing"), "{err}");
    }
}
