//! `cargo xtask plan`: the whole plan without running it — as text, `--json` (the contract in
//! DESIGN.md) or `--matrix` (a GitHub Actions matrix of the selected services).

use crate::ui::out;
use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::PlanArgs;
use crate::plan::{Plan, Step};
use crate::{world, Ctx};

pub fn run(ctx: &Ctx, args: &PlanArgs) -> Result<()> {
    let runner = ctx.runner(true);
    let (plan, _) = world::plan(ctx, &args.select, &runner)?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&plan)?);
    } else if args.matrix {
        let m = matrix(&plan, args.per_platform);
        let count = m["include"].as_array().map_or(0, Vec::len);
        let text = serde_json::to_string(&m)?;
        ctx.ui.info(format!(
            "matrix: {count} entr{}",
            if count == 1 { "y" } else { "ies" }
        ));
        if let Ok(path) = std::env::var("GITHUB_OUTPUT") {
            if !path.is_empty() {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .with_context(|| format!("cannot write $GITHUB_OUTPUT ({path})"))?;
                writeln!(f, "matrix={text}\ncount={count}")
                    .with_context(|| format!("cannot write $GITHUB_OUTPUT ({path})"))?;
            }
        }
        out!("{text}");
    } else {
        print_text(&plan, &runner);
    }
    Ok(())
}

/// `{"include": [{"service", "platforms", "images", "version"}, …]}`, selected services only;
/// `platforms` is a list. Per platform: one entry per (service, platform) with `platform`.
pub fn matrix(plan: &Plan, per_platform: bool) -> serde_json::Value {
    let mut include = Vec::new();
    for s in plan.services.iter().filter(|s| s.selected) {
        if per_platform {
            for p in &s.platforms {
                include.push(json!({
                    "service": s.name,
                    "platform": p,
                    "platforms": [p],
                    "version": s.version,
                    "images": s.images,
                }));
            }
        } else {
            include.push(json!({
                "service": s.name,
                "platforms": s.platforms,
                "version": s.version,
                "images": s.images,
            }));
        }
    }
    json!({ "include": include })
}

fn print_text(plan: &Plan, runner: &crate::exec::Runner) {
    out!(
        "{} — version {}, revision {}",
        plan.context.describe(),
        plan.version,
        plan.head.as_deref().unwrap_or("none")
    );
    for step in &plan.prepare {
        if let Step::Compile { command } = step {
            out!("prepare: {}", runner.display(command));
        }
    }
    for s in &plan.services {
        if !s.selected {
            out!("\n{}: skipped ({})", s.name, s.reasons.join("; "));
            continue;
        }
        out!(
            "\n{} {} [{}] ({})",
            s.name,
            s.version.as_deref().unwrap_or(""),
            s.platforms.join(","),
            s.reasons.join("; ")
        );
        for image in &s.images {
            out!("  image  {image}");
        }
        for note in &s.notes {
            out!("  note   {note}");
        }
        for step in &s.steps {
            match step {
                Step::Stage { context, dest, .. } => {
                    out!("  stage  {} -> {}", context.display(), dest.display())
                }
                Step::Compile { command }
                | Step::Build { command, .. }
                | Step::Verify { command, .. }
                | Step::Push { command, .. } => out!("  run    {}", runner.display(command)),
            }
        }
    }
}
