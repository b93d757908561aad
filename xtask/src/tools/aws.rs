//! `aws` commands (the real AWS CLI; v1 and v2 alike): the ECR login password. Where an
//! endpoint is configured it is passed as `--endpoint-url` (v2 before 2.13 ignores the
//! environment variable).

use super::CommandSpec;

/// Where `aws ecr` commands go: the CLI, the region, the endpoint (`--endpoint-url`) and the
/// registry's account when it is another's than the credentials' (`--registry-id`; ECR
/// otherwise looks in the caller's own account).
#[derive(Debug, Clone, Copy)]
pub struct Ecr<'a> {
    pub aws: &'a str,
    pub region: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub registry_id: Option<&'a str>,
}

impl<'a> Ecr<'a> {
    /// For the ECR registry in `reference` (`<account>.dkr.ecr.<region>.amazonaws.com/…`):
    /// its region and account.
    pub fn of(aws: &'a str, endpoint: Option<&'a str>, reference: &'a str) -> Ecr<'a> {
        Ecr {
            aws,
            region: ecr_region(reference),
            endpoint,
            registry_id: ecr_account(reference),
        }
    }

    /// `aws ecr <operation>` with the region and endpoint after it.
    fn op(&self, operation: &str) -> CommandSpec {
        let mut cmd = CommandSpec::new(self.aws).args(["ecr", operation]);
        if let Some(r) = self.region {
            cmd = cmd.args(["--region", r]);
        }
        if let Some(e) = self.endpoint {
            cmd = cmd.args(["--endpoint-url", e]);
        }
        cmd
    }

    /// `aws ecr <operation> [--registry-id ACCOUNT]`.
    fn registry_op(&self, operation: &str) -> CommandSpec {
        match self.registry_id {
            Some(id) => self.op(operation).args(["--registry-id", id]),
            None => self.op(operation),
        }
    }

    /// `aws ecr <operation> … --repository-name NAME` for one repository.
    fn repo_op(&self, operation: &str, name: &str) -> CommandSpec {
        self.registry_op(operation)
            .args(["--repository-name", name])
    }

    /// `aws ecr get-login-password`: the password for `docker login --username AWS`.
    pub fn login_password(&self) -> CommandSpec {
        let mut cmd = self.op("get-login-password");
        cmd.secret_output = true;
        cmd
    }

    /// `aws ecr describe-repositories` of one repository (fails with
    /// `RepositoryNotFoundException` when it does not exist).
    pub fn describe_repository(&self, name: &str) -> CommandSpec {
        self.registry_op("describe-repositories")
            .args(["--repository-names", name])
            .args(["--output", "json"])
    }

    /// `aws ecr describe-images` of one image by digest (tags, pushed at, size, scan summary).
    pub fn describe_image(&self, name: &str, digest: &str) -> CommandSpec {
        self.repo_op("describe-images", name)
            .args(["--image-ids", &format!("imageDigest={digest}")])
            .args(["--output", "json"])
    }

    /// `aws ecr describe-image-scan-findings` of one image by digest (status and counts).
    pub fn scan_findings(&self, name: &str, digest: &str) -> CommandSpec {
        self.repo_op("describe-image-scan-findings", name)
            .args(["--image-id", &format!("imageDigest={digest}")])
            .args(["--output", "json"])
    }

    /// `aws ecr describe-images` of one tag (its digest), or `ImageNotFoundException`.
    pub fn describe_tag(&self, name: &str, tag: &str) -> CommandSpec {
        self.repo_op("describe-images", name)
            .args(["--image-ids", &format!("imageTag={tag}")])
            .args(["--output", "json"])
    }

    /// `aws ecr batch-get-image` of one digest: its manifest, as pushed.
    pub fn get_manifest(&self, name: &str, digest: &str) -> CommandSpec {
        self.repo_op("batch-get-image", name)
            .args(["--image-ids", &format!("imageDigest={digest}")])
            .args([
                "--accepted-media-types",
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ])
            .args(["--output", "json"])
    }

    /// `aws ecr put-image`: `tag` on the manifest of `digest` (checked by ECR against it) — a
    /// new tag for the same image, without pulling or pushing a layer.
    pub fn put_tag(
        &self,
        name: &str,
        tag: &str,
        manifest: &str,
        media_type: Option<&str>,
        digest: &str,
    ) -> CommandSpec {
        let mut cmd = self
            .repo_op("put-image", name)
            .args(["--image-tag", tag])
            .args(["--image-manifest", manifest])
            .args(["--image-digest", digest]);
        if let Some(mt) = media_type {
            cmd = cmd.args(["--image-manifest-media-type", mt]);
        }
        cmd.args(["--output", "json"])
    }

    /// `aws ecr create-repository` with every setting of `spec`.
    pub fn create_full(&self, name: &str, spec: &RepoSpec) -> CommandSpec {
        let mut cmd = self
            .repo_op("create-repository", name)
            .args(["--image-tag-mutability", &spec.tag_mutability]);
        cmd = exclusion_args(cmd, spec);
        cmd = cmd.args([
            "--image-scanning-configuration",
            &format!("scanOnPush={}", spec.scan_on_push),
        ]);
        let mut enc = format!("encryptionType={}", spec.encryption);
        if let Some(k) = &spec.kms_key {
            enc.push_str(&format!(",kmsKey={k}"));
        }
        cmd = cmd.args(["--encryption-configuration", &enc]);
        if !spec.tags.is_empty() {
            cmd = tag_args(cmd.arg("--tags"), &spec.tags);
        }
        cmd.args(["--output", "json"])
    }

    /// `aws ecr put-image-tag-mutability`.
    pub fn put_mutability(&self, name: &str, spec: &RepoSpec) -> CommandSpec {
        let cmd = self
            .repo_op("put-image-tag-mutability", name)
            .args(["--image-tag-mutability", &spec.tag_mutability]);
        exclusion_args(cmd, spec).args(["--output", "json"])
    }

    /// `aws ecr put-image-scanning-configuration`.
    pub fn put_scanning(&self, name: &str, scan_on_push: bool) -> CommandSpec {
        self.repo_op("put-image-scanning-configuration", name)
            .args([
                "--image-scanning-configuration",
                &format!("scanOnPush={scan_on_push}"),
            ])
            .args(["--output", "json"])
    }

    /// `aws ecr tag-resource` of a repository's ARN (the ARN names the account).
    pub fn tag_resource(
        &self,
        arn: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> CommandSpec {
        tag_args(
            self.op("tag-resource")
                .args(["--resource-arn", arn])
                .arg("--tags"),
            tags,
        )
    }

    /// `aws ecr list-tags-for-resource` of a repository's ARN.
    pub fn list_tags(&self, arn: &str) -> CommandSpec {
        self.op("list-tags-for-resource")
            .args(["--resource-arn", arn])
            .args(["--output", "json"])
    }

    /// `aws ecr get-lifecycle-policy` (`LifecyclePolicyNotFoundException` when there is none).
    pub fn get_lifecycle(&self, name: &str) -> CommandSpec {
        self.repo_op("get-lifecycle-policy", name)
            .args(["--output", "json"])
    }

    /// `aws ecr put-lifecycle-policy` with the policy text.
    pub fn put_lifecycle(&self, name: &str, policy: &str) -> CommandSpec {
        self.repo_op("put-lifecycle-policy", name)
            .args(["--lifecycle-policy-text", policy])
            .args(["--output", "json"])
    }
}

/// `Key=k,Value=v` for each resource tag.
fn tag_args(
    mut cmd: CommandSpec,
    tags: &std::collections::BTreeMap<String, String>,
) -> CommandSpec {
    for (k, v) in tags {
        cmd = cmd.arg(format!("Key={k},Value={v}"));
    }
    cmd
}

/// The digest of the first image `describe-images` lists.
pub fn parse_image_digest(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["imageDetails"][0]["imageDigest"]
        .as_str()
        .map(String::from)
}

/// The manifest and its media type from `batch-get-image`.
pub fn parse_manifest(json: &str) -> Option<(String, Option<String>)> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let image = &v["images"][0];
    Some((
        image["imageManifest"].as_str()?.to_string(),
        image["imageManifestMediaType"].as_str().map(String::from),
    ))
}

/// ECR says the image (or tag) is not there.
pub fn is_image_not_found(stderr: &str) -> bool {
    stderr.contains("ImageNotFoundException") || stderr.contains("RepositoryNotFoundException")
}

/// ECR's answer to a tag it already has on that very digest (success for us).
pub fn is_already_there(stderr: &str) -> bool {
    stderr.contains("ImageAlreadyExistsException")
}

/// ECR's scan of an image: its status and findings per severity.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct EcrScan {
    pub status: String,
    pub counts: std::collections::BTreeMap<String, u64>,
}

