//! One service's inputs at one state of the repository, as [`Component`]s: the Dockerfile,
//! the `.dockerignore` BuildKit would use (`<Dockerfile>.dockerignore` first), the build
//! context narrowed to the Dockerfile's sources (or whole, with the line that made it so), the
//! cargo graph for Rust services (crates, locked packages, the root manifest's build sections,
//! toolchain and cargo config up to the repository root), settings that reach the image,
//! VERSION, `watch` and `shared_paths` globs, and the images it builds FROM.

use std::sync::Arc;

use super::crates::Crates;
use super::inputs::{Component, Filter, Kind, Source};
use super::lock::Lock;
use super::snapshot::Snapshot;
use crate::dockerfile::{self, Ignore, ImageRef, Vars};
use crate::globs::{self, within};
use crate::services::{Service, Settings};
use crate::tools::cargo::rust_target;

/// A service's inputs.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// The service directory, repository-relative.
    pub dir: String,
    pub components: Vec<Component>,
    /// Images read (FROM, COPY --from, mounts), to match against other services.
    pub images: Vec<ImageRef>,
    /// Where the inputs were widened, and why.
    pub notes: Vec<String>,
    /// Its Dockerfile has ONBUILD instructions that read the context of builds FROM it.
    pub onbuild: bool,
}

/// What every service of one state shares.
pub struct World<'a, 's, 'r> {
    pub snap: &'s Snapshot<'r>,
    /// The workspace root, repository-relative (`""` or `dir`, no trailing `/`).
    pub ws: &'a str,
    pub settings: &'a Settings,
    pub crates: Option<Crates<'s>>,
    pub lock: Option<Lock>,
    /// The root manifest less what is not a build input (image metadata, members).
    pub manifest: String,
    pub version: String,
    /// `policy_text` by policy.
    pub policies: std::collections::HashMap<usize, String>,
}

/// Repository-relative form of a workspace-relative path.
pub fn rp(ws: &str, p: &std::path::Path) -> String {
    let p = p.to_string_lossy();
    let p = p.trim_end_matches('/');
    match (ws.is_empty(), p.is_empty()) {
        (true, _) => p.to_string(),
        (false, true) => ws.to_string(),
        (false, false) => format!("{ws}/{p}"),
    }
}

