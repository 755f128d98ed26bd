#!/usr/bin/env bash
# Installs redis-server (Debian's package) for the tests that share limits through Redis.
# Fast when it is installed already; needs root (as CI runs) to install.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "redis-server is not installed; as root: apt-get update && apt-get install -y redis-server" >&2
    echo "(the Redis tests are skipped without it)" >&2
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# The package may start a system service: the tests start their own servers.
if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
command -v redis-server
