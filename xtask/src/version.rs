//! The release version: the `VERSION` file (semver), its validation and its bumps.

use std::path::Path;

use anyhow::{bail, Context, Result};
use semver::{Prerelease, Version};

/// Reads and validates a VERSION file; the error names the file and shows a valid example.
/// The version files of a workspace, relative to its root: `VERSION`, then every
/// `services/<name>/VERSION` there is, sorted.
pub fn files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![std::path::PathBuf::from("VERSION")];
    if let Ok(entries) = std::fs::read_dir(root.join("services")) {
        let mut found: Vec<std::path::PathBuf> = entries
            .flatten()
            .map(|e| Path::new("services").join(e.file_name()).join("VERSION"))
            .filter(|p| root.join(p).is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

pub fn read(path: &Path) -> Result<Version> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: create it with a semantic version, e.g. `echo 0.1.0 > VERSION`",
            path.display()
        )
    })?;
    parse(&text).with_context(|| format!("{}:1", path.display()))
}

pub fn parse(text: &str) -> Result<Version> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("VERSION is empty: write a semantic version such as 1.2.3 or 0.1.0-dev");
    }
    if let Some(rest) = trimmed.strip_prefix('v') {
        if Version::parse(rest).is_ok() {
            bail!("`{trimmed}` is not a semantic version: drop the leading `v` (write `{rest}`)");
        }
    }
    Version::parse(trimmed).map_err(|e| {
        anyhow::anyhow!("`{trimmed}` is not a semantic version ({e}): write MAJOR.MINOR.PATCH with an optional -PRERELEASE, e.g. 1.2.3 or 1.3.0-rc.1")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    Major,
    Minor,
    Patch,
    Pre,
}

/// npm's rules: a bump of a pre-release to its own level releases it (`1.2.0-rc.1` → `1.2.0`
/// on `minor`); `pre` counts the pre-release up (`rc.1` → `rc.2`, `dev` → `dev.1`), and on a
/// release starts the next patch's first candidate (`1.2.3` → `1.2.4-rc.1`).
pub fn bump(v: &Version, how: Bump) -> Result<Version> {
    let mut next = Version::new(v.major, v.minor, v.patch);
    let pre = !v.pre.is_empty();
    match how {
        Bump::Major => {
            if !(pre && v.minor == 0 && v.patch == 0) {
                next.major += 1;
                next.minor = 0;
                next.patch = 0;
            }
        }
        Bump::Minor => {
            if !(pre && v.patch == 0) {
                next.minor += 1;
                next.patch = 0;
            }
        }
        Bump::Patch => {
            if !pre {
                next.patch += 1;
            }
        }
        Bump::Pre => {
            if pre {
                let mut ids: Vec<String> = v.pre.as_str().split('.').map(String::from).collect();
                match ids
                    .last_mut()
                    .and_then(|l| l.parse::<u64>().ok().map(|n| (l, n)))
                {
                    Some((last, n)) => *last = (n + 1).to_string(),
                    None => ids.push("1".to_string()),
                }
                next.pre = Prerelease::new(&ids.join("."))?;
            } else {
                next.patch += 1;
                next.pre = Prerelease::new("rc.1")?;
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn bumps_follow_npm_rules() {
        let cases = [
            ("1.2.3", Bump::Major, "2.0.0"),
            ("1.2.3", Bump::Minor, "1.3.0"),
            ("1.2.3", Bump::Patch, "1.2.4"),
            ("1.2.3", Bump::Pre, "1.2.4-rc.1"),
            ("1.2.0-rc.1", Bump::Pre, "1.2.0-rc.2"),
            ("0.1.0-dev", Bump::Pre, "0.1.0-dev.1"),
            ("0.1.0-dev", Bump::Minor, "0.1.0"),
            ("0.1.0-dev", Bump::Patch, "0.1.0"),
            ("1.2.1-rc.1", Bump::Minor, "1.3.0"),
            ("2.0.0-rc.3", Bump::Major, "2.0.0"),
            ("1.2.3+build.5", Bump::Patch, "1.2.4"),
        ];
        for (from, how, want) in cases {
            assert_eq!(bump(&v(from), how).unwrap(), v(want), "{from} {how:?}");
        }
    }

    #[test]
    fn bad_versions_say_how_to_fix() {
        let err = parse("v1.2.3\n").unwrap_err().to_string();
        assert!(err.contains("drop the leading `v`"), "{err}");
        let err = parse("1.2").unwrap_err().to_string();
        assert!(err.contains("MAJOR.MINOR.PATCH"), "{err}");
        let err = parse("  \n").unwrap_err().to_string();
        assert!(err.contains("VERSION is empty"), "{err}");
        assert_eq!(parse("1.2.3\n").unwrap(), v("1.2.3"));
    }

    #[test]
    fn read_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("VERSION");
        std::fs::write(&path, "banana\n").unwrap();
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(
            err.contains("VERSION:1") && err.contains("`banana`"),
            "{err}"
        );
    }
}
