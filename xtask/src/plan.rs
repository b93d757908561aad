//! The plan: for each service, whether it is built and why, its image references, and the
//! exact steps. `plan::make` is a pure function of what was read before it; it never spawns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use semver::Version;
use serde::Serialize;

use crate::context::{BuildContext, Trigger};
use crate::policy::{self, LatestState};
use crate::services::{Service, Workspace};
use crate::tags::{self, TagContext};
use crate::tools::docker::{self, BuildOptions, Builder, Output};
use crate::tools::{cargo, CommandSpec};

/// Where the tool keeps what it produces, relative to the workspace root.
pub const WORK_DIR: &str = "target/slipway";

/// Whether a service is built, and why (or why not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub selected: bool,
    pub reasons: Vec<String>,
}

impl Selection {
    pub fn yes(reason: impl Into<String>) -> Selection {
        Selection {
            selected: true,
            reasons: vec![reason.into()],
        }
    }

    pub fn no(reason: impl Into<String>) -> Selection {
        Selection {
            selected: false,
            reasons: vec![reason.into()],
        }
    }
}

impl Inputs<'_> {
    fn selected(&self, name: &str) -> bool {
        self.selection.get(name).is_some_and(|s| s.selected)
    }
}

/// Everything `make` needs, all of it read from the world beforehand.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub workspace: &'a Workspace,
    /// Per service: selected or not, and why. A service missing here is "not selected".
    pub selection: BTreeMap<String, Selection>,
    /// The workspace VERSION (services with their own VERSION use theirs).
    pub version: &'a Version,
    pub context: &'a BuildContext,
    /// Seconds since the epoch for `created` and `{timestamp}`.
    pub created: i64,
    /// The build's start, for `{timestamp}` under `timestamp = "build"`.
    pub now: i64,
    /// `--env`, for `{env}` templates.
    pub env: Option<String>,
    /// Released versions (git tags) per service, for the release-line and `latest` checks.
    pub released: BTreeMap<String, Vec<Version>>,
    /// Released versions whose git tag points at the revision built (a re-run of a release).
    pub released_here: BTreeMap<String, Vec<Version>>,
    /// A shallow clone without tags: whether a version is released cannot be told from git.
    pub tags_unknown: bool,
    /// What `registry/repo:latest` points to now, per reference that would get it.
    pub latest: BTreeMap<String, LatestState>,
    /// Images of this repository's services each service's Dockerfile reads (FROM, COPY
    /// --from, mounts): (service, reference as written). Built first; pinned to this run's.
    pub implicit_deps: BTreeMap<String, Vec<(String, String)>>,
    /// Each service's input digest (recorded as a label).
    pub input_digests: BTreeMap<String, String>,
    /// What each selected service's commit tag holds now, per registry (when pushing).
    pub published: BTreeMap<String, Published>,
    pub skopeo: String,
    /// trivy, when installed.
    pub trivy: Option<String>,
    /// What stable version tags (`registry/repo:1.2.3`) hold now, when pushing.
    pub versions: BTreeMap<String, LatestState>,
    /// What branch tags (`registry/repo:main`) hold now, when pushing.
    pub branches: BTreeMap<String, LatestState>,
    pub builder: Builder,
    pub docker: String,
    pub cargo: String,
    pub push: bool,
    /// `--platform`: replaces every service's platforms.
    pub platforms: Option<Vec<String>>,
    /// `--network` or `SLIPWAY_BUILD_NETWORK`: replaces the configured build network.
    pub network: Option<String>,
    /// `cargo xtask scan`: scan whatever `scan.when` says.
    pub scan: bool,
    /// GitHub Actions' cache service is reachable (ACTIONS_RUNTIME_TOKEN is exposed).
    pub gha_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Bumped when a field changes meaning or goes away.
    pub schema_version: u32,
    /// The base change detection compared with (`--changed`), else null.
    pub base: Option<String>,
    pub head: Option<String>,
    pub context: BuildContext,
    pub version: String,
    pub builder: Builder,
    pub push: bool,
    /// Steps that run once before any service (the shared cargo build).
    pub prepare: Vec<Step>,
    /// Sorted by name.
    pub services: Vec<ServicePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServicePlan {
    pub name: String,
    pub selected: bool,
    pub reasons: Vec<String>,
    /// The version this service is built as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Fully qualified references, every tag in every registry.
    pub images: Vec<String>,
    /// Tags left out, each with why (a moving tag that may not move, a value missing here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub platforms: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Services whose image this one builds on (`depends_on`, and images its Dockerfile reads
    /// that a service of this repository produces): built first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// References to another service's image the Dockerfile reads (as written), with that
    /// service: when it is built in this run, the build reads the image this run made (by
    /// digest), never what the tag held before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub base_images: Vec<BaseImage>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseImage {
    pub reference: String,
    pub service: String,
    /// When that service is not built in this run: `repo@digest` published for this commit
    /// with its current inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
}

