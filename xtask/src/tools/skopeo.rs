//! `skopeo` commands: reading what a tag in a registry points to (labels), without pulling.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::CommandSpec;

/// A registry that accepts connections but never answers must not hang a run: a read gives
/// up after this (a timeout is a transient failure, tried again where the step retries).
const READ_TIMEOUT: [&str; 2] = ["--command-timeout", "60s"];

/// `skopeo inspect` of one reference; loopback registries are plain http, as Docker treats them.
pub fn inspect(skopeo: &str, reference: &str) -> CommandSpec {
    let mut cmd = CommandSpec::new(skopeo)
        .args(READ_TIMEOUT)
        .args(["inspect", "--no-tags"]);
    if is_loopback(reference) {
        cmd = cmd.arg("--tls-verify=false");
    }
    cmd.arg(format!("docker://{reference}"))
}

/// `skopeo inspect --raw`: the manifest (or index) itself.
pub fn inspect_raw(skopeo: &str, reference: &str) -> CommandSpec {
    let mut cmd = CommandSpec::new(skopeo)
        .args(READ_TIMEOUT)
        .args(["inspect", "--raw"]);
    if is_loopback(reference) {
        cmd = cmd.arg("--tls-verify=false");
    }
    cmd.arg(format!("docker://{reference}"))
}

/// What a raw manifest says: the platforms of an index, or the bytes of one image (its
/// config and layers, compressed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawManifest {
    pub platforms: Vec<String>,
    pub size: Option<u64>,
}

pub fn parse_raw(text: &str) -> Result<RawManifest> {
    let v: serde_json::Value =
        serde_json::from_str(text).context("cannot parse `skopeo inspect --raw` output")?;
    if let Some(list) = v["manifests"].as_array() {
        let platforms = list
            .iter()
            .filter_map(|m| {
                let p = &m["platform"];
                let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
                // Attestation manifests are `unknown/unknown`.
                (os != "unknown").then(|| match p["variant"].as_str() {
                    Some(var) => format!("{os}/{arch}/{var}"),
                    None => format!("{os}/{arch}"),
                })
            })
            .collect();
        return Ok(RawManifest {
            platforms,
            size: None,
        });
    }
    let size = v["config"]["size"].as_u64().unwrap_or(0)
        + v["layers"]
            .as_array()
            .map_or(0, |l| l.iter().filter_map(|x| x["size"].as_u64()).sum());
    Ok(RawManifest {
        platforms: Vec::new(),
        size: Some(size),
    })
}

/// `skopeo copy` of an image by digest to another tag: the same bytes under a new name, no
/// pull, no rebuild (loopback registries are plain http).
pub fn copy(skopeo: &str, from_digest_ref: &str, to: &str) -> CommandSpec {
    // A copy within a registry moves manifests (and layers across repositories). `--all`:
    // an index is copied whole (every platform), so the digest stays the same.
    let mut cmd = CommandSpec::new(skopeo)
        .args(["--command-timeout", "600s"])
        .args(["copy", "--all"]);
    if is_loopback(from_digest_ref) {
        cmd = cmd.arg("--src-tls-verify=false");
    }
    if is_loopback(to) {
        cmd = cmd.arg("--dest-tls-verify=false");
    }
    cmd.arg(format!("docker://{from_digest_ref}"))
        .arg(format!("docker://{to}"))
}

/// `127.0.0.0/8`, `localhost` and `[::1]` registries (Docker's default insecure set).
pub fn is_loopback(reference: &str) -> bool {
    let host = reference.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspected {
    pub digest: String,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

pub fn parse_inspect(stdout: &str) -> Result<Inspected> {
    serde_json::from_str(stdout).context("cannot parse `skopeo inspect` output")
}

/// The registry answered that the tag (or the whole repository) does not exist.
pub fn is_not_found(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("manifest unknown") || s.contains("name unknown") || s.contains("not found")
}

/// The message of skopeo's last log line (`time=… level=fatal msg="…"`), unquoted.
pub fn error_message(stderr: &str) -> String {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim();
    match last.split_once(" msg=\"") {
        Some((_, rest)) => rest.strip_suffix('"').unwrap_or(rest).replace("\\\"", "\""),
        None => last.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_by_digest_argv() {
        assert_eq!(
            copy(
                "skopeo",
                "127.0.0.1:5000/a/web@sha256:ab",
                "127.0.0.1:5000/a/web:v1"
            )
            .argv(),
            [
                "skopeo",
                "--command-timeout",
                "600s",
                "copy",
                "--all",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "docker://127.0.0.1:5000/a/web@sha256:ab",
                "docker://127.0.0.1:5000/a/web:v1"
            ]
        );
        assert_eq!(
            copy("skopeo", "ghcr.io/a/web@sha256:ab", "ghcr.io/a/web:v1")
                .argv()
                .len(),
            7
        );
    }

    #[test]
    fn inspect_argv() {
        assert_eq!(
            inspect("skopeo", "127.0.0.1:5000/a/b:latest").argv(),
            [
                "skopeo",
                "--command-timeout",
                "60s",
                "inspect",
                "--no-tags",
                "--tls-verify=false",
                "docker://127.0.0.1:5000/a/b:latest"
            ]
        );
        assert_eq!(
            inspect("skopeo", "ghcr.io/acme/api:latest").argv(),
            [
                "skopeo",
                "--command-timeout",
                "60s",
                "inspect",
                "--no-tags",
                "docker://ghcr.io/acme/api:latest"
            ]
        );
        assert!(is_loopback("localhost:5000/x:y"));
        assert!(!is_loopback("registry.local:5000/x:y"));
    }

    #[test]
    fn parses_labels_and_not_found() {
        let out = r#"{"Name":"127.0.0.1:5000/a","Digest":"sha256:abc","Labels":{"org.opencontainers.image.version":"1.2.0"},"Architecture":"amd64"}"#;
        let i = parse_inspect(out).unwrap();
        assert_eq!(
            i.labels.unwrap()["org.opencontainers.image.version"],
            "1.2.0"
        );
        let stderr = "time=\"…\" level=fatal msg=\"Error parsing image name \\\"docker://127.0.0.1:5000/a:latest\\\": reading manifest latest in 127.0.0.1:5000/a: manifest unknown: manifest unknown\"";
        assert!(is_not_found(stderr));
        assert!(!is_not_found(
            "pinging container registry 127.0.0.1:5999: connect: connection refused"
        ));
    }
}
