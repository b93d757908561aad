//! The end of a run: a table for people on stderr, the published references (or `--json`) on
//! stdout, and an error naming every failure.

use crate::ui::out;
use anyhow::{bail, Result};
use serde::Serialize;

use crate::pipeline::Outcome;
use crate::ui::Ui;

/// What kind of run ended (the words the table uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Build,
    Scan,
    Push,
    Sign,
}

/// One service's line, as the table and `--json` show it.
#[derive(Debug, Serialize)]
struct Row<'a> {
    name: &'a str,
    /// published, already published, signed, built, scanned, failed, not run, interrupted.
    result: String,
    error: Option<&'a str>,
    image_id: Option<&'a str>,
    /// Reference → digest, for what is in a registry.
    digests: &'a std::collections::BTreeMap<String, String>,
    tags: Vec<&'a str>,
    size: Option<u64>,
    vulnerabilities: Option<&'a std::collections::BTreeMap<String, usize>>,
    signed: Vec<&'a str>,
    /// The CycloneDX SBOM of this run's scan, and the digests it is attached to.
    sbom: Option<String>,
    attested: &'a [String],
    seconds: f64,
    /// Of `seconds`, the tools' own time (the rest is Slipway's).
    tool_seconds: f64,
    log: Option<String>,
    /// What the run decided on the way (the base images a build read).
    notes: &'a [String],
}

#[derive(Serialize)]
struct Json<'a, 'b> {
    schema_version: u32,
    interrupted: bool,
    services: &'b [Row<'a>],
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Scan => "scan",
            Kind::Push => "push",
            Kind::Sign => "sign",
        }
    }
}

/// The result word of one service for the command named `command` (`push`, …).
pub fn result_word(o: &Outcome, command: &str) -> String {
    let kind = [Kind::Build, Kind::Scan, Kind::Push, Kind::Sign]
        .into_iter()
        .find(|k| k.name() == command)
        .unwrap_or(Kind::Build);
    result(o, kind)
}

fn result(o: &Outcome, kind: Kind) -> String {
    if !o.attempted {
        return "not run".into();
    }
    if let Some(e) = &o.error {
        // A tool stopped by the same Ctrl-C fails too: that is the interruption.
        return if crate::exec::interrupted()
            || e.starts_with("interrupted")
            || e.contains(crate::exec::INTERRUPTED_MSG)
        {
            "interrupted".into()
        } else {
            "FAILED".into()
        };
    }
    match kind {
        Kind::Push if o.reused => "already published".into(),
        Kind::Push => "published".into(),
        Kind::Sign => "signed".into(),
        Kind::Scan => "scanned".into(),
        Kind::Build => "built".into(),
    }
}

fn row(o: &Outcome, kind: Kind) -> Row<'_> {
    Row {
        name: &o.name,
        result: result(o, kind),
        error: o.error.as_deref(),
        image_id: o.image_id.as_deref(),
        digests: &o.digests,
        // What was published; a service that failed published no tag.
        tags: o
            .images
            .iter()
            .filter(|_| o.ok())
            .map(|r| r.rsplit_once(':').map_or(r.as_str(), |(_, t)| t))
            .fold(Vec::new(), |mut v, t| {
                if !v.contains(&t) {
                    v.push(t);
                }
                v
            }),
        size: o.size,
        vulnerabilities: o.vulnerabilities.as_ref(),
        signed: o
            .signed
            .iter()
            .map(|s| s.split(['(', ';']).next().unwrap_or(s).trim_end())
            .collect(),
        sbom: o.sbom.as_ref().map(|p| p.display().to_string()),
        attested: &o.attested,
        seconds: (o.seconds * 1000.0).round() / 1000.0,
        tool_seconds: (o.tool_seconds * 1000.0).round() / 1000.0,
        log: o.log.as_ref().map(|p| p.display().to_string()),
        notes: &o.notes,
    }
}