// A plan holds a handful of steps per service: boxing the health check's four commands
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Compile a package's host binaries (one cargo invocation per package).
    Compile { command: CommandSpec },
    /// Copy the service's context to `dest` and add the compiled binaries (`from` → `to`,
    /// `to` relative to `dest`).
    Stage {
        context: PathBuf,
        dest: PathBuf,
        files: Vec<(PathBuf, PathBuf)>,
    },
    /// Write the Dockerfile to `dest` with its Docker Hub bases read from `mirror`
    /// (`base_image_mirror`); the build reads `dest`.
    Mirror {
        dockerfile: PathBuf,
        dest: PathBuf,
        mirror: String,
        /// This repository's own images (repository paths): never redirected.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        keep: Vec<String>,
    },
    /// Build the image; `iidfile` and `metadata_file` are read afterwards.
    Build {
        command: CommandSpec,
        iidfile: PathBuf,
        metadata_file: Option<PathBuf>,
    },
    /// Inspect the built image: it must be for `platform` and, if `non_root`, not run as root.
    Verify {
        command: CommandSpec,
        platform: String,
        non_root: bool,
        /// `max_size` in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        max_size: Option<u64>,
    },
    /// Run the image's own HEALTHCHECK in a throwaway container and require `healthy` (within
    /// `timeout_secs`) before any push; an image without one is not checked.
    Health {
        run: CommandSpec,
        status: CommandSpec,
        logs: CommandSpec,
        remove: CommandSpec,
        timeout_secs: u64,
    },
    /// Scan the built image (trivy, one JSON report, converted to SARIF) and fail the service
    /// when a finding has a severity in `fail_on`: before any push.
    Scan {
        command: CommandSpec,
        report: PathBuf,
        sarif: CommandSpec,
        /// The report converted to a CycloneDX SBOM (`sbom_file`).
        sbom: CommandSpec,
        sbom_file: PathBuf,
        fail_on: Vec<String>,
    },
    /// Add `reference` to the image `from` was pushed as, registry-side, by the digest that
    /// push returned (`skopeo copy repo@digest`).
    CopyTag {
        from: String,
        reference: String,
        skopeo: String,
    },
    /// Sign what was pushed, by digest, in each repository, then verify it; the digests come
    /// from the pushes. A digest whose signature tag is already there is not signed again.
    Sign {
        repositories: Vec<String>,
        #[serde(skip)]
        signer: Option<crate::tools::cosign::Signer>,
        cosign: String,
        skopeo: String,
        recursive: bool,
    },
    /// Push one reference; its digest is read from the output.
    Push {
        command: CommandSpec,
        reference: String,
    },
    /// Put a reference on an image already in the registry, by digest (no build, no pull);
    /// no command when the reference is already there.
    Tag {
        command: Option<CommandSpec>,
        reference: String,
        digest: String,
    },
}

/// The label that records a service's content digest (its inputs less tags and registries) in
/// its image: what "already published" is read from.
pub const INPUT_LABEL: &str = "dev.slipway.input-digest";

/// An image found under a service's commit tag in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub digest: String,
    /// Its input-digest label.
    pub inputs: Option<String>,
}

impl Step {
    /// A short name for progress lines.
    pub fn label(&self) -> String {
        match self {
            Step::Compile { .. } => "compile".into(),
            Step::Stage { .. } => "stage context".into(),
            Step::Build { .. } => "build".into(),
            Step::Mirror { .. } => "base images from the mirror".into(),
            Step::Verify { .. } => "verify".into(),
            Step::Scan { .. } => "scan".into(),
            Step::Health { .. } => "health check".into(),
            Step::Sign { .. } => "sign".into(),
            Step::Push { reference, .. } => format!("push {reference}"),
            Step::Tag { reference, .. } => format!("tag {reference}"),
            Step::CopyTag { reference, .. } => format!("tag {reference}"),
        }
    }
}

