//! The runner: the one place that spawns processes. Dry-run, logging, secret masking and
//! retries live here and nowhere else.

use crate::ui::out;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::tools::CommandSpec;

/// What a finished command left behind.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

pub struct Runner {
    /// Commands run here unless they say otherwise (the workspace root).
    pub root: PathBuf,
    pub dry_run: bool,
    pub verbose: bool,
    /// Values replaced by `***` wherever the runner prints or reports.
    /// (Behind a lock: a password fetched mid-run is masked from then on.)
    secrets: std::sync::RwLock<Vec<String>>,
    /// The logins this run made, to make again once when a registry refuses the credentials
    /// (an ECR token expires after 12 hours); whether that was done.
    logins: std::sync::Mutex<(Vec<Login>, bool)>,
}

/// How to log in to one registry: the password from a command's output (`aws ecr
/// get-login-password`) or from a value (a token read from the environment), then `login`
/// (`docker login --password-stdin`) with it on stdin.
#[derive(Debug, Clone)]
pub struct Login {
    pub host: String,
    pub password_from: Option<CommandSpec>,
    pub password: Option<String>,
    pub login: CommandSpec,
}

/// What a failure worth another try looks like in a tool's output.
const TRANSIENT: &[&str] = &[
    "connection refused",
    "connection reset",
    "i/o timeout",
    "timeout exceeded",
    "tls handshake timeout",
    "deadline exceeded",
    "too many requests",
    "toomanyrequests",
    " 429",
    "500 internal server error",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway timeout",
    "unexpected eof",
    "broken pipe",
];

fn first_transient(text: &str) -> Option<&'static str> {
    let t = text.to_ascii_lowercase();
    TRANSIENT.iter().copied().find(|p| t.contains(p))
}

/// Connection trouble, throttling or a server error: another try may work.
pub fn is_transient(text: &str) -> bool {
    first_transient(text).is_some() && !is_auth_refusal(text)
}

/// The registry said no to the credentials (401/403).
pub fn is_auth_refusal(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "401 unauthorized",
        "403 forbidden",
        "unauthorized: authentication required",
        "no basic auth credentials",
        "denied: requested access",
        "access denied",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// How many trailing lines of a failed command's output an error carries.
const TAIL_LINES: usize = 25;

/// Set by the Ctrl-C handler: nothing new is started (no further push, tag or signature);
/// read-only probes and clean-up still run.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// What must not outlive the process (a health check's container, the run's logins): done
/// by a second Ctrl-C/SIGTERM, which leaves at once, before it leaves.
static CLEANUP: std::sync::Mutex<Vec<(u64, Cleanup)>> = std::sync::Mutex::new(Vec::new());
static CLEANUP_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, Clone)]
pub enum Cleanup {
    Command(CommandSpec),
    Dir(PathBuf),
}

/// Registers a clean-up; returns its id for `cleaned`.
pub fn on_abort(c: Cleanup) -> u64 {
    let id = CLEANUP_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if let Ok(mut l) = CLEANUP.lock() {
        l.push((id, c));
    }
    id
}

/// The clean-up `id` was done the normal way.
pub fn cleaned(id: u64) {
    if let Ok(mut l) = CLEANUP.lock() {
        l.retain(|(i, _)| *i != id);
    }
}

/// Runs every registered clean-up (best effort), for a process about to leave at once.
pub fn abort_cleanup() {
    let todo: Vec<Cleanup> = match CLEANUP.try_lock() {
        Ok(mut l) => l.drain(..).map(|(_, c)| c).collect(),
        Err(_) => return,
    };
    for c in todo {
        match c {
            Cleanup::Command(cmd) => {
                let _ = std::process::Command::new(&cmd.program)
                    .args(&cmd.args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}

/// `f` over every item, up to `width` at a time (registry and API reads wait on round trips,
/// not CPU), the results in the items' order.
pub fn parallel<T: Sync, R: Send>(items: &[T], width: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: std::sync::Mutex<Vec<(usize, R)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..width.max(1).min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { return };
                let r = f(item);
                done.lock().expect("results lock").push((i, r));
            });
        }
    });
    let mut done = done.into_inner().expect("results lock");
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The error of a command not started because the run was interrupted.
pub const INTERRUPTED_MSG: &str = "interrupted (Ctrl-C): not started";

