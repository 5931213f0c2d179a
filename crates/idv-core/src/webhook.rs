//! Outbound webhooks, the pure part: subscriptions and their event filters,
//! which audit actions become which webhook events, the payload, the
//! Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`; HMAC-SHA256 over `{id}.{timestamp}.{payload}`),
//! the retry schedule and when an endpoint that keeps failing is disabled.
//!
//! Webhooks are fed from the audit log: every state change is an audit
//! event already, so a subscription is a cursor over the chain plus a
//! filter. Only successful changes are events; high-volume records
//! (token issuance, authorization decisions) are sent only to a filter that
//! names them exactly.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::Timestamp;
use crate::audit::{Action, Event};

/// Prefix of a signing secret as shown to people (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a secret we generate (256 bits).
pub const SECRET_BYTES: usize = 32;
/// Shortest and longest secret key accepted by [`Secret::parse`]
/// (Standard Webhooks: at least 24 bytes, at most 64).
pub const SECRET_MIN: usize = 24;
/// See [`SECRET_MIN`].
pub const SECRET_MAX: usize = 64;
/// Patterns in one filter.
pub const MAX_PATTERNS: usize = 50;
/// Characters of one pattern.
pub const MAX_PATTERN_LEN: usize = 100;
/// Characters of a URL.
pub const MAX_URL_LEN: usize = 2048;
/// Characters of a description.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// How far a receiver should accept a timestamp from its own clock.
pub const TOLERANCE_SECS: i64 = 300;
/// Request timeout of one delivery attempt (Standard Webhooks: 15–30 s).
pub const TIMEOUT_SECS: u64 = 15;
/// The delay before each retry (the first attempt is immediate): the
/// Standard Webhooks example schedule, about 75 hours in all.
pub const RETRY_SCHEDULE_SECS: [i64; 9] = [
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
];
/// Attempts of one delivery before it is given up.
pub const MAX_ATTEMPTS: u32 = RETRY_SCHEDULE_SECS.len() as u32 + 1;
/// Largest extra fraction of a retry delay added at random (spreads
/// retries so they do not return as one burst).
pub const JITTER: f64 = 0.1;

/// Input that breaks a webhook rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A field is invalid.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> WebhookError {
    WebhookError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// One pattern of a filter: an event type (`credential.rotated`), a prefix
/// (`agent.*`: every type under `agent.`), or `*` (every event type except
/// the high-volume ones, which only their exact name selects).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern(String);

