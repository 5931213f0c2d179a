//! `idv audit …`.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use idv_api::{AuditEventView, Page};
use indicatif::ProgressBar;

use super::list_pages;
use crate::cli::{Connection, PageArgs};
use crate::client::Client;
use crate::output::{self, Table, opt};
use crate::verify::{self, Source};

/// `idv audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events.
    List {
        /// Only this action, e.g. `agent.create`.
        #[arg(long)]
        action: Option<String>,
        /// Only about this target id.
        #[arg(long)]
        target_id: Option<String>,
        /// Only by this admin token id.
        #[arg(long)]
        actor_token_id: Option<String>,
        /// Only this outcome: success, failure or denied.
        #[arg(long)]
        outcome: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Every tenant's events (platform operators).
        #[arg(long)]
        all_tenants: bool,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Walk the hash chain and report the first broken link.
    ///
    /// Online (default) it reads the chain through the API with a platform
    /// token. With `--offline` it reads the database directly, read-only and
    /// with no server needed, found as `idv serve` finds it
    /// (`IDV_DATABASE_URL`, else the data directory: `IDV_DATA_DIR`, else
    /// `./idv-data`); `--data-dir` or `--database-url` name it and imply
    /// `--offline`.
    Verify {
        /// Read the database directly instead of through the API.
        #[arg(long)]
        offline: bool,
        /// Read the SQLite database in this data directory.
        #[arg(long, conflicts_with = "database_url")]
        data_dir: Option<PathBuf>,
        /// Read this database (`sqlite://…` or `postgres://…`).
        #[arg(long, hide_env_values = true)]
        database_url: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs `idv audit …`.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::List {
            action,
            target_id,
            actor_token_id,
            outcome,
            since,
            until,
            all_tenants,
            page,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let q = vec![
                ("action", action),
                ("target_id", target_id),
                ("actor_token_id", actor_token_id),
                ("outcome", outcome),
                ("since", since),
                ("until", until),
                ("all_tenants", all_tenants.then(|| "true".to_owned())),
            ];
            let items: Page<AuditEventView> = list_pages(&c, "/v1/audit/events", q, &page).await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REASON"]);
            for e in &items.items {
                t.row(vec![
                    e.seq.to_string(),
                    e.time.clone(),
                    e.actor.name.clone(),
                    e.action.clone(),
                    e.target_id.clone(),
                    e.outcome.clone(),
                    opt(&e.reason),
                ]);
            }
            t.print();
            super::print_next(&items);
        }
        AuditCommand::Verify {
            offline,
            data_dir,
            database_url,
            conn,
        } => {
            let source = if offline || data_dir.is_some() || database_url.is_some() {
                Source::open(&offline_url(data_dir, database_url)?).await?
            } else {
                Source::Api(Client::new(&conn)?)
            };
            let bar = if conn.json {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0)
            };
            let report = verify::walk(source, &bar).await?;
            if conn.json {
                output::json(&report)?;
            } else if report.ok {
                println!(
                    "Audit chain intact: {} events verified in {:.2} s; head {}",
                    report.verified,
                    report.elapsed_ms as f64 / 1000.0,
                    report.head_hash
                );
            }
            if let Some(b) = report.broken {
                bail!("{b} ({} events before it verified)", report.verified);
            }
        }
    }
    Ok(())
}

/// The database an offline command reads: the one named, else the one `idv
/// serve` would open in this environment (`IDV_DATABASE_URL`, else the
/// SQLite file in `IDV_DATA_DIR`, else in `./idv-data`).
fn offline_url(data_dir: Option<PathBuf>, database_url: Option<String>) -> anyhow::Result<String> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (dir, named) = match (data_dir, database_url) {
        (Some(dir), _) => (dir, true),
        (None, Some(url)) => return Ok(url),
        (None, None) => {
            if let Some(url) = from_env("IDV_DATABASE_URL") {
                return Ok(url);
            }
            match from_env("IDV_DATA_DIR") {
                Some(dir) => (PathBuf::from(dir), false),
                None => (idv_server::Config::default().data_dir, false),
            }
        }
    };
    let file = idv_server::config::sqlite_path(&dir);
    if !file.is_file() {
        let hint = if named {
            ""
        } else {
            " (name it with --data-dir, IDV_DATA_DIR or --database-url, as for `idv serve`)"
        };
        bail!(
            "no IdentityVault database in {} (expected {}){hint}",
            dir.display(),
            file.display()
        );
    }
    Ok(idv_server::config::sqlite_url(&dir))
}
