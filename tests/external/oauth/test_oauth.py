"""Third-party clients against IdentityVault's OAuth server.

PyJWT verifies access tokens with the JWKS the server publishes; Authlib's
OAuth2Session does client_credentials (basic, post, private_key_jwt) and
RFC 8693 token exchange. Every scenario prints PASS or FAIL; the exit status
is 1 if any failed.
"""

import base64
import json
import os
import sys
import time
import traceback
import uuid

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ADDR = os.environ["IDV_ADDR"]
ADMIN = {"Authorization": "Bearer " + os.environ["IDV_TOKEN"]}
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
RESOURCE = "https://api.bank.example/ledger"

results = []


def scenario(fn):
    try:
        fn()
        results.append((fn.__name__, None))
        print(f"PASS {fn.__name__}")
    except Exception as e:  # noqa: BLE001 - report every failure
        results.append((fn.__name__, e))
        print(f"FAIL {fn.__name__}: {e!r}")
        traceback.print_exc()


def admin(method, path, body=None):
    r = requests.request(method, ADDR + path, headers=ADMIN, json=body, timeout=10)
    assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text}"
    return r.json()


def new_agent(name, scopes=("ledger:read", "ledger:write")):
    a = admin("POST", "/v1/agents", {
        "name": f"{name}-{uuid.uuid4().hex[:8]}", "owner": "alice@bank.example",
        "purpose": "external tests", "environment": "prod",
        "allowed_scopes": list(scopes), "allowed_resources": [RESOURCE],
        "authorization_details_types": ["task"],
    })
    admin("POST", f"/v1/agents/{a['id']}/activate", {"reason": "external test"})
    c = admin("POST", f"/v1/agents/{a['id']}/credentials", {"type": "client_secret"})
    assert c["client_id"] == a["id"]
    assert c["client_secret"].startswith("idvcs_")
    return a["id"], c["client_secret"]


META = requests.get(ADDR + "/.well-known/oauth-authorization-server", timeout=10).json()
TOKEN_URL = META["token_endpoint"]
JWKS = jwt.PyJWKClient(META["jwks_uri"])
CID, SECRET = new_agent("ext-bot")


def verify(token, audience):
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt", header
    assert header.get("kid"), header
    key = JWKS.get_signing_key_from_jwt(token)
    return jwt.decode(
        token, key, algorithms=["EdDSA", "ES256"], audience=audience, issuer=ADDR,
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
    )


def session(method="client_secret_basic", **kw):
    return OAuth2Session(CID, SECRET, token_endpoint_auth_method=method, **kw)


def test_metadata():
    assert META["issuer"] == ADDR
    for k in ("token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint"):
        assert META[k].startswith(ADDR), k
    assert META["grant_types_supported"] == ["client_credentials", EXCHANGE]
    assert "private_key_jwt" in META["token_endpoint_auth_methods_supported"]


def test_authlib_client_credentials_basic_and_pyjwt_verifies():
    tok = session(scope="ledger:read").fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 300 and tok["scope"] == "ledger:read", tok
    claims = verify(tok["access_token"], ADDR)
    assert claims["sub"] == CID and claims["client_id"] == CID, claims
    assert claims["scope"] == "ledger:read"
    assert claims["spiffe_id"].startswith("spiffe://") and claims["spiffe_id"].endswith(CID)
    assert claims["owner"] == "alice@bank.example" and claims["environment"] == "prod"


def test_authlib_client_secret_post_with_resource():
    tok = session("client_secret_post").fetch_token(TOKEN_URL, grant_type="client_credentials", resource=RESOURCE)
    claims = verify(tok["access_token"], RESOURCE)
    assert claims["aud"] == RESOURCE
    # The issuer is not an audience of this token.
    try:
        verify(tok["access_token"], ADDR)
        raise AssertionError("audience not checked")
    except jwt.InvalidAudienceError:
        pass


def test_authorization_details():
    details = [{"type": "task", "task_id": "T-1", "actions": ["reconcile"]}]
    tok = session().fetch_token(TOKEN_URL, grant_type="client_credentials",
                                authorization_details=json.dumps(details))
    assert verify(tok["access_token"], ADDR)["authorization_details"] == details
    r = requests.post(TOKEN_URL, auth=(CID, SECRET), timeout=10, data={
        "grant_type": "client_credentials", "authorization_details": json.dumps([{"type": "payment"}])})
    assert r.status_code == 400 and r.json()["error"] == "invalid_authorization_details", r.text


