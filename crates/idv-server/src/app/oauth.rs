//! The OAuth 2.0 authorization server for agents: client authentication,
//! the token endpoint (`client_credentials`), introspection (RFC 7662) and
//! revocation (RFC 7009). Every issuance, refusal and revocation is audited
//! in the same group commit as every other event.

use std::collections::BTreeSet;

use idv_core::access_token::{self, AccessToken, Checked};
use idv_core::agent::{Agent, spiffe_id};
use idv_core::audit::{Action, Actor, ActorKind, Draft, Outcome, TargetType};
use idv_core::credential::{API_KEY, CLIENT_SECRET, Credential, Kind};
use idv_core::delegation::{self, Delegator};
use idv_core::dpop;
use idv_core::grant::{self, Refusal};
use idv_core::jose::{self, Jwk, PublicKey};
use idv_core::lifecycle::Status;
use idv_core::tenant::{DEFAULT_TENANT, Tenant};
use idv_core::{Timestamp, admin_token};
use idv_store::{Context, StoreError};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{AppError, cache, keys, lifetimes, throttle};
use crate::AppState;

/// RFC 7521 §4.2 / RFC 7523 §2.2: the client assertion type for JWTs.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// RFC 8693 §2.1: the token exchange grant type.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: an OAuth access token.
pub const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a JWT.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Longest client assertion lifetime we accept (bounds the replay cache).
const MAX_ASSERTION_SECS: i64 = 600;

/// The issuer a request is addressed to: a tenant and the URL it is known
/// by on this route (the default tenant is also served at the root).
#[derive(Clone, Debug)]
pub struct Issuer {
    /// The tenant.
    pub tenant: Tenant,
    /// `iss` of tokens issued through this route.
    pub url: String,
    /// Every issuer URL of this tenant (tokens issued at either are valid).
    pub urls: Vec<String>,
}

impl Issuer {
    /// An endpoint of this issuer (`/oauth2/token`, …).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// The issuer for `tenant_name` (`None`: the default tenant at the root).
pub async fn issuer(state: &AppState, tenant_name: Option<&str>) -> Result<Issuer, AppError> {
    let name = tenant_name.unwrap_or(DEFAULT_TENANT);
    let tenant = super::tenants::by_name(state, name)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "tenant",
            id: name.to_owned(),
        })?;
    let base = &*state.public_url;
    let tenant_url = format!("{base}/t/{}", tenant.name);
    let urls = if tenant.name == DEFAULT_TENANT {
        vec![base.to_owned(), tenant_url.clone()]
    } else {
        vec![tenant_url.clone()]
    };
    Ok(Issuer {
        url: if tenant_name.is_some() {
            tenant_url
        } else {
            base.to_owned()
        },
        tenant,
        urls,
    })
}

/// An RFC 6749 §5.2 error (and the RFC 8707 / RFC 9396 / RFC 7009 additions).
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// `invalid_client` (answered with 401).
    #[error("{0}")]
    InvalidClient(String),
    /// `invalid_grant`.
    #[error("{0}")]
    InvalidGrant(String),
    /// `unauthorized_client`.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// `unsupported_grant_type`.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// `invalid_scope`.
    #[error("{0}")]
    InvalidScope(String),
    /// `invalid_target` (RFC 8707 §2).
    #[error("{0}")]
    InvalidTarget(String),
    /// `invalid_authorization_details` (RFC 9396 §5).
    #[error("{0}")]
    InvalidAuthorizationDetails(String),
    /// `unsupported_token_type` (RFC 7009 §2.2.1).
    #[error("{0}")]
    UnsupportedTokenType(String),
    /// `invalid_dpop_proof` (RFC 9449 §5).
    #[error("{0}")]
    InvalidDpopProof(String),
    /// `use_dpop_nonce` (RFC 9449 §8): retry with the nonce in `DPoP-Nonce`.
    #[error("{0}")]
    UseDpopNonce(String),
    /// Too many failed authentications from this address or under this
    /// client id: answered 429 with `Retry-After` (RFC 6585 §4), with the
    /// code the refusal itself had.
    #[error(
        "too many failed authentications from this address or for this client; retry after {retry_after} s ({detail})"
    )]
    TooManyFailures {
        /// Seconds until a failure is allowed again.
        retry_after: u64,
        /// The refusal's own error code.
        code: &'static str,
        /// The refusal's own description.
        detail: String,
    },
    /// `server_error`: logged, never echoed.
    #[error("{0}")]
    Server(AppError),
}