/// The run as markdown for `$GITHUB_STEP_SUMMARY`: one row per service.
fn markdown(rows: &[Row], kind: Kind) -> String {
    let mut md = format!(
        "### Slipway {}\n\n| service | result | digest | tags | size | vulnerabilities | signed | time |\n|---|---|---|---|---|---|---|---|\n",
        kind.name()
    );
    for r in rows {
        let vulns = vulns_text(r.vulnerabilities, ", ");
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1}s |\n",
            r.name,
            r.result,
            r.digests
                .values()
                .next()
                .map_or("-".to_string(), |d| format!("`{}`", short(d))),
            if r.tags.is_empty() {
                "-".to_string()
            } else {
                r.tags
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            r.size.map_or("-".to_string(), crate::config::show_size),
            vulns,
            if r.signed.is_empty() { "no" } else { "yes" },
            r.seconds
        ));
    }
    for r in rows.iter().filter(|r| r.error.is_some()) {
        md.push_str(&format!(
            "\n**{}**: {}\n",
            r.name,
            r.error
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
        ));
    }
    md
}

/// Every scanned service's SARIF in one file, `target/slipway/out/scan.sarif`, each run with
/// its own `automationDetails.id` (`slipway/<service>/`): GitHub code scanning takes one
/// upload of several services without one replacing another's alerts.
pub fn merged_sarif(
    root: &std::path::Path,
    outcomes: &[Outcome],
) -> Result<Option<std::path::PathBuf>> {
    let out_dir = root.join(crate::plan::WORK_DIR).join("out");
    let mut runs = Vec::new();
    let mut doc: Option<serde_json::Value> = None;
    for o in outcomes.iter().filter(|o| o.vulnerabilities.is_some()) {
        let file = out_dir.join(&o.name).join("scan.sarif");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let mut v: serde_json::Value = serde_json::from_str(&text)?;
        for mut run in v["runs"].as_array().cloned().unwrap_or_default() {
            run["automationDetails"] = serde_json::json!({"id": format!("slipway/{}/", o.name)});
            runs.push(run);
        }
        v["runs"] = serde_json::json!([]);
        doc.get_or_insert(v);
    }
    let Some(mut doc) = doc else {
        return Ok(None);
    };
    doc["runs"] = serde_json::Value::Array(runs);
    let path = out_dir.join("scan.sarif");
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    Ok(Some(path))
}

/// Findings per severity for people: `-` (not scanned), `none`, or `2 HIGH<sep>1 LOW`.
fn vulns_text(v: Option<&std::collections::BTreeMap<String, usize>>, sep: &str) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v.is_empty() => "none".to_string(),
        Some(v) => v
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(sep),
    }
}

/// The published references of the services that succeeded (`ref@digest` when known).
fn published(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|o| o.ok())
        .flat_map(|o| {
            o.images.iter().map(|i| match o.digests.get(i) {
                Some(d) => format!("{i}@{d}"),
                None => i.clone(),
            })
        })
        .collect()
}

/// `sha256:0123456789ab` (12 hex digits, as docker shows ids).
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", &hex[..hex.len().min(12)]),
        None => digest.to_string(),
    }
}

/// The table: one line per service, columns padded to their widest cell.
fn table(rows: &[Row]) -> Vec<String> {
    let header = [
        "SERVICE", "RESULT", "DIGEST", "TAGS", "SIZE", "VULNS", "SIGNED", "TIME",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let digest = r
            .digests
            .values()
            .next()
            .map(|d| short(d))
            .or_else(|| r.image_id.map(short))
            .unwrap_or_else(|| "-".into());
        let vulns = vulns_text(r.vulnerabilities, " ");
        cells.push(vec![
            r.name.to_string(),
            r.result.clone(),
            digest,
            if r.tags.is_empty() {
                "-".into()
            } else {
                r.tags.join(",")
            },
            r.size
                .map(crate::config::show_size)
                .unwrap_or_else(|| "-".into()),
            vulns,
            if r.signed.is_empty() { "no" } else { "yes" }.to_string(),
            format!("{:.1}s", r.seconds),
        ]);
    }
    crate::ui::columns(&cells)
}

