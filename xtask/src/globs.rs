//! Path patterns as Docker and Slipway read them (`*` stays within a segment, `**` crosses
//! segments): compiled once per distinct pattern, with plain prefixes (`dir`, `dir/**`) matched
//! by string comparison, and the question change detection asks of a directory — "could this
//! pattern match anything below it?" — answered segment by segment, so whole subtrees can be
//! taken by their git id or skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use globset::{GlobBuilder, GlobMatcher};

/// One compiled pattern (relative, `/`-separated, no leading `./` or `/`).
#[derive(Debug)]
pub struct Pattern {
    text: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// `dir` or `dir/**`: the path itself and everything below it (`""` = everything).
    Prefix(String),
    /// Anything with wildcards elsewhere.
    Glob {
        matcher: GlobMatcher,
        segments: Vec<Segment>,
    },
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    /// `**`: any number of segments.
    Any,
    /// A segment with `*`, `?` or `[...]`, compiled on first use.
    Wild(String, OnceLock<Option<GlobMatcher>>),
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, globset::Error> {
        let text = text.trim_start_matches("./").trim_start_matches('/');
        let text = text.trim_end_matches('/');
        let body = text.strip_suffix("/**").unwrap_or(text);
        let kind = if text == "**" || text.is_empty() {
            Kind::Prefix(String::new())
        } else if !has_wildcard(body) {
            Kind::Prefix(body.to_string())
        } else {
            let matcher = GlobBuilder::new(text)
                .literal_separator(true)
                .build()?
                .compile_matcher();
            let segments = text
                .split('/')
                .map(|s| match s {
                    "**" => Segment::Any,
                    s if has_wildcard(s) => Segment::Wild(s.to_string(), OnceLock::new()),
                    s => Segment::Literal(s.to_string()),
                })
                .collect();
            Kind::Glob { matcher, segments }
        };
        Ok(Pattern {
            text: text.to_string(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern matches `path` itself.
    pub fn is_match(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Prefix(p) => within(path, p),
            Kind::Glob { matcher, .. } => matcher.is_match(path),
        }
    }

    /// The pattern matches `path` or one of its ancestors (Docker: a matched directory
    /// covers everything below it).
    pub fn covers(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Prefix(p) => within(path, p),
            Kind::Glob { matcher, .. } => ancestors(path).any(|a| matcher.is_match(a)),
        }
    }

    /// Could the pattern match some path strictly below the directory `dir` (`""` = root)?
    /// Conservative: `true` when unsure.
    pub fn may_match_below(&self, dir: &str) -> bool {
        match &self.kind {
            Kind::Prefix(p) if p.is_empty() => true,
            Kind::Prefix(p) => {
                // Below `dir` when the prefix is below it, or `dir` is inside the prefix.
                within(p, dir) && p != dir || within(dir, p)
            }
            Kind::Glob { segments, .. } => {
                let depth = if dir.is_empty() {
                    0
                } else {
                    dir.split('/').count()
                };
                for (i, d) in dir.split('/').filter(|d| !d.is_empty()).enumerate() {
                    match segments.get(i) {
                        None => return false, // the pattern is shorter: it matches `dir` or above
                        Some(Segment::Any) => return true,
                        Some(Segment::Literal(l)) if l.as_str() != d => return false,
                        Some(Segment::Literal(_)) => {}
                        Some(Segment::Wild(text, m)) => {
                            let m = m.get_or_init(|| {
                                GlobBuilder::new(text)
                                    .literal_separator(true)
                                    .build()
                                    .ok()
                                    .map(|g| g.compile_matcher())
                            });
                            if m.as_ref().is_some_and(|m| !m.is_match(d)) {
                                return false;
                            }
                        }
                    }
                }
                segments.len() > depth
            }
        }
    }

    /// The directory before the first wildcard (`libs/*/proto` → `libs`; `a/b` → `a/b`).
    pub fn literal_prefix(&self) -> &str {
        match &self.kind {
            Kind::Prefix(p) => p,
            Kind::Glob { .. } => {
                let end = self.text.find(['*', '?', '[', '{']).unwrap_or(0);
                match self.text[..end].rfind('/') {
                    Some(i) => &self.text[..i],
                    None => "",
                }
            }
        }
    }

    /// A plain prefix: matches exactly the subtree at `literal_prefix()`.
    pub fn is_prefix(&self) -> bool {
        matches!(self.kind, Kind::Prefix(_))
    }
}

/// `path` is `dir` or below it (`""` contains everything).
pub fn within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// `a/b/c` → `a/b/c`, `a/b`, `a`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = Some(path);
    std::iter::from_fn(move || {
        let out = cur?;
        cur = out.rfind('/').map(|i| &out[..i]);
        Some(out)
    })
}

/// Patterns compiled once per process, shared by every service that names them.
pub fn compile(text: &str) -> Result<Arc<Pattern>, globset::Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Pattern>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().ok().and_then(|c| c.get(text).cloned()) {
        return Ok(p);
    }
    let p = Arc::new(Pattern::new(text)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(text.to_string(), Arc::clone(&p));
    }
    Ok(p)
}