impl World<'_, '_, '_> {
    /// The tag policy as text, once per distinct policy (services share the global one).
    fn policy_text(&mut self, svc: &Service) -> String {
        let key = std::sync::Arc::as_ptr(&svc.policy) as usize;
        self.policies
            .entry(key)
            .or_insert_with(|| format!("{:?}", svc.policy))
            .clone()
    }

    pub fn spec(&mut self, svc: &Service, rust: Option<&str>) -> Spec {
        let mut s = Spec::default();
        let ws = self.ws.to_string();
        let dir = rp(&ws, &svc.dir);
        s.dir = dir.clone();
        let dockerfile = rp(&ws, &svc.dockerfile);
        let context = rp(&ws, &svc.context);
        let service_toml = format!("{dir}/service.toml");
        let root_toml = rp(&ws, std::path::Path::new("Cargo.toml"));
        let config_files = vec![service_toml.clone(), root_toml.clone()];

        s.components.push(Component::new(
            "dockerfile",
            Kind::Dockerfile,
            Source::Path(dockerfile.clone()),
        ));
        // A Dockerfile (or .dockerignore) may be a symbolic link: the file it names counts.
        let snap = self.snap;
        // Every link on the way decides where it leads: each is an input too.
        let follow = |s: &mut Spec, key: &str, kind: Kind, path: &str| -> Option<String> {
            let (real, links) = snap.resolve_links(path);
            for l in links.iter().filter(|l| *l != path) {
                s.components.push(Component::new(
                    format!("{key} link {l}"),
                    kind.clone(),
                    Source::Path(l.clone()),
                ));
            }
            match real {
                Some(real) if real != path => {
                    s.components.push(Component::new(
                        format!("{key} {real}"),
                        kind,
                        Source::Path(real.clone()),
                    ));
                    Some(real)
                }
                Some(real) => Some(real),
                None => {
                    s.notes.push(format!(
                        "{path} is a link that leaves the repository or loops: the whole context is an input"
                    ));
                    None
                }
            }
        };
        let dockerfile_real = follow(&mut s, "dockerfile", Kind::Dockerfile, &dockerfile);
        // BuildKit: `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's.
        let probes = [
            format!("{dockerfile}.dockerignore"),
            rp(&context, std::path::Path::new(".dockerignore")),
        ];
        let ignore_path = probes
            .iter()
            .find(|p| self.snap.item(p).is_some_and(|i| !i.is_tree()))
            .cloned()
            .unwrap_or_else(|| probes[1].clone());
        s.components.push(
            Component::new(
                "dockerignore",
                Kind::Ignore,
                Source::Path(ignore_path.clone()),
            )
            .defined_by(probes.iter().cloned()),
        );
        let ignore_real = follow(&mut s, "dockerignore", Kind::Ignore, &ignore_path)
            .unwrap_or_else(|| ignore_path.clone());
        let ignore = match self
            .snap
            .read_text(&ignore_real)
            .map(|t| t.trim_start_matches('\u{feff}').to_string())
        {
            Some(text) => match Ignore::parse(&text) {
                Ok(i) => i,
                Err(e) => {
                    s.notes.push(format!(
                        "{ignore_path}: {e:#}: nothing is left out of the context"
                    ));
                    Ignore::default()
                }
            },
            None => Ignore::default(),
        };

        // The Dockerfile, for each platform (variables may differ by platform).
        let mut sources: Option<Vec<String>> = Some(Vec::new());
        // VERSION is a build argument the tool passes itself (BUILD_DATE and VCS_REF change
        // with every commit: a source naming them widens).
        let mut args = svc.build_args.clone();
        args.entry("VERSION".into()).or_insert_with(|| {
            svc.version
                .as_ref()
                .map_or(self.version.clone(), |v| v.to_string())
        });
        match dockerfile_real
            .as_deref()
            .and_then(|d| self.snap.read_text(d))
        {
            Some(text) => {
                for platform in &svc.platforms {
                    let p = dockerfile::parse(
                        &text,
                        &Vars {
                            build_args: &args,
                            platform,
                        },
                    );
                    s.onbuild |= p.onbuild;
                    if let Some(why) = &p.whole_context {
                        let note = format!("{dockerfile} {why}: the whole context is an input");
                        if !s.notes.contains(&note) {
                            s.notes.push(note);
                        }
                        sources = None;
                    }
                    if let Some(list) = &mut sources {
                        list.extend(p.sources);
                    }
                    for i in p.images {
                        if !s.images.contains(&i) {
                            s.images.push(i);
                        }
                    }
                }
            }
            None => {
                s.notes.push(format!(
                    "{dockerfile} cannot be read: the whole context is an input"
                ));
                sources = None;
            }
        }
        // A source reached through a symbolic link inside the context: its target counts too.
        let mut source_links: Vec<String> = Vec::new();
        if let Some(list) = &mut sources {
            let mut more = Vec::new();
            for src in list.iter() {
                let Ok(p) = globs::compile(src) else { continue };
                let lit = p.literal_prefix();
                let full = rp(&context, std::path::Path::new(lit));
                let (real, links) = self.snap.resolve_links(&full);
                source_links.extend(links);
                match real {
                    Some(real) if real != full => {
                        if let Some(rel) = super::inputs::rel_to(&real, &context) {
                            let rest = src.strip_prefix(lit).unwrap_or("");
                            more.push(format!("{rel}{rest}").trim_start_matches('/').to_string());
                        }
                    }
                    Some(_) => {}
                    None => s.notes.push(format!(
                        "source `{src}` is a link that leaves the repository or loops"
                    )),
                }
            }
            list.extend(more);
        }
        let filter = Filter {
            ignore,
            sources: sources.map(|mut l| {
                l.sort();
                l.dedup();
                dockerfile::source_patterns(&l)
            }),
        };
        let kind = if within(&context, &dir) {
            Kind::Context
        } else {
            Kind::Copied
        };
        s.components.push(
            Component::new(
                "context",
                kind,
                Source::Filtered {
                    root: context.clone(),
                    filter: Arc::new(filter),
                },
            )
            .defined_by([dockerfile.clone(), service_toml.clone()])
            .defined_by(source_links),
        );

        // `.gitattributes` (eol, filters) rewrites files as they are checked out: those
        // above and at the context root, and beside the Dockerfile, count.
        let mut attr_dirs: Vec<String> = Vec::new();
        for start in [
            context.as_str(),
            dockerfile.rsplit_once('/').map_or("", |(d, _)| d),
        ] {
            let mut d = start.to_string();
            loop {
                if !attr_dirs.contains(&d) {
                    attr_dirs.push(d.clone());
                }
                if d.is_empty() {
                    break;
                }
                d = d
                    .rsplit_once('/')
                    .map_or(String::new(), |(p, _)| p.to_string());
            }
        }
        for d in attr_dirs {
            let p = rp(&d, std::path::Path::new(".gitattributes"));
            s.components.push(Component::new(
                format!("gitattributes {p}"),
                Kind::Attributes,
                Source::Path(p),
            ));
        }

        if let Some(pkg) = rust {
            self.rust(svc, pkg, &mut s, &root_toml);
        }

        // Settings that reach the image or where it goes, one `key=value` line each.
        let l = &self.settings.labels;
        let policy = self.policy_text(svc);
        let lines = [
            (
                "image",
                format!("{} {}", svc.repository, svc.registries.join(",")),
            ),
            ("platforms", svc.platforms.join(",")),
            ("target", svc.target.clone().unwrap_or_default()),
            ("attestations", svc.attestations.to_string()),
            (
                "base_image_mirror",
                self.settings.base_image_mirror.clone().unwrap_or_default(),
            ),
            (
                "build_args",
                svc.build_args
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            (
                "labels",
                format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                    l.vendor,
                    l.source,
                    l.licenses,
                    l.url,
                    l.documentation,
                    svc.description,
                    svc.labels
                ),
            ),
            ("tags", format!("{:?} {policy}", svc.tags)),
            ("network", self.settings.network.clone().unwrap_or_default()),
        ];
        let mut text = String::new();
        for (k, v) in lines {
            text.push_str(k);
            text.push('=');
            text.push_str(&v.replace('\n', " "));
            text.push('\n');
        }
        s.components.push(
            Component::new("settings", Kind::Setting, Source::Value(text)).defined_by(config_files),
        );
        let version = match &svc.version {
            Some(v) => v.to_string(),
            None => self.version.clone(),
        };
        s.components.push(
            Component::new("version", Kind::Version, Source::Value(version)).defined_by([
                format!("{dir}/VERSION"),
                rp(&ws, std::path::Path::new("VERSION")),
            ]),
        );
        for (kind, list) in [
            (Kind::Watch, &svc.watch),
            (Kind::Shared, &self.settings.shared_paths),
        ] {
            for g in list {
                let full = rp(&ws, std::path::Path::new(g));
                match globs::compile(&full) {
                    Ok(p) => s.components.push(Component::new(
                        format!(
                            "{} {g}",
                            if kind == Kind::Watch {
                                "watch"
                            } else {
                                "shared"
                            }
                        ),
                        kind.clone(),
                        Source::Glob(p),
                    )),
                    Err(e) => s.notes.push(format!("glob `{g}`: {e}")),
                }
            }
        }
        s
    }

    /// A Rust service: the crates and locked packages its binary compiles, the root
    /// manifest's build sections, and the toolchain and cargo config cargo would read.
    fn rust(&mut self, svc: &Service, pkg: &str, s: &mut Spec, root_toml: &str) {
        let ws = self.ws.to_string();
        let lock_path = rp(&ws, std::path::Path::new("Cargo.lock"));
        let targets: Vec<String> = svc
            .platforms
            .iter()
            .filter_map(|p| rust_target(p).ok().map(String::from))
            .collect();
        let targets = if targets.len() == svc.platforms.len() {
            targets
        } else {
            Vec::new() // a platform with no known target: every target table counts
        };
        let graph = match &mut self.crates {
            Some(c) => c.graph(pkg, &targets, self.lock.as_ref()),
            None => {
                s.notes.push(format!("{root_toml} cannot be read as a cargo manifest: the whole workspace is an input"));
                let mut g = super::crates::Graph::default();
                g.dirs.insert(ws.clone());
                g
            }
        };
        s.notes.extend(graph.notes.iter().cloned());
        // A member manifest cargo cannot read breaks every build in the workspace.
        if let Some(c) = &self.crates {
            for (path, why) in &c.broken {
                s.notes.push(format!(
                    "{why}: cargo cannot load the workspace, so {path} is an input"
                ));
                s.components.push(Component::new(
                    format!("crate {path}"),
                    Kind::Crate,
                    Source::Path(path.clone()),
                ));
            }
        }
        for d in &graph.dirs {
            s.components.push(Component::new(
                format!("crate {d}"),
                Kind::Crate,
                Source::Path(d.clone()),
            ));
        }
        for e in &graph.extra {
            s.components.push(Component::new(
                format!("crate {e}"),
                Kind::Crate,
                Source::Path(e.clone()),
            ));
        }
        match &graph.locked {
            Some(lines) => {
                let v: Vec<&str> = lines.iter().map(String::as_str).collect();
                s.components.push(
                    Component::new("lock", Kind::Lock, Source::Value(v.join("\n")))
                        .defined_by([lock_path.clone()]),
                );
            }
            None => {
                s.notes.push(if self.lock.is_some() {
                    format!("{lock_path} does not list what `{pkg}` compiles (out of date?): the whole lock is an input")
                } else {
                    format!("no {lock_path} at this commit: registry dependencies resolve when the binary is built and are not tracked; commit the lock file")
                });
                s.components.push(Component::new(
                    "lock",
                    Kind::Lock,
                    Source::Path(lock_path.clone()),
                ));
            }
        }
        s.components.push(
            Component::new(
                "manifest",
                Kind::Manifest,
                Source::Value(self.manifest.clone()),
            )
            .defined_by([root_toml.to_string()]),
        );
        // cargo reads config and toolchain files from the workspace root up to the top.
        let mut dir = ws.clone();
        loop {
            for f in [".cargo", "rust-toolchain", "rust-toolchain.toml"] {
                let p = rp(&dir, std::path::Path::new(f));
                s.components.push(Component::new(
                    format!("toolchain {p}"),
                    Kind::Toolchain,
                    Source::Path(p),
                ));
            }
            if dir.is_empty() {
                break;
            }
            dir = dir
                .rsplit_once('/')
                .map_or(String::new(), |(d, _)| d.to_string());
        }
    }
}