/// Prints the table (stderr) and the references or `--json` (stdout); fails (so the process
/// exits non-zero) when any service failed or the run was interrupted.
pub fn finish(outcomes: &[Outcome], kind: Kind, json: bool, ui: &Ui) -> Result<()> {
    let interrupted = crate::exec::interrupted();
    let rows: Vec<Row> = outcomes.iter().map(|o| row(o, kind)).collect();
    // Under GitHub Actions: the table on the run's page, the results for later jobs.
    if !outcomes.is_empty() {
        if let Err(e) = crate::github::append("GITHUB_STEP_SUMMARY", &markdown(&rows, kind)) {
            ui.warn(format!("{e:#}"));
        }
    }
    let ok: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.ok())
        .map(|o| o.name.as_str())
        .collect();
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| o.name.as_str())
        .collect();
    let images = published(outcomes);
    if let Err(e) = crate::github::append(
        "GITHUB_OUTPUT",
        &crate::github::outputs(&[
            ("services", serde_json::to_string(&ok)?),
            ("failed", serde_json::to_string(&failed)?),
            ("images", serde_json::to_string(&images)?),
        ]),
    ) {
        ui.warn(format!("{e:#}"));
    }
    if json {
        let doc = Json {
            schema_version: 1,
            interrupted,
            services: &rows,
        };
        out!("{}", serde_json::to_string_pretty(&doc)?);
    } else if outcomes.is_empty() {
        ui.info("nothing selected");
    }
    if outcomes.is_empty() {
        return Ok(());
    }
    for line in table(&rows) {
        ui.info(format!("  {line}"));
    }
    if !json {
        for image in &images {
            out!("{image}");
        }
        for o in outcomes.iter().filter(|o| o.ok()) {
            for s in &o.signed {
                ui.info(format!("  signed {s}"));
            }
        }
    }
    if interrupted {
        let (done, rest) = (&ok, &failed);
        bail!(
            "interrupted: complete: {}; not complete: {} (no further tag was pushed; run the same command again to finish)",
            if done.is_empty() { "none".to_string() } else { done.join(", ") },
            rest.join(", ")
        );
    }
    if failed.is_empty() {
        return Ok(());
    }
    let mut msg = format!("{} of {} service(s) failed:", failed.len(), outcomes.len());
    for o in outcomes.iter().filter(|o| !o.ok()) {
        match &o.error {
            Some(e) => msg.push_str(&format!("\n- {}: {e}", o.name)),
            None => msg.push_str(&format!(
                "\n- {}: not run (an earlier failure stopped the run; use --keep-going)",
                o.name
            )),
        }
        if let Some(log) = &o.log {
            msg.push_str(&format!(
                "\n  (every command and its output: {})",
                log.display()
            ));
        }
    }
    bail!(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up_and_says_what_happened() {
        let mut ok = Outcome {
            name: "api".into(),
            images: vec!["r/api:1.2.3".into(), "r/api:abc1234".into()],
            attempted: true,
            size: Some(12_300_000),
            seconds: 3.04,
            ..Outcome::default()
        };
        ok.digests
            .insert("r/api:1.2.3".into(), format!("sha256:{}", "a".repeat(64)));
        ok.vulnerabilities = Some([("HIGH".to_string(), 2)].into());
        ok.signed
            .push("r/api@sha256:aaa; check it with: cosign verify".into());
        let failed = Outcome {
            name: "web-frontend".into(),
            attempted: true,
            error: Some("scan: the scan gate failed".into()),
            ..Outcome::default()
        };
        let skipped = Outcome {
            name: "worker".into(),
            ..Outcome::default()
        };
        let rows = vec![
            row(&ok, Kind::Push),
            row(&failed, Kind::Push),
            row(&skipped, Kind::Push),
        ];
        let t = table(&rows);
        assert_eq!(
            t[0],
            "SERVICE       RESULT     DIGEST               TAGS           SIZE     VULNS   SIGNED  TIME"
        );
        assert_eq!(
            t[1],
            "api           published  sha256:aaaaaaaaaaaa  1.2.3,abc1234  12.3 MB  2 HIGH  yes     3.0s"
        );
        assert_eq!(
            t[2],
            "web-frontend  FAILED     -                    -              -        -       no      0.0s"
        );
        assert!(t[3].starts_with("worker        not run "), "{}", t[3]);
        ok.reused = true;
        assert_eq!(result(&ok, Kind::Push), "already published");
        assert_eq!(result(&ok, Kind::Scan), "scanned");
        let json = serde_json::to_value(row(&ok, Kind::Push)).unwrap();
        assert_eq!(json["signed"][0], "r/api@sha256:aaa");
        assert_eq!(json["tags"], serde_json::json!(["1.2.3", "abc1234"]));
        assert_eq!(json["vulnerabilities"]["HIGH"], 2);
    }
}
