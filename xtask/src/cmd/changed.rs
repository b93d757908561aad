//! `cargo xtask changed`: which services the change selects, and why. stdout: the selected
//! names, one per line (or `--json`); stderr: the reasons.

use crate::ui::out;
use anyhow::Result;

use crate::cli::ChangedArgs;
use crate::files::Disk;
use crate::services::Workspace;
use crate::{git, world, Ctx};

pub fn run(ctx: &Ctx, args: &ChangedArgs) -> Result<()> {
    // Only the global settings here: the services are read as they are at head.
    let settings = Workspace::settings(&Disk { root: &ctx.root }, &ctx.env)?;
    let repo = git::Repo::open(&ctx.root)?;
    let info = repo.head()?;
    let cx = world::context(&settings, &repo, &info)?;
    let report = world::changes(ctx, &repo, &cx, &args.range)?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    ctx.ui.info(format!(
        "comparing {}{} ({} changed path{})",
        report.comparison,
        if report.working_tree {
            ", with the working tree"
        } else {
            ""
        },
        report.changed_path_count,
        if report.changed_path_count == 1 {
            ""
        } else {
            "s"
        }
    ));
    let width = report
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    for s in &report.services {
        let mark = match (s.selected, s.removed) {
            (_, true) => "removed",
            (true, _) => "build",
            (false, _) => "skip",
        };
        ctx.ui.info(format!(
            "  {:width$}  {mark:7}  {}",
            s.name,
            s.reasons.join("; ")
        ));
        if s.selected {
            out!("{}", s.name);
        }
    }
    Ok(())
}
