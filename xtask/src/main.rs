//! `cargo xtask`: parse the command line, build the shared context, dispatch.

mod changes;
mod cli;
mod cmd;
mod config;
mod context;
mod dockerfile;
mod exec;
mod files;
mod git;
mod github;
mod globs;
mod notify;
mod pipeline;
mod plan;
mod policy;
mod report;
mod services;
mod tags;
mod tools;
mod ui;
mod version;
mod world;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::EnvOverrides;
use crate::exec::Runner;
use crate::services::Workspace;
use crate::ui::Ui;

/// What every subcommand shares.
pub struct Ctx {
    pub root: PathBuf,
    pub ui: Ui,
    pub verbose: bool,
    pub env: EnvOverrides,
    /// Values of secret-bearing environment variables, masked in everything the runner shows.
    pub secrets: Vec<String>,
    /// The workspace packages, read once when first asked for.
    packages: std::sync::OnceLock<Vec<services::Package>>,
}

/// Environment variables whose values must never be shown.
const SECRET_VARS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "DOCKER_PASSWORD",
    "REGISTRY_PASSWORD",
    "COSIGN_PASSWORD",
    "COSIGN_PRIVATE_KEY",
];

impl Ctx {
    /// The runner for this invocation, masking the known secrets.
    pub fn runner(&self, dry_run: bool) -> Runner {
        let runner = Runner::new(self.root.clone(), dry_run, self.verbose);
        for s in &self.secrets {
            runner.add_secret(s.clone());
        }
        runner
    }

    /// Reads the configuration and discovers the services.
    pub fn workspace(&self) -> Result<Workspace> {
        Workspace::load(&self.root, &self.env, || self.packages().map(<[_]>::to_vec))
    }

    /// The workspace packages, read from the manifests on disk (nothing is spawned; a tidy
    /// test keeps the reader in agreement with `cargo metadata`).
    pub fn packages(&self) -> Result<&[services::Package]> {
        Ok(self
            .packages
            .get_or_init(|| changes::crates::disk_packages(&self.root)))
    }
}

/// The cargo that runs us (`$CARGO`), else the one on PATH.
pub fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = match root(cli.repo.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{} {e:#}", ui::paint("error:", 31));
            return ExitCode::FAILURE;
        }
    };
    let env = match EnvOverrides::from_lookup(|k| std::env::var(k).ok()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{} {e:#}", ui::paint("error:", 31));
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx {
        root,
        ui: Ui::new(
            cli.quiet,
            std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
        ),
        verbose: cli.verbose,
        env,
        secrets: SECRET_VARS
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .filter(|v| v.len() >= 4)
            .collect(),
        packages: std::sync::OnceLock::new(),
    };
    if matches!(
        cli.command,
        Command::Build(_) | Command::Push(_) | Command::Sign(_) | Command::Scan(_)
    ) {
        // Ctrl-C: start nothing more, clean up, report which services are complete; a second
        // one leaves at once.
        // Also SIGTERM (a CI cancel, `timeout`) and SIGHUP.
        let _ = ctrlc::set_handler(|| {
            if exec::interrupted() {
                exec::abort_cleanup();
                std::process::exit(130);
            }
            exec::interrupt();
            eprintln!(
                "\ninterrupted: finishing nothing new, cleaning up (Ctrl-C again to leave at once)"
            );
        });
    }
    let result = match cli.command {
        Command::List(args) => cmd::list::run(&ctx, &args),
        Command::Version(args) => cmd::version::run(&ctx, &args),
        Command::Build(args) => cmd::build::run(&ctx, &args),
        Command::Push(mut args) => {
            args.select.push = true;
            cmd::build::run(&ctx, &args)
        }
        Command::Sign(mut args) => {
            args.select.push = true;
            args.select.sign_only = true;
            cmd::build::sign(&ctx, &args)
        }
        Command::Scan(mut args) => {
            args.select.scan = true;
            cmd::build::run(&ctx, &args)
        }
        Command::Check(args) => cmd::check::run(&ctx, &args),
        Command::Status(args) => cmd::status::run(&ctx, &args),
        Command::Promote(args) => cmd::promote::run(&ctx, &args),
        Command::Ecr(args) => cmd::ecr::run(&ctx, &args),
        Command::Lint => cmd::lint::run(&ctx),
        Command::Plan(args) => cmd::plan::run(&ctx, &args),
        Command::Changed(args) => cmd::changed::run(&ctx, &args),
        Command::Bench(args) => cmd::bench::run(&ctx, &args),
        Command::Completions(args) => cmd::completions::run(&args),
        Command::Doctor(args) => cmd::doctor::run(&ctx, &args),
    };
    match result {
        Err(e) if exec::interrupted() => {
            eprintln!("{} {e:#}", ui::paint("error:", 31));
            ExitCode::from(130)
        }
        Ok(()) if ui::stdout_failed() => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{} {e:#}", ui::paint("error:", 31));
            ExitCode::FAILURE
        }
    }
}

/// `--repo`; else the Slipway workspace you stand in (from the current directory upwards, the
/// first `Cargo.toml` with `[workspace.metadata.images]`, as cargo finds its workspace); else
/// the workspace this binary was built in.
fn root(repo: Option<&Path>) -> Result<PathBuf> {
    let dir = match repo {
        Some(r) => r.to_path_buf(),
        None => match std::env::current_dir()
            .ok()
            .and_then(|cwd| find_workspace(&cwd))
        {
            Some(d) => d,
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("xtask has no parent directory")?
                .to_path_buf(),
        },
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("workspace {} does not exist", dir.display()))?;
    if !dir.join("Cargo.toml").is_file() {
        anyhow::bail!(
            "{} has no Cargo.toml: point --repo at a workspace root",
            dir.display()
        );
    }
    Ok(dir)
}

/// The nearest directory at or above `start` whose `Cargo.toml` has image configuration.
fn find_workspace(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|d| {
        let text = std::fs::read_to_string(d.join("Cargo.toml")).ok()?;
        let t: toml::Table = text.parse().ok()?;
        t.get("workspace")?
            .get("metadata")?
            .get("images")
            .map(|_| d.to_path_buf())
    })
}

#[cfg(test)]
mod tidy;