thread_local! {
    /// The log of the service this thread works on: every command and its whole output.
    static LOG: std::cell::RefCell<Option<std::fs::File>> = const { std::cell::RefCell::new(None) };
    /// Time this thread spent waiting for the commands it ran (the tools' own time).
    static TOOL_TIME: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// The time this thread has spent in commands so far (differences measure a stretch).
pub fn tool_time() -> Duration {
    TOOL_TIME.with(|t| t.get())
}

/// While the guard lives, every command this thread runs is appended to `path` (created
/// fresh), with its output, masked.
pub struct LogGuard;

impl Drop for LogGuard {
    fn drop(&mut self) {
        LOG.with(|l| *l.borrow_mut() = None);
    }
}

pub fn log_to(path: &std::path::Path) -> Result<LogGuard> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot write the log {}", path.display()))?;
    LOG.with(|l| *l.borrow_mut() = Some(file));
    Ok(LogGuard)
}

fn log_line(text: &str) {
    use std::io::Write;
    LOG.with(|l| {
        if let Some(f) = l.borrow_mut().as_mut() {
            let _ = f.write_all(text.as_bytes());
        }
    });
}

impl Runner {
    pub fn new(root: PathBuf, dry_run: bool, verbose: bool) -> Runner {
        Runner {
            root,
            dry_run,
            verbose,
            secrets: std::sync::RwLock::new(Vec::new()),
            logins: std::sync::Mutex::new((Vec::new(), false)),
        }
    }

    /// Logs in (and remembers how, for one fresh login on a 401/403 later).
    pub fn login(&self, l: &Login) -> Result<()> {
        let password = match (&l.password_from, &l.password) {
            (Some(cmd), _) => self
                .run(cmd)
                .with_context(|| format!("cannot get a login password for {}", l.host))?
                .stdout
                .trim()
                .to_string(),
            (None, Some(p)) => p.clone(),
            (None, None) => bail!("no password for {}", l.host),
        };
        self.add_secret(password.clone());
        let mut cmd = l.login.clone();
        cmd.stdin = Some(format!("{password}\n"));
        self.run(&cmd)?;
        let mut logins = self.logins.lock().expect("logins lock");
        if !logins.0.iter().any(|x| x.host == l.host) {
            logins.0.push(l.clone());
        }
        Ok(())
    }

