#!/usr/bin/env bash
# Cold compile of the xtask (`cargo build -p xtask`, what every fresh clone and CI job pays
# before its first `cargo xtask`) against the bare dependency set the product card names
# (xshell, clap, cargo_metadata, git2, serde, toml, indicatif, which), each built the same way
# into a fresh target directory, in the same run. Prints both times and the ratio.
# Usage: scripts/compile-bench.sh [runs]   (default 1; the machine is noisy: compare ratios)
# SAME_PROFILE=1 gives the bare set this workspace's [profile.dev] too (the strict comparison).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/bare/src"
cat > "$work/bare/Cargo.toml" <<'TOML'
[package]
name = "bare-card"
version = "0.1.0"
edition = "2021"

[dependencies]
xshell = "0.2"
clap = { version = "4", features = ["derive"] }
cargo_metadata = "0.23"
git2 = { version = "0.21", default-features = false }
serde = { version = "1", features = ["derive"] }
toml = "1"
indicatif = "0.18"
which = "8"

[workspace]
TOML
echo 'fn main() {}' > "$work/bare/src/main.rs"
if [ "${SAME_PROFILE:-}" = 1 ]; then
    sed -n '/^\[profile.dev\]/,/^\[/p' "$root/Cargo.toml" | sed '/^\[profile.dev\]/!{/^\[/d}' >> "$work/bare/Cargo.toml"
fi

cold() { # dir, what → seconds
    local dir=$1 what=$2 target="$work/target-$RANDOM"
    local start end
    start=$(date +%s.%N)
    # shellcheck disable=SC2086 # $what is one optional flag pair
    (cd "$dir" && CARGO_TARGET_DIR=$target cargo build --quiet $what) >&2
    end=$(date +%s.%N)
    rm -rf "$target"
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

for i in $(seq 1 "$runs"); do
    bare=$(cold "$work/bare" "")
    ours=$(cold "$root" "-p xtask")
    awk -v i="$i" -v o="$ours" -v b="$bare" \
        'BEGIN { printf "run %d: xtask %.1f s, bare card set %.1f s, ratio %.2fx\n", i, o, b, o / b }'
done
