//! Recognising our own tokens, whether they are still active, and the
//! introspection endpoint (RFC 7662).

use std::collections::BTreeSet;

use idv_core::access_token::{self, Checked};
use idv_core::admin_token;
use idv_core::agent::spiffe_id;
use idv_core::credential::{API_KEY, CLIENT_SECRET, Credential, Kind};
use idv_core::delegation;
use idv_core::jose;
use idv_core::lifecycle::Status;
use idv_core::tenant::Tenant;
use idv_store::Context;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::token::grants_of;
use super::{Caller, Issuer, OAuthError, issuer};
use crate::AppState;
use crate::app::request;
use crate::app::{AppError, cache, keys};

/// A token we recognised and whose signature (or hash) checked out.
pub(super) enum Known {
    /// One of our JWT access tokens.
    Jwt {
        claims: Map<String, Value>,
        checked: Checked,
    },
    /// An API key.
    ApiKey(Credential),
}

/// Identifies `token` as one of this issuer's, without judging whether it is
/// still active. `None` for anything else (RFC 7662 §2.2 and RFC 7009 §2.2
/// answer such tokens without an error).
pub(super) async fn recognise(state: &AppState, issuer: &Issuer, token: &str) -> Result<Option<Known>, OAuthError> {
    if API_KEY.claims(token) {
        if API_KEY.check(token).is_err() {
            return Ok(None);
        }
        let c = state
            .store
            .credential_by_hash(&state.credential_hasher.hash(token))
            .await?
            .filter(|c| c.kind == Kind::ApiKey && c.tenant_id == issuer.tenant.id);
        return Ok(c.map(Known::ApiKey));
    }
    if admin_token::FORMAT.claims(token) || CLIENT_SECRET.claims(token) {
        return Ok(None);
    }
    Ok(verify_ours(state, issuer, token)
        .await?
        .map(|(claims, checked)| Known::Jwt { claims, checked }))
}

/// One of this issuer's access tokens whose signature and registered claims
/// check out (not yet whether it was revoked). `None` for anything else.
pub(super) async fn verify_ours(
    state: &AppState,
    issuer: &Issuer,
    token: &str,
) -> Result<Option<(Map<String, Value>, Checked)>, OAuthError> {
    let Ok(jws) = jose::decode(token) else {
        return Ok(None);
    };
    // Only our own keys, looked up by `kid` in this tenant's ring; `jku`,
    // `x5u` and `jwk` headers are never followed or trusted.
    let Some(kid) = jws.header.kid.as_deref() else {
        return Ok(None);
    };
    let Some(key) = keys::public_key(state, issuer.tenant.id, kid).await? else {
        return Ok(None);
    };
    if jws.verify(&key).is_err() {
        return Ok(None);
    }
    let urls: Vec<&str> = issuer.urls.iter().map(String::as_str).collect();
    match access_token::check(&jws.header, &jws.claims, &urls, state.clock.now()) {
        Ok(c) => Ok(Some((jws.claims, c))),
        Err(_) => Ok(None),
    }
}

/// Whether a verified token of ours is still active: not revoked, the
/// client and every actor an active agent (and the subject too, when it is
/// an agent of the tenant) that has not cut its tokens since this one was
/// issued (suspension, resumption, compromise: [`Agent::honours_token`]),
/// every delegation it was issued through live. Agents come from the
/// generation cache, so a committed change on any node counts at once.
pub(super) async fn is_active(state: &AppState, issuer: &Issuer, c: &Checked) -> Result<bool, OAuthError> {
    if state.store.is_token_revoked(&c.jti).await? {
        return Ok(false);
    }
    let Ok(actors) = delegation::actors(c.act.as_ref()) else {
        return Ok(false);
    };
    let Ok(client) = Uuid::parse_str(&c.client_id) else {
        return Ok(false);
    };
    let mut must_be_active = vec![client];
    for id in &actors {
        match Uuid::parse_str(id) {
            Ok(u) => must_be_active.push(u),
            Err(_) => return Ok(false),
        }
    }
    for id in &must_be_active {
        match cache::agent(state, issuer.tenant.id, *id).await? {
            Some(a) if a.honours_token(c.issued_at) => {}
            _ => return Ok(false),
        }
    }
    // The subject: an agent of the tenant must honour it too; anything else
    // is a human from a trusted issuer (checked through the delegations).
    if let Ok(u) = Uuid::parse_str(&c.sub)
        && !must_be_active.contains(&u)
        && let Some(a) = cache::agent(state, issuer.tenant.id, u).await?
        && !a.honours_token(c.issued_at)
    {
        return Ok(false);
    }
    if !c.delegations.is_empty() {
        let now = state.clock.now();
        let found = state.store.delegations_by_ids(issuer.tenant.id, &c.delegations).await?;
        let all_live = c
            .delegations
            .iter()
            .all(|id| found.iter().any(|d| d.id == *id && d.is_live(now)));
        if !all_live {
            return Ok(false);
        }
    }
    Ok(true)
}

/// An active access token of ours, presented as the subject of a decision.
#[derive(Debug)]
pub struct ActiveToken {
    /// Its checked claims.
    pub checked: Checked,
    /// RFC 9449 §6: the DPoP key thumbprint it is bound to.
    pub cnf_jkt: Option<String>,
    /// The `type`s of its `authorization_details` and task (RFC 9396).
    pub task_types: BTreeSet<String>,
}

