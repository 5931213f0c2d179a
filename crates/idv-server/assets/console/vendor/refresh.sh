#!/usr/bin/env bash
# Refreshes the console's vendored front-end libraries from the npm
# registry (no Node.js is needed to build or run the server: the files are
# committed and embedded in the binary). Usage: refresh.sh [htmx-version]
set -euo pipefail
cd "$(dirname "$0")"
HTMX="${1:-2.0.11}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@${HTMX}" >/dev/null && tar xzf htmx.org-*.tgz)
cp "$tmp/package/dist/htmx.min.js" htmx.min.js
cp "$tmp/package/LICENSE" LICENSE-htmx
echo "htmx.org ${HTMX} (npm), dist/htmx.min.js; licence: LICENSE-htmx (0BSD)" > VERSIONS
sha256sum htmx.min.js >> VERSIONS
cat VERSIONS