impl OAuthError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidAuthorizationDetails(_) => "invalid_authorization_details",
            OAuthError::UnsupportedTokenType(_) => "unsupported_token_type",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UseDpopNonce(_) => "use_dpop_nonce",
            OAuthError::TooManyFailures { code, .. } => code,
            OAuthError::Server(_) => "server_error",
        }
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        OAuthError::Server(e)
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::Server(e.into())
    }
}

impl From<Refusal> for OAuthError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Scope(d) => OAuthError::InvalidScope(d),
            Refusal::Target(d) => OAuthError::InvalidTarget(d),
            Refusal::AuthorizationDetails(d) => OAuthError::InvalidAuthorizationDetails(d),
        }
    }
}

/// How the client presented itself (RFC 6749 §2.3, RFC 7523 §2.2).
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic {
        /// `client_id`.
        client_id: String,
        /// `client_secret`.
        secret: String,
    },
    /// Form parameters (`client_secret_post`).
    Post {
        /// `client_id`.
        client_id: String,
        /// `client_secret`.
        secret: String,
    },
    /// A signed JWT (`private_key_jwt`).
    Assertion {
        /// `client_id`, if sent (it must then match the assertion's `sub`).
        client_id: Option<String>,
        /// `client_assertion`.
        assertion: String,
    },
}

impl ClientAuth {
    /// The RFC 8414 name of the method.
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuth::Basic { .. } => "client_secret_basic",
            ClientAuth::Post { .. } => "client_secret_post",
            ClientAuth::Assertion { .. } => "private_key_jwt",
        }
    }

    fn claimed_id(&self) -> Option<&str> {
        match self {
            ClientAuth::Basic { client_id, .. } | ClientAuth::Post { client_id, .. } => Some(client_id),
            ClientAuth::Assertion { client_id, .. } => client_id.as_deref(),
        }
    }
}

/// An authenticated agent.
#[derive(Clone, Debug)]
pub struct Client {
    /// The agent.
    pub agent: Agent,
    /// The credential it used.
    pub credential: Credential,
    /// The method it used.
    pub method: &'static str,
    /// The client assertion's one-time key and expiry, to consume with the
    /// issuance (RFC 7523 §3: `jti` replay).
    pub assertion_jti: Option<(String, Timestamp)>,
}

impl Client {
    /// The audit actor.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: ActorKind::Agent,
            name: self.agent.id.to_string(),
            token_id: Some(self.credential.id),
        }
    }
}

fn bad_client() -> OAuthError {
    OAuthError::InvalidClient("client authentication failed".into())
}

fn parse_client_id(s: &str) -> Result<Uuid, OAuthError> {
    Uuid::parse_str(s).map_err(|_| bad_client())
}

/// The agent must be usable: active agents only (suspended, retired and
/// not-yet-activated agents are refused at once, on every node, because the
/// status is read from the store on each authentication).
fn require_active(agent: &Agent) -> Result<(), OAuthError> {
    match agent.status {
        Status::Active => Ok(()),
        other => Err(OAuthError::InvalidClient(format!(
            "the agent is {} and cannot authenticate",
            other.as_str()
        ))),
    }
}

/// Authenticates the client of a token, introspection or revocation request.
/// A rotation successor set to retire its predecessor on first use does so
/// now, in its own commit, before the request goes on.
pub async fn authenticate(state: &AppState, issuer: &Issuer, auth: &ClientAuth) -> Result<Client, OAuthError> {
    let client = authenticate_method(state, issuer, auth).await?;
    super::credentials::successor_used(state, &client.credential, None).await?;
    Ok(client)
}

