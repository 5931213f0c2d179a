#!/usr/bin/env bash
# Third-party OAuth code against the real server: PyJWT verifies our access
# tokens against our JWKS; Authlib's OAuth 2.0 client performs
# client_credentials (client_secret_basic, client_secret_post,
# private_key_jwt) and RFC 8693 token exchange; plain `requests` checks
# introspection, revocation and the RFC 6749 error format.
#
# Usage: tests/external/oauth/run.sh [path/to/idv]   (default target/debug/idv)
set -euo pipefail
cd "$(dirname "$0")/../../.."

IDV="${1:-target/debug/idv}"
VENV="${IDV_EXTERNAL_OAUTH_VENV:-target/external-venv-oauth}"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import jwt, authlib, requests" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "PyJWT[crypto]==2.10.1" "authlib==1.6.5" "requests==2.32.3" "cryptography==44.0.0"
fi

DATA="$(mktemp -d)"
TOKEN="idv-external-oauth-bootstrap-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
IDV_BOOTSTRAP_TOKEN="$TOKEN" IDV_LOG=warn "$IDV" serve --listen 127.0.0.1:0 --data-dir "$DATA" > "$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT

ADDR=""
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's/^IdentityVault listening on //p' "$DATA/serve.log")"
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { cat "$DATA/serve.log"; echo "idv serve did not start" >&2; exit 1; }

IDV_ADDR="$ADDR" IDV_TOKEN="$TOKEN" "$VENV/bin/python" tests/external/oauth/test_oauth.py
