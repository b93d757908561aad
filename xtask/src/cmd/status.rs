//! `cargo xtask status`: what the registries hold for a commit or a version, per service and
//! registry — read from the registries themselves (skopeo; ECR's API through the aws CLI for
//! pushed-at and its scan), never inferred from CI history. Services with no image are
//! reported, and make the command fail.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::exec::Runner;
use crate::tools::{aws, cosign, skopeo};
use crate::ui::out;
use crate::Ctx;

/// One service in one registry.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub service: String,
    /// `registry/repository:tag` asked for.
    pub reference: String,
    /// `published`, `missing`, or `unknown` (the registry could not be read: `error`).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub digest: Option<String>,
    pub revision: Option<String>,
    pub version: Option<String>,
    pub created: Option<String>,
    /// When ECR received it (ECR only).
    pub pushed_at: Option<String>,
    pub platforms: Vec<String>,
    /// Compressed bytes (config and layers) of a single-platform image.
    pub size: Option<u64>,
    /// A `sha256-<hex>.sig` tag (cosign) is there.
    pub signed: bool,
    /// A `sha256-<hex>.att` tag (an SBOM attestation) is there.
    pub attested: bool,
    /// ECR's scan (ECR only): status and findings per severity.
    pub scan: Option<aws::EcrScan>,
    /// Environments (`environments` in the config) whose tag points at this digest.
    pub environments: Vec<String>,
}

