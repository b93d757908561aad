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
    let cmd = quiet(
        trivy,
        &["image", "--image-src", "docker", "--scanners", "vuln"],
        // Every package, not only vulnerable ones: the SBOM is converted from this report.
        &["--format", "json", "--list-all-pkgs", "--output"],
    )
    .arg(report.display().to_string());
    with_options(cmd, o).arg(image)
}

/// `trivy HEAD… --skip-version-check --disable-telemetry --cache-backend memory --quiet
/// TAIL…`: every run offline-friendly, without a cache on disk, without chatter.
fn quiet(trivy: &str, head: &[&str], tail: &[&str]) -> CommandSpec {
    CommandSpec::new(trivy)
        .args(head.iter().copied())
        .args([
            "--skip-version-check",
            "--disable-telemetry",
            "--cache-backend",
            "memory",
            "--quiet",
        ])
        .args(tail.iter().copied())
}

/// `--ignore-unfixed` and `--cache-dir` as the scan settings say.
fn with_options(mut cmd: CommandSpec, o: &ScanOptions) -> CommandSpec {
    if o.ignore_unfixed {
        cmd = cmd.arg("--ignore-unfixed");
    }
    if let Some(c) = &o.cache_dir {
        cmd = cmd.args(["--cache-dir", c]);
    }
    cmd
}

/// `trivy image --image-src remote` of an image in a registry, by digest (loopback
/// registries are plain http: `--insecure`), as JSON into `report`.
pub fn scan_remote(trivy: &str, image: &str, report: &Path, o: &ScanOptions) -> CommandSpec {
    let mut cmd = scan_image(trivy, image, report, o);
    if let Some(i) = cmd.args.iter().position(|a| a == "docker") {
        cmd.args[i] = "remote".into();
    }
    if super::skopeo::is_loopback(image) {
        let at = cmd.args.len() - 1;
        cmd.args.insert(at, "--insecure".into());
    }
    cmd
}

/// `trivy image --image-src remote --format cyclonedx`: the SBOM of an image in a registry.
pub fn sbom_remote(trivy: &str, image: &str, sbom: &Path) -> CommandSpec {
    let mut cmd = quiet(
        trivy,
        &["image", "--image-src", "remote"],
        &["--format", "cyclonedx", "--output"],
    )
    .arg(sbom.display().to_string());
    if super::skopeo::is_loopback(image) {
        cmd = cmd.arg("--insecure");
    }
    cmd.arg(image)
}

/// `trivy fs .` of the repository (run from its root): lockfiles' packages, secrets and
/// misconfigurations (Dockerfiles, workflows), every package listed (their lines), as JSON.
/// `target/` (build output) is skipped; `.trivyignore` in the root is honoured.
pub fn scan_fs(trivy: &str, report: &Path, o: &ScanOptions) -> CommandSpec {
    let cmd = quiet(
        trivy,
        &["fs", "--scanners", "vuln,secret,misconfig"],
        // Build output anywhere (target/, fuzz/target/) is not the repository's content.
        &[
            "--list-all-pkgs",
            "--skip-dirs",
            "**/target",
            "--format",
            "json",
            "--output",
        ],
    )
    .arg(report.display().to_string());
    with_options(cmd, o).arg(".")
}

/// A finding of a source scan, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFinding {
    pub file: String,
    pub line: Option<usize>,
    /// `vulnerability`, `secret` or `misconfiguration`.
    pub kind: &'static str,
    pub id: String,
    pub severity: String,
    /// What and how to fix it, in a line.
    pub what: String,
}

#[derive(Debug, Deserialize)]
struct SourceReport {
    #[serde(rename = "Results", default)]
    results: Vec<SourceResult>,
}

#[derive(Debug, Deserialize)]
struct SourceResult {
    #[serde(rename = "Target")]
    target: String,
    #[serde(rename = "Vulnerabilities", default)]
    vulnerabilities: Vec<SourceVuln>,
    #[serde(rename = "Packages", default)]
    packages: Vec<SourcePackage>,
    #[serde(rename = "Secrets", default)]
    secrets: Vec<SourceSecret>,
    #[serde(rename = "Misconfigurations", default)]
    misconfigurations: Vec<SourceMisconfig>,
}

#[derive(Debug, Deserialize)]
struct SourceVuln {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    #[serde(rename = "PkgID", default)]
    pkg_id: String,
    #[serde(rename = "PkgName")]
    package: String,
    #[serde(rename = "InstalledVersion", default)]
    installed: String,
    #[serde(rename = "FixedVersion", default)]
    fixed: String,
    #[serde(rename = "Severity")]
    severity: String,
}

#[derive(Debug, Deserialize)]
struct SourcePackage {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Locations", default)]
    locations: Vec<Location>,
}

