//! `cargo xtask plan`: the whole plan without running it — as text, `--json` (the contract in
//! DESIGN.md) or `--matrix` (a GitHub Actions matrix of the selected services).

use crate::ui::out;
use anyhow::Result;
use serde_json::json;

use crate::cli::PlanArgs;
use crate::plan::{Plan, Step};
use crate::{world, Ctx};

pub fn run(ctx: &Ctx, args: &PlanArgs) -> Result<()> {
    let runner = ctx.runner(true);
    let (plan, _) = world::plan(ctx, &args.select, &runner, world::Purpose::Show)?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&plan)?);
    } else if args.matrix {
        let m = matrix(&plan, args.per_platform);
        let count = m["include"].as_array().map_or(0, Vec::len);
        if args.per_platform && count > 0 {
            ctx.ui.warn("--per-platform: each entry builds one platform under the same tags; push each by digest and join the digests into one multi-arch index (docker buildx imagetools create) in a final job, or the last push wins");
        }
        let text = serde_json::to_string(&m)?;
        ctx.ui.info(format!(
            "matrix: {count} entr{}",
            if count == 1 { "y" } else { "ies" }
        ));
        crate::github::append(
            "GITHUB_OUTPUT",
            &crate::github::outputs(&[("matrix", text.clone()), ("count", count.to_string())]),
        )?;
        out!("{text}");
    } else {
        print_text(&plan, &runner, ctx.verbose);
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
    if !per_platform {
        include = grouped(plan, include);
    }
    json!({ "include": include })
}