    /// After a registry refused the credentials: every login again, once per run. Whether
    /// it was done (and worked), so the refused command is worth one more try.
    fn relogin_once(&self) -> bool {
        let mut logins = self.logins.lock().expect("logins lock");
        if logins.1 || logins.0.is_empty() || self.dry_run {
            return false;
        }
        logins.1 = true;
        let todo = logins.0.clone();
        drop(logins);
        eprintln!("the registry refused the credentials: logging in again (once)");
        todo.iter().all(|l| match self.login(l) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("the fresh login to {} failed: {e:#}", l.host);
                false
            }
        })
    }

    /// Registers a value that must never be shown.
    pub fn add_secret(&self, secret: impl Into<String>) {
        let s = secret.into();
        if !s.is_empty() {
            self.secrets.write().expect("secrets lock").push(s);
        }
    }

    pub fn mask(&self, text: &str) -> String {
        self.secrets
            .read()
            .expect("secrets lock")
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
    }

    /// The command as `--dry-run` prints it, with secrets masked.
    pub fn display(&self, cmd: &CommandSpec) -> String {
        cmd.render(&|word| self.mask(word))
    }

    /// Runs a command that changes something. Under `--dry-run` it prints the command on
    /// stdout instead and reports success. A non-zero exit is an error with the output's tail.
    pub fn run(&self, cmd: &CommandSpec) -> Result<Output> {
        if interrupted() {
            bail!("{INTERRUPTED_MSG}: {}", self.display(cmd));
        }
        if self.dry_run {
            out!("{}", self.display(cmd));
            return Ok(Output {
                code: Some(0),
                ..Output::default()
            });
        }
        let out = self.spawn(cmd)?;
        if !out.success() {
            bail!("{}", self.failure(cmd, &out));
        }
        Ok(out)
    }

    /// `run` for network steps: a transient failure (connection refused or reset, a timeout,
    /// 429, 5xx) is tried again, up to `attempts` times, after a pause that doubles each time
    /// with jitter; anything else (a build error, 401/403, other 4xx) fails at once. A refused
    /// login says so.
    pub fn run_retrying(&self, cmd: &CommandSpec, attempts: u32) -> Result<Output> {
        let base = std::env::var("SLIPWAY_RETRY_BASE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(500);
        for attempt in 1..=attempts.max(1) {
            if self.dry_run || interrupted() {
                return self.run(cmd);
            }
            let out = self.spawn(cmd)?;
            if out.success() {
                return Ok(out);
            }
            let text = format!("{}{}", out.stdout, out.stderr);
            if is_auth_refusal(&text) && self.relogin_once() {
                // The same command once more with the fresh login.
                let again = self.spawn(cmd)?;
                if again.success() {
                    return Ok(again);
                }
                let mut msg = self.failure(cmd, &again);
                msg.push_str("\nthe registry refused the credentials, also after a fresh login: check the token's scope or the repository's permissions (cargo xtask doctor)");
                bail!("{msg}");
            }
            if attempt == attempts.max(1) || !is_transient(&text) {
                let mut msg = self.failure(cmd, &out);
                if is_auth_refusal(&text) {
                    msg.push_str("\nthe registry refused the credentials: check the login (cargo xtask doctor), the token's scope, or the repository's permissions");
                } else if attempt > 1 {
                    msg.push_str(&format!("\n(gave up after {attempt} attempts)"));
                }
                bail!("{msg}");
            }
            // Back off: base · 2^(attempt-1), plus up to half of it, from the clock's nanos.
            let pause = base.saturating_mul(1 << (attempt - 1).min(10));
            let jitter = u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos()),
            ) % (pause / 2 + 1);
            eprintln!(
                "attempt {attempt}/{attempts} failed ({}), retrying in {} ms: {}",
                first_transient(&text).unwrap_or("transient"),
                pause + jitter,
                self.display(cmd)
            );
            let until = std::time::Instant::now() + Duration::from_millis(pause + jitter);
            while std::time::Instant::now() < until && !interrupted() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Runs a read-only query, also under `--dry-run`; the caller judges the exit status.
    pub fn probe(&self, cmd: &CommandSpec) -> Result<Output> {
        self.spawn(cmd)
    }

    fn spawn(&self, cmd: &CommandSpec) -> Result<Output> {
        let started = std::time::Instant::now();
        let out = self.spawn_unlogged(cmd);
        let took = started.elapsed();
        TOOL_TIME.with(|t| t.set(t.get() + took));
        let status = |o: &Output| {
            format!(
                "[exit {}, {:.2} s]",
                o.code.map_or("signal".into(), |c| c.to_string()),
                took.as_secs_f64()
            )
        };
        let shown = match &out {
            Ok(o) if cmd.secret_output => {
                format!("(output not shown: it is a secret)\n{}\n", status(o))
            }
            Ok(o) => format!("{}{}{}\n", o.stdout, o.stderr, status(o)),
            Err(e) => format!("{e:#}\n"),
        };
        log_line(&format!("$ {}\n{shown}\n", self.display(cmd)));
        out
    }

    fn spawn_unlogged(&self, cmd: &CommandSpec) -> Result<Output> {
        if self.verbose {
            eprintln!("$ {}", self.display(cmd));
            if !cmd.secret_output {
                return self.spawn_streaming(cmd);
            }
        }
        let sh = xshell::Shell::new().context("cannot set up the command runner")?;
        sh.change_dir(cmd.cwd.as_ref().unwrap_or(&self.root));
        let mut c = sh.cmd(&cmd.program).args(&cmd.args).ignore_status().quiet();
        for (k, v) in &cmd.env {
            c = c.env(k, v);
        }
        if let Some(input) = &cmd.stdin {
            c = c.stdin(input);
        }
        let out = c.output().map_err(|e| {
            anyhow::anyhow!(
                "cannot run `{}`: {}",
                self.display(cmd),
                self.mask(&e.to_string())
            )
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(Output {
            code: out.status.code(),
            // A secret output is the caller's (a password): never shown, never masked away.
            stdout: if cmd.secret_output {
                stdout.into_owned()
            } else {
                self.mask(&stdout)
            },
            stderr: self.mask(&String::from_utf8_lossy(&out.stderr)),
        })
    }

    /// `-v`: the tool's output streams to stderr as it comes (masked), and is kept too.
    fn spawn_streaming(&self, cmd: &CommandSpec) -> Result<Output> {
        use std::io::{BufRead, Write};
        use std::process::{Command, Stdio};
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args)
            .current_dir(cmd.cwd.as_ref().unwrap_or(&self.root))
            .envs(&cmd.env)
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| {
            anyhow::anyhow!(
                "cannot run `{}`: {}",
                self.display(cmd),
                self.mask(&e.to_string())
            )
        })?;
        if let (Some(input), Some(mut stdin)) = (&cmd.stdin, child.stdin.take()) {
            // A tool that exits before reading its stdin is judged by its exit status.
            let _ = stdin.write_all(input.as_bytes());
        }
        let pump = |r: Box<dyn std::io::Read + Send>| {
            let secrets = self.secrets.read().expect("secrets lock").clone();
            std::thread::spawn(move || {
                let mut kept = String::new();
                for line in std::io::BufReader::new(r).lines().map_while(|l| l.ok()) {
                    let line = secrets
                        .iter()
                        .fold(line, |t, s| t.replace(s.as_str(), "***"));
                    eprintln!("  | {line}");
                    kept.push_str(&line);
                    kept.push('\n');
                }
                kept
            })
        };
        let out = pump(Box::new(child.stdout.take().expect("piped")));
        let err = pump(Box::new(child.stderr.take().expect("piped")));
        let status = child.wait().context("waiting for a command")?;
        Ok(Output {
            code: status.code(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    /// The tool's own error first — "docker failed with exit status N:" and the last lines it
    /// printed — then the command, shortened.
    pub fn failure(&self, cmd: &CommandSpec, out: &Output) -> String {
        let status = match out.code {
            Some(c) => format!("exit status {c}"),
            None => "a signal".to_string(),
        };
        let combined = if cmd.secret_output {
            out.stderr.clone()
        } else {
            format!("{}{}", out.stdout, out.stderr)
        };
        let lines: Vec<&str> = combined.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        let program = std::path::Path::new(&cmd.program)
            .file_name()
            .map_or(cmd.program.clone(), |n| n.to_string_lossy().into_owned());
        let full = self.display(cmd);
        let shown: String = if full.chars().count() > 160 {
            format!(
                "{}… (-v shows it whole)",
                full.chars().take(157).collect::<String>()
            )
        } else {
            full
        };
        format!(
            "{program} failed with {status}:\n{}\ncommand: {shown}",
            if tail.is_empty() {
                "(no output)"
            } else {
                &tail
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> Runner {
        Runner::new(std::env::temp_dir(), false, false)
    }

    #[test]
    fn failure_carries_status_and_tail_and_masks_secrets() {
        let r = runner();
        r.add_secret("hunter2");
        let cmd = CommandSpec::new("sh")
            .args(["-c", "echo one; echo the password is hunter2 >&2; exit 3"]);
        let err = r.run(&cmd).unwrap_err().to_string();
        assert!(err.contains("failed with exit status 3"), "{err}");
        assert!(err.contains("one\nthe password is ***"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.starts_with("sh failed with exit status 3:\n"),
            "the tool's error first: {err}"
        );
        assert!(
            err.ends_with("command: sh -c 'echo one; echo the password is *** >&2; exit 3'"),
            "{err}"
        );
    }

    #[test]
    fn verbose_streams_and_still_captures() {
        let r = Runner::new(std::env::temp_dir(), false, true);
        r.add_secret("hunter2");
        let mut cmd =
            CommandSpec::new("sh").args(["-c", "read x; echo out-$x; echo hunter2 >&2; exit 4"]);
        cmd.stdin = Some("in\n".into());
        let out = r.probe(&cmd).unwrap();
        assert_eq!(out.code, Some(4));
        assert_eq!(out.stdout, "out-in\n");
        assert_eq!(out.stderr, "***\n", "masked while streaming too");
    }

    #[test]
    fn stdin_and_env_reach_the_command() {
        let r = runner();
        let mut cmd = CommandSpec::new("sh")
            .args(["-c", "read x; echo \"$x-$GREETING\""])
            .env("GREETING", "hi");
        cmd.stdin = Some("from-stdin\n".into());
        let out = r.run(&cmd).unwrap();
        assert_eq!(out.stdout, "from-stdin-hi\n");
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let err = runner()
            .run(&CommandSpec::new("definitely-not-a-program-xyz"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot run `definitely-not-a-program-xyz`"),
            "{err}"
        );
    }

    #[test]
    fn dry_run_does_not_execute() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let r = Runner::new(dir.path().to_path_buf(), true, false);
        let cmd = CommandSpec::new("touch").arg(marker.display().to_string());
        assert!(r.run(&cmd).unwrap().success());
        assert!(!marker.exists());
        // probes still run under --dry-run
        assert!(r.probe(&cmd).unwrap().success());
        assert!(marker.exists());
    }

    #[test]
    fn display_quotes_and_masks() {
        let r = runner();
        r.add_secret("s3cret");
        r.add_secret("it's secret");
        let cmd = CommandSpec::new("docker")
            .args(["build", "--label", "a=b c", "--build-arg", "TOKEN=s3cret"])
            .arg("--build-arg")
            .arg("QUOTED=it's secret")
            .env("DOCKER_BUILDKIT", "1");
        assert_eq!(
            r.display(&cmd),
            "DOCKER_BUILDKIT=1 docker build --label 'a=b c' --build-arg 'TOKEN=***' --build-arg 'QUOTED=***'"
        );
    }

    /// A command that fails with `message` the first `fails` times, counting its runs.
    fn flaky(dir: &std::path::Path, fails: usize, message: &str) -> CommandSpec {
        let count = dir.join("count");
        CommandSpec::new("sh").args([
            "-c",
            &format!(
                "echo x >> {c}; n=$(wc -l < {c}); if [ $n -le {fails} ]; then echo '{message}' >&2; exit 1; fi; echo pushed",
                c = count.display()
            ),
        ])
    }

    fn runs(dir: &std::path::Path) -> usize {
        std::fs::read_to_string(dir.join("count"))
            .unwrap()
            .lines()
            .count()
    }

    #[test]
    fn parallel_keeps_the_order() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(
            parallel(&items, 8, |i| i * 2),
            (0..50).map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(parallel(&Vec::<u32>::new(), 8, |i| *i).is_empty());
    }

    #[test]
    fn a_refused_push_logs_in_again_once() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("logged-in-again");
        let logins = d.path().join("logins");
        let r = runner();
        // A "login" that records its stdin; the first one happens before the push.
        let login = Login {
            host: "registry.example".into(),
            password_from: Some({
                let mut c = CommandSpec::new("echo").arg("token-1234");
                c.secret_output = true;
                c
            }),
            password: None,
            login: CommandSpec::new("sh").args([
                "-c",
                &format!(
                    "cat >> {l}; [ -f {l}.first ] && touch {m}; touch {l}.first",
                    l = logins.display(),
                    m = marker.display()
                ),
            ]),
        };
        r.login(&login).unwrap();
        assert!(!marker.exists());
        // A push refused until the fresh login happened.
        let push = CommandSpec::new("sh").args([
            "-c",
            &format!("[ -f {} ] || {{ echo 'unauthorized: authentication required' >&2; exit 1; }}; echo pushed", marker.display()),
        ]);
        assert_eq!(r.run_retrying(&push, 3).unwrap().stdout, "pushed\n");
        assert_eq!(
            std::fs::read_to_string(&logins).unwrap(),
            "token-1234\ntoken-1234\n",
            "logged in twice, the password on stdin"
        );
        // Only once per run: the next refusal is an error.
        std::fs::remove_file(&marker).unwrap();
        let err = r.run_retrying(&push, 3).unwrap_err().to_string();
        assert!(
            err.contains("the registry refused the credentials"),
            "{err}"
        );
    }

    #[test]
    fn transient_failures_are_retried_and_others_are_not() {
        std::env::set_var("SLIPWAY_RETRY_BASE_MS", "1");
        let d = tempfile::tempdir().unwrap();
        let cmd = flaky(
            d.path(),
            2,
            "dial tcp 127.0.0.1:5000: connect: connection refused",
        );
        assert_eq!(runner().run_retrying(&cmd, 3).unwrap().stdout, "pushed\n");
        assert_eq!(runs(d.path()), 3, "two refusals, then it worked");

        let d = tempfile::tempdir().unwrap();
        let cmd = flaky(
            d.path(),
            5,
            "received unexpected HTTP status: 503 Service Unavailable",
        );
        let err = runner().run_retrying(&cmd, 3).unwrap_err().to_string();
        assert!(err.contains("gave up after 3 attempts"), "{err}");
        assert_eq!(runs(d.path()), 3);

        let d = tempfile::tempdir().unwrap();
        let cmd = flaky(d.path(), 5, "manifest invalid: manifest invalid");
        assert!(runner().run_retrying(&cmd, 3).is_err());
        assert_eq!(runs(d.path()), 1, "a 4xx is not retried");

        let d = tempfile::tempdir().unwrap();
        let cmd = flaky(d.path(), 5, "unauthorized: authentication required");
        let err = runner().run_retrying(&cmd, 3).unwrap_err().to_string();
        assert_eq!(runs(d.path()), 1);
        assert!(
            err.contains("the registry refused the credentials"),
            "{err}"
        );
    }
}
