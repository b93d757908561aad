//! Tag templates (`{version}`, `{branch}`, `{sha7}`, …), the Docker tag grammar, branch
//! sanitising, and the OCI labels and build arguments every image is stamped with.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use semver::Version;

/// Placeholders a tag template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "version",
    "major",
    "minor",
    "patch",
    "branch",
    "sha",
    "sha7",
    "timestamp",
    "service",
    "pr",
    "env",
    "tag",
];

/// Everything a template can draw on, for one service.
#[derive(Debug, Clone)]
pub struct TagContext<'a> {
    pub version: &'a Version,
    /// The commit the image is built from (the PR head on pull requests).
    pub revision: &'a str,
    /// Unsanitised; `None` on a detached HEAD or a tag build.
    pub branch: Option<&'a str>,
    pub pr: Option<u64>,
    /// A non-release git tag, for `{tag}` (unsanitised).
    pub tag: Option<&'a str>,
    /// `--env`, for `{env}`.
    pub env: Option<&'a str>,
    pub service: &'a str,
    /// Seconds since the epoch for `created` (commit time, or `SOURCE_DATE_EPOCH`).
    pub created: i64,
    /// Seconds since the epoch for `{timestamp}` (`created`, or the build time if configured).
    pub timestamp: i64,
}

/// Checks a template's placeholders and literal text when the config is loaded.
pub fn check_template(template: &str) -> Result<()> {
    let mut rest = template;
    let mut literal = String::new();
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            bail!("tag template `{template}` has an unclosed `{{`");
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            bail!(
                "tag template `{template}` uses unknown placeholder `{{{name}}}`; known: {}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        literal.push('x');
        rest = &rest[open + close + 1..];
    }
    literal.push_str(rest);
    check_tag(&literal).map_err(|_| {
        anyhow::anyhow!("tag template `{template}` can never give a valid Docker tag: use letters, digits, `_`, `.` and `-`")
    })
}

/// Renders a template; `Ok(None)` when a placeholder has no value here (`{branch}` on a
/// detached HEAD, `{pr}` outside a pull request), so that tag is left out rather than invented.
pub fn render(template: &str, cx: &TagContext) -> Result<Option<String>> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| anyhow::anyhow!("tag template `{template}` has an unclosed `{{`"))?;
        let name = &rest[open + 1..open + close];
        let value = match name {
            "version" => version_tag(cx.version),
            "major" => cx.version.major.to_string(),
            "minor" => cx.version.minor.to_string(),
            "patch" => cx.version.patch.to_string(),
            "branch" => match cx.branch {
                Some(b) => sanitize_branch(b),
                None => return Ok(None),
            },
            "sha" => cx.revision.to_string(),
            "sha7" => short_sha(cx.revision).to_string(),
            "timestamp" => timestamp_tag(cx.timestamp),
            "service" => cx.service.to_string(),
            "tag" => match cx.tag {
                Some(t) => sanitize_branch(t),
                None => return Ok(None),
            },
            "pr" => match cx.pr {
                Some(n) => n.to_string(),
                None => return Ok(None),
            },
            "env" => match cx.env {
                Some(e) => e.to_string(),
                None => return Ok(None),
            },
            other => bail!("tag template `{template}` uses unknown placeholder `{{{other}}}`"),
        };
        out.push_str(&value);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    check_tag(&out).map_err(|e| anyhow::anyhow!("tag template `{template}` gave `{out}`: {e}"))?;
    Ok(Some(out))
}

/// What a rendered tag looks like when it would pose as another kind: `latest`, a version
/// (`1.2.3`, `v1.2.3-rc.1`), a release line (`1`, `v1.2`) or a commit (7–40 hex digits).
pub fn reserved_shape(tag: &str) -> Option<&'static str> {
    if tag == "latest" {
        return Some("latest");
    }
    let body = tag.strip_prefix('v').unwrap_or(tag);
    let core = body.split(['-', '_']).next().unwrap_or(body);
    let parts: Vec<&str> = core.split('.').collect();
    if !core.is_empty()
        && parts.len() <= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        return Some(if parts.len() == 3 {
            "a version"
        } else {
            "a release line"
        });
    }
    if (7..=40).contains(&tag.len()) && tag.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some("a commit");
    }
    None
}

