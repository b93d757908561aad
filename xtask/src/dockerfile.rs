//! What a Dockerfile and its `.dockerignore` say about the files a build reads: the sources
//! `COPY`, `ADD` and `RUN --mount=type=bind` take from the build context, the images it builds
//! `FROM` (or copies and mounts from), and which context paths `.dockerignore` leaves out.
//!
//! The parser narrows the inputs only where it fully understands a construct: parser
//! directives, escape characters, continuation lines (with comments inside), heredocs, flags,
//! JSON and shell forms, `ARG`/`ENV` values and build arguments. Anything else — an unknown
//! flag or instruction, a variable with no value here, a frontend it does not implement —
//! makes the whole context an input, with a note that names the line.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::globs::{self, Pattern};

/// What one Dockerfile reads, for one platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Context-relative sources (may hold wildcards), as resolved.
    pub sources: Vec<String>,
    /// Set when the whole context is an input: the line and the reason.
    pub whole_context: Option<String>,
    /// Images the build reads (`FROM`, `COPY --from=<image>`, `RUN --mount=from=<image>`).
    pub images: Vec<ImageRef>,
    /// `ONBUILD` instructions that read a context: builds FROM this image read theirs.
    pub onbuild: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// As resolved; `${…}` left in place where a variable has no value.
    pub reference: String,
    pub line: usize,
}

/// The values variables can take: build arguments and the target platform.
pub struct Vars<'a> {
    pub build_args: &'a BTreeMap<String, String>,
    /// `os/arch[/variant]`.
    pub platform: &'a str,
}

impl Vars<'_> {
    /// BuildKit's automatic platform arguments (the build runs on linux/amd64 here).
    fn automatic(&self, name: &str) -> Option<String> {
        let mut p = self.platform.split('/');
        let (os, arch, variant) = (p.next(), p.next(), p.next());
        Some(match name {
            "TARGETPLATFORM" => self.platform.to_string(),
            "TARGETOS" => os?.to_string(),
            "TARGETARCH" => arch?.to_string(),
            "TARGETVARIANT" => variant.unwrap_or("").to_string(),
            "BUILDPLATFORM" => "linux/amd64".into(),
            "BUILDOS" => "linux".into(),
            "BUILDARCH" => "amd64".into(),
            "BUILDVARIANT" => String::new(),
            _ => return None,
        })
    }
}

const COPY_FLAGS: &[&str] = &["from", "chown", "chmod", "link", "parents", "exclude"];
const ADD_FLAGS: &[&str] = &[
    "chown",
    "chmod",
    "link",
    "keep-git-dir",
    "checksum",
    "exclude",
    "unpack",
];
const RUN_FLAGS: &[&str] = &["mount", "network", "security"];
const MOUNT_KEYS: &[&str] = &[
    "type",
    "target",
    "dst",
    "destination",
    "source",
    "src",
    "from",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "required",
    "env",
    "size",
    "bind-propagation",
];
const OTHER_INSTRUCTIONS: &[&str] = &[
    "MAINTAINER",
    "LABEL",
    "EXPOSE",
    "USER",
    "WORKDIR",
    "VOLUME",
    "CMD",
    "ENTRYPOINT",
    "HEALTHCHECK",
    "SHELL",
    "STOPSIGNAL",
    "ONBUILD",
];

/// One logical instruction: its first physical line, keyword and the rest.
struct Instruction {
    line: usize,
    keyword: String,
    rest: String,
}

/// A stage's variables.
#[derive(Default, Clone)]
struct Scope {
    args: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
}

impl Scope {
    fn get(&self, k: &str) -> Option<&String> {
        self.env.get(k).or_else(|| self.args.get(k))
    }
}

struct Parser<'a> {
    vars: &'a Vars<'a>,
    out: Parsed,
    global: BTreeMap<String, String>,
    stages: Vec<(String, Scope)>,
    scope: Option<Scope>,
}

