//! Domain records as wire views.

use idv_api::{AdminTokenView, AgentView, AuditActorView, AuditEventView, CredentialView, ParentRef, TenantView};
use idv_core::Timestamp;
use idv_core::admin_token::AdminToken;
use idv_core::agent::{Agent, Parent, spiffe_id};
use idv_core::audit::Event;
use idv_core::credential::Credential;
use idv_core::hex;
use idv_core::tenant::Tenant;

/// A tenant.
pub fn tenant(t: &Tenant) -> TenantView {
    TenantView {
        id: t.id,
        name: t.name.clone(),
        display_name: t.display_name.clone(),
        created_at: t.created_at.to_rfc3339(),
    }
}

/// An admin token (never the secret).
pub fn admin_token(t: &AdminToken, tenant_name: &str) -> AdminTokenView {
    AdminTokenView {
        id: t.id,
        tenant: tenant_name.to_owned(),
        name: t.name.clone(),
        role: t.role.as_str().to_owned(),
        platform: t.platform,
        hint: t.hint.clone(),
        created_at: t.created_at.to_rfc3339(),
        created_by: t.created_by.clone(),
        expires_at: t.expires_at.map(|e| e.to_rfc3339()),
        revoked_at: t.revoked_at.map(|e| e.to_rfc3339()),
    }
}

/// A credential (never the secret).
pub fn credential(c: &Credential, now: Timestamp) -> CredentialView {
    let status = if c.revoked_at.is_some() {
        "revoked"
    } else if c.is_usable(now) {
        "active"
    } else {
        "expired"
    };
    CredentialView {
        id: c.id,
        agent_id: c.agent_id,
        type_: c.kind.as_str().to_owned(),
        hint: c.hint.clone(),
        jwk: c.jwk.clone(),
        scopes: c.scopes.clone(),
        status: status.to_owned(),
        created_at: c.created_at.to_rfc3339(),
        created_by: c.created_by.clone(),
        expires_at: c.expires_at.map(|e| e.to_rfc3339()),
        revoked_at: c.revoked_at.map(|e| e.to_rfc3339()),
        last_used_at: c.last_used_at.map(|e| e.to_rfc3339()),
        revoked_reason: c.revoked_reason.clone(),
        predecessor_id: c.predecessor_id,
        successor_id: c.successor_id,
        retire_on_use: c.retire_on_use,
        awaiting_pickup: c.awaiting_pickup,
    }
}

/// The wire form of a parent.
pub fn parent_ref(p: &Parent) -> ParentRef {
    match p {
        Parent::Agent(id) => ParentRef {
            type_: "agent".into(),
            id: id.to_string(),
        },
        Parent::Human(h) => ParentRef {
            type_: "human".into(),
            id: h.clone(),
        },
    }
}

/// An agent.
pub fn agent(a: &Agent, tenant_name: &str, trust_domain: &str) -> AgentView {
    AgentView {
        id: a.id,
        spiffe_id: spiffe_id(trust_domain, tenant_name, a.id),
        tenant: tenant_name.to_owned(),
        name: a.name.clone(),
        owner: a.owner.clone(),
        purpose: a.purpose.clone(),
        environment: a.environment.map(|e| e.as_str().to_owned()),
        team: a.team.clone(),
        labels: a.labels.clone(),
        capabilities: a.capabilities.clone(),
        class: a.class.clone(),
        parent: a.parent.as_ref().map(parent_ref),
        depends_on: a.depends_on.clone(),
        allowed_scopes: a.grants.scopes.clone(),
        allowed_resources: a.grants.resources.clone(),
        authorization_details_types: a.grants.authorization_details_types.clone(),
        status: a.status.as_str().to_owned(),
        status_reason: a.status_reason.clone(),
        status_changed_at: a.status_changed_at.to_rfc3339(),
        status_changed_by: a.status_changed_by.clone(),
        expires_at: a.expires_at.map(|e| e.to_rfc3339()),
        created_at: a.created_at.to_rfc3339(),
        created_by: a.created_by.clone(),
        updated_at: a.updated_at.to_rfc3339(),
        version: a.version,
    }
}

/// An audit event with everything needed to recompute its hash.
pub fn event(e: &Event) -> AuditEventView {
    AuditEventView {
        seq: e.seq,
        id: e.id,
        time: e.time.to_rfc3339(),
        tenant_id: e.tenant_id,
        actor: AuditActorView {
            kind: e.actor.kind.as_str().to_owned(),
            name: e.actor.name.clone(),
            token_id: e.actor.token_id,
        },
        action: e.action.clone(),
        target_type: e.target_type.clone(),
        target_id: e.target_id.clone(),
        outcome: e.outcome.as_str().to_owned(),
        reason: e.reason.clone(),
        request_id: e.request_id.clone(),
        details: e.details.clone(),
        prev_hash: hex::encode(&e.prev_hash),
        hash: hex::encode(&e.hash),
    }
}
