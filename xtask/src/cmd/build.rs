//! `cargo xtask build`: plan (reading the world first), run the plan, report.

use anyhow::{bail, Result};

use crate::cli::BuildArgs;
use crate::pipeline::{self, Options};
use crate::plan::{self, Step};
use crate::{report, world, Ctx};

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<()> {
    let runner = ctx.runner(args.dry_run);
    let (plan, _) = world::plan(ctx, &args.select, &runner, world::Purpose::Build)?;
    for svc in plan.services.iter().filter(|s| s.selected) {
        for note in &svc.notes {
            ctx.ui.info(format!("[{}] {note}", svc.name));
        }
    }
    if !args.dry_run {
        check_rust_targets(&runner, &plan)?;
    }
    let outcomes = pipeline::execute(
        &plan,
        &runner,
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
    report::finish(&outcomes, args.select.push, &ctx.ui)
}

/// Fails early, with the fix, when a platform needs a Rust target that is not installed.
fn check_rust_targets(runner: &crate::exec::Runner, plan: &plan::Plan) -> Result<()> {
    let needed: Vec<&str> = plan
        .prepare
        .iter()
        .filter_map(|s| match s {
            Step::Compile { command } => Some(command),
            _ => None,
        })
        .flat_map(|c| {
            c.args
                .windows(2)
                .filter(|w| w[0] == "--target")
                .map(|w| w[1].as_str())
        })
        .collect();
    if needed.is_empty() {
        return Ok(());
    }
    let sysroot =
        runner.probe(&crate::tools::CommandSpec::new("rustc").args(["--print", "sysroot"]))?;
    let sysroot = sysroot.stdout.trim();
    for t in needed {
        let dir = std::path::Path::new(sysroot).join("lib/rustlib").join(t);
        if !dir.is_dir() {
            bail!(
                "Rust target {t} is not installed: run `rustup target add {t}` and install a linker for it, or build without that platform"
            );
        }
    }
    Ok(())
}
