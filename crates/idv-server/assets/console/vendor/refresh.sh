#!/usr/bin/env bash
# Refreshes the console's vendored front-end libraries from the npm
# registry (no Node.js is needed to build or run the server: the files are
# committed and embedded in the binary).
# Usage: refresh.sh [htmx-version] [echarts-version]
set -euo pipefail
cd "$(dirname "$0")"
HTMX="${1:-2.0.11}"
ECHARTS="${2:-6.1.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@${HTMX}" >/dev/null && mkdir htmx && tar xzf htmx.org-*.tgz -C htmx)
(cd "$tmp" && npm pack --silent "echarts@${ECHARTS}" >/dev/null && mkdir echarts && tar xzf echarts-*.tgz -C echarts)
cp "$tmp/htmx/package/dist/htmx.min.js" htmx.min.js
cp "$tmp/htmx/package/LICENSE" LICENSE-htmx
cp "$tmp/echarts/package/dist/echarts.min.js" echarts.min.js
cp "$tmp/echarts/package/LICENSE" LICENSE-echarts
cp "$tmp/echarts/package/NOTICE" NOTICE-echarts
{
  echo "htmx.org ${HTMX} (npm), dist/htmx.min.js; licence: LICENSE-htmx (0BSD)"
  echo "echarts ${ECHARTS} (npm), dist/echarts.min.js; licence: LICENSE-echarts (Apache-2.0), NOTICE-echarts"
} > VERSIONS
sha256sum htmx.min.js echarts.min.js >> VERSIONS
cat VERSIONS