/// `token` if it is one of `tenant`'s access tokens and currently active
/// (the same rules as introspection). API keys are not accepted here.
pub async fn active_token(state: &AppState, tenant: &Tenant, token: &str) -> Result<Option<ActiveToken>, AppError> {
    let issuer = issuer(state, Some(&tenant.name)).await?;
    let server = |e: OAuthError| match e {
        OAuthError::Server(e) => e,
        other => AppError::Internal(other.to_string()),
    };
    let Some(Known::Jwt { claims, checked }) = recognise(state, &issuer, token).await.map_err(server)? else {
        return Ok(None);
    };
    if !is_active(state, &issuer, &checked).await.map_err(server)? {
        return Ok(None);
    }
    let cnf_jkt = claims
        .get("cnf")
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let details = claims
        .get("authorization_details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(claims.get("task"));
    let task_types = details
        .filter_map(|d| d.get("type").and_then(Value::as_str).map(str::to_owned))
        .collect();
    Ok(Some(ActiveToken {
        checked,
        cnf_jkt,
        task_types,
    }))
}

/// RFC 7662 §2.2: `{"active": false}` for anything not currently active.
fn inactive() -> Value {
    json!({ "active": false })
}

/// The scope that lets an agent introspect tokens it is neither the client
/// nor an audience of: a resource server whose tokens name it by URL.
pub const INTROSPECT_SCOPE: &str = "introspect";

/// RFC 7662 §4: whether `caller` may learn about a token issued to
/// `client_id` for `audiences`. As Keycloak (the caller must be in the
/// token's `aud`) and Okta (a client introspects the tokens issued to it)
/// do: the token's own client; an agent the token is addressed to (its id
/// or SPIFFE id in `aud`); an agent granted the `introspect` scope; an admin
/// token whose role may read the registry (`admin`, `operator`, `auditor`;
/// a `pep` token asks for decisions only). Everyone else is answered
/// `{"active": false}`, as for an unknown token, so nothing leaks.
async fn may_introspect(
    state: &AppState,
    issuer: &Issuer,
    caller: &Caller,
    client_id: &str,
    audiences: &[&str],
) -> Result<bool, OAuthError> {
    let c = match caller {
        Caller::Admin(a) => return Ok(a.principal.may(admin_token::Permission::ReadRegistry)),
        Caller::Client(c) => c,
    };
    let me = c.agent.id.to_string();
    if me == client_id {
        return Ok(true);
    }
    let spiffe = spiffe_id(&state.trust_domain, &issuer.tenant.name, c.agent.id);
    if audiences.iter().any(|a| *a == me || *a == spiffe) {
        return Ok(true);
    }
    Ok(grants_of(state, issuer, &c.agent)
        .await?
        .scopes
        .contains(INTROSPECT_SCOPE))
}

/// A token's `aud` (RFC 7519 §4.1.3: a string or an array of strings).
fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The introspection endpoint. `caller` is already authenticated.
pub async fn introspect(state: &AppState, issuer: &Issuer, caller: &Caller, token: &str) -> Result<Value, OAuthError> {
    let now = state.clock.now();
    match recognise(state, issuer, token).await? {
        None => Ok(inactive()),
        Some(Known::Jwt { mut claims, checked }) => {
            if !may_introspect(state, issuer, caller, &checked.client_id, &audiences(&claims)).await? {
                tracing::debug!(jti = %checked.jti, "introspection by a caller not entitled to the token");
                return Ok(inactive());
            }
            if !is_active(state, issuer, &checked).await? {
                return Ok(inactive());
            }
            let token_type = if claims.contains_key("cnf") { "DPoP" } else { "Bearer" };
            claims.insert("active".into(), Value::Bool(true));
            claims.insert("token_type".into(), Value::String(token_type.into()));
            Ok(Value::Object(claims))
        }
        Some(Known::ApiKey(c)) => {
            // Checked first: an unentitled caller must not mark the key used.
            if !may_introspect(state, issuer, caller, &c.agent_id.to_string(), &[]).await? {
                tracing::debug!(credential = %c.id, "introspection by a caller not entitled to the API key");
                return Ok(inactive());
            }
            if !c.is_usable(now) {
                return Ok(inactive());
            }
            let agent = match state.store.agent(issuer.tenant.id, c.agent_id).await? {
                Some(a) if a.status == Status::Active => a,
                _ => return Ok(inactive()),
            };
            // An API key authenticating is an authentication decision: its
            // last use is recorded with an audit event in one commit.
            let ctx = Context {
                actor: caller.actor(),
                request_id: Some(request::id()),
                note: None,
            };
            state.store.use_credential(issuer.tenant.id, c.id, ctx).await?;
            crate::app::credentials::successor_used(state, &c).await?;
            let scope: Vec<&str> = c.scopes.iter().map(String::as_str).collect();
            let mut out = json!({
                "active": true,
                "token_type": "api_key",
                "client_id": agent.id.to_string(),
                "sub": agent.id.to_string(),
                "iss": issuer.url,
                "iat": c.created_at.as_micros().div_euclid(1_000_000),
                "spiffe_id": spiffe_id(&state.trust_domain, &issuer.tenant.name, agent.id),
                "owner": agent.owner,
            });
            if let Value::Object(m) = &mut out {
                if !scope.is_empty() {
                    m.insert("scope".into(), Value::String(scope.join(" ")));
                }
                if let Some(e) = c.expires_at {
                    m.insert("exp".into(), json!(e.as_micros().div_euclid(1_000_000)));
                }
            }
            Ok(out)
        }
    }
}