impl Pattern {
    /// Parses one pattern: dot-separated segments of `[a-z0-9_]`, the last
    /// of which may be `*`.
    pub fn parse(s: &str) -> Result<Self, WebhookError> {
        if s.is_empty() || s.len() > MAX_PATTERN_LEN {
            return Err(invalid(
                "events",
                format!("an event pattern has 1 to {MAX_PATTERN_LEN} characters"),
            ));
        }
        let segments: Vec<&str> = s.split('.').collect();
        let last = segments.len() - 1;
        for (i, seg) in segments.iter().enumerate() {
            let ok = (*seg == "*" && i == last)
                || (!seg.is_empty()
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            if !ok {
                return Err(invalid(
                    "events",
                    format!(
                        "`{s}` is not an event pattern (an event type like `credential.rotated`, a prefix like \
                         `agent.*`, or `*`)"
                    ),
                ));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this pattern selects `event_type`.
    pub fn matches(&self, event_type: &str) -> bool {
        if self.0 == event_type {
            return true;
        }
        if high_volume(event_type) {
            return false;
        }
        match self.0.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => event_type.starts_with(prefix) && event_type.len() > prefix.len(),
            None => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a subscription receives: any event type one of its patterns selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter(Vec<Pattern>);

impl Filter {
    /// Parses a list of patterns (1 to [`MAX_PATTERNS`]; duplicates dropped,
    /// order kept).
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, WebhookError> {
        if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
            return Err(invalid(
                "events",
                format!("give 1 to {MAX_PATTERNS} event patterns (`*` for every event)"),
            ));
        }
        let mut out: Vec<Pattern> = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = Pattern::parse(p.as_ref())?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(Self(out))
    }

    /// The patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.0
    }

    /// The patterns as text.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|p| p.0.clone()).collect()
    }

    /// Whether the filter selects `event_type`.
    pub fn matches(&self, event_type: &str) -> bool {
        self.0.iter().any(|p| p.matches(event_type))
    }

    /// Refuses a pattern that selects no event type we send (a typo such as
    /// `credential.rotatd` would otherwise never match). Stored filters are
    /// not checked again, so a type removed later does not break them.
    pub fn check_known(&self) -> Result<(), WebhookError> {
        for p in &self.0 {
            let known = event_types().any(|(_, t)| p.matches(t)) || p.matches(TEST_EVENT);
            if !known {
                return Err(invalid(
                    "events",
                    format!("`{p}` selects no event type (the list is in docs/operations.md#webhooks)"),
                ));
            }
        }
        Ok(())
    }

    /// The audit actions whose events the filter selects (what the
    /// dispatcher asks the audit log for).
    pub fn actions(&self) -> Vec<&'static str> {
        event_types()
            .filter(|(_, t)| self.matches(t))
            .map(|(a, _)| a.as_str())
            .collect()
    }
}

/// Audit action → webhook event type, for every audit action that is a
/// webhook event (declared with the actions: [`Action::webhook_event`]).
pub fn event_types() -> impl Iterator<Item = (Action, &'static str)> {
    Action::ALL.iter().filter_map(|a| a.webhook_event().map(|t| (*a, t)))
}

/// The type of the test event `POST /v1/webhooks/{id}/test` sends.
pub const TEST_EVENT: &str = "webhook.test";

/// Whether `event_type` is one only an exact pattern selects.
pub fn high_volume(event_type: &str) -> bool {
    matches!(event_type, "token.issued" | "token.exchanged" | "authz.decision")
}

/// The webhook event type of an audit action, if it is one.
pub fn event_type(action: &str) -> Option<&'static str> {
    action.parse::<Action>().ok()?.webhook_event()
}

/// The body sent for an audit event (Standard Webhooks payload shape:
/// `type`, `timestamp` of the event, `data`). Secrets never reach the
/// audit log, so none reach a payload.
pub fn payload(event_type: &str, e: &Event) -> String {
    json!({
        "type": event_type,
        "timestamp": e.time.to_rfc3339(),
        "data": {
            "event_id": e.id,
            "audit_seq": e.seq,
            "tenant_id": e.tenant_id,
            "action": e.action,
            "target": { "type": e.target_type, "id": e.target_id },
            "actor": e.actor,
            "reason": e.reason,
            "request_id": e.request_id,
            "details": e.details,
        },
    })
    .to_string()
}

/// The body of a test event.
pub fn test_payload(webhook_id: Uuid, tenant_id: Uuid, now: Timestamp, requested_by: &str) -> String {
    json!({
        "type": TEST_EVENT,
        "timestamp": now.to_rfc3339(),
        "data": { "webhook_id": webhook_id, "tenant_id": tenant_id, "requested_by": requested_by },
    })
    .to_string()
}

/// The `webhook-id` of a delivery: stable across its retries, unique per
/// subscription and event, no `.` (it is part of the signed content).
pub fn message_id(delivery_id: Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

/// A signing secret: 24 to 64 random bytes, shown as `whsec_` + base64.
/// Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<Vec<u8>>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A fresh 256-bit secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rng().fill(key.as_mut_slice());
        Self(zeroize::Zeroizing::new(key))
    }

    /// From its raw bytes (e.g. unsealed).
    pub fn from_bytes(key: &[u8]) -> Result<Self, WebhookError> {
        if !(SECRET_MIN..=SECRET_MAX).contains(&key.len()) {
            return Err(invalid(
                "secret",
                format!("a signing secret has {SECRET_MIN} to {SECRET_MAX} bytes"),
            ));
        }
        Ok(Self(zeroize::Zeroizing::new(key.to_vec())))
    }

    /// Parses `whsec_<base64>` (the prefix may be left out).
    pub fn parse(s: &str) -> Result<Self, WebhookError> {
        let b64 = s.trim().strip_prefix(SECRET_PREFIX).unwrap_or(s.trim());
        let key = B64
            .decode(b64)
            .map_err(|_| invalid("secret", "a signing secret is `whsec_` followed by base64"))?;
        Self::from_bytes(&key)
    }

