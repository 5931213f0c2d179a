#!/usr/bin/env bash
# The console's browser tests: installs what they need on a fresh machine
# (Debian's chromium; playwright-core and axe-core from npm, pinned in
# package-lock.json), then drives the console in the browser.
# Usage: tests/console/run.sh path/to/idv [screenshot-dir]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
idv="$(realpath "${1:?usage: run.sh path/to/idv [screenshot-dir]}")"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
cd "$here"
npm ci --no-audit --no-fund --silent
node console.test.mjs "$idv" "${2:-}"
