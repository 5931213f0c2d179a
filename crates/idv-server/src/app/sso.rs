//! Single sign-on for the console: a tenant's OpenID Connect provider
//! (configured through the API and `idv sso`), and signing a person in with
//! the authorization code flow, PKCE (RFC 7636, `S256`), `state` and `nonce`
//! (OpenID Connect Core §3.1).
//!
//! The provider's discovery document and keys are fetched when needed and
//! kept for ten minutes; an ID token signed by a key we do not know makes
//! one fresh fetch (the provider may have rolled its keys).

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idv_core::Timestamp;
use idv_core::admin_token::{Permission, Role};
use idv_core::audit::{Action, Actor, ActorKind, Draft, Outcome, TargetType};
use idv_core::oidc::{self, Expected, IdTokenError, Jwks};
use idv_core::secret::random_base62;
use idv_core::session::{Method, Session};
use idv_core::sso::SsoConfig;
use idv_core::tenant::Tenant;
use idv_store::{Context, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::sessions::{Browser, Opened};
use super::{AppError, Caller};
use crate::AppState;

/// How long a provider's documents are used before they are fetched again.
const DOCUMENTS_MAX_AGE_SECS: i64 = 600;

/// How long a person has to come back from the provider.
const TRANSACTION_SECS: i64 = 600;

/// The path the provider sends people back to.
pub const CALLBACK_PATH: &str = "/console/sso/callback";

/// What `PUT /v1/sso` takes.
#[derive(Debug)]
pub struct SsoRequest {
    /// Issuer.
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (sealed at rest, never shown again).
    pub client_secret: String,
    /// Scopes (default `openid email profile`).
    pub scopes: Option<Vec<String>>,
    /// Groups claim (default `groups`).
    pub groups_claim: Option<String>,
    /// Group → role.
    pub role_map: BTreeMap<String, Role>,
}

fn aad(tenant: &Tenant) -> Vec<u8> {
    format!("sso/{}", tenant.id).into_bytes()
}

/// Sets the tenant's provider (`admin`; audited, the secret never).
pub async fn put(state: &AppState, caller: &Caller, req: SsoRequest) -> Result<SsoConfig, AppError> {
    caller.require(state, Permission::ManageTrust, Action::SsoPut).await?;
    if req.client_secret.is_empty() || req.client_secret.len() > 1024 {
        return Err(AppError::BadParameter {
            field: "client_secret".into(),
            detail: "`client_secret`: 1 to 1024 characters".into(),
        });
    }
    let config = SsoConfig {
        tenant_id: caller.tenant.id,
        issuer: req.issuer.trim_end_matches('/').to_owned(),
        client_id: req.client_id,
        scopes: req
            .scopes
            .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]),
        groups_claim: req.groups_claim.unwrap_or_else(|| "groups".into()),
        role_map: req.role_map,
        updated_at: state.clock.now(),
        updated_by: caller.actor().reference(),
    };
    config.check().map_err(|e| AppError::BadParameter {
        field: e.field.into(),
        detail: e.to_string(),
    })?;
    let sealed = state
        .sso_sealer
        .seal(req.client_secret.as_bytes(), &aad(&caller.tenant));
    Ok(state.store.put_sso(config, sealed, caller.context()).await?)
}

/// The tenant's provider, if set (`admin` and `auditor`).
pub async fn get(state: &AppState, caller: &Caller) -> Result<SsoConfig, AppError> {
    caller.require(state, Permission::ReadAudit, Action::SsoGet).await?;
    Ok(state
        .store
        .sso(caller.tenant.id)
        .await?
        .map(|(c, _)| c)
        .ok_or_else(|| StoreError::NotFound {
            what: "single sign-on provider",
            id: "oidc".into(),
        })?)
}

/// Removes the tenant's provider (`admin`); sessions already open stay.
pub async fn delete(state: &AppState, caller: &Caller) -> Result<(), AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::SsoDelete)
        .await?;
    Ok(state.store.delete_sso(caller.tenant.id, caller.context()).await?)
}

/// A provider's discovery document, the parts we use (OpenID Connect
/// Discovery 1.0 §3).
#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

