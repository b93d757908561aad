//! Human output on stderr: plain status lines in CI and pipes, spinners on a terminal,
//! `::group::` sections under GitHub Actions.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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

    pub fn warn(&self, msg: impl AsRef<str>) {
        self.line(&format!("warning: {}", msg.as_ref()));
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
