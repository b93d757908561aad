//! Which services a change selects, and why. A service's inputs are everything its build can
//! read ([`spec`]); their fingerprints at the base and at the head are compared, and a service
//! is selected exactly when its input digest differs — the reasons are the components that
//! differ. Mapping the changed paths to components is only the fast path that decides which
//! services need comparing at all; `--exhaustive` compares every service, and the tests
//! assert that both answers agree.

mod base;
mod cfg;
pub mod crates;
pub mod diff;
mod inputs;
mod lock;
mod memo;
mod snapshot;
mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::context::{BuildContext, Trigger};
use crate::files::{CommitTree, Files};
use crate::services::{Package, Service, Workspace};
use inputs::{Component, Kind, Reader, Source};
use snapshot::Snapshot;
pub use spec::ImageIndex;
use spec::{rp, Spec, World};

/// The version of the JSON contracts (`changed`, `plan`, `list`).
pub const SCHEMA_VERSION: u32 = 1;

/// The `changed --json` contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Bumped when a field changes meaning or goes away (adding one does not).
    pub schema_version: u32,
    /// The base commit compared against; `null` when everything is selected for want of one.
    pub base: Option<String>,
    pub head: Option<String>,
    /// How the base was chosen (or why there is none).
    pub comparison: String,
    /// The working tree and index were included (local, no `--head`).
    pub working_tree: bool,
    /// Changed paths, relative to the repository root, sorted.
    pub changed_paths: Vec<String>,
    pub changed_path_count: usize,
    /// Sorted by name; services removed by the change are listed with `removed: true`.
    pub services: Vec<ServiceChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceChange {
    pub name: String,
    pub selected: bool,
    pub reasons: Vec<String>,
    /// `sha256:…` over the service's inputs at head; absent for removed services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_digest: Option<String>,
    /// Where its inputs were widened (a Dockerfile line, a manifest, a lock), and implicit
    /// dependencies found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

pub struct Request<'a> {
    pub base: Option<&'a str>,
    pub head: Option<&'a str>,
    pub strict: bool,
    pub context: &'a BuildContext,
    /// Compare every service's digests, not only those the changed paths reach (and leave
    /// the memo alone).
    pub exhaustive: bool,
    /// What the configuration reads from the environment, as text: part of the memo's key.
    pub environment: String,
}

/// Loads the workspace through `files`, with the packages given, only the services `only`
/// names (all with `None`).
pub type Load<'a> =
    dyn Fn(&dyn Files, Vec<Package>, Option<&dyn Fn(&str) -> bool>) -> Result<Workspace> + 'a;

/// Everything computed for one state.
#[derive(Default)]
struct Side {
    specs: BTreeMap<String, Spec>,
    /// Services each builds on: (name, why).
    deps: BTreeMap<String, Vec<(String, String)>>,
    fps: BTreeMap<String, BTreeMap<String, String>>,
    digests: BTreeMap<String, String>,
}

