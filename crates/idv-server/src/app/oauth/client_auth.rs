//! Client authentication (RFC 6749 §2.3, RFC 7523 §2.2): client secrets
//! and signed client assertions.

use idv_core::Timestamp;
use idv_core::agent::Agent;
use idv_core::audit::{Actor, ActorKind};
use idv_core::client_assertion::{self, AssertionError};
use idv_core::credential::{CLIENT_SECRET, Credential, Kind};
use idv_core::jose::{self, Jwk, PublicKey};
use idv_core::lifecycle::Status;
use uuid::Uuid;

use super::{Issuer, OAuthError};
use crate::AppState;
use crate::app::cache;

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

    pub(super) fn claimed_id(&self) -> Option<&str> {
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
    crate::app::credentials::successor_used(state, &client.credential).await?;
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
    let now = state.clock.now();
    let checked = client_assertion::check(&jws.claims, client_id, &issuer.urls, now).map_err(|e| match e {
        AssertionError::NotClientId => bad_client(),
        other => bad(&other.to_string()),
    })?;
    let id = checked.client_id;
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
            format!("client-assertion|{}|{}", issuer.tenant.id, checked.jti),
            checked.replay_until(),
        )),
    })
}