/// The root manifest as a build input: everything but the image metadata and membership.
pub fn build_manifest(text: Option<&str>) -> String {
    let Some(mut t) = text.and_then(|t| t.parse::<toml::Table>().ok()) else {
        return text.unwrap_or("-").to_string();
    };
    if let Some(toml::Value::Table(w)) = t.get_mut("workspace") {
        w.remove("members");
        w.remove("exclude");
        if let Some(toml::Value::Table(m)) = w.get_mut("metadata") {
            m.remove("images");
            if m.is_empty() {
                w.remove("metadata");
            }
        }
    }
    serde_json::to_string(&t).unwrap_or_default()
}

/// Which `[section]`s of two build manifests differ, for a reason.
pub fn manifest_sections(old: &str, new: &str) -> Vec<String> {
    let parse = |t: &str| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t).unwrap_or_default()
    };
    let (old, new) = (parse(old), parse(new));
    let mut sections = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for k in keys {
        match (old.get(k), new.get(k)) {
            (Some(serde_json::Value::Object(a)), Some(serde_json::Value::Object(b))) if a != b => {
                let sub: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for s in sub {
                    if a.get(s) != b.get(s) {
                        sections.push(format!("[{k}.{s}]"));
                    }
                }
            }
            (a, b) if a != b => sections.push(format!("[{k}]")),
            _ => {}
        }
    }
    sections
}

