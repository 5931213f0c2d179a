//! The OAuth 2.0 authorization server for agents: client authentication,
//! the token endpoint (`client_credentials`), introspection (RFC 7662) and
//! revocation (RFC 7009). Every issuance, refusal and revocation is audited
//! in the same group commit as every other event.

use idv_core::access_token::{self, AccessToken};
use idv_core::agent::{Agent, spiffe_id};
use idv_core::audit::{Actor, ActorKind, Draft, Outcome};
use idv_core::credential::{API_KEY, CLIENT_SECRET, Credential, Kind};
use idv_core::grant::{self, Refusal};
use idv_core::jose::{self, Jwk, PublicKey};
use idv_core::lifecycle::Status;
use idv_core::tenant::{DEFAULT_TENANT, Tenant};
use idv_core::{Timestamp, admin_token};
use idv_store::{Applied, Command, Context, StoreError};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{AppError, keys};
use crate::AppState;

/// RFC 7521 §4.2 / RFC 7523 §2.2: the client assertion type for JWTs.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

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
    let tenant = state
        .store
        .tenant_by_name(name)
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
pub async fn authenticate(state: &AppState, issuer: &Issuer, auth: &ClientAuth) -> Result<Client, OAuthError> {
    match auth {
        ClientAuth::Basic { client_id, secret } | ClientAuth::Post { client_id, secret } => {
            let id = parse_client_id(client_id)?;
            CLIENT_SECRET.check(secret).map_err(|_| bad_client())?;
            let c = state
                .store
                .credential_by_hash(&state.credential_hasher.hash(secret))
                .await?
                .filter(|c| {
                    c.kind == Kind::ClientSecret
                        && c.agent_id == id
                        && c.tenant_id == issuer.tenant.id
                        && c.is_usable(state.clock.now())
                })
                .ok_or_else(bad_client)?;
            let agent = state.store.agent(issuer.tenant.id, id).await?.ok_or_else(bad_client)?;
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
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// Granted scope.
    pub scope: Option<String>,
    /// Granted authorization details (RFC 9396 §7).
    pub authorization_details: Option<Vec<Value>>,
}

fn refusal_event(issuer: &Issuer, actor: Actor, action: &str, target: &str, err: &OAuthError, extra: Value) -> Draft {
    let mut details = json!({ "error": err.code(), "error_description": err.to_string() });
    if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
        d.extend(e);
    }
    Draft {
        tenant_id: issuer.tenant.id,
        actor,
        action: action.to_owned(),
        target_type: "agent".into(),
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
    let ctx = Context {
        actor: event.actor.clone(),
        request_id: Some(request_id.to_owned()),
        note: None,
    };
    match state.store.execute(Command::Record(event), ctx).await {
        Ok(_) => err,
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
        "token.issue",
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
            "token.issue",
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
                "token.issue",
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
                "token.issue",
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
    if req.grant_type != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType(format!(
            "grant type `{}` is not supported (client_credentials)",
            req.grant_type
        )));
    }
    let asked = grant::Request {
        scope: req.scope.as_deref().map(grant::parse_scope).transpose()?,
        resources: req.resources.clone(),
        authorization_details: req
            .authorization_details
            .as_deref()
            .map(grant::parse_authorization_details)
            .transpose()?,
    };
    let granted = grant::decide(&asked, &client.agent.grants, &issuer.url)?;
    let now = state.clock.now();
    let token = AccessToken {
        issuer: issuer.url.clone(),
        agent_id: client.agent.id,
        audiences: granted.audiences,
        scopes: granted.scopes,
        authorization_details: granted.authorization_details,
        jti: state.clock.new_id(),
        issued_at: now,
        expires_at: now.plus_secs(state.token_ttl_secs),
        spiffe_id: spiffe_id(&state.trust_domain, &issuer.tenant.name, client.agent.id),
        owner: client.agent.owner.clone(),
        environment: client.agent.environment.map(|e| e.as_str().to_owned()),
        tenant: issuer.tenant.name.clone(),
    };
    let ring = keys::signing_ring(state, issuer.tenant.id).await?;
    let (kid, key) = ring
        .signer()
        .ok_or_else(|| AppError::Internal("the tenant has no signing key".into()))?;
    let jwt = key.sign(kid, access_token::TYP, &token.claims());
    let scope = (!token.scopes.is_empty()).then(|| token.scopes.iter().cloned().collect::<Vec<_>>().join(" "));
    let event = Draft {
        tenant_id: issuer.tenant.id,
        actor: client.actor(),
        action: "token.issue".into(),
        target_type: "agent".into(),
        target_id: client.agent.id.to_string(),
        outcome: Outcome::Success,
        reason: None,
        request_id: Some(request_id.to_owned()),
        details: json!({
            "jti": token.jti, "grant_type": req.grant_type, "method": client.method,
            "credential_id": client.credential.id, "scope": scope, "aud": token.audiences,
            "authorization_details": token.authorization_details,
            "exp": token.expires_at.to_rfc3339(), "kid": kid,
        }),
    };
    let ctx = Context {
        actor: client.actor(),
        request_id: Some(request_id.to_owned()),
        note: None,
    };
    let once: Vec<(String, Timestamp)> = client.assertion_jti.iter().cloned().collect();
    match state.store.execute(Command::IssueToken { event, once }, ctx).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(OAuthError::InvalidClient(
                "client assertion refused: its `jti` was already used".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(TokenResponse {
        access_token: jwt,
        token_type: "Bearer",
        expires_in: state.token_ttl_secs,
        scope,
        authorization_details: token.authorization_details,
    })
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
        jti: String,
        sub: String,
        expires_at: Timestamp,
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
    // Expired or otherwise unacceptable tokens are recognised only to be
    // reported inactive; the checks are in `access_token::check`.
    let checked = access_token::check(&jws.header, &jws.claims, &urls, state.clock.now());
    match checked {
        Ok(c) => Ok(Some(Known::Jwt {
            claims: jws.claims,
            jti: c.jti,
            sub: c.sub,
            expires_at: c.expires_at,
        })),
        Err(_) => Ok(None),
    }
}

/// RFC 7662 §2.2: `{"active": false}` for anything not currently active.
fn inactive() -> Value {
    json!({ "active": false })
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
        Some(Known::Jwt {
            mut claims, jti, sub, ..
        }) => {
            if state.store.is_token_revoked(&jti).await? {
                return Ok(inactive());
            }
            let Ok(agent_id) = Uuid::parse_str(&sub) else {
                return Ok(inactive());
            };
            match state.store.agent(issuer.tenant.id, agent_id).await? {
                Some(a) if a.status == Status::Active => {}
                _ => return Ok(inactive()),
            }
            claims.insert("active".into(), Value::Bool(true));
            claims.insert("token_type".into(), Value::String("Bearer".into()));
            Ok(Value::Object(claims))
        }
        Some(Known::ApiKey(c)) => {
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
            state
                .store
                .execute(
                    Command::UseCredential {
                        tenant_id: issuer.tenant.id,
                        id: c.id,
                    },
                    ctx,
                )
                .await?;
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
        Some(Known::Jwt {
            jti, sub, expires_at, ..
        }) => {
            let agent_id = Uuid::parse_str(&sub).unwrap_or_default();
            if !owner_ok(agent_id) {
                let err = OAuthError::UnauthorizedClient("the token was not issued to this client".into());
                let ev = refusal_event(
                    issuer,
                    caller.actor(),
                    "token.revoke",
                    &sub,
                    &err,
                    json!({ "jti": jti }),
                );
                return Err(refuse(state, ev, request_id, err).await);
            }
            let cmd = Command::RevokeToken {
                tenant_id: issuer.tenant.id,
                jti,
                expires_at,
                subject: sub,
            };
            state.store.execute(cmd, ctx).await?;
            Ok(())
        }
        Some(Known::ApiKey(c)) => {
            if !owner_ok(c.agent_id) {
                let err = OAuthError::UnauthorizedClient("the API key was not issued to this client".into());
                let ev = refusal_event(
                    issuer,
                    caller.actor(),
                    "credential.revoke",
                    &c.agent_id.to_string(),
                    &err,
                    json!({ "credential_id": c.id }),
                );
                return Err(refuse(state, ev, request_id, err).await);
            }
            if c.revoked_at.is_some() {
                return Ok(());
            }
            let cmd = Command::RevokeCredential {
                tenant_id: issuer.tenant.id,
                id: c.id,
            };
            match state.store.execute(cmd, ctx).await {
                Ok(Applied::Credential(_)) | Err(StoreError::Conflict(_)) => Ok(()),
                Ok(_) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}
