#!/usr/bin/env bash
# Installs what building and testing dci_client needs on Debian 12 (as root).
# Quick when everything is there already: only missing packages are fetched.
set -euo pipefail
pkgs=(postgresql-15 postgresql-contrib postgresql-server-dev-15 libcurl4-openssl-dev
      libjson-c-dev libssl-dev pkg-config make gcc openssl python3 python3-psycopg2 python3-pytest
      python3-cryptography clang libclang-rt-14-dev
      debhelper postgresql-server-dev-all dpkg-dev)   # the last three: make deb and its test
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "run as root (or install: ${missing[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's postgresql package starts a default cluster; the suite runs its own.