pub fn parse(text: &str, vars: &Vars) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        vars,
        out: Parsed::default(),
        global: BTreeMap::new(),
        stages: Vec::new(),
        scope: None,
    };
    match instructions(text) {
        Ok(list) => {
            for ins in list {
                p.instruction(&ins);
            }
        }
        Err(why) => p.widen(why),
    }
    p.out.sources.sort();
    p.out.sources.dedup();
    p.out
}

/// Splits the text into instructions: parser directives checked, continuation lines joined
/// (comment and blank lines inside them dropped), heredoc bodies skipped.
fn instructions(text: &str) -> Result<Vec<Instruction>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut i = 0;
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        match key.as_str() {
            "escape" => match value.as_str() {
                "\\" => escape = '\\',
                "`" => escape = '`',
                other => {
                    return Err(format!(
                        "line {}: `# escape={other}` is not `\\` or a backtick",
                        i + 1
                    ))
                }
            },
            "syntax" if !known_frontend(&value) => {
                return Err(format!(
                    "line {}: `# syntax={value}` selects a frontend this parser does not implement",
                    i + 1
                ))
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = Vec::new();
    while i < lines.len() {
        let first = lines[i].trim_start();
        if first.is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let line = i + 1;
        let mut text = String::new();
        loop {
            let raw = lines[i];
            i += 1;
            let t = raw.trim_end();
            match t.strip_suffix(escape) {
                Some(body) => {
                    text.push_str(body);
                    // The next non-comment, non-blank line continues this one.
                    while i < lines.len() {
                        let n = lines[i].trim_start();
                        if n.is_empty() || n.starts_with('#') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    text.push_str(t);
                    break;
                }
            }
        }
        let text = text.trim().to_string();
        let (keyword, rest) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let keyword = keyword.to_ascii_uppercase();
        let rest = rest.trim().to_string();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (strip_tabs, word) in heredoc_markers(&rest) {
                loop {
                    let Some(body) = lines.get(i) else {
                        return Err(format!("line {line}: heredoc <<{word} is never closed"));
                    };
                    i += 1;
                    let b = if strip_tabs {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if b == word {
                        break;
                    }
                }
            }
        }
        out.push(Instruction {
            line,
            keyword,
            rest,
        });
    }
    Ok(out)
}

/// `# key=value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim().strip_prefix('#')?;
    let (k, v) = body.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

/// The standard Dockerfile frontend (`docker/dockerfile:1`, `:1.7`, `:1.7.0`, by digest too).
fn known_frontend(value: &str) -> bool {
    let v = value.split('@').next().unwrap_or("");
    let v = v.strip_prefix("docker.io/").unwrap_or(v);
    let Some(tag) = v.strip_prefix("docker/dockerfile:") else {
        return v == "docker/dockerfile";
    };
    tag.split('.')
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && tag.starts_with('1')
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` markers in an instruction, in order.
fn heredoc_markers(rest: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        if &b[i..i + 2] != b"<<" {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        let strip = b.get(j) == Some(&b'-');
        if strip {
            j += 1;
        }
        let quote = match b.get(j) {
            Some(q @ (b'"' | b'\'')) => {
                j += 1;
                Some(*q)
            }
            _ => None,
        };
        let start = j;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
            j += 1;
        }
        if j > start && !b[start].is_ascii_digit() {
            out.push((strip, rest[start..j].to_string()));
            if quote.is_some() && b.get(j) == quote.as_ref() {
                j += 1;
            }
        }
        i = j.max(i + 2);
    }
    out
}

/// Words split on whitespace outside quotes, with the quotes removed.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    out
}

/// Expands `$X`, `${X}`, `${X:-d}`, `${X-d}`, `${X:+w}`, `${X+w}`; an unset variable with no
/// default, or a form it does not know, is an error naming it.
fn expand(s: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        if chars.get(i) == Some(&'{') {
            // The matching `}` (defaults may nest: `${A:-${B:-x}}`).
            let mut depth = 0;
            let mut end = None;
            for (k, ch) in chars.iter().enumerate().skip(i) {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(k);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| "`${` is never closed".to_string())?;
            let body: String = chars[i + 1..end].iter().collect();
            i = end + 1;
            let name_end = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            let (name, op) = body.split_at(name_end);
            let value = get(name);
            let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
            let word = |w: &str| expand(w, get);
            let v = if op.is_empty() {
                value.ok_or_else(|| unset(&format!("${{{name}}}")))?
            } else if let Some(d) = op.strip_prefix(":-") {
                if set_nonempty {
                    value.unwrap_or_default()
                } else {
                    word(d)?
                }
            } else if let Some(d) = op.strip_prefix('-') {
                match value {
                    Some(v) => v,
                    None => word(d)?,
                }
            } else if let Some(w) = op.strip_prefix(":+") {
                if set_nonempty {
                    word(w)?
                } else {
                    String::new()
                }
            } else if let Some(w) = op.strip_prefix('+') {
                if value.is_some() {
                    word(w)?
                } else {
                    String::new()
                }
            } else {
                return Err(format!(
                    "`${{{body}}}` uses a form of expansion this parser does not implement"
                ));
            };
            out.push_str(&v);
        } else {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if i == start {
                out.push('$');
                continue;
            }
            let name: String = chars[start..i].iter().collect();
            out.push_str(&get(&name).ok_or_else(|| unset(&format!("${name}")))?);
        }
    }
    Ok(out)
}

fn unset(var: &str) -> String {
    format!("{var} has no value here (no ARG default, ENV or build argument)")
}

/// Splits `--flag=value` / `--flag` words off the front.
fn split_flags(ws: Vec<String>) -> (Vec<(String, Option<String>)>, Vec<String>) {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut in_flags = true;
    for w in ws {
        if in_flags {
            if let Some(f) = w.strip_prefix("--") {
                match f.split_once('=') {
                    Some((k, v)) => flags.push((k.to_string(), Some(v.to_string()))),
                    None => flags.push((f.to_string(), None)),
                }
                continue;
            }
            in_flags = false;
        }
        rest.push(w);
    }
    (flags, rest)
}

impl Parser<'_> {
    fn widen(&mut self, why: String) {
        if self.out.whole_context.is_none() {
            self.out.whole_context = Some(why);
        }
    }

    /// A variable's value where `scope` is (or the global scope before the first FROM).
    fn lookup(&self, name: &str) -> Option<String> {
        match &self.scope {
            Some(s) => s.get(name).cloned(),
            None => self.global.get(name).cloned(),
        }
    }

    fn expand_here(&self, s: &str) -> Result<String, String> {
        expand(s, &|n| self.lookup(n))
    }

    fn is_stage(&self, name: &str) -> bool {
        self.stages
            .iter()
            .any(|(s, _)| s.eq_ignore_ascii_case(name))
            || name.parse::<usize>().is_ok_and(|n| n < self.stages.len())
    }

    fn instruction(&mut self, ins: &Instruction) {
        let at = ins.line;
        match ins.keyword.as_str() {
            "FROM" => self.from(ins),
            "ARG" => self.arg(ins),
            "ENV" => self.env(ins),
            "COPY" | "ADD" => self.copy(ins),
            "RUN" => self.run(ins),
            "ONBUILD" => {
                let next = ins.rest.split_whitespace().next().unwrap_or("");
                if ["COPY", "ADD", "RUN"].contains(&next.to_ascii_uppercase().as_str()) {
                    self.out.onbuild = true;
                }
            }
            k if OTHER_INSTRUCTIONS.contains(&k) => {}
            k => self.widen(format!("line {at}: unknown instruction `{k}`")),
        }
    }

    fn from(&mut self, ins: &Instruction) {
        let (_, ws) = split_flags(words(&ins.rest));
        let Some(image) = ws.first() else {
            self.widen(format!("line {}: FROM without an image", ins.line));
            return;
        };
        // FROM sees the global ARGs, the build arguments and the platform arguments.
        let get = |n: &str| {
            self.vars
                .build_args
                .get(n)
                .cloned()
                .or_else(|| self.vars.automatic(n))
                .or_else(|| self.global.get(n).cloned())
        };
        let resolved = expand(image, &get).unwrap_or_else(|_| image.clone());
        if let Some(s) = self.scope.take() {
            let idx = self.stages.len() - 1;
            self.stages[idx].1 = s;
        }
        let mut scope = Scope::default();
        if let Some((_, parent)) = self
            .stages
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(&resolved))
        {
            scope.env = parent.env.clone();
        } else if resolved != "scratch" {
            self.out.images.push(ImageRef {
                reference: resolved,
                line: ins.line,
            });
        }
        let name = match (ws.get(1), ws.get(2)) {
            (Some(kw), Some(n)) if kw.eq_ignore_ascii_case("as") => n.clone(),
            _ => String::new(),
        };
        self.stages.push((name, scope.clone()));
        self.scope = Some(scope);
    }

    fn arg(&mut self, ins: &Instruction) {
        for w in words(&ins.rest) {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.clone(), None),
            };
            let default = default.and_then(|d| self.expand_here(&d).ok());
            let given = self
                .vars
                .build_args
                .get(&name)
                .cloned()
                .or_else(|| self.vars.automatic(&name));
            match &mut self.scope {
                None => {
                    if let Some(v) = given.or(default) {
                        self.global.insert(name, v);
                    }
                }
                Some(_) => {
                    let v = given
                        .or(default)
                        .or_else(|| self.global.get(&name).cloned());
                    if let (Some(s), Some(v)) = (&mut self.scope, v) {
                        s.args.insert(name, v);
                    }
                }
            }
        }
    }

    fn env(&mut self, ins: &Instruction) {
        let ws = words(&ins.rest);
        let pairs: Vec<(String, String)> = if ws.first().is_some_and(|w| w.contains('=')) {
            ws.iter()
                .filter_map(|w| {
                    w.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect()
        } else if let Some((k, v)) = ins.rest.split_once(char::is_whitespace) {
            vec![(k.to_string(), v.trim().to_string())]
        } else {
            Vec::new()
        };
        for (k, v) in pairs {
            let v = self.expand_here(&v);
            if let Some(s) = &mut self.scope {
                match v {
                    Ok(v) => {
                        s.env.insert(k, v);
                    }
                    Err(_) => {
                        s.env.remove(&k);
                    }
                }
            }
        }
    }

    fn copy(&mut self, ins: &Instruction) {
        let at = ins.line;
        let is_add = ins.keyword == "ADD";
        let raw = words(&ins.rest);
        let (flags, mut args) = split_flags(raw);
        let known = if is_add { ADD_FLAGS } else { COPY_FLAGS };
        let mut from = None;
        for (k, v) in &flags {
            if !known.contains(&k.as_str()) {
                self.widen(format!(
                    "line {at}: {} flag `--{k}` is not understood",
                    ins.keyword
                ));
                return;
            }
            if k == "from" {
                from = v.clone();
            }
        }
        // JSON form after the flags.
        let joined = args.join(" ");
        if joined.starts_with('[') {
            let json_part = ins.rest[ins.rest.find('[').unwrap_or(0)..].to_string();
            match serde_json::from_str::<Vec<String>>(&json_part) {
                Ok(v) => args = v,
                Err(_) => {
                    self.widen(format!(
                        "line {at}: {} arguments are not a JSON array of strings",
                        ins.keyword
                    ));
                    return;
                }
            }
        }
        if args.len() < 2 {
            self.widen(format!(
                "line {at}: {} needs a source and a destination",
                ins.keyword
            ));
            return;
        }
        args.pop();
        if let Some(f) = from {
            self.read_from(&f, at);
            return;
        }
        for src in args {
            if src.starts_with("<<") {
                continue; // a heredoc: inline content
            }
            if src.contains("://") || src.starts_with("git@") {
                continue; // a URL or a repository, not the context
            }
            self.source(&src, at);
        }
    }

    /// `--from=` of COPY or a mount: a stage, else an image.
    fn read_from(&mut self, from: &str, at: usize) {
        let resolved = self.expand_here(from).unwrap_or_else(|_| from.to_string());
        if !self.is_stage(&resolved) {
            self.out.images.push(ImageRef {
                reference: resolved,
                line: at,
            });
        }
    }

    fn source(&mut self, src: &str, at: usize) {
        match self.expand_here(src) {
            Ok(s) => self.out.sources.push(clean(&s)),
            Err(why) => self.widen(format!("line {at}: source `{src}`: {why}")),
        }
    }

    fn run(&mut self, ins: &Instruction) {
        let at = ins.line;
        let (flags, _) = split_flags(words(&ins.rest));
        for (k, v) in flags {
            if !RUN_FLAGS.contains(&k.as_str()) {
                self.widen(format!("line {at}: RUN flag `--{k}` is not understood"));
                return;
            }
            if k != "mount" {
                continue;
            }
            let mut opts = BTreeMap::new();
            for part in v.unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
                let (key, val) = part.split_once('=').unwrap_or((part, ""));
                if !MOUNT_KEYS.contains(&key) {
                    self.widen(format!(
                        "line {at}: RUN --mount option `{key}` is not understood"
                    ));
                    return;
                }
                opts.insert(key.to_string(), val.to_string());
            }
            let kind = opts.get("type").map_or("bind", String::as_str);
            let source = opts.get("source").or_else(|| opts.get("src")).cloned();
            match (kind, opts.get("from").cloned()) {
                ("bind", None) => self.source(source.as_deref().unwrap_or("."), at),
                ("bind" | "cache", Some(f)) => self.read_from(&f, at),
                ("cache" | "tmpfs" | "secret" | "ssh", None) => {}
                (other, _) => {
                    self.widen(format!(
                        "line {at}: RUN --mount type `{other}` is not understood"
                    ));
                    return;
                }
            }
        }
    }
}

/// A source as a context-relative path: `./`, leading `/` and `..` folded as Docker does (it
/// cannot climb out of the context).
fn clean(s: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// The sources as compiled patterns (a bad pattern reads the whole context).
pub fn source_patterns(sources: &[String]) -> Vec<Arc<Pattern>> {
    sources
        .iter()
        .map(|s| {
            let s = if s == "." { "" } else { s.as_str() };
            globs::compile(s).unwrap_or_else(|_| globs::compile("").expect("the empty pattern"))
        })
        .collect()
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<(Arc<Pattern>, bool)>,
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
            let pat = clean(pat);
            let pat = if pat == "." { String::new() } else { pat };
            let m = globs::compile(&pat)
                .with_context(|| format!(".dockerignore line {}: bad pattern `{line}`", n + 1))?;
            rules.push((m, negate));
        }
        Ok(Ignore { rules })
    }

    /// Is the context-relative `path` left out of the build context? (Last match wins; a
    /// matched directory covers everything below it.)
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (m, negate) in &self.rules {
            if m.covers(path) {
                excluded = !negate;
            }
        }
        excluded
    }

    /// Could a rule decide anything for a path strictly below `dir`?
    pub fn may_match_below(&self, dir: &str) -> bool {
        self.rules.iter().any(|(m, _)| m.may_match_below(dir))
    }

    /// A `!` rule exists (an excluded directory may still hold included files).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(_, n)| *n)
    }
}

#[cfg(test)]
mod tests;

/// The Dockerfile with every Docker Hub image it reads (`FROM busybox:1.37`, `COPY
/// --from=bitnami/redis:7`, `RUN --mount=…,from=x:1`, the `# syntax=` frontend) read from
/// `mirror` instead (`<mirror>/library/busybox:1.37`): a registry mirror or a pull-through
/// cache, without editing the file. Only instructions are rewritten (never continuation
/// lines or heredoc bodies); stages, `scratch`, other registries' images and the images
/// `keep` names (this repository's own) are left as written. Returns the text, each
/// (from, to), and what could not be redirected (a variable, a FROM split over lines).
pub fn mirror(
    text: &str,
    mirror: &str,
    keep: &dyn Fn(&str) -> bool,
) -> (String, Vec<(String, String)>, Vec<String>) {
    let mut stages: Vec<String> = Vec::new();
    let mut moved = Vec::new();
    let mut unsure = Vec::new();
    let mut out = String::with_capacity(text.len() + 64);
    let escape = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .find_map(|l| {
            let d = l.trim_start().trim_start_matches('#').trim();
            d.strip_prefix("escape=")
                .and_then(|e| e.trim().chars().next())
        })
        .unwrap_or('\\');
    let mut continued = false;
    let mut heredocs: Vec<String> = Vec::new();
    let mut directives = true;
    // The image `word` names, rewritten when it is a Docker Hub image we may redirect.
    let redirect = |word: &str,
                    stages: &[String],
                    moved: &mut Vec<(String, String)>,
                    unsure: &mut Vec<String>|
     -> Option<String> {
        if word.contains('$') {
            unsure.push(word.to_string());
            return None;
        }
        if word.eq_ignore_ascii_case("scratch")
            || stages.contains(&word.to_ascii_lowercase())
            || word.parse::<usize>().is_ok()
            || keep(word)
        {
            return None;
        }
        let to = format!("{mirror}/{}", docker_hub_path(word)?);
        moved.push((word.to_string(), to.clone()));
        Some(to)
    };
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        // Heredoc bodies are content, not instructions.
        if let Some(end) = heredocs.first() {
            if trimmed == end.as_str() || body == end.as_str() {
                heredocs.remove(0);
            }
            out.push_str(line);
            continue;
        }
        let was_continued = continued;
        continued = body.trim_end().ends_with(escape) && !trimmed.starts_with('#');
        if was_continued || trimmed.is_empty() {
            out.push_str(line);
            continue;
        }
        if trimmed.starts_with('#') {
            // `# syntax=docker/dockerfile:1`: the frontend image, read before anything.
            let d = trimmed.trim_start_matches('#').trim();
            if directives {
                if let Some(img) = d.strip_prefix("syntax=") {
                    if let Some(to) = redirect(img.trim(), &stages, &mut moved, &mut unsure) {
                        out.push_str(&line.replacen(img.trim(), &to, 1));
                        continue;
                    }
                }
            }
            out.push_str(line);
            continue;
        }
        directives = false;
        // Heredocs opened on this line (`<<EOF`, `<<-EOF`, `<<"EOF"`).
        let mut rest = trimmed;
        while let Some(i) = rest.find("<<") {
            let tag: String = rest[i + 2..]
                .trim_start_matches('-')
                .trim_matches(|c| c == '"' || c == '\'')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !tag.is_empty() {
                heredocs.push(tag);
            }
            rest = &rest[i + 2..];
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let instruction = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let mut rewritten = body.to_string();
        match instruction.as_str() {
            "FROM" => {
                let at = words
                    .iter()
                    .skip(1)
                    .position(|w| !w.starts_with("--"))
                    .map(|i| i + 1);
                let (Some(at), false) = (at, continued) else {
                    // Split over lines: not rewritten (said so), rather than half-rewritten.
                    unsure.push("FROM split over lines".to_string());
                    out.push_str(line);
                    continue;
                };
                let image = words[at];
                let is_as = words
                    .get(at + 1)
                    .is_some_and(|k| k.eq_ignore_ascii_case("AS"));
                if let Some(to) = redirect(image, &stages, &mut moved, &mut unsure) {
                    rewritten = replace_word(body, image, &to);
                }
                if is_as {
                    if let Some(name) = words.get(at + 2) {
                        stages.push(name.to_ascii_lowercase());
                    }
                }
            }
            "COPY" | "ADD" | "RUN" => {
                for w in &words[1..] {
                    let value = w.strip_prefix("--from=").or_else(|| {
                        w.strip_prefix("--mount=")
                            .and_then(|m| m.split(',').find_map(|kv| kv.strip_prefix("from=")))
                    });
                    if let Some(img) = value {
                        if let Some(to) = redirect(img, &stages, &mut moved, &mut unsure) {
                            let new_word = w.replacen(img, &to, 1);
                            rewritten = replace_word(&rewritten, w, &new_word);
                        }
                    }
                }
            }
            _ => {}
        }
        out.push_str(&rewritten);
        out.push_str(&line[body.len()..]);
    }
    (out, moved, unsure)
}

/// `text` with the whitespace-delimited word `word` replaced by `to` (its first occurrence).
fn replace_word(text: &str, word: &str, to: &str) -> String {
    let at = text.match_indices(word).map(|(i, _)| i).find(|&i| {
        (i == 0 || text[..i].ends_with(char::is_whitespace))
            && text[i + word.len()..]
                .chars()
                .next()
                .is_none_or(char::is_whitespace)
    });
    match at {
        Some(i) => format!("{}{to}{}", &text[..i], &text[i + word.len()..]),
        None => text.to_string(),
    }
}

/// The Docker Hub path of an image reference (`busybox:1` → `library/busybox:1`), or `None`
/// for another registry's (a first part with a `.` or `:`, or `localhost`).
fn docker_hub_path(image: &str) -> Option<String> {
    let image = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]
        .iter()
        .find_map(|p| image.strip_prefix(p))
        .unwrap_or(image);
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => None,
        Some(_) => Some(image.to_string()),
        None => Some(format!("library/{image}")),
    }
}

#[cfg(test)]
mod mirror_tests {
    use super::*;

    #[test]
    fn docker_hub_bases_are_read_from_the_mirror() {
        let m = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockerhub";
        let text = "# syntax=docker/dockerfile:1\nARG BASE=alpine:3\nFROM --platform=$BUILDPLATFORM busybox:1.37 AS build\nRUN echo \\\n  from the docs > /msg\nfrom build as again\nFROM bitnami/redis:7\nFROM docker.io/library/debian:12-slim@sha256:ab\nFROM registry-1.docker.io/library/node:20\nFROM ghcr.io/acme/base:1\nFROM acme/app-base:2\nFROM ${BASE}\nCOPY --from=acme/tool:2 /t /t\nCOPY --from=build /x /x\nRUN --mount=type=bind,from=acme/tool:2,target=/t true\nCOPY <<EOF /app/main.py\nfrom os import path\nEOF\nFROM scratch\n  FROM   node:20   AS   web\n";
        let keep = |r: &str| r.starts_with("acme/app-base");
        let (out, moved, unsure) = mirror(text, m, &keep);
        assert_eq!(
            out,
            format!("# syntax={m}/docker/dockerfile:1\nARG BASE=alpine:3\nFROM --platform=$BUILDPLATFORM {m}/library/busybox:1.37 AS build\nRUN echo \\\n  from the docs > /msg\nfrom build as again\nFROM {m}/bitnami/redis:7\nFROM {m}/library/debian:12-slim@sha256:ab\nFROM {m}/library/node:20\nFROM ghcr.io/acme/base:1\nFROM acme/app-base:2\nFROM ${{BASE}}\nCOPY --from={m}/acme/tool:2 /t /t\nCOPY --from=build /x /x\nRUN --mount=type=bind,from={m}/acme/tool:2,target=/t true\nCOPY <<EOF /app/main.py\nfrom os import path\nEOF\nFROM scratch\n  FROM   {m}/library/node:20   AS   web\n")
        );
        assert_eq!(moved.len(), 8, "{moved:?}");
        assert_eq!(unsure, ["${BASE}"]);
        let (out, _, unsure) = mirror("FROM \\\n  busybox:1\n", m, &|_| false);
        assert_eq!(
            out, "FROM \\\n  busybox:1\n",
            "a FROM split over lines is left"
        );
        assert_eq!(unsure, ["FROM split over lines"]);
    }
}
