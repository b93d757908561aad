//! `cargo xtask promote SERVICE… --from ENV --to ENV`: the image an environment runs gets the
//! next environment's tag, by digest — resolved once, checked (signed, scan passed), then
//! tagged without a pull or a rebuild: `aws ecr batch-get-image` + `put-image` on ECR, `skopeo
//! copy` by digest elsewhere. Idempotent; prints every reference it moved with its digest.

use anyhow::{bail, Context, Result};

use crate::cli::PromoteArgs;
use crate::exec::Runner;
use crate::services::{Service, Workspace};
use crate::tools::{aws, cosign, skopeo, trivy};
use crate::ui::out;
use crate::Ctx;

/// What happened to one repository.
#[derive(Debug, Clone, serde::Serialize)]
struct Moved {
    service: String,
    /// `repo:tag` read, and `repo:tag` written.
    source: String,
    target: String,
    from: String,
    to: String,
    digest: String,
    /// `promoted`, `already there`, `would promote` (dry run).
    result: String,
}

pub fn run(ctx: &Ctx, args: &PromoteArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let runner = ctx.runner(args.dry_run);
    if let Some(v) = &args.version {
        crate::version::parse(v).with_context(|| format!("--version {v}"))?;
    }
    for env in [&args.from, &args.to] {
        if !ws.settings.environments.contains(env) {
            let known = &ws.settings.environments;
            bail!(
                "unknown environment `{env}`{}: environments are {} (`environments` under [workspace.metadata.images] in Cargo.toml)",
                crate::config::closest(env, known.iter().map(String::as_str))
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default(),
                if known.is_empty() { "not configured".to_string() } else { known.join(", ") }
            );
        }
    }
    if args.from == args.to {
        bail!(
            "--from and --to are both `{}`: nothing to promote",
            args.from
        );
    }
    let services = ws.select(&args.services)?;
    if services.is_empty() {
        bail!(
            "name the services to promote (cargo xtask promote api web --from staging --to prod)"
        );
    }
    if let Some(s) = services.iter().find(|s| s.registries.is_empty()) {
        bail!(
            "service `{}` has no registry: there is nothing to promote",
            s.name
        );
    }
    let _logins = crate::world::LoginDir::new(crate::world::login_dir(&ws.root));
    // ECR's own hosts are reached through its API only; the others need a registry login.
    let need_login: Vec<String> = services
        .iter()
        .filter(|s| {
            s.registries.iter().any(|r| aws::ecr_region(r).is_none())
                || ws.settings.environment_repository.is_some()
        })
        .map(|s| s.name.clone())
        .collect();
    if !need_login.is_empty() {
        crate::world::login_to_read(ctx, &ws, &need_login, &runner)?;
    }
    if ws.settings.sign.is_none() {
        ctx.ui.warn("signing is not configured: a signature tag in the registry counts as signed without being verified (anyone who can push a tag can add one); configure [workspace.metadata.images.sign] so promote runs cosign verify");
    }
    let root_version = crate::version::read(&ws.root.join("VERSION")).ok();
    let mut moved = Vec::new();
    let mut refused = Vec::new();
    for svc in &services {
        let version = match (&args.version, &svc.version, &root_version) {
            (Some(v), _, _) => v.clone(),
            (None, Some(v), _) | (None, None, Some(v)) => v.to_string(),
            (None, None, None) => String::new(),
        };
        let tag = |env: &str| ws.settings.environment_tag(env, &svc.name, &version);
        let sources = ws.settings.environment_repositories(svc, &args.from);
        let targets = ws.settings.environment_repositories(svc, &args.to);
        for (src, dst) in sources.iter().zip(&targets) {
            match promote(
                &runner,
                &ws,
                svc,
                src,
                dst,
                &tag(&args.from),
                &tag(&args.to),
            ) {
                Ok(m) => {
                    let line = format!(
                        "{dst}:{} -> {} ({}, from {src}:{})",
                        m.to, m.digest, m.result, m.from
                    );
                    // `--json`: the JSON alone on stdout.
                    if args.json {
                        ctx.ui.info(line);
                    } else {
                        out!("{line}");
                    }
                    moved.push(m);
                }
                Err(e) => refused.push(format!("{} ({src}): {e:#}", svc.name)),
            }
        }
    }
    if args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"schema_version": 1, "moved": moved, "refused": refused})
            )?
        );
    }
    if !refused.is_empty() {
        bail!(
            "{} not promoted:\n- {}",
            refused.len(),
            refused.join("\n- ")
        );
    }
    Ok(())
}