pub fn detect(repo: &git2::Repository, root: &Path, load: &Load, req: &Request) -> Result<Report> {
    // Objects come from our own repository: re-hashing each one on read is wasted work here.
    git2::opts::strict_hash_verification(false);
    let range = base::resolve(
        repo,
        &base::Request {
            base: req.base,
            head: req.head,
            context: req.context,
        },
    )?;
    if req.strict {
        base::strict(&range)?;
    }
    let workdir = repo
        .workdir()
        .and_then(|w| w.canonicalize().ok())
        .context("the repository has no working tree")?;
    let ws = match root.strip_prefix(&workdir) {
        Ok(p) => p.to_string_lossy().trim_end_matches('/').to_string(),
        Err(_) => String::new(),
    };
    let prefix = if ws.is_empty() {
        String::new()
    } else {
        format!("{ws}/")
    };
    let head_tree = repo.find_commit(range.head)?.tree()?;
    let wt_raw = if range.working_tree {
        diff::working_tree_paths(repo)?
    } else {
        Vec::new()
    };
    let head_snap = if range.working_tree {
        Snapshot::with_working_tree(repo, head_tree.clone(), &wt_raw)?
    } else {
        Snapshot::commit(repo, head_tree.clone())
    };
    let head_files_tree = CommitTree::new(repo, head_tree.clone(), prefix.clone());
    // The working tree as git would commit it, not the disk: what a commit of this checkout
    // would hold is what is compared (ignored files and what links point to are not).
    let head_wt_files = snapshot::SnapFiles {
        snap: &head_snap,
        prefix: prefix.clone(),
    };
    let head_files: &dyn Files = if range.working_tree {
        &head_wt_files
    } else {
        &head_files_tree
    };
    let head_pkgs = crates::Crates::new(&head_snap, &ws)
        .map(|mut c| c.packages())
        .unwrap_or_default();

    let base_tree = match range.base {
        Some(b) => Some(repo.find_commit(b)?.tree()?),
        None => None,
    };
    let overlay: Vec<String> = wt_raw
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let mut paths = match &base_tree {
        Some(b) => diff::changed_paths(repo, Some(b), Some(&head_tree))?,
        None => Vec::new(),
    };
    paths.extend(overlay.iter().cloned());
    paths.sort();
    paths.dedup();

    // A release tag decides for itself, from every service's configuration.
    let use_memo = !req.exhaustive && !matches!(req.context.trigger, Trigger::Release { .. });
    let key = memo::key(&ws, &req.environment);
    let state = HeadState {
        repo,
        tree: &head_tree,
        overlay: &overlay,
        snap: &head_snap,
        files: head_files,
        ws: &ws,
    };
    let mut known = if use_memo {
        memo::load(repo, &key)
    } else {
        None
    };
    let comparing = base_tree.is_some() && range.fallback.is_none();
    let to_compare: &[String] = if comparing { &paths } else { &[] };
    let plan = known.as_ref().and_then(|m| {
        let base = base_tree.as_ref().map(|t| t.id()).filter(|_| comparing);
        memo_plan(m, &state, to_compare, base)
    });
    let reused = match (known.as_mut(), &plan) {
        (Some(m), Some(plan)) => incremental(m, plan, &state, load, head_pkgs.clone()),
        _ => None,
    };
    let head = match reused {
        Some(h) => h,
        None => {
            let head_ws = load(head_files, head_pkgs, None)?;
            let index = ImageIndex::new(&head_ws.services);
            let side = evaluate(
                Some(&head_ws),
                &head_snap,
                &ws,
                None,
                &NOTHING_OUTSIDE,
                &index,
                None,
            );
            Head::new(head_ws, side, BTreeMap::new())
        }
    };
    // The base is read from the memo too when the head was.
    let plan = plan.filter(|_| head.from_memo);
    // A memo that answered stays where it is while what it leaves to recompute is small
    // (writing it again costs more than that); one that could not is written (at the end).
    let write_memo = use_memo && !plan.as_ref().is_some_and(|p| p.small(head.entries.len()));

    let mut out: BTreeMap<String, ServiceChange> = BTreeMap::new();
    for (name, e) in &head.entries {
        out.insert(
            name.clone(),
            ServiceChange {
                name: name.clone(),
                selected: false,
                reasons: Vec::new(),
                input_digest: Some(e.digest.clone()),
                notes: e.notes.clone(),
                removed: false,
            },
        );
    }

    match (&range.fallback, &base_tree) {
        (Some(_), _) | (None, None) => {
            let why = range.fallback.clone().unwrap_or_else(|| why_none(&range));
            for c in out.values_mut() {
                c.selected = true;
                c.reasons = vec![why.clone()];
            }
        }
        (None, Some(base_tree)) => {
            let candidates = if req.exhaustive {
                head.entries.keys().cloned().collect()
            } else {
                candidates(&head, &paths, &ws)
            };
            // The base side of the candidates and what they build on.
            let wanted = with_deps(candidates.clone(), &head.entries);
            let base = base_side(
                repo,
                base_tree,
                &BaseAsk {
                    prefix: &prefix,
                    ws: &ws,
                    load,
                    wanted: &wanted,
                    head: &head.entries,
                    memo: known.as_ref().zip(plan.as_ref()),
                },
            );
            debug_assert!(candidates.is_subset(&wanted));
            for name in &candidates {
                let c = out.get_mut(name).expect("a head service");
                let unread = match &base {
                    Ok((_, errors)) => errors.get(name),
                    Err(why) => Some(why),
                };
                let base = match (&base, unread) {
                    (Ok((base, _)), None) => base,
                    (_, why) => {
                        let why = why.map_or("", String::as_str);
                        c.selected = true;
                        c.reasons = vec![format!(
                            "the configuration at the base cannot be read, so it cannot be compared: {why}"
                        )];
                        continue;
                    }
                };
                let Some(old) = base.fps.get(name) else {
                    c.selected = true;
                    c.reasons = vec![format!(
                        "new service: {} is not at the base",
                        head.entries[name].dir
                    )];
                    continue;
                };
                if base.digests.get(name) != Some(&head.entries[name].digest) {
                    c.selected = true;
                    c.reasons = reasons(
                        &base.specs[name],
                        &head.side.specs[name],
                        old,
                        &head.side.fps[name],
                        &paths,
                    );
                }
            }
            std::mem::forget(base);
            for (name, e) in &head.entries {
                let c = out.get_mut(name).expect("a head service");
                if c.selected {
                    continue;
                }
                let here: Vec<&String> = paths
                    .iter()
                    .filter(|p| crate::globs::within(p, &e.dir))
                    .collect();
                c.reasons = vec![if here.is_empty() {
                    "no change in its inputs".to_string()
                } else {
                    format!(
                        "no change in its inputs (changed here, but not read by its build or with the same content: {})",
                        list(&here)
                    )
                }];
            }
        }
    }

    if let Trigger::Release { tag, service, .. } = &req.context.trigger {
        for svc in head.ws.iter().flat_map(|w| &w.services) {
            let (selected, why) = release_selection(tag, service.as_deref(), svc);
            let c = out.get_mut(&svc.name).expect("a head service");
            c.selected = selected;
            c.reasons = vec![why];
        }
    }

    // Services the change removed: their files are among the changed paths.
    if let Some(b) = &base_tree {
        let services_dir = format!("{prefix}services/");
        let gone: BTreeSet<&str> = paths
            .iter()
            .filter_map(|p| {
                p.strip_prefix(&services_dir)?
                    .split_once('/')
                    .map(|(n, _)| n)
            })
            .filter(|n| !out.contains_key(*n))
            .collect();
        let base_files = CommitTree::new(repo, b.clone(), prefix.clone());
        for name in gone {
            let dir = Path::new("services").join(name);
            if base_files.is_file(&dir.join("Dockerfile"))
                || base_files.is_file(&dir.join("service.toml"))
            {
                out.insert(
                    name.to_string(),
                    ServiceChange {
                        name: name.to_string(),
                        selected: false,
                        reasons: vec![format!("removed: services/{name} is gone at head")],
                        input_digest: None,
                        notes: Vec::new(),
                        removed: true,
                    },
                );
            }
        }
    }
    // A command reads once and ends: freeing the memo and the two sides (tens of thousands
    // of small allocations) costs more than the exit that reclaims them.
    let mut head = head;
    if write_memo {
        let m = head.take_memo(key, head_tree.id().to_string(), overlay, known.as_ref());
        memo::save(repo, &m);
        std::mem::forget(m);
    }
    std::mem::forget(head);
    std::mem::forget(known);
    std::mem::forget(head_snap);
    std::mem::forget(head_files_tree);
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        base: range.base.map(|b| b.to_string()),
        head: Some(range.head.to_string()),
        comparison: range.how,
        working_tree: range.working_tree,
        changed_path_count: paths.len(),
        changed_paths: paths,
        services: out.into_values().collect(),
    })
}

