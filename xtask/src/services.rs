//! The service model: every `services/<name>/` with a Dockerfile, with its settings resolved
//! from the global config, its `service.toml` and the environment (in that order of strength).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use toml::Spanned;

use crate::config::{self, EnvOverrides, GlobalConfig, Source};
use crate::files::{Disk, Files};
use crate::policy::{LatestRule, TagPolicy};
use crate::tags::{self, LabelInfo};

/// The whole repository as the tool sees it.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub settings: Settings,
    /// Sorted by name.
    pub services: Vec<Service>,
}

/// Global settings after the environment overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub registries: Vec<String>,
    pub prefix: Option<String>,
    pub platforms: Vec<String>,
    /// Explicit tag templates (`tags` or `DOCKER_TAGS`); `None` = the tag policy decides.
    pub tags: Option<Vec<String>>,
    pub labels: LabelInfo,
    pub build_args: BTreeMap<String, String>,
    pub network: Option<String>,
    /// `labels` from the global section.
    pub extra_labels: BTreeMap<String, String>,
    pub policy: Arc<TagPolicy>,
    pub default_branch: Option<String>,
    pub environments: Vec<String>,
    /// Globs whose change selects every service.
    pub shared_paths: Vec<String>,
    /// What was tidied while reading (duplicates dropped), for warnings.
    pub notes: Vec<String>,
    /// Registries that log in the ECR way besides ECR's own hosts.
    pub ecr_login: Vec<String>,
    /// Registries logged in to with a token from the environment.
    pub logins: Vec<TokenLogin>,
    pub scan: ScanPolicy,
    /// How pushed images are signed; `None`: not signed.
    pub sign: Option<crate::tools::cosign::Signer>,
    /// Docker Hub base images are read from here instead (`base_image_mirror`).
    pub base_image_mirror: Option<String>,
    /// The tag of an environment's image: `{env}`, `{service}` and `{version}` filled in.
    pub environment_tag: String,
    /// An environment's repository (`{repository}`, `{env}`), when environments have their own.
    pub environment_repository: Option<String>,
    pub check: CheckPolicy,
    pub notify: Option<Notify>,
    /// How ECR repositories are set up (`ecr plan|apply`).
    pub ecr: EcrPolicy,
    /// buildx layer cache: `none`, `gha` or `registry`.
    pub build_cache: String,
}

/// The desired state of every ECR repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrPolicy {
    pub scan_on_push: bool,
    /// `AES256` or `KMS`.
    pub encryption: String,
    pub kms_key: Option<String>,
    pub tag_mutability: String,
    pub mutability_exclusions: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// The lifecycle policy text (ECR's JSON) from the settings, unless `lifecycle_file`.
    pub lifecycle_policy: String,
    /// A policy file (relative to the workspace root), read by `ecr` itself.
    pub lifecycle_file: Option<String>,
}

impl Default for EcrPolicy {
    fn default() -> Self {
        EcrPolicy {
            scan_on_push: true,
            encryption: "AES256".into(),
            kms_key: None,
            tag_mutability: "MUTABLE".into(),
            mutability_exclusions: Vec::new(),
            tags: BTreeMap::new(),
            lifecycle_policy: default_lifecycle("v", 10, 7),
            lifecycle_file: None,
        }
    }
}

/// Seed 001's policy: keep the last `keep` images tagged `prefix…`, expire untagged ones after
/// `days` days. Other tags (branches, cache, signatures) are never touched.
pub fn default_lifecycle(prefix: &str, keep: u32, days: u32) -> String {
    serde_json::json!({"rules": [
        {"rulePriority": 1, "description": format!("keep the last {keep} {prefix}-tagged images"),
         "selection": {"tagStatus": "tagged", "tagPrefixList": [prefix], "countType": "imageCountMoreThan", "countNumber": keep},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": format!("expire untagged images after {days} days"),
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": days},
         "action": {"type": "expire"}}
    ]})
    .to_string()
}

impl Settings {
    /// The repositories (`registry/path`) holding `env`'s images of `svc`: its own ones when
    /// `environment_repository` is set, else the service's.
    pub fn environment_repositories(&self, svc: &Service, env: &str) -> Vec<String> {
        match &self.environment_repository {
            None => crate::plan::repositories(svc),
            Some(t) => {
                let repo = t
                    .replace("{repository}", &svc.repository)
                    .replace("{env}", env);
                svc.registries
                    .iter()
                    .map(|r| format!("{r}/{repo}"))
                    .collect()
            }
        }
    }

    /// The tag of `env`'s image for a service (`environment_tag`).
    pub fn environment_tag(&self, env: &str, service: &str, version: &str) -> String {
        self.environment_tag
            .replace("{env}", env)
            .replace("{service}", service)
            .replace("{version}", version)
    }
}

/// What `cargo xtask check` requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPolicy {
    pub require_digests: bool,
    pub source_scan: bool,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            require_digests: false,
            source_scan: true,
        }
    }
}

