//! An agent's credentials from its page: issue, rotate with an overlap,
//! revoke, and report the agent compromised. A new secret is shown once, on
//! a page that is not cached and never in a URL.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use idv_core::credential::{Kind, NewCredential, Retire, Rotation};
use serde::Deserialize;
use uuid::Uuid;

use super::{ConsoleError, Layout, Viewer, path_id, render};
use crate::AppState;
use crate::app::{self, AppError};

/// A secret shown once.
#[derive(Template)]
#[template(path = "console/secret.html")]
struct SecretPage {
    layout: Layout,
    what: String,
    secret: String,
    agent_id: Uuid,
}

fn bad(field: &str, detail: impl Into<String>) -> ConsoleError {
    ConsoleError::App(AppError::BadParameter {
        field: field.into(),
        detail: detail.into(),
    })
}

/// Issue form.
#[derive(Deserialize)]
pub struct IssueForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    kind: String,
    #[serde(default)]
    ttl: String,
}

/// `POST /console/agents/{id}/credentials`.
pub async fn issue(
    State(state): State<AppState>,
    v: Viewer,
    Path(agent): Path<String>,
    Form(form): Form<IssueForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    let agent_id = path_id(&agent, "agent")?;
    let kind = match form.kind.as_str() {
        "client_secret" => Kind::ClientSecret,
        "api_key" => Kind::ApiKey,
        _ => return Err(bad("kind", "issue a client secret or an API key here")),
    };
    let ttl_seconds = match form.ttl.trim() {
        "" => None,
        t => Some(idv_core::duration::parse_seconds(t).map_err(|e| bad("ttl", e.to_string()))?),
    };
    let req = NewCredential {
        kind,
        jwk: None,
        scopes: None,
        ttl_seconds,
    };
    let (c, secret) = app::credentials::create(&state, &v.caller, agent_id, req).await?;
    let secret = secret.ok_or_else(|| AppError::Internal("a new secret credential came without its secret".into()))?;
    Ok(render(&SecretPage {
        layout: Layout::new(&v, "New credential", "/console/agents"),
        what: format!("The new {} ({})", c.kind.as_str(), c.hint.unwrap_or_default()),
        secret,
        agent_id,
    }))
}

/// Rotate form.
#[derive(Deserialize)]
pub struct RotateForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    overlap: String,
}

/// `POST /console/credentials/{id}/rotate`: a successor now, the
/// predecessor working on through the overlap.
pub async fn rotate(
    State(state): State<AppState>,
    v: Viewer,
    Path(cid): Path<String>,
    Form(form): Form<RotateForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    let cid = path_id(&cid, "credential")?;
    let overlap = match form.overlap.trim() {
        "" => None,
        o => Some(idv_core::duration::parse_seconds_or_zero(o).map_err(|e| bad("overlap", e.to_string()))?),
    };
    let rotation = Rotation::new(overlap, Retire::OverlapEnd).map_err(AppError::from)?;
    let req = app::credentials::RotateRequest {
        rotation,
        jwk: None,
        pickup: false,
    };
    let r = app::credentials::rotate(&state, &v.caller, cid, req).await?;
    let agent_id = r.successor.agent_id;
    match r.secret {
        Some(secret) => Ok(render(&SecretPage {
            layout: Layout::new(&v, "Credential rotated", "/console/agents"),
            what: format!(
                "The successor {} ({}); the old one works until {}",
                r.successor.kind.as_str(),
                r.successor.hint.clone().unwrap_or_default(),
                r.predecessor
                    .expires_at
                    .or(r.predecessor.revoked_at)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            ),
            secret,
            agent_id,
        })),
        None => Ok(Redirect::to(&format!("/console/agents/{agent_id}")).into_response()),
    }
}

/// A form with the CSRF token and the agent to go back to.
#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /console/credentials/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    v: Viewer,
    Path(cid): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    let c = app::credentials::revoke(&state, &v.caller, path_id(&cid, "credential")?).await?;
    Ok(Redirect::to(&format!("/console/agents/{}", c.agent_id)).into_response())
}

/// Compromise form.
#[derive(Deserialize)]
pub struct CompromiseForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/agents/{id}/compromised`: every live credential revoked
/// at once; the successors' secrets are shown here, once.
pub async fn compromised(
    State(state): State<AppState>,
    v: Viewer,
    Path(agent): Path<String>,
    Form(form): Form<CompromiseForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    let agent_id = path_id(&agent, "agent")?;
    let (revoked, successors) = app::credentials::compromised(&state, &v.caller, agent_id, form.reason).await?;
    let secrets: Vec<String> = successors
        .iter()
        .filter_map(|(c, s)| {
            s.as_ref()
                .map(|s| format!("{} {}: {s}", c.kind.as_str(), c.hint.clone().unwrap_or_default()))
        })
        .collect();
    if secrets.is_empty() {
        return Ok(Redirect::to(&format!("/console/agents/{agent_id}")).into_response());
    }
    Ok(render(&SecretPage {
        layout: Layout::new(&v, "Credentials replaced", "/console/agents"),
        what: format!(
            "{} credential(s) revoked; their successors (hand them to the agent over a trusted channel)",
            revoked.len()
        ),
        secret: secrets.join("\n"),
        agent_id,
    }))
}
