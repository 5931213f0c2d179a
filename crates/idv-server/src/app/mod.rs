//! Use cases. Each loads what it needs, decides with `idv-core`, and hands
//! the change and its audit events to the store in one transaction. Nothing
//! here knows HTTP.

pub mod access_requests;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cache;
pub mod credentials;
pub mod decisions;
pub mod delegations;
pub mod figures;
pub mod keys;
pub mod leases;
pub mod lifetimes;
pub mod oauth;
pub mod policies;
pub mod request;
pub mod rotation;
pub mod search;
pub mod sessions;
pub mod sso;
pub mod tenants;
pub mod throttle;
pub mod tokens;
pub mod webhooks;

use idv_core::admin_token::{Permission, Principal};
use idv_core::agent::AgentError;
use idv_core::audit::{Action, Actor, ActorKind, Draft, Outcome, TargetType};
use idv_core::credential::CredentialError;
use idv_core::delegation::DelegationError;
use idv_core::tenant::Tenant;
use idv_core::trusted_issuer::IssuerError;
use idv_store::{Context, StoreError};
use serde_json::json;

use crate::AppState;

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No or bad credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Input breaks a rule.
    #[error(transparent)]
    Invalid(#[from] AgentError),
    /// A request parameter is malformed.
    #[error("{detail}")]
    BadParameter {
        /// Which parameter.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// From the store (not found, conflict, precondition, transition, faults).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A policy version (or grant condition) that does not compile.
    #[error("the policies do not compile ({} problem(s))", .0.len())]
    PolicyInvalid(Vec<idv_policy::Problem>),
    /// A system we depend on (a target database) failed or refused; the
    /// message is safe to show (it never holds a secret).
    #[error("{0}")]
    Upstream(String),
    /// Too many failed authentications: retry after this many seconds.
    #[error("too many failed authentications; retry after {0} s")]
    Throttled(u64),
    /// A fault inside the server (logged, never echoed).
    #[error("{0}")]
    Internal(String),
}

impl From<idv_core::role::RoleError> for AppError {
    fn from(e: idv_core::role::RoleError) -> Self {
        AppError::BadParameter {
            field: e.field.to_owned(),
            detail: e.to_string(),
        }
    }
}

impl From<DelegationError> for AppError {
    fn from(e: DelegationError) -> Self {
        match e {
            DelegationError::Invalid { field, reason } => AppError::BadParameter {
                field: field.to_owned(),
                detail: format!("`{field}`: {reason}"),
            },
        }
    }
}

impl From<IssuerError> for AppError {
    fn from(e: IssuerError) -> Self {
        match e {
            IssuerError::Invalid { field, reason } => AppError::BadParameter {
                field: field.to_owned(),
                detail: format!("`{field}`: {reason}"),
            },
        }
    }
}

impl From<CredentialError> for AppError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::Invalid { field, reason } => AppError::BadParameter {
                field: field.to_owned(),
                detail: format!("`{field}`: {reason}"),
            },
        }
    }
}

/// An authenticated caller acting in one tenant.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's identity and role.
    pub principal: Principal,
    /// The tenant this request acts in (the token's own, or the one a
    /// platform operator named).
    pub tenant: Tenant,
    /// Whether a platform operator is acting outside its own tenant.
    pub cross_tenant: bool,
    /// The request id.
    pub request_id: String,
    /// The console session it acts through, if any.
    pub session: Option<uuid::Uuid>,
    /// The person behind a single sign-on session: the identity provider's
    /// issuer and subject.
    pub person: Option<(String, String)>,
    /// For the `owner` role: the owner (their e-mail) whose agents alone
    /// this caller may see and manage.
    pub owner_scope: Option<String>,
}