    /// The raw key (to seal at rest).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `whsec_<base64>`, the form shown once to people.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(self.0.as_slice()))
    }

    /// The `v1,<base64 HMAC-SHA256>` signature of `{id}.{timestamp}.{payload}`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, payload: &str) -> String {
        format!("v1,{}", B64.encode(self.mac(msg_id, timestamp, payload)))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, payload: &str) -> [u8; 32] {
        // HMAC takes a key of any length.
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        m.update(msg_id.as_bytes());
        m.update(b".");
        m.update(timestamp.to_string().as_bytes());
        m.update(b".");
        m.update(payload.as_bytes());
        m.finalize().into_bytes().into()
    }
}

#[expect(clippy::panic, reason = "HMAC accepts keys of every length; this cannot happen")]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA256 refused a key")
}

/// The `webhook-signature` header: one `v1,…` per secret, space-separated
/// (the current secret first; a previous one during a rotation's overlap).
pub fn signature_header(secrets: &[&Secret], msg_id: &str, timestamp: i64, payload: &str) -> String {
    secrets
        .iter()
        .map(|s| s.sign(msg_id, timestamp, payload))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a received webhook does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not an integer.
    #[error("the timestamp is not a number of seconds")]
    BadTimestamp,
    /// The timestamp is outside the tolerance.
    #[error("the timestamp is more than {TOLERANCE_SECS} seconds from now")]
    Stale,
    /// No `v1` signature matches.
    #[error("no signature matches")]
    NoMatch,
}

/// What a receiver does: checks the timestamp is within
/// [`TOLERANCE_SECS`] of `now` and that one `v1` signature of the header
/// matches, in constant time.
pub fn verify(
    secret: &Secret,
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    payload: &str,
    now: Timestamp,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    if (now.as_micros() / 1_000_000).abs_diff(ts) > TOLERANCE_SECS.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    let expected = secret.mac(msg_id, ts, payload);
    let any = signature_header
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .filter(|(v, _)| *v == "v1")
        .filter_map(|(_, sig)| B64.decode(sig).ok())
        .fold(false, |found, sig| found | bool::from(sig.ct_eq(&expected)));
    if any { Ok(()) } else { Err(VerifyError::NoMatch) }
}

/// Which plain-HTTP endpoints may be subscribed (`https://` always may).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpPolicy {
    /// `https://` only.
    Never,
    /// `http://` only to loopback addresses (the default: local receivers
    /// and tests).
    #[default]
    Loopback,
    /// `http://` anywhere (not for production: payloads travel in clear).
    Always,
}

impl std::str::FromStr for HttpPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never" => Ok(Self::Never),
            "loopback" => Ok(Self::Loopback),
            "always" => Ok(Self::Always),
            other => Err(format!("`{other}` is not `never`, `loopback` or `always`")),
        }
    }
}

/// Which endpoints may be subscribed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Plain `http://`.
    pub http: HttpPolicy,
    /// If not empty, the only hosts allowed: a name or address (`hooks.example.com`,
    /// `127.0.0.1`, `::1`) or every name under a domain (`*.example.com`).
    pub hosts: Vec<String>,
}

impl UrlPolicy {
    /// Checks the host patterns (`*.` may only lead; no scheme, port or path).
    pub fn check(&self) -> Result<(), String> {
        for h in &self.hosts {
            let name = h.strip_prefix("*.").unwrap_or(h);
            if name.is_empty() || name.contains(['*', '/', ' ']) || h.contains("://") {
                return Err(format!(
                    "`{h}` is not a host pattern (a host name or address, or `*.domain`)"
                ));
            }
        }
        Ok(())
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.hosts.is_empty()
            || self.hosts.iter().any(|p| {
                let p = p.to_ascii_lowercase();
                match p.strip_prefix("*.") {
                    Some(domain) => host.ends_with(&format!(".{domain}")),
                    None => host == p.trim_start_matches('[').trim_end_matches(']'),
                }
            })
    }
}

