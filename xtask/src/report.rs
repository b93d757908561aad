//! The end of a run: a summary for people on stderr, the published references on stdout, and
//! an error naming every failure.

use crate::ui::out;
use anyhow::{bail, Result};

use crate::pipeline::Outcome;
use crate::ui::Ui;

/// Prints the summary; fails (so the process exits non-zero) when any service failed.
pub fn finish(outcomes: &[Outcome], pushed: bool, ui: &Ui) -> Result<()> {
    if outcomes.is_empty() {
        ui.info("nothing selected");
        return Ok(());
    }
    let width = outcomes.iter().map(|o| o.name.len()).max().unwrap_or(0);
    ui.info("summary:");
    for o in outcomes {
        let status = match (&o.error, o.attempted) {
            (_, false) => {
                "not run (an earlier failure stopped the run; use --keep-going)".to_string()
            }
            (Some(_), true) => "FAILED".to_string(),
            (None, true) if pushed && !o.signed.is_empty() => format!(
                "published {} reference(s), signed {} digest(s)",
                o.digests.len(),
                o.signed.len()
            ),
            (None, true) if pushed => format!("published {} reference(s)", o.digests.len()),
            (None, true) => "built".to_string(),
        };
        ui.info(format!(
            "  {:width$}  {status}  ({:.1}s{})",
            o.name,
            o.seconds,
            o.size
                .map(|s| format!(", {}", crate::config::show_size(s)))
                .unwrap_or_default()
                + &o.vulnerabilities
                    .as_ref()
                    .map(|v| {
                        let parts: Vec<String> =
                            v.iter().map(|(k, n)| format!("{n} {k}")).collect();
                        if parts.is_empty() {
                            ", no vulnerabilities".to_string()
                        } else {
                            format!(", {}", parts.join(" "))
                        }
                    })
                    .unwrap_or_default()
        ));
    }
    for o in outcomes.iter().filter(|o| o.ok()) {
        for image in &o.images {
            match o.digests.get(image) {
                Some(d) => out!("{image}@{d}"),
                None => out!("{image}"),
            }
        }
    }
    for o in outcomes.iter().filter(|o| o.ok()) {
        for s in &o.signed {
            ui.info(format!("  signed {s}"));
        }
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    let mut msg = format!("{} of {} service(s) failed:", failed.len(), outcomes.len());
    for o in failed {
        match &o.error {
            Some(e) => msg.push_str(&format!("\n- {}: {e}", o.name)),
            None => msg.push_str(&format!("\n- {}: not run", o.name)),
        }
    }
    bail!(msg)
}
