//! `idv key …`: the tenant's token signing keys.

use idv_api::{DurationValue, Page, SigningKeyRotate, SigningKeyRotated, SigningKeyView};

use crate::cli::KeyCommand;
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
