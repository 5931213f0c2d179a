//! The token endpoint: refusals on the record, the grant types, and
//! `client_credentials` issuance (a token for the agent itself, within its
//! grants); signing and recording every issued token.

use idv_api::TokenResponseBody;
use idv_core::Timestamp;
use idv_core::access_token::{self, AccessToken};
use idv_core::agent::{Agent, spiffe_id};
use idv_core::audit::{Action, Draft, Outcome, TargetType};
use idv_core::dpop;
use idv_core::grant;
use idv_store::{Context, StoreError};
use serde_json::{Value, json};

use super::{
    Client, ClientAuth, GRANT_TOKEN_EXCHANGE, Issuer, OAuthError, TOKEN_TYPE_ACCESS, anonymous, authenticate,
    exchange::exchange, refusal_event, refuse,
};
use crate::AppState;
use crate::app::request;
use crate::app::{AppError, keys, lifetimes};

/// A token request's parameters after client authentication.
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: String,
    /// `scope`.
    pub scope: Option<String>,
    /// `resource` (RFC 8707, repeatable).
    pub resources: Vec<String>,
    /// `authorization_details` (RFC 9396).
    pub authorization_details: Option<String>,
    /// RFC 8693 `audience` (repeatable; treated like `resource`).
    pub audiences: Vec<String>,
    /// RFC 8693 `subject_token`.
    pub subject_token: Option<String>,
    /// RFC 8693 `subject_token_type`.
    pub subject_token_type: Option<String>,
    /// RFC 8693 `actor_token`.
    pub actor_token: Option<String>,
    /// RFC 8693 `actor_token_type`.
    pub actor_token_type: Option<String>,
    /// RFC 8693 `requested_token_type`.
    pub requested_token_type: Option<String>,
    /// The `DPoP` header (RFC 9449 §4), if sent.
    pub dpop: Option<String>,
}

/// Records a token request refused before client authentication (malformed
/// form, repeated parameters, several authentication methods).
pub async fn refuse_request(
    state: &AppState,
    issuer: &Issuer,
    claimed_client_id: Option<&str>,
    err: OAuthError,
) -> OAuthError {
    let target: String = claimed_client_id.unwrap_or("-").chars().take(128).collect();
    let ev = refusal_event(
        issuer,
        anonymous(claimed_client_id),
        Action::TokenIssue,
        &target,
        &err,
        json!({}),
    );
    refuse(state, ev, err).await
}

/// The token endpoint.
pub async fn token(
    state: &AppState,
    issuer: &Issuer,
    auth: Option<ClientAuth>,
    req: TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    let Some(auth) = auth else {
        let err = OAuthError::InvalidClient("the client did not authenticate".into());
        let ev = refusal_event(
            issuer,
            anonymous(None),
            Action::TokenIssue,
            "-",
            &err,
            json!({ "grant_type": req.grant_type }),
        );
        return Err(refuse(state, ev, err).await);
    };
    let client = match authenticate(state, issuer, &auth).await {
        Ok(c) => c,
        Err(err) => {
            let target = auth.claimed_id().unwrap_or("-").chars().take(128).collect::<String>();
            let ev = refusal_event(
                issuer,
                anonymous(auth.claimed_id()),
                Action::TokenIssue,
                &target,
                &err,
                json!({ "method": auth.method(), "grant_type": req.grant_type }),
            );
            return Err(refuse(state, ev, err).await);
        }
    };
    match issue(state, issuer, &client, &req).await {
        Ok(r) => Ok(r),
        Err(err) => {
            let ev = refusal_event(
                issuer,
                client.actor(),
                Action::TokenIssue,
                &client.agent.id.to_string(),
                &err,
                json!({ "method": client.method, "grant_type": req.grant_type, "scope": req.scope }),
            );
            Err(refuse(state, ev, err).await)
        }
    }
}

async fn issue(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    req: &TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    match req.grant_type.as_str() {
        "client_credentials" => client_credentials(state, issuer, client, req).await,
        GRANT_TOKEN_EXCHANGE => exchange(state, issuer, client, req).await,
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "grant type `{other}` is not supported (client_credentials, {GRANT_TOKEN_EXCHANGE})"
        ))),
    }
}

pub(super) fn requested_details(req: &TokenRequest) -> Result<Option<Vec<Value>>, OAuthError> {
    Ok(req
        .authorization_details
        .as_deref()
        .map(grant::parse_authorization_details)
        .transpose()?)
}

/// A token for the agent itself, within its grants.
async fn client_credentials(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    req: &TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    if req.subject_token.is_some() || req.actor_token.is_some() {
        return Err(OAuthError::InvalidRequest(
            "`subject_token` and `actor_token` belong to token exchange".into(),
        ));
    }
    let asked = grant::Request {
        scope: req.scope.as_deref().map(grant::parse_scope).transpose()?,
        resources: req.resources.iter().chain(&req.audiences).cloned().collect(),
        authorization_details: requested_details(req)?,
    };
    let grants = grants_of(state, issuer, &client.agent).await?;
    let granted = grant::decide(&asked, &grants, &issuer.url)?;
    let now = state.clock.now();
    let token = AccessToken {
        issuer: issuer.url.clone(),
        agent_id: client.agent.id,
        subject: client.agent.id.to_string(),
        act: None,
        delegations: Vec::new(),
        task: None,
        cnf_jkt: None,
        audiences: granted.audiences,
        scopes: granted.scopes,
        authorization_details: granted.authorization_details,
        jti: state.clock.new_id(),
        issued_at: now,
        expires_at: now.plus_secs(lifetimes::lifetime(state, issuer.tenant.id, client.agent.class.as_deref()).await?),
        spiffe_id: spiffe_id(&state.trust_domain, &issuer.tenant.name, client.agent.id),
        owner: client.agent.owner.clone(),
        environment: client.agent.environment.map(|e| e.as_str().to_owned()),
        tenant: issuer.tenant.name.clone(),
    };
    sign_and_record(state, issuer, client, token, json!({}), req).await
}

