//! What a Dockerfile and its `.dockerignore` say about the files a build reads: the `COPY` and
//! `ADD` sources taken from the build context (not from other stages or images), the images
//! it builds `FROM`, and which context paths `.dockerignore` leaves out (last match wins, `!`
//! re-includes, a matched directory covers everything below it).

use anyhow::{Context, Result};
use globset::{GlobBuilder, GlobMatcher};

/// Instructions that matter for change detection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// `COPY`/`ADD` sources from the context, as written (may hold globs; `$VAR` becomes `*`).
    pub sources: Vec<String>,
    /// `FROM` images (stage names excluded).
    pub from: Vec<String>,
}

/// Logical lines: comments dropped, `\` continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if cur.is_empty() && (line.starts_with('#') || line.is_empty()) {
            continue;
        }
        if let Some(body) = line.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
        } else {
            cur.push_str(line);
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// `["a", "b"]` or whitespace-separated words.
fn words(rest: &str) -> Vec<String> {
    let rest = rest.trim();
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    rest.split_whitespace().map(String::from).collect()
}

/// `$X`, `${X}` and `${X:-y}` become `*`: an argument could name anything.
fn unvariable(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        } else {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
        }
        out.push('*');
    }
    out
}

pub fn parse(text: &str) -> Parsed {
    let mut p = Parsed::default();
    let mut stages: Vec<String> = Vec::new();
    for line in logical_lines(text) {
        let (inst, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        match inst.to_ascii_uppercase().as_str() {
            "FROM" => {
                let w: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                if let Some(image) = w.first() {
                    if !stages.iter().any(|s| s.eq_ignore_ascii_case(image)) && *image != "scratch"
                    {
                        p.from.push(image.to_string());
                    }
                }
                if let (Some(kw), Some(name)) = (w.get(1), w.get(2)) {
                    if kw.eq_ignore_ascii_case("as") {
                        stages.push(name.to_string());
                    }
                }
            }
            "COPY" | "ADD" => {
                let mut w = words(rest);
                let from_elsewhere = w.iter().any(|x| x.starts_with("--from="));
                w.retain(|x| !x.starts_with("--"));
                if from_elsewhere || w.len() < 2 || rest.contains("<<") {
                    continue;
                }
                w.pop();
                for src in w {
                    if src.contains("://") || src.starts_with("git@") {
                        continue; // ADD from a URL or repository: not the context
                    }
                    let src = unvariable(src.trim_start_matches("./"));
                    let src = src.trim_start_matches('/').to_string();
                    p.sources
                        .push(if src.is_empty() { ".".into() } else { src });
                }
            }
            _ => {}
        }
    }
    p
}

/// Does a context-relative `path` fall under one of the COPY/ADD `sources`?
pub fn copies(sources: &[String], path: &str) -> bool {
    sources.iter().any(|s| {
        let s = s.trim_end_matches('/');
        if s == "." || s == "*" || s.is_empty() {
            return true;
        }
        if s.contains(['*', '?', '[']) {
            return glob(s).is_ok_and(|m| ancestors(path).any(|p| m.is_match(p)));
        }
        path == s || path.starts_with(&format!("{s}/"))
    })
}

/// A pattern as Docker reads it (Go's `filepath.Match` plus `**`): `*` stays within one
/// path segment.
pub fn glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(glob_pattern(pattern)?.compile_matcher())
}

/// The same pattern, uncompiled (for a `GlobSet`).
pub fn glob_pattern(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

/// `a/b/c` → `a/b/c`, `a/b`, `a`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = Some(path);
    std::iter::from_fn(move || {
        let out = cur?;
        cur = out.rfind('/').map(|i| &out[..i]);
        Some(out)
    })
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Result<Ignore> {
        let mut rules = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let pat = pat
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/');
            let m = glob(pat)
                .with_context(|| format!(".dockerignore line {}: bad pattern `{line}`", n + 1))?;
            rules.push((m, negate));
        }
        Ok(Ignore { rules })
    }

    /// Is the context-relative `path` left out of the build context?
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (m, negate) in &self.rules {
            if ancestors(path).any(|p| m.is_match(p)) {
                excluded = !negate;
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_and_add_sources_from_the_context_only() {
        let p = parse(
            "# syntax\nFROM rust:1 AS build\nCOPY Cargo.toml Cargo.lock ./\nCOPY crates/ crates/\n\
             COPY --chown=1:1 ./services/api /src/api\nRUN cargo build\n\
             FROM gcr.io/distroless/cc AS runtime\nCOPY --from=build /out/api /api\n\
             ADD https://example.invalid/x.tgz /x\nCOPY [\"conf/app.toml\", \"/etc/app.toml\"]\n\
             ADD ${VERSION}/notes.txt \\\n    /notes\nCOPY <<EOF /x\nhi\nEOF\nFROM build AS test\n",
        );
        assert_eq!(
            p.sources,
            [
                "Cargo.toml",
                "Cargo.lock",
                "crates/",
                "services/api",
                "conf/app.toml",
                "*/notes.txt"
            ]
        );
        assert_eq!(p.from, ["rust:1", "gcr.io/distroless/cc"]);
    }

    #[test]
    fn which_paths_a_copy_reads() {
        let s: Vec<String> = ["crates/", "Cargo.lock", "conf/*.toml"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        assert!(copies(&s, "crates/common/src/lib.rs"));
        assert!(copies(&s, "Cargo.lock"));
        assert!(copies(&s, "conf/app.toml"));
        assert!(!copies(&s, "conf/readme.md"));
        assert!(!copies(&s, "cratesx/a"));
        assert!(!copies(&s, "services/web/index.html"));
        assert!(copies(&[".".to_string()], "anything/at/all"));
    }

    #[test]
    fn dockerignore_last_match_wins_and_covers_directories() {
        let ig = Ignore::parse("# docs\n*.md\n/target\ntests/\n!README.md\n**/*.tmp\n").unwrap();
        assert!(ig.excludes("CHANGELOG.md"));
        assert!(!ig.excludes("README.md"), "re-included");
        assert!(ig.excludes("target/debug/app"));
        assert!(ig.excludes("tests/it.rs"));
        assert!(ig.excludes("src/deep/x.tmp"));
        assert!(!ig.excludes("src/main.rs"));
        assert!(
            !ig.excludes("docs/guide.md"),
            "`*` does not cross `/`, as in Docker"
        );
        assert!(Ignore::parse("[")
            .unwrap_err()
            .to_string()
            .contains(".dockerignore line 1"));
    }
}
