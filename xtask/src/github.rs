//! The files a GitHub Actions runner gives a step: `$GITHUB_OUTPUT` (outputs for later jobs)
//! and `$GITHUB_STEP_SUMMARY` (markdown on the run's page). Outside Actions they are unset and
//! nothing is written.

use anyhow::{Context, Result};

/// Appends `text` to the file `$var` names, when it is set.
pub fn append(var: &str, text: &str) -> Result<()> {
    use std::io::Write;
    let Ok(path) = std::env::var(var) else {
        return Ok(());
    };
    if path.is_empty() {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("cannot write ${var} ({path})"))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write ${var} ({path})"))
}

/// `name=value` lines for `$GITHUB_OUTPUT` (values on one line: JSON is).
pub fn outputs(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}\n", v.replace('\n', " ")))
        .collect()
}
