//! `cargo xtask build` and `cargo xtask push`: plan (reading the world first), run the plan
//! (services in `depends_on` order under `-j`), report.

use anyhow::{bail, Result};

use crate::cli::BuildArgs;
use crate::pipeline::{self, Options};
use crate::{report, world, Ctx};

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<()> {
    let runner = ctx.runner(args.dry_run);
    let (plan, _) = world::plan(ctx, &args.select, &runner, world::Purpose::Build)?;
    for svc in plan.services.iter().filter(|s| s.selected) {
        for note in &svc.notes {
            ctx.ui.info(format!("[{}] {note}", svc.name));
        }
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