/// A provider's documents as fetched.
#[derive(Clone, Debug)]
struct Documents {
    discovery: Discovery,
    keys: Jwks,
    fetched_at: Timestamp,
}

/// Each provider's documents on this node, by issuer.
#[derive(Debug, Default)]
pub struct ProviderDocuments(RwLock<HashMap<String, Documents>>);

fn upstream(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Upstream(format!("the identity provider's {what}: {e}"))
}

async fn fetch_json(state: &AppState, url: &str, what: &str) -> Result<Value, AppError> {
    let res = state.idp_http.get(url).send().await.map_err(|e| upstream(what, e))?;
    if !res.status().is_success() {
        return Err(upstream(what, format!("answered {}", res.status())));
    }
    res.json::<Value>().await.map_err(|e| upstream(what, e))
}

/// The provider's documents, fetched when missing, old, or (`refresh`)
/// when an ID token names a key we do not know.
async fn documents(state: &AppState, issuer: &str, refresh: bool) -> Result<Documents, AppError> {
    let now = state.clock.now();
    if !refresh
        && let Some(d) = state
            .provider_documents
            .0
            .read()
            .ok()
            .and_then(|m| m.get(issuer).cloned())
        && now.as_micros() - d.fetched_at.as_micros() < DOCUMENTS_MAX_AGE_SECS * 1_000_000
    {
        return Ok(d);
    }
    let url = format!("{issuer}/.well-known/openid-configuration");
    let discovery: Discovery = serde_json::from_value(fetch_json(state, &url, "discovery document").await?)
        .map_err(|e| upstream("discovery document", e))?;
    // Discovery §4.3: the issuer in the document must be the one we asked.
    if discovery.issuer != issuer {
        return Err(upstream(
            "discovery document",
            format!("it names issuer `{}`, not `{issuer}`", discovery.issuer),
        ));
    }
    let keys = Jwks::parse(&fetch_json(state, &discovery.jwks_uri, "keys (JWKS)").await?)
        .map_err(|e| upstream("keys (JWKS)", e))?;
    let d = Documents {
        discovery,
        keys,
        fetched_at: now,
    };
    if let Ok(mut m) = state.provider_documents.0.write() {
        m.insert(issuer.to_owned(), d.clone());
    }
    Ok(d)
}

/// One sign-in in progress, kept sealed in a short-lived cookie.
#[derive(Debug, Serialize, Deserialize)]
struct Transaction {
    tenant: String,
    state: String,
    nonce: String,
    verifier: String,
    expires: i64,
}

/// Where to send the browser, and the sealed transaction for its cookie.
#[derive(Debug)]
pub struct Start {
    /// The provider's authorization URL.
    pub location: String,
    /// The cookie's value.
    pub transaction: String,
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.public_url)
}

/// The tenant named `tenant_name` and its provider.
async fn configured(state: &AppState, tenant_name: &str) -> Result<(Tenant, SsoConfig, Vec<u8>), AppError> {
    let not_found = || {
        AppError::Store(StoreError::NotFound {
            what: "single sign-on provider",
            id: tenant_name.to_owned(),
        })
    };
    let tenant = super::tenants::by_name(state, tenant_name)
        .await?
        .ok_or_else(not_found)?;
    let (config, sealed) = state.store.sso(tenant.id).await?.ok_or_else(not_found)?;
    Ok((tenant, config, sealed))
}

/// Whether tenant `tenant_name` has single sign-on (for the sign-in page).
pub async fn available(state: &AppState, tenant_name: &str) -> bool {
    configured(state, tenant_name).await.is_ok()
}

