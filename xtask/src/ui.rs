//! Human output on stderr: plain status lines in CI and pipes, spinners on a terminal,
//! `::group::` sections under GitHub Actions.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Machine output (references, JSON, `--dry-run` commands) goes through `out!`: one line on
/// stdout. A reader that went away (`… | head`) is not an error: output stops, the work goes
/// on (a push is never cut short by a closed pipe), and the exit status is the work's.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::ui::write_out(format_args!($($t)*))
    };
}
pub(crate) use out;

/// Colour on stderr: on a terminal unless `NO_COLOR` is set or `TERM=dumb`; forced by
/// `CLICOLOR_FORCE` (never in pipes and CI logs otherwise).
pub fn colour() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    if set("NO_COLOR") {
        return false;
    }
    if std::env::var("CLICOLOR_FORCE").is_ok_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    if std::env::var("TERM").is_ok_and(|t| t == "dumb") {
        return false;
    }
    std::io::stderr().is_terminal()
}

/// `word` in an ANSI colour (31 red, 32 green, 33 yellow) when colour is on.
pub fn paint(word: &str, code: u8) -> String {
    if colour() {
        format!("\x1b[{code}m{word}\x1b[0m")
    } else {
        word.to_string()
    }
}

static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// A write to stdout failed for another reason than a reader that went away (a full disk):
/// the output is incomplete, so the run fails.
static STDOUT_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether some machine output could not be written (not a closed pipe).
pub fn stdout_failed() -> bool {
    STDOUT_FAILED.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn write_out(line: std::fmt::Arguments) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    if let Err(e) = writeln!(o, "{line}").and_then(|_| o.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            STDOUT_FAILED.store(true, Ordering::Relaxed);
            eprintln!("error: cannot write to stdout: {e}");
        }
    }
}

/// Rows of cells as lines, each column padded to its widest cell (two spaces between).
pub fn columns(rows: &[Vec<String>]) -> Vec<String> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect()
}

pub struct Ui {
    bars: Option<MultiProgress>,
    github: bool,
    quiet: bool,
    lock: Mutex<()>,
}

impl Ui {
    pub fn new(quiet: bool, github_actions: bool) -> Ui {
        let tty = std::io::stderr().is_terminal();
        Ui {
            bars: (tty && !quiet && !github_actions).then(MultiProgress::new),
            github: github_actions,
            quiet,
            lock: Mutex::new(()),
        }
    }

    /// A line for a person, always shown (even with progress bars).
    pub fn info(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        self.line(msg.as_ref());
    }

    /// A warning; `-q` silences it too (only errors remain).
    pub fn warn(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        self.line(&format!("{} {}", paint("warning:", 33), msg.as_ref()));
    }

    /// A problem at a place in a file: `file:line: error: msg`, and under GitHub Actions an
    /// `::error` annotation the pull request shows on that line.
    pub fn problem(&self, file: &str, line: Option<usize>, msg: &str) {
        let at = match line {
            Some(l) => format!("{file}:{l}"),
            None => file.to_string(),
        };
        if self.github {
            // Workflow commands end at a newline; `%`, CR and LF are escaped.
            let esc = |s: &str| {
                s.replace('%', "%25")
                    .replace('\r', "%0D")
                    .replace('\n', "%0A")
            };
            let prop = |s: &str| esc(s).replace(':', "%3A").replace(',', "%2C");
            let mut props = format!("file={}", prop(file));
            if let Some(l) = line {
                props.push_str(&format!(",line={l}"));
            }
            self.line(&format!("::error {props}::{}", esc(msg)));
        }
        self.line(&format!("{at}: {} {msg}", paint("error:", 31)));
    }

    fn line(&self, msg: &str) {
        let _guard = self.lock.lock();
        match &self.bars {
            Some(b) => {
                let _ = b.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    /// Output of a failed or verbose command, folded into a group under GitHub Actions.
    pub fn block(&self, title: &str, body: &str) {
        let _guard = self.lock.lock();
        let text = if self.github {
            format!("::group::{title}\n{body}\n::endgroup::")
        } else {
            format!("--- {title}\n{body}")
        };
        match &self.bars {
            Some(b) => {
                let _ = b.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// A task with a spinner (terminal) or start/finish lines (elsewhere).
    pub fn task(&self, name: &str) -> Task {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>12} {wide_msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Task {
            name: name.to_string(),
            bar,
            quiet: self.quiet,
        }
    }
}

pub struct Task {
    name: String,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Task {
    pub fn step(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None if !self.quiet => eprintln!("[{}] {msg}", self.name),
            None => {}
        }
    }

    pub fn finish(self, msg: &str) {
        match &self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None if !self.quiet => eprintln!("[{}] {msg}", self.name),
            None => {}
        }
    }
}