/// The scan part of `describe-image-scan-findings` (or of one `describe-images` entry).
pub fn parse_scan(json: &str) -> Option<EcrScan> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let detail = v["imageDetails"].get(0).unwrap_or(&v);
    let status = detail["imageScanStatus"]["status"].as_str()?.to_string();
    let summary = if detail["imageScanFindings"].is_object() {
        &detail["imageScanFindings"]
    } else {
        &detail["imageScanFindingsSummary"]
    };
    let counts = summary["findingSeverityCounts"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    Some(EcrScan { status, counts })
}

/// When ECR received the image (`imagePushedAt`: epoch seconds from CLI v1, ISO 8601 from v2).
pub fn parse_pushed_at(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let at = &v["imageDetails"][0]["imagePushedAt"];
    match at {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => n.as_f64().map(|secs| crate::tags::rfc3339(secs as i64)),
        _ => None,
    }
}

/// One ECR repository as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    pub scan_on_push: bool,
    pub encryption: String,
    pub kms_key: Option<String>,
    pub tag_mutability: String,
    pub mutability_exclusions: Vec<String>,
    pub tags: std::collections::BTreeMap<String, String>,
}

fn exclusion_args(cmd: CommandSpec, spec: &RepoSpec) -> CommandSpec {
    if spec.mutability_exclusions.is_empty() {
        return cmd;
    }
    let mut cmd = cmd.arg("--image-tag-mutability-exclusion-filters");
    for f in &spec.mutability_exclusions {
        cmd = cmd.arg(format!("filterType=WILDCARD,filter={f}"));
    }
    cmd
}

