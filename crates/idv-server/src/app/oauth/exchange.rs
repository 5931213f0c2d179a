//! RFC 8693 token exchange: an agent acts for a subject under a stored
//! delegation.

use std::collections::BTreeSet;

use idv_core::Timestamp;
use idv_core::access_token::{self, AccessToken};
use idv_core::agent::spiffe_id;
use idv_core::delegation::{self, Delegator};
use idv_core::grant;
use idv_core::jose;
use serde_json::{Value, json};
use uuid::Uuid;

use super::introspection::{is_active, verify_ours};
use super::token::{TokenRequest, TokenResponse, grants_of, requested_details, sign_and_record};
use super::{Client, GRANT_TOKEN_EXCHANGE, Issuer, OAuthError, TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT};
use crate::AppState;
use crate::app::lifetimes;

/// What a subject token says, once verified.
#[derive(Debug)]
struct Subject {
    /// `sub`: the party the chain starts with.
    sub: String,
    /// Who holds the authority now and delegates at this hop: the current
    /// actor of a delegated token, else the subject itself.
    holder: Delegator,
    /// Its scopes (`None`: an external token that names none, bounded only
    /// by the delegation and the agent's grants).
    scopes: Option<BTreeSet<String>>,
    /// Its `act` chain.
    act: Option<Value>,
    /// The delegations it was issued through.
    delegations: Vec<Uuid>,
    /// Its `exp`.
    expires_at: Timestamp,
    /// RFC 8693 §4.4 `may_act`.
    may_act: Option<Value>,
}

/// Verifies an RFC 8693 subject token: one of ours (still active), or one
/// from a trusted external issuer of the tenant, checked with its
/// configured keys (nothing is fetched).
async fn subject_of(state: &AppState, issuer: &Issuer, token: &str) -> Result<Subject, OAuthError> {
    let invalid = |d: &str| OAuthError::InvalidGrant(format!("subject_token: {d}"));
    if let Some((claims, c)) = verify_ours(state, issuer, token).await? {
        if !is_active(state, issuer, &c).await? {
            return Err(invalid("the token is not active"));
        }
        let actors = delegation::actors(c.act.as_ref()).map_err(|e| invalid(&e.to_string()))?;
        let holder_id = actors.first().unwrap_or(&c.sub);
        let holder = Uuid::parse_str(holder_id)
            .map(|id| Delegator::Agent { id })
            .map_err(|_| invalid("its current holder is not an agent"))?;
        return Ok(Subject {
            sub: c.sub,
            holder,
            scopes: Some(c.scopes),
            act: c.act,
            delegations: c.delegations,
            expires_at: c.expires_at,
            may_act: claims.get("may_act").cloned(),
        });
    }
    let jws = jose::decode(token).map_err(|e| invalid(&e.to_string()))?;
    let claims = &jws.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    let iss = text("iss").ok_or_else(|| invalid("not a token of this issuer, and it names no `iss`"))?;
    let trusted = state
        .store
        .trusted_issuers(issuer.tenant.id)
        .await?
        .into_iter()
        .find(|t| t.issuer == iss)
        .ok_or_else(|| invalid(&format!("`{iss}` is not a trusted issuer of this tenant")))?;
    let kid = jws.header.kid.as_deref().ok_or_else(|| invalid("no `kid`"))?;
    let key = trusted
        .key(kid)
        .ok_or_else(|| invalid(&format!("`{kid}` is not a configured key of `{iss}`")))?;
    jws.verify(&key).map_err(|_| invalid("bad signature"))?;
    let now_s = state.clock.now().as_micros().div_euclid(1_000_000);
    let leeway = access_token::LEEWAY_SECS;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("no `exp`"))?;
    if now_s >= exp + leeway {
        return Err(invalid("expired"));
    }
    for name in ["nbf", "iat"] {
        if claims
            .get(name)
            .and_then(Value::as_i64)
            .is_some_and(|t| t > now_s + leeway)
        {
            return Err(invalid("not valid yet"));
        }
    }
    if let Some(aud) = &trusted.audience {
        let named = match claims.get("aud") {
            Some(Value::String(a)) => a == aud,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(aud.as_str())),
            _ => false,
        };
        if !named {
            return Err(invalid(&format!("its `aud` must name `{aud}`")));
        }
    }
    if claims.contains_key("act") {
        return Err(invalid("an external token with `act` cannot start a delegation"));
    }
    let sub = text("sub").ok_or_else(|| invalid("no `sub`"))?.to_owned();
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => Some(s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect()),
        (_, Some(Value::Array(a))) => Some(a.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
        _ => None,
    };
    Ok(Subject {
        holder: Delegator::Human {
            issuer: iss.to_owned(),
            sub: sub.clone(),
        },
        sub,
        scopes,
        act: None,
        delegations: Vec::new(),
        expires_at: Timestamp::from_micros(exp.saturating_mul(1_000_000)),
        may_act: claims.get("may_act").cloned(),
    })
}

