//! `idv tenant …` and `idv admin-token …`.

use clap::{Subcommand, ValueEnum};
use idv_api::{
    AdminTokenCreate, AdminTokenCreated, AdminTokenView, DurationValue, Page, TenantCreate, TenantView, WhoAmI,
};

use super::list_pages;
use crate::cli::{Connection, PageArgs};
use crate::client::{Client, encode};
use crate::output::{self, Table, fields, opt};

/// `idv tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Slug: lowercase letters, digits and `-`.
        name: String,
        /// Name for people.
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one tenant.
    Get {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// The roles an admin token can have.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Everything in the tenant.
    Admin,
    /// Manage agents and credentials.
    Operator,
    /// Read-only, including the audit log.
    Auditor,
    /// A policy enforcement point: authorization decisions only.
    Pep,
}

/// `idv admin-token …`.
#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create an admin token; its secret is printed once.
    Create {
        /// A name for people, e.g. `ci-pipeline`.
        #[arg(long)]
        name: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Lifetime, e.g. `90d` (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
        /// Make a platform operator token.
        #[arg(long)]
        platform: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the admin tokens of one tenant: the token's own, or the one
    /// `--tenant` names (a platform token may name any), as a Vault namespace
    /// or a Keycloak realm lists only its own.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one admin token.
    Get {
        /// Token id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke an admin token.
    Revoke {
        /// Token id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show the token in use and its tenant.
    Whoami {
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs `idv tenant …`.
pub async fn run(cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Create {
            name,
            display_name,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let t: TenantView = c.post("/v1/tenants", &TenantCreate { name, display_name }).await?;
            if conn.json {
                return output::json(&t);
            }
            println!("Created tenant {}", t.name);
            show_tenant(&t);
        }
        TenantCommand::List { page, conn } => {
            let c = Client::new(&conn)?;
            let items: Page<TenantView> = list_pages(&c, "/v1/tenants", vec![], &page).await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["NAME", "DISPLAY NAME", "ID", "CREATED"]);
            for x in &items.items {
                t.row(vec![
                    x.name.clone(),
                    x.display_name.clone(),
                    x.id.to_string(),
                    x.created_at.clone(),
                ]);
            }
            t.print();
            super::print_next(&items);
        }
        TenantCommand::Get { name, conn } => {
            let c = Client::new(&conn)?;
            let t: TenantView = c.get(&format!("/v1/tenants/{}", encode(&name))).await?;
            if conn.json {
                return output::json(&t);
            }
            show_tenant(&t);
        }
    }
    Ok(())
}

fn show_tenant(t: &TenantView) {
    fields(&[
        ("id", t.id.to_string()),
        ("name", t.name.clone()),
        ("display_name", t.display_name.clone()),
        ("created_at", t.created_at.clone()),
    ]);
}

fn role(r: RoleArg) -> &'static str {
    match r {
        RoleArg::Admin => "admin",
        RoleArg::Operator => "operator",
        RoleArg::Auditor => "auditor",
        RoleArg::Pep => "pep",
    }
}

/// Runs `idv admin-token …`.
pub async fn run_token(cmd: AdminTokenCommand) -> anyhow::Result<()> {
    match cmd {
        AdminTokenCommand::Create {
            name,
            role: r,
            expires_in,
            platform,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = AdminTokenCreate {
                name,
                role: role(r).into(),
                expires_in: expires_in.map(DurationValue::Text),
                platform,
            };
            let created: AdminTokenCreated = c.post("/v1/admin-tokens", &body).await?;
            if conn.json {
                return output::json(&created);
            }
            println!("Token (shown once, store it now): {}", created.token);
            show_token(&created.admin_token);
            if conn.tenant.is_some() {
                // Listings are per tenant: say where to find it again.
                println!(
                    "It belongs to tenant {0}: `idv admin-token list --tenant {0}` lists it.",
                    created.admin_token.tenant
                );
            }
        }
        AdminTokenCommand::List { page, conn } => {
            let c = Client::new(&conn)?;
            let items: Page<AdminTokenView> = list_pages(&c, "/v1/admin-tokens", vec![], &page).await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["ID", "TENANT", "NAME", "ROLE", "HINT", "EXPIRES", "REVOKED"]);
            for x in &items.items {
                let role = if x.platform {
                    format!("{} (platform)", x.role)
                } else {
                    x.role.clone()
                };
                t.row(vec![
                    x.id.to_string(),
                    x.tenant.clone(),
                    x.name.clone(),
                    role,
                    x.hint.clone(),
                    opt(&x.expires_at),
                    opt(&x.revoked_at),
                ]);
            }
            t.print();
            super::print_next(&items);
            // Listings are per tenant (like Vault namespaces and Keycloak
            // realms); say which one, and how to see another, off the table.
            let tenant = items
                .items
                .first()
                .map(|x| x.tenant.clone())
                .or_else(|| conn.tenant.clone())
                .map_or_else(|| "this token's tenant".to_owned(), |t| format!("tenant {t}"));
            eprintln!("note: the admin tokens of {tenant} only; `--tenant NAME` lists another tenant's");
        }
        AdminTokenCommand::Get { id, conn } => {
            let c = Client::new(&conn)?;
            let t: AdminTokenView = c.get(&format!("/v1/admin-tokens/{}", encode(&id))).await?;
            if conn.json {
                return output::json(&t);
            }
            show_token(&t);
        }
        AdminTokenCommand::Revoke { id, conn } => {
            let c = Client::new(&conn)?;
            let t: AdminTokenView = c.delete(&format!("/v1/admin-tokens/{}", encode(&id))).await?;
            if conn.json {
                return output::json(&t);
            }
            println!("Revoked admin token {} ({})", t.id, t.name);
        }
        AdminTokenCommand::Whoami { conn } => {
            let c = Client::new(&conn)?;
            let w: WhoAmI = c.get("/v1/admin-tokens/self").await?;
            if conn.json {
                return output::json(&w);
            }
            show_token(&w.admin_token);
            fields(&[("acting_in", w.tenant.name.clone())]);
        }
    }
    Ok(())
}

fn show_token(t: &AdminTokenView) {
    fields(&[
        ("id", t.id.to_string()),
        ("name", t.name.clone()),
        ("tenant", t.tenant.clone()),
        ("role", t.role.clone()),
        ("platform", t.platform.to_string()),
        ("hint", t.hint.clone()),
        ("created_at", t.created_at.clone()),
        ("created_by", t.created_by.clone()),
        ("expires_at", opt(&t.expires_at)),
        ("revoked_at", opt(&t.revoked_at)),
    ]);
}
