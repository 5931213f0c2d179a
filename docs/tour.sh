#!/usr/bin/env bash
# The README's "CLI quick tour", run for real against a fresh server, so the
# tour cannot rot (CI runs it: .ci/run). Usage: bash docs/tour.sh [path/to/idv]
# Starts its own `idv serve` on a free port in a temporary data directory,
# runs every step of the tour in the README's order, and stops the server.
# The dynamic-database part needs PostgreSQL at 127.0.0.1:5432 (user
# postgres, as in CI); without it that part prints SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/.."

IDV_BIN="$(realpath "${1:-target/debug/idv}")"
[ -x "$IDV_BIN" ] || { echo "error: no idv binary at $IDV_BIN (cargo build -p idv)" >&2; exit 1; }
idv() { "$IDV_BIN" "$@"; }
EX=docs/examples
WORK="$(mktemp -d)"
SERVER_PID=""
LEDGER_DB=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ -n "$LEDGER_DB" ]; then
        psql -h 127.0.0.1 -U postgres -d postgres -q -c "DROP DATABASE IF EXISTS $LEDGER_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
# The value of `key: value` in an idv command's output.
field() { sed -n "s/^$1: *//p" | head -n 1; }
json() { python3 -c "import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split('.'): v=v[int(k)] if k.isdigit() else v[k]
print(v)" "$1"; }

step "idv serve (fresh data directory $WORK/idv-data)"
IDV_LOG=warn "$IDV_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/idv-data" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    grep -q '^Admin bootstrap token' "$WORK/serve.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
    sleep 0.1
done
IDV_ADDR="$(sed -n 's/^IdentityVault listening on //p' "$WORK/serve.log")"
IDV_TOKEN="$(sed -n 's/^Admin bootstrap token (shown once, store it now): //p' "$WORK/serve.log")"
[ -n "$IDV_ADDR" ] && [ -n "$IDV_TOKEN" ] || { cat "$WORK/serve.log" >&2; exit 1; }
export IDV_ADDR IDV_TOKEN
echo "IDV_ADDR=$IDV_ADDR"
unset IDV_TENANT

step "agents"
ID="$(idv agent create --name billing-bot --owner alice@bank.example \
    --purpose "reconcile invoices" --environment prod --label team=fin --ttl 8h \
    --class payments --allow-scope ledger:read --json | json id)"
echo "agent $ID"
idv agent list --environment prod --label team=fin
idv agent get "$ID"
idv agent update "$ID" --team payments --clear environment
idv agent activate "$ID" --reason "approved in CHG-1234"
idv agent suspend "$ID" --reason "incident INC-9"
idv agent resume "$ID" --reason "INC-9 closed"
idv agent import "$EX/agents.jsonl"
idv agent export --format csv -o "$WORK/inventory.csv"
wc -l <"$WORK/inventory.csv"

step "credentials and tokens"
idv credential create "$ID" --type client-secret
idv credential create "$ID" --type api-key --scope ledger:read --ttl 90d
idv credential list "$ID"
CRED_ID="$(idv credential list "$ID" --json | python3 -c "import json,sys
print([c['id'] for c in json.load(sys.stdin)['items'] if c['type']=='client_secret'][0])")"
ROTATED="$(idv credential rotate "$CRED_ID" --overlap 1h --json)"
SECRET="$(json successor.client_secret <<<"$ROTATED")"
idv credential history "$CRED_ID"
idv rotation-policy set --class payments --every 30d --overlap 1d
idv key list
idv key rotate --publish-ahead 2h --reason "tour"
curl -sf -u "$ID:$SECRET" -d grant_type=client_credentials "$IDV_ADDR/oauth2/token" | json token_type

step "tenants and admin tokens"
idv tenant create acme --display-name "Acme Bank"
idv admin-token create --name ci --role operator --tenant acme --expires-in 90d
idv admin-token list --tenant acme
idv admin-token whoami

step "policies, roles, decisions, approvals"
idv policy upload "$EX/payments.cedar" --schema "$EX/payments.cedarschema" --activate
idv role put payer --description "moves money" && idv grant create class payments --role payer
PEP="$(idv admin-token create --name gateway --role pep --json | json token)"   # what a gateway (PEP) uses
IDV_TOKEN="$PEP" idv decide --subject "agent:$ID" --action transfer --resource Resource:acct-1 --context '{"amount": 50}'
IDV_TOKEN="$PEP" idv decide --subject "agent:$ID" --action transfer --resource Resource:acct-1 --context '{"amount": 500}'
APPROVAL="$(IDV_TOKEN="$PEP" idv decide --subject "agent:$ID" --action transfer --resource Resource:acct-1 \
    --context '{"amount": 500}' --json | json context.approval.id)"
idv approval list --status pending && idv approval approve "$APPROVAL" --comment "checked"
IDV_TOKEN="$PEP" idv decide --subject "agent:$ID" --action transfer --resource Resource:acct-1 --context '{"amount": 500}'
IDV_TOKEN="$PEP" idv decide --subject "agent:$ID" --action transfer --resource Resource:acct-1 --context '{"amount": 20000}'
idv policy test "$EX/requests.json" --subject "agent:$ID" --file "$EX/draft.cedar" --schema "$EX/payments.cedarschema"

step "dynamic PostgreSQL credentials"
if command -v psql >/dev/null && psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'SELECT 1' >/dev/null 2>&1; then
    LEDGER_DB="idv_tour_ledger_$$"
    psql -h 127.0.0.1 -U postgres -d postgres -q -c "CREATE DATABASE $LEDGER_DB"
    psql -h 127.0.0.1 -U postgres -d "$LEDGER_DB" -q -c "CREATE TABLE accounts (id text PRIMARY KEY, balance bigint)"
    idv db target set ledger --url "postgres://postgres@127.0.0.1:5432/$LEDGER_DB"
    idv db template set ledger-ro --target ledger --grant 'GRANT SELECT ON accounts TO {{name}}' --max-ttl 4h
    IDV_CLIENT_ID="$ID" IDV_CLIENT_SECRET="$SECRET" idv db creds ledger-ro --ttl 15m
    LEASE="$(idv lease list --state active --json | json items.0.id)"
    idv lease list --state active && idv lease revoke "$LEASE"
else
    echo "SKIPPED: dynamic PostgreSQL credentials (no psql or no PostgreSQL at 127.0.0.1:5432)"
fi

step "webhooks"
HOOK="$(idv webhook create --url https://hooks.bank.example/idv --event 'agent.*' --event credential.rotated --json \
    | json webhook.id)"
idv webhook deliveries "$HOOK" --status failed

step "an incident: revoke every credential of the agent"
idv credential compromised "$ID" --reason "leaked in a log"
if curl -sf -u "$ID:$SECRET" -d grant_type=client_credentials "$IDV_ADDR/oauth2/token" >/dev/null; then
    echo "error: a revoked secret still gets tokens" >&2
    exit 1
fi

step "audit"
idv audit list --action agent.activate
idv audit verify

step "stop the server, verify the audit chain offline"
kill "$SERVER_PID" && wait "$SERVER_PID" || true
SERVER_PID=""
idv audit verify --data-dir "$WORK/idv-data"

printf '\nThe tour ran green.\n'
