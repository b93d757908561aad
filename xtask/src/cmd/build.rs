//! `cargo xtask build` and `cargo xtask push`: plan (reading the world first), run the plan
//! (services in `depends_on` order under `-j`), report.

use anyhow::{bail, Result};

use crate::cli::BuildArgs;
use crate::pipeline::{self, Options};
use crate::plan::{Plan, Step};
use crate::{report, world, Ctx};

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<()> {
    let _logins = world::LoginDir::new(world::login_dir(&ctx.root));
    let runner = ctx.runner(args.dry_run);
    let mut outcomes = Vec::new();
    let result = world::plan(ctx, &args.select, &runner, world::Purpose::Build)
        .and_then(|(plan, _)| execute(ctx, args, &runner, plan, &mut outcomes));
    notify(ctx, args, &runner, &outcomes, &result);
    result
}

/// The run's summary to the configured webhook (failures, or every run); never changes the
/// run's result.
fn notify(
    ctx: &Ctx,
    args: &BuildArgs,
    runner: &crate::exec::Runner,
    outcomes: &[pipeline::Outcome],
    result: &Result<()>,
) {
    if args.dry_run {
        return;
    }
    // From the root manifest alone: a broken service.toml is a failure worth posting.
    let root = crate::files::Disk { root: &ctx.root };
    let Some(n) = crate::services::Workspace::settings(&root, &ctx.env)
        .ok()
        .and_then(|s| s.notify)
    else {
        return;
    };
    let summary = crate::notify::Summary::new(kind(args).name(), outcomes, result, &|k| {
        std::env::var(k).ok()
    });
    crate::notify::send(&n, &summary, runner, &ctx.ui);
}

fn kind(args: &BuildArgs) -> report::Kind {
    if args.select.sign_only {
        report::Kind::Sign
    } else if args.select.push {
        report::Kind::Push
    } else if args.select.scan {
        report::Kind::Scan
    } else {
        report::Kind::Build
    }
}

/// `cargo xtask sign`: the push plan cut down to reading each published digest back from the
/// registry and signing it. A service not published with these inputs is an error: signing
/// never builds or pushes.
pub fn sign(ctx: &Ctx, args: &BuildArgs) -> Result<()> {
    let _logins = world::LoginDir::new(world::login_dir(&ctx.root));
    let runner = ctx.runner(args.dry_run);
    let mut outcomes = Vec::new();
    let result = sign_plan(ctx, args, &runner)
        .and_then(|plan| execute(ctx, args, &runner, plan, &mut outcomes));
    notify(ctx, args, &runner, &outcomes, &result);
    result
}

/// The push plan cut down to reading digests back and signing them.
fn sign_plan(ctx: &Ctx, args: &BuildArgs, runner: &crate::exec::Runner) -> Result<Plan> {
    let (mut plan, ws) = world::plan(ctx, &args.select, runner, world::Purpose::Build)?;
    if ws.settings.sign.is_none() {
        bail!("signing is not configured: add [workspace.metadata.images.sign] to Cargo.toml with `key` (a file, env://VAR or a KMS URI), or `identity` and `issuer` for keyless signing");
    }
    let mut unpublished = Vec::new();
    for svc in plan.services.iter_mut().filter(|s| s.selected) {
        if svc.steps.iter().any(|s| matches!(s, Step::Build { .. })) {
            unpublished.push(svc.name.clone());
            continue;
        }
        svc.steps = std::mem::take(&mut svc.steps)
            .into_iter()
            .filter_map(|s| match s {
                // Only the digest the registry holds is wanted; no tag is added.
                Step::Tag {
                    reference, digest, ..
                } => Some(Step::Tag {
                    command: None,
                    reference,
                    digest,
                }),
                s @ Step::Sign { .. } => Some(s),
                _ => None,
            })
            .collect();
        svc.notes.clear();
    }
    if !unpublished.is_empty() {
        bail!(
            "not published with this commit's inputs, so there is nothing to sign: {} (run `cargo xtask push {}` first: it signs what it pushes)",
            unpublished.join(", "),
            unpublished.join(" ")
        );
    }
    Ok(plan)
}

fn execute(
    ctx: &Ctx,
    args: &BuildArgs,
    runner: &crate::exec::Runner,
    plan: Plan,
    outcomes: &mut Vec<pipeline::Outcome>,
) -> Result<()> {
    for svc in plan.services.iter().filter(|s| s.selected) {
        for note in &svc.notes {
            ctx.ui.info(format!("[{}] {note}", svc.name));
        }
    }
    *outcomes = pipeline::execute(
        &plan,
        runner,
        &ctx.ui,
        &Options {
            jobs: args.jobs,
            keep_going: args.keep_going,
        },
    );
    if args.dry_run {
        return match outcomes.iter().find_map(|o| o.error.clone()) {
            Some(e) => bail!(e),
            None => Ok(()),
        };
    }
    if let Err(e) = report::merged_sarif(&runner.root, outcomes) {
        ctx.ui
            .warn(format!("the combined SARIF was not written: {e:#}"));
    }
    report::finish(outcomes, kind(args), args.json, &ctx.ui)
}