/// One repository: resolve, check, tag.
fn promote(
    runner: &Runner,
    ws: &Workspace,
    svc: &Service,
    src: &str,
    dst: &str,
    from: &str,
    to: &str,
) -> Result<Moved> {
    let repo = src;
    let api = aws::ecr_region(repo).is_some();
    let (cli, endpoint) = crate::world::aws_setup();
    let name = repo.split_once('/').map_or("", |(_, p)| p);
    let ep = endpoint.as_deref();
    let ecr = aws::Ecr::of(&cli, ep, repo);
    // What a tag of a repository holds (ECR's API on ECR, else the registry).
    let digest_in = |repo: &str, tag: &str| -> Result<Option<String>> {
        if aws::ecr_region(repo).is_some() {
            let name = repo.split_once('/').map_or("", |(_, p)| p);
            let o = runner.probe(&aws::Ecr::of(&cli, ep, repo).describe_tag(name, tag))?;
            if o.success() {
                return Ok(aws::parse_image_digest(&o.stdout));
            }
            if aws::is_image_not_found(&o.stderr) {
                return Ok(None);
            }
            bail!("cannot read {repo}:{tag}: {}", o.stderr.trim());
        }
        let o = runner.probe(&skopeo::inspect("skopeo", &format!("{repo}:{tag}")))?;
        if o.success() {
            return Ok(Some(skopeo::parse_inspect(&o.stdout)?.digest));
        }
        if skopeo::is_not_found(&o.stderr) {
            return Ok(None);
        }
        bail!(
            "cannot read {repo}:{tag}: {}",
            skopeo::error_message(&o.stderr)
        );
    };
    // The digest, once; everything after uses it.
    let digest_of = |tag: &str| digest_in(src, tag);
    let digest = digest_of(from)?.with_context(|| {
        format!("{repo}:{from} does not exist: nothing to promote (cargo xtask status shows what is published)")
    })?;
    let at = format!("{repo}@{digest}");

    // Signed: the signature is in the registry, and verifies when signing is configured.
    if digest_of(&cosign::signature_tag(&digest))?.is_none() {
        bail!(
            "{at} is not signed (no {} tag): sign it first (cargo xtask sign), then promote",
            cosign::signature_tag(&digest)
        );
    }
    // The checks read only: `--dry-run` runs them too, so it says what the real run would.
    let checker = Runner::new(runner.root.clone(), false, runner.verbose);
    if let Some(signer) = &ws.settings.sign {
        checker
            .run_retrying(&cosign::verify("cosign", signer, &at), 3)
            .with_context(|| format!("{at} has a signature that does not verify with the configured key or identity: not promoted"))?;
    }

    // The scan: ECR's own on ECR registries, else trivy now (today's database).
    let fail_on = &ws.settings.scan.fail_on;
    let host = repo.split('/').next().unwrap_or(repo);
    let ecr_scan = api
        || ws
            .settings
            .ecr_login
            .iter()
            .any(|e| e.split('/').next() == Some(host));
    if ecr_scan {
        let o = runner.probe(&ecr.scan_findings(name, &digest))?;
        let scan = o.success().then(|| aws::parse_scan(&o.stdout)).flatten();
        match scan {
            None => bail!("ECR has no scan of {at}: start one (aws ecr start-image-scan --repository-name {name} --image-id imageDigest={digest}) or turn on scan on push, then promote"),
            // ACTIVE: enhanced (continuous) scanning, whose findings are current.
            Some(s) if s.status != "COMPLETE" && s.status != "ACTIVE" => bail!("ECR's scan of {at} is {}: wait for it (cargo xtask status --wait 300), then promote", s.status),
            Some(s) => {
                let blocking: Vec<String> = s
                    .counts
                    .iter()
                    .filter(|(k, n)| fail_on.contains(k) && **n > 0)
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect();
                if !blocking.is_empty() {
                    bail!("{at} did not pass the scan (ECR found {}; fail_on: {}): not promoted", blocking.join(", "), fail_on.join("/"));
                }
            }
        }
    } else {
        let report = std::path::Path::new(crate::plan::WORK_DIR)
            .join("out")
            .join(&svc.name)
            .join("promote-scan.json");
        std::fs::create_dir_all(runner.root.join(report.parent().unwrap_or(&report)))?;
        checker.run(&trivy::scan_remote(
            "trivy",
            &at,
            &report,
            &trivy::ScanOptions {
                ignore_unfixed: ws.settings.scan.ignore_unfixed,
                cache_dir: ws.settings.scan.cache_dir.clone(),
            },
        ))?;
        let text = std::fs::read_to_string(runner.root.join(&report))?;
        let blocking: Vec<String> = trivy::parse_report(&text)?
            .into_iter()
            .filter(|f| fail_on.contains(&f.severity))
            .map(|f| format!("{} {} in {} {}", f.severity, f.id, f.package, f.installed))
            .collect();
        if !blocking.is_empty() {
            bail!(
                "{at} did not pass the scan ({}): not promoted",
                blocking.join("; ")
            );
        }
    }

    // Another repository (an environment's own): the signature and attestations live beside
    // the image, so they move along (also when the image is already there: a half-finished
    // earlier promotion), or the target would hold an unsigned image.
    let companions = |runner: &Runner| -> Result<()> {
        for t in [
            cosign::signature_tag(&digest),
            cosign::attestation_tag(&digest),
        ] {
            // Only what the target lacks: a signature already there (perhaps another
            // signer's) is never overwritten.
            if digest_in(src, &t)?.is_some() && digest_in(dst, &t)?.is_none() {
                runner.run_retrying(
                    &skopeo::copy("skopeo", &format!("{src}:{t}"), &format!("{dst}:{t}")),
                    3,
                )?;
            }
        }
        Ok(())
    };
    // Already there?
    if digest_in(dst, to)?.as_deref() == Some(digest.as_str()) {
        if src != dst {
            companions(runner)?;
        }
        return Ok(moved((svc, src, dst), from, to, &digest, "already there"));
    }
    if src != dst {
        // The blobs move too, registry to registry, every platform.
        runner.run_retrying(&skopeo::copy("skopeo", &at, &format!("{dst}:{to}")), 3)?;
        companions(runner)?;
    } else if api {
        let o = runner.run_retrying(&ecr.get_manifest(name, &digest), 3)?;
        if runner.dry_run {
            runner.run(&ecr.put_tag(name, to, "<manifest>", None, &digest))?;
            return Ok(moved((svc, src, dst), from, to, &digest, "would promote"));
        }
        let (manifest, media_type) = aws::parse_manifest(&o.stdout)
            .with_context(|| format!("ECR returned no manifest for {at}"))?;
        let put = ecr.put_tag(name, to, &manifest, media_type.as_deref(), &digest);
        if let Err(e) = runner.run_retrying(&put, 3) {
            if !aws::is_already_there(&format!("{e:#}")) {
                return Err(e.context(format!(
                    "{repo}:{to} was not moved (an IMMUTABLE repository keeps the tag where it is)"
                )));
            }
        }
    } else {
        runner.run_retrying(&skopeo::copy("skopeo", &at, &format!("{repo}:{to}")), 3)?;
    }
    Ok(moved(
        (svc, src, dst),
        from,
        to,
        &digest,
        if runner.dry_run {
            "would promote"
        } else {
            "promoted"
        },
    ))
}

fn moved(
    (svc, src, dst): (&Service, &str, &str),
    from: &str,
    to: &str,
    digest: &str,
    result: &str,
) -> Moved {
    Moved {
        service: svc.name.clone(),
        source: format!("{src}:{from}"),
        target: format!("{dst}:{to}"),
        from: from.into(),
        to: to.into(),
        digest: digest.into(),
        result: result.into(),
    }
}