pub fn make(inp: &Inputs) -> Result<Plan> {
    let mut services = Vec::new();
    let mut bins: Vec<(String, String)> = Vec::new();
    let mut targets: Vec<&'static str> = Vec::new();
    for svc in &inp.workspace.services {
        let selection = inp
            .selection
            .get(&svc.name)
            .cloned()
            .unwrap_or_else(|| Selection::no("not selected"));
        if !selection.selected {
            let reasons = selection.reasons;
            services.push(ServicePlan {
                name: svc.name.clone(),
                selected: false,
                reasons,
                version: None,
                images: Vec::new(),
                notes: Vec::new(),
                platforms: svc.platforms.clone(),
                labels: BTreeMap::new(),
                depends_on: Vec::new(),
                base_images: Vec::new(),
                steps: Vec::new(),
            });
            continue;
        }
        let sp = service_plan(inp, svc, selection.reasons)?;
        if let Some(c) = &svc.cargo {
            bins.push((c.package.clone(), c.bin.clone()));
            for p in &sp.platforms {
                let t = cargo::rust_target(p)?;
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        services.push(sp);
    }
    // One cargo invocation per package: built together, packages would share features
    // (cargo unifies them across `-p a -p b`), and one service's binary would depend on which
    // others happen to be selected — something its input digest cannot see.
    let mut prepare = Vec::new();
    targets.sort();
    let mut packages: Vec<&String> = bins.iter().map(|(p, _)| p).collect();
    packages.sort();
    packages.dedup();
    for pkg in packages {
        let own: Vec<(String, String)> = bins.iter().filter(|(p, _)| p == pkg).cloned().collect();
        prepare.push(Step::Compile {
            command: cargo::build_static(&inp.cargo, &cargo_dir(), &targets, &own),
        });
    }
    Ok(Plan {
        schema_version: crate::changes::SCHEMA_VERSION,
        base: None,
        head: Some(inp.context.revision.clone()),
        context: inp.context.clone(),
        version: inp.version.to_string(),
        builder: inp.builder.clone(),
        push: inp.push,
        prepare,
        services,
    })
}

fn cargo_dir() -> PathBuf {
    Path::new(WORK_DIR).join("cargo")
}

fn service_plan(inp: &Inputs, svc: &Service, reasons: Vec<String>) -> Result<ServicePlan> {
    let platforms = inp
        .platforms
        .clone()
        .unwrap_or_else(|| svc.platforms.clone());
    if platforms.len() > 1 && !inp.builder.multi_platform() {
        bail!(
            "service `{}`: {} platforms ({}) need `docker buildx`, which is not installed: install the buildx plugin (Debian/Ubuntu: docker-buildx-plugin from Docker's apt repository), or build one platform with --platform linux/amd64",
            svc.name,
            platforms.len(),
            platforms.join(", ")
        );
    }
    if inp.push && svc.registries.is_empty() {
        bail!(
            "service `{}`: --push needs a registry: set `registries` in [workspace.metadata.images] (Cargo.toml) or in {}/service.toml, or DOCKER_REGISTRY",
            svc.name,
            svc.dir.display()
        );
    }
    let tagged = service_tags(inp, svc)?;
    let cx = tag_context(inp, svc, &tagged.version);
    let mut notes = tagged.notes.clone();
    let repos = repositories(svc);
    let mut images = Vec::new();
    for repo in &repos {
        for t in &tagged.tags {
            let reference = format!("{repo}:{t}");
            if tagged.branch_tags.contains(t) {
                if let Some(LatestState::Present {
                    revision: Some(r),
                    ours_descends: Some(false),
                    ..
                }) = inp.branches.get(&reference)
                {
                    notes.push(format!(
                        "{reference}: holds {}, which this commit does not descend from (a newer build of the branch, or a re-run of an older one): a branch tag only moves forward",
                        tags::short_sha(r)
                    ));
                    continue;
                }
            }
            if tagged.version_tags.contains(t) {
                match inp.versions.get(&reference) {
                    Some(LatestState::Present {
                        revision: Some(r),
                        version,
                        ..
                    }) if *r != inp.context.revision => {
                        let why = format!(
                            "{reference}: holds the image of {} ({}); a released version never moves: bump VERSION",
                            tags::short_sha(r),
                            version.as_deref().unwrap_or("no version label")
                        );
                        if svc.policy.fail_on_released {
                            bail!("service `{}`: {why} (released_versions = \"fail\" in the tag policy)", svc.name);
                        }
                        notes.push(why);
                        continue;
                    }
                    Some(LatestState::Unknown(why)) => notes.push(format!(
                        "{reference}: could not read what it holds now ({why}); pushed as planned"
                    )),
                    _ => {}
                }
            }
            images.push(reference);
        }
        if tagged.latest {
            let reference = format!("{repo}:latest");
            let state = if svc.registries.is_empty() {
                LatestState::Absent
            } else {
                inp.latest
                    .get(&reference)
                    .cloned()
                    .unwrap_or_else(|| LatestState::Unknown("not read before planning".into()))
            };
            let released = inp
                .released
                .get(&svc.name)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let ancestry_only = svc.policy.latest == policy::LatestRule::DefaultBranch
                && matches!(inp.context.trigger, Trigger::Branch)
                && inp.context.is_default_branch;
            match policy::latest_verdict(&tagged.version, released, &state, ancestry_only) {
                Ok(()) => images.push(reference),
                Err(why) => notes.push(format!("{reference}: {why}")),
            }
        }
    }
    if images.is_empty() {
        bail!(
            "service `{}`: no tag applies here ({}); add a template that always applies, e.g. \"{{sha7}}\"",
            svc.name,
            notes.join("; ")
        );
    }
    let mut info = inp.workspace.settings.labels.clone();
    info.title = svc.name.clone();
    info.description = svc.description.clone();
    let mut labels = tags::oci_labels(&cx, &info);
    labels.extend(svc.labels.clone());
    if let Some(d) = inp.input_digests.get(&svc.name) {
        labels.insert(INPUT_LABEL.to_string(), d.clone());
    }
    let mut build_args = tags::standard_build_args(&cx);
    build_args.extend(svc.build_args.clone());

    let out_dir = Path::new(WORK_DIR).join("out").join(&svc.name);
    let mut steps = Vec::new();
    let context = match &svc.cargo {
        Some(c) => {
            let dest = Path::new(WORK_DIR).join("context").join(&svc.name);
            let mut files = Vec::new();
            for p in &platforms {
                let target = cargo::rust_target(p)?;
                files.push((
                    cargo::binary_path(&cargo_dir(), target, &c.bin),
                    Path::new("bin").join(cargo::arch_dir(p)).join(&c.bin),
                ));
            }
            steps.push(Step::Stage {
                context: svc.context.clone(),
                dest: dest.clone(),
                files,
            });
            dest
        }
        None => svc.context.clone(),
    };
    let buildx = inp.builder.multi_platform();
    let scan = &inp.workspace.settings.scan;
    let scanning = inp.scan
        || match scan.when.as_str() {
            "always" => true,
            "push" => inp.push,
            _ => false,
        };
    let output = match (buildx, inp.push, platforms.len()) {
        // Scanned before any tag exists: loaded, scanned, then pushed tag by tag.
        (true, true, 1) if scanning => Output::Load,
        (true, true, _) => Output::Push,
        (true, false, 1) | (false, _, _) => Output::Load,
        (true, false, _) => Output::CacheOnly,
    };
    if svc.attestations && output != Output::Push {
        notes.push(if buildx {
            "attestations: buildx attaches provenance and SBOM only when it pushes in the build; this image is loaded first (to be scanned), so the scan's CycloneDX SBOM is attached with cosign when signing is configured".to_string()
        } else {
            "attestations: need docker buildx (this builder cannot attach provenance or SBOM)".to_string()
        });
    }
    // buildx's layer cache: GitHub Actions' (scoped per service), or a tag in the registry
    // (written only by a push: a local build changes no registry).
    let cache: Option<(String, Option<String>)> = match inp.workspace.settings.build_cache.as_str()
    {
        _ if !buildx => None,
        "gha" if inp.gha_cache => {
            let scope = format!("slipway-{}", svc.name);
            Some((
                format!("type=gha,scope={scope}"),
                Some(format!("type=gha,mode=max,scope={scope}")),
            ))
        }
        "gha" => {
            notes.push("build_cache = \"gha\": GitHub Actions' cache is not reachable here (ACTIONS_RUNTIME_TOKEN unset: expose it with crazy-max/ghaction-github-runtime); building without it".into());
            None
        }
        "registry" if !repos.is_empty() && !svc.registries.is_empty() => {
            let r = format!("{}:buildcache", repos[0]);
            Some((
                format!("type=registry,ref={r}"),
                inp.push.then(|| {
                    format!(
                        "type=registry,ref={r},mode=max,image-manifest=true,oci-mediatypes=true"
                    )
                }),
            ))
        }
        _ => None,
    };
    let iidfile = out_dir.join("iid");
    let metadata_file = out_dir.join("metadata.json");
    let network = inp
        .network
        .clone()
        .or_else(|| inp.workspace.settings.network.clone())
        .filter(|n| n != "default");
    let dockerfile = match &inp.workspace.settings.base_image_mirror {
        Some(mirror) => {
            let dest = out_dir.join("Dockerfile");
            steps.push(Step::Mirror {
                dockerfile: svc.dockerfile.clone(),
                dest: dest.clone(),
                mirror: mirror.clone(),
                keep: inp
                    .workspace
                    .services
                    .iter()
                    .map(|s| s.repository.clone())
                    .collect(),
            });
            dest
        }
        None => svc.dockerfile.clone(),
    };
    steps.push(Step::Build {
        command: docker::build(
            &inp.docker,
            &inp.builder,
            &BuildOptions {
                dockerfile,
                context,
                tags: images.clone(),
                labels: labels.clone(),
                build_args,
                platforms: platforms.clone(),
                target: svc.target.clone(),
                network,
                output,
                iidfile: iidfile.clone(),
                metadata_file: metadata_file.clone(),
                attestations: svc.attestations && output == Output::Push,
                cache_from: cache.as_ref().map(|c| c.0.clone()),
                cache_to: cache.as_ref().and_then(|c| c.1.clone()),
            },
        ),
        iidfile,
        metadata_file: buildx.then_some(metadata_file),
    });
    if output == Output::Load {
        steps.push(Step::Verify {
            command: docker::inspect(&inp.docker, &images[0]),
            platform: platforms[0].clone(),
            non_root: svc.non_root,
            max_size: svc.max_size,
        });
    }
    if scanning {
        if output == Output::Push {
            bail!(
                "service `{}`: the scan gate runs before any tag is pushed, and a multi-platform buildx build pushes inside the build (push by digest, then tags after the gate, is not built yet): build one platform at a time (--platform), or set when = \"never\" under [workspace.metadata.images.scan]",
                svc.name
            );
        }
        let trivy = inp.trivy.as_deref().unwrap_or("trivy");
        let report = out_dir.join("scan.json");
        steps.push(Step::Scan {
            command: crate::tools::trivy::scan_image(
                trivy,
                &images[0],
                &report,
                &crate::tools::trivy::ScanOptions {
                    ignore_unfixed: scan.ignore_unfixed,
                    cache_dir: scan.cache_dir.clone(),
                },
            ),
            sarif: crate::tools::trivy::to_sarif(trivy, &report, &out_dir.join("scan.sarif")),
            sbom: crate::tools::trivy::to_cyclonedx(trivy, &report, &out_dir.join("sbom.cdx.json")),
            sbom_file: out_dir.join("sbom.cdx.json"),
            report,
            fail_on: scan.fail_on.clone(),
        });
    }
    if inp.push && output == Output::Load && svc.health_check {
        // Container names allow [a-zA-Z0-9_.-]; a service directory may hold anything.
        let name = format!(
            "slipway-health-{}-{}",
            svc.name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                })
                .collect::<String>(),
            tags::short_sha(&inp.context.revision)
        );
        steps.push(Step::Health {
            run: docker::run_detached(&inp.docker, &name, &images[0]),
            status: docker::health_status(&inp.docker, &name),
            logs: docker::logs(&inp.docker, &name),
            remove: docker::remove(&inp.docker, &name),
            timeout_secs: 60,
        });
    }
    if inp.push && output == Output::Load {
        // Per repository one push from the local Docker (the commit tag: unique to this
        // commit), the other tags copied registry-side from the digest it returned: a moving
        // tag in the shared local store never reaches a registry.
        for repo in &repos {
            let mine: Vec<&String> = images
                .iter()
                .filter(|r| r.rsplit_once(':').map(|(x, _)| x) == Some(repo.as_str()))
                .collect();
            let Some(first) = mine.first() else { continue };
            steps.push(Step::Push {
                command: docker::push(&inp.docker, first),
                reference: (*first).clone(),
            });
            for r in &mine[1..] {
                steps.push(Step::CopyTag {
                    from: (*first).clone(),
                    reference: (*r).clone(),
                    skopeo: inp.skopeo.clone(),
                });
            }
        }
    }
    if inp.push && !svc.registries.is_empty() {
        if let Some(signer) = &inp.workspace.settings.sign {
            steps.push(Step::Sign {
                repositories: repos.clone(),
                signer: Some(signer.clone()),
                cosign: "cosign".into(),
                skopeo: inp.skopeo.clone(),
                recursive: platforms.len() > 1,
            });
        }
    }
    // Idempotent: when every registry already holds an image with these inputs under the
    // commit tag, nothing is rebuilt: the missing tags are added by digest.
    if let Some(reuse) = reuse_steps(inp, svc, &tagged, &repos, &images) {
        notes.push(format!(
            "already published with the same inputs ({}): tags added by digest, nothing rebuilt",
            reuse.0
        ));
        let sign = steps.into_iter().filter(|s| matches!(s, Step::Sign { .. }));
        steps = reuse.1.into_iter().chain(sign).collect();
    }
    let mut depends_on = svc.depends_on.clone();
    let mut base_images = Vec::new();
    for (d, reference) in inp.implicit_deps.get(&svc.name).into_iter().flatten() {
        if !depends_on.contains(d) {
            depends_on.push(d.clone());
        }
        // A reference pinned by digest already names one image; one with a variable left
        // unresolved cannot be named (it is still built after its base).
        if !reference.contains('@') && !reference.contains('$') {
            let published = if inp.selected(d) {
                None
            } else {
                let found = base_published(inp, d, reference)?;
                if found.is_none() {
                    let why = format!(
                        "builds FROM {reference} (service `{d}`), which is not published for this commit with its current inputs"
                    );
                    if inp.push {
                        bail!(
                            "service `{}` {why}: its image would claim a base it was not built on; push both (cargo xtask push {d} {})",
                            svc.name,
                            svc.name
                        );
                    }
                    notes.push(format!(
                        "{why}: it reads whatever {reference} holds now (build {d} too)"
                    ));
                }
                found
            };
            base_images.push(BaseImage {
                reference: reference.clone(),
                service: d.clone(),
                published,
            });
        }
    }
    depends_on.sort();
    Ok(ServicePlan {
        name: svc.name.clone(),
        selected: true,
        reasons,
        version: Some(tagged.version.to_string()),
        images,
        notes,
        platforms,
        labels,
        depends_on,
        base_images,
        steps,
    })
}

