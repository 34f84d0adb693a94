#!/usr/bin/env bash
# Lints the guest side (the plugin SDK and every plugin in plugins/) for
# wasm32-wasip2 and compiles the SDK's documented example connector as a
# doctest on the host. Run after (or instead of) scripts/build-plugins.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/plugins"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
cargo fmt --all --check
cargo clippy --release --target wasm32-wasip2 --workspace --locked -- -D warnings
cargo test --doc -p billd-plugin-sdk --locked
# Connectors whose wire-format code is pure (X12 and CORE envelopes; SFTP
# upload names, cursors and pickup order; FHIR
# mapping, cursors, error mapping, SMART token handling; the agency placement
# file layout and update mapping) test it on the host.
cargo test --lib -p core-clearinghouse --locked
cargo test --lib -p sftp-clearinghouse --locked
cargo test --lib -p fhir-ehr --locked
cargo test --lib -p collections-agency --locked