/// Starts a sign-in at the tenant's provider: a fresh `state`, `nonce` and
/// PKCE verifier, sealed into the transaction cookie.
pub async fn start(state: &AppState, tenant_name: &str) -> Result<Start, AppError> {
    let (_, config, _) = configured(state, tenant_name).await?;
    let docs = documents(state, &config.issuer, false).await?;
    let t = Transaction {
        tenant: tenant_name.to_owned(),
        state: random_base62(43),
        nonce: random_base62(43),
        verifier: random_base62(64),
        expires: state.clock.now().as_micros() / 1_000_000 + TRANSACTION_SECS,
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(t.verifier.as_bytes()));
    let mut url =
        url::Url::parse(&docs.discovery.authorization_endpoint).map_err(|e| upstream("authorization endpoint", e))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", &redirect_uri(state))
        .append_pair("scope", &config.scopes.join(" "))
        .append_pair("state", &t.state)
        .append_pair("nonce", &t.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let json = serde_json::to_vec(&t).map_err(|e| AppError::Internal(e.to_string()))?;
    let sealed = state.oidc_sealer.seal(&json, b"console-oidc-transaction");
    Ok(Start {
        location: url.to_string(),
        transaction: URL_SAFE_NO_PAD.encode(sealed),
    })
}

/// Why a person was not signed in, for the page they see.
#[derive(Debug, thiserror::Error)]
pub enum SignInRefused {
    /// The transaction cookie is missing, forged, stale or for another
    /// `state` (a login CSRF attempt looks like this).
    #[error("this sign-in expired or was not started here; start again")]
    Transaction,
    /// The provider said no.
    #[error("the identity provider refused: {0}")]
    Provider(String),
    /// The ID token failed a check.
    #[error("{0}")]
    IdToken(#[from] IdTokenError),
    /// None of the person's groups is mapped to a role.
    #[error("{0} is not in a group that may use IdentityVault; ask your administrator")]
    NoRole(String),
    /// Something else failed.
    #[error("{0}")]
    App(#[from] AppError),
}

/// Records a refused sign-in (the person named as well as we know them).
async fn record_refusal(state: &AppState, tenant: &Tenant, who: &str, why: &SignInRefused) -> Result<(), AppError> {
    let ctx = Context {
        actor: Actor {
            kind: ActorKind::Person,
            name: who.chars().take(256).collect(),
            token_id: None,
        },
        request_id: Some(super::request::id()),
        note: None,
    };
    let d = Draft {
        tenant_id: tenant.id,
        actor: ctx.actor.clone(),
        action: Action::ConsoleSignIn,
        target_type: TargetType::ConsoleSession.into(),
        target_id: "oidc".into(),
        outcome: Outcome::Denied,
        reason: Some(why.to_string().chars().take(512).collect()),
        request_id: ctx.request_id.clone(),
        details: json!({ "method": "oidc", "source": super::request::peer().map(|p| p.to_string()) }),
    };
    Ok(state.store.record(d, ctx).await?)
}

/// Finishes a sign-in: checks `state` against the transaction, redeems the
/// code (with the PKCE verifier, client authenticated with
/// `client_secret_basic`), validates the ID token, maps the person's groups
/// to a role and opens a session. Every refusal past the transaction check
/// is recorded.
pub async fn finish(
    state: &AppState,
    transaction: Option<&str>,
    returned_state: &str,
    code: Result<&str, String>,
    browser: Browser,
) -> Result<Opened, SignInRefused> {
    let t: Transaction = transaction
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .and_then(|b| state.oidc_sealer.open(&b, b"console-oidc-transaction").ok())
        .and_then(|j| serde_json::from_slice(&j).ok())
        .ok_or(SignInRefused::Transaction)?;
    let fresh = state.clock.now().as_micros() / 1_000_000 < t.expires;
    if !fresh
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            t.state.as_bytes(),
            returned_state.as_bytes(),
        ))
    {
        return Err(SignInRefused::Transaction);
    }
    let (tenant, config, sealed) = configured(state, &t.tenant).await?;
    let result = redeem(state, &config, &sealed, &tenant, &t, code).await;
    let (person, role) = match result {
        Ok(ok) => ok,
        Err(why) => {
            let who = match &why {
                SignInRefused::NoRole(who) => who.clone(),
                _ => "unknown".to_owned(),
            };
            record_refusal(state, &tenant, &who, &why).await?;
            return Err(why);
        }
    };
    let now = state.clock.now();
    let display = person.email.clone().unwrap_or_else(|| person.subject.clone());
    let s = Session {
        id: state.clock.new_id(),
        tenant_id: tenant.id,
        method: Method::Oidc,
        subject: person.subject.clone(),
        issuer: Some(person.issuer.clone()),
        email: person.email.clone(),
        display_name: person.name.clone().unwrap_or_else(|| display.clone()),
        role,
        platform: false,
        token_id: None,
        source: super::request::peer().map(|p| p.to_string()),
        user_agent: browser.user_agent.map(|u| u.chars().take(256).collect()),
        created_at: now,
        last_seen_at: now,
        expires_at: Session::expiry(now, state.session_timeouts),
        ended_at: None,
        ended_by: None,
        end_reason: None,
    };
    let ctx = Context {
        actor: Actor {
            kind: ActorKind::Person,
            name: display,
            token_id: Some(s.id),
        },
        request_id: Some(super::request::id()),
        note: Some(json!({ "person": { "issuer": person.issuer, "subject": person.subject } })),
    };
    Ok(super::sessions::open(state, ctx, s).await?)
}

/// The token endpoint's answer, the part we use.
#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

async fn redeem(
    state: &AppState,
    config: &SsoConfig,
    sealed: &[u8],
    tenant: &Tenant,
    t: &Transaction,
    code: Result<&str, String>,
) -> Result<(oidc::Person, Role), SignInRefused> {
    let code = code.map_err(SignInRefused::Provider)?;
    let secret = state
        .sso_sealer
        .open(sealed, &aad(tenant))
        .map_err(|_| AppError::Internal("the SSO client secret does not open under this master key".into()))?;
    let secret = String::from_utf8_lossy(&secret).into_owned();
    let docs = documents(state, &config.issuer, false).await?;
    let res = state
        .idp_http
        .post(&docs.discovery.token_endpoint)
        // RFC 6749 §2.3.1: both parts form-encoded, then Basic.
        .basic_auth(
            form_urlencoded::byte_serialize(config.client_id.as_bytes()).collect::<String>(),
            Some(form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri(state)),
            ("code_verifier", &t.verifier),
        ])
        .send()
        .await
        .map_err(|e| upstream("token endpoint", e))?;
    if !res.status().is_success() {
        let body = res.text().await.unwrap_or_default();
        return Err(SignInRefused::Provider(format!(
            "the token endpoint answered: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    let answer: TokenAnswer = res.json().await.map_err(|e| upstream("token endpoint", e))?;
    let id_token = answer
        .id_token
        .ok_or_else(|| SignInRefused::Provider("no ID token came back (is `openid` among the scopes?)".into()))?;
    let expected = Expected {
        issuer: &config.issuer,
        client_id: &config.client_id,
        nonce: &t.nonce,
        now: state.clock.now(),
        groups_claim: &config.groups_claim,
    };
    let person = match oidc::validate_id_token(&id_token, &docs.keys, &expected) {
        Err(IdTokenError::UnknownKey(_)) => {
            let docs = documents(state, &config.issuer, true).await?;
            oidc::validate_id_token(&id_token, &docs.keys, &expected)?
        }
        other => other?,
    };
    let who = person.email.clone().unwrap_or_else(|| person.subject.clone());
    let role = config.role_for(&person.groups).ok_or(SignInRefused::NoRole(who))?;
    Ok((person, role))
}

/// The provider's RP-initiated logout URL (OpenID Connect RP-Initiated
/// Logout 1.0), if it offers one.
pub async fn logout_url(state: &AppState, s: &Session) -> Option<String> {
    let issuer = s.issuer.as_deref()?;
    let docs = documents(state, issuer, false).await.ok()?;
    let end = docs.discovery.end_session_endpoint?;
    let config = state.store.sso(s.tenant_id).await.ok()??.0;
    let mut url = url::Url::parse(&end).ok()?;
    url.query_pairs_mut()
        .append_pair("client_id", &config.client_id)
        .append_pair(
            "post_logout_redirect_uri",
            &format!("{}/console/login", state.public_url),
        );
    Some(url.to_string())
}

/// A client for talking to identity providers: bounded in time, no
/// redirects followed.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}
