//! Outbound webhooks: subscriptions (the signing secret shown once, sealed
//! at rest), the dispatcher that turns audit events into deliveries, and the
//! delivery job that signs and POSTs each one (Standard Webhooks headers)
//! and records the outcome.

use std::time::Instant;

use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_core::webhook::{self, AttemptResult, Delivery, DeliveryStatus, Filter, Secret, Status, Webhook};
use idv_store::{Context, DeliveryFilter, Job, SealedSecrets, StoreError, WebhookChanges};
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

/// How long a rotated-out secret keeps signing (receivers swap secrets
/// meanwhile).
pub const SECRET_OVERLAP_SECS: i64 = 24 * 3600;
/// Dispatch steps per poll, at most (each reads at most
/// [`idv_store::DISPATCH_WINDOW`] chain positions per subscription).
const DISPATCH_STEPS: usize = 50;

impl From<webhook::WebhookError> for AppError {
    fn from(e: webhook::WebhookError) -> Self {
        match e {
            webhook::WebhookError::Invalid { field, .. } => AppError::BadParameter {
                field: field.to_owned(),
                detail: e.to_string(),
            },
        }
    }
}

fn aad(tenant_id: Uuid, id: Uuid, column: &str) -> Vec<u8> {
    format!("webhooks/{tenant_id}/{id}/{column}").into_bytes()
}

fn context() -> Context {
    Context::system("webhooks")
}

fn not_found(id: Uuid) -> AppError {
    StoreError::NotFound {
        what: "webhook",
        id: id.to_string(),
    }
    .into()
}

/// What an administrator sends to subscribe.
#[derive(Debug)]
pub struct NewWebhook {
    /// Where to POST.
    pub url: String,
    /// Event patterns.
    pub events: Vec<String>,
    /// For people.
    pub description: Option<String>,
}

/// Subscribes an endpoint; returns it with its signing secret (shown only
/// here).
pub async fn create(state: &AppState, caller: &Caller, req: NewWebhook) -> Result<(Webhook, Secret), AppError> {
    caller
        .require(state, Permission::ManageWebhooks, Action::WebhookCreate)
        .await?;
    webhook::check_url(&req.url, &state.webhook_urls)?;
    let events = Filter::parse(&req.events)?;
    events.check_known()?;
    if let Some(d) = &req.description {
        webhook::check_description(d)?;
    }
    let now = state.clock.now();
    let w = Webhook {
        id: state.clock.new_id(),
        tenant_id: caller.tenant.id,
        url: req.url,
        events,
        description: req.description,
        status: Status::Enabled,
        disabled_reason: None,
        disabled_at: None,
        consecutive_failures: 0,
        failing_since: None,
        last_success_at: None,
        created_at: now,
        created_by: caller.actor().reference(),
        updated_at: now,
    };
    let secret = Secret::generate();
    let sealed_secret = state
        .secret_sealer
        .seal(secret.as_bytes(), &aad(w.tenant_id, w.id, "secret"));
    let w = state.store.create_webhook(w, sealed_secret, caller.context()).await?;
    Ok((w, secret))
}

/// The tenant's subscriptions, a page at a time.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Webhook>, AppError> {
    caller
        .require(state, Permission::ReadAudit, Action::WebhookList)
        .await?;
    let items = state.store.webhooks(caller.tenant.id, after, limit).await?;
    Ok(items.into_iter().map(|w| for_reader(caller, w)).collect())
}

/// Readers who may not manage webhooks (auditors) see only the URL's
/// origin: a path or query can hold the receiver's own token (the same
/// reason the audit log records only the origin).
fn for_reader(caller: &Caller, mut w: Webhook) -> Webhook {
    if !caller.principal.may(Permission::ManageWebhooks) {
        let origin = webhook::url_origin(&w.url);
        if w.url != origin && w.url != format!("{origin}/") {
            w.url = format!("{origin}/…");
        }
    }
    w
}

/// One subscription.
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<Webhook, AppError> {
    caller.require(state, Permission::ReadAudit, Action::WebhookGet).await?;
    state
        .store
        .webhook(caller.tenant.id, id)
        .await?
        .map(|w| for_reader(caller, w))
        .ok_or_else(|| not_found(id))
}