/// Where and when a run's summary is posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub webhook_env: String,
    /// `teams` or `slack`.
    pub format: String,
    /// Every run, not only failed ones.
    pub always: bool,
}

/// `docker login` to `registry` (a host) with a password from `password_env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLogin {
    pub registry: String,
    pub username: LoginUser,
    pub password_env: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginUser {
    Name(String),
    FromEnv(String),
}

/// When images are scanned and what fails them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPolicy {
    /// `push`, `always` or `never`.
    pub when: String,
    pub fail_on: Vec<String>,
    pub ignore_unfixed: bool,
    pub cache_dir: Option<String>,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        ScanPolicy {
            when: "push".into(),
            fail_on: vec!["CRITICAL".into()],
            ignore_unfixed: false,
            cache_dir: None,
        }
    }
}

const SEVERITIES: &[&str] = &["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];

fn signer(c: Option<config::SignConfig>) -> Result<Option<crate::tools::cosign::Signer>> {
    use crate::tools::cosign::Signer;
    let Some(c) = c.filter(|c| c.enabled.unwrap_or(true)) else {
        return Ok(None);
    };
    let table = "Cargo.toml [workspace.metadata.images.sign]";
    let given = |v: Option<String>, field: &str| -> Result<Option<String>> {
        match v {
            Some(v) if v.trim().is_empty() => bail!("{table}: `{field}` is empty"),
            v => Ok(v),
        }
    };
    let key = given(c.key, "key")?;
    let public_key = given(c.public_key, "public_key")?;
    let identity = given(c.identity, "identity")?;
    let issuer = given(c.issuer, "issuer")?;
    Ok(Some(match (key, identity, issuer) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => bail!(
            "{table}: set either `key` (signing with a key) or `identity` and `issuer` (keyless), not both"
        ),
        (Some(key), None, None) => {
            // cosign's key pair is `x.key` + `x.pub`; a KMS URI verifies with itself.
            let public = match public_key {
                Some(p) => p,
                None if key.ends_with(".key") => format!("{}.pub", &key[..key.len() - 4]),
                None if key.contains("://") && !key.starts_with("env://") => key.clone(),
                None => bail!(
                    "{table}: `key = \"{key}\"` needs `public_key` too (the key that verifies its signatures)"
                ),
            };
            Signer::Key { key, public }
        }
        (None, identity, issuer) => {
            if public_key.is_some() {
                bail!("{table}: `public_key` goes with `key`; keyless signing is verified by `identity` and `issuer`");
            }
            match (identity, issuer) {
                (Some(identity), Some(issuer)) => Signer::Keyless { identity, issuer },
                (Some(_), None) => bail!("{table}: keyless signing needs `issuer` too (e.g. https://token.actions.githubusercontent.com)"),
                (None, Some(_)) => bail!("{table}: keyless signing needs `identity` too (e.g. https://github.com/OWNER/REPO/.github/workflows/publish.yml@refs/heads/main)"),
                (None, None) => bail!(
                    "{table}: set `key` (a file, env://VAR or a KMS URI), or `identity` and `issuer` for keyless signing"
                ),
            }
        }
    }))
}

fn scan_policy(c: Option<config::ScanConfig>, src: &Source) -> Result<ScanPolicy> {
    let mut p = ScanPolicy::default();
    let Some(c) = c else { return Ok(p) };
    if let Some(w) = &c.when {
        if !["push", "always", "never"].contains(&w.get_ref().as_str()) {
            return Err(src.error_at(w, "scan.when must be `push`, `always` or `never`"));
        }
        p.when = w.get_ref().clone();
    }
    if let Some(list) = &c.fail_on {
        check_each(src, list, |s| {
            if SEVERITIES.contains(&s) {
                Ok(())
            } else {
                bail!("severity `{s}`: use {}", SEVERITIES.join(", "))
            }
        })?;
        p.fail_on = strings(list);
    }
    p.ignore_unfixed = c.ignore_unfixed.unwrap_or(false);
    p.cache_dir = c.cache_dir;
    Ok(p)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    /// Repository path under each registry, e.g. `slipway/api`.
    pub repository: String,
    /// Paths relative to the workspace root.
    pub dir: PathBuf,
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub registries: Vec<String>,
    pub platforms: Vec<String>,
    /// Explicit tag templates; `None` = the tag policy decides.
    pub tags: Option<Vec<String>>,
    pub build_args: BTreeMap<String, String>,
    /// Extra labels (global, then the service's).
    pub labels: BTreeMap<String, String>,
    /// The global tag policy with this service's overrides.
    #[serde(skip)]
    pub policy: Arc<TagPolicy>,
    /// `services/<name>/VERSION`, when the service is versioned on its own.
    pub version: Option<semver::Version>,
    pub target: Option<String>,
    pub description: Option<String>,
    pub non_root: bool,
    pub port: Option<u16>,
    pub health_path: Option<String>,
    /// Bytes the image may take at most (`max_size`).
    pub max_size: Option<u64>,
    /// Run the image's HEALTHCHECK before a push.
    pub health_check: bool,
    /// buildx provenance + SBOM attestations (`attestations` in service.toml).
    pub attestations: bool,
    /// Host-compiled binary staged into the context (`[cargo]` in service.toml).
    pub cargo: Option<CargoBinary>,
    /// Extra globs (from the repository root) whose change selects this service.
    pub watch: Vec<String>,
    /// Services whose image this one builds on.
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CargoBinary {
    pub package: String,
    pub bin: String,
}

/// A workspace package, as the manifests describe it (only what services need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    /// Directory of its manifest, relative to the workspace root.
    pub dir: PathBuf,
    pub bins: Vec<String>,
    /// Workspace packages it depends on by path (any kind of dependency).
    pub deps: Vec<String>,
}

