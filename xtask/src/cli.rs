//! The command-line grammar (clap derive). The `///` comments are the help text; no logic here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Slipway: build, tag and publish every container image in this monorepo.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SLIPWAY_COMMIT"), ")"),
    propagate_version = true,
    after_help = "Examples:\n  cargo xtask changed                     what my change selects, and why\n  cargo xtask build --changed             build it into the local Docker\n  cargo xtask plan --json                 the plan, for scripts\n  make container-build-api                the same through make"
)]
pub struct Cli {
    /// Workspace to work on (default: the one you stand in, else the one this xtask is from).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub repo: Option<PathBuf>,
    /// Print every command before it runs.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub verbose: bool,
    /// Only errors on stderr.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the services: image names, platforms, Dockerfile and context.
    #[command(after_help = "Example:\n  cargo xtask list --json | jq '.services[].name'")]
    List(ListArgs),
    /// Print, check or bump the release version (the VERSION file).
    #[command(after_help = "Example:\n  cargo xtask version bump minor --dry-run")]
    Version(VersionArgs),
    /// Build the services' images (and push them with --push).
    #[command(
        after_help = "Examples:\n  cargo xtask build api --platform linux/arm64\n  cargo xtask build --changed --push -j 4 --keep-going"
    )]
    Build(BuildArgs),
    /// Build and push every tag to the registries: the same pipeline as `build --push`.
    #[command(
        after_help = "Examples:\n  cargo xtask push --changed -j 4 --keep-going\n  cargo xtask push api --dry-run"
    )]
    Push(BuildArgs),
    /// Sign (and verify) what `push` published for this commit, by digest, without building
    /// or pushing: for images pushed before signing was configured, or a signing that failed.
    #[command(after_help = "Example:\n  cargo xtask sign --all --dry-run")]
    Sign(BuildArgs),
    /// Build into the local Docker and scan (the gate, the reports, SARIF), never push:
    /// what a pull request runs.
    #[command(after_help = "Example:\n  cargo xtask scan --changed --keep-going")]
    Scan(BuildArgs),
    /// What the registries hold for a commit (default HEAD) or a version, per service and
    /// registry: digest, platforms, size, signed, SBOM, ECR scan, environments. Fails when a
    /// service has no image.
    #[command(
        disable_version_flag = true,
        after_help = "Examples:\n  cargo xtask status --json\n  cargo xtask status api --version 1.4.0\n  cargo xtask status --ref origin/main --wait 120"
    )]
    Status(StatusArgs),
    /// Give the image an environment runs the next environment's tag, by digest: checked
    /// (signed, scan passed), never rebuilt or pulled; prints every reference it moved.
    #[command(
        disable_version_flag = true,
        after_help = "Examples:\n  cargo xtask promote api --from staging --to prod\n  make promote SERVICE=api FROM=staging TO=prod"
    )]
    Promote(PromoteArgs),
    /// ECR repositories as code: scanning, encryption, tag mutability, tags and the lifecycle
    /// policy from [workspace.metadata.images.ecr], compared with ECR (`plan`) or made so
    /// (`apply`, idempotent).
    #[command(
        after_help = "Examples:\n  cargo xtask ecr plan\n  cargo xtask ecr plan --format terraform > ecr.tf\n  cargo xtask ecr apply"
    )]
    Ecr(EcrArgs),
    /// hadolint on every Dockerfile, zizmor and actionlint on the GitHub workflows, and the
    /// configuration: every finding as file:line (annotations under GitHub Actions).
    #[command(after_help = "Example:\n  cargo xtask lint")]
    Lint,
    /// Fast checks before any build, each problem with its file and line: VERSION files,
    /// Cargo.lock present and in sync, git dependencies pinned by rev, base images pinned,
    /// and a source scan (trivy fs: lockfiles, secrets, misconfigurations).
    #[command(after_help = "Example:\n  cargo xtask check --no-source-scan")]
    Check(CheckArgs),
    /// Show what a build would do: per service, selected or not and why, every image
    /// reference, and the exact commands.
    #[command(
        after_help = "Examples:\n  cargo xtask plan --changed\n  cargo xtask plan --matrix --changed   (a GitHub Actions matrix)"
    )]
    Plan(PlanArgs),
    /// Which services a change selects, and why: every service's input digest compared
    /// between the base and the head.
    #[command(after_help = "Example:\n  cargo xtask changed --base origin/main --json")]
    Changed(ChangedArgs),
    /// Which tools the configuration needs, their versions, and the fix for each problem.
    #[command(
        after_help = "Example:\n  cargo xtask doctor --json | jq '.checks[] | select(.status != \"ok\")'"
    )]
    Doctor(DoctorArgs),
    /// Shell completions for bash, zsh, fish, elvish or powershell, on stdout.
    #[command(
        after_help = "Example:\n  cargo xtask completions bash > ~/.local/share/bash-completion/completions/cargo-xtask"
    )]
    Completions(CompletionsArgs),
    /// Benchmarks, on demand (never part of the tests).
    #[command(after_help = "Example:\n  cargo run --release -p xtask -- bench changes --runs 15")]
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// The commit whose image is looked for, by its `{sha7}` tag (default: HEAD).
    #[arg(long = "ref", value_name = "REF", conflicts_with = "version")]
    pub r#ref: Option<String>,
    /// A released version's tag instead (`1.4.0`).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Wait up to SECS for ECR scans still in progress.
    #[arg(long, value_name = "SECS")]
    pub wait: Option<u64>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The services to promote.
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
    /// The environment whose image is promoted.
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// The environment that gets it.
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// `{version}` in `environment_tag` (default: the service's VERSION).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Print what would move, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also one JSON object on stdout with every reference moved.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EcrArgs {
    #[command(subcommand)]
    pub action: Option<EcrAction>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EcrAction {
    /// What would change (create / update / unchanged / drift), with the differences.
    Plan {
        /// `text`, or `terraform` (aws_ecr_repository and aws_ecr_lifecycle_policy).
        #[arg(long, value_enum, default_value_t = EcrFormat::Text)]
        format: EcrFormat,
    },
    /// Create or update every repository to match; a second apply changes nothing.
    Apply,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EcrFormat {
    Text,
    Terraform,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Leave out the source scan (trivy fs).
    #[arg(long)]
    pub no_source_scan: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    pub what: BenchTarget,
    /// Repository sizes in files (500 services each).
    #[arg(long, value_delimiter = ',', default_values_t = [25_000usize, 100_000, 300_000])]
    pub files: Vec<usize>,
    /// Timed runs per measurement.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Where the synthetic repositories are made (and reused).
    #[arg(long, default_value_os_t = crate::cmd::bench::default_dir())]
    pub dir: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchTarget {
    /// `changed` against `git diff --name-only`.
    Changes,
    /// The publish pipeline on the local stack: overhead, nothing-to-do runs, -j 1 vs -j 2.
    Push,
}

/// Where a change is measured from and to.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Compare against the merge-base with this ref (default: from the CI event, else the
    /// merge-base with the default branch).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// The commit to compare (default: the CI commit, else HEAD plus the working tree).
    #[arg(long, value_name = "REF")]
    pub head: Option<String>,
    /// Fail instead of selecting everything when the base cannot be had.
    #[arg(long)]
    pub strict: bool,
    /// Compare the input digests of every service at base and head, not only of those the
    /// changed paths reach (slower; the answer is the same — the tests check it).
    #[arg(long)]
    pub exhaustive: bool,
}

#[derive(Debug, Args)]
pub struct ChangedArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// One JSON object on stdout: base, head and every service with its reasons.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    #[command(subcommand)]
    pub action: Option<VersionAction>,
}