/// The first 7 characters of a commit id.
pub fn short_sha(sha: &str) -> &str {
    &sha[..7.min(sha.len())]
}

/// The Docker tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > 128 {
        bail!("`{tag}` is not a valid Docker tag (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)");
    }
    Ok(())
}

/// A semver as a tag: build metadata's `+` is not allowed, so it becomes `-`.
pub fn version_tag(v: &Version) -> String {
    v.to_string().replace('+', "-")
}

/// Lowercase, anything outside `[a-z0-9_.-]` becomes `-`, runs of `-` collapse, no leading
/// `.`/`-`. Names past 128 characters are cut and end in a hash of the whole name, so two long
/// branches never share a tag.
pub fn sanitize_branch(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let out = out.trim_start_matches(['.', '-']).trim_end_matches('-');
    let out = if out.is_empty() { "branch" } else { out };
    if out.len() <= 128 {
        return out.to_string();
    }
    let hash = format!("{:016x}", fnv1a(branch.as_bytes()));
    format!("{}-{}", out[..119].trim_end_matches(['-', '.']), &hash[..8])
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// `YYYYMMDD-HHMMSS`, UTC.
pub fn timestamp_tag(epoch: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(epoch);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// RFC 3339, UTC: `2026-11-21T05:31:00Z`.
pub fn rfc3339(epoch: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(epoch);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Seconds since the epoch → (year, month, day, hour, minute, second), proleptic Gregorian
/// (Howard Hinnant's days-to-civil).
fn civil(epoch: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    (year, month, day, h as u32, m as u32, s as u32)
}

/// Image-level metadata that is not in the tag context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelInfo {
    pub title: String,
    pub description: Option<String>,
    pub vendor: Option<String>,
    pub source: Option<String>,
    pub licenses: Option<String>,
    pub url: Option<String>,
    pub documentation: Option<String>,
}

/// The `org.opencontainers.image.*` labels.
pub fn oci_labels(cx: &TagContext, info: &LabelInfo) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            labels.insert(format!("org.opencontainers.image.{key}"), v);
        }
    };
    put("created", Some(rfc3339(cx.created)));
    put("revision", Some(cx.revision.to_string()));
    put("version", Some(cx.version.to_string()));
    put("title", Some(info.title.clone()));
    put("description", info.description.clone());
    put("vendor", info.vendor.clone());
    put("source", info.source.clone());
    put("licenses", info.licenses.clone());
    put("url", info.url.clone());
    put("documentation", info.documentation.clone());
    labels
}

