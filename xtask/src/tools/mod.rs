//! Typed commands for the external tools. Each submodule turns options into a [`CommandSpec`]
//! and parses that tool's output; none of them spawns, prints or reads the environment.

pub mod aws;
pub mod cargo;
pub mod cosign;
pub mod curl;
pub mod docker;
pub mod lint;
pub mod skopeo;
pub mod trivy;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One external command, fully prepared: what the runner executes and what `--dry-run` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment for this command (on top of the inherited one).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Bytes fed on standard input (passwords go here, never in argv). Never printed.
    #[serde(skip)]
    pub stdin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Its standard output is a secret (a password): never streamed, even under `-v`.
    #[serde(skip)]
    pub secret_output: bool,
}

impl CommandSpec {
    pub fn new(program: impl Into<String>) -> CommandSpec {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            stdin: None,
            cwd: None,
            secret_output: false,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> CommandSpec {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> CommandSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> CommandSpec {
        self.env.insert(key.into(), value.into());
        self
    }

    /// `argv[0]` and the arguments, for asserting whole vectors in tests.
    #[cfg(test)]
    pub fn argv(&self) -> Vec<&str> {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect()
    }
}

impl CommandSpec {
    /// Shell-quoted, as a person would paste it: `(cd DIR && ENV=v program args…)`, with
    /// `mask` applied to every word before quoting (so quoting cannot split a secret).
    pub fn render(&self, mask: &dyn Fn(&str) -> String) -> String {
        let mut words: Vec<String> = Vec::new();
        for (k, v) in &self.env {
            words.push(format!("{k}={}", quote(&mask(v))));
        }
        words.push(quote(&mask(&self.program)));
        words.extend(self.args.iter().map(|a| quote(&mask(a))));
        let line = words.join(" ");
        match &self.cwd {
            Some(dir) => format!("(cd {} && {line})", quote(&dir.display().to_string())),
            None => line,
        }
    }
}

impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&|w| w.to_string()))
    }
}

fn quote(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", word.replace('\0', "")))
}
