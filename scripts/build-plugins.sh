#!/usr/bin/env bash
# Builds every plugin crate in plugins/ (billd's connectors, the template,
# and the test plugins: well-behaved and hostile) for wasm32-wasip2 in
# release mode, then lays each one out as a package the host can load:
#   plugins/dist/<name>/plugin.toml
#   plugins/dist/<name>/<component>.wasm
# The host's tests and benchmarks load packages from plugins/dist.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/plugins"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

locked=()
if [[ -f Cargo.lock ]]; then locked=(--locked); fi
cargo build --release --target wasm32-wasip2 --workspace "${locked[@]}"
# Where cargo put the build: honours CARGO_TARGET_DIR and build.target-dir.
target_dir="$(cargo metadata --no-deps --format-version 1 "${locked[@]}" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[[ -n "$target_dir" ]] || target_dir="$root/plugins/target"

out="$root/plugins/dist"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
count=0
while IFS= read -r manifest; do
    dir="$(dirname "$manifest")"
    name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n1)"
    component="$(sed -n 's/^component *= *"\(.*\)"/\1/p' "$manifest" | head -n1)"
    [[ -n "$component" ]] || component="$name.wasm"
    wasm="$target_dir/wasm32-wasip2/release/$component"
    if [[ ! -f "$wasm" ]]; then
        echo "build-plugins: $manifest names component $component, but $wasm was not built" >&2
        exit 1
    fi
    mkdir -p "$out.tmp/$name"
    cp "$manifest" "$out.tmp/$name/plugin.toml"
    cp "$wasm" "$out.tmp/$name/$component"
    count=$((count + 1))
done < <(find . -path ./target -prune -o -path ./dist -prune -o -path ./dist.tmp -prune -o -name plugin.toml -print | sort)
rm -rf "$out"
mv "$out.tmp" "$out"
echo "build-plugins: $count plugin packages in plugins/dist"
