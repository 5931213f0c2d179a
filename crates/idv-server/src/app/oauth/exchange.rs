//! RFC 8693 token exchange: an agent acts for a subject under a stored
//! delegation.

use idv_core::access_token::AccessToken;
use idv_core::agent::spiffe_id;
use idv_core::delegation::{self, Delegator};
use idv_core::grant;
use idv_core::jose;
use idv_core::token_exchange::{self, Subject};
use serde_json::json;

use super::introspection::{is_active, verify_ours};
use super::token::{TokenRequest, grants_of, requested_details, sign_and_record};
use super::{Client, GRANT_TOKEN_EXCHANGE, Issuer, OAuthError};
use crate::AppState;
use crate::app::lifetimes;

/// Verifies an RFC 8693 subject token: one of ours (still active), or one
/// from a trusted external issuer of the tenant, checked with its
/// configured keys (nothing is fetched).
async fn subject_of(state: &AppState, issuer: &Issuer, token: &str) -> Result<Subject, OAuthError> {
    let invalid = |d: &str| OAuthError::InvalidGrant(format!("subject_token: {d}"));
    if let Some((claims, c)) = verify_ours(state, issuer, token).await? {
        if !is_active(state, issuer, &c).await? {
            return Err(invalid("the token is not active"));
        }
        return Subject::ours(&claims, c).map_err(|e| invalid(&e.to_string()));
    }
    let jws = jose::decode(token).map_err(|e| invalid(&e.to_string()))?;
    let iss = token_exchange::issuer(&jws.claims)
        .ok_or_else(|| invalid("not a token of this issuer, and it names no `iss`"))?;
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
    Subject::external(iss, &jws.claims, trusted.audience.as_deref(), state.clock.now())
        .map_err(|e| invalid(&e.to_string()))
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
) -> Result<idv_api::TokenResponseBody, OAuthError> {
    let tokens = token_exchange::Params {
        subject_token: req.subject_token.as_deref(),
        subject_token_type: req.subject_token_type.as_deref(),
        actor_token: req.actor_token.as_deref(),
        actor_token_type: req.actor_token_type.as_deref(),
        requested_token_type: req.requested_token_type.as_deref(),
    }
    .check()
    .map_err(|e| OAuthError::InvalidRequest(e.to_string()))?;
    let me = client.agent.id.to_string();
    if let Some(t) = tokens.actor {
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
    let subject = subject_of(state, issuer, tokens.subject).await?;
    // RFC 8693 §4.4: `may_act` names who may act for the subject.
    subject
        .may_be_acted_for_by(&me)
        .map_err(|e| OAuthError::InvalidGrant(format!("subject_token: {e}")))?;
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
    sign_and_record(state, issuer, client, token, extra, req).await
}
