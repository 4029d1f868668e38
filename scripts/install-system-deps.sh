#!/usr/bin/env bash
# Install the Debian packages the test suite runs for real:
#   postgresql       throwaway PostgreSQL clusters (tests/pg.py)
#   docker-registry  an OCI registry on 127.0.0.1 for end-to-end tests
#   skopeo           pushes test images to that registry
#   notary           Notary 0.7.0 (server, signer, CLI): the peer trustctl reads and migrates from,
#                    and the reference the Notary-dialect tests compare our server with
#   faketime         runs a client at a later time (expired-metadata tests)
#   mariadb-server   a throwaway MariaDB holding a notary-server 0.7.0 database
#                    (tests of notary-server import-notary; tests/mariadb.py)
#   docker.io        only when no `docker` client is on PATH: `docker trust`
#                    commands of the Notary-dialect tests (no engine is used)
#
# Idempotent: installs only what `dpkg -s` reports missing, and runs
# `apt-get update` only when something is. Run as root, or as a user with sudo.
# Installing postgresql may start the distribution's own cluster service; the
# tests do not use it (they start their own clusters on free ports).
set -euo pipefail

# iproute2 and util-linux (unshare): the deploy gate's offline test runs in a network namespace
PACKAGES=(postgresql docker-registry skopeo notary faketime mariadb-server iproute2 util-linux)
if ! command -v docker >/dev/null; then
    PACKAGES+=(docker.io)
fi

if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
    echo "install-system-deps: not a Debian system (no dpkg/apt-get); install ${PACKAGES[*]} yourself" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed$'; then
        echo "install-system-deps: $pkg already installed"
    else
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-system-deps: nothing to do"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "install-system-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
fi

echo "install-system-deps: installing ${missing[*]}"
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-system-deps: installed ${missing[*]}"