const DEFAULT_PLATFORM: &str = "linux/amd64";
const NETWORKS: &[&str] = &["default", "host", "none"];

fn check_glob(g: &str) -> Result<()> {
    if let Some(why) = crate::globs::unmatchable(g) {
        bail!("{why}");
    }
    crate::globs::compile(g)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("bad glob `{g}`: {e}"))
}

impl Workspace {
    /// Reads the global config and every service. `packages` is asked for only when a service
    /// has a `[cargo]` table.
    pub fn load(
        root: &Path,
        env: &EnvOverrides,
        packages: impl FnOnce() -> Result<Vec<Package>>,
    ) -> Result<Workspace> {
        Workspace::load_from(&Disk { root }, root, env, packages)
    }

    /// The global settings alone (the root manifest), without the services.
    pub fn settings(files: &dyn Files, env: &EnvOverrides) -> Result<Settings> {
        let (global, src) = config::load_global(files)?;
        settings(global, &src, env)
    }

    /// `load`, reading through `files` (the working tree, or a commit's tree).
    pub fn load_from(
        files: &dyn Files,
        root: &Path,
        env: &EnvOverrides,
        packages: impl FnOnce() -> Result<Vec<Package>>,
    ) -> Result<Workspace> {
        Workspace::load_only(files, root, env, packages, None)
    }

