//! Checks on the repository itself: the CLI is well-formed, only the runner spawns, every
//! module says what it owns.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn src_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

#[test]
fn cli_is_well_formed() {
    crate::cli::Cli::command().debug_assert();
}

#[test]
fn only_the_runner_spawns() {
    let files = src_files();
    assert!(files.len() > 10, "found only {} source files", files.len());
    let forbidden = ["process::Command", "xshell", "Command::new("];
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap();
        if name == "exec.rs" || name == "tidy.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} uses `{word}`: only exec.rs may spawn processes",
                f.display()
            );
        }
    }
}

#[test]
fn every_module_says_what_it_owns() {
    for f in src_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let is_test_module = f.file_name().is_some_and(|n| n == "tests.rs");
        assert!(
            is_test_module || text.starts_with("//!"),
            "{} does not start with a `//!` sentence saying what it owns",
            f.display()
        );
    }
}

#[test]
fn tool_modules_neither_print_nor_read_the_environment() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tools");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        for word in ["println!", "eprintln!", "std::env::var"] {
            assert!(!text.contains(word), "{} uses `{word}`", p.display());
        }
    }
}

#[test]
fn machine_output_goes_through_out() {
    for f in src_files() {
        let name = f.file_name().unwrap().to_str().unwrap();
        if name == "ui.rs" || name == "tidy.rs" || name == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let bare = text
            .match_indices("println!(")
            .any(|(i, _)| i == 0 || !text[..i].ends_with('e'));
        assert!(
            !bare && !text.contains("print!("),
            "{} writes to stdout with println!/print!: use `out!` (a closed pipe must not panic)",
            f.display()
        );
    }
}

/// The in-tree manifest reader (what `[cargo]` services and change detection use, with no
/// process spawned) agrees with `cargo metadata` on this repository and on a fixture with
/// every way of declaring binaries.
#[test]
fn the_manifest_reader_agrees_with_cargo_metadata() {
    fn cargo_view(root: &Path) -> Vec<(String, PathBuf, Vec<String>)> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta =
            cargo_metadata::MetadataCommand::parse(String::from_utf8_lossy(&out.stdout)).unwrap();
        let root = root.canonicalize().unwrap();
        let mut v: Vec<(String, PathBuf, Vec<String>)> = meta
            .workspace_packages()
            .iter()
            .map(|p| {
                let dir = p.manifest_path.parent().unwrap().as_std_path();
                let mut bins: Vec<String> = p
                    .targets
                    .iter()
                    .filter(|t| t.is_bin())
                    .map(|t| t.name.clone())
                    .collect();
                bins.sort();
                (
                    p.name.to_string(),
                    dir.strip_prefix(&root).unwrap_or(dir).to_path_buf(),
                    bins,
                )
            })
            .collect();
        v.sort();
        v
    }
    fn ours(root: &Path) -> Vec<(String, PathBuf, Vec<String>)> {
        let mut v: Vec<_> = crate::changes::crates::disk_packages(root)
            .into_iter()
            .map(|p| (p.name, p.dir, p.bins))
            .collect();
        v.sort();
        v
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert_eq!(ours(repo), cargo_view(repo));

    let d = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = d.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "Cargo.toml",
        "[workspace]\nresolver = \"2\"\nmembers = [\"apps/*\", \"tools/cli\"]\nexclude = [\"apps/skip\"]\n",
    );
    w(
        "apps/one/Cargo.toml",
        "[package]\nname = \"one\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"extra\"\npath = \"src/extra.rs\"\n",
    );
    w("apps/one/src/main.rs", "fn main() {}\n");
    w("apps/one/src/extra.rs", "fn main() {}\n");
    w("apps/one/src/bin/tool.rs", "fn main() {}\n");
    w("apps/one/src/bin/multi/main.rs", "fn main() {}\n");
    w(
        "apps/two/Cargo.toml",
        "[package]\nname = \"two\"\nversion = \"0.1.0\"\nedition = \"2021\"\nautobins = false\n\n[[bin]]\nname = \"only\"\npath = \"src/main.rs\"\n",
    );
    w("apps/two/src/main.rs", "fn main() {}\n");
    w("apps/two/src/bin/ignored.rs", "fn main() {}\n");
    w(
        "apps/skip/Cargo.toml",
        "[package]\nname = \"skip\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    w("apps/skip/src/lib.rs", "\n");
    w(
        "tools/cli/Cargo.toml",
        "[package]\nname = \"cli-tool\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    w("tools/cli/src/lib.rs", "\n");
    assert_eq!(ours(d.path()), cargo_view(d.path()));
}

/// Every `cargo xtask …` line in the GitHub workflows parses with this CLI (variables stand
/// for a value), and every `make …` target exists: the YAML wires commands, it cannot drift.
#[test]
fn every_xtask_and_make_line_in_the_workflows_parses() {
    use clap::Parser;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    let mut seen = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", f.display(), n + 1);
            if line.trim_start().starts_with('#') {
                continue;
            }
            if let Some(i) = line.find("cargo xtask ") {
                let rest = &line[i + "cargo xtask ".len()..];
                let rest = rest.split(" #").next().unwrap();
                let words =
                    shlex::split(rest).unwrap_or_else(|| panic!("{at}: cannot split {rest}"));
                let words: Vec<String> = words
                    .into_iter()
                    .map(|w| {
                        if w.starts_with('$') {
                            "api".to_string()
                        } else {
                            w
                        }
                    })
                    .collect();
                let argv = std::iter::once("cargo xtask".to_string()).chain(words.clone());
                if let Err(e) = crate::cli::Cli::try_parse_from(argv) {
                    panic!(
                        "{at}: `cargo xtask {}` does not parse: {e}",
                        words.join(" ")
                    );
                }
                seen += 1;
            }
            if let Some(i) = line.find("make ") {
                let target = line[i + 5..]
                    .split_whitespace()
                    .find(|w| !w.contains('=') && !w.starts_with('-'));
                if let Some(t) = target {
                    assert!(
                        makefile.lines().any(|l| l.starts_with(&format!("{t}:"))),
                        "{at}: make target `{t}` does not exist"
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 5, "only {seen} commands found in the workflows");
}
