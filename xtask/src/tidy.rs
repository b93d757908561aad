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