/// The content digest of every service as it is now (HEAD with the working tree over it: what
/// a build of this checkout reads): its input digest less the tag templates and registries,
/// which decide where the image goes, not what it holds. `model` is the workspace from disk.
pub fn head_digests(
    repo: &git2::Repository,
    root: &Path,
    model: &Workspace,
) -> Result<BTreeMap<String, String>> {
    git2::opts::strict_hash_verification(false);
    let workdir = repo
        .workdir()
        .and_then(|w| w.canonicalize().ok())
        .context("the repository has no working tree")?;
    let ws = match root.strip_prefix(&workdir) {
        Ok(p) => p.to_string_lossy().trim_end_matches('/').to_string(),
        Err(_) => String::new(),
    };
    let tree = repo
        .head()
        .and_then(|h| h.peel_to_tree())
        .context("HEAD has no commit yet")?;
    let changed = diff::working_tree_paths(repo)?;
    let snap = Snapshot::with_working_tree(repo, tree, &changed)?;
    let index = ImageIndex::new(&model.services);
    let side = evaluate(
        Some(model),
        &snap,
        &ws,
        None,
        &NOTHING_OUTSIDE,
        &index,
        None,
    );
    // What reaches the image's bytes: the inputs less where it is pushed and under which
    // tags (a re-run with another tag list reuses the image).
    Ok(side
        .fps
        .iter()
        .map(|(name, f)| {
            let mut f = f.clone();
            if let Some(s) = f.get_mut("settings") {
                *s = s
                    .lines()
                    .filter(|l| !l.starts_with("tags=") && !l.starts_with("image="))
                    .map(|l| format!("{l}\n"))
                    .collect();
            }
            (name.clone(), inputs::digest(&f))
        })
        .collect())
}

fn why_none(range: &base::Range) -> String {
    format!("no base to compare with ({})", range.how)
}

/// Whether a release tag releases `svc`, and why.
pub fn release_selection(tag: &str, service: Option<&str>, svc: &Service) -> (bool, String) {
    match (service, &svc.version) {
        (Some(s), _) if s == svc.name => (true, format!("release tag {tag}")),
        (Some(s), _) => (false, format!("release tag {tag} releases only {s}")),
        (None, Some(v)) => (
            false,
            format!(
                "has its own VERSION ({v}); release it with the tag {}/v{v}",
                svc.name
            ),
        ),
        (None, None) => (true, format!("release tag {tag}")),
    }
}

/// What is known of the services outside the set being evaluated.
struct Outside<'a> {
    entries: &'a BTreeMap<String, memo::Entry>,
    /// They are at the same state: their ONBUILD and their dependencies count too (else
    /// only their digests).
    same_state: bool,
}

const NOTHING_OUTSIDE: Outside = Outside {
    entries: &BTreeMap::new(),
    same_state: true,
};

/// Services read light from a memo (see `memo.rs`): their components are the memo's, only
/// their globs and what they build on are read again.
struct Light<'a> {
    /// Their entries (the memo's).
    entries: &'a BTreeMap<String, memo::Entry>,
    /// Their fingerprints at the memo's state.
    old: BTreeMap<String, std::rc::Rc<BTreeMap<String, String>>>,
    /// Paths that may differ between the memo's state and this one.
    touched: &'a [String],
}

impl<'a> Light<'a> {
    /// `None` when the memo lost a service's fingerprints.
    fn new(
        memo: &memo::Memo,
        entries: &'a BTreeMap<String, memo::Entry>,
        names: &BTreeSet<String>,
        touched: &'a [String],
    ) -> Option<Self> {
        let old = names
            .iter()
            .filter(|n| entries.contains_key(*n))
            .map(|n| Some((n.clone(), memo.fps(n)?)))
            .collect::<Option<_>>()?;
        Some(Light {
            entries,
            old,
            touched,
        })
    }
}