/// Services that build on each other in this run share one entry (a job builds them in
/// order; separate jobs could not): `service` names them all, space-separated, bases first.
fn grouped(plan: &Plan, entries: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let selected: Vec<&crate::plan::ServicePlan> =
        plan.services.iter().filter(|s| s.selected).collect();
    let index = |n: &str| selected.iter().position(|s| s.name == n);
    // Union-find over depends_on between selected services.
    let mut parent: Vec<usize> = (0..selected.len()).collect();
    fn root(p: &mut [usize], i: usize) -> usize {
        let mut i = i;
        while p[i] != i {
            i = p[i];
        }
        i
    }
    for (i, s) in selected.iter().enumerate() {
        for d in &s.depends_on {
            if let Some(j) = index(d) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut done = vec![false; selected.len()];
    for i in 0..selected.len() {
        if done[i] {
            continue;
        }
        let r = root(&mut parent, i);
        let members: Vec<usize> = (0..selected.len())
            .filter(|&j| root(&mut parent, j) == r)
            .collect();
        // Bases first: a member goes after every member it depends on.
        let mut order: Vec<usize> = Vec::new();
        while order.len() < members.len() {
            let before = order.len();
            for &m in &members {
                let ready = selected[m]
                    .depends_on
                    .iter()
                    .filter_map(|d| index(d))
                    .all(|d| order.contains(&d) || !members.contains(&d));
                if !order.contains(&m) && ready {
                    order.push(m);
                }
            }
            if order.len() == before {
                // A cycle: keep the rest in plan order.
                order.extend(
                    members
                        .iter()
                        .filter(|m| !order.contains(m))
                        .copied()
                        .collect::<Vec<_>>(),
                );
            }
        }
        for &m in &members {
            done[m] = true;
        }
        let mut entry = entries[order[order.len() - 1]].clone();
        if order.len() > 1 {
            let names: Vec<&str> = order.iter().map(|&m| selected[m].name.as_str()).collect();
            entry["service"] = json!(names.join(" "));
            entry["services"] = json!(names);
            // Every member's images and platforms (the job publishes them all).
            let images: Vec<serde_json::Value> = order
                .iter()
                .flat_map(|&m| entries[m]["images"].as_array().cloned().unwrap_or_default())
                .collect();
            entry["images"] = json!(images);
            let mut platforms: Vec<serde_json::Value> = Vec::new();
            for &m in &order {
                for p in entries[m]["platforms"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    if !platforms.contains(&p) {
                        platforms.push(p);
                    }
                }
            }
            entry["platforms"] = json!(platforms);
        }
        out.push(entry);
    }
    out
}

/// A table for people: service, build or skip and why, version, platforms, tags (the
/// registries they go to), notes; the exact commands with `-v`.
fn print_text(plan: &Plan, runner: &crate::exec::Runner, verbose: bool) {
    out!(
        "{} — version {}, revision {}{}",
        plan.context.describe(),
        plan.version,
        plan.head
            .as_deref()
            .map_or("none", |h| &h[..7.min(h.len())]),
        plan.base
            .as_deref()
            .map(|b| format!(", compared with {}", &b[..7.min(b.len())]))
            .unwrap_or_default()
    );
    let rows: Vec<[String; 6]> = plan
        .services
        .iter()
        .map(|s| {
            let mut tags: Vec<&str> = s
                .images
                .iter()
                .filter_map(|i| i.rsplit_once(':').map(|(_, t)| t))
                .collect();
            tags.dedup();
            let mut uniq: Vec<&str> = Vec::new();
            for t in tags {
                if !uniq.contains(&t) {
                    uniq.push(t);
                }
            }
            let repos = s
                .images
                .iter()
                .filter_map(|i| i.rsplit_once(':').map(|(r, _)| r))
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            [
                s.name.clone(),
                if s.selected { "build" } else { "skip" }.to_string(),
                if s.selected {
                    s.version.clone().unwrap_or_default()
                } else {
                    "-".into()
                },
                if s.selected {
                    s.platforms.join(",")
                } else {
                    "-".into()
                },
                if uniq.is_empty() {
                    "-".into()
                } else if repos > 1 {
                    format!("{} (×{repos} registries)", uniq.join(", "))
                } else {
                    uniq.join(", ")
                },
                s.reasons.join("; "),
            ]
        })
        .collect();
    let header = ["SERVICE", "BUILD", "VERSION", "PLATFORMS", "TAGS", "WHY"];
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (c, cell) in cells.iter().enumerate().take(5) {
            l.push_str(&format!("{cell:<w$}  ", w = widths[c]));
        }
        l.push_str(cells[5]);
        l
    };
    out!("\n{}", line(header));
    for r in &rows {
        out!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    for s in plan.services.iter().filter(|s| !s.notes.is_empty()) {
        for note in &s.notes {
            out!("note: {}: {note}", s.name);
        }
    }
    if !verbose {
        if plan.services.iter().any(|s| s.selected) {
            out!("\n(-v shows the exact commands)");
        }
        return;
    }
    for step in &plan.prepare {
        if let Step::Compile { command } = step {
            out!("\nprepare: {}", runner.display(command));
        }
    }
    for s in plan.services.iter().filter(|s| s.selected) {
        out!("\n{}:", s.name);
        for step in &s.steps {
            match step {
                Step::Stage { context, dest, .. } => {
                    out!("  stage  {} -> {}", context.display(), dest.display())
                }
                Step::Mirror {
                    dockerfile,
                    dest,
                    mirror,
                    ..
                } => out!(
                    "  write  {} -> {} (Docker Hub bases from {mirror})",
                    dockerfile.display(),
                    dest.display()
                ),
                Step::Compile { command }
                | Step::Build { command, .. }
                | Step::Verify { command, .. }
                | Step::Push { command, .. } => out!("  run    {}", runner.display(command)),
                Step::Tag {
                    command: Some(command),
                    ..
                } => out!("  run    {}", runner.display(command)),
                Step::Health { run, .. } => out!("  run    {}", runner.display(run)),
                Step::Scan {
                    command,
                    sarif,
                    sbom,
                    ..
                } => {
                    out!("  run    {}", runner.display(command));
                    out!("  run    {}", runner.display(sarif));
                    out!("  run    {}", runner.display(sbom));
                }
                Step::Tag { reference, .. } => out!("  keep   {reference} (already there)"),
                Step::CopyTag {
                    from,
                    reference,
                    skopeo,
                } => {
                    let repo = from.rsplit_once(':').map_or(from.as_str(), |(r, _)| r);
                    let copy = crate::tools::skopeo::copy(
                        skopeo,
                        &format!("{repo}@<digest of {from}>"),
                        reference,
                    );
                    out!("  run    {}", runner.display(&copy));
                }
                Step::Sign {
                    repositories,
                    signer: Some(signer),
                    cosign,
                    recursive,
                    ..
                } => {
                    for repo in repositories {
                        let at = format!("{repo}@<digest>");
                        let sign = crate::tools::cosign::sign(cosign, signer, &at, *recursive);
                        let verify = crate::tools::cosign::verify(cosign, signer, &at);
                        out!("  run    {}", runner.display(&sign));
                        out!("  run    {}", runner.display(&verify));
                    }
                }
                Step::Sign { .. } => {}
            }
        }
    }
}
