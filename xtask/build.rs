//! Records the commit the xtask is built from, for `cargo xtask --version`.

fn main() {
    // A checkout without git (a source tarball) says so instead of failing the build.
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=9", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown commit".to_string());
    println!("cargo:rustc-env=SLIPWAY_COMMIT={commit}");
    // Rebuilt when HEAD moves (a branch switch or a commit on the current branch).
    for p in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        println!("cargo:rerun-if-changed={p}");
    }
}