/// Why a configured glob (`watch`, `shared_paths`) can never match a repository path, if so.
pub fn unmatchable(text: &str) -> Option<String> {
    if text.starts_with('/') {
        return Some(format!(
            "`{text}` is absolute: globs are relative to the workspace root (write `{}`)",
            text.trim_start_matches('/')
        ));
    }
    if text.split('/').any(|s| s == "..") {
        return Some(format!(
            "`{text}` contains `..`: paths are matched inside the workspace; name the directory from the workspace root"
        ));
    }
    if text.split('/').any(|s| s == ".") && text != "." {
        return Some(format!("`{text}` contains `.` segments: remove them"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_without_a_glob() {
        let p = Pattern::new("libs/common/**").unwrap();
        assert!(p.is_prefix());
        assert!(p.is_match("libs/common/src/lib.rs"));
        assert!(p.is_match("libs/common"));
        assert!(!p.is_match("libs/commonx/a"));
        assert_eq!(p.literal_prefix(), "libs/common");
        assert!(Pattern::new("Cargo.lock").unwrap().is_match("Cargo.lock"));
        assert!(Pattern::new("**").unwrap().is_match("any/thing"));
    }

    #[test]
    fn globs_keep_star_within_a_segment() {
        let p = Pattern::new("conf/*.toml").unwrap();
        assert!(p.is_match("conf/app.toml"));
        assert!(!p.is_match("conf/deep/app.toml"));
        assert!(Pattern::new("**/*.proto").unwrap().is_match("a/b/c.proto"));
        assert_eq!(
            Pattern::new("libs/*/proto").unwrap().literal_prefix(),
            "libs"
        );
        assert_eq!(Pattern::new("*.md").unwrap().literal_prefix(), "");
    }

    #[test]
    fn what_may_match_below_a_directory() {
        let md = Pattern::new("*.md").unwrap();
        assert!(md.may_match_below(""));
        assert!(!md.may_match_below("src"), "`*` does not cross `/`");
        let deep = Pattern::new("**/*.md").unwrap();
        assert!(deep.may_match_below("src/a"));
        let lit = Pattern::new("docs/*.md").unwrap();
        assert!(lit.may_match_below("docs"));
        assert!(!lit.may_match_below("src"));
        assert!(
            !lit.may_match_below("docs/x"),
            "docs/x/y.md is not docs/*.md"
        );
        let pre = Pattern::new("libs/common").unwrap();
        assert!(pre.may_match_below("libs"));
        assert!(pre.may_match_below("libs/common/src"));
        assert!(!pre.may_match_below("libs/other"));
        let wild = Pattern::new("bin/*/api").unwrap();
        assert!(wild.may_match_below("bin/amd64"));
        assert!(!wild.may_match_below("src"));
    }

    #[test]
    fn configured_globs_that_cannot_match_are_named() {
        assert!(unmatchable("/libs/**").unwrap().contains("absolute"));
        assert!(unmatchable("../shared/**").unwrap().contains(".."));
        assert!(unmatchable("libs/**").is_none());
    }
}
