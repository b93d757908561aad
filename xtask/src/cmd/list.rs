//! `cargo xtask list`: the services and how each is built.

use crate::ui::out;
use anyhow::Result;
use serde_json::json;

use crate::cli::ListArgs;
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &ListArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    if args.json {
        let services: Vec<_> = ws
            .services
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "repository": s.repository,
                    "images": crate::plan::repositories(s),
                    "registries": s.registries,
                    "platforms": s.platforms,
                    "tags": s.tags,
                    "dockerfile": s.dockerfile,
                    "context": s.context,
                    "target": s.target,
                    "cargo": s.cargo,
                    "non_root": s.non_root,
                    "port": s.port,
                    "health_path": s.health_path,
                })
            })
            .collect();
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "schema_version": crate::changes::SCHEMA_VERSION,
                "services": services
            }))?
        );
        return Ok(());
    }
    if ws.services.is_empty() {
        ctx.ui.info("no services: add services/<name>/Dockerfile");
        return Ok(());
    }
    let rows: Vec<[String; 5]> = ws
        .services
        .iter()
        .map(|s| {
            let image = match s.registries.as_slice() {
                [] => s.repository.clone(),
                [one] => format!("{one}/{}", s.repository),
                [first, rest @ ..] => format!("{first}/{} (+{} more)", s.repository, rest.len()),
            };
            let how = match &s.cargo {
                Some(c) => format!("cargo bin `{}`", c.bin),
                None => "Dockerfile".to_string(),
            };
            [
                s.name.clone(),
                image,
                s.platforms.join(","),
                s.dockerfile.display().to_string(),
                how,
            ]
        })
        .collect();
    let header = ["SERVICE", "IMAGE", "PLATFORMS", "DOCKERFILE", "BUILD"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        out!("{}", parts.join("  ").trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    Ok(())
}