/// What ECR's lifecycle rules require, checked before anything is sent (moto and even ECR
/// accept some of these and then behave unexpectedly).
pub fn check_lifecycle(text: &str) -> anyhow::Result<()> {
    use anyhow::bail;
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("not JSON: {e}"))?;
    let Some(rules) = v["rules"].as_array().filter(|r| !r.is_empty()) else {
        bail!("no rules: `rules` must list at least one");
    };
    let mut priorities = Vec::new();
    let mut any_at = None;
    for (i, r) in rules.iter().enumerate() {
        let n = i + 1;
        let Some(p) = r["rulePriority"].as_u64() else {
            bail!("rule {n}: `rulePriority` must be a whole number");
        };
        if priorities.contains(&p) {
            bail!("rule {n}: rulePriority {p} is used twice (each must be unique)");
        }
        priorities.push(p);
        let s = &r["selection"];
        let status = s["tagStatus"].as_str().unwrap_or("");
        let prefixes = s["tagPrefixList"].as_array().map(Vec::len).unwrap_or(0);
        let patterns = s["tagPatternList"].as_array();
        match status {
            "tagged" if (prefixes > 0) == patterns.is_some_and(|p| !p.is_empty()) => {
                bail!("rule {n} (priority {p}): a `tagged` rule needs exactly one of tagPrefixList or tagPatternList")
            }
            "untagged" if prefixes > 0 || patterns.is_some() => {
                bail!("rule {n} (priority {p}): an `untagged` rule takes no tagPrefixList or tagPatternList")
            }
            "any" if prefixes > 0 || patterns.is_some() => {
                bail!("rule {n} (priority {p}): an `any` rule takes no tagPrefixList or tagPatternList")
            }
            "any" if any_at.is_some() => {
                bail!("rule {n} (priority {p}): only one rule may be `any`")
            }
            "any" => any_at = Some(p),
            "tagged" | "untagged" => {}
            other => {
                bail!("rule {n} (priority {p}): tagStatus `{other}` is not tagged, untagged or any")
            }
        }
        for pat in patterns.into_iter().flatten() {
            if pat.as_str().is_some_and(|t| t.matches('*').count() > 4) {
                bail!("rule {n} (priority {p}): a tagPatternList entry may hold at most 4 `*`");
            }
        }
        let count_type = s["countType"].as_str().unwrap_or("");
        match count_type {
            "imageCountMoreThan" if s.get("countUnit").is_some() => {
                bail!("rule {n} (priority {p}): countUnit goes only with sinceImagePushed")
            }
            "imageCountMoreThan" => {}
            "sinceImagePushed" if s["countUnit"].as_str() != Some("days") => {
                bail!("rule {n} (priority {p}): sinceImagePushed needs countUnit = \"days\"")
            }
            "sinceImagePushed" => {}
            other => bail!("rule {n} (priority {p}): countType `{other}` is not imageCountMoreThan or sinceImagePushed"),
        }
        if s["countNumber"].as_u64().unwrap_or(0) == 0 {
            bail!("rule {n} (priority {p}): countNumber must be at least 1");
        }
        match r["action"]["type"].as_str() {
            Some("expire") => {}
            Some("transition") if r["action"]["targetStorageClass"].as_str() == Some("archive") => {}
            Some("transition") => bail!("rule {n} (priority {p}): a `transition` action needs targetStorageClass \"archive\""),
            Some(other) => bail!("rule {n} (priority {p}): action type `{other}` is not expire or transition"),
            None => bail!("rule {n} (priority {p}): no action (`\"action\": {{\"type\": \"expire\"}}`)"),
        }
    }
    if let Some(a) = any_at {
        if priorities.iter().any(|p| *p > a) {
            bail!("the `any` rule (priority {a}) must have the highest rulePriority of all");
        }
    }
    Ok(())
}