/// Binds `token` to the request's DPoP key if it sent a proof, signs it and
/// records the issuance (`token.issue` or `token.exchange`), consuming the
/// client assertion and DPoP `jti`s in the same commit; answers only once
/// the event is durable.
pub(super) async fn sign_and_record(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    mut token: AccessToken,
    extra: Value,
    req: &TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    let action = if req.grant_type == GRANT_TOKEN_EXCHANGE {
        Action::TokenExchange
    } else {
        Action::TokenIssue
    };
    let dpop_once = match &req.dpop {
        Some(p) => {
            let proof = check_dpop(state, issuer, p)?;
            token.cnf_jkt = Some(proof.jkt.clone());
            // Forgotten once the proof could no longer pass the `iat` check.
            let until = Timestamp::from_micros((proof.iat + 2 * dpop::IAT_WINDOW_SECS).saturating_mul(1_000_000));
            vec![(
                format!("{DPOP_KEY}{}|{}|{}", issuer.tenant.id, proof.jkt, proof.jti),
                until,
            )]
        }
        None => Vec::new(),
    };
    let ring = keys::signing_ring(state, issuer.tenant.id).await?;
    let (kid, key) = ring
        .signer(state.clock.now())
        .ok_or_else(|| AppError::Internal("the tenant has no signing key".into()))?;
    let jwt = key.sign(kid, access_token::TYP, &token.claims());
    let scope = (!token.scopes.is_empty()).then(|| token.scopes.iter().cloned().collect::<Vec<_>>().join(" "));
    let mut details = json!({
        "jti": token.jti, "method": client.method,
        "credential_id": client.credential.id, "scope": scope, "aud": token.audiences,
        "authorization_details": token.authorization_details,
        "exp": token.expires_at.to_rfc3339(), "kid": kid, "cnf_jkt": token.cnf_jkt,
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
        d.extend(e);
    }
    let event = Draft {
        tenant_id: issuer.tenant.id,
        actor: client.actor(),
        action,
        target_type: TargetType::Agent.into(),
        target_id: client.agent.id.to_string(),
        outcome: Outcome::Success,
        reason: None,
        request_id: Some(request::id()),
        details,
    };
    let ctx = Context {
        actor: client.actor(),
        request_id: Some(request::id()),
        note: None,
    };
    let mut once: Vec<(String, Timestamp)> = client.assertion_jti.iter().cloned().collect();
    once.extend(dpop_once);
    match state.store.issue_token(event, once, ctx).await {
        Ok(()) => {}
        Err(StoreError::Replayed(key)) if key.starts_with(DPOP_KEY) => {
            return Err(OAuthError::InvalidDpopProof(
                "DPoP proof refused: its `jti` was already used".into(),
            ));
        }
        Err(StoreError::Replayed(_)) => {
            return Err(OAuthError::InvalidClient(
                "client assertion refused: its `jti` was already used".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(TokenResponseBody {
        access_token: jwt,
        token_type: if token.cnf_jkt.is_some() { "DPoP" } else { "Bearer" }.to_owned(),
        expires_in: (token.expires_at.as_micros() - token.issued_at.as_micros())
            .div_euclid(1_000_000)
            .max(1),
        issued_token_type: (action == Action::TokenExchange).then(|| TOKEN_TYPE_ACCESS.to_owned()),
        scope,
        authorization_details: token.authorization_details,
    })
}

/// Prefix of the one-time keys of DPoP proofs.
const DPOP_KEY: &str = "dpop|";

/// Checks the request's DPoP proof against the token endpoint and the
/// server nonce policy (RFC 9449 §4.3, §8). The `jti` is consumed with the
/// issuance.
fn check_dpop(state: &AppState, issuer: &Issuer, proof: &str) -> Result<dpop::Proof, OAuthError> {
    let now = state.clock.now();
    let p = dpop::check(proof, "POST", &issuer.endpoint("/oauth2/token"), now)
        .map_err(|e| OAuthError::InvalidDpopProof(e.to_string()))?;
    match &p.nonce {
        Some(n) if !state.dpop_nonces.is_valid(n, now) => Err(OAuthError::UseDpopNonce(
            "the DPoP nonce is unknown or stale; retry with the one in `DPoP-Nonce`".into(),
        )),
        None if state.dpop_require_nonce => Err(OAuthError::UseDpopNonce(
            "this server requires a DPoP nonce; retry with the one in `DPoP-Nonce`".into(),
        )),
        _ => Ok(p),
    }
}

/// What an agent may ask for in a token: its own `allowed_scopes` and the
/// actions its roles and grants give (scopes name actions: one source of
/// truth with the policy engine's grants).
pub(super) async fn grants_of(state: &AppState, issuer: &Issuer, agent: &Agent) -> Result<grant::Grants, OAuthError> {
    let engine = crate::app::policies::engine(state, issuer.tenant.id)
        .await
        .map_err(OAuthError::Server)?;
    let mut grants = agent.grants.clone();
    grants.scopes.extend(engine.granted(agent).1);
    Ok(grants)
}
