//! `cargo xtask build`: read the world (git, VERSION, docker), make the plan, run it, report.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::cli::BuildArgs;
use crate::exec::Runner;
use crate::pipeline::{self, Options};
use crate::plan::{self, Inputs};
use crate::tools::{cargo, docker};
use crate::{config, git, report, version, Ctx};

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<()> {
    let ws = ctx.workspace()?;
    let selected: BTreeMap<String, Vec<String>> = if args.services.is_empty() {
        let why = if args.all {
            "--all"
        } else {
            "all services (none named)"
        };
        ws.services
            .iter()
            .map(|s| (s.name.clone(), vec![why.to_string()]))
            .collect()
    } else {
        ws.select(&args.services)?
            .into_iter()
            .map(|s| {
                (
                    s.name.clone(),
                    vec!["named on the command line".to_string()],
                )
            })
            .collect()
    };
    for p in &args.platform {
        config::check_platform(p).context("in --platform")?;
    }
    let network = match args.network.clone().or_else(|| std::env::var("SLIPWAY_BUILD_NETWORK").ok()) {
        Some(n) if ["default", "host", "none"].contains(&n.as_str()) => Some(n),
        Some(n) => bail!("build network `{n}` (from --network or SLIPWAY_BUILD_NETWORK): use default, host or none"),
        None => None,
    };
    let git = git::read(&ws.root)?;
    let version = version::read(&ws.root.join("VERSION"))?;
    let created = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse::<i64>().with_context(|| {
            format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds since 1970")
        })?,
        Err(_) => git.commit_time,
    };
    let runner = ctx.runner(args.dry_run);
    let (docker, builder) = detect_docker(&runner, args.builder.clone())?;
    ctx.ui.info(format!(
        "{} {} at {} ({}), builder: {}",
        if args.dry_run { "planning" } else { "building" },
        version,
        git.sha7(),
        git.branch.as_deref().unwrap_or("detached HEAD"),
        match &builder {
            docker::Builder::Buildx { .. } => "docker buildx",
            docker::Builder::Buildkit => "docker build (BuildKit)",
            docker::Builder::Classic => "docker build (classic)",
        }
    ));
    if builder == docker::Builder::Classic {
        ctx.ui.warn("the legacy builder is slower and builds only the host's platform; install the buildx plugin for BuildKit and multi-platform builds");
    }
    if git.dirty {
        ctx.ui.warn(format!(
            "the working tree has uncommitted changes: images are labelled with revision {} but built from the files as they are now",
            git.sha7()
        ));
    }
    let inputs = Inputs {
        workspace: &ws,
        selected,
        version: &version,
        git: &git,
        created,
        builder,
        docker,
        cargo: crate::cargo_program(),
        push: args.push,
        platforms: (!args.platform.is_empty()).then(|| args.platform.clone()),
        network,
    };
    let plan = plan::make(&inputs)?;
    if !args.dry_run {
        check_rust_targets(&runner, &plan)?;
    }
    let outcomes = pipeline::execute(
        &plan,
        &runner,
        &ctx.ui,
        &Options {
            jobs: args.jobs,
            keep_going: args.keep_going,
        },
    );
    if args.dry_run {
        return match outcomes.iter().find_map(|o| o.error.clone()) {
            Some(e) => bail!(e),
            None => Ok(()),
        };
    }
    report::finish(&outcomes, args.push, &ctx.ui)
}

/// The docker client and the builder it offers (`SLIPWAY_BUILDER` forces one).
fn detect_docker(
    runner: &Runner,
    builder_name: Option<String>,
) -> Result<(String, docker::Builder)> {
    let forced = std::env::var("SLIPWAY_BUILDER").ok();
    let program = match which::which("docker") {
        Ok(p) => p.display().to_string(),
        Err(_) if runner.dry_run => {
            let b = docker::Builder::choose(forced.as_deref().or(Some("buildx")), true, None, builder_name)?;
            return Ok(("docker".to_string(), b));
        }
        Err(_) => bail!("`docker` is not on PATH: install Docker (Debian: `apt-get install docker.io`), or run `scripts/stack.sh up` and source its environment"),
    };
    let buildx = runner
        .probe(&docker::buildx_version(&program))
        .map(|o| o.success())
        .unwrap_or(false);
    let client = runner
        .probe(&docker::client_version(&program))
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout.trim().to_string());
    let builder =
        docker::Builder::choose(forced.as_deref(), buildx, client.as_deref(), builder_name)?;
    Ok((program, builder))
}

/// Fails early, with the fix, when a platform needs a Rust target that is not installed.
fn check_rust_targets(runner: &Runner, plan: &plan::Plan) -> Result<()> {
    let needed: Vec<&str> = plan
        .prepare
        .iter()
        .filter_map(|s| match s {
            plan::Step::Compile { command } => Some(command),
            _ => None,
        })
        .flat_map(|c| {
            c.args
                .windows(2)
                .filter(|w| w[0] == "--target")
                .map(|w| w[1].as_str())
        })
        .collect();
    if needed.is_empty() {
        return Ok(());
    }
    let sysroot =
        runner.probe(&crate::tools::CommandSpec::new("rustc").args(["--print", "sysroot"]))?;
    let sysroot = sysroot.stdout.trim();
    for t in needed {
        let dir = std::path::Path::new(sysroot).join("lib/rustlib").join(t);
        if !dir.is_dir() {
            bail!(
                "Rust target {t} is not installed (needed for {}): run `rustup target add {t}` and install a linker for it, or drop that platform",
                plan.services.iter().filter(|s| s.selected && s.platforms.iter().any(|p| cargo::rust_target(p).ok() == Some(t))).map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}
