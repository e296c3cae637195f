#!/bin/sh
# Installs the Debian packages the Tokio benchmark builds from:
#   librust-tokio-dev, librust-async-channel-dev  (crate sources under
#   /usr/share/cargo/registry), and Debian's cargo when no cargo is on PATH.
# Idempotent: packages already installed are left alone, and apt-get runs
# only when something is missing. Without apt (not Debian) it prints what
# to install and exits 0, leaving the decision to the caller.
set -eu

pkgs="librust-tokio-dev librust-async-channel-dev"
command -v cargo >/dev/null 2>&1 || pkgs="$pkgs cargo"

if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: apt is not available here; install by other means: $pkgs"
    exit 0
fi

missing=""
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: already installed: $pkgs"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-deps: need root to install:$missing" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
# One index refresh, then the install; --no-install-recommends keeps it to
# what the build needs.
$sudo apt-get update
# shellcheck disable=SC2086  # $missing is a word list on purpose
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