impl Caller {
    /// The audit actor for this caller.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: if self.person.is_some() {
                ActorKind::Person
            } else {
                ActorKind::AdminToken
            },
            name: self.principal.token_name.clone(),
            token_id: Some(self.principal.token_id),
        }
    }

    /// The audit context for this caller's commands. A platform operator
    /// acting in another tenant is noted in every event (DESIGN §7).
    pub fn context(&self) -> Context {
        Context {
            actor: self.actor(),
            request_id: Some(self.request_id.clone()),
            note: self.note(),
        }
    }

    /// What every event of this caller notes about the request: the tenant
    /// a platform operator acts in, the console session, the person.
    fn note(&self) -> Option<serde_json::Value> {
        let mut note = serde_json::Map::new();
        if self.cross_tenant {
            note.insert("acting_in_tenant".into(), json!(self.tenant.name));
            note.insert("home_tenant_id".into(), json!(self.principal.home_tenant));
        }
        if let Some(s) = self.session {
            note.insert("console_session".into(), json!(s));
        }
        if let Some((issuer, subject)) = &self.person {
            note.insert("person".into(), json!({ "issuer": issuer, "subject": subject }));
        }
        (!note.is_empty()).then_some(serde_json::Value::Object(note))
    }

    /// Refuses with 404 (as if it did not exist: an owner learns nothing of
    /// others' agents) unless the caller may see `agent`.
    pub fn owns(&self, agent: &idv_core::agent::Agent) -> Result<(), AppError> {
        match &self.owner_scope {
            Some(owner) if &agent.owner != owner => Err(AppError::Store(StoreError::NotFound {
                what: "agent",
                id: agent.id.to_string(),
            })),
            _ => Ok(()),
        }
    }

    /// Refuses (and audits the refusal) an operation over the whole tenant
    /// when the caller is scoped to their own agents.
    pub async fn require_unscoped(&self, state: &AppState, action: Action) -> Result<(), AppError> {
        if self.owner_scope.is_none() {
            return Ok(());
        }
        // The same record as any refusal by role.
        self.require(state, Permission::ManagePlatform, action).await
    }

    /// Refuses (and audits the refusal) unless the caller may do `p`.
    pub async fn require(&self, state: &AppState, p: Permission, action: Action) -> Result<(), AppError> {
        if self.principal.may(p) {
            return Ok(());
        }
        let ctx = self.context();
        let draft = Draft {
            tenant_id: self.tenant.id,
            actor: ctx.actor.clone(),
            action,
            target_type: TargetType::Api.into(),
            target_id: action.as_str().to_owned(),
            outcome: Outcome::Denied,
            reason: None,
            request_id: ctx.request_id.clone(),
            details: match &ctx.note {
                Some(note) => json!({
                    "role": self.principal.role.as_str(), "platform": self.principal.platform, "request": note,
                }),
                None => json!({ "role": self.principal.role.as_str(), "platform": self.principal.platform }),
            },
        };
        state.store.record(draft, ctx).await?;
        // The operation too: a permission's name alone can puzzle (a `pep`
        // asking to validate policies is refused reading the registry).
        Err(AppError::Forbidden(format!(
            "`{action}`: the `{}` role may not {}",
            self.principal.role,
            describe(p)
        )))
    }
}

fn describe(p: Permission) -> &'static str {
    match p {
        Permission::ReadRegistry => "read the registry",
        Permission::WriteRegistry => "change agents",
        Permission::ReadAudit => "read the audit log",
        Permission::ManageTokens => "manage admin tokens",
        Permission::ManageTrust => "manage trust settings (trusted issuers, token lifetimes)",
        Permission::ManagePlatform => "manage tenants (needs a platform operator admin token)",
        Permission::ReadAllAudit => "read every tenant's audit events (needs a platform operator token)",
        Permission::ManagePolicy => "manage policies, roles, grants and the directory",
        Permission::Decide => "ask for authorization decisions",
        Permission::Approve => "approve or reject approval requests",
        Permission::ManageWebhooks => "manage webhook subscriptions",
    }
}
