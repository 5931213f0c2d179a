//! `idv sso …`: the tenant's single sign-on provider for the console.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use idv_api::{SsoPut, SsoView};

use crate::cli::Connection;
use crate::client::Client;
use crate::output;

/// `idv sso …`.
#[derive(Debug, Subcommand)]
pub enum SsoCommand {
    /// Set (or replace) the OpenID Connect provider people sign in to the
    /// console with, and which of its groups get which role.
    Set {
        /// The provider's issuer, e.g. `https://bank.okta.com`.
        #[arg(long)]
        issuer: String,
        /// IdentityVault's client id at the provider.
        #[arg(long)]
        client_id: String,
        /// Its client secret (sealed at rest, never shown again).
        #[arg(long, env = "IDV_SSO_CLIENT_SECRET", hide_env_values = true)]
        client_secret: String,
        /// A group and the role it gives, `group=admin|operator|auditor`
        /// (repeatable).
        #[arg(long = "map", value_name = "GROUP=ROLE", required = true)]
        map: Vec<String>,
        /// The ID token claim with the person's groups (default `groups`).
        #[arg(long)]
        groups_claim: Option<String>,
        /// A scope to ask for (repeatable; default `openid email profile`).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show the provider (never the client secret) and the redirect URI to
    /// register at it.
    Get {
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove the provider (break-glass sign-in keeps working).
    Delete {
        #[command(flatten)]
        conn: Connection,
    },
}

fn show(v: &SsoView) {
    println!("Issuer:        {}", v.issuer);
    println!("Client id:     {}", v.client_id);
    println!("Scopes:        {}", v.scopes.join(" "));
    println!("Groups claim:  {}", v.groups_claim);
    println!("Redirect URI:  {}", v.redirect_uri);
    for (g, r) in &v.role_map {
        println!("Group → role:  {g} → {r}");
    }
    println!("Updated:       {} by {}", v.updated_at, v.updated_by);
}

/// Runs `idv sso …`.
pub async fn run(cmd: SsoCommand) -> anyhow::Result<()> {
    match cmd {
        SsoCommand::Set {
            issuer,
            client_id,
            client_secret,
            map,
            groups_claim,
            scopes,
            conn,
        } => {
            let mut role_map = BTreeMap::new();
            for m in map {
                let (g, r) = m
                    .rsplit_once('=')
                    .with_context(|| format!("`--map {m}`: write it as GROUP=ROLE"))?;
                if g.is_empty() {
                    bail!("`--map {m}`: the group is empty");
                }
                role_map.insert(g.to_owned(), r.to_owned());
            }
            let body = SsoPut {
                issuer,
                client_id,
                client_secret,
                scopes: (!scopes.is_empty()).then_some(scopes),
                groups_claim,
                role_map,
            };
            let c = Client::new(&conn)?;
            let v: SsoView = c.put("/v1/sso", &body).await?;
            if conn.json {
                return output::json(&v);
            }
            show(&v);
        }
        SsoCommand::Get { conn } => {
            let c = Client::new(&conn)?;
            let v: SsoView = c.get("/v1/sso").await?;
            if conn.json {
                return output::json(&v);
            }
            show(&v);
        }
        SsoCommand::Delete { conn } => {
            Client::new(&conn)?.delete_empty("/v1/sso").await?;
            eprintln!("Single sign-on removed; break-glass sign-in still works.");
        }
    }
    Ok(())
}