async fn authenticate_method(state: &AppState, issuer: &Issuer, auth: &ClientAuth) -> Result<Client, OAuthError> {
    match auth {
        ClientAuth::Basic { client_id, secret } | ClientAuth::Post { client_id, secret } => {
            let id = parse_client_id(client_id)?;
            CLIENT_SECRET.check(secret).map_err(|_| bad_client())?;
            let c = cache::credential(state, &state.credential_hasher.hash(secret))
                .await?
                .filter(|c| {
                    c.kind == Kind::ClientSecret
                        && c.agent_id == id
                        && c.tenant_id == issuer.tenant.id
                        && c.is_usable(state.clock.now())
                })
                .ok_or_else(bad_client)?;
            let agent = cache::agent(state, issuer.tenant.id, id)
                .await?
                .ok_or_else(bad_client)?;
            require_active(&agent)?;
            Ok(Client {
                agent,
                credential: c,
                method: auth.method(),
                assertion_jti: None,
            })
        }
        ClientAuth::Assertion { client_id, assertion } => {
            authenticate_assertion(state, issuer, client_id.as_deref(), assertion).await
        }
    }
}

/// RFC 7523 §3: `iss` = `sub` = the client id, `aud` names us (the issuer or
/// the token endpoint), `exp` present and near, `jti` present (consumed with
/// the issuance), signed by one of the agent's registered keys.
async fn authenticate_assertion(
    state: &AppState,
    issuer: &Issuer,
    client_id: Option<&str>,
    assertion: &str,
) -> Result<Client, OAuthError> {
    let bad = |why: &str| OAuthError::InvalidClient(format!("client assertion refused: {why}"));
    let jws = jose::decode(assertion).map_err(|e| bad(&e.to_string()))?;
    let claims = &jws.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let sub = text("sub").ok_or_else(|| bad("no `sub`"))?;
    if text("iss") != Some(sub) {
        return Err(bad("`iss` must equal `sub` (the client id)"));
    }
    if client_id.is_some_and(|c| c != sub) {
        return Err(bad("`client_id` does not match the assertion's `sub`"));
    }
    let id = parse_client_id(sub)?;
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let token_endpoints: Vec<String> = issuer.urls.iter().map(|u| format!("{u}/oauth2/token")).collect();
    let names_us = audiences
        .iter()
        .any(|a| issuer.urls.iter().any(|u| u == a) || token_endpoints.iter().any(|u| u == a));
    if !names_us {
        return Err(bad("`aud` must be this issuer or its token endpoint"));
    }
    let now = state.clock.now();
    let now_s = now.as_micros().div_euclid(1_000_000);
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no `exp`"))?;
    if exp + access_token::LEEWAY_SECS <= now_s {
        return Err(bad("expired"));
    }
    if exp - now_s > MAX_ASSERTION_SECS {
        return Err(bad("`exp` is more than 10 minutes away"));
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now_s + access_token::LEEWAY_SECS)
    {
        return Err(bad("not valid yet"));
    }
    let jti = text("jti").filter(|j| !j.is_empty()).ok_or_else(|| bad("no `jti`"))?;
    let agent = state.store.agent(issuer.tenant.id, id).await?.ok_or_else(bad_client)?;
    let candidates = state.store.credentials(issuer.tenant.id, id).await?;
    let credential = candidates
        .into_iter()
        .filter(|c| c.kind == Kind::PrivateKeyJwt && c.is_usable(now))
        .find(|c| {
            c.jwk
                .as_ref()
                .and_then(|v| serde_json::from_value::<Jwk>(v.clone()).ok())
                .and_then(|j| PublicKey::from_jwk(&j).ok())
                .is_some_and(|k| jws.verify(&k).is_ok())
        })
        .ok_or_else(|| bad("no registered key of this client verifies it"))?;
    require_active(&agent)?;
    Ok(Client {
        agent,
        credential,
        method: "private_key_jwt",
        assertion_jti: Some((
            format!("client-assertion|{}|{jti}", issuer.tenant.id),
            Timestamp::from_micros((exp + access_token::LEEWAY_SECS).saturating_mul(1_000_000)),
        )),
    })
}

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

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// RFC 8693 §2.2.1 `issued_token_type` (token exchange only).
    pub issued_token_type: Option<&'static str>,
    /// Seconds.
    pub expires_in: i64,
    /// Granted scope.
    pub scope: Option<String>,
    /// Granted authorization details (RFC 9396 §7).
    pub authorization_details: Option<Vec<Value>>,
}

fn refusal_event(issuer: &Issuer, actor: Actor, action: Action, target: &str, err: &OAuthError, extra: Value) -> Draft {
    let mut details = json!({ "error": err.code(), "error_description": err.to_string() });
    if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
        d.extend(e);
    }
    Draft {
        tenant_id: issuer.tenant.id,
        actor,
        action,
        target_type: TargetType::Agent.into(),
        target_id: target.to_owned(),
        outcome: Outcome::Denied,
        reason: None,
        request_id: None,
        details,
    }
}

