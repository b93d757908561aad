//! The linters `cargo xtask lint` runs — hadolint (Dockerfiles), zizmor and actionlint
//! (GitHub workflows) — as argv, and their JSON findings as (file, line, rule, message).

use anyhow::{Context, Result};

use super::CommandSpec;

/// One finding, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: Option<usize>,
    pub rule: String,
    pub message: String,
    /// Fails the lint (hadolint's info and style levels do not).
    pub blocking: bool,
    /// hadolint's level (`error`, `warning`, `info`, `style`); empty for the other tools.
    pub level: String,
}

/// `failure-threshold:` of a `.hadolint.yaml`.
pub fn failure_threshold(yaml: &str) -> Option<String> {
    yaml.lines().find_map(|l| {
        l.trim()
            .strip_prefix("failure-threshold:")
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// hadolint's level `level` is at or above `threshold` (`none` fails nothing).
pub fn at_or_above(level: &str, threshold: &str) -> bool {
    let rank = |l: &str| match l {
        "error" => Some(4),
        "warning" => Some(3),
        "info" => Some(2),
        "style" => Some(1),
        _ => None,
    };
    match (rank(level), rank(threshold)) {
        (Some(l), Some(t)) => l >= t,
        (_, None) if threshold == "none" => false,
        _ => true,
    }
}

/// `hadolint --format json FILE…` (a `.hadolint.yaml` in the working directory is read).
pub fn hadolint(program: &str, files: &[String]) -> CommandSpec {
    CommandSpec::new(program)
        .args(["--format", "json"])
        .args(files.iter().cloned())
}

/// `zizmor --format json --offline DIR` (default persona; a `zizmor.yml` is read).
pub fn zizmor(program: &str, dir: &str) -> CommandSpec {
    CommandSpec::new(program).args(["--format", "json", "--offline", dir])
}

/// `actionlint -format '{{json .}}' FILE…`.
pub fn actionlint(program: &str, files: &[String]) -> CommandSpec {
    CommandSpec::new(program)
        .args(["-format", "{{json .}}"])
        .args(files.iter().cloned())
}

pub fn parse_hadolint(json: &str) -> Result<Vec<Finding>> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(json.trim()).context("cannot parse hadolint's JSON")?;
    Ok(v.iter()
        .map(|f| {
            let level = f["level"].as_str().unwrap_or("warning");
            Finding {
                file: f["file"].as_str().unwrap_or_default().to_string(),
                line: f["line"].as_u64().map(|l| l as usize),
                rule: f["code"].as_str().unwrap_or_default().to_string(),
                message: f["message"].as_str().unwrap_or_default().to_string(),
                blocking: level == "error" || level == "warning",
                level: level.to_string(),
            }
        })
        .collect())
}

pub fn parse_zizmor(json: &str) -> Result<Vec<Finding>> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(json.trim()).context("cannot parse zizmor's JSON")?;
    Ok(v.iter()
        .filter(|f| !f["ignored"].as_bool().unwrap_or(false))
        .map(|f| {
            // The primary location is the finding's own (others are context).
            let locs = f["locations"].as_array().cloned().unwrap_or_default();
            let loc = locs
                .iter()
                .find(|l| l["symbolic"]["kind"] == "Primary")
                .or_else(|| locs.first())
                .cloned()
                .unwrap_or_default();
            let loc = &loc;
            let key = &loc["symbolic"]["key"];
            let file = key["Local"]["verbatim_path"]
                .as_str()
                .or_else(|| key["Local"]["given_path"].as_str())
                .unwrap_or_default();
            Finding {
                file: file.to_string(),
                // zizmor's rows count from 0.
                line: loc["concrete"]["location"]["start_point"]["row"]
                    .as_u64()
                    .map(|r| r as usize + 1),
                rule: f["ident"].as_str().unwrap_or_default().to_string(),
                message: format!(
                    "{} ({} severity; {})",
                    f["desc"].as_str().unwrap_or_default(),
                    f["determinations"]["severity"]
                        .as_str()
                        .unwrap_or("unknown")
                        .to_ascii_lowercase(),
                    f["url"].as_str().unwrap_or_default()
                ),
                blocking: true,
                level: String::new(),
            }
        })
        .collect())
}

pub fn parse_actionlint(json: &str) -> Result<Vec<Finding>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Vec<serde_json::Value> =
        serde_json::from_str(json.trim()).context("cannot parse actionlint's JSON")?;
    Ok(v.iter()
        .map(|f| Finding {
            file: f["filepath"].as_str().unwrap_or_default().to_string(),
            line: f["line"].as_u64().map(|l| l as usize),
            rule: f["kind"].as_str().unwrap_or_default().to_string(),
            message: f["message"].as_str().unwrap_or_default().to_string(),
            blocking: true,
            level: String::new(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_of_each_linter() {
        let h = parse_hadolint(r#"[{"code":"DL3006","column":1,"file":"services/web/Dockerfile","level":"warning","line":1,"message":"Always tag the version of an image explicitly"},{"code":"DL3059","column":1,"file":"x","level":"info","line":3,"message":"merge RUNs"}]"#).unwrap();
        assert_eq!(h[0].file, "services/web/Dockerfile");
        assert_eq!((h[0].line, h[0].blocking), (Some(1), true));
        assert!(!h[1].blocking, "info does not fail");
        let z = parse_zizmor(r#"[{"ident":"unpinned-uses","desc":"unpinned action reference","url":"https://docs.zizmor.sh/audits/#unpinned-uses","determinations":{"confidence":"High","severity":"High","persona":"Regular"},"ignored":false,"locations":[{"symbolic":{"key":{"Local":{"verbatim_path":".github/workflows/ci.yml"}},"kind":"Related"},"concrete":{"location":{"start_point":{"row":9,"column":8}}}},{"symbolic":{"key":{"Local":{"verbatim_path":".github/workflows/ci.yml"}},"kind":"Primary"},"concrete":{"location":{"start_point":{"row":15,"column":8}}}}]},{"ident":"x","ignored":true,"locations":[]}]"#).unwrap();
        assert_eq!(z.len(), 1);
        assert_eq!(
            (z[0].file.as_str(), z[0].line),
            (".github/workflows/ci.yml", Some(16))
        );
        assert!(
            z[0].message
                .starts_with("unpinned action reference (high severity;"),
            "{}",
            z[0].message
        );
        let a = parse_actionlint(r#"[{"message":"bad","filepath":".github/workflows/ci.yml","line":16,"column":15,"kind":"action"}]"#).unwrap();
        assert_eq!((a[0].line, a[0].rule.as_str()), (Some(16), "action"));
        assert!(parse_actionlint("").unwrap().is_empty());
        assert_eq!(
            failure_threshold("ignored:\n  - DL3000\nfailure-threshold: error\n").as_deref(),
            Some("error")
        );
        assert!(at_or_above("error", "error"));
        assert!(!at_or_above("warning", "error"));
        assert!(at_or_above("warning", "info"));
        assert!(!at_or_above("error", "none"));
    }
}
