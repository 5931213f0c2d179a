//! `idv key …`: the tenant's token signing keys.

use clap::Subcommand;
use idv_api::{DurationValue, Page, SigningKeyRotate, SigningKeyRotated, SigningKeyView};

use crate::cli::Connection;
use crate::client::Client;
use crate::output::{self, Table, opt};

fn table(keys: &[SigningKeyView]) {
    let mut t = Table::new(&[
        "KID",
        "ALG",
        "STATE",
        "CREATED",
        "ACTIVATES",
        "RETIRED",
        "PUBLISHED UNTIL",
    ]);
    for k in keys {
        t.row(vec![
            k.kid.clone(),
            k.alg.clone(),
            k.state.clone(),
            k.created_at.clone(),
            k.activates_at.clone(),
            opt(&k.retired_at),
            opt(&k.publish_until),
        ]);
    }
    t.print();
}

/// `idv key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// The tenant's signing keys with their state (next, current, retired, removed).
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Rotate now: publish a next key ahead (default: the server's lead), or
    /// with `--immediate` sign with a new key at once.
    Rotate {
        /// Publish the new key this long before it signs, e.g. `1h`.
        #[arg(long, conflicts_with_all = ["immediate", "revoke_old"])]
        publish_ahead: Option<String>,
        /// The new key signs at once; the old one stays published until its tokens expire.
        #[arg(long)]
        immediate: bool,
        /// Compromise: sign with a new key at once and remove the old one from
        /// the JWKS now (every token it signed stops verifying).
        #[arg(long)]
        revoke_old: bool,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs `idv key …`.
pub async fn run(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::List { conn } => {
            let c = Client::new(&conn)?;
            let keys: Page<SigningKeyView> = c.get("/v1/keys").await?;
            if conn.json {
                return output::json(&keys);
            }
            table(&keys.items);
        }
        KeyCommand::Rotate {
            publish_ahead,
            immediate,
            revoke_old,
            reason,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = SigningKeyRotate {
                publish_ahead: publish_ahead.map(DurationValue::Text),
                immediate,
                revoke_old,
                reason,
            };
            let r: SigningKeyRotated = c.post("/v1/keys/rotate", &body).await?;
            if conn.json {
                return output::json(&r);
            }
            match r.keys.iter().find(|k| k.kid == r.created) {
                Some(k) if k.state == "next" => println!(
                    "Published key {} (signs from {}; the current key signs until then).",
                    k.kid, k.activates_at
                ),
                _ => println!("Key {} signs from now on.", r.created),
            }
            table(&r.keys);
        }
    }
    Ok(())
}