/// `BUILD_DATE`, `VCS_REF`, `VERSION`: what the Dockerfiles turn into labels themselves.
pub fn standard_build_args(cx: &TagContext) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("BUILD_DATE".to_string(), rfc3339(cx.created)),
        ("VCS_REF".to_string(), cx.revision.to_string()),
        ("VERSION".to_string(), cx.version.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn cx<'a>(version: &'a Version, branch: Option<&'a str>) -> TagContext<'a> {
        TagContext {
            version,
            revision: SHA,
            branch,
            pr: None,
            tag: None,
            env: None,
            service: "api",
            created: 1_795_234_961,
            timestamp: 1_795_234_961,
        }
    }

    #[test]
    fn templates_render_each_placeholder() {
        let v = Version::parse("1.2.3-rc.1+b7").unwrap();
        let mut cx = cx(&v, Some("Feature/Login"));
        cx.pr = Some(42);
        cx.env = Some("staging");
        let r = |t: &str| render(t, &cx).unwrap();
        assert_eq!(r("{version}").as_deref(), Some("1.2.3-rc.1-b7"));
        assert_eq!(r("v{major}.{minor}.{patch}").as_deref(), Some("v1.2.3"));
        assert_eq!(r("{branch}").as_deref(), Some("feature-login"));
        assert_eq!(r("sha-{sha7}").as_deref(), Some("sha-0123456"));
        assert_eq!(r("{sha}").as_deref(), Some(SHA));
        assert_eq!(r("pr-{pr}").as_deref(), Some("pr-42"));
        assert_eq!(
            r("{service}-{env}-{version}").as_deref(),
            Some("api-staging-1.2.3-rc.1-b7")
        );
        assert_eq!(r("{timestamp}").as_deref(), Some("20261121-042241"));
        assert_eq!(r("{service}-{sha7}").as_deref(), Some("api-0123456"));
    }

    #[test]
    fn missing_values_leave_the_tag_out() {
        let v = Version::parse("1.0.0").unwrap();
        let cx = cx(&v, None);
        assert_eq!(render("{branch}", &cx).unwrap(), None);
        assert_eq!(render("pr-{pr}", &cx).unwrap(), None);
        assert_eq!(render("{env}-{sha7}", &cx).unwrap(), None);
    }

    #[test]
    fn template_checks_reject_unknown_placeholders_and_bad_literals() {
        assert!(check_template("{version}-{sha7}").is_ok());
        let err = check_template("{ver}").unwrap_err().to_string();
        assert!(
            err.contains("unknown placeholder `{ver}`") && err.contains("{version}"),
            "{err}"
        );
        assert!(check_template("{version").is_err());
        assert!(check_template("-{sha7}").is_err());
        assert!(check_template("a/b").is_err());
    }

    #[test]
    fn tag_grammar() {
        for ok in ["latest", "v1.2.3", "_x", "A-b.c_d", &"a".repeat(128)] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a+b", "ä", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn branch_sanitising() {
        let cases = [
            ("main", "main"),
            ("feature/Login-Page", "feature-login-page"),
            ("dependabot/cargo/serde-1.0", "dependabot-cargo-serde-1.0"),
            ("--weird//name--", "weird-name"),
            (".hidden", "hidden"),
            ("a b\tc", "a-b-c"),
            ("ünïcode", "n-code"),
            ("////", "branch"),
        ];
        for (branch, want) in cases {
            assert_eq!(sanitize_branch(branch), want, "{branch}");
            assert!(check_tag(&sanitize_branch(branch)).is_ok());
        }
    }

    #[test]
    fn long_branches_are_cut_with_a_hash_and_never_collide() {
        let a = format!("feature/{}-a", "x".repeat(200));
        let b = format!("feature/{}-b", "x".repeat(200));
        let (ta, tb) = (sanitize_branch(&a), sanitize_branch(&b));
        assert!(
            ta.len() <= 128 && tb.len() <= 128,
            "{} {}",
            ta.len(),
            tb.len()
        );
        assert_ne!(ta, tb);
        assert!(check_tag(&ta).is_ok());
        assert_eq!(ta, sanitize_branch(&a), "deterministic");
    }

    #[test]
    fn time_formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_234_961), "2026-11-21T04:22:41Z");
        assert_eq!(timestamp_tag(4_102_444_799), "20991231-235959");
    }

    #[test]
    fn labels_and_build_args() {
        let v = Version::parse("0.1.0-dev").unwrap();
        let cx = cx(&v, Some("main"));
        let info = LabelInfo {
            title: "api".into(),
            description: Some("The API".into()),
            vendor: Some("Slipway".into()),
            source: Some("https://example.invalid/repo".into()),
            licenses: Some("Apache-2.0".into()),
            url: None,
            documentation: Some(String::new()),
        };
        let labels = oci_labels(&cx, &info);
        let want: BTreeMap<String, String> = [
            ("created", "2026-11-21T04:22:41Z"),
            ("description", "The API"),
            ("licenses", "Apache-2.0"),
            ("revision", SHA),
            ("source", "https://example.invalid/repo"),
            ("title", "api"),
            ("vendor", "Slipway"),
            ("version", "0.1.0-dev"),
        ]
        .into_iter()
        .map(|(k, v)| (format!("org.opencontainers.image.{k}"), v.to_string()))
        .collect();
        assert_eq!(labels, want);
        let args = standard_build_args(&cx);
        assert_eq!(args["BUILD_DATE"], "2026-11-21T04:22:41Z");
        assert_eq!(args["VCS_REF"], SHA);
        assert_eq!(args["VERSION"], "0.1.0-dev");
    }
}