#[derive(Debug, Deserialize)]
struct Location {
    #[serde(rename = "StartLine")]
    start: usize,
}

#[derive(Debug, Deserialize)]
struct SourceSecret {
    #[serde(rename = "RuleID")]
    rule: String,
    #[serde(rename = "Title", default)]
    title: String,
    #[serde(rename = "Severity")]
    severity: String,
    #[serde(rename = "StartLine", default)]
    line: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct SourceMisconfig {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Title", default)]
    title: String,
    #[serde(rename = "Resolution", default)]
    resolution: String,
    #[serde(rename = "Severity")]
    severity: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "CauseMetadata", default)]
    cause: Option<Cause>,
}

#[derive(Debug, Default, Deserialize)]
struct Cause {
    #[serde(rename = "StartLine", default)]
    line: Option<usize>,
}

/// Every finding of a `trivy fs` JSON report with its file and line (a package's line in its
/// lockfile; a secret's; a misconfiguration's when trivy knows it). Passed checks are not
/// findings.
pub fn parse_source_report(json: &str) -> Result<Vec<SourceFinding>> {
    let r: SourceReport =
        serde_json::from_str(json).context("cannot parse the trivy JSON report")?;
    let mut out = Vec::new();
    for res in r.results {
        for v in res.vulnerabilities {
            let line = res
                .packages
                .iter()
                .find(|p| p.id == v.pkg_id)
                .and_then(|p| p.locations.first())
                .map(|l| l.start);
            out.push(SourceFinding {
                file: res.target.clone(),
                line,
                kind: "vulnerability",
                what: format!(
                    "{} {}{}",
                    v.package,
                    v.installed,
                    if v.fixed.is_empty() {
                        " (no fix yet)".to_string()
                    } else {
                        format!(": update to {}", v.fixed)
                    }
                ),
                id: v.id,
                severity: v.severity,
            });
        }
        for s in res.secrets {
            out.push(SourceFinding {
                file: res.target.clone(),
                line: s.line,
                kind: "secret",
                what: format!(
                    "{}: revoke it, and remove it (from the git history too if it was committed)",
                    s.title
                ),
                id: s.rule,
                severity: s.severity,
            });
        }
        for m in res
            .misconfigurations
            .into_iter()
            .filter(|m| m.status != "PASS")
        {
            out.push(SourceFinding {
                file: res.target.clone(),
                line: m.cause.and_then(|c| c.line),
                kind: "misconfiguration",
                what: format!("{}: {}", m.title, m.resolution),
                id: m.id,
                severity: m.severity,
            });
        }
    }
    Ok(out)
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

    #[test]
    fn source_findings_carry_file_and_line() {
        let json = r#"{"Results":[
          {"Target":"Cargo.lock","Class":"lang-pkgs","Type":"cargo",
           "Packages":[{"ID":"strsim@0.11.1","Locations":[{"StartLine":180,"EndLine":184}]}],
           "Vulnerabilities":[{"VulnerabilityID":"CVE-2099-0101","PkgID":"strsim@0.11.1","PkgName":"strsim","InstalledVersion":"0.11.1","FixedVersion":"99.0.0","Severity":"HIGH"}]},
          {"Target":"ci/creds.txt","Class":"secret","Secrets":[{"RuleID":"github-pat","Title":"GitHub Personal Access Token","Severity":"CRITICAL","StartLine":3}]},
          {"Target":"services/web/Dockerfile","Class":"config","Misconfigurations":[
            {"ID":"DS-0002","Title":"Image user should not be 'root'","Resolution":"Add 'USER <non root user name>' line to the Dockerfile","Severity":"HIGH","Status":"FAIL","CauseMetadata":{"Provider":"Dockerfile"}},
            {"ID":"DS-0001","Title":"ok","Severity":"MEDIUM","Status":"PASS"}]}]}"#;
        let f = parse_source_report(json).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].file.as_str(), f[0].line), ("Cargo.lock", Some(180)));
        assert_eq!(f[0].what, "strsim 0.11.1: update to 99.0.0");
        assert_eq!(
            (f[1].kind, f[1].line, f[1].severity.as_str()),
            ("secret", Some(3), "CRITICAL")
        );
        assert_eq!((f[2].id.as_str(), f[2].line), ("DS-0002", None));
        let argv = scan_fs(
            "trivy",
            Path::new("r.json"),
            &ScanOptions {
                ignore_unfixed: false,
                cache_dir: None,
            },
        )
        .argv()
        .join(" ");
        assert!(
            argv.starts_with("trivy fs --scanners vuln,secret,misconfig "),
            "{argv}"
        );
        assert!(
            argv.ends_with("--skip-dirs **/target --format json --output r.json ."),
            "{argv}"
        );
    }
}
