//! `idv access-request …`: just-in-time access for an agent: ask, list,
//! show, approve, deny, withdraw.

use anyhow::bail;
use clap::Subcommand;
use idv_api::{AccessRequestCreate, AccessRequestDecision, AccessRequestView, Page};
use uuid::Uuid;

use super::{list_pages, print_next};
use crate::cli::{Connection, PageArgs};
use crate::client::{Client, encode};
use crate::output::{self, Table, fields, opt};

/// `idv access-request …`.
#[derive(Debug, Subcommand)]
pub enum AccessRequestCommand {
    /// Ask for a role or an action for an agent, for a while, saying why.
    Create {
        /// The agent's id.
        #[arg(long)]
        agent: Uuid,
        /// A role of the tenant …
        #[arg(long)]
        role: Option<String>,
        /// … or a single action.
        #[arg(long)]
        action: Option<String>,
        /// Why the agent needs it.
        #[arg(long)]
        justification: String,
        /// For how long once approved: `30m`, `8h`, `7d` (at most 30 days).
        #[arg(long)]
        duration: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// List requests, newest first.
    List {
        /// `pending`, `approved`, `denied` or `withdrawn`.
        #[arg(long)]
        status: Option<String>,
        /// Only for this agent.
        #[arg(long)]
        agent: Option<Uuid>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one request.
    Get {
        /// Request id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Approve (never your own request): the grant is made and ends on its
    /// own.
    Approve {
        /// Request id.
        id: String,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Deny.
    Deny {
        /// Request id.
        id: String,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Withdraw your own pending request.
    Withdraw {
        /// Request id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

fn what(r: &AccessRequestView) -> String {
    match (&r.role, &r.action) {
        (Some(role), _) => format!("role {role}"),
        (_, Some(action)) => format!("action {action}"),
        _ => String::new(),
    }
}

fn show(r: &AccessRequestView) {
    fields(&[
        ("id", r.id.to_string()),
        ("agent", r.agent_id.to_string()),
        ("asks for", what(r)),
        ("for", format!("{} s", r.duration_secs)),
        ("justification", r.justification.clone()),
        ("requested by", r.requested_by.clone()),
        ("state", r.state.clone()),
        ("created", r.created_at.clone()),
        ("lapses", r.expires_at.clone()),
        ("decided by", opt(&r.decided_by)),
        ("decided", opt(&r.decided_at)),
        ("comment", opt(&r.comment)),
        ("grant", opt(&r.grant_id.map(|g| g.to_string()))),
        ("grant ends", opt(&r.grant_expires_at)),
    ]);
}

/// Runs `idv access-request …`.
pub async fn run(cmd: AccessRequestCommand) -> anyhow::Result<()> {
    let (conn, r): (Connection, AccessRequestView) = match cmd {
        AccessRequestCommand::Create {
            agent,
            role,
            action,
            justification,
            duration,
            conn,
        } => {
            if role.is_some() == action.is_some() {
                bail!("give exactly one of --role and --action");
            }
            let body = AccessRequestCreate {
                agent_id: agent,
                role,
                action,
                justification,
                duration,
            };
            let r = Client::new(&conn)?.post("/v1/access-requests", &body).await?;
            (conn, r)
        }
        AccessRequestCommand::List {
            status,
            agent,
            page,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let q = vec![("status", status), ("agent_id", agent.map(|a| a.to_string()))];
            let items: Page<AccessRequestView> = list_pages(&c, "/v1/access-requests", q, &page).await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["ID", "STATE", "AGENT", "ASKS FOR", "FOR (S)", "REQUESTED BY", "CREATED"]);
            for r in &items.items {
                t.row(vec![
                    r.id.to_string(),
                    r.state.clone(),
                    r.agent_id.to_string(),
                    what(r),
                    r.duration_secs.to_string(),
                    r.requested_by.clone(),
                    r.created_at.clone(),
                ]);
            }
            t.print();
            print_next(&items);
            return Ok(());
        }
        AccessRequestCommand::Get { id, conn } => {
            let r = Client::new(&conn)?
                .get(&format!("/v1/access-requests/{}", encode(&id)))
                .await?;
            (conn, r)
        }
        AccessRequestCommand::Approve { id, comment, conn } => decide(&id, "approve", comment, conn).await?,
        AccessRequestCommand::Deny { id, comment, conn } => decide(&id, "deny", comment, conn).await?,
        AccessRequestCommand::Withdraw { id, conn } => decide(&id, "withdraw", None, conn).await?,
    };
    if conn.json {
        return output::json(&r);
    }
    show(&r);
    Ok(())
}

async fn decide(
    id: &str,
    verb: &str,
    comment: Option<String>,
    conn: Connection,
) -> anyhow::Result<(Connection, AccessRequestView)> {
    let r = Client::new(&conn)?
        .post(
            &format!("/v1/access-requests/{}/{verb}", encode(id)),
            &AccessRequestDecision { comment },
        )
        .await?;
    Ok((conn, r))
}
