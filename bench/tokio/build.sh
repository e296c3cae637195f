#!/bin/sh
# Builds blitz_tokio_bench and tokio_echo into bench/tokio/target/release/,
# offline, from Debian's crate registry (see .cargo/config.toml). Extra
# arguments go to cargo, e.g. ./build.sh -v.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# Cargo finds .cargo/config.toml from the working directory, so build here.
cd "$here"

registry=/usr/share/cargo/registry
if ! ls -d "$registry"/tokio-1.* "$registry"/async-channel-1.* >/dev/null 2>&1 \
    || ! command -v cargo >/dev/null 2>&1; then
    ./install-deps.sh
fi

# Cargo.lock is committed (format v3, readable by bookworm's cargo 0.66 and
# by current rustup cargo). Without --locked, a Debian point release that
# replaces a crate version re-resolves instead of failing; the lockfile then
# shows up as modified.
cargo build --release --offline "$@"

echo "built: $here/target/release/blitz_tokio_bench"
echo "       $here/target/release/tokio_echo"
