#!/usr/bin/env bash
# A third-party client against the real server: Schemathesis generates
# requests from our /openapi.json (coverage, fuzzing and stateful phases) and
# checks that nothing is a server error and that every status code, content
# type and response body is the documented one.
#
# Usage: tests/external/schemathesis.sh [path/to/idv]   (default target/debug/idv)
set -euo pipefail
cd "$(dirname "$0")/../.."

IDV="${1:-target/debug/idv}"
VENV="${IDV_EXTERNAL_VENV:-target/external-venv}"
SCHEMATHESIS_VERSION="4.32.5"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==${SCHEMATHESIS_VERSION}"
fi

DATA="$(mktemp -d)"
TOKEN="idv-external-tests-bootstrap-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Webhook subscriptions it makes may name any host: deliveries stay on loopback.
# Schemathesis sends thousands of requests with invalid credentials from one
# address and expects 401 for each: a failure budget above that.
IDV_AUTH_FAILURE_LIMIT=1000000 IDV_WEBHOOK_HOSTS=127.0.0.1,localhost IDV_BOOTSTRAP_TOKEN="$TOKEN" IDV_LOG=warn "$IDV" serve --listen 127.0.0.1:0 --data-dir "$DATA" > "$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT

ADDR=""
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's/^IdentityVault listening on //p' "$DATA/serve.log")"
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { cat "$DATA/serve.log"; echo "idv serve did not start" >&2; exit 1; }

# DELETE is left out: the stateful phase would revoke the very token it uses.
# positive_data_acceptance is left out: the schema does not (yet) express every
# input rule (UUID formats, enums, limit bounds), so schema-valid data can be
# refused with a documented 4xx.
"$VENV/bin/schemathesis" run "$ADDR/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all --exclude-checks positive_data_acceptance \
  --exclude-method DELETE \
  --max-examples 50 \
  --seed 1