    /// `load_from` for the services `only` names (all with `None`); cross-service checks
    /// (`depends_on`) run only when all are loaded.
    pub fn load_only(
        files: &dyn Files,
        root: &Path,
        env: &EnvOverrides,
        packages: impl FnOnce() -> Result<Vec<Package>>,
        only: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Workspace> {
        let (global, src) = config::load_global(files)?;
        let settings = settings(global, &src, env)?;
        let dirs: Vec<PathBuf> = files
            .subdirs(Path::new("services"))?
            .into_iter()
            .filter(|n| only.is_none_or(|f| f(n)))
            .map(|n| Path::new("services").join(n))
            .collect();
        let mut services = Vec::new();
        let mut errors = Vec::new();
        let mut want_cargo = Vec::new();
        for dir in dirs {
            match load_service(files, &dir, &settings, env) {
                Ok(Some((svc, cargo))) => {
                    if let Some(c) = cargo {
                        want_cargo.push((services.len(), c));
                    }
                    services.push(svc);
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if errors.is_empty() && only.is_none() {
            if let Err(e) = check_depends_on(&services) {
                errors.push(format!("{e:#}"));
            }
            // Two services pushing to one repository overwrite each other's tags (an
            // environment's own repository counts: `api-prod` of api, or a service `api-prod`).
            let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
            'services: for s in &services {
                let registries: Vec<&str> = if s.registries.is_empty() {
                    vec![""]
                } else {
                    s.registries.iter().map(String::as_str).collect()
                };
                let mut repos = vec![(s.repository.clone(), String::new())];
                if let Some(t) = &settings.environment_repository {
                    for env in &settings.environments {
                        repos.push((
                            t.replace("{repository}", &s.repository)
                                .replace("{env}", env),
                            format!(" (its {env} repository)"),
                        ));
                    }
                }
                for r in registries {
                    for (repo, what) in &repos {
                        let key = (r.to_string(), repo.clone());
                        let label = format!("`{}`{what}", s.name);
                        if let Some(other) = seen.insert(key, label.clone()) {
                            errors.push(format!(
                                "{other} and {label} both publish {}{}{repo}: their tags would overwrite each other; give one another `image` in its service.toml (or another environment_repository)",
                                r,
                                if r.is_empty() { "" } else { "/" },
                            ));
                            continue 'services;
                        }
                    }
                }
            }
        }
        if !want_cargo.is_empty() && errors.is_empty() {
            let packages = packages()?;
            for (i, wanted) in want_cargo {
                match resolve_cargo(&services[i], &wanted, &packages) {
                    Ok(bin) => services[i].cargo = Some(bin),
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
        }
        if !errors.is_empty() {
            bail!(
                "{} configuration error(s):\n{}",
                errors.len(),
                errors.join("\n")
            );
        }
        Ok(Workspace {
            root: root.to_path_buf(),
            settings,
            services,
        })
    }

    /// The named services, or an error that suggests the closest names.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Service>> {
        let mut out = Vec::new();
        for name in names {
            match self.services.iter().find(|s| &s.name == name) {
                Some(s) if !out.contains(&s) => out.push(s),
                Some(_) => {}
                None => bail!("{}", unknown_service(name, &self.services)),
            }
        }
        Ok(out)
    }
}

fn unknown_service(name: &str, services: &[Service]) -> String {
    let all: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    match config::closest(name, all.iter().copied()) {
        Some(best) => format!(
            "unknown service `{name}`: did you mean `{best}`? (services: {})",
            all.join(", ")
        ),
        None if all.is_empty() => format!(
            "unknown service `{name}`: there are no services (a service is a directory services/<name>/ with a Dockerfile)"
        ),
        None => format!(
            "unknown service `{name}`; the services are: {}",
            all.join(", ")
        ),
    }
}

fn strings(values: &[Spanned<String>]) -> Vec<String> {
    values.iter().map(|v| v.get_ref().clone()).collect()
}

/// Checks each spanned value with `check`, pointing at it in `src` on failure.
fn check_each(
    src: &Source,
    values: &[Spanned<String>],
    check: impl Fn(&str) -> Result<()>,
) -> Result<()> {
    for v in values {
        check(v.get_ref()).map_err(|e| src.error_at(v, e))?;
    }
    Ok(())
}

/// Checks values that came from an environment variable, naming the variable.
fn check_env(var: &str, values: &[String], check: impl Fn(&str) -> Result<()>) -> Result<()> {
    for v in values {
        check(v).with_context(|| format!("in ${var} (set in the environment)"))?;
    }
    Ok(())
}

fn settings(g: GlobalConfig, src: &Source, env: &EnvOverrides) -> Result<Settings> {
    check_each(src, &g.registries, config::check_registry)?;
    if let Some(p) = &g.prefix {
        config::check_repository(p.get_ref()).map_err(|e| src.error_at(p, e))?;
    }
    let platforms = g.platforms.unwrap_or_default();
    check_each(src, &platforms, config::check_platform)?;
    let tags = g.tags.unwrap_or_default();
    check_each(src, &tags, tags::check_template)?;
    if let Some(n) = &g.network {
        if !NETWORKS.contains(&n.get_ref().as_str()) {
            return Err(src.error_at(n, format!("network must be one of {}", NETWORKS.join(", "))));
        }
    }
    check_each(src, &g.environments, |e| {
        config::check_repository(e)
            .and_then(|_| tags::check_tag(e))
            .map_err(|_| {
                anyhow::anyhow!(
                    "environment `{e}`: use lowercase letters, digits, `.`, `_` and `-`"
                )
            })
    })?;
    let policy = Arc::new(tag_policy(
        TagPolicy::default(),
        g.tag_policy.unwrap_or_default(),
        src,
    )?);
    let registries = match &env.registries {
        Some(r) => {
            check_env("DOCKER_REGISTRY", r, config::check_registry)?;
            r.clone()
        }
        None => strings(&g.registries),
    };
    let mut notes = Vec::new();
    let mut registries_unique: Vec<String> = Vec::new();
    for r in registries {
        let key = r.trim_end_matches('/').to_ascii_lowercase();
        if registries_unique
            .iter()
            .any(|u| u.to_ascii_lowercase() == key)
        {
            notes.push(format!("registry `{r}` is listed twice: pushed to once"));
        } else {
            registries_unique.push(r);
        }
    }
    let registries = registries_unique;
    let platforms = match &env.platforms {
        Some(p) => {
            check_env("BUILD_PLATFORMS", p, config::check_platform)?;
            p.clone()
        }
        None if platforms.is_empty() => vec![DEFAULT_PLATFORM.to_string()],
        None => strings(&platforms),
    };
    let tags = match &env.tags {
        Some(t) => {
            check_env("DOCKER_TAGS", t, tags::check_template)?;
            Some(t.clone())
        }
        None if tags.is_empty() => None,
        None => Some(strings(&tags)),
    };
    Ok(Settings {
        registries,
        prefix: g.prefix.map(Spanned::into_inner),
        platforms,
        tags,
        labels: LabelInfo {
            title: String::new(),
            description: None,
            vendor: g.vendor,
            source: g.source,
            licenses: g.licenses,
            url: g.url,
            documentation: g.documentation,
        },
        build_args: g.build_args,
        network: g.network.map(Spanned::into_inner),
        policy,
        default_branch: g.default_branch,
        environments: strings(&g.environments),
        shared_paths: match g.shared_paths {
            Some(globs) => {
                check_each(src, &globs, check_glob)?;
                strings(&globs)
            }
            // Cargo config and toolchain files are inputs of every Rust service already (and
            // of no other); this list only adds to them.
            None => Vec::new(),
        },
        extra_labels: g.labels,
        notes,
        ecr_login: {
            check_each(src, &g.ecr_login, config::check_registry)?;
            strings(&g.ecr_login)
        },
        logins: token_logins(g.logins, src)?,
        scan: scan_policy(g.scan, src)?,
        sign: signer(g.sign)?,
        base_image_mirror: match &g.base_image_mirror {
            Some(m) => {
                config::check_registry(m.get_ref()).map_err(|e| src.error_at(m, e))?;
                Some(m.get_ref().trim_end_matches('/').to_string())
            }
            None => None,
        },
        environment_tag: match &g.environment_tag {
            None => "{env}".to_string(),
            Some(t) => {
                let text = t.get_ref();
                let mut rest = text.as_str();
                let mut names = Vec::new();
                while let Some(i) = rest.find('{') {
                    let Some(j) = rest[i..].find('}') else { break };
                    names.push(rest[i + 1..i + j].to_string());
                    rest = &rest[i + j + 1..];
                }
                if let Some(bad) = names
                    .iter()
                    .find(|n| !["env", "service", "version"].contains(&n.as_str()))
                {
                    return Err(src.error_at(t, anyhow::anyhow!("environment_tag: `{{{bad}}}` is not one of {{env}}, {{service}}, {{version}}")));
                }
                let sample = text
                    .replace("{env}", "prod")
                    .replace("{service}", "api")
                    .replace("{version}", "1.2.3");
                crate::tags::check_tag(&sample).map_err(|e| {
                    src.error_at(
                        t,
                        anyhow::anyhow!("environment_tag renders `{sample}`, not a tag: {e:#}"),
                    )
                })?;
                if !names.iter().any(|n| n == "env") {
                    return Err(src.error_at(t, anyhow::anyhow!("environment_tag must name the environment: `{{env}}`, e.g. \"{{service}}-{{env}}-{{version}}\"")));
                }
                text.clone()
            }
        },
        build_cache: one_of(
            src,
            &g.build_cache,
            &["none", "gha", "registry"],
            "none",
            "build_cache",
        )?,
        ecr: match g.ecr {
            None => EcrPolicy::default(),
            Some(c) => {
                let d = EcrPolicy::default();
                let encryption = one_of(
                    src,
                    &c.encryption,
                    &["AES256", "KMS"],
                    "AES256",
                    "ecr.encryption",
                )?;
                let tag_mutability = one_of(
                    src,
                    &c.tag_mutability,
                    &[
                        "MUTABLE",
                        "IMMUTABLE",
                        "IMMUTABLE_WITH_EXCLUSION",
                        "MUTABLE_WITH_EXCLUSION",
                    ],
                    "MUTABLE",
                    "ecr.tag_mutability",
                )?;
                if tag_mutability.ends_with("_WITH_EXCLUSION") && c.mutability_exclusions.is_empty()
                {
                    let at = c
                        .tag_mutability
                        .as_ref()
                        .map(|t| src.locate(t.span().start))
                        .unwrap_or_else(|| src.path.display().to_string());
                    bail!("{at}: ecr.tag_mutability = \"{tag_mutability}\" needs `mutability_exclusions` (e.g. [\"latest\", \"main\"])");
                }
                let table = "Cargo.toml [workspace.metadata.images.ecr]";
                if !tag_mutability.ends_with("_WITH_EXCLUSION")
                    && !c.mutability_exclusions.is_empty()
                {
                    bail!("{table}: mutability_exclusions go with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not {tag_mutability}");
                }
                if encryption == "AES256" && c.kms_key.is_some() {
                    bail!("{table}: kms_key goes with encryption = \"KMS\"");
                }
                if c.kms_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
                    bail!("{table}: kms_key is empty: give the key's ARN or alias, or leave it out for ECR's default key");
                }
                if let Some(bad) = c
                    .mutability_exclusions
                    .iter()
                    .chain(c.tags.keys())
                    .chain(c.tags.values())
                    .find(|v| v.contains(',') || v.trim().is_empty())
                {
                    bail!("{table}: `{bad}`: exclusion filters and tag keys and values may not be empty or hold a comma");
                }
                if c.lifecycle_policy.is_some()
                    && (c.keep_versions.is_some()
                        || c.version_prefix.is_some()
                        || c.expire_untagged_days.is_some())
                {
                    bail!("{table}: lifecycle_policy (a file) replaces keep_versions, version_prefix and expire_untagged_days: set one or the other");
                }
                if c.keep_versions == Some(0) || c.expire_untagged_days == Some(0) {
                    bail!("{table}: keep_versions and expire_untagged_days must be at least 1");
                }
                let lifecycle_policy = default_lifecycle(
                    c.version_prefix.as_deref().unwrap_or("v"),
                    c.keep_versions.unwrap_or(10),
                    c.expire_untagged_days.unwrap_or(7),
                );
                EcrPolicy {
                    scan_on_push: c.scan_on_push.unwrap_or(d.scan_on_push),
                    kms_key: c.kms_key,
                    encryption,
                    tag_mutability,
                    mutability_exclusions: c.mutability_exclusions,
                    tags: c.tags,
                    lifecycle_policy,
                    lifecycle_file: c.lifecycle_policy.map(|f| f.into_inner()),
                }
            }
        },
        environment_repository: match &g.environment_repository {
            None => None,
            Some(t) => {
                let text = t.get_ref();
                if !text.contains("{env}") || !text.contains("{repository}") {
                    return Err(src.error_at(t, anyhow::anyhow!("environment_repository must hold `{{repository}}` and `{{env}}`, e.g. \"{{repository}}-{{env}}\"")));
                }
                let sample = text
                    .replace("{repository}", "acme/api")
                    .replace("{env}", "prod");
                config::check_repository(&sample).map_err(|e| src.error_at(t, e))?;
                Some(text.clone())
            }
        },
        check: {
            let c = g.check.unwrap_or_default();
            let d = CheckPolicy::default();
            CheckPolicy {
                require_digests: c.require_digests.unwrap_or(d.require_digests),
                source_scan: c.source_scan.unwrap_or(d.source_scan),
            }
        },
        notify: match g.notify {
            None => None,
            Some(n) => {
                let var = n.webhook_env.get_ref();
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(src.error_at(
                        &n.webhook_env,
                        anyhow::anyhow!("notify.webhook_env names the environment variable that holds the URL (e.g. TEAMS_WEBHOOK_URL), never the URL itself"),
                    ));
                }
                Some(Notify {
                    webhook_env: var.clone(),
                    format: one_of(
                        src,
                        &n.format,
                        &["teams", "slack"],
                        "teams",
                        "notify.format",
                    )?,
                    always: one_of(
                        src,
                        &n.when,
                        &["failure", "always"],
                        "failure",
                        "notify.when",
                    )? == "always",
                })
            }
        },
    })
}

/// A setting that takes one of `allowed` (`default` when absent), or an error at its place.
fn one_of(
    src: &Source,
    v: &Option<Spanned<String>>,
    allowed: &[&str],
    default: &str,
    what: &str,
) -> Result<String> {
    match v {
        None => Ok(default.to_string()),
        Some(s) if allowed.contains(&s.get_ref().as_str()) => Ok(s.get_ref().clone()),
        Some(s) => Err(src.error_at(
            s,
            anyhow::anyhow!(
                "{what} must be one of {}",
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn token_logins(list: Vec<config::LoginConfig>, src: &Source) -> Result<Vec<TokenLogin>> {
    let mut out: Vec<TokenLogin> = Vec::new();
    for l in list {
        let at = |msg: String| src.error_at(&l.registry, anyhow::anyhow!(msg));
        config::check_registry(l.registry.get_ref()).map_err(|e| src.error_at(&l.registry, e))?;
        let registry = l
            .registry
            .get_ref()
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        let username = match (l.username, l.username_env) {
            (Some(u), None) => LoginUser::Name(u),
            (None, Some(v)) => LoginUser::FromEnv(v),
            _ => {
                return Err(at(format!(
                    "the login for {registry} needs one of `username` or `username_env` (e.g. username_env = \"GITHUB_ACTOR\")"
                )))
            }
        };
        if out.iter().any(|o| o.registry == registry) {
            return Err(at(format!("{registry} has two logins: keep one")));
        }
        out.push(TokenLogin {
            registry,
            username,
            password_env: l.password_env,
        });
    }
    Ok(out)
}

/// `base` with the keys `c` sets replaced (checked and located in `src`).
fn tag_policy(base: TagPolicy, c: config::TagPolicyConfig, src: &Source) -> Result<TagPolicy> {
    let mut p = base;
    let lists = [
        (c.local, &mut p.local),
        (c.pull_request, &mut p.pull_request),
        (c.default_branch, &mut p.default_branch),
        (c.release_branch, &mut p.release_branch),
        (c.branch, &mut p.branch),
        (c.release, &mut p.release),
        (c.prerelease, &mut p.prerelease),
        (c.tag, &mut p.tag),
    ];
    for (given, slot) in lists {
        if let Some(values) = given {
            check_each(src, &values, tags::check_template)?;
            *slot = strings(&values);
        }
    }
    if let Some(l) = &c.latest {
        p.latest = LatestRule::parse(l.get_ref()).ok_or_else(|| {
            src.error_at(
                l,
                format!("latest must be one of {}", LatestRule::NAMES.join(", ")),
            )
        })?;
    }
    if let Some(patterns) = c.release_branches {
        check_each(src, &patterns, |pat| {
            globset::Glob::new(pat)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("release branch pattern `{pat}`: {e}"))
        })?;
        p.release_branches = strings(&patterns);
    }
    if let Some(d) = c.dirty_suffix {
        p.dirty_suffix = d;
    }
    if let Some(b) = c.push_pull_requests {
        p.push_pull_requests = b;
    }
    if let Some(r) = &c.released_versions {
        p.fail_on_released = match r.get_ref().as_str() {
            "skip" => false,
            "fail" => true,
            _ => return Err(src.error_at(r, "released_versions must be `skip` or `fail`")),
        };
    }
    if let Some(t) = &c.timestamp {
        p.timestamp_from_build = match t.get_ref().as_str() {
            "commit" => false,
            "build" => true,
            _ => return Err(src.error_at(t, "timestamp must be `commit` or `build`")),
        };
    }
    Ok(p)
}

/// The release-branch patterns as one matcher (they were checked when the config was read).
pub fn release_branch_matcher(policy: &TagPolicy) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in &policy.release_branches {
        b.add(globset::Glob::new(p)?);
    }
    Ok(b.build()?)
}

/// One service directory; `None` when it has no Dockerfile (and no service.toml asking for one).
fn load_service(
    files: &dyn Files,
    dir: &Path,
    settings: &Settings,
    env: &EnvOverrides,
) -> Result<Option<(Service, Option<config::CargoBuild>)>> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: directory name is not UTF-8", dir.display()))?
        .to_string();
    let rel_dir = dir.to_path_buf();
    let toml_path = rel_dir.join("service.toml");
    let (cfg, src) = match config::load_service(files, &toml_path)? {
        Some((cfg, src)) => (cfg, Some(src)),
        None => (config::ServiceConfig::default(), None),
    };
    let at = |v: &Spanned<String>, e: anyhow::Error| match &src {
        Some(src) => src.error_at(v, e),
        None => e,
    };
    let dockerfile = match &cfg.dockerfile {
        Some(d) => {
            let p = normalize(&rel_dir.join(d.get_ref()));
            if p.starts_with("..") || Path::new(d.get_ref()).is_absolute() {
                return Err(at(
                    d,
                    anyhow::anyhow!(
                        "dockerfile `{}` is outside the workspace: keep it in the repository, relative to {}",
                        d.get_ref(),
                        rel_dir.display()
                    ),
                ));
            }
            p
        }
        None => rel_dir.join("Dockerfile"),
    };
    if !files.is_file(&dockerfile) {
        if let Some(d) = &cfg.dockerfile {
            return Err(at(
                d,
                anyhow::anyhow!(
                    "dockerfile `{}` does not exist: fix the path (relative to {})",
                    d.get_ref(),
                    rel_dir.display()
                ),
            ));
        }
        if src.is_some() {
            bail!(
                "{}: service `{name}` has a service.toml but no Dockerfile: add {} or set `dockerfile = \"...\"`",
                toml_path.display(),
                dockerfile.display()
            );
        }
        return Ok(None);
    }
    let context = match &cfg.context {
        Some(c) => {
            if Path::new(c.get_ref()).is_absolute() {
                return Err(at(
                    c,
                    anyhow::anyhow!(
                        "context `{}` is absolute: give it relative to {} (e.g. \"../..\" for the workspace root)",
                        c.get_ref(),
                        rel_dir.display()
                    ),
                ));
            }
            // The workspace root itself normalizes to "" (paths inside are joined to it).
            let ctx = normalize(&rel_dir.join(c.get_ref()));
            if ctx.starts_with("..") || !files.is_dir(&ctx) {
                return Err(at(
                    c,
                    anyhow::anyhow!(
                        "context `{}` is not a directory inside the workspace",
                        c.get_ref()
                    ),
                ));
            }
            ctx
        }
        None => rel_dir.clone(),
    };
    let image = match &cfg.image {
        Some(i) => {
            config::check_repository(i.get_ref()).map_err(|e| at(i, e))?;
            i.get_ref().clone()
        }
        None => {
            config::check_repository(&name).map_err(|e| {
                anyhow::anyhow!(
                    "{}: service directory name: {e}; or set `image = \"...\"` in its service.toml",
                    rel_dir.display()
                )
            })?;
            name.clone()
        }
    };
    let repository = match &settings.prefix {
        Some(p) => format!("{p}/{image}"),
        None => image,
    };
    let pick = |own: &Option<Vec<Spanned<String>>>,
                over: &Option<Vec<String>>,
                global: &Vec<String>,
                check: fn(&str) -> Result<()>|
     -> Result<Vec<String>> {
        if over.is_some() {
            return Ok(global.clone());
        }
        match own {
            Some(values) => {
                for v in values {
                    check(v.get_ref()).map_err(|e| at(v, e))?;
                }
                Ok(strings(values))
            }
            None => Ok(global.clone()),
        }
    };
    let registries = pick(
        &cfg.registries,
        &env.registries,
        &settings.registries,
        config::check_registry,
    )?;
    let platforms = pick(
        &cfg.platforms,
        &env.platforms,
        &settings.platforms,
        config::check_platform,
    )?;
    for r in &registries {
        config::check_reference(r, &repository)
            .map_err(|e| anyhow::anyhow!("service `{name}` ({}): {e}", rel_dir.display()))?;
    }
    if platforms.is_empty() {
        bail!(
            "{}: `platforms` is empty: list at least one, e.g. [\"linux/amd64\"]",
            toml_path.display()
        );
    }
    let tags = match (&cfg.tags, &env.tags) {
        (Some(own), None) => {
            for v in own {
                tags::check_template(v.get_ref()).map_err(|e| at(v, e))?;
            }
            Some(strings(own))
        }
        _ => settings.tags.clone(),
    };
    let own_version = rel_dir.join("VERSION");
    let version = match files.read(&own_version)? {
        Some(text) => Some(
            crate::version::parse(&text).with_context(|| format!("{}:1", own_version.display()))?,
        ),
        None => None,
    };
    let mut labels = settings.extra_labels.clone();
    labels.extend(cfg.labels.clone());
    if let Some(src) = &src {
        check_each(src, &cfg.watch, check_glob)?;
    }
    let watch = strings(&cfg.watch);
    let depends_on = strings(&cfg.depends_on);
    let policy = match (cfg.tag_policy, &src) {
        (Some(own), Some(src)) => Arc::new(tag_policy((*settings.policy).clone(), own, src)?),
        _ => Arc::clone(&settings.policy),
    };
    let mut build_args = settings.build_args.clone();
    build_args.extend(cfg.build_args.clone());
    let svc = Service {
        name,
        repository,
        dir: rel_dir,
        dockerfile,
        context,
        registries,
        platforms,
        tags,
        build_args,
        labels,
        policy,
        version,
        target: cfg.target.clone(),
        description: cfg.description.clone(),
        non_root: cfg.non_root.unwrap_or(true),
        port: cfg.port,
        health_path: cfg.health_path.clone(),
        health_check: cfg.health_check.unwrap_or(true),
        attestations: cfg.attestations.unwrap_or(false),
        max_size: match &cfg.max_size {
            Some(m) => Some(config::parse_size(m.get_ref()).map_err(|e| at(m, e))?),
            None => None,
        },
        cargo: None,
        watch,
        depends_on,
    };
    Ok(Some((svc, cfg.cargo)))
}

fn resolve_cargo(
    svc: &Service,
    wanted: &config::CargoBuild,
    packages: &[Package],
) -> Result<CargoBinary> {
    let toml = svc.dir.join("service.toml");
    let pkg = match &wanted.package {
        Some(name) => packages.iter().find(|p| &p.name == name).with_context(|| {
            format!(
                "{}: [cargo] package `{name}` is not a workspace member; add it to [workspace] members in Cargo.toml",
                toml.display()
            )
        })?,
        None => packages.iter().find(|p| p.dir == svc.dir).with_context(|| {
            format!(
                "{}: [cargo] without `package`, but {} is not a workspace package: set `package = \"...\"` or add it to [workspace] members",
                toml.display(),
                svc.dir.display()
            )
        })?,
    };
    let bin = match &wanted.bin {
        Some(b) if pkg.bins.contains(b) => b.clone(),
        Some(b) => bail!(
            "{}: package `{}` has no binary `{b}` (binaries: {})",
            toml.display(),
            pkg.name,
            pkg.bins.join(", ")
        ),
        None => match pkg.bins.as_slice() {
            [one] => one.clone(),
            [] => bail!(
                "{}: package `{}` has no binary target",
                toml.display(),
                pkg.name
            ),
            many => bail!(
                "{}: package `{}` has several binaries ({}): set `bin = \"...\"` under [cargo]",
                toml.display(),
                pkg.name,
                many.join(", ")
            ),
        },
    };
    Ok(CargoBinary {
        package: pkg.name.clone(),
        bin,
    })
}

/// Every `depends_on` names a service, and they form no cycle.
fn check_depends_on(services: &[Service]) -> Result<()> {
    for s in services {
        for d in &s.depends_on {
            if !services.iter().any(|x| &x.name == d) {
                let names = services.iter().map(|x| x.name.as_str());
                let hint = match config::closest(d, names) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "remove it or add that service".to_string(),
                };
                bail!(
                    "{}: depends_on names `{d}`, which is not a service: {hint}",
                    s.dir.join("service.toml").display()
                );
            }
        }
    }
    // Depth-first search for a cycle, reporting its path.
    fn visit<'a>(s: &'a Service, all: &'a [Service], path: &mut Vec<&'a str>) -> Result<()> {
        if let Some(i) = path.iter().position(|p| *p == s.name) {
            let mut cycle: Vec<&str> = path[i..].to_vec();
            cycle.push(&s.name);
            bail!("depends_on forms a cycle: {}", cycle.join(" -> "));
        }
        path.push(&s.name);
        for d in &s.depends_on {
            if let Some(next) = all.iter().find(|x| &x.name == d) {
                visit(next, all, path)?;
            }
        }
        path.pop();
        Ok(())
    }
    for s in services {
        visit(s, services, &mut Vec::new())?;
    }
    Ok(())
}

/// Removes `.` and folds `..` lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests;