pub fn run(ctx: &Ctx, args: &StatusArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let runner = ctx.runner(false);
    let services: Vec<&crate::services::Service> = if args.services.is_empty() {
        ws.services.iter().collect()
    } else {
        ws.select(&args.services)?
    };
    let tag = match (&args.version, &args.r#ref) {
        (Some(v), _) => {
            crate::version::parse(v).with_context(|| format!("--version {v}"))?;
            v.clone()
        }
        (None, r) => {
            let repo = git2::Repository::open(&ws.root)
                .with_context(|| format!("{} is not a git repository", ws.root.display()))?;
            let spec = r.as_deref().unwrap_or("HEAD");
            let commit = repo
                .revparse_single(spec)
                .and_then(|o| o.peel_to_commit())
                .with_context(|| {
                    format!("--ref {spec}: no such commit (fetch it, or check the name)")
                })?;
            crate::tags::short_sha(&commit.id().to_string()).to_string()
        }
    };
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    let _logins = crate::world::LoginDir::new(crate::world::login_dir(&ws.root));
    crate::world::login_to_read(ctx, &ws, &names, &runner)?;

    let mut jobs = Vec::new();
    for svc in &services {
        if svc.registries.is_empty() {
            jobs.push((svc.name.clone(), None, String::new()));
        }
        for repo in crate::plan::repositories(svc) {
            if svc.registries.is_empty() {
                continue;
            }
            jobs.push((svc.name.clone(), Some(repo), tag.clone()));
        }
    }
    let version = args.version.as_deref();
    let wait = args.wait;
    let rows: Vec<Row> = crate::exec::parallel(&jobs, 8, |(service, repo, tag)| match repo {
        None => Row {
            service: service.clone(),
            state: "unknown".into(),
            error: Some("no registry is configured for it".into()),
            ..Row::default()
        },
        Some(repo) => read(&runner, &ws, service, repo, tag, wait, version),
    });

    if args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema_version": 1,
                "tag": tag,
                "images": rows,
            }))?
        );
    } else {
        for line in table(&rows) {
            out!("{line}");
        }
    }
    let unreadable: Vec<String> = rows
        .iter()
        .filter(|r| r.state == "unknown")
        .map(|r| {
            format!(
                "{} ({})",
                r.service,
                r.error.as_deref().unwrap_or("cannot be read")
            )
        })
        .collect();
    if !unreadable.is_empty() {
        bail!(
            "cannot tell what is published for {tag}: {}",
            unreadable.join(", ")
        );
    }
    let missing: Vec<String> = rows
        .iter()
        .filter(|r| r.state != "published")
        .map(|r| {
            format!(
                "{} ({}{})",
                r.service,
                if r.reference.is_empty() {
                    "-"
                } else {
                    &r.reference
                },
                r.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "not published for {tag}: {} (push it: cargo xtask push {})",
            missing.join(", "),
            rows.iter()
                .filter(|r| r.state != "published")
                .map(|r| r.service.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}

/// Everything the registry says about `repo:tag`.
fn read(
    runner: &Runner,
    ws: &crate::services::Workspace,
    service: &str,
    repo: &str,
    tag: &str,
    wait: Option<u64>,
    asked_version: Option<&str>,
) -> Row {
    let reference = format!("{repo}:{tag}");
    let mut row = Row {
        service: service.to_string(),
        reference: reference.clone(),
        ..Row::default()
    };
    let inspected = match runner.probe(&skopeo::inspect("skopeo", &reference)) {
        Ok(o) if o.success() => match skopeo::parse_inspect(&o.stdout) {
            Ok(i) => i,
            Err(e) => {
                row.state = "unknown".into();
                row.error = Some(format!("{e:#}"));
                return row;
            }
        },
        Ok(o) if skopeo::is_not_found(&o.stderr) => {
            row.state = "missing".into();
            return row;
        }
        Ok(o) => {
            row.state = "unknown".into();
            row.error = Some(skopeo::error_message(&o.stderr));
            return row;
        }
        Err(e) => {
            row.state = "unknown".into();
            row.error = Some(format!("{e:#}"));
            return row;
        }
    };
    row.state = "published".into();
    let labels = inspected.labels.clone().unwrap_or_default();
    row.revision = labels.get("org.opencontainers.image.revision").cloned();
    row.version = labels.get("org.opencontainers.image.version").cloned();
    row.created = labels.get("org.opencontainers.image.created").cloned();
    let digest = inspected.digest.clone();
    row.digest = Some(digest.clone());
    let at = format!("{repo}@{digest}");
    match runner
        .probe(&skopeo::inspect_raw("skopeo", &at))
        .ok()
        .filter(|o| o.success())
        .and_then(|o| skopeo::parse_raw(&o.stdout).ok())
    {
        Some(raw) if !raw.platforms.is_empty() => row.platforms = raw.platforms,
        Some(raw) => {
            row.size = raw.size;
            row.platforms = vec![format!("{}/{}", inspected.os, inspected.architecture)];
        }
        None => {}
    }
    let exists = |t: String| {
        runner
            .probe(&skopeo::inspect("skopeo", &format!("{repo}:{t}")))
            .is_ok_and(|o| o.success())
    };
    row.signed = exists(cosign::signature_tag(&digest));
    row.attested = exists(cosign::attestation_tag(&digest));
    // The version asked for, else the image's own label, else the checkout's.
    let version = asked_version
        .map(String::from)
        .or_else(|| row.version.clone())
        .or_else(|| {
            ws.services
                .iter()
                .find(|s| s.name == service)
                .and_then(|s| s.version.as_ref().map(|v| v.to_string()))
        })
        .or_else(|| {
            crate::version::read(&ws.root.join("VERSION"))
                .ok()
                .map(|v| v.to_string())
        })
        .unwrap_or_default();
    let svc = ws.services.iter().find(|s| s.name == service);
    let index = svc.and_then(|s| crate::plan::repositories(s).iter().position(|r| r == repo));
    for env in &ws.settings.environments {
        let env_tag = ws.settings.environment_tag(env, service, &version);
        // The environment's own repository when environments have one.
        let env_repo = match (svc, index) {
            (Some(s), Some(i)) => ws
                .settings
                .environment_repositories(s, env)
                .get(i)
                .cloned()
                .unwrap_or_else(|| repo.to_string()),
            _ => repo.to_string(),
        };
        let same = runner
            .probe(&skopeo::inspect("skopeo", &format!("{env_repo}:{env_tag}")))
            .ok()
            .filter(|o| o.success())
            .and_then(|o| skopeo::parse_inspect(&o.stdout).ok())
            .is_some_and(|i| i.digest == digest);
        if same {
            row.environments.push(env.clone());
        }
    }
    // ECR: when it was pushed and ECR's own scan.
    let host = repo.split('/').next().unwrap_or(repo);
    let ecr = aws::ecr_region(repo).is_some()
        || ws
            .settings
            .ecr_login
            .iter()
            .any(|e| e.split('/').next() == Some(host));
    if ecr {
        let (cli, endpoint) = crate::world::aws_setup();
        let ecr = aws::Ecr::of(&cli, endpoint.as_deref(), repo);
        let name = repo.split_once('/').map_or("", |(_, p)| p);
        if let Some(o) = runner
            .probe(&ecr.describe_image(name, &digest))
            .ok()
            .filter(|o| o.success())
        {
            row.pushed_at = aws::parse_pushed_at(&o.stdout);
            row.scan = aws::parse_scan(&o.stdout);
        }
        let findings = ecr.scan_findings(name, &digest);
        let started = std::time::Instant::now();
        loop {
            let scan = runner
                .probe(&findings)
                .ok()
                .filter(|o| o.success())
                .and_then(|o| aws::parse_scan(&o.stdout));
            if let Some(s) = scan {
                row.scan = Some(s);
            }
            let pending = row
                .scan
                .as_ref()
                .is_some_and(|s| s.status == "IN_PROGRESS" || s.status == "PENDING");
            match wait {
                Some(secs) if pending && started.elapsed().as_secs() < secs => {
                    std::thread::sleep(std::time::Duration::from_secs(2));
                }
                _ => break,
            }
        }
    }
    row
}

/// A table for people: service, state, digest, platforms, size, signed, scan, environments.
fn table(rows: &[Row]) -> Vec<String> {
    let header = [
        "SERVICE",
        "REFERENCE",
        "STATE",
        "DIGEST",
        "PLATFORMS",
        "SIZE",
        "SIGNED",
        "SCAN",
        "ENVS",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            r.service.clone(),
            if r.reference.is_empty() {
                "-".into()
            } else {
                r.reference.clone()
            },
            r.state.clone(),
            r.digest_short(),
            if r.platforms.is_empty() {
                "-".into()
            } else {
                r.platforms.join(",")
            },
            r.size
                .map(crate::config::show_size)
                .unwrap_or_else(|| "-".into()),
            match (r.signed, r.attested) {
                (true, true) => "yes+sbom".into(),
                (true, false) => "yes".into(),
                _ => "no".into(),
            },
            match &r.scan {
                None => "-".into(),
                Some(s) if s.counts.is_empty() => s.status.clone(),
                Some(s) => format!(
                    "{} {}",
                    s.status,
                    s.counts
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            },
            if r.environments.is_empty() {
                "-".into()
            } else {
                r.environments.join(",")
            },
        ]);
    }
    crate::ui::columns(&cells)
}

impl Row {
    fn digest_short(&self) -> String {
        match self.digest.as_deref().and_then(|d| d.split_once(':')) {
            Some((alg, hex)) => format!("{alg}:{}", &hex[..hex.len().min(12)]),
            None => "-".into(),
        }
    }
}
