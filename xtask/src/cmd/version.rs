//! `cargo xtask version [check | bump PART]`: the VERSION file.

use crate::ui::out;
use anyhow::{Context, Result};

use crate::cli::{BumpPart, VersionAction, VersionArgs};
use crate::version::{self, Bump};
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &VersionArgs) -> Result<()> {
    let path = ctx.root.join("VERSION");
    match &args.action {
        None => out!("{}", version::read(&path)?),
        Some(VersionAction::Check) => {
            let v = version::read(&path)?;
            ctx.ui.info(format!("VERSION: {v}"));
            let mut errors = Vec::new();
            for rel in version::files(&ctx.root).into_iter().skip(1) {
                match version::read(&ctx.root.join(&rel)) {
                    Ok(sv) => ctx.ui.info(format!("{}: {sv}", rel.display())),
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            if !errors.is_empty() {
                anyhow::bail!("{}", errors.join("\n"));
            }
            out!("{v}");
        }
        Some(VersionAction::Bump { part, dry_run }) => {
            let old = version::read(&path)?;
            let how = match part {
                BumpPart::Major => Bump::Major,
                BumpPart::Minor => Bump::Minor,
                BumpPart::Patch => Bump::Patch,
                BumpPart::Pre => Bump::Pre,
            };
            let new = version::bump(&old, how)?;
            if !dry_run {
                std::fs::write(&path, format!("{new}\n"))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            ctx.ui.info(format!(
                "{old} -> {new}{}",
                if *dry_run {
                    " (dry run, not written)"
                } else {
                    ""
                }
            ));
            out!("{new}");
        }
    }
    Ok(())
}