/// Records a refusal (durably) and returns the error; if the record cannot
/// be written the request fails as a server error instead.
async fn refuse(state: &AppState, mut event: Draft, request_id: &str, err: OAuthError) -> OAuthError {
    if matches!(err, OAuthError::Server(_)) {
        return err;
    }
    event.request_id = Some(request_id.to_owned());
    // Callers that did not authenticate: one by one on the record within
    // their budgets, counted past them (app::throttle).
    if event.actor.kind == ActorKind::Anonymous {
        let (source, now) = (throttle::peer(), state.clock.now());
        if let Some(retry_after) = state
            .failed_auth
            .spend(event.tenant_id, Some(&event.target_id), source, now)
        {
            state.failed_auth.count(&event, source, now);
            return OAuthError::TooManyFailures {
                retry_after,
                code: err.code(),
                detail: err.to_string(),
            };
        }
    }
    let ctx = Context {
        actor: event.actor.clone(),
        request_id: Some(request_id.to_owned()),
        note: None,
    };
    match state.store.record(event, ctx).await {
        Ok(()) => err,
        Err(e) => OAuthError::Server(e.into()),
    }
}

fn anonymous(claimed: Option<&str>) -> Actor {
    Actor {
        kind: ActorKind::Anonymous,
        name: claimed.unwrap_or("-").chars().take(128).collect(),
        token_id: None,
    }
}

/// Records a token request refused before client authentication (malformed
/// form, repeated parameters, several authentication methods).
pub async fn refuse_request(
    state: &AppState,
    issuer: &Issuer,
    claimed_client_id: Option<&str>,
    err: OAuthError,
    request_id: &str,
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
    refuse(state, ev, request_id, err).await
}

/// The token endpoint.
pub async fn token(
    state: &AppState,
    issuer: &Issuer,
    auth: Option<ClientAuth>,
    req: TokenRequest,
    request_id: &str,
) -> Result<TokenResponse, OAuthError> {
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
        return Err(refuse(state, ev, request_id, err).await);
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
            return Err(refuse(state, ev, request_id, err).await);
        }
    };
    match issue(state, issuer, &client, &req, request_id).await {
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
            Err(refuse(state, ev, request_id, err).await)
        }
    }
}

async fn issue(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    req: &TokenRequest,
    request_id: &str,
) -> Result<TokenResponse, OAuthError> {
    match req.grant_type.as_str() {
        "client_credentials" => client_credentials(state, issuer, client, req, request_id).await,
        GRANT_TOKEN_EXCHANGE => exchange(state, issuer, client, req, request_id).await,
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "grant type `{other}` is not supported (client_credentials, {GRANT_TOKEN_EXCHANGE})"
        ))),
    }
}

fn requested_details(req: &TokenRequest) -> Result<Option<Vec<Value>>, OAuthError> {
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
    request_id: &str,
) -> Result<TokenResponse, OAuthError> {
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
    sign_and_record(state, issuer, client, token, json!({}), req, request_id).await
}

