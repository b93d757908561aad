//! `aws` commands (the real AWS CLI; v1 and v2 alike): the ECR login password. Where an
//! endpoint is configured it is passed as `--endpoint-url` (v2 before 2.13 ignores the
//! environment variable).

use super::CommandSpec;

/// `aws ecr get-login-password`: the password for `docker login --username AWS`.
pub fn ecr_login_password(aws: &str, region: Option<&str>, endpoint: Option<&str>) -> CommandSpec {
    let mut cmd = CommandSpec::new(aws).args(["ecr", "get-login-password"]);
    if let Some(r) = region {
        cmd = cmd.args(["--region", r]);
    }
    if let Some(e) = endpoint {
        cmd = cmd.args(["--endpoint-url", e]);
    }
    cmd
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
        assert_eq!(ecr_region("ghcr.io/acme"), None);
        assert_eq!(ecr_region("127.0.0.1:5002"), None);
    }
}