/// Checks an endpoint URL: absolute `https://` (or `http://` as `policy`
/// allows), a host the policy allows, no credentials, no fragment, and
/// (for an address) not an internal address ([`address_allowed`]).
pub fn check_url(raw: &str, policy: &UrlPolicy) -> Result<(), WebhookError> {
    check_scheme(raw, policy.http)?;
    let parsed = url::Url::parse(raw).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if !policy.allows_host(&host) {
        // Not the list itself: it describes the operator's network.
        return Err(invalid("url", "this server does not send webhooks to that host"));
    }
    let literal = match parsed.as_ref().and_then(url::Url::host) {
        Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        _ => None,
    };
    if let Some(ip) = literal
        && !address_allowed(ip, &host, policy)
    {
        return Err(invalid("url", "webhooks are not sent to internal addresses"));
    }
    Ok(())
}

/// Whether a receiver at `ip` (the host `host` resolved to, or named) may be
/// sent to: a guard against server-side request forgery, applied to the URL
/// and again to every address a name resolves to at delivery time (so DNS
/// rebinding does not get around it). Public addresses may; loopback only
/// while plain HTTP is not `never` (local receivers, development); private,
/// link-local (cloud metadata), shared (CGNAT), unique-local, unspecified,
/// multicast and broadcast addresses only when the operator listed the host
/// in `--webhook-hosts`.
pub fn address_allowed(ip: IpAddr, host: &str, policy: &UrlPolicy) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return policy.http != HttpPolicy::Never || listed(host, policy);
    }
    let internal = match ip {
        IpAddr::V4(a) => {
            let [o1, o2, ..] = a.octets();
            a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || (o1 == 100 && (64..128).contains(&o2))
                || o1 == 0
                || o1 >= 240
        }
        IpAddr::V6(a) => {
            let first = a.segments().first().copied().unwrap_or(0);
            a.is_unspecified() || a.is_multicast() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    };
    !internal || listed(host, policy)
}

/// Whether the operator named `host` in a non-empty allow-list.
fn listed(host: &str, policy: &UrlPolicy) -> bool {
    !policy.hosts.is_empty() && policy.allows_host(host)
}

fn check_scheme(raw: &str, policy: HttpPolicy) -> Result<(), WebhookError> {
    if raw.len() > MAX_URL_LEN {
        return Err(invalid("url", format!("a URL has at most {MAX_URL_LEN} characters")));
    }
    let u = url::Url::parse(raw).map_err(|e| invalid("url", format!("`{raw}` is not a URL: {e}")))?;
    let host = u
        .host()
        .ok_or_else(|| invalid("url", format!("`{raw}` names no host")))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(invalid(
            "url",
            "a URL must not carry credentials; the signature authenticates us",
        ));
    }
    if u.fragment().is_some() {
        return Err(invalid("url", "a URL must not have a fragment (`#…`)"));
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match host {
                url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
                url::Host::Ipv4(a) => IpAddr::V4(a).is_loopback(),
                url::Host::Ipv6(a) => IpAddr::V6(a).is_loopback(),
            };
            match policy {
                HttpPolicy::Always => Ok(()),
                HttpPolicy::Loopback if loopback => Ok(()),
                HttpPolicy::Loopback => Err(invalid(
                    "url",
                    "plain `http://` is allowed only to loopback addresses; use `https://`",
                )),
                HttpPolicy::Never => Err(invalid("url", "only `https://` endpoints are allowed")),
            }
        }
        other => Err(invalid("url", format!("the scheme must be `https` (not `{other}`)"))),
    }
}

/// `scheme://host[:port]` of a URL, for the audit log (paths and queries can
/// hold tokens of the receiver's; they are not recorded).
pub fn url_origin(raw: &str) -> String {
    url::Url::parse(raw)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// Checks a description.
pub fn check_description(d: &str) -> Result<(), WebhookError> {
    if d.chars().count() > MAX_DESCRIPTION_LEN || d.chars().any(char::is_control) {
        return Err(invalid(
            "description",
            format!("a description has at most {MAX_DESCRIPTION_LEN} characters and no control characters"),
        ));
    }
    Ok(())
}

/// Whether a subscription sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Events are delivered.
    Enabled,
    /// Nothing is sent; events wait behind the cursor until it is enabled.
    Disabled,
}