/// `repo@digest` of base service `d` published under this commit's tag with its current
/// inputs, in the repository `reference` names (else any of its registries).
fn base_published(inp: &Inputs, d: &str, reference: &str) -> Result<Option<String>> {
    let Some(base) = inp.workspace.services.iter().find(|s| s.name == d) else {
        return Ok(None);
    };
    let Some(ours) = inp.input_digests.get(d) else {
        return Ok(None);
    };
    let sha7 = tags::short_sha(&inp.context.revision);
    let tagged = service_tags(inp, base)?;
    let Some(ct) = tagged.tags.iter().find(|t| t.contains(sha7)) else {
        return Ok(None);
    };
    let wanted = reference.rsplit_once(':').map(|(r, _)| r);
    let mut repos = repositories(base);
    repos.sort_by_key(|r| Some(r.as_str()) != wanted);
    Ok(repos.into_iter().find_map(|r| {
        inp.published
            .get(&format!("{r}:{ct}"))
            .filter(|p| p.inputs.as_deref() == Some(ours.as_str()))
            .map(|p| format!("{r}@{}", p.digest))
    }))
}

/// The commit-tag reference of a service in each registry (`repo:<sha7>`), whose image tells
/// whether this service is already published with the same inputs. Also of the services the
/// selected ones build on (what they will read).
pub fn commit_references(inp: &Inputs) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if !inp.push {
        return Ok(out);
    }
    let sha7 = tags::short_sha(&inp.context.revision);
    let bases: Vec<&String> = inp
        .implicit_deps
        .iter()
        .filter(|(s, _)| inp.selected(s))
        .flat_map(|(_, ds)| ds.iter().map(|(d, _)| d))
        .collect();
    for svc in &inp.workspace.services {
        if !(inp.selected(&svc.name) || bases.contains(&&svc.name)) || svc.registries.is_empty() {
            continue;
        }
        let tagged = service_tags(inp, svc)?;
        if let Some(ct) = tagged.tags.iter().find(|t| t.contains(sha7)) {
            out.extend(repositories(svc).into_iter().map(|r| format!("{r}:{ct}")));
        }
    }
    Ok(out)
}

