//! `idv webhook …`.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use idv_api::{Page, WebhookCreate, WebhookCreated, WebhookDeliveryView, WebhookPatch, WebhookView};
use idv_core::Clock as _;
use idv_core::webhook::{self, Secret};

use super::{list_pages, print_next};
use crate::cli::WebhookCommand;
use crate::client::{Client, encode};
use crate::output::{self, Table, fields, opt};

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
