//! `cargo` commands: static release binaries for services whose image
//! takes a host-compiled binary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::CommandSpec;

/// Rust target triple for a container platform.
pub fn rust_target(platform: &str) -> Result<&'static str> {
    Ok(match platform {
        "linux/amd64" => "x86_64-unknown-linux-gnu",
        "linux/arm64" | "linux/arm64/v8" => "aarch64-unknown-linux-gnu",
        "linux/arm/v7" => "armv7-unknown-linux-gnueabihf",
        "linux/riscv64" => "riscv64gc-unknown-linux-gnu",
        "linux/s390x" => "s390x-unknown-linux-gnu",
        "linux/ppc64le" => "powerpc64le-unknown-linux-gnu",
        other => bail!("no Rust target is known for platform `{other}`: build this service with a Dockerfile that compiles inside the image instead of [cargo]"),
    })
}

/// `rustc -vV` (its `host:` line names the host target) and `rustc --print sysroot`.
pub fn rustc_version(rustc: &str) -> CommandSpec {
    CommandSpec::new(rustc).arg("-vV")
}

pub fn rustc_sysroot(rustc: &str) -> CommandSpec {
    CommandSpec::new(rustc).args(["--print", "sysroot"])
}

/// The host target from `rustc -vV` output.
pub fn parse_host(verbose_version: &str) -> Option<&str> {
    verbose_version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::trim)
}

/// For a cross target: the gcc that links for it and the Debian package that has it.
pub fn cross_linker(target: &str) -> (String, String) {
    let gcc = match target {
        "aarch64-unknown-linux-gnu" => "aarch64-linux-gnu",
        "armv7-unknown-linux-gnueabihf" => "arm-linux-gnueabihf",
        "riscv64gc-unknown-linux-gnu" => "riscv64-linux-gnu",
        "s390x-unknown-linux-gnu" => "s390x-linux-gnu",
        "powerpc64le-unknown-linux-gnu" => "powerpc64le-linux-gnu",
        "x86_64-unknown-linux-gnu" => "x86-64-linux-gnu",
        other => other,
    };
    (format!("{gcc}-gcc"), format!("gcc-{gcc}"))
}

/// The directory name a platform's binary is staged under (`bin/<arch>/`), matching
/// BuildKit's `TARGETARCH`.
pub fn arch_dir(platform: &str) -> &str {
    platform.split('/').nth(1).unwrap_or(platform)
}

/// One `cargo build` for every binary and target, statically linked so the binaries run in a
/// `scratch` image.
pub fn build_static(
    cargo: &str,
    target_dir: &Path,
    targets: &[&str],
    bins: &[(String, String)],
) -> CommandSpec {
    let mut cmd = CommandSpec::new(cargo)
        .args(["build", "--release", "--target-dir"])
        .arg(target_dir.display().to_string())
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    for t in targets {
        cmd = cmd.arg("--target").arg(*t);
    }
    let mut packages: Vec<&String> = bins.iter().map(|(p, _)| p).collect();
    packages.sort();
    packages.dedup();
    for p in packages {
        cmd = cmd.arg("--package").arg(p);
    }
    for (_, b) in bins {
        cmd = cmd.arg("--bin").arg(b);
    }
    cmd
}

/// Where `build_static` leaves a binary.
pub fn binary_path(target_dir: &Path, target: &str, bin: &str) -> PathBuf {
    target_dir.join(target).join("release").join(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_build_argv() {
        let cmd = build_static(
            "cargo",
            Path::new("target/slipway/cargo"),
            &["x86_64-unknown-linux-gnu"],
            &[
                ("worker".into(), "worker".into()),
                ("api".into(), "api".into()),
            ],
        );
        assert_eq!(
            cmd.argv(),
            [
                "cargo",
                "build",
                "--release",
                "--target-dir",
                "target/slipway/cargo",
                "--target",
                "x86_64-unknown-linux-gnu",
                "--package",
                "api",
                "--package",
                "worker",
                "--bin",
                "worker",
                "--bin",
                "api"
            ]
        );
        assert_eq!(cmd.env["RUSTFLAGS"], "-C target-feature=+crt-static");
        assert_eq!(
            binary_path(Path::new("t"), "x86_64-unknown-linux-gnu", "api"),
            Path::new("t/x86_64-unknown-linux-gnu/release/api")
        );
    }

    #[test]
    fn host_and_cross_linkers() {
        let out = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n";
        assert_eq!(parse_host(out), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(
            cross_linker("aarch64-unknown-linux-gnu"),
            (
                "aarch64-linux-gnu-gcc".to_string(),
                "gcc-aarch64-linux-gnu".to_string()
            )
        );
        assert_eq!(
            rustc_sysroot("rustc").argv(),
            ["rustc", "--print", "sysroot"]
        );
    }

    #[test]
    fn platforms_map_to_targets_and_arch_dirs() {
        assert_eq!(
            rust_target("linux/amd64").unwrap(),
            "x86_64-unknown-linux-gnu"
        );
        assert_eq!(
            rust_target("linux/arm64").unwrap(),
            "aarch64-unknown-linux-gnu"
        );
        assert!(rust_target("windows/amd64")
            .unwrap_err()
            .to_string()
            .contains("windows/amd64"));
        assert_eq!(arch_dir("linux/amd64"), "amd64");
        assert_eq!(arch_dir("linux/arm/v7"), "arm");
    }
}
