#!/bin/sh
# Installs the Debian packages scoreloss needs, only those missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -eu

PACKAGES="build-essential meson ninja-build pkg-config libgsl-dev libopenblas-dev liblapacke-dev check gnuplot-nox python3 python3-numpy libopenmpi-dev openmpi-bin"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing" >&2
    echo "deps: run as root:  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