#[derive(Debug, Subcommand)]
pub enum VersionAction {
    /// Check that VERSION (and every services/<name>/VERSION) is valid semver.
    Check,
    /// Raise the version and write it back to VERSION.
    Bump {
        /// Which part: major, minor, patch, or pre (the pre-release counter).
        part: BumpPart,
        /// Print the new version without writing it.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BumpPart {
    Major,
    Minor,
    Patch,
    Pre,
}

/// Which services, and how their images are made (shared by `build` and `plan`).
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Services (default: all of them; a release tag picks its own; with --changed, the
    /// changed ones among these).
    #[arg(value_name = "SERVICE", conflicts_with = "all")]
    pub services: Vec<String>,
    /// Every service.
    #[arg(long, conflicts_with = "changed")]
    pub all: bool,
    /// Only the services the change selects (see `cargo xtask changed`).
    #[arg(long)]
    pub changed: bool,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Push every tag to the configured registries (default: load into the local Docker).
    #[arg(long)]
    pub push: bool,
    /// Set by `sign`: read what is published, change nothing in the registries.
    #[arg(skip)]
    pub sign_only: bool,
    /// Set by `scan`: build into the local Docker and scan, whatever `scan.when` says.
    #[arg(skip)]
    pub scan: bool,
    /// Platforms to build, comma-separated (overrides the configuration), e.g. linux/arm64.
    #[arg(long, value_delimiter = ',', value_name = "PLATFORM")]
    pub platform: Vec<String>,
    /// Network for RUN steps: default, host or none (also SLIPWAY_BUILD_NETWORK).
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// The buildx builder to use (remote, kubernetes, docker-container drivers).
    #[arg(long, value_name = "NAME")]
    pub builder: Option<String>,
    /// Environment for `{env}` tag templates (one of `environments` in the config).
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Print the exact commands, shell-quoted, instead of running them.
    #[arg(long)]
    pub dry_run: bool,
    /// How many services to build at once (at least 1).
    #[arg(short, long, default_value_t = 2, value_name = "N", value_parser = jobs)]
    pub jobs: usize,
    /// Keep building the other services after one fails; report every failure at the end.
    #[arg(long)]
    pub keep_going: bool,
    /// One JSON object on stdout (every service's result, digests, tags, size,
    /// vulnerabilities, signatures, log) instead of the references.
    #[arg(long, conflicts_with = "dry_run")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// One JSON object on stdout: base, head, context and every service.
    #[arg(long, conflicts_with = "matrix")]
    pub json: bool,
    /// A GitHub Actions matrix (`{"include": [...]}`) of the selected services; under GitHub
    /// Actions also `matrix` and `count` in $GITHUB_OUTPUT (skip the fan-out when count is 0).
    #[arg(long)]
    pub matrix: bool,
    /// With --matrix: one entry per service and platform (for native runners per
    /// architecture), each with a single `platform`.
    #[arg(long, requires = "matrix")]
    pub per_platform: bool,
}

/// `-j N`: a whole number, at least 1 (as cargo: `-j 0` is an error, not "unlimited").
fn jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("-j 0 builds nothing: give at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}