/// Specs, dependencies, fingerprints and digests of the services `only` names (all with
/// `None`) of `ws_model`, and of those `light` names; a dependency outside them is read from
/// `outside`. `index` knows every service's image.
fn evaluate(
    ws_model: Option<&Workspace>,
    snap: &Snapshot,
    ws: &str,
    only: Option<&BTreeSet<String>>,
    outside: &Outside,
    index: &ImageIndex,
    light: Option<&Light>,
) -> Side {
    let mut reader = Reader::new(snap);
    let mut specs: BTreeMap<String, Spec> = BTreeMap::new();
    let services: Vec<&Service> = ws_model
        .into_iter()
        .flat_map(|m| &m.services)
        .filter(|s| only.is_none_or(|o| o.contains(&s.name)))
        .collect();
    if let (Some(model), false) = (ws_model, services.is_empty()) {
        let at = |f: &str| rp(ws, Path::new(f));
        let mut crates = crates::Crates::new(snap, ws);
        let members = crates.as_mut().map(|c| c.packages()).unwrap_or_default();
        let lock = snap
            .read_text(&at("Cargo.lock"))
            .and_then(|t| lock::Lock::parse(&t).ok());
        let mut world = World {
            snap,
            ws,
            settings: &model.settings,
            crates,
            lock,
            manifest: spec::build_manifest(snap.read_text(&at("Cargo.toml")).as_deref()),
            policies: Default::default(),
            version: snap
                .read_text(&at("VERSION"))
                .map_or("-".into(), |v| v.trim().to_string()),
        };
        for svc in &services {
            let pkg = match &svc.cargo {
                Some(c) => Some(c.package.clone()),
                None => members
                    .iter()
                    .find(|p| p.dir == svc.dir)
                    .map(|p| p.name.clone()),
            };
            specs.insert(svc.name.clone(), world.spec(svc, pkg.as_deref()));
        }
    }
    let mut deps = dependencies(&services, index, outside, &mut specs);
    let mut light_fps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut globs = std::collections::HashMap::new();
    for (name, old) in light.iter().flat_map(|l| &l.old) {
        let l = light.expect("light");
        let (f, spec) = memo::light(
            old,
            &l.entries[name],
            l.touched,
            &mut reader,
            ws,
            &mut globs,
        );
        specs.insert(name.clone(), spec);
        light_fps.insert(name.clone(), f);
    }
    // ONBUILD in an image it builds on reads this service's context: all of it.
    let onbuild: Vec<(String, String)> = deps
        .iter()
        .flat_map(|(s, ds)| {
            ds.iter()
                .filter(|(d, _)| match specs.get(d) {
                    Some(x) => x.onbuild,
                    None => outside.same_state && outside.entries.get(d).is_some_and(|e| e.onbuild),
                })
                .map(move |(d, _)| (s.clone(), d.clone()))
        })
        .collect();
    for (s, d) in onbuild {
        let spec = specs.get_mut(&s).expect("listed");
        for c in &mut spec.components {
            if let Source::Filtered { filter, .. } = &mut c.source {
                if filter.sources.is_some() {
                    *filter = std::sync::Arc::new(inputs::Filter {
                        ignore: filter.ignore.clone(),
                        sources: None,
                    });
                }
            }
        }
        spec.notes.push(format!(
            "builds on `{d}`, whose Dockerfile has ONBUILD instructions that read this build's context: the whole context is an input"
        ));
    }
    for name in light_fps.keys() {
        let l = light.expect("light");
        deps.insert(name.clone(), l.entries[name].deps.clone());
    }
    let mut fps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: Vec<&String> = specs.keys().collect();
    while !pending.is_empty() {
        // Dependencies first; a cycle (refused when the config was read) is broken anywhere.
        let i = pending
            .iter()
            .position(|n| {
                deps[*n]
                    .iter()
                    .all(|(d, _)| digests.contains_key(d) || !specs.contains_key(d))
            })
            .unwrap_or(0);
        let name = pending.remove(i);
        let mut f: BTreeMap<String, String> = match light_fps.remove(name) {
            Some(f) => f,
            None => specs[name]
                .components
                .iter()
                .map(|c| (c.key.clone(), reader.fingerprint(c)))
                .collect(),
        };
        for (d, _) in &deps[name] {
            let v = digests
                .get(d)
                .or_else(|| outside.entries.get(d).map(|e| &e.digest))
                .cloned();
            f.insert(format!("from {d}"), v.unwrap_or_else(|| "-".into()));
        }
        digests.insert(name.clone(), inputs::digest(&f));
        fps.insert(name.clone(), f);
    }
    Side {
        specs,
        deps,
        fps,
        digests,
    }
}