impl Status {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enabled" => Some(Status::Enabled),
            "disabled" => Some(Status::Disabled),
            _ => None,
        }
    }
}

/// A tenant's subscription of one endpoint to some events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Immutable id.
    pub id: Uuid,
    /// Tenant: it receives this tenant's events only.
    pub tenant_id: Uuid,
    /// Where to POST.
    pub url: String,
    /// What it receives.
    pub events: Filter,
    /// For people.
    pub description: Option<String>,
    /// Whether it sends.
    pub status: Status,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<Timestamp>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i64,
    /// First failed attempt since the last success.
    pub failing_since: Option<Timestamp>,
    /// Last successful delivery.
    pub last_success_at: Option<Timestamp>,
    /// RFC 3339.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up: every attempt failed, or the endpoint answered 410.
    Failed,
}

impl DeliveryStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event on its way to one subscription, with its last attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Immutable id (the `webhook-id` is derived from it).
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The event type.
    pub event_type: String,
    /// The audit event it carries (none for a test event).
    pub event_id: Option<Uuid>,
    /// The body, exactly as signed and sent.
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// When it was made.
    pub created_at: Timestamp,
    /// The last attempt.
    pub last_attempt_at: Option<Timestamp>,
    /// Its HTTP status, if an answer came.
    pub last_status_code: Option<i64>,
    /// What went wrong, if it failed.
    pub last_error: Option<String>,
    /// How long it took.
    pub last_duration_ms: Option<i64>,
    /// When a 2xx answer came.
    pub delivered_at: Option<Timestamp>,
}

impl Delivery {
    /// This delivery's event sent again: a new delivery (its own
    /// `webhook-id`, signed with the current secret) of the same event type,
    /// event id and payload, due at `now`; receivers de-duplicate by the
    /// payload's `event_id`.
    pub fn again(&self, id: Uuid, now: Timestamp) -> Self {
        Self::pending(
            (id, self.tenant_id, self.webhook_id),
            &self.event_type,
            self.event_id,
            self.payload.clone(),
            now,
        )
    }

    /// A delivery of `payload` not yet attempted, due at `now`.
    pub fn pending(
        (id, tenant_id, webhook_id): (Uuid, Uuid, Uuid),
        event_type: &str,
        event_id: Option<Uuid>,
        payload: String,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            tenant_id,
            webhook_id,
            event_type: event_type.to_owned(),
            event_id,
            payload,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(now),
            created_at: now,
            last_attempt_at: None,
            last_status_code: None,
            last_error: None,
            last_duration_ms: None,
            delivered_at: None,
        }
    }
}

/// What one attempt got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptResult {
    /// When it started.
    pub at: Timestamp,
    /// The HTTP status, if an answer came.
    pub status_code: Option<u16>,
    /// What went wrong (no answer, or not 2xx).
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

impl AttemptResult {
    /// Whether the endpoint accepted it (any 2xx; redirects are failures).
    pub fn succeeded(&self) -> bool {
        matches!(self.status_code, Some(200..=299))
    }
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Delivered.
    Done,
    /// Failed: try again this many seconds after the attempt.
    Retry(i64),
    /// Failed for the last time.
    GiveUp,
    /// The endpoint answered 410 Gone: it wants nothing more; disable it.
    Gone,
}

/// What follows attempt number `attempts` (1-based) with `result`;
/// `jitter` in `[0, 1)` spreads the retry (up to [`JITTER`] of the delay).
pub fn next(attempts: i64, result: &AttemptResult, jitter: f64) -> Next {
    if result.succeeded() {
        return Next::Done;
    }
    if result.status_code == Some(410) {
        return Next::Gone;
    }
    let Some(delay) = usize::try_from(attempts - 1)
        .ok()
        .and_then(|i| RETRY_SCHEDULE_SECS.get(i))
    else {
        return Next::GiveUp;
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a delay of at most a day plus a tenth fits in i64"
    )]
    let extra = (*delay as f64 * JITTER * jitter.clamp(0.0, 1.0)) as i64;
    Next::Retry(delay + extra)
}

