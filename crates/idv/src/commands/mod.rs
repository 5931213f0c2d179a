//! One module per noun of the CLI.

pub(crate) mod access_request;
pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod authz;
pub(crate) mod credential;
pub(crate) mod db;
pub(crate) mod key;
pub(crate) mod sso;
pub(crate) mod tenant;
pub(crate) mod webhook;

use idv_api::Page;
use serde::de::DeserializeOwned;

use crate::cli::{Command, PageArgs};
use crate::client::{Client, with_query};

/// Runs a parsed command.
pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Tenant(c) => tenant::run(c).await,
        Command::AdminToken(c) => tenant::run_token(c).await,
        Command::Agent(c) => agent::run(c).await,
        Command::Credential(c) => credential::run(c).await,
        Command::Audit(c) => audit::run(c).await,
        Command::Policy(c) => authz::policy(c).await,
        Command::Role(c) => authz::role(c).await,
        Command::Grant(c) => authz::grant(c).await,
        Command::Entity(c) => authz::entity(c).await,
        Command::Decide(a) => authz::decide(a).await,
        Command::Approval(c) => authz::approval(c).await,
        Command::RotationPolicy(c) => credential::rotation_policy(c).await,
        Command::Db(c) => db::db(c).await,
        Command::Lease(c) => db::lease(c).await,
        Command::Key(c) => key::run(c).await,
        Command::Webhook(c) => webhook::run(c).await,
        Command::Sso(c) => sso::run(c).await,
        Command::AccessRequest(c) => access_request::run(c).await,
    }
}

/// Largest page the server gives.
const MAX_PAGE: u32 = 10_000;

/// Fetches one page (or, with `--all`, every page) of a list endpoint.
async fn list_pages<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    mut query: Vec<(&str, Option<String>)>,
    page: &PageArgs,
) -> anyhow::Result<Page<T>> {
    let limit = if page.all {
        Some(page.limit.unwrap_or(MAX_PAGE))
    } else {
        page.limit
    };
    query.push(("limit", limit.map(|l| l.to_string())));
    let mut cursor = page.cursor.clone();
    let mut items = Vec::new();
    loop {
        let mut q = query.clone();
        q.push(("cursor", cursor.clone()));
        let p: Page<T> = client.get(&with_query(path, &q)).await?;
        items.extend(p.items);
        match p.next_cursor {
            Some(next) if page.all => cursor = Some(next),
            next => {
                return Ok(Page {
                    items,
                    next_cursor: next,
                });
            }
        }
    }
}

/// Tells people how to get the next page.
fn print_next<T>(page: &Page<T>) {
    if let Some(c) = &page.next_cursor {
        eprintln!("more: --cursor {c} (or --all)");
    }
}
