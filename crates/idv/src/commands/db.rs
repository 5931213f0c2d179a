//! `idv db …` and `idv lease …`: dynamic PostgreSQL credentials.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use idv_api::{
    DbCredsIssued, DbCredsRequest, DbSweepView, DbTargetPut, DbTargetView, DbTemplatePut, DbTemplateView,
    DurationValue, LeaseRenew, LeaseView, Page,
};

use super::{list_pages, print_next};
use crate::cli::{AgentAuth, Connection, PageArgs};
use crate::client::{Client, encode};
use crate::output::{self, Table, fields, opt};

/// `idv db …`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Target databases roles are issued on.
    #[command(subcommand)]
    Target(DbTargetCommand),
    /// Role templates: the grants a credential carries.
    #[command(subcommand)]
    Template(DbTemplateCommand),
    /// As an agent: get a database credential from a template (a new role,
    /// its password printed once, under a lease).
    Creds {
        /// Template name.
        template: String,
        /// Lease time, e.g. `15m` (default: the template's).
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        agent: AgentAuth,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv db target …`.
#[derive(Debug, Subcommand)]
pub enum DbTargetCommand {
    /// Register or replace a target (the server checks it can create roles there).
    Set {
        /// Name in the tenant.
        name: String,
        /// `postgres://admin:password@host:port/db` (read from IDV_DB_TARGET_URL if absent).
        #[arg(long, env = "IDV_DB_TARGET_URL", hide_env_values = true)]
        url: String,
        /// Prefix of the roles made there (default `idv_`).
        #[arg(long)]
        role_prefix: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List targets.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one target.
    Get {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a target no template or live lease uses.
    Delete {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Drop, now, roles of ours on the target that have no live lease.
    Sweep {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv db template …`.
#[derive(Debug, Subcommand)]
pub enum DbTemplateCommand {
    /// Create or replace a template.
    Set {
        /// Name in the tenant.
        name: String,
        /// Target database name.
        #[arg(long)]
        target: String,
        /// A `GRANT … TO {{name}}` statement (repeatable).
        #[arg(long = "grant", value_name = "SQL", required_unless_present = "file")]
        grants: Vec<String>,
        /// A file of statements separated by `;` (instead of `--grant`).
        #[arg(long, conflicts_with = "grants")]
        file: Option<PathBuf>,
        /// Lease time when a request names none, e.g. `1h`.
        #[arg(long)]
        default_ttl: Option<String>,
        /// Longest lease, renewals included, e.g. `24h`.
        #[arg(long)]
        max_ttl: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List templates.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one template.
    Get {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a template no live lease uses.
    Delete {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv lease …`: as an administrator, or as the agent (with agent
/// credentials, on its own leases only).
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// List leases.
    List {
        /// Only this agent's (administrators).
        #[arg(long)]
        agent_id: Option<String>,
        /// `pending`, `active`, `revocation_pending` or `revoked`.
        #[arg(long)]
        state: Option<String>,
        /// Only on this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        agent: AgentAuth,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one lease.
    Get {
        /// Lease id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Extend a lease (never past its maximum).
    Renew {
        /// Lease id.
        id: String,
        /// Extend to this long from now, e.g. `30m` (default: the template's TTL).
        #[arg(long)]
        increment: Option<String>,
        #[command(flatten)]
        agent: AgentAuth,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a lease: its sessions end and its role is dropped.
    Revoke {
        /// Lease id.
        id: String,
        #[command(flatten)]
        agent: AgentAuth,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs `idv db …`.
pub async fn db(cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Target(c) => target(c).await,
        DbCommand::Template(c) => template(c).await,
        DbCommand::Creds {
            template,
            ttl,
            agent,
            conn,
        } => {
            let c = Client::agent(&conn, &agent)?;
            let body = DbCredsRequest {
                ttl: ttl.map(DurationValue::Text),
            };
            let x: DbCredsIssued = c
                .post(&format!("/v1/self/db/creds/{}", encode(&template)), &body)
                .await?;
            if conn.json {
                return output::json(&x);
            }
            fields(&[
                ("username", x.username.clone()),
                ("password", x.password.clone()),
                ("host", x.host.clone()),
                ("port", x.port.to_string()),
                ("database", x.database.clone()),
                ("lease_id", x.lease.id.to_string()),
                ("expires_at", x.lease.expires_at.clone()),
                ("max_expires_at", x.lease.max_expires_at.clone()),
            ]);
            eprintln!("The password is shown only now.");
            Ok(())
        }
    }
}

async fn target(cmd: DbTargetCommand) -> anyhow::Result<()> {
    match cmd {
        DbTargetCommand::Set {
            name,
            url,
            role_prefix,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = DbTargetPut {
                connection_url: url,
                role_prefix,
            };
            let t: DbTargetView = c.put(&format!("/v1/db/targets/{}", encode(&name)), &body).await?;
            if conn.json {
                return output::json(&t);
            }
            show_target(&t);
        }
        DbTargetCommand::List { conn } => {
            let c = Client::new(&conn)?;
            let p: Page<DbTargetView> = c.get("/v1/db/targets").await?;
            if conn.json {
                return output::json(&p);
            }
            let mut t = Table::new(&["NAME", "HOST", "PORT", "DATABASE", "ADMIN", "PREFIX"]);
            for x in &p.items {
                t.row(vec![
                    x.name.clone(),
                    x.host.clone(),
                    x.port.to_string(),
                    x.database.clone(),
                    x.admin_user.clone(),
                    x.role_prefix.clone(),
                ]);
            }
            t.print();
        }
        DbTargetCommand::Get { name, conn } => {
            let c = Client::new(&conn)?;
            let t: DbTargetView = c.get(&format!("/v1/db/targets/{}", encode(&name))).await?;
            if conn.json {
                return output::json(&t);
            }
            show_target(&t);
        }
        DbTargetCommand::Delete { name, conn } => {
            let c = Client::new(&conn)?;
            c.delete_empty(&format!("/v1/db/targets/{}", encode(&name))).await?;
            if conn.json {
                return output::json(&serde_json::json!({ "deleted": name }));
            }
            println!("Deleted target {name}");
        }
        DbTargetCommand::Sweep { name, conn } => {
            let c = Client::new(&conn)?;
            let s: DbSweepView = c
                .post(
                    &format!("/v1/db/targets/{}/sweep", encode(&name)),
                    &serde_json::json!({}),
                )
                .await?;
            if conn.json {
                return output::json(&s);
            }
            println!(
                "{} role(s) of ours on {name}; dropped {} orphan(s){}",
                s.found,
                s.dropped.len(),
                if s.dropped.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.dropped.join(", "))
                }
            );
        }
    }
    Ok(())
}

fn show_target(t: &DbTargetView) {
    fields(&[
        ("name", t.name.clone()),
        ("host", t.host.clone()),
        ("port", t.port.to_string()),
        ("database", t.database.clone()),
        ("admin_user", t.admin_user.clone()),
        ("role_prefix", t.role_prefix.clone()),
        ("updated_at", t.updated_at.clone()),
        ("updated_by", t.updated_by.clone()),
    ]);
}

/// Statements from a file: separated by `;`, blank ones dropped.
fn statements_of(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn template(cmd: DbTemplateCommand) -> anyhow::Result<()> {
    match cmd {
        DbTemplateCommand::Set {
            name,
            target,
            grants,
            file,
            default_ttl,
            max_ttl,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let statements = match file {
                Some(f) => {
                    statements_of(&std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?)
                }
                None => grants,
            };
            let body = DbTemplatePut {
                target,
                statements,
                default_ttl: default_ttl.map(DurationValue::Text),
                max_ttl: max_ttl.map(DurationValue::Text),
            };
            let t: DbTemplateView = c.put(&format!("/v1/db/templates/{}", encode(&name)), &body).await?;
            if conn.json {
                return output::json(&t);
            }
            show_template(&t);
        }
        DbTemplateCommand::List { conn } => {
            let c = Client::new(&conn)?;
            let p: Page<DbTemplateView> = c.get("/v1/db/templates").await?;
            if conn.json {
                return output::json(&p);
            }
            let mut t = Table::new(&["NAME", "TARGET", "DEFAULT TTL", "MAX TTL", "GRANTS"]);
            for x in &p.items {
                t.row(vec![
                    x.name.clone(),
                    x.target.clone(),
                    format!("{}s", x.default_ttl_secs),
                    format!("{}s", x.max_ttl_secs),
                    x.statements.len().to_string(),
                ]);
            }
            t.print();
        }
        DbTemplateCommand::Get { name, conn } => {
            let c = Client::new(&conn)?;
            let t: DbTemplateView = c.get(&format!("/v1/db/templates/{}", encode(&name))).await?;
            if conn.json {
                return output::json(&t);
            }
            show_template(&t);
        }
        DbTemplateCommand::Delete { name, conn } => {
            let c = Client::new(&conn)?;
            c.delete_empty(&format!("/v1/db/templates/{}", encode(&name))).await?;
            if conn.json {
                return output::json(&serde_json::json!({ "deleted": name }));
            }
            println!("Deleted template {name}");
        }
    }
    Ok(())
}

fn show_template(t: &DbTemplateView) {
    fields(&[
        ("name", t.name.clone()),
        ("target", t.target.clone()),
        ("default_ttl_secs", t.default_ttl_secs.to_string()),
        ("max_ttl_secs", t.max_ttl_secs.to_string()),
        ("updated_at", t.updated_at.clone()),
        ("updated_by", t.updated_by.clone()),
    ]);
    for s in &t.statements {
        println!("  {s}");
    }
}

/// An administrator's client, or the agent's own when agent credentials
/// are given; with the path prefix that goes with it.
fn lease_client(conn: &Connection, agent: &AgentAuth) -> anyhow::Result<(Client, &'static str)> {
    if agent.given() {
        Ok((Client::agent(conn, agent)?, "/v1/self/leases"))
    } else {
        Ok((Client::new(conn)?, "/v1/leases"))
    }
}

/// Runs `idv lease …`.
pub async fn lease(cmd: LeaseCommand) -> anyhow::Result<()> {
    match cmd {
        LeaseCommand::List {
            agent_id,
            state,
            target,
            page,
            agent,
            conn,
        } => {
            let (c, base) = lease_client(&conn, &agent)?;
            let mut q = vec![("state", state), ("target", target)];
            if agent.given() {
                anyhow::ensure!(agent_id.is_none(), "--agent-id is for administrators");
            } else {
                q.push(("agent", agent_id));
            }
            let p: Page<LeaseView> = list_pages(&c, base, q, &page).await?;
            if conn.json {
                return output::json(&p);
            }
            let mut t = Table::new(&["ID", "AGENT", "TEMPLATE", "USERNAME", "STATE", "EXPIRES"]);
            for x in &p.items {
                t.row(vec![
                    x.id.to_string(),
                    x.agent_id.to_string(),
                    x.template.clone(),
                    x.username.clone(),
                    x.state.clone(),
                    x.expires_at.clone(),
                ]);
            }
            t.print();
            print_next(&p);
        }
        LeaseCommand::Get { id, conn } => {
            let c = Client::new(&conn)?;
            let l: LeaseView = c.get(&format!("/v1/leases/{}", encode(&id))).await?;
            if conn.json {
                return output::json(&l);
            }
            show_lease(&l);
        }
        LeaseCommand::Renew {
            id,
            increment,
            agent,
            conn,
        } => {
            let (c, base) = lease_client(&conn, &agent)?;
            let body = LeaseRenew {
                increment: increment.map(DurationValue::Text),
            };
            let l: LeaseView = c.post(&format!("{base}/{}/renew", encode(&id)), &body).await?;
            if conn.json {
                return output::json(&l);
            }
            println!(
                "Lease {} now ends at {} (at the latest {})",
                l.id, l.expires_at, l.max_expires_at
            );
        }
        LeaseCommand::Revoke { id, agent, conn } => {
            let (c, base) = lease_client(&conn, &agent)?;
            let l: LeaseView = c
                .post(&format!("{base}/{}/revoke", encode(&id)), &serde_json::json!({}))
                .await?;
            if conn.json {
                return output::json(&l);
            }
            if l.state == "revoked" {
                println!("Revoked lease {}: role {} dropped", l.id, l.username);
            } else {
                println!(
                    "Lease {} is {}: the target could not be reached ({}); the drop is retried until it succeeds",
                    l.id,
                    l.state,
                    opt(&l.last_error)
                );
            }
        }
    }
    Ok(())
}

fn show_lease(l: &LeaseView) {
    fields(&[
        ("id", l.id.to_string()),
        ("agent_id", l.agent_id.to_string()),
        ("template", l.template.clone()),
        ("target", l.target.clone()),
        ("username", l.username.clone()),
        ("state", l.state.clone()),
        ("issued_at", l.issued_at.clone()),
        ("expires_at", l.expires_at.clone()),
        ("max_expires_at", l.max_expires_at.clone()),
        ("ttl_secs", l.ttl_secs.to_string()),
        ("renewable", l.renewable.to_string()),
        ("revoked_at", opt(&l.revoked_at)),
        ("end_reason", opt(&l.end_reason)),
        ("last_error", opt(&l.last_error)),
    ]);
}

#[cfg(test)]
mod tests {
    use super::statements_of;

    #[test]
    fn a_file_of_statements_splits_on_semicolons() {
        let s = statements_of("GRANT SELECT ON a TO {{name}};\n\n  GRANT USAGE ON SCHEMA b TO {{name}} ;\n");
        assert_eq!(
            s,
            vec!["GRANT SELECT ON a TO {{name}}", "GRANT USAGE ON SCHEMA b TO {{name}}"]
        );
    }
}