/// Tag steps instead of build and push, when every registry holds an image with our input
/// digest under the commit tag. Returns the digest shown and the steps.
fn reuse_steps(
    inp: &Inputs,
    svc: &Service,
    tagged: &ServiceTags,
    repos: &[String],
    images: &[String],
) -> Option<(String, Vec<Step>)> {
    let ours = inp.input_digests.get(&svc.name)?;
    if !inp.push || svc.registries.is_empty() {
        return None;
    }
    let sha7 = tags::short_sha(&inp.context.revision);
    let ct = tagged.tags.iter().find(|t| t.contains(sha7))?;
    let mut found = BTreeMap::new();
    for r in repos {
        let p = inp.published.get(&format!("{r}:{ct}"))?;
        if p.inputs.as_deref() != Some(ours.as_str()) {
            return None;
        }
        found.insert(r.clone(), p.digest.clone());
    }
    let mut steps = Vec::new();
    for reference in images {
        let (repo, tag) = reference.rsplit_once(':')?;
        let digest = found.get(repo)?.clone();
        steps.push(Step::Tag {
            command: (tag != ct).then(|| {
                crate::tools::skopeo::copy(&inp.skopeo, &format!("{repo}@{digest}"), reference)
            }),
            reference: reference.clone(),
            digest,
        });
    }
    let shown = found.values().next()?.chars().take(19).collect();
    Some((shown, steps))
}