/// Binds `token` to the request's DPoP key if it sent a proof, signs it and
/// records the issuance (`token.issue` or `token.exchange`), consuming the
/// client assertion and DPoP `jti`s in the same commit; answers only once
/// the event is durable.
async fn sign_and_record(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    mut token: AccessToken,
    extra: Value,
    req: &TokenRequest,
    request_id: &str,
) -> Result<TokenResponse, OAuthError> {
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
        request_id: Some(request_id.to_owned()),
        details,
    };
    let ctx = Context {
        actor: client.actor(),
        request_id: Some(request_id.to_owned()),
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
    Ok(TokenResponse {
        access_token: jwt,
        token_type: if token.cnf_jkt.is_some() { "DPoP" } else { "Bearer" },
        issued_token_type: (action == Action::TokenExchange).then_some(TOKEN_TYPE_ACCESS),
        expires_in: (token.expires_at.as_micros() - token.issued_at.as_micros())
            .div_euclid(1_000_000)
            .max(1),
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
async fn exchange(
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

/// Who is asking to introspect or revoke.
#[derive(Clone, Debug)]
pub enum Caller {
    /// An agent (a resource server, or the token's own client).
    Client(Box<Client>),
    /// An admin API token of the issuer's tenant.
    Admin(Box<super::Caller>),
}

impl Caller {
    fn actor(&self) -> Actor {
        match self {
            Caller::Client(c) => c.actor(),
            Caller::Admin(a) => a.actor(),
        }
    }
}

/// A token we recognised and whose signature (or hash) checked out.
enum Known {
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
async fn recognise(state: &AppState, issuer: &Issuer, token: &str) -> Result<Option<Known>, OAuthError> {
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
async fn verify_ours(
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
async fn is_active(state: &AppState, issuer: &Issuer, c: &Checked) -> Result<bool, OAuthError> {
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

/// What an agent may ask for in a token: its own `allowed_scopes` and the
/// actions its roles and grants give (scopes name actions: one source of
/// truth with the policy engine's grants).
async fn grants_of(state: &AppState, issuer: &Issuer, agent: &Agent) -> Result<grant::Grants, OAuthError> {
    let engine = super::policies::engine(state, issuer.tenant.id)
        .await
        .map_err(OAuthError::Server)?;
    let mut grants = agent.grants.clone();
    grants.scopes.extend(engine.granted(agent).1);
    Ok(grants)
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
pub async fn introspect(
    state: &AppState,
    issuer: &Issuer,
    caller: &Caller,
    token: &str,
    request_id: &str,
) -> Result<Value, OAuthError> {
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
                request_id: Some(request_id.to_owned()),
                note: None,
            };
            state.store.use_credential(issuer.tenant.id, c.id, ctx).await?;
            super::credentials::successor_used(state, &c, Some(request_id.to_owned())).await?;
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

/// The revocation endpoint (RFC 7009 §2.1): a client may revoke the tokens
/// and API keys issued to it; an admin of the tenant (`operator` or `admin`)
/// may revoke any. Unknown, invalid and expired tokens succeed silently.
pub async fn revoke(
    state: &AppState,
    issuer: &Issuer,
    caller: &Caller,
    token: &str,
    request_id: &str,
) -> Result<(), OAuthError> {
    if let Caller::Admin(a) = caller
        && !a.principal.may(idv_core::admin_token::Permission::WriteRegistry)
    {
        return Err(OAuthError::UnauthorizedClient(format!(
            "the `{}` role may not revoke tokens",
            a.principal.role
        )));
    }
    let owner_ok = |agent_id: Uuid| match caller {
        Caller::Client(c) => c.agent.id == agent_id,
        Caller::Admin(_) => true,
    };
    let ctx = Context {
        actor: caller.actor(),
        request_id: Some(request_id.to_owned()),
        note: None,
    };
    match recognise(state, issuer, token).await? {
        None => Ok(()),
        Some(Known::Jwt { checked, .. }) => {
            let Checked {
                jti,
                sub,
                client_id,
                expires_at,
                ..
            } = checked;
            // RFC 7009 §2.1: the token must have been issued to this client.
            let agent_id = Uuid::parse_str(&client_id).unwrap_or_default();
            if !owner_ok(agent_id) {
                let err = OAuthError::UnauthorizedClient("the token was not issued to this client".into());
                let ev = refusal_event(
                    issuer,
                    caller.actor(),
                    Action::TokenRevoke,
                    &sub,
                    &err,
                    json!({ "jti": jti }),
                );
                return Err(refuse(state, ev, request_id, err).await);
            }
            state
                .store
                .revoke_token(issuer.tenant.id, jti, expires_at, sub, ctx)
                .await?;
            Ok(())
        }
        Some(Known::ApiKey(c)) => {
            if !owner_ok(c.agent_id) {
                let err = OAuthError::UnauthorizedClient("the API key was not issued to this client".into());
                let ev = refusal_event(
                    issuer,
                    caller.actor(),
                    Action::CredentialRevoke,
                    &c.agent_id.to_string(),
                    &err,
                    json!({ "credential_id": c.id }),
                );
                return Err(refuse(state, ev, request_id, err).await);
            }
            if c.revoked_at.is_some() {
                return Ok(());
            }
            match state.store.revoke_credential(issuer.tenant.id, c.id, ctx).await {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}
