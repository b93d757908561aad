//! `aws` commands (the real AWS CLI; v1 and v2 alike): the ECR login password. Where an
//! endpoint is configured it is passed as `--endpoint-url` (v2 before 2.13 ignores the
//! environment variable).

use super::CommandSpec;

/// `aws ecr get-login-password`: the password for `docker login --username AWS`.
pub fn ecr_login_password(aws: &str, region: Option<&str>, endpoint: Option<&str>) -> CommandSpec {
    let mut cmd = ecr(aws, "get-login-password", region, endpoint);
    cmd.secret_output = true;
    cmd
}

/// `aws ecr describe-repositories` of one repository (fails with
/// `RepositoryNotFoundException` when it does not exist).
pub fn ecr_describe_repository(
    aws: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
    name: &str,
) -> CommandSpec {
    with_registry_id(
        ecr(aws, "describe-repositories", region, endpoint),
        registry_id,
    )
    .args(["--repository-names", name])
    .args(["--output", "json"])
}

/// `aws ecr create-repository`: tags stay mutable (branch tags and `latest` move; released
/// versions are protected by the tag policy), images are scanned on push.
pub fn ecr_create_repository(
    aws: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
    name: &str,
) -> CommandSpec {
    with_registry_id(ecr(aws, "create-repository", region, endpoint), registry_id)
        .args(["--repository-name", name])
        .args(["--image-tag-mutability", "MUTABLE"])
        .args(["--image-scanning-configuration", "scanOnPush=true"])
        .args(["--output", "json"])
}

/// `aws ecr describe-images` of one image by digest (tags, pushed at, size, scan summary).
pub fn ecr_describe_image(
    aws: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
    name: &str,
    digest: &str,
) -> CommandSpec {
    with_registry_id(ecr(aws, "describe-images", region, endpoint), registry_id)
        .args(["--repository-name", name])
        .args(["--image-ids", &format!("imageDigest={digest}")])
        .args(["--output", "json"])
}

/// `aws ecr describe-image-scan-findings` of one image by digest (status and counts).
pub fn ecr_scan_findings(
    aws: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
    name: &str,
    digest: &str,
) -> CommandSpec {
    with_registry_id(
        ecr(aws, "describe-image-scan-findings", region, endpoint),
        registry_id,
    )
    .args(["--repository-name", name])
    .args(["--image-id", &format!("imageDigest={digest}")])
    .args(["--output", "json"])
}

/// `aws ecr describe-images` of one tag (its digest), or `ImageNotFoundException`.
pub fn ecr_describe_tag(
    aws: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
    name: &str,
    tag: &str,
) -> CommandSpec {
    with_registry_id(ecr(aws, "describe-images", region, endpoint), registry_id)
        .args(["--repository-name", name])
        .args(["--image-ids", &format!("imageTag={tag}")])
        .args(["--output", "json"])
}

/// `aws ecr batch-get-image` of one digest: its manifest, as pushed.
pub fn ecr_get_manifest(
    aws: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
    name: &str,
    digest: &str,
) -> CommandSpec {
    with_registry_id(ecr(aws, "batch-get-image", region, endpoint), registry_id)
        .args(["--repository-name", name])
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
#[allow(clippy::too_many_arguments)]
pub fn ecr_put_tag(
    aws: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
    name: &str,
    tag: &str,
    manifest: &str,
    media_type: Option<&str>,
    digest: &str,
) -> CommandSpec {
    let mut cmd = with_registry_id(ecr(aws, "put-image", region, endpoint), registry_id)
        .args(["--repository-name", name])
        .args(["--image-tag", tag])
        .args(["--image-manifest", manifest])
        .args(["--image-digest", digest]);
    if let Some(mt) = media_type {
        cmd = cmd.args(["--image-manifest-media-type", mt]);
    }
    cmd.args(["--output", "json"])
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

/// The repository does not exist (as `describe-repositories` says it).
pub fn is_repository_not_found(stderr: &str) -> bool {
    stderr.contains("RepositoryNotFoundException")
}

/// `aws ecr <operation>` with the region and endpoint after it.
fn ecr(aws: &str, operation: &str, region: Option<&str>, endpoint: Option<&str>) -> CommandSpec {
    let mut cmd = CommandSpec::new(aws).args(["ecr", operation]);
    if let Some(r) = region {
        cmd = cmd.args(["--region", r]);
    }
    if let Some(e) = endpoint {
        cmd = cmd.args(["--endpoint-url", e]);
    }
    cmd
}

/// `--registry-id ACCOUNT`: the registry is another account's than the credentials' (ECR
/// otherwise looks in the caller's own account).
fn with_registry_id(cmd: CommandSpec, registry_id: Option<&str>) -> CommandSpec {
    match registry_id {
        Some(id) => cmd.args(["--registry-id", id]),
        None => cmd,
    }
}

/// The account of an ECR registry host (`123456789012.dkr.ecr.us-east-1.amazonaws.com`).
pub fn ecr_account(registry: &str) -> Option<&str> {
    let host = registry.split('/').next()?;
    let (account, _) = host.split_once(".dkr.ecr.")?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// The region of an ECR registry host (`123456789012.dkr.ecr.us-east-1.amazonaws.com`).
pub fn ecr_region(registry: &str) -> Option<&str> {
    let host = registry.split('/').next()?;
    let rest = host.split_once(".dkr.ecr.")?.1;
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
            ecr_login_password("aws", Some("eu-west-1"), Some("http://127.0.0.1:5001")).argv(),
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
        assert_eq!(
            ecr_create_repository("aws", None, None, None, "team/api").argv(),
            [
                "aws",
                "ecr",
                "create-repository",
                "--repository-name",
                "team/api",
                "--image-tag-mutability",
                "MUTABLE",
                "--image-scanning-configuration",
                "scanOnPush=true",
                "--output",
                "json"
            ]
        );
        assert!(is_repository_not_found("An error occurred (RepositoryNotFoundException) when calling the DescribeRepositories operation: The repository with name 'x' does not exist"));
        assert_eq!(ecr_region("ghcr.io/acme"), None);
        // Another account's registry: describe and create name it.
        assert_eq!(
            ecr_account("210987654321.dkr.ecr.eu-west-1.amazonaws.com/team"),
            Some("210987654321")
        );
        assert_eq!(ecr_account("127.0.0.1:5002"), None);
        assert_eq!(
            ecr_describe_repository("aws", None, None, Some("210987654321"), "team/api").argv()
                [3..5],
            ["--registry-id", "210987654321"]
        );
        assert_eq!(ecr_region("127.0.0.1:5002"), None);
    }
}
