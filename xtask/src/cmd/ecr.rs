//! `cargo xtask ecr plan|apply`: every service's ECR repository as code — scanning,
//! encryption, tag mutability, resource tags and the lifecycle policy from
//! `[workspace.metadata.images.ecr]` — compared with what ECR says (the aws CLI), created or
//! updated by `apply`, idempotently. `plan --format terraform` writes the same as Terraform.
//! Repositories tagged `managed-by = terraform` are reported as drift, never changed.

use anyhow::{bail, Context, Result};

use crate::cli::{EcrAction, EcrArgs, EcrFormat};
use crate::exec::Runner;
use crate::tools::aws::{self, RepoSpec};
use crate::ui::out;
use crate::Ctx;

/// One repository: where, and what differs.
#[derive(Debug)]
struct Target {
    host: String,
    name: String,
    region: Option<String>,
    account: Option<String>,
}

impl Target {
    fn ecr<'a>(&'a self, cli: &'a str, endpoint: Option<&'a str>) -> aws::Ecr<'a> {
        aws::Ecr {
            aws: cli,
            region: self.region.as_deref(),
            endpoint,
            registry_id: self.account.as_deref(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Change {
    Create,
    Update(Vec<String>),
    Unchanged,
    /// Managed elsewhere (Terraform): differences reported, not applied.
    Drift(Vec<String>),
    /// Only what ECR cannot change in place differs (encryption): said, not applied.
    Fixed(Vec<String>),
}

pub fn run(ctx: &Ctx, args: &EcrArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let runner = ctx.runner(false);
    let lifecycle = lifecycle_text(&ws)?;
    let multi = ws.services.iter().any(|s| s.platforms.len() > 1);
    for w in aws::lifecycle_warnings(&lifecycle, multi) {
        ctx.ui.warn(w);
    }
    let spec = repo_spec(&ws.settings.ecr);
    let targets = targets(&ws);
    if targets.is_empty() {
        bail!("no service pushes to an ECR registry (*.dkr.ecr.*.amazonaws.com, or one listed in ecr_login): nothing to plan");
    }
    let action = args.action.clone().unwrap_or(EcrAction::Plan {
        format: EcrFormat::Text,
    });
    if let EcrAction::Plan {
        format: EcrFormat::Terraform,
    } = action
    {
        out!("{}", terraform(&targets, &spec, &lifecycle));
        return Ok(());
    }
    let apply = matches!(action, EcrAction::Apply);
    let (cli, endpoint) = crate::world::aws_setup();
    let mut failed = Vec::new();
    // Every repository is read at once (8 at a time): each read is a few aws CLI calls.
    let found = crate::exec::parallel(&targets, 8, |t| {
        compare(&runner, &cli, endpoint.as_deref(), t, &spec, &lifecycle)
    });
    for (t, change) in targets.iter().zip(found) {
        let change = match change {
            Ok(c) => c,
            Err(e) => {
                failed.push(format!("{}/{}: {e:#}", t.host, t.name));
                continue;
            }
        };
        let at = format!("{}/{}", t.host, t.name);
        match &change {
            Change::Create => out!("create     {at}"),
            Change::Unchanged => out!("unchanged  {at}"),
            Change::Update(d) => {
                out!("update     {at}");
                for l in d {
                    out!("             {l}");
                }
            }
            Change::Drift(d) => {
                out!("drift      {at} (managed by Terraform: not changed here)");
                for l in d {
                    out!("             {l}");
                }
            }
            Change::Fixed(d) => {
                out!("unchanged  {at} (but fixed at creation:)");
                for l in d {
                    out!("             {l}");
                }
            }
        }
        if apply {
            if let Err(e) = converge(
                &runner,
                &cli,
                endpoint.as_deref(),
                t,
                &spec,
                &lifecycle,
                &change,
            ) {
                failed.push(format!("{at}: {e:#}"));
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} repository(ies) failed:\n- {}",
            failed.len(),
            failed.join("\n- ")
        );
    }
    Ok(())
}

/// The lifecycle policy to send (the file, or the settings'), checked.
pub fn lifecycle_text(ws: &crate::services::Workspace) -> Result<String> {
    let policy = &ws.settings.ecr;
    let text = match &policy.lifecycle_file {
        Some(f) => {
            let text = std::fs::read_to_string(ws.root.join(f)).with_context(|| {
                format!("Cargo.toml [workspace.metadata.images.ecr]: lifecycle_policy `{f}` cannot be read")
            })?;
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{f}: not JSON"))?;
            v.to_string()
        }
        None => policy.lifecycle_policy.clone(),
    };
    aws::check_lifecycle(&text)
        .context("the ECR lifecycle policy is invalid; fix it before anything is sent")?;
    Ok(text)
}

/// What every repository should be, from the settings.
pub fn repo_spec(policy: &crate::services::EcrPolicy) -> RepoSpec {
    let mut exclusions = policy.mutability_exclusions.clone();
    exclusions.sort();
    exclusions.dedup();
    RepoSpec {
        scan_on_push: policy.scan_on_push,
        encryption: policy.encryption.clone(),
        kms_key: policy.kms_key.clone(),
        tag_mutability: policy.tag_mutability.clone(),
        mutability_exclusions: exclusions,
        tags: policy.tags.clone(),
    }
}

/// The ECR repositories the services push to.
fn targets(ws: &crate::services::Workspace) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for svc in &ws.services {
        for r in &svc.registries {
            let host = r.split('/').next().unwrap_or(r).to_string();
            let ecr = aws::ecr_region(r).is_some()
                || ws
                    .settings
                    .ecr_login
                    .iter()
                    .any(|e| e.split('/').next() == Some(host.as_str()));
            if !ecr {
                continue;
            }
            let path = r.split_once('/').map_or("", |(_, p)| p);
            let mut names = vec![svc.repository.clone()];
            // Each environment's own repository, when they have one.
            if let Some(t) = &ws.settings.environment_repository {
                for env in &ws.settings.environments {
                    names.push(
                        t.replace("{repository}", &svc.repository)
                            .replace("{env}", env),
                    );
                }
            }
            for repo in names {
                let name = format!("{path}/{repo}").trim_start_matches('/').to_string();
                if !out.iter().any(|t| t.host == host && t.name == name) {
                    out.push(Target {
                        region: aws::ecr_region(r).map(String::from),
                        account: aws::ecr_account(r).map(String::from),
                        host: host.clone(),
                        name,
                    });
                }
            }
        }
    }
    out
}

/// What ECR holds for `t`, against `spec` and `lifecycle`.
fn compare(
    runner: &Runner,
    cli: &str,
    endpoint: Option<&str>,
    t: &Target,
    spec: &RepoSpec,
    lifecycle: &str,
) -> Result<Change> {
    let ecr = t.ecr(cli, endpoint);
    let found = runner.probe(&ecr.describe_repository(&t.name))?;
    if !found.success() {
        if aws::is_repository_not_found(&found.stderr) {
            return Ok(Change::Create);
        }
        bail!("describe-repositories failed: {}", found.stderr.trim());
    }
    let v: serde_json::Value = serde_json::from_str(&found.stdout)?;
    let repo = &v["repositories"][0];
    let mut diff = Vec::new();
    let mut fixed: Vec<String> = Vec::new();
    let mutability = repo["imageTagMutability"].as_str().unwrap_or("MUTABLE");
    let mut exclusions: Vec<String> = repo["imageTagMutabilityExclusionFilters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["filter"].as_str().map(String::from))
        .collect();
    exclusions.sort();
    exclusions.dedup();
    if mutability != spec.tag_mutability || exclusions != spec.mutability_exclusions {
        diff.push(format!(
            "tag mutability: {mutability}{} → {}{}",
            shown(&exclusions),
            spec.tag_mutability,
            shown(&spec.mutability_exclusions)
        ));
    }
    let scan = repo["imageScanningConfiguration"]["scanOnPush"]
        .as_bool()
        .unwrap_or(false);
    if scan != spec.scan_on_push {
        diff.push(format!("scan on push: {scan} → {}", spec.scan_on_push));
    }
    // Encryption is fixed at creation: a difference is said, never "updated".
    let enc = repo["encryptionConfiguration"]["encryptionType"]
        .as_str()
        .unwrap_or("AES256");
    let key = repo["encryptionConfiguration"]["kmsKey"].as_str();
    // Without a configured key ECR uses its own default one: only a configured key compares.
    if enc != spec.encryption
        || (spec.encryption == "KMS" && spec.kms_key.is_some() && key != spec.kms_key.as_deref())
    {
        fixed.push(format!(
            "encryption: {enc}{} → {}{} (fixed at creation: recreate the repository to change it)",
            key.map(|k| format!(" {k}")).unwrap_or_default(),
            spec.encryption,
            spec.kms_key
                .as_ref()
                .map(|k| format!(" {k}"))
                .unwrap_or_default()
        ));
    }
    let arn = repo["repositoryArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let tags = current_tags(runner, &ecr, &arn)?;
    let missing: Vec<String> = spec
        .tags
        .iter()
        .filter(|(k, v)| tags.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !missing.is_empty() {
        diff.push(format!("tags: add or set {}", missing.join(", ")));
    }
    let got = runner.probe(&ecr.get_lifecycle(&t.name))?;
    let current: Option<serde_json::Value> = if got.success() {
        serde_json::from_str::<serde_json::Value>(&got.stdout)
            .ok()
            .and_then(|v| {
                v["lifecyclePolicyText"]
                    .as_str()
                    .and_then(|t| serde_json::from_str(t).ok())
            })
    } else if got.stderr.contains("LifecyclePolicyNotFoundException") {
        None
    } else {
        bail!("get-lifecycle-policy failed: {}", got.stderr.trim());
    };
    let wanted: serde_json::Value = serde_json::from_str(lifecycle)?;
    if current.as_ref() != Some(&wanted) {
        diff.push(match &current {
            None => "lifecycle policy: none → the configured one".to_string(),
            Some(c) => format!("lifecycle policy: {} → {}", c, wanted),
        });
    }
    let terraform = tags
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("managed-by") && v.eq_ignore_ascii_case("terraform"));
    Ok(match (diff.is_empty(), terraform) {
        (true, _) if fixed.is_empty() => Change::Unchanged,
        (true, _) => Change::Fixed(fixed),
        (false, true) => Change::Drift(diff.into_iter().chain(fixed).collect()),
        (false, false) => Change::Update(diff.into_iter().chain(fixed).collect()),
    })
}

fn shown(list: &[String]) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!(" (except {})", list.join(", "))
    }
}

fn current_tags(
    runner: &Runner,
    ecr: &aws::Ecr,
    arn: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let o = runner.probe(&ecr.list_tags(arn))?;
    if !o.success() {
        bail!("list-tags-for-resource failed: {}", o.stderr.trim());
    }
    let v: serde_json::Value = serde_json::from_str(&o.stdout)?;
    Ok(v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["Key"].as_str()?.to_string(),
                t["Value"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// Makes ECR hold `spec` for `t`: create, or set what differs. Drift is left alone.
fn converge(
    runner: &Runner,
    cli: &str,
    endpoint: Option<&str>,
    t: &Target,
    spec: &RepoSpec,
    lifecycle: &str,
    change: &Change,
) -> Result<()> {
    let ecr = t.ecr(cli, endpoint);
    match change {
        Change::Unchanged | Change::Drift(_) | Change::Fixed(_) => return Ok(()),
        Change::Create => {
            runner.run_retrying(&ecr.create_full(&t.name, spec), 3)?;
        }
        Change::Update(_) => {
            runner.run_retrying(&ecr.put_mutability(&t.name, spec), 3)?;
            runner.run_retrying(&ecr.put_scanning(&t.name, spec.scan_on_push), 3)?;
            if !spec.tags.is_empty() {
                let found = runner.run(&ecr.describe_repository(&t.name))?;
                let v: serde_json::Value = serde_json::from_str(&found.stdout)?;
                let arn = v["repositories"][0]["repositoryArn"]
                    .as_str()
                    .unwrap_or_default();
                runner.run_retrying(&ecr.tag_resource(arn, &spec.tags), 3)?;
            }
        }
    }
    runner.run_retrying(&ecr.put_lifecycle(&t.name, lifecycle), 3)?;
    Ok(())
}

/// The same repositories as Terraform (`aws_ecr_repository`, `aws_ecr_lifecycle_policy`).
fn terraform(targets: &[Target], spec: &RepoSpec, lifecycle: &str) -> String {
    let mut out = String::from(
        "# Written by `cargo xtask ecr plan --format terraform`.\n\nterraform {\n  required_providers {\n    # image_tag_mutability_exclusion_filter needs a provider that has it (6.x).\n    aws = {\n      source  = \"hashicorp/aws\"\n      version = \">= 6.0\"\n    }\n  }\n}\n",
    );
    let policy: serde_json::Value = serde_json::from_str(lifecycle).unwrap_or_default();
    // Inside a heredoc `${` and `%{` are template syntax.
    let policy = serde_json::to_string_pretty(&policy)
        .unwrap_or_default()
        .replace("${", "$${")
        .replace("%{", "%%{");
    let quote = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace("${", "$${")
            .replace("%{", "%%{")
    };
    let mut ids: Vec<String> = Vec::new();
    let mut regions: Vec<String> = Vec::new();
    for t in targets {
        // Only ECR's own hosts are AWS resources; an ECR-compatible `ecr_login` host is not.
        let Some(region) = &t.region else {
            out.push_str(&format!(
                "\n# {}/{}: not an AWS ECR host, left out\n",
                t.host, t.name
            ));
            continue;
        };
        // One provider per account and region (another account needs its own credentials:
        // set them on the alias, e.g. assume_role).
        let alias = match &t.account {
            Some(a) => format!("{}_{a}", region.replace('-', "_")),
            None => region.replace('-', "_"),
        };
        if !regions.contains(&alias) {
            regions.push(alias.clone());
            out.push_str(&format!(
                "\nprovider \"aws\" {{\n  alias  = \"{alias}\"\n  region = \"{region}\"{}\n}}\n",
                t.account
                    .as_ref()
                    .map(|a| format!("\n  allowed_account_ids = [\"{a}\"]"))
                    .unwrap_or_default()
            ));
        }
        // Identifiers start with a letter, are unique (api-x and api_x) and stay the same
        // for the same repository whatever else is added: a short hash of the full name.
        let full = format!("{}/{}", t.host, t.name);
        let readable: String = t
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let hash = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(full.as_bytes());
            d.iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let id = format!("r_{readable}_{hash}");
        if ids.contains(&id) {
            continue;
        }
        ids.push(id.clone());
        out.push_str(&format!(
            "\nresource \"aws_ecr_repository\" \"{id}\" {{\n  provider             = aws.{alias}\n  name                 = \"{}\"\n  image_tag_mutability = \"{}\"\n",
            quote(&t.name), spec.tag_mutability
        ));
        for f in &spec.mutability_exclusions {
            out.push_str(&format!(
                "\n  image_tag_mutability_exclusion_filter {{\n    filter      = \"{}\"\n    filter_type = \"WILDCARD\"\n  }}\n",
                quote(f)
            ));
        }
        out.push_str(&format!(
            "\n  image_scanning_configuration {{\n    scan_on_push = {}\n  }}\n\n  encryption_configuration {{\n    encryption_type = \"{}\"\n",
            spec.scan_on_push, spec.encryption
        ));
        if let Some(k) = &spec.kms_key {
            out.push_str(&format!("    kms_key         = \"{}\"\n", quote(k)));
        }
        out.push_str("  }\n");
        if !spec.tags.is_empty() {
            out.push_str("\n  tags = {\n");
            for (k, v) in &spec.tags {
                out.push_str(&format!("    \"{}\" = \"{}\"\n", quote(k), quote(v)));
            }
            out.push_str("  }\n");
        }
        out.push_str("}\n");
        out.push_str(&format!(
            "\nresource \"aws_ecr_lifecycle_policy\" \"{id}\" {{\n  provider   = aws.{alias}\n  repository = aws_ecr_repository.{id}.name\n  policy     = <<EOT\n{policy}\nEOT\n}}\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terraform_names_every_setting() {
        let spec = RepoSpec {
            scan_on_push: true,
            encryption: "KMS".into(),
            kms_key: Some("alias/ecr".into()),
            tag_mutability: "IMMUTABLE_WITH_EXCLUSION".into(),
            mutability_exclusions: vec!["latest".into()],
            tags: [("team".to_string(), "core".to_string())].into(),
        };
        let t = Target {
            host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com".into(),
            name: "acme/api".into(),
            region: Some("eu-west-1".into()),
            account: Some("123456789012".into()),
        };
        let hcl = terraform(&[t], &spec, &crate::services::default_lifecycle("v", 10, 7));
        for want in [
            "resource \"aws_ecr_repository\" \"r_acme_api_",
            "name                 = \"acme/api\"",
            "image_tag_mutability = \"IMMUTABLE_WITH_EXCLUSION\"",
            "filter      = \"latest\"",
            "scan_on_push = true",
            "encryption_type = \"KMS\"",
            "kms_key         = \"alias/ecr\"",
            "\"team\" = \"core\"",
            "resource \"aws_ecr_lifecycle_policy\" \"r_acme_api_",
            "repository = aws_ecr_repository.r_acme_api_",
            "provider             = aws.eu_west_1_123456789012",
            "allowed_account_ids = [\"123456789012\"]",
            "version = \">= 6.0\"",
            "\"countNumber\": 10",
        ] {
            assert!(hcl.contains(want), "{want} in:\n{hcl}");
        }
    }

    #[test]
    fn lifecycle_rules_are_checked_before_sending() {
        assert!(aws::check_lifecycle(&crate::services::default_lifecycle("v", 10, 7)).is_ok());
        let tagged_without = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;
        let err = aws::check_lifecycle(tagged_without)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a `tagged` rule needs exactly one of tagPrefixList or tagPatternList"),
            "{err}"
        );
        let any_not_last = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":50},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#;
        let err = aws::check_lifecycle(any_not_last).unwrap_err().to_string();
        assert!(err.contains("must have the highest rulePriority"), "{err}");
        let dup = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}},{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":9},"action":{"type":"expire"}}]}"#;
        assert!(aws::check_lifecycle(dup)
            .unwrap_err()
            .to_string()
            .contains("used twice"));
        let w = aws::lifecycle_warnings(any_not_last, true);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("signature"), "{w:?}");
        assert!(w[1].contains("multi-platform"), "{w:?}");
    }
}
