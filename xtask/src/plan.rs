//! The plan: for each service, whether it is built and why, its image references, and the
//! exact steps. `plan::make` is a pure function of what was read before it; it never spawns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use semver::Version;
use serde::Serialize;

use crate::git::GitInfo;
use crate::services::{Service, Workspace};
use crate::tags::{self, TagContext};
use crate::tools::docker::{self, BuildOptions, Builder, Output};
use crate::tools::{cargo, CommandSpec};

/// Where the tool keeps what it produces, relative to the workspace root.
pub const WORK_DIR: &str = "target/slipway";

/// Everything `make` needs, all of it read from the world beforehand.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub workspace: &'a Workspace,
    /// Selected services with the reasons they were selected; the others are listed as skipped.
    pub selected: BTreeMap<String, Vec<String>>,
    pub version: &'a Version,
    pub git: &'a GitInfo,
    /// Seconds since the epoch for `created` and `{timestamp}`.
    pub created: i64,
    pub builder: Builder,
    pub docker: String,
    pub cargo: String,
    pub push: bool,
    /// `--platform`: replaces every service's platforms.
    pub platforms: Option<Vec<String>>,
    /// `--network` or `SLIPWAY_BUILD_NETWORK`: replaces the configured build network.
    pub network: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub base: Option<String>,
    pub head: Option<String>,
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
    /// Fully qualified references, every tag in every registry.
    pub images: Vec<String>,
    pub platforms: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Compile host binaries (one cargo invocation for all services).
    Compile { command: CommandSpec },
    /// Copy the service's context to `dest` and add the compiled binaries (`from` → `to`,
    /// `to` relative to `dest`).
    Stage {
        context: PathBuf,
        dest: PathBuf,
        files: Vec<(PathBuf, PathBuf)>,
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
    },
    /// Push one reference; its digest is read from the output.
    Push {
        command: CommandSpec,
        reference: String,
    },
}

impl Step {
    /// A short name for progress lines.
    pub fn label(&self) -> String {
        match self {
            Step::Compile { .. } => "compile".into(),
            Step::Stage { .. } => "stage context".into(),
            Step::Build { .. } => "build".into(),
            Step::Verify { .. } => "verify".into(),
            Step::Push { reference, .. } => format!("push {reference}"),
        }
    }
}

pub fn make(inp: &Inputs) -> Result<Plan> {
    let mut services = Vec::new();
    let mut bins: Vec<(String, String)> = Vec::new();
    let mut targets: Vec<&'static str> = Vec::new();
    for svc in &inp.workspace.services {
        let Some(reasons) = inp.selected.get(&svc.name) else {
            services.push(ServicePlan {
                name: svc.name.clone(),
                selected: false,
                reasons: vec!["not selected".into()],
                images: Vec::new(),
                platforms: svc.platforms.clone(),
                labels: BTreeMap::new(),
                steps: Vec::new(),
            });
            continue;
        };
        let sp = service_plan(inp, svc, reasons.clone())?;
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
    let mut prepare = Vec::new();
    if !bins.is_empty() {
        targets.sort();
        prepare.push(Step::Compile {
            command: cargo::build_static(&inp.cargo, &cargo_dir(), &targets, &bins),
        });
    }
    Ok(Plan {
        base: None,
        head: Some(inp.git.sha.clone()),
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
    let cx = TagContext {
        version: inp.version,
        git: inp.git,
        service: &svc.name,
        created: inp.created,
    };
    let mut tag_list: Vec<String> = Vec::new();
    for template in &svc.tags {
        if let Some(tag) = tags::render(template, &cx)
            .map_err(|e| anyhow::anyhow!("service `{}`: {e}", svc.name))?
        {
            if !tag_list.contains(&tag) {
                tag_list.push(tag);
            }
        }
    }
    if tag_list.is_empty() {
        bail!(
            "service `{}`: no tag template gives a tag here (tags: {}); add one that always applies, e.g. \"{{sha7}}\"",
            svc.name,
            svc.tags.join(", ")
        );
    }
    // Tags naming one commit go first, so a push cut short never leaves a moving tag (version,
    // branch) pointing at an image whose immutable tag is missing.
    tag_list.sort_by_key(|t| !t.contains(inp.git.sha7()));
    let images = references(svc, &tag_list);
    let mut info = inp.workspace.settings.labels.clone();
    info.title = svc.name.clone();
    info.description = svc.description.clone();
    let labels = tags::oci_labels(&cx, &info);
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
    let output = match (buildx, inp.push, platforms.len()) {
        (true, true, _) => Output::Push,
        (true, false, 1) | (false, _, _) => Output::Load,
        (true, false, _) => Output::CacheOnly,
    };
    let iidfile = out_dir.join("iid");
    let metadata_file = out_dir.join("metadata.json");
    let network = inp
        .network
        .clone()
        .or_else(|| inp.workspace.settings.network.clone())
        .filter(|n| n != "default");
    steps.push(Step::Build {
        command: docker::build(
            &inp.docker,
            &inp.builder,
            &BuildOptions {
                dockerfile: svc.dockerfile.clone(),
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
        });
    }
    if inp.push && !buildx {
        for r in &images {
            steps.push(Step::Push {
                command: docker::push(&inp.docker, r),
                reference: r.clone(),
            });
        }
    }
    Ok(ServicePlan {
        name: svc.name.clone(),
        selected: true,
        reasons,
        images,
        platforms,
        labels,
        steps,
    })
}

/// `registry/repository:tag` for every registry (or none: a local name) and tag.
pub fn references(svc: &Service, tags: &[String]) -> Vec<String> {
    let repos: Vec<String> = if svc.registries.is_empty() {
        vec![svc.repository.clone()]
    } else {
        svc.registries
            .iter()
            .map(|r| format!("{r}/{}", svc.repository))
            .collect()
    };
    repos
        .iter()
        .flat_map(|repo| tags.iter().map(move |t| format!("{repo}:{t}")))
        .collect()
}

#[cfg(test)]
mod tests;