/// Rules that can expire what tagged images still need: untagged children of a multi-platform
/// index and its attestations, or cosign's `sha256-…` signature and attestation tags.
pub fn lifecycle_warnings(text: &str, multi_platform: bool) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in v["rules"].as_array().into_iter().flatten() {
        let p = r["rulePriority"].as_u64().unwrap_or(0);
        let s = &r["selection"];
        match s["tagStatus"].as_str() {
            Some("untagged") if multi_platform => out.push(format!(
                "rule {p} expires untagged images: a multi-platform image's per-platform manifests and its attestations are untagged; make sure ECR keeps the children of a tagged index, or count, not age, them"
            )),
            Some("any") => out.push(format!(
                "rule {p} (tagStatus any) also counts cosign's `sha256-…` signature and attestation tags: a signed image can lose its signature"
            )),
            Some("tagged") => {
                let matches_sigs = s["tagPrefixList"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(s["tagPatternList"].as_array().into_iter().flatten())
                    .filter_map(|x| x.as_str())
                    .any(|x| "sha256-".starts_with(x.trim_end_matches('*')) || x == "*");
                if matches_sigs {
                    out.push(format!(
                        "rule {p} matches cosign's `sha256-…` signature and attestation tags: a signed image can lose its signature"
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// The repository does not exist (as `describe-repositories` says it).
pub fn is_repository_not_found(stderr: &str) -> bool {
    stderr.contains("RepositoryNotFoundException")
}

/// The account of an ECR registry host (`123456789012.dkr.ecr.us-east-1.amazonaws.com`).
pub fn ecr_account(registry: &str) -> Option<&str> {
    let host = registry.split('/').next()?;
    let (account, _) = host
        .split_once(".dkr.ecr.")
        .or_else(|| host.split_once(".dkr.ecr-fips."))?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// The region of an ECR registry host (`123456789012.dkr.ecr.us-east-1.amazonaws.com`).
pub fn ecr_region(registry: &str) -> Option<&str> {
    let host = registry.split('/').next()?;
    // `.dkr.ecr.` and the FIPS endpoints' `.dkr.ecr-fips.`.
    let rest = host
        .split_once(".dkr.ecr.")
        .or_else(|| host.split_once(".dkr.ecr-fips."))?
        .1;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    (!region.is_empty() && !region.contains('.')).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_password_argv_and_regions() {
        assert_eq!(
            Ecr {
                aws: "aws",
                region: Some("eu-west-1"),
                endpoint: Some("http://127.0.0.1:5001"),
                registry_id: None,
            }
            .login_password()
            .argv(),
            [
                "aws",
                "ecr",
                "get-login-password",
                "--region",
                "eu-west-1",
                "--endpoint-url",
                "http://127.0.0.1:5001"
            ]
        );
        assert_eq!(
            ecr_region("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api"),
            Some("us-east-1")
        );
        let spec = RepoSpec {
            scan_on_push: true,
            encryption: "KMS".into(),
            kms_key: Some("alias/ecr".into()),
            tag_mutability: "IMMUTABLE_WITH_EXCLUSION".into(),
            mutability_exclusions: vec!["latest".into()],
            tags: [("team".to_string(), "core".to_string())].into(),
        };
        assert_eq!(
            Ecr::of("aws", None, "127.0.0.1:5002/team")
                .create_full("team/api", &spec)
                .argv(),
            [
                "aws",
                "ecr",
                "create-repository",
                "--repository-name",
                "team/api",
                "--image-tag-mutability",
                "IMMUTABLE_WITH_EXCLUSION",
                "--image-tag-mutability-exclusion-filters",
                "filterType=WILDCARD,filter=latest",
                "--image-scanning-configuration",
                "scanOnPush=true",
                "--encryption-configuration",
                "encryptionType=KMS,kmsKey=alias/ecr",
                "--tags",
                "Key=team,Value=core",
                "--output",
                "json"
            ]
        );
        assert!(is_repository_not_found("An error occurred (RepositoryNotFoundException) when calling the DescribeRepositories operation: The repository with name 'x' does not exist"));
        assert_eq!(ecr_region("ghcr.io/acme"), None);
        assert_eq!(
            ecr_region("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/team"),
            Some("us-gov-west-1")
        );
        // Another account's registry: describe and create name it.
        assert_eq!(
            ecr_account("210987654321.dkr.ecr.eu-west-1.amazonaws.com/team"),
            Some("210987654321")
        );
        assert_eq!(ecr_account("127.0.0.1:5002"), None);
        assert_eq!(
            Ecr {
                aws: "aws",
                region: None,
                endpoint: None,
                registry_id: Some("210987654321"),
            }
            .describe_repository("team/api")
            .argv()[3..5],
            ["--registry-id", "210987654321"]
        );
        assert_eq!(ecr_region("127.0.0.1:5002"), None);
    }
}