/// Whether a delivery given up (made at `delivery_created`) means the
/// endpoint is down for good: nothing was delivered to it since that
/// delivery was made, so it failed through the whole retry schedule (about
/// three days). A receiver that refuses only some payloads keeps its
/// subscription.
pub fn disables(last_success_at: Option<Timestamp>, delivery_created: Timestamp) -> bool {
    last_success_at.is_none_or(|s| s < delivery_created)
}

/// Whether the signing secret may be rotated at `now`, given when the
/// previous secret's overlap ends (after an earlier rotation). While it runs
/// the answer is no, with its end: a rotation would stop the previous
/// secret signing while the receiver may still use it, and would leave
/// unused the secret the earlier rotation returned — of several rotations
/// sent at once, only one may succeed, and every secret a success returns
/// must sign deliveries.
pub fn may_rotate(previous_until: Option<Timestamp>, now: Timestamp) -> Result<(), Timestamp> {
    match previous_until {
        Some(until) if until > now => Err(until),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_rotation_waits_for_the_previous_overlap_to_end() {
        let now = Timestamp::from_micros(1_000_000_000);
        assert_eq!(may_rotate(None, now), Ok(()));
        assert_eq!(may_rotate(Some(now.plus_secs(-1)), now), Ok(()));
        assert_eq!(may_rotate(Some(now), now), Ok(()));
        assert_eq!(may_rotate(Some(now.plus_secs(1)), now), Err(now.plus_secs(1)));
    }

    /// The published Standard Webhooks test vector (the reference libraries'
    /// `test_sign`).
    #[test]
    fn signs_the_standard_webhooks_vector() {
        let s = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let payload = r#"{"email":"test@example.com","username":"test_user"}"#;
        let sig = s.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, payload);
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        let now = Timestamp::from_micros(1_649_367_553 * 1_000_000 + 10_000_000);
        assert_eq!(
            verify(&s, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "1649367553", &sig, payload, now),
            Ok(())
        );
        // Another secret's signature among several still verifies.
        let other = Secret::generate().sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, payload);
        let both = format!("{other} {sig}");
        assert_eq!(
            verify(&s, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "1649367553", &both, payload, now),
            Ok(())
        );
        assert_eq!(
            verify(
                &s,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                "1649367553",
                &other,
                payload,
                now
            ),
            Err(VerifyError::NoMatch)
        );
        // The reference's wrong signature.
        assert_eq!(
            verify(
                &s,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                "1649367553",
                "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
                payload,
                now
            ),
            Err(VerifyError::NoMatch)
        );
        let late = now.plus_secs(TOLERANCE_SECS);
        assert_eq!(
            verify(&s, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "1649367553", &sig, payload, late),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&s, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "x", &sig, payload, now),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn secrets_round_trip_and_have_bounds() {
        let s = Secret::generate();
        let shown = s.expose();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(Secret::parse(&shown).unwrap(), s);
        assert_eq!(format!("{s:?}"), "Secret(…)");
        assert!(Secret::from_bytes(&[0; 23]).is_err());
        assert!(Secret::from_bytes(&[0; 65]).is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
    }

    #[test]
    fn patterns_select_types() {
        let f = Filter::parse(&["agent.*", "credential.rotated"]).unwrap();
        assert!(f.matches("agent.created"));
        assert!(f.matches("agent.suspended"));
        assert!(f.matches("credential.rotated"));
        assert!(!f.matches("credential.issued"));
        assert!(!f.matches("agent"));
        assert!(!f.matches("agents.created"));
        let all = Filter::parse(&["*"]).unwrap();
        assert!(all.matches("lease.issued") && all.matches("webhook.disabled"));
        // High-volume records need their exact name.
        assert!(!all.matches("authz.decision") && !all.matches("token.issued"));
        assert!(!Filter::parse(&["token.*"]).unwrap().matches("token.issued"));
        assert!(Filter::parse(&["token.issued"]).unwrap().matches("token.issued"));
        let actions = f.actions();
        assert!(actions.contains(&"agent.suspend") && actions.contains(&"credential.rotate"));
        assert!(!actions.contains(&"credential.create"));
        assert!(!all.actions().contains(&"authz.decision"));
        assert_eq!(f.check_known(), Ok(()));
        assert_eq!(all.check_known(), Ok(()));
        assert!(Filter::parse(&["credential.rotatd"]).unwrap().check_known().is_err());
        assert!(Filter::parse(&["nothing.*"]).unwrap().check_known().is_err());
        assert!(Filter::parse(&["webhook.test"]).unwrap().check_known().is_ok());
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "Agent.created",
            "agent.",
            ".agent",
            "a..b",
            "*.created",
            "agent.*.x",
            "a b",
            "agent**",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Filter::parse::<&str>(&[]).is_err());
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("a{i}")).collect();
        assert!(Filter::parse(&many).is_err());
        assert_eq!(Filter::parse(&["a", "a"]).unwrap().to_strings(), vec!["a"]);
    }

    #[test]
    fn every_event_type_is_a_valid_exact_pattern() {
        for (action, t) in event_types() {
            assert_eq!(event_type(action.as_str()), Some(t));
            assert!(Pattern::parse(t).unwrap().matches(t));
        }
    }

    fn http(p: HttpPolicy) -> UrlPolicy {
        UrlPolicy { http: p, hosts: vec![] }
    }

    #[test]
    fn hosts_can_be_restricted() {
        let p = UrlPolicy {
            http: HttpPolicy::Loopback,
            hosts: vec!["127.0.0.1".into(), "*.bank.example".into(), "::1".into()],
        };
        assert_eq!(p.check(), Ok(()));
        assert!(check_url("http://127.0.0.1:9/h", &p).is_ok());
        assert!(check_url("http://[::1]:9/h", &p).is_ok());
        assert!(check_url("https://hooks.BANK.example/h", &p).is_ok());
        assert!(check_url("https://bank.example/h", &p).is_err());
        assert!(check_url("https://evilbank.example/h", &p).is_err());
        assert!(check_url("https://example.com/h", &p).is_err());
        for bad in ["", "*", "https://x", "a/b", "*.*.x"] {
            let p = UrlPolicy {
                http: HttpPolicy::Never,
                hosts: vec![bad.into()],
            };
            assert!(p.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_follow_the_policy() {
        assert!(check_url("https://hooks.example.com/idv?x=1", &http(HttpPolicy::Never)).is_ok());
        assert!(check_url("http://127.0.0.1:9000/h", &http(HttpPolicy::Loopback)).is_ok());
        assert!(check_url("http://localhost/h", &http(HttpPolicy::Loopback)).is_ok());
        assert!(check_url("http://[::1]:80/h", &http(HttpPolicy::Loopback)).is_ok());
        assert!(check_url("http://10.0.0.1/h", &http(HttpPolicy::Loopback)).is_err());
        assert!(check_url("http://127.0.0.1/h", &http(HttpPolicy::Never)).is_err());
        assert!(check_url("http://hooks.example.com/h", &http(HttpPolicy::Always)).is_ok());
        assert!(check_url("ftp://x/y", &http(HttpPolicy::Always)).is_err());
        assert!(check_url("https://u:p@x.example/y", &http(HttpPolicy::Always)).is_err());
        assert!(check_url("https://x.example/y#f", &http(HttpPolicy::Always)).is_err());
        assert!(check_url("not a url", &http(HttpPolicy::Always)).is_err());
        assert_eq!(
            url_origin("https://x.example:8443/secret/path?t=1"),
            "https://x.example:8443"
        );
    }

    #[test]
    fn internal_addresses_are_refused_unless_listed() {
        let open = http(HttpPolicy::Loopback);
        for internal in [
            "https://10.1.2.3/h",
            "https://169.254.169.254/latest/meta-data",
            "https://192.168.0.10/h",
            "https://172.16.5.5/h",
            "https://100.64.0.1/h",
            "https://0.0.0.0/h",
            "https://[fd00::1]/h",
            "https://[fe80::1]/h",
            "https://[::ffff:10.0.0.1]/h",
        ] {
            assert!(check_url(internal, &open).is_err(), "{internal}");
        }
        assert!(check_url("https://8.8.8.8/h", &open).is_ok());
        assert!(check_url("https://[2001:4860::8888]/h", &open).is_ok());
        // Loopback goes with plain HTTP's policy.
        assert!(check_url("https://127.0.0.1/h", &open).is_ok());
        assert!(check_url("https://127.0.0.1/h", &http(HttpPolicy::Never)).is_err());
        // The operator may list an internal receiver.
        let listed = UrlPolicy {
            http: HttpPolicy::Never,
            hosts: vec!["10.1.2.3".into(), "hooks.corp.example".into()],
        };
        assert!(check_url("https://10.1.2.3/h", &listed).is_ok());
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        assert!(address_allowed(ip, "hooks.corp.example", &listed));
        assert!(!address_allowed(ip, "hooks.other.example", &open));
        assert!(!address_allowed(
            "127.0.0.1".parse().unwrap(),
            "rebound.example",
            &http(HttpPolicy::Never)
        ));
    }

    fn attempt(code: Option<u16>) -> AttemptResult {
        AttemptResult {
            at: Timestamp::from_micros(0),
            status_code: code,
            error: None,
            duration_ms: 1,
        }
    }

    #[test]
    fn retries_follow_the_schedule_then_give_up() {
        let fail = attempt(Some(500));
        let got: Vec<Next> = (1..=11).map(|n| next(n, &fail, 0.0)).collect();
        let mut want: Vec<Next> = RETRY_SCHEDULE_SECS.iter().map(|d| Next::Retry(*d)).collect();
        want.push(Next::GiveUp);
        want.push(Next::GiveUp);
        assert_eq!(got, want);
        assert_eq!(next(1, &attempt(None), 0.0), Next::Retry(5));
        assert_eq!(next(2, &fail, 0.999), Next::Retry(329));
        assert_eq!(next(3, &attempt(Some(204)), 0.5), Next::Done);
        assert_eq!(next(3, &attempt(Some(302)), 0.5), Next::Retry(1800 + 90));
        assert_eq!(next(1, &attempt(Some(410)), 0.5), Next::Gone);
    }

    #[test]
    fn an_endpoint_with_no_success_since_the_delivery_is_disabled() {
        let made = Timestamp::from_micros(1_000_000_000);
        assert!(disables(None, made));
        assert!(disables(Some(made.plus_secs(-60)), made));
        // Something was delivered after this delivery was made.
        assert!(!disables(Some(made.plus_secs(3600)), made));
    }

    proptest! {
        #[test]
        fn sign_verify_round_trip(key in proptest::collection::vec(any::<u8>(), SECRET_MIN..=SECRET_MAX),
                                  id in "msg_[A-Za-z0-9]{1,30}", ts in 0i64..4_000_000_000, payload in ".*") {
            let s = Secret::from_bytes(&key).unwrap();
            let sig = s.sign(&id, ts, &payload);
            let now = Timestamp::from_micros(ts * 1_000_000);
            prop_assert_eq!(verify(&s, &id, &ts.to_string(), &sig, &payload, now), Ok(()));
            let tampered = format!("{payload}x");
            prop_assert_eq!(verify(&s, &id, &ts.to_string(), &sig, &tampered, now), Err(VerifyError::NoMatch));
            prop_assert_eq!(Secret::parse(&s.expose()).unwrap(), s);
        }

        #[test]
        fn parsed_patterns_match_what_they_name(segs in proptest::collection::vec("[a-z0-9_]{1,8}", 1..4), star in any::<bool>()) {
            let exact = segs.join(".");
            let p = if star { format!("{exact}.*") } else { exact.clone() };
            let parsed = Pattern::parse(&p).unwrap();
            let child = format!("{exact}.x");
            prop_assert_eq!(parsed.as_str(), p.as_str());
            if star {
                prop_assert!(parsed.matches(&child));
                prop_assert!(!parsed.matches(&exact));
            } else {
                prop_assert!(parsed.matches(&exact));
                prop_assert!(!parsed.matches(&child));
            }
        }

        #[test]
        fn pattern_parsing_never_panics(s in ".{0,120}") {
            let _ = Pattern::parse(&s);
        }
    }
}