/// What each service builds on: `depends_on`, and images of other services its Dockerfile
/// reads (an implicit dependency, unless it would close a cycle).
fn dependencies(
    services: &[&Service],
    index: &ImageIndex,
    outside: &Outside,
    specs: &mut BTreeMap<String, Spec>,
) -> BTreeMap<String, Vec<(String, String)>> {
    let mut deps: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for s in services {
        let list = deps.entry(s.name.clone()).or_default();
        for d in &s.depends_on {
            list.push((d.clone(), format!("depends_on {d}")));
        }
    }
    let reaches = |deps: &BTreeMap<String, Vec<(String, String)>>, from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n.clone()) {
                let known = match deps.get(&n) {
                    Some(d) => Some(d),
                    None if outside.same_state => outside.entries.get(&n).map(|e| &e.deps),
                    None => None,
                };
                stack.extend(known.into_iter().flatten().map(|(d, _)| d.clone()));
            }
        }
        false
    };
    for s in services {
        let dockerfile = s.dockerfile.display().to_string();
        let images = specs[&s.name].images.clone();
        for img in &images {
            let Some(d) = index.find(&img.reference) else {
                continue;
            };
            if d.name == s.name || deps[&s.name].iter().any(|(x, _)| *x == d.name) {
                continue;
            }
            if reaches(&deps, d.name, &s.name) {
                let note = format!(
                    "{dockerfile} line {} reads the image of service `{}`, which builds on this one: a cycle, so it is not treated as a dependency (fix the FROM lines)",
                    img.line, d.name
                );
                specs.get_mut(&s.name).expect("listed").notes.push(note);
                continue;
            }
            let why = format!(
                "{dockerfile} line {} reads the image of service `{}` ({})",
                img.line, d.name, img.reference
            );
            deps.get_mut(&s.name)
                .expect("listed")
                .push((d.name.to_string(), why));
        }
    }
    deps
}

/// A change to the configuration: the root manifest, a `service.toml`, or a path in
/// `services/` outside every service (one added or removed). Images may now name other
/// services.
fn config_changed<'d>(paths: &[String], ws: &str, dirs: impl Iterator<Item = &'d str>) -> bool {
    let root_toml = rp(ws, Path::new("Cargo.toml"));
    let dirs: Vec<&str> = dirs.collect();
    let services_dir = rp(ws, Path::new("services"));
    paths.iter().any(|p| {
        *p == root_toml
            || p.ends_with("/service.toml")
            || crate::globs::within(p, &services_dir)
                && dirs.iter().all(|d| !crate::globs::within(p, d))
    })
}

/// Services the changed paths may affect (each is then compared exactly), and the services
/// that build on them. Only services evaluated in this run can be (a memo's reuse has
/// already made sure no other is).
fn candidates(head: &Head, paths: &[String], ws: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let config_changed = config_changed(paths, ws, head.entries.values().map(|e| e.dir.as_str()));
    for (name, spec) in &head.side.specs {
        let hit = paths
            .iter()
            .any(|p| spec.components.iter().any(|c| c.covers(p)))
            || (config_changed && head.entries[name].images);
        if hit {
            out.insert(name.clone());
        }
    }
    memo::with_dependents(&head.entries, out)
}

