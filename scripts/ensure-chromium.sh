#!/bin/sh
# Install Debian's chromium for the Trading page's browser test (tests/ui), only when it is missing.
# Idempotent and quiet; needs root (or sudo) the first time. `make test` calls it.
set -e
command -v chromium >/dev/null 2>&1 && exit 0
[ -x /usr/bin/chromium ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "ensure-chromium: installed $(chromium --version 2>/dev/null)"
