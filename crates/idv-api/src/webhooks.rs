//! `/v1/webhooks` and their deliveries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::common::double_option;

/// `POST /v1/webhooks`: subscribe an endpoint to some of the tenant's events.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// Where to POST: `https://…` (`http://` only as the server's
    /// `--webhook-http` setting allows; by default to loopback only).
    pub url: String,
    /// Event patterns: a type (`credential.rotated`), a prefix (`agent.*`)
    /// or `*` (everything but the high-volume `token.issued`,
    /// `token.exchanged` and `authz.decision`, which only their exact name
    /// selects).
    pub events: Vec<String>,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PATCH /v1/webhooks/{id}`: what to change (absent fields stay).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// A new endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New event patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `true` enables (a disabled subscription resumes where it stopped:
    /// nothing that happened meanwhile is lost), `false` disables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A webhook subscription (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// Immutable id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// Event patterns.
    pub events: Vec<String>,
    /// For people.
    pub description: Option<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Why it was disabled (e.g. the endpoint kept failing).
    pub disabled_reason: Option<String>,
    /// RFC 3339, when it was disabled.
    pub disabled_at: Option<String>,
    /// Failed attempts since the last successful delivery.
    pub consecutive_failures: i64,
    /// RFC 3339: the first failed attempt since the last success.
    pub failing_since: Option<String>,
    /// RFC 3339: the last successful delivery.
    pub last_success_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A new subscription (or a new secret) with its signing secret, shown
/// only in this answer.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    /// The subscription.
    pub webhook: WebhookView,
    /// `whsec_…`: verify the `webhook-signature` header with it (Standard
    /// Webhooks). Store it now; it is never shown again.
    pub secret: String,
}

/// One event on its way to one subscription (the delivery log).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryView {
    /// Immutable id.
    pub id: Uuid,
    /// The `webhook-id` header it is sent with (the same on every retry).
    pub message_id: String,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The event type, e.g. `agent.suspended`.
    pub event_type: String,
    /// The audit event it carries (none for `webhook.test`).
    pub event_id: Option<Uuid>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// RFC 3339: when the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
    /// The HTTP status the last attempt got.
    pub last_status_code: Option<i64>,
    /// What went wrong with the last attempt.
    pub last_error: Option<String>,
    /// How long the last attempt took.
    pub last_duration_ms: Option<i64>,
    /// RFC 3339: when it was delivered.
    pub delivered_at: Option<String>,
    /// The body, exactly as signed and sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}
