//! `trivy` commands and its report: an image scan from the local Docker (JSON, one scan), the
//! same report converted to SARIF for GitHub code scanning, and counts per severity.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::CommandSpec;

/// What to scan for and report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    pub ignore_unfixed: bool,
    /// `--cache-dir` (else `TRIVY_CACHE_DIR` or trivy's own default).
    pub cache_dir: Option<String>,
}

/// `trivy image --image-src docker` of an image in the local Docker, every severity, as JSON
/// into `report` (the gate is decided from the report, not from trivy's exit status).
pub fn scan_image(trivy: &str, image: &str, report: &Path, o: &ScanOptions) -> CommandSpec {
    let mut cmd = CommandSpec::new(trivy).args([
        "image",
        "--image-src",
        "docker",
        "--scanners",
        "vuln",
        "--skip-version-check",
        "--disable-telemetry",
        "--cache-backend",
        "memory",
        "--quiet",
        "--format",
        "json",
        // Every package, not only vulnerable ones: the SBOM is converted from this report.
        "--list-all-pkgs",
        "--output",
    ]);
    cmd = cmd.arg(report.display().to_string());
    if o.ignore_unfixed {
        cmd = cmd.arg("--ignore-unfixed");
    }
    if let Some(c) = &o.cache_dir {
        cmd = cmd.args(["--cache-dir", c]);
    }
    cmd.arg(image)
}

/// `trivy convert` of a JSON report to SARIF 2.1.0: the same findings, not a second scan.
pub fn to_sarif(trivy: &str, report: &Path, sarif: &Path) -> CommandSpec {
    CommandSpec::new(trivy)
        .args(["convert", "--format", "sarif", "--output"])
        .arg(sarif.display().to_string())
        .arg(report.display().to_string())
}

/// `trivy convert` of the same report to a CycloneDX SBOM (every package the scan saw).
pub fn to_cyclonedx(trivy: &str, report: &Path, sbom: &Path) -> CommandSpec {
    CommandSpec::new(trivy)
        .args(["convert", "--format", "cyclonedx", "--output"])
        .arg(sbom.display().to_string())
        .arg(report.display().to_string())
}

#[derive(Debug, Deserialize)]
struct Report {
    #[serde(rename = "Results", default)]
    results: Vec<ReportResult>,
}

#[derive(Debug, Deserialize)]
struct ReportResult {
    #[serde(rename = "Vulnerabilities", default)]
    vulnerabilities: Vec<Finding>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Finding {
    #[serde(rename = "VulnerabilityID")]
    pub id: String,
    #[serde(rename = "PkgName")]
    pub package: String,
    #[serde(rename = "InstalledVersion", default)]
    pub installed: String,
    #[serde(rename = "FixedVersion", default)]
    pub fixed: String,
    #[serde(rename = "Severity")]
    pub severity: String,
}

/// Every finding of a JSON report.
pub fn parse_report(json: &str) -> Result<Vec<Finding>> {
    let r: Report = serde_json::from_str(json).context("cannot parse the trivy JSON report")?;
    Ok(r.results
        .into_iter()
        .flat_map(|x| x.vulnerabilities)
        .collect())
}

/// Findings counted per severity.
pub fn counts(findings: &[Finding]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in findings {
        *out.entry(f.severity.clone()).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_argv_and_report_counts() {
        let o = ScanOptions {
            ignore_unfixed: true,
            cache_dir: Some("/c".into()),
        };
        let cmd = scan_image("trivy", "r/web:abc", Path::new("out/scan.json"), &o);
        let argv = cmd.argv();
        assert_eq!(argv[..3], ["trivy", "image", "--image-src"]);
        assert!(argv.windows(2).any(|w| w == ["--output", "out/scan.json"]));
        assert!(argv.contains(&"--ignore-unfixed"));
        assert!(argv.windows(2).any(|w| w == ["--cache-dir", "/c"]));
        assert_eq!(*argv.last().unwrap(), "r/web:abc");
        assert_eq!(
            to_sarif("trivy", Path::new("a.json"), Path::new("a.sarif")).argv(),
            ["trivy", "convert", "--format", "sarif", "--output", "a.sarif", "a.json"]
        );
        let json = r#"{"SchemaVersion":2,"Results":[{"Target":"x","Vulnerabilities":[
            {"VulnerabilityID":"CVE-1","PkgName":"a","InstalledVersion":"1","FixedVersion":"2","Severity":"CRITICAL"},
            {"VulnerabilityID":"CVE-2","PkgName":"b","InstalledVersion":"1","Severity":"HIGH"},
            {"VulnerabilityID":"CVE-3","PkgName":"c","InstalledVersion":"1","Severity":"HIGH"}]},{"Target":"y"}]}"#;
        let f = parse_report(json).unwrap();
        assert_eq!(f.len(), 3);
        let c = counts(&f);
        assert_eq!(c["CRITICAL"], 1);
        assert_eq!(c["HIGH"], 2);
        assert!(
            parse_report("{}").unwrap().is_empty(),
            "a clean image has no Results"
        );
        assert!(parse_report("not json").is_err());
    }
}