/// `registry/repository` for every registry, or the bare repository for local-only images.
pub fn repositories(svc: &Service) -> Vec<String> {
    if svc.registries.is_empty() {
        vec![svc.repository.clone()]
    } else {
        svc.registries
            .iter()
            .map(|r| format!("{r}/{}", svc.repository))
            .collect()
    }
}

/// A service's tags in this context, before `latest`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTags {
    pub version: Version,
    /// Rendered, deduplicated, commit tags first.
    pub tags: Vec<String>,
    /// `latest` is wanted (each registry's state still decides).
    pub latest: bool,
    /// Tags that name a stable version (`1.2.3`, `v1.2.3`): each registry's current image
    /// under them must be ours, or they do not move.
    pub version_tags: Vec<String>,
    /// Branch tags (`{branch}`, without a commit or a time in them): they move only forward.
    pub branch_tags: Vec<String>,
    pub notes: Vec<String>,
}

/// The version a service is built as: the release tag's, else its own VERSION, else the
/// workspace's.
pub fn service_version(inp: &Inputs, svc: &Service) -> Version {
    match &inp.context.trigger {
        Trigger::Release { version, .. } => version.clone(),
        _ => svc.version.clone().unwrap_or_else(|| inp.version.clone()),
    }
}

fn tag_context<'a>(inp: &'a Inputs, svc: &'a Service, version: &'a Version) -> TagContext<'a> {
    TagContext {
        version,
        revision: &inp.context.revision,
        branch: inp.context.branch.as_deref(),
        pr: match inp.context.trigger {
            Trigger::PullRequest { number, .. } => Some(number),
            _ => None,
        },
        tag: match &inp.context.trigger {
            Trigger::Tag { tag } => Some(tag.as_str()),
            _ => None,
        },
        env: inp.env.as_deref(),
        service: &svc.name,
        created: inp.created,
        timestamp: if svc.policy.timestamp_from_build {
            inp.now
        } else {
            inp.created
        },
    }
}

