//! `idv credential …`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use idv_api::{
    CompromiseAnswer, CredentialCreate, CredentialCreated, CredentialRotate, CredentialRotated, CredentialView,
    DurationValue, Page, RotationPolicyPut, RotationPolicyView, TransitionRequest,
};

use crate::cli::Connection;
use crate::client::{Client, encode};
use crate::output::{self, Table, fields, opt};

/// Which agents a rotation policy covers.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RotationScopeArgs {
    /// Every agent of the tenant.
    #[arg(long)]
    pub tenant_wide: bool,
    /// Agents of this class.
    #[arg(long)]
    pub class: Option<String>,
    /// One agent.
    #[arg(long)]
    pub agent: Option<String>,
}

/// `idv rotation-policy …`.
#[derive(Debug, Subcommand)]
pub enum RotationPolicyCommand {
    /// Set (create or replace) a policy; the credentials it covers are rescheduled.
    Set {
        #[command(flatten)]
        scope: RotationScopeArgs,
        /// Rotate each credential this long after it was made, e.g. `30d`.
        #[arg(long)]
        every: Option<String>,
        /// No credential works longer than this, e.g. `90d`.
        #[arg(long)]
        max_age: Option<String>,
        /// Overlap of each rotation (default 1h; `0`: none).
        #[arg(long)]
        overlap: Option<String>,
        /// Revoke the predecessor on the successor's first use.
        #[arg(long)]
        retire_on_first_use: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// The tenant's policies.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a policy (the broader one applies again).
    Delete {
        #[command(flatten)]
        scope: RotationScopeArgs,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Credential kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialType {
    /// A client secret (`client_secret_basic` / `client_secret_post`).
    ClientSecret,
    /// A public JWK for RFC 7523 client assertions.
    PrivateKeyJwt,
    /// A scoped API key.
    ApiKey,
}

/// `idv credential …`.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Issue a credential to an agent; a secret or API key is printed once.
    Create {
        /// Agent id.
        agent: String,
        /// Kind of credential.
        #[arg(long = "type", value_enum)]
        type_: CredentialType,
        /// File holding the public JWK (for `private-key-jwt`).
        #[arg(long)]
        jwk_file: Option<PathBuf>,
        /// API key scope (repeatable; default: every scope the agent is allowed).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Lifetime, e.g. `90d` (default: until revoked).
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List an agent's credentials.
    List {
        /// Agent id.
        agent: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one credential.
    Get {
        /// Credential id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a credential; it stops working at once.
    Revoke {
        /// Credential id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Rotate a credential: the successor works at once, the predecessor
    /// until the end of the overlap (or the successor's first use).
    Rotate {
        /// Credential id.
        id: String,
        /// How long both work, e.g. `1h` (default 1h; `0`: revoke the old one now).
        #[arg(long)]
        overlap: Option<String>,
        /// Revoke the predecessor on the successor's first use instead of at the overlap's end.
        #[arg(long)]
        retire_on_first_use: bool,
        /// Seal the new secret for the agent to collect instead of printing it.
        #[arg(long)]
        pickup: bool,
        /// File holding the successor's public JWK (for `private_key_jwt`).
        #[arg(long)]
        jwk_file: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// A credential's rotation lineage, oldest first.
    History {
        /// Credential id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Rotate every client secret and API key of an agent now (its policy's
    /// overlap); the new secrets are sealed for the agent to collect.
    RotateAgent {
        /// Agent id.
        agent: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// A security event: revoke every credential of an agent at once and
    /// print the successors' secrets.
    Compromised {
        /// Agent id.
        agent: String,
        /// What happened.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs `idv credential …`.
pub async fn run(cmd: CredentialCommand) -> anyhow::Result<()> {
    match cmd {
        CredentialCommand::Create {
            agent,
            type_,
            jwk_file,
            scopes,
            ttl,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let jwk = read_jwk(jwk_file.as_deref())?;
            let body = CredentialCreate {
                type_: match type_ {
                    CredentialType::ClientSecret => "client_secret",
                    CredentialType::PrivateKeyJwt => "private_key_jwt",
                    CredentialType::ApiKey => "api_key",
                }
                .to_owned(),
                jwk,
                scopes: (!scopes.is_empty()).then(|| scopes.into_iter().collect()),
                ttl: ttl.map(DurationValue::Text),
            };
            let created: CredentialCreated = c
                .post(&format!("/v1/agents/{}/credentials", encode(&agent)), &body)
                .await?;
            if conn.json {
                return output::json(&created);
            }
            show_created(&created);
        }
        CredentialCommand::List { agent, conn } => {
            let c = Client::new(&conn)?;
            let items: Page<CredentialView> = c.get(&format!("/v1/agents/{}/credentials", encode(&agent))).await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["ID", "TYPE", "HINT", "STATUS", "EXPIRES", "LAST USED"]);
            for x in &items.items {
                t.row(vec![
                    x.id.to_string(),
                    x.type_.clone(),
                    opt(&x.hint),
                    x.status.clone(),
                    opt(&x.expires_at),
                    opt(&x.last_used_at),
                ]);
            }
            t.print();
        }
        CredentialCommand::Get { id, conn } => {
            let c = Client::new(&conn)?;
            let x: CredentialView = c.get(&format!("/v1/credentials/{}", encode(&id))).await?;
            if conn.json {
                return output::json(&x);
            }
            show(&x);
        }
        CredentialCommand::Revoke { id, conn } => {
            let c = Client::new(&conn)?;
            let x: CredentialView = c.delete(&format!("/v1/credentials/{}", encode(&id))).await?;
            if conn.json {
                return output::json(&x);
            }
            println!("Revoked credential {} of agent {}", x.id, x.agent_id);
        }
        CredentialCommand::Rotate {
            id,
            overlap,
            retire_on_first_use,
            pickup,
            jwk_file,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = CredentialRotate {
                overlap: overlap.map(DurationValue::Text),
                retire: retire_on_first_use.then(|| "first_use".to_owned()),
                jwk: read_jwk(jwk_file.as_deref())?,
                pickup,
            };
            let r: CredentialRotated = c
                .post(&format!("/v1/credentials/{}/rotate", encode(&id)), &body)
                .await?;
            if conn.json {
                return output::json(&r);
            }
            println!(
                "Rotated {} -> {}; the predecessor is {} (until {})",
                r.predecessor.id,
                r.successor.credential.id,
                r.predecessor.status,
                opt(&r.predecessor.expires_at)
            );
            if r.successor.credential.awaiting_pickup {
                println!(
                    "The new secret is sealed for the agent: it collects it with POST /v1/self/credential/successor."
                );
            }
            show_created(&r.successor);
        }
        CredentialCommand::History { id, conn } => {
            let c = Client::new(&conn)?;
            let items: Page<CredentialView> = c.get(&format!("/v1/credentials/{}/history", encode(&id))).await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["ID", "TYPE", "HINT", "STATUS", "CREATED", "REVOKED", "REASON"]);
            for x in &items.items {
                t.row(vec![
                    x.id.to_string(),
                    x.type_.clone(),
                    opt(&x.hint),
                    x.status.clone(),
                    x.created_at.clone(),
                    opt(&x.revoked_at),
                    opt(&x.revoked_reason),
                ]);
            }
            t.print();
        }
        CredentialCommand::RotateAgent { agent, reason, conn } => {
            let c = Client::new(&conn)?;
            let done: Page<CredentialRotated> = c
                .post(
                    &format!("/v1/agents/{}/rotate-credentials", encode(&agent)),
                    &TransitionRequest { reason },
                )
                .await?;
            if conn.json {
                return output::json(&done);
            }
            let mut t = Table::new(&["PREDECESSOR", "SUCCESSOR", "TYPE", "PREDECESSOR UNTIL"]);
            for r in &done.items {
                t.row(vec![
                    r.predecessor.id.to_string(),
                    r.successor.credential.id.to_string(),
                    r.predecessor.type_.clone(),
                    opt(&r.predecessor.expires_at),
                ]);
            }
            t.print();
            println!(
                "The new secrets are sealed for the agent: it collects them with POST /v1/self/credential/successor."
            );
        }
        CredentialCommand::Compromised { agent, reason, conn } => {
            let c = Client::new(&conn)?;
            let a: CompromiseAnswer = c
                .post(
                    &format!("/v1/agents/{}/compromised", encode(&agent)),
                    &TransitionRequest { reason },
                )
                .await?;
            if conn.json {
                return output::json(&a);
            }
            println!("Revoked {} credential(s) of agent {agent}.", a.revoked.len());
            for s in &a.successors {
                println!();
                show_created(s);
            }
        }
    }
    Ok(())
}

fn read_jwk(path: Option<&std::path::Path>) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?,
    ))
}

fn show_created(created: &CredentialCreated) {
    if let Some(s) = &created.client_secret {
        println!("Client secret (shown once, store it now): {s}");
    }
    if let Some(k) = &created.api_key {
        println!("API key (shown once, store it now): {k}");
    }
    println!("client_id: {}", created.client_id);
    show(&created.credential);
}

fn show(x: &CredentialView) {
    let scopes: Vec<&str> = x.scopes.iter().map(String::as_str).collect();
    fields(&[
        ("id", x.id.to_string()),
        ("agent_id", x.agent_id.to_string()),
        ("type", x.type_.clone()),
        ("hint", opt(&x.hint)),
        ("scopes", scopes.join(" ")),
        ("status", x.status.clone()),
        ("created_at", x.created_at.clone()),
        ("created_by", x.created_by.clone()),
        ("expires_at", opt(&x.expires_at)),
        ("revoked_at", opt(&x.revoked_at)),
        ("last_used_at", opt(&x.last_used_at)),
        ("revoked_reason", opt(&x.revoked_reason)),
        (
            "predecessor_id",
            x.predecessor_id.map(|p| p.to_string()).unwrap_or_default(),
        ),
        (
            "successor_id",
            x.successor_id.map(|p| p.to_string()).unwrap_or_default(),
        ),
    ]);
}

fn scope_path(s: &RotationScopeArgs) -> String {
    match (&s.class, &s.agent) {
        (Some(c), _) => format!("/v1/rotation-policies/class/{}", encode(c)),
        (_, Some(a)) => format!("/v1/rotation-policies/agent/{}", encode(a)),
        _ => "/v1/rotation-policies/tenant".to_owned(),
    }
}

fn period(secs: Option<u64>) -> String {
    secs.map_or_else(|| "-".to_owned(), |s| format!("{s}s"))
}

/// Runs `idv rotation-policy …`.
pub async fn rotation_policy(cmd: RotationPolicyCommand) -> anyhow::Result<()> {
    match cmd {
        RotationPolicyCommand::Set {
            scope,
            every,
            max_age,
            overlap,
            retire_on_first_use,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = RotationPolicyPut {
                every: every.map(DurationValue::Text),
                max_age: max_age.map(DurationValue::Text),
                overlap: overlap.map(DurationValue::Text),
                retire: retire_on_first_use.then(|| "first_use".to_owned()),
            };
            let p: RotationPolicyView = c.put(&scope_path(&scope), &body).await?;
            if conn.json {
                return output::json(&p);
            }
            println!(
                "Rotation policy for {}{} set: every {}, max age {}, overlap {}s, retire at {}; {} credential(s) scheduled.",
                p.scope.type_,
                p.scope.id.as_deref().map(|i| format!(" {i}")).unwrap_or_default(),
                period(p.every_secs),
                period(p.max_age_secs),
                p.overlap_secs,
                p.retire,
                p.credentials_scheduled.unwrap_or_default()
            );
        }
        RotationPolicyCommand::List { conn } => {
            let c = Client::new(&conn)?;
            let items: Page<RotationPolicyView> = c.get("/v1/rotation-policies").await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["SCOPE", "ID", "EVERY", "MAX AGE", "OVERLAP", "RETIRE", "UPDATED"]);
            for p in &items.items {
                t.row(vec![
                    p.scope.type_.clone(),
                    opt(&p.scope.id),
                    period(p.every_secs),
                    period(p.max_age_secs),
                    format!("{}s", p.overlap_secs),
                    p.retire.clone(),
                    p.updated_at.clone(),
                ]);
            }
            t.print();
        }
        RotationPolicyCommand::Delete { scope, conn } => {
            let c = Client::new(&conn)?;
            c.delete_empty(&scope_path(&scope)).await?;
            if conn.json {
                return output::json(&serde_json::json!({ "deleted": true }));
            }
            println!("Rotation policy removed.");
        }
    }
    Ok(())
}