/// `names` and every service they build on, transitively.
fn with_deps(
    mut names: BTreeSet<String>,
    entries: &BTreeMap<String, memo::Entry>,
) -> BTreeSet<String> {
    let mut stack: Vec<String> = names.iter().cloned().collect();
    while let Some(n) = stack.pop() {
        for (d, _) in entries.get(&n).into_iter().flat_map(|e| &e.deps) {
            if names.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    names
}

/// What the base side is asked for.
struct BaseAsk<'a, 'l> {
    prefix: &'a str,
    ws: &'a str,
    load: &'a Load<'l>,
    /// The services to evaluate (closed over what they build on).
    wanted: &'a BTreeSet<String>,
    head: &'a BTreeMap<String, memo::Entry>,
    /// The head came from this memo: services not evaluated again there are light here.
    memo: Option<(&'a memo::Memo, &'a MemoPlan)>,
}

/// The base side of `wanted`: their specs and digests at `tree`, and the services whose
/// configuration there cannot be read (with why); or why none can be. Dependencies outside
/// `wanted` take the head's digests.
fn base_side(
    repo: &git2::Repository,
    tree: &git2::Tree,
    ask: &BaseAsk,
) -> std::result::Result<(Side, BTreeMap<String, String>), String> {
    let snap = Snapshot::commit(repo, tree.clone());
    let files = CommitTree::new(repo, tree.clone(), ask.prefix.to_string());
    let outside = Outside {
        entries: ask.head,
        same_state: false,
    };
    // A service whose configuration cannot be read there cannot be compared; the others
    // still can (one at a time when reading them together fails, as --exhaustive, which
    // reads every service, would have it).
    type Loaded = (Workspace, BTreeMap<String, String>);
    let load = |only: &BTreeSet<String>| -> std::result::Result<Loaded, String> {
        let pkgs = crates::Crates::new(&snap, ask.ws)
            .map(|mut c| c.packages())
            .unwrap_or_default();
        let text = |e: anyhow::Error| {
            format!("{e:#}")
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let all = |n: &str| only.contains(n);
        let e = match (ask.load)(&files, pkgs.clone(), Some(&all)) {
            Ok(w) => return Ok((w, BTreeMap::new())),
            Err(e) if only.len() <= 1 => return Err(text(e)),
            Err(e) => text(e),
        };
        let mut merged: Option<Workspace> = None;
        let mut errors = BTreeMap::new();
        for name in only {
            let one = |n: &str| n == name;
            match (ask.load)(&files, pkgs.clone(), Some(&one)) {
                Ok(w) => match &mut merged {
                    Some(m) => m.services.extend(w.services),
                    None => merged = Some(w),
                },
                Err(e) => {
                    errors.insert(name.clone(), text(e));
                }
            }
        }
        let mut m = merged.ok_or(e)?;
        m.services.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((m, errors))
    };
    // With a memo, a service whose shape neither the change since the memo nor the change
    // compared touches has the components it has at the head: only its globs and what it
    // builds on are read at the base.
    if let Some((m, plan)) = ask.memo {
        let full: BTreeSet<String> = ask.wanted.intersection(&plan.full).cloned().collect();
        let names: BTreeSet<String> = ask.wanted.difference(&full).cloned().collect();
        if let Some(light) = Light::new(m, ask.head, &names, &plan.around_base) {
            let (model, errors) = if full.is_empty() {
                (None, BTreeMap::new())
            } else {
                let (m, e) = load(&full)?;
                (Some(m), e)
            };
            // Light ones are configured as at the head: their configuration is in their shape.
            let index = base_index(ask, model.iter().flat_map(|w| &w.services), &full);
            let side = evaluate(
                model.as_ref(),
                &snap,
                ask.ws,
                Some(&full),
                &outside,
                &index,
                Some(&light),
            );
            // Light services kept the ONBUILD of what they build on at the memo's state.
            if full.iter().all(|n| {
                errors.contains_key(n)
                    || ask.head.get(n).map(|e| e.onbuild) == side.specs.get(n).map(|s| s.onbuild)
            }) {
                return Ok((side, errors));
            }
        }
    }
    let (model, errors) = load(ask.wanted)?;
    let index = base_index(ask, &model.services, ask.wanted);
    let side = evaluate(
        Some(&model),
        &snap,
        ask.ws,
        Some(ask.wanted),
        &outside,
        &index,
        None,
    );
    Ok((side, errors))
}

/// Every service's image at the base: those `loaded` there, and the others as at the head —
/// a service the change does not reach (not wanted) is configured there as here, and so is
/// one read light. Wanted ones that were not `loaded` (new at the head) are not there.
fn base_index<'a>(
    ask: &'a BaseAsk,
    loaded: impl IntoIterator<Item = &'a Service>,
    evaluated: &BTreeSet<String>,
) -> ImageIndex<'a> {
    let mut owners: Vec<spec::Owner> = loaded.into_iter().map(spec::Owner::of).collect();
    owners.extend(
        ask.head
            .iter()
            .filter(|(n, _)| !evaluated.contains(*n))
            .map(|(n, e)| e.owner(n)),
    );
    ImageIndex::of(owners)
}

/// The head as `detect` reads it.
struct HeadState<'a, 'r> {
    repo: &'r git2::Repository,
    tree: &'a git2::Tree<'r>,
    /// Working-tree paths laid over `tree`.
    overlay: &'a [String],
    snap: &'a Snapshot<'r>,
    files: &'a dyn Files,
    ws: &'a str,
}

/// The head side: every service's entry, and the services evaluated in this run (all of
/// them, or with a memo those a change can reach) with their specs and fingerprints.
struct Head {
    /// The services loaded: all, or those evaluated in full (`None`: none).
    ws: Option<Workspace>,
    side: Side,
    entries: BTreeMap<String, memo::Entry>,
    /// What the memo keeps of each service evaluated in full in this run.
    records: BTreeMap<String, memo::Record>,
    /// The services read light from the memo.
    light: BTreeSet<String>,
    /// Entries other than the evaluated ones came from a memo.
    from_memo: bool,
}

impl Head {
    /// Entries for the services `ws_model` loaded and `side` evaluated, over `entries`.
    fn new(ws_model: Workspace, side: Side, mut entries: BTreeMap<String, memo::Entry>) -> Head {
        let mut records = BTreeMap::new();
        for svc in &ws_model.services {
            let Some(spec) = side.specs.get(&svc.name) else {
                continue;
            };
            let deps = side.deps[&svc.name].clone();
            let mut notes = spec.notes.clone();
            for (d, why) in &deps {
                if !svc.depends_on.contains(d) {
                    notes.push(format!("{why}: treated as depends_on = [\"{d}\"] (declare it in service.toml to make the build order explicit)"));
                }
            }
            let entry = memo::Entry {
                dir: spec.dir.clone(),
                digest: side.digests[&svc.name].clone(),
                notes,
                deps,
                images: !spec.images.is_empty(),
                onbuild: spec.onbuild,
                repository: svc.repository.clone(),
                registries: svc.registries.clone(),
                reach: Vec::new(),
                shape: Vec::new(),
            };
            let (reach, shape) = memo::reach(spec);
            records.insert(
                svc.name.clone(),
                memo::Record {
                    entry: entry.clone(),
                    reach,
                    shape,
                    fps: serde_json::to_string(&side.fps[&svc.name]).unwrap_or_default(),
                },
            );
            entries.insert(svc.name.clone(), entry);
        }
        Head {
            ws: Some(ws_model),
            side,
            entries,
            records,
            light: BTreeSet::new(),
            from_memo: false,
        }
    }

    /// A memo of this head (its records move into it); services not evaluated keep what
    /// `from` has.
    fn take_memo(
        &mut self,
        key: String,
        tree: String,
        overlay: Vec<String>,
        from: Option<&memo::Memo>,
    ) -> memo::Memo {
        let mut records = BTreeMap::new();
        for name in self.entries.keys() {
            let r = match self.records.remove(name) {
                Some(r) => Some(r),
                None => from.and_then(|m| {
                    let mut r = m.record(name, &self.entries[name])?;
                    if self.light.contains(name) {
                        r.fps = serde_json::to_string(self.side.fps.get(name)?).ok()?;
                    }
                    Some(r)
                }),
            };
            let Some(r) = r else {
                // Cannot happen (every entry is evaluated or from the memo); a memo that
                // cannot answer for every service is not written.
                return memo::Memo::new("-".into(), tree, overlay, BTreeMap::new());
            };
            records.insert(name.clone(), r);
        }
        memo::Memo::new(key, tree, overlay, records)
    }
}

/// Which services a memo answers for, and how.
struct MemoPlan {
    /// Evaluated again, on both sides: their shape is touched (since the memo, or by the
    /// change compared), and what builds on them.
    full: BTreeSet<String>,
    /// Read light at the head: their reach is touched, or what they build on changed.
    light: BTreeSet<String>,
    /// Paths that may differ between the memo's state and the head.
    since: Vec<String>,
    /// … and between the memo's state and the base.
    around_base: Vec<String>,
}

impl MemoPlan {
    /// Little enough to recompute on every call that the memo need not move to the head: a
    /// service in full costs about four read light.
    fn small(&self, services: usize) -> bool {
        self.full.len() * 4 + self.light.len() <= services && self.since.len() <= 1000
    }
}

/// The plan for a memo at `head`, comparing the change `compared`. `None` when the memo
/// cannot answer at all (see `memo.rs`).
fn memo_plan(
    m: &memo::Memo,
    head: &HeadState,
    compared: &[String],
    base: Option<git2::Oid>,
) -> Option<MemoPlan> {
    let mut since = if m.tree == head.tree.id().to_string() {
        Vec::new()
    } else if base.is_some_and(|b| m.tree == b.to_string()) {
        // The memo is at the base (the last call was there): the change compared is the
        // change since (with the head's working tree, added below anyway).
        compared.to_vec()
    } else {
        let old = head
            .repo
            .find_tree(git2::Oid::from_str(&m.tree).ok()?)
            .ok()?;
        diff::changed_paths(head.repo, Some(&old), Some(head.tree)).ok()?
    };
    since.extend(m.overlay.iter().cloned());
    since.extend(head.overlay.iter().cloned());
    since.sort();
    since.dedup();
    let services_dir = rp(head.ws, Path::new("services"));
    let dirs = m.dirs();
    if since
        .iter()
        .any(|p| memo::structural(p, &services_dir, &dirs))
    {
        return None;
    }
    // A path that differs between the memo's state and the base differs between one of
    // them and the head.
    let mut around_base = since.clone();
    around_base.extend(compared.iter().cloned());
    around_base.sort();
    around_base.dedup();
    let mut full = m.reached(&around_base, true);
    // Another service's configuration changed (at the base): the images a Dockerfile reads
    // may name other services there, so what it builds on is read again.
    if config_changed(compared, head.ws, dirs.iter().copied()) {
        full.extend(
            m.services
                .iter()
                .filter(|(_, e)| e.images)
                .map(|(n, _)| n.clone()),
        );
    }
    let mut seeds = m.reached(&since, false);
    seeds.extend(m.reached(compared, false));
    seeds.extend(full.iter().cloned());
    let light = m
        .with_dependents(seeds)
        .difference(&full)
        .cloned()
        .collect();
    Some(MemoPlan {
        full,
        light,
        since,
        around_base,
    })
}

/// The head from a memo and its plan (the memo's entries move into it). `None` when a
/// service does not load, builds on other services than it did (digests of others would
/// move), or its ONBUILD changed (the contexts of light services that build on it would).
fn incremental(
    m: &mut memo::Memo,
    plan: &MemoPlan,
    head: &HeadState,
    load: &Load,
    packages: Vec<Package>,
) -> Option<Head> {
    let loaded = if plan.full.is_empty() {
        None
    } else {
        let only = |n: &str| plan.full.contains(n);
        let w = load(head.files, packages, Some(&only)).ok()?;
        if w.services.len() != plan.full.len() {
            return None;
        }
        Some(w)
    };
    let side = {
        let light = Light::new(m, &m.services, &plan.light, &plan.since)?;
        let index = if plan.full.is_empty() {
            ImageIndex::of(Vec::new())
        } else {
            ImageIndex::of(m.services.iter().map(|(n, e)| e.owner(n)).collect())
        };
        let outside = Outside {
            entries: &m.services,
            same_state: true,
        };
        evaluate(
            loaded.as_ref(),
            head.snap,
            head.ws,
            Some(&plan.full),
            &outside,
            &index,
            Some(&light),
        )
    };
    let names = |deps: &[(String, String)]| -> BTreeSet<String> {
        deps.iter().map(|(d, _)| d.clone()).collect()
    };
    for name in &plan.full {
        let e = m.services.get(name)?;
        if names(&e.deps) != names(side.deps.get(name)?)
            || Some(e.onbuild) != side.specs.get(name).map(|s| s.onbuild)
        {
            return None;
        }
    }
    let mut entries = std::mem::take(&mut m.services);
    for name in &plan.light {
        entries.get_mut(name)?.digest = side.digests.get(name)?.clone();
    }
    let mut out = match loaded {
        Some(w) => Head::new(w, side, entries),
        None => Head {
            ws: None,
            side,
            entries,
            records: BTreeMap::new(),
            light: BTreeSet::new(),
            from_memo: true,
        },
    };
    out.light = plan.light.clone();
    out.from_memo = true;
    Some(out)
}

/// The components that differ between two states of a service, as reasons.
fn reasons(
    old_spec: &Spec,
    new_spec: &Spec,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    paths: &[String],
) -> Vec<String> {
    let find = |key: &str| -> Option<&Component> {
        new_spec
            .components
            .iter()
            .chain(old_spec.components.iter())
            .find(|c| c.key == key)
    };
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a == b {
            continue;
        }
        if let Some(d) = key.strip_prefix("from ") {
            out.push(match (a, b) {
                (None, _) => format!("builds on {d} now (depends_on or a FROM added)"),
                (_, None) => format!("no longer builds on {d}"),
                _ => format!("builds FROM {d}, which changed"),
            });
            continue;
        }
        let Some(c) = find(key) else {
            out.push(format!("{key} changed"));
            continue;
        };
        let hits: Vec<&String> = paths
            .iter()
            .filter(|p| match &c.source {
                Source::Filtered { root, filter } => inputs::rel_to(p, root)
                    .is_some_and(|r| filter.keeps(r) || filter.may_keep_below(r)),
                _ => c.covers(p) && !c.defined_by.contains(p),
            })
            .collect();
        let what = |label: &str| {
            if hits.is_empty() {
                label.to_string()
            } else {
                list(&hits)
            }
        };
        let text = match &c.kind {
            Kind::Context => format!("changed: {}", what("the build context")),
            Kind::Copied => format!("COPY source changed: {}", what("the build context")),
            Kind::Dockerfile | Kind::Ignore => match &c.source {
                Source::Path(p) => format!("changed: {p}"),
                _ => format!("{key} changed"),
            },
            Kind::Crate => {
                let dir = key.trim_start_matches("crate ");
                match (a, b) {
                    (None, _) => format!("dependency {dir} added"),
                    (_, None) => format!("dependency {dir} removed"),
                    _ if dir == new_spec.dir => format!("changed: {}", what(dir)),
                    _ => format!("dependency {dir} changed: {}", what(dir)),
                }
            }
            Kind::Lock => match (a, b, &c.source) {
                (Some(x), Some(y), Source::Value(_)) => format!(
                    "Cargo.lock: {}",
                    lock::describe(&spec::lock_set(x), &spec::lock_set(y))
                ),
                _ => "Cargo.lock changed".to_string(),
            },
            Kind::Setting => {
                let lines = |v: Option<&String>| -> BTreeMap<String, String> {
                    v.map(|v| {
                        v.lines()
                            .filter_map(|l| l.split_once('='))
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect()
                    })
                    .unwrap_or_default()
                };
                let (x, y) = (lines(a), lines(b));
                let names: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                let parts: Vec<String> = names
                    .into_iter()
                    .filter(|k| x.get(*k) != y.get(*k))
                    .map(|k| match (x.get(k), y.get(k)) {
                        (Some(o), Some(n)) if k != "tags" && k != "labels" => {
                            format!("setting `{k}`: {} → {}", spec::short(o), spec::short(n))
                        }
                        _ => format!("setting `{k}` changed"),
                    })
                    .collect();
                parts.join("; ")
            }
            Kind::Version => format!(
                "VERSION {} → {}",
                a.map_or("-", String::as_str),
                b.map_or("-", String::as_str)
            ),
            Kind::Toolchain => format!(
                "toolchain: {} changed",
                key.trim_start_matches("toolchain ")
            ),
            Kind::Manifest => {
                let s = spec::manifest_sections(
                    a.map_or("", String::as_str),
                    b.map_or("", String::as_str),
                );
                format!("Cargo.toml {} changed", s.join(", "))
            }
            Kind::Watch => format!(
                "watched ({}): {}",
                key.trim_start_matches("watch "),
                what("changed")
            ),
            Kind::Shared => format!("global: {}", what(key.trim_start_matches("shared "))),
            Kind::Attributes => format!(
                "changed: {} (it decides how files are checked out)",
                key.trim_start_matches("gitattributes ")
            ),
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    if out.is_empty() {
        out.push("its inputs changed".into());
    }
    out
}

/// Up to three paths, then how many more.
fn list<S: AsRef<str>>(paths: &[S]) -> String {
    let mut shown: Vec<&str> = paths.iter().take(3).map(|p| p.as_ref()).collect();
    let more = paths.len().saturating_sub(3);
    let more_text = format!("and {more} more");
    if more > 0 {
        shown.push(&more_text);
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests;