pub fn service_tags(inp: &Inputs, svc: &Service) -> Result<ServiceTags> {
    let version = service_version(inp, svc);
    let policy = &svc.policy;
    let wanted = policy::wanted(policy, inp.context, &version, svc.tags.as_deref());
    let cx = tag_context(inp, svc, &version);
    let released = inp
        .released
        .get(&svc.name)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut notes = wanted.notes.clone();
    let mut tags: Vec<String> = Vec::new();
    let prerelease = !version.pre.is_empty() || inp.context.marked_prerelease;
    let same = |v: &Version| v.cmp_precedence(&version).is_eq();
    let building_this_release = matches!(&inp.context.trigger, Trigger::Release { version: v, .. } if same(v))
        || inp
            .released_here
            .get(&svc.name)
            .is_some_and(|h| h.iter().any(same));
    let mut version_tags = Vec::new();
    let mut branch_tags = Vec::new();
    for template in &wanted.templates {
        // A released version is immutable: only a build of the commit its tag points at
        // writes it.
        if policy::is_version_template(template)
            && released.iter().any(same)
            && !building_this_release
        {
            let why = format!(
                "{template}: {version} is already released (git tag v{version}); a build of another commit does not move it: bump VERSION (cargo xtask version bump …)"
            );
            if policy.fail_on_released {
                bail!(
                    "service `{}`: {why} (released_versions = \"fail\" in the tag policy)",
                    svc.name
                );
            }
            notes.push(why);
            continue;
        }
        if policy::is_version_template(template) && inp.tags_unknown && !building_this_release {
            let why = format!(
                "{template}: this shallow clone has no git tags, so whether {version} is already released cannot be told (fetch tags: actions/checkout with fetch-depth: 0)"
            );
            if policy.fail_on_released {
                bail!(
                    "service `{}`: {why} (released_versions = \"fail\" in the tag policy)",
                    svc.name
                );
            }
            notes.push(why);
        }
        // Release lines (`2`, `2.0`) never point at a pre-release, wherever the template
        // came from (the policy, `tags`, DOCKER_TAGS); nor does a stable-looking
        // `{major}.{minor}.{patch}`.
        if prerelease && policy::is_stable_shaped(template) {
            notes.push(format!(
                "{template}: {} is a pre-release; release lines never point at one (tag a stable version to move them)",
                if version.pre.is_empty() { "this GitHub release".to_string() } else { version.to_string() }
            ));
            continue;
        }
        if policy::is_line_template(template) {
            if let Err(why) = policy::line_verdict(template, &version, released) {
                notes.push(why);
                continue;
            }
        }
        let rendered = tags::render(template, &cx)
            .map_err(|e| anyhow::anyhow!("service `{}`: {e}", svc.name))?;
        let Some(tag) = rendered else {
            // Say which value is missing here and how to supply it.
            let why = if template.contains("{env}") && inp.env.is_none() {
                let known = &inp.workspace.settings.environments;
                format!(
                    "{template}: needs --env ({})",
                    if known.is_empty() {
                        "configure `environments` under [workspace.metadata.images]".to_string()
                    } else {
                        format!("one of {}", known.join(", "))
                    }
                )
            } else if template.contains("{pr}") {
                format!("{template}: {{pr}} has a value only in pull requests")
            } else if template.contains("{tag}") {
                format!("{template}: {{tag}} has a value only for git tags that are not releases")
            } else {
                format!("{template}: {{branch}} has no value here (a detached HEAD or a tag)")
            };
            notes.push(why);
            continue;
        };
        let tag = format!("{tag}{}", wanted.suffix);
        tags::check_tag(&tag).map_err(|e| anyhow::anyhow!("service `{}`: {e}", svc.name))?;
        // A branch or git tag name must not pose as latest, a version, a release line or a
        // commit: `{branch}` of a branch called `1.2.0` would overwrite a release.
        if template.contains("{branch}") || template.contains("{tag}") {
            if let Some(what) = tags::reserved_shape(&tag) {
                notes.push(format!(
                    "{template}: renders `{tag}`, which looks like {what}: not written (rename the branch or tag, or use another template)"
                ));
                continue;
            }
        }
        if policy::is_version_template(template) && !prerelease && !version_tags.contains(&tag) {
            version_tags.push(tag.clone());
        }
        if template.contains("{branch}")
            && !template.contains("{sha")
            && !template.contains("{timestamp}")
            && !branch_tags.contains(&tag)
        {
            branch_tags.push(tag.clone());
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    // Tags naming one commit go first, so a push cut short never leaves a moving tag (version,
    // branch) pointing at an image whose immutable tag is missing.
    let sha7 = tags::short_sha(&inp.context.revision).to_string();
    tags.sort_by_key(|t| !t.contains(&sha7));
    Ok(ServiceTags {
        version,
        tags,
        latest: wanted.latest,
        version_tags,
        branch_tags,
        notes,
    })
}

/// The branch tags a push would move, so what they hold now can be read first.
pub fn branch_candidates(inp: &Inputs) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if !inp.push {
        return Ok(out);
    }
    for svc in &inp.workspace.services {
        if !inp.selected(&svc.name) || svc.registries.is_empty() {
            continue;
        }
        let tagged = service_tags(inp, svc)?;
        for repo in repositories(svc) {
            out.extend(tagged.branch_tags.iter().map(|t| format!("{repo}:{t}")));
        }
    }
    Ok(out)
}

/// The stable version tags a push would write, so what they hold now can be read first.
pub fn version_candidates(inp: &Inputs) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if !inp.push {
        return Ok(out);
    }
    for svc in &inp.workspace.services {
        if !inp.selected(&svc.name) {
            continue;
        }
        let tagged = service_tags(inp, svc)?;
        for repo in repositories(svc) {
            out.extend(tagged.version_tags.iter().map(|t| format!("{repo}:{t}")));
        }
    }
    Ok(out)
}

/// The `registry/repo:latest` references the plan would move, so their current state can be
/// read before planning.
pub fn latest_candidates(inp: &Inputs) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for svc in &inp.workspace.services {
        if !inp.selected(&svc.name) || svc.registries.is_empty() {
            continue;
        }
        if service_tags(inp, svc)?.latest {
            out.extend(repositories(svc).into_iter().map(|r| format!("{r}:latest")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