/// What an administrator may change.
#[derive(Debug, Default)]
pub struct Patch {
    /// A new endpoint.
    pub url: Option<String>,
    /// New event patterns.
    pub events: Option<Vec<String>>,
    /// A new description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Changes a subscription.
pub async fn update(state: &AppState, caller: &Caller, id: Uuid, p: Patch) -> Result<Webhook, AppError> {
    caller
        .require(state, Permission::ManageWebhooks, Action::WebhookUpdate)
        .await?;
    if let Some(u) = &p.url {
        webhook::check_url(u, &state.webhook_urls)?;
    }
    if let Some(Some(d)) = &p.description {
        webhook::check_description(d)?;
    }
    let changes = WebhookChanges {
        url: p.url,
        events: p
            .events
            .as_deref()
            .map(|e| Filter::parse(e).and_then(|f| f.check_known().map(|()| f)))
            .transpose()?,
        description: p.description,
        enabled: p.enabled,
    };
    Ok(state
        .store
        .update_webhook(caller.tenant.id, id, changes, caller.context())
        .await?)
}

/// Removes a subscription and its delivery log.
pub async fn delete(state: &AppState, caller: &Caller, id: Uuid) -> Result<(), AppError> {
    caller
        .require(state, Permission::ManageWebhooks, Action::WebhookDelete)
        .await?;
    Ok(state
        .store
        .delete_webhook(caller.tenant.id, id, caller.context())
        .await?)
}

/// Replaces the signing secret; the old one also signs for
/// [`SECRET_OVERLAP_SECS`] so the receiver can switch without losing a
/// delivery. Returns the new secret (shown only here). Refused (409) while
/// an earlier rotation's overlap runs and when a concurrent rotation won, so
/// every secret returned signs deliveries.
pub async fn rotate_secret(state: &AppState, caller: &Caller, id: Uuid) -> Result<(Webhook, Secret), AppError> {
    caller
        .require(state, Permission::ManageWebhooks, Action::WebhookRotateSecret)
        .await?;
    let tenant_id = caller.tenant.id;
    let sealed = state
        .store
        .webhook_secrets(tenant_id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let old = open(state, tenant_id, id, "secret", &sealed.current)?;
    let secret = Secret::generate();
    let until = state.clock.now().plus_secs(SECRET_OVERLAP_SECS);
    let secrets = SealedSecrets {
        current: state
            .secret_sealer
            .seal(secret.as_bytes(), &aad(tenant_id, id, "secret")),
        previous: Some((
            state
                .secret_sealer
                .seal(old.as_bytes(), &aad(tenant_id, id, "previous_secret")),
            until,
        )),
    };
    let w = state
        .store
        .rotate_webhook_secret(tenant_id, id, secrets, sealed.current, caller.context())
        .await?;
    Ok((w, secret))
}

/// A subscription's delivery log.
pub async fn deliveries(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    f: &DeliveryFilter,
) -> Result<Vec<Delivery>, AppError> {
    get(state, caller, id).await?;
    Ok(state.store.webhook_deliveries(caller.tenant.id, id, f).await?)
}

/// Queues a `webhook.test` event to one subscription, sent at once.
pub async fn test(state: &AppState, caller: &Caller, id: Uuid) -> Result<Delivery, AppError> {
    caller
        .require(state, Permission::ManageWebhooks, Action::WebhookTest)
        .await?;
    let now = state.clock.now();
    let d = Delivery::pending(
        (state.clock.new_id(), caller.tenant.id, id),
        webhook::TEST_EVENT,
        None,
        webhook::test_payload(id, caller.tenant.id, now, &caller.actor().reference()),
        now,
    );
    Ok(state.store.test_webhook(d, caller.context()).await?)
}

/// Sends delivery `delivery_id` of subscription `id` again, as a new
/// delivery of the same event (also while the subscription is disabled).
pub async fn redeliver(state: &AppState, caller: &Caller, id: Uuid, delivery_id: Uuid) -> Result<Delivery, AppError> {
    caller
        .require(state, Permission::ManageWebhooks, Action::WebhookRedeliver)
        .await?;
    get(state, caller, id).await?;
    let old = state
        .store
        .webhook_delivery(caller.tenant.id, delivery_id)
        .await?
        .filter(|d| d.webhook_id == id)
        .ok_or_else(|| {
            AppError::Store(StoreError::NotFound {
                what: "webhook delivery",
                id: delivery_id.to_string(),
            })
        })?;
    let d = old.again(state.clock.new_id(), state.clock.now());
    Ok(state.store.redeliver_webhook(d, old.id, caller.context()).await?)
}

/// Moves every enabled subscription's cursor up to the chain head, making
/// deliveries of the events it selects. A cheap read first, so an idle
/// node writes nothing. Returns how many deliveries were made.
pub async fn dispatch(state: &AppState) -> Result<usize, StoreError> {
    let mut made = 0;
    for _ in 0..DISPATCH_STEPS {
        if !state.store.webhooks_behind().await? {
            break;
        }
        made += state.store.dispatch_webhooks(context()).await?;
    }
    Ok(made)
}

fn open(state: &AppState, tenant_id: Uuid, id: Uuid, column: &str, sealed: &[u8]) -> Result<Secret, AppError> {
    let key = state
        .secret_sealer
        .open(sealed, &aad(tenant_id, id, column))
        .map_err(|e| AppError::Internal(format!("a webhook secret does not open: {e}")))?;
    Ok(Secret::from_bytes(&key)?)
}

/// Runs a due [`idv_store::JOB_DELIVER_WEBHOOK`] job: signs and POSTs the
/// delivery and records what came back. A delivery already settled, or
/// (test events aside) of a subscription disabled meanwhile, just finishes
/// the job (enabling the subscription schedules its pending deliveries
/// again).
pub async fn deliver(state: &AppState, job: Job) -> Result<(), AppError> {
    let id = Uuid::parse_str(&job.target_id).map_err(|e| AppError::Internal(format!("delivery job target: {e}")))?;
    let finish = |job: Job| async move { state.store.finish_job(job, context()).await };
    let Some(d) = state.store.webhook_delivery(job.tenant_id, id).await? else {
        finish(job).await?;
        return Ok(());
    };
    let w = state.store.webhook(d.tenant_id, d.webhook_id).await?;
    let sealed = state.store.webhook_secrets(d.tenant_id, d.webhook_id).await?;
    let (Some(w), Some(sealed), DeliveryStatus::Pending) = (w, sealed, d.status) else {
        finish(job).await?;
        return Ok(());
    };
    // A test checks the endpoint, also while the subscription is disabled.
    if w.status == Status::Disabled && d.event_type != webhook::TEST_EVENT {
        finish(job).await?;
        return Ok(());
    }
    let now = state.clock.now();
    let mut secrets = vec![open(state, w.tenant_id, w.id, "secret", &sealed.current)?];
    if let Some((previous, until)) = &sealed.previous
        && *until > now
    {
        secrets.push(open(state, w.tenant_id, w.id, "previous_secret", previous)?);
    }
    // The server's settings may have changed since the URL was accepted.
    let result = match webhook::check_url(&w.url, &state.webhook_urls) {
        Ok(()) => post(state, &w, &d, &secrets, now).await,
        Err(e) => AttemptResult {
            at: now,
            status_code: None,
            error: Some(format!("not sent: {e}")),
            duration_ms: 0,
        },
    };
    if !result.succeeded() {
        tracing::info!(webhook = %w.id, delivery = %d.id, status = ?result.status_code,
            error = ?result.error, "webhook delivery attempt failed");
    }
    Ok(state
        .store
        .record_webhook_attempt(job, result, rand::random::<f64>(), context())
        .await?)
}

/// One attempt: the Standard Webhooks headers over the stored payload, a
/// timeout, no redirects followed.
async fn post(
    state: &AppState,
    w: &Webhook,
    d: &Delivery,
    secrets: &[Secret],
    now: idv_core::Timestamp,
) -> AttemptResult {
    let msg_id = webhook::message_id(d.id);
    let ts = now.as_micros().div_euclid(1_000_000);
    let refs: Vec<&Secret> = secrets.iter().collect();
    let signature = webhook::signature_header(&refs, &msg_id, ts, &d.payload);
    let started = Instant::now();
    let sent = state
        .webhook_http
        .post(&w.url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match sent {
        Ok(res) => {
            let code = res.status().as_u16();
            AttemptResult {
                at: now,
                status_code: Some(code),
                error: (!res.status().is_success()).then(|| format!("the endpoint answered HTTP {code}")),
                duration_ms,
            }
        }
        Err(e) => AttemptResult {
            at: now,
            status_code: None,
            error: Some(describe(e)),
            duration_ms,
        },
    }
}

/// What went wrong sending, without the URL (its query may hold the
/// receiver's tokens).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", webhook::TIMEOUT_SECS);
    }
    let e = e.without_url();
    let mut cur: &dyn std::error::Error = &e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    if e.is_connect() {
        format!("cannot connect: {cur}")
    } else {
        cur.to_string()
    }
}

/// Resolves receivers' names for deliveries and refuses any name that
/// resolves to an address [`webhook::address_allowed`] refuses (checked at
/// connection time, on the addresses actually used: no DNS rebinding).
#[derive(Debug)]
struct GuardedResolver(webhook::UrlPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("`{host}` has no address").into());
            }
            if addrs.iter().any(|a| !webhook::address_allowed(a.ip(), &host, &policy)) {
                return Err("the receiver resolves to an internal address; webhooks are not sent there".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client deliveries use: a request timeout, no redirects
/// (Standard Webhooks: a 3xx is a failure), no proxy from the environment,
/// and names resolved through the address guard.
pub fn http_client(policy: &webhook::UrlPolicy) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(GuardedResolver(policy.clone())))
        .timeout(std::time::Duration::from_secs(webhook::TIMEOUT_SECS))
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("IdentityVault-Webhooks/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .build()?)
}