/// RFC 8693 token exchange: the calling agent acts for the subject token's
/// subject, under a stored delegation from the current holder to it. The
/// result keeps `sub`, adds the agent as the current `act` (prior actors
/// nested, §4.1), and never grants more than subject scope ∩ the agent's
/// grants ∩ the delegation.
pub(super) async fn exchange(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    req: &TokenRequest,
    request_id: &str,
) -> Result<TokenResponse, OAuthError> {
    let missing = |p: &str| OAuthError::InvalidRequest(format!("`{p}` is required for token exchange (RFC 8693 §2.1)"));
    let subject_token = req.subject_token.as_deref().ok_or_else(|| missing("subject_token"))?;
    let subject_type = req
        .subject_token_type
        .as_deref()
        .ok_or_else(|| missing("subject_token_type"))?;
    if subject_type != TOKEN_TYPE_ACCESS && subject_type != TOKEN_TYPE_JWT {
        return Err(OAuthError::InvalidRequest(format!(
            "`subject_token_type` must be `{TOKEN_TYPE_ACCESS}` or `{TOKEN_TYPE_JWT}`"
        )));
    }
    if req
        .requested_token_type
        .as_deref()
        .is_some_and(|t| t != TOKEN_TYPE_ACCESS)
    {
        return Err(OAuthError::InvalidRequest(format!(
            "only access tokens are issued (`requested_token_type` {TOKEN_TYPE_ACCESS})"
        )));
    }
    let me = client.agent.id.to_string();
    match (&req.actor_token, &req.actor_token_type) {
        (Some(t), Some(_)) => {
            // The actor is the calling agent; an actor token may confirm it
            // but never name someone else.
            let ok = match verify_ours(state, issuer, t).await? {
                Some((_, c)) => c.sub == me && c.act.is_none() && is_active(state, issuer, &c).await?,
                None => false,
            };
            if !ok {
                return Err(OAuthError::InvalidGrant(
                    "actor_token: must be an active token of the calling agent itself".into(),
                ));
            }
        }
        (Some(_), None) => return Err(missing("actor_token_type")),
        (None, Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "`actor_token_type` without `actor_token`".into(),
            ));
        }
        (None, None) => {}
    }
    let subject = subject_of(state, issuer, subject_token).await?;
    // RFC 8693 §4.4: `may_act` names who may act for the subject.
    if let Some(m) = &subject.may_act
        && m.get("sub").and_then(Value::as_str) != Some(me.as_str())
    {
        return Err(OAuthError::InvalidGrant(
            "subject_token: its `may_act` does not name this agent".into(),
        ));
    }
    if subject.holder == (Delegator::Agent { id: client.agent.id }) {
        return Err(OAuthError::InvalidGrant(
            "an agent cannot delegate to itself; use client_credentials".into(),
        ));
    }
    let now = state.clock.now();
    let dlg = state
        .store
        .delegations_between(issuer.tenant.id, &subject.holder, client.agent.id)
        .await?
        .into_iter()
        .find(|d| d.is_live(now))
        .ok_or_else(|| {
            OAuthError::InvalidGrant(format!(
                "no live delegation from `{}` to this agent",
                subject.holder.subject()
            ))
        })?;
    // Depth: this hop adds one actor; every delegation in the chain bounds it.
    let prior = delegation::actors(subject.act.as_ref()).map_err(|e| OAuthError::InvalidGrant(e.to_string()))?;
    let depth = u32::try_from(prior.len()).unwrap_or(u32::MAX).saturating_add(1);
    let earlier = state
        .store
        .delegations_by_ids(issuer.tenant.id, &subject.delegations)
        .await?;
    let limit = earlier
        .iter()
        .map(|d| d.max_depth)
        .chain([dlg.max_depth, delegation::MAX_CHAIN_DEPTH])
        .min()
        .unwrap_or(1);
    if depth > limit {
        return Err(OAuthError::InvalidGrant(format!(
            "the delegation chain would be {depth} actors deep; at most {limit} allowed"
        )));
    }
    let requested = req.scope.as_deref().map(grant::parse_scope).transpose()?;
    let subject_scopes = subject.scopes.clone().unwrap_or_else(|| dlg.scopes.clone());
    let grants = grants_of(state, issuer, &client.agent).await?;
    let scopes =
        delegation::narrow(requested.as_ref(), &subject_scopes, &grants.scopes, &dlg.scopes).map_err(|beyond| {
            OAuthError::InvalidScope(format!(
                "beyond the subject token, this agent's grants and the delegation: {}",
                beyond.into_iter().collect::<Vec<_>>().join(" ")
            ))
        })?;
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope(
            "no scope is left within the subject token, this agent's grants and the delegation".into(),
        ));
    }
    let mut resources: Vec<String> = req.resources.iter().chain(&req.audiences).cloned().collect();
    if resources.is_empty() {
        resources = dlg.audiences.iter().cloned().collect();
    }
    if let Some(r) = resources
        .iter()
        .find(|r| !dlg.audiences.is_empty() && !dlg.audiences.contains(*r))
    {
        return Err(OAuthError::InvalidTarget(format!(
            "the delegation does not cover `{r}`"
        )));
    }
    let asked = grant::Request {
        scope: None,
        resources,
        authorization_details: requested_details(req)?,
    };
    let granted = grant::decide(&asked, &grants, &issuer.url)?;
    let ttl = lifetimes::lifetime(state, issuer.tenant.id, client.agent.class.as_deref()).await?;
    let expires_at = [now.plus_secs(ttl), dlg.expires_at, subject.expires_at]
        .into_iter()
        .min()
        .unwrap_or(now);
    let mut delegations = subject.delegations.clone();
    delegations.push(dlg.id);
    let token = AccessToken {
        issuer: issuer.url.clone(),
        agent_id: client.agent.id,
        subject: subject.sub.clone(),
        act: Some(delegation::push_actor(&me, subject.act.as_ref())),
        delegations,
        task: dlg.task.clone(),
        cnf_jkt: None,
        audiences: granted.audiences,
        scopes,
        authorization_details: granted.authorization_details,
        jti: state.clock.new_id(),
        issued_at: now,
        expires_at,
        spiffe_id: spiffe_id(&state.trust_domain, &issuer.tenant.name, client.agent.id),
        owner: client.agent.owner.clone(),
        environment: client.agent.environment.map(|e| e.as_str().to_owned()),
        tenant: issuer.tenant.name.clone(),
    };
    let extra = json!({
        "grant_type": GRANT_TOKEN_EXCHANGE, "delegation_id": dlg.id, "sub": subject.sub,
        "act": token.act, "delegations": token.delegations,
    });
    sign_and_record(state, issuer, client, token, extra, req, request_id).await
}