/// A service as the image index knows it: what its image is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    pub name: &'a str,
    pub repository: &'a str,
    pub registries: &'a [String],
}

impl<'a> Owner<'a> {
    pub fn of(s: &'a Service) -> Owner<'a> {
        Owner {
            name: &s.name,
            repository: &s.repository,
            registries: &s.registries,
        }
    }
}

/// Finds the service whose image a reference names (`registry/prefix/name[:tag][@digest]`),
/// with the repositories indexed once.
pub struct ImageIndex<'a> {
    by_repository: std::collections::HashMap<&'a str, usize>,
    owners: Vec<Owner<'a>>,
}

impl<'a> ImageIndex<'a> {
    pub fn new(services: &'a [Service]) -> Self {
        ImageIndex::of(services.iter().map(Owner::of).collect())
    }

    pub fn of(owners: Vec<Owner<'a>>) -> Self {
        ImageIndex {
            by_repository: owners
                .iter()
                .enumerate()
                .map(|(i, s)| (s.repository, i))
                .collect(),
            owners,
        }
    }

    pub fn find(&self, reference: &str) -> Option<Owner<'a>> {
        let no_digest = reference.split('@').next().unwrap_or(reference);
        let path = match no_digest.rfind(':') {
            Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
            _ => no_digest,
        };
        if !path.contains('$') {
            // The repository is the whole path or a suffix after a `/` (the registry, or a
            // mirror's prefix, before it).
            return std::iter::once(path)
                .chain(path.match_indices('/').map(|(i, _)| &path[i + 1..]))
                .find_map(|p| self.by_repository.get(p).map(|i| self.owners[*i]));
        }
        // A variable with no value: any service whose reference the pattern can match.
        let mut pattern = String::new();
        let mut chars = path.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                pattern.push(c);
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
            pattern.push('*');
        }
        let m = globset::Glob::new(&pattern).ok()?.compile_matcher();
        self.owners.iter().copied().find(|s| {
            m.is_match(s.repository)
                || s.registries
                    .iter()
                    .any(|r| m.is_match(format!("{r}/{}", s.repository)))
        })
    }
}

/// Reason text for the values of a setting (shortened).
pub fn short(v: &str) -> String {
    let v = if v.is_empty() { "(unset)" } else { v };
    if v.chars().count() > 60 {
        format!("{}…", v.chars().take(57).collect::<String>())
    } else {
        v.to_string()
    }
}

/// Lines of a lock value as a set.
pub fn lock_set(v: &str) -> std::collections::BTreeSet<String> {
    v.lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}