def test_rfc6749_errors():
    def post(auth, data):
        return requests.post(TOKEN_URL, auth=auth, data=data, timeout=10)
    r = post((CID, "idvcs_" + "A" * 46), {"grant_type": "client_credentials"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    assert "WWW-Authenticate" in r.headers and r.headers["Cache-Control"] == "no-store"
    for data, code in [
        ({"grant_type": "client_credentials", "scope": "admin"}, "invalid_scope"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "resource": "https://evil.example"}, "invalid_target"),
    ]:
        r = post((CID, SECRET), data)
        assert r.status_code == 400 and r.json()["error"] == code, (data, r.text)
        assert r.headers["Cache-Control"] == "no-store"


def introspect(token, auth=None, headers=None):
    r = requests.post(META["introspection_endpoint"], data={"token": token}, auth=auth,
                      headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_introspection_and_revocation():
    tok = session().fetch_token(TOKEN_URL, grant_type="client_credentials")["access_token"]
    i = introspect(tok, auth=(CID, SECRET))
    assert i["active"] is True and i["sub"] == CID and i["client_id"] == CID and "exp" in i, i
    assert introspect("garbage", auth=(CID, SECRET)) == {"active": False}
    r = requests.post(META["revocation_endpoint"], data={"token": tok}, auth=(CID, SECRET), timeout=10)
    assert r.status_code == 200, r.text
    assert introspect(tok, auth=(CID, SECRET)) == {"active": False}


def test_api_keys():
    k = admin("POST", f"/v1/agents/{CID}/credentials", {"type": "api_key", "scopes": ["ledger:read"]})
    key = k["api_key"]
    assert key.startswith("idvak_")
    i = introspect(key, auth=(CID, SECRET))
    assert i["active"] is True and i["token_type"] == "api_key" and i["scope"] == "ledger:read", i
    requests.post(META["revocation_endpoint"], data={"token": key}, auth=(CID, SECRET), timeout=10)
    assert introspect(key, auth=(CID, SECRET)) == {"active": False}


def test_suspension_stops_everything():
    cid, secret = new_agent("ext-suspend")
    s = OAuth2Session(cid, secret)
    tok = s.fetch_token(TOKEN_URL, grant_type="client_credentials")["access_token"]
    admin("POST", f"/v1/agents/{cid}/suspend", {"reason": "external test"})
    r = requests.post(TOKEN_URL, auth=(cid, secret), data={"grant_type": "client_credentials"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    assert introspect(tok, headers=ADMIN) == {"active": False}
    admin("POST", f"/v1/agents/{cid}/resume", {"reason": "external test"})
    # A resumption revives no token issued before it (issue 21 item 2).
    assert introspect(tok, headers=ADMIN) == {"active": False}
    time.sleep(0.01)
    fresh = s.fetch_token(TOKEN_URL, grant_type="client_credentials")["access_token"]
    assert introspect(fresh, headers=ADMIN)["active"] is True


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def test_private_key_jwt():
    key = Ed25519PrivateKey.generate()
    x = b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    admin("POST", f"/v1/agents/{CID}/credentials",
          {"type": "private_key_jwt", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}})
    now = int(time.time())
    assertion = jwt.encode({"iss": CID, "sub": CID, "aud": TOKEN_URL, "iat": now, "exp": now + 60,
                            "jti": str(uuid.uuid4())}, key, algorithm="EdDSA")
    data = {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}
    r = requests.post(TOKEN_URL, data=data, timeout=10)
    assert r.status_code == 200, r.text
    verify(r.json()["access_token"], ADDR)
    r = requests.post(TOKEN_URL, data=data, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", "replayed assertion: " + r.text


def test_authlib_token_exchange():
    helper, helper_secret = new_agent("ext-delegate", scopes=("ledger:read",))
    admin("POST", "/v1/delegations", {"delegator": {"type": "agent", "id": CID}, "delegate": helper,
                                      "scopes": ["ledger:read"], "ttl": "1h"})
    subject = session().fetch_token(TOKEN_URL, grant_type="client_credentials")["access_token"]
    s = OAuth2Session(helper, helper_secret)
    tok = s.fetch_token(TOKEN_URL, grant_type=EXCHANGE, subject_token=subject, subject_token_type=ACCESS)
    assert tok["issued_token_type"] == ACCESS, tok
    claims = verify(tok["access_token"], ADDR)
    assert claims["sub"] == CID and claims["act"] == {"sub": helper}, claims
    assert claims["scope"] == "ledger:read"
    r = requests.post(TOKEN_URL, auth=(helper, helper_secret), timeout=10, data={
        "grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS, "scope": "ledger:write"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text


for t in [test_metadata, test_authlib_client_credentials_basic_and_pyjwt_verifies,
          test_authlib_client_secret_post_with_resource, test_authorization_details, test_rfc6749_errors,
          test_introspection_and_revocation, test_api_keys, test_suspension_stops_everything,
          test_private_key_jwt, test_authlib_token_exchange]:
    scenario(t)

failed = [n for n, e in results if e is not None]
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
