//! `idv webhook …`.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use idv_api::{Page, WebhookCreate, WebhookCreated, WebhookDeliveryView, WebhookPatch, WebhookView};
use idv_core::Clock as _;
use idv_core::webhook::{self, Secret};

use super::{list_pages, print_next};
use crate::cli::{Connection, PageArgs};
use crate::client::{Client, encode};
use crate::output::{self, Table, fields, opt};

/// `idv webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Subscribe an endpoint; prints its signing secret once.
    Create {
        /// Where to POST (`https://…`; `http://` to loopback by default).
        #[arg(long)]
        url: String,
        /// Event pattern: a type (`credential.rotated`), a prefix
        /// (`agent.*`) or `*` (repeatable).
        #[arg(long = "event", value_name = "PATTERN", required = true)]
        events: Vec<String>,
        /// For people.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// The tenant's subscriptions.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one subscription.
    Get {
        /// Webhook id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a subscription.
    Update {
        /// Webhook id.
        id: String,
        /// A new endpoint.
        #[arg(long)]
        url: Option<String>,
        /// Replacement event patterns (repeatable).
        #[arg(long = "event", value_name = "PATTERN")]
        events: Vec<String>,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
        /// Enable it (a disabled one resumes where it stopped).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable it.
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a subscription and its delivery log.
    Delete {
        /// Webhook id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// The delivery log of a subscription.
    Deliveries {
        /// Webhook id.
        id: String,
        /// Only `pending`, `delivered` or `failed`.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Send a delivery's event again now (a new delivery of the same event).
    Redeliver {
        /// Webhook id.
        id: String,
        /// The delivery to send again.
        delivery: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Send a `webhook.test` event now.
    Test {
        /// Webhook id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Replace the signing secret (printed once; the old one co-signs for 24 h).
    RotateSecret {
        /// Webhook id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check a received webhook's signature offline, as a receiver would.
    Verify {
        /// The signing secret (`whsec_…`).
        #[arg(long, env = "IDV_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// The `webhook-id` header.
        #[arg(long)]
        id: String,
        /// The `webhook-timestamp` header.
        #[arg(long)]
        timestamp: String,
        /// The `webhook-signature` header.
        #[arg(long)]
        signature: String,
        /// File holding the body exactly as received (`-` for stdin).
        #[arg(long)]
        payload_file: PathBuf,
        /// Accept any timestamp (to check an old delivery).
        #[arg(long)]
        ignore_time: bool,
    },
}

/// Runs `idv webhook …`.
pub async fn run(cmd: WebhookCommand) -> anyhow::Result<()> {
    match cmd {
        WebhookCommand::Create {
            url,
            events,
            description,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = WebhookCreate {
                url,
                events,
                description,
            };
            let created: WebhookCreated = c.post("/v1/webhooks", &body).await?;
            if conn.json {
                return output::json(&created);
            }
            show_created(&created);
        }
        WebhookCommand::List { page, conn } => {
            let c = Client::new(&conn)?;
            let p: Page<WebhookView> = list_pages(&c, "/v1/webhooks", vec![], &page).await?;
            if conn.json {
                return output::json(&p);
            }
            let mut t = Table::new(&["ID", "STATUS", "EVENTS", "URL", "FAILURES"]);
            for w in &p.items {
                t.row(vec![
                    w.id.to_string(),
                    w.status.clone(),
                    w.events.join(","),
                    w.url.clone(),
                    w.consecutive_failures.to_string(),
                ]);
            }
            t.print();
            print_next(&p);
        }
        WebhookCommand::Get { id, conn } => {
            let c = Client::new(&conn)?;
            let w: WebhookView = c.get(&format!("/v1/webhooks/{}", encode(&id))).await?;
            if conn.json {
                return output::json(&w);
            }
            show(&w);
        }
        WebhookCommand::Update {
            id,
            url,
            events,
            description,
            enable,
            disable,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = WebhookPatch {
                url,
                events: (!events.is_empty()).then_some(events),
                description: description.map(Some),
                enabled: match (enable, disable) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
            };
            let w: WebhookView = c.patch_json(&format!("/v1/webhooks/{}", encode(&id)), &body).await?;
            if conn.json {
                return output::json(&w);
            }
            show(&w);
        }
        WebhookCommand::Delete { id, conn } => {
            let c = Client::new(&conn)?;
            c.delete_empty(&format!("/v1/webhooks/{}", encode(&id))).await?;
            if conn.json {
                return output::json(&serde_json::json!({ "deleted": id }));
            }
            println!("Deleted webhook {id} and its delivery log");
        }
        WebhookCommand::Deliveries { id, status, page, conn } => {
            let c = Client::new(&conn)?;
            let p: Page<WebhookDeliveryView> = list_pages(
                &c,
                &format!("/v1/webhooks/{}/deliveries", encode(&id)),
                vec![("status", status)],
                &page,
            )
            .await?;
            if conn.json {
                return output::json(&p);
            }
            let mut t = Table::new(&[
                "ID",
                "EVENT",
                "STATUS",
                "ATTEMPTS",
                "LAST CODE",
                "LAST ERROR",
                "NEXT ATTEMPT",
            ]);
            for d in &p.items {
                t.row(vec![
                    d.id.to_string(),
                    d.event_type.clone(),
                    d.status.clone(),
                    d.attempts.to_string(),
                    d.last_status_code.map(|c| c.to_string()).unwrap_or_default(),
                    opt(&d.last_error),
                    opt(&d.next_attempt_at),
                ]);
            }
            t.print();
            print_next(&p);
        }
        WebhookCommand::Redeliver { id, delivery, conn } => {
            let c = Client::new(&conn)?;
            let d: WebhookDeliveryView = c
                .post(
                    &format!(
                        "/v1/webhooks/{}/deliveries/{}/redeliver",
                        encode(&id),
                        encode(&delivery)
                    ),
                    &serde_json::json!({}),
                )
                .await?;
            if conn.json {
                return output::json(&d);
            }
            println!(
                "Queued {} again (delivery {}, webhook-id {}); see `idv webhook deliveries {id}`",
                d.event_type, d.id, d.message_id
            );
        }
        WebhookCommand::Test { id, conn } => {
            let c = Client::new(&conn)?;
            let d: WebhookDeliveryView = c
                .post(&format!("/v1/webhooks/{}/test", encode(&id)), &serde_json::json!({}))
                .await?;
            if conn.json {
                return output::json(&d);
            }
            println!(
                "Queued a webhook.test event (delivery {}, webhook-id {}); see `idv webhook deliveries {id}`",
                d.id, d.message_id
            );
        }
        WebhookCommand::RotateSecret { id, conn } => {
            let c = Client::new(&conn)?;
            let created: WebhookCreated = c
                .post(
                    &format!("/v1/webhooks/{}/rotate-secret", encode(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            if conn.json {
                return output::json(&created);
            }
            println!("The previous secret also signs for the next 24 hours.");
            show_created(&created);
        }
        WebhookCommand::Verify {
            secret,
            id,
            timestamp,
            signature,
            payload_file,
            ignore_time,
        } => {
            let secret = Secret::parse(&secret).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut payload = String::new();
            if payload_file.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut payload)
                    .context("cannot read the payload from standard input")?;
            } else {
                payload = std::fs::read_to_string(&payload_file)
                    .with_context(|| format!("cannot read {}", payload_file.display()))?;
            }
            let now = if ignore_time {
                let ts: i64 = timestamp
                    .trim()
                    .parse()
                    .context("the timestamp is not a number of seconds")?;
                idv_core::Timestamp::from_micros(ts.saturating_mul(1_000_000))
            } else {
                idv_core::clock::SystemClock::default().now()
            };
            match webhook::verify(&secret, &id, &timestamp, &signature, &payload, now) {
                Ok(()) => println!("valid: signed with this secret"),
                Err(e) => bail!("not valid: {e}"),
            }
        }
    }
    Ok(())
}

fn show(w: &WebhookView) {
    fields(&[
        ("id", w.id.to_string()),
        ("url", w.url.clone()),
        ("events", w.events.join(", ")),
        ("description", opt(&w.description)),
        ("status", w.status.clone()),
        ("disabled reason", opt(&w.disabled_reason)),
        ("disabled at", opt(&w.disabled_at)),
        ("consecutive failures", w.consecutive_failures.to_string()),
        ("failing since", opt(&w.failing_since)),
        ("last success", opt(&w.last_success_at)),
        ("created", format!("{} by {}", w.created_at, w.created_by)),
    ]);
}

fn show_created(c: &WebhookCreated) {
    show(&c.webhook);
    println!("Signing secret (shown once, store it now): {}", c.secret);
    println!("Verify `webhook-signature` with it (Standard Webhooks; docs/operations.md).");
}
