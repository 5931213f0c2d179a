//! `idv agent …`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write};
use std::path::Path;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use idv_api::{
    AgentBulkCreate, AgentBulkCreated, AgentCreate, AgentPatch, AgentView, DurationValue, OwnerReassign,
    OwnerReassigned, Page, ParentRef, TransitionRequest,
};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use super::list_pages;
use crate::cli::{Connection, PageArgs};
use crate::client::{Client, encode};
use crate::output::{self, Table, fields, opt};

/// Metadata flags shared by `agent create` and `agent update`.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentFields {
    /// Environment: dev, test or prod.
    #[arg(long)]
    pub environment: Option<String>,
    /// Team that runs it.
    #[arg(long)]
    pub team: Option<String>,
    /// Label `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Declared capability (repeatable).
    #[arg(long = "capability", value_name = "CAPABILITY")]
    pub capabilities: Vec<String>,
    /// Class (template).
    #[arg(long)]
    pub class: Option<String>,
    /// Agent id it depends on (repeatable).
    #[arg(long = "depends-on", value_name = "AGENT_ID")]
    pub depends_on: Vec<String>,
    /// OAuth scope it may request (repeatable).
    #[arg(long = "allow-scope", value_name = "SCOPE")]
    pub allowed_scopes: Vec<String>,
    /// Audience (RFC 8707 resource URI) it may request tokens for (repeatable).
    #[arg(long = "allow-resource", value_name = "URI")]
    pub allowed_resources: Vec<String>,
    /// RFC 9396 `authorization_details` type it may request (repeatable).
    #[arg(long = "allow-details-type", value_name = "TYPE")]
    pub authorization_details_types: Vec<String>,
}

/// `idv agent …`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register an agent.
    Create {
        /// Unique name in the tenant.
        #[arg(long)]
        name: String,
        /// The accountable human or team.
        #[arg(long)]
        owner: String,
        /// Why the agent exists.
        #[arg(long)]
        purpose: String,
        #[command(flatten)]
        fields: AgentFields,
        /// Who created it: `agent:<id>` or `human:<id>`.
        #[arg(long)]
        parent: Option<String>,
        /// For ephemeral agents: retire after this long, e.g. `15m`.
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Register many agents from a JSON array or JSON lines file (`-` for stdin).
    Import {
        /// The file.
        file: PathBuf,
        /// Agents per request; each request is all-or-nothing.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
        batch: u32,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one agent.
    Get {
        /// Agent id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// List agents.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only this environment.
        #[arg(long)]
        environment: Option<String>,
        /// Only this class.
        #[arg(long)]
        class: Option<String>,
        /// Only agents with label `key=value` (repeatable: all must match).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Only names starting with this.
        #[arg(long)]
        name_prefix: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change an agent's metadata.
    Update {
        /// Agent id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New owner.
        #[arg(long)]
        owner: Option<String>,
        /// New purpose.
        #[arg(long)]
        purpose: Option<String>,
        #[command(flatten)]
        fields: AgentFields,
        /// Clear a field: environment, team or class (repeatable).
        #[arg(long, value_name = "FIELD")]
        clear: Vec<ClearField>,
        /// Only if the agent is at this version (default: the version just read).
        #[arg(long)]
        if_match: Option<i64>,
        #[command(flatten)]
        conn: Connection,
    },
    /// provisioning → active.
    Activate(TransitionArgs),
    /// active → suspended.
    Suspend(TransitionArgs),
    /// suspended → active.
    Resume(TransitionArgs),
    /// Retire for good (the record is kept).
    Retire(TransitionArgs),
    /// Move every live agent of one owner to another (a person left or
    /// changed role). Retired agents keep their owner.
    ReassignOwner {
        /// The current owner, exactly as recorded.
        #[arg(long)]
        from: String,
        /// The new owner.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Export the inventory.
    Export {
        /// `csv` or `json`.
        #[arg(long, default_value = "csv")]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Fields `agent update --clear` can clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClearField {
    /// The environment.
    Environment,
    /// The team.
    Team,
    /// The class.
    Class,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values.
    Csv,
    /// A JSON array.
    Json,
}

/// Arguments of a lifecycle transition.
#[derive(Debug, Args)]
pub struct TransitionArgs {
    /// Agent id.
    pub id: String,
    /// Why (recorded on the agent and in the audit log).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub conn: Connection,
}

/// Runs `idv agent …`.
pub async fn run(cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::Create {
            name,
            owner,
            purpose,
            fields: f,
            parent,
            ttl,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = AgentCreate {
                name,
                owner,
                purpose,
                environment: f.environment,
                team: f.team,
                labels: labels(&f.labels)?,
                capabilities: f.capabilities,
                class: f.class,
                parent: parent.as_deref().map(parent_ref).transpose()?,
                depends_on: ids(&f.depends_on)?,
                allowed_scopes: f.allowed_scopes.into_iter().collect(),
                allowed_resources: f.allowed_resources.into_iter().collect(),
                authorization_details_types: f.authorization_details_types.into_iter().collect(),
                ttl: ttl.map(DurationValue::Text),
            };
            let a: AgentView = c.post("/v1/agents", &body).await?;
            if conn.json {
                return output::json(&a);
            }
            println!("Created agent {} ({})", a.name, a.id);
            show(&a);
        }
        AgentCommand::Import { file, batch, conn } => {
            let c = Client::new(&conn)?;
            import(&c, &file, batch as usize, conn.json).await?;
        }
        AgentCommand::Get { id, conn } => {
            let c = Client::new(&conn)?;
            let a: AgentView = c.get(&path(&id)).await?;
            if conn.json {
                return output::json(&a);
            }
            show(&a);
        }
        AgentCommand::List {
            status,
            owner,
            environment,
            class,
            labels: l,
            name_prefix,
            page,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let mut q = vec![
                ("status", status),
                ("owner", owner),
                ("environment", environment),
                ("class", class),
                ("name_prefix", name_prefix),
            ];
            for label in l {
                q.push(("label", Some(label)));
            }
            let items: Page<AgentView> = list_pages(&c, "/v1/agents", q, &page).await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["ID", "NAME", "STATUS", "OWNER", "ENV", "CLASS"]);
            for a in &items.items {
                t.row(vec![
                    a.id.to_string(),
                    a.name.clone(),
                    a.status.clone(),
                    a.owner.clone(),
                    opt(&a.environment),
                    opt(&a.class),
                ]);
            }
            t.print();
            super::print_next(&items);
        }
        AgentCommand::Update {
            id,
            name,
            owner,
            purpose,
            fields: f,
            clear,
            if_match,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let patch = patch(name, owner, purpose, f, &clear)?;
            let version = match if_match {
                Some(v) => format!("\"{v}\""),
                None => {
                    let (_, etag) = c.get_versioned::<AgentView>(&path(&id)).await?;
                    etag.ok_or_else(|| anyhow!("the server sent no ETag for the agent"))?
                }
            };
            let a: AgentView = c.patch(&path(&id), &patch, &version).await?;
            if conn.json {
                return output::json(&a);
            }
            println!("Updated agent {} (version {})", a.name, a.version);
        }
        AgentCommand::Activate(t) => transition(t, "activate").await?,
        AgentCommand::Suspend(t) => transition(t, "suspend").await?,
        AgentCommand::Resume(t) => transition(t, "resume").await?,
        AgentCommand::Retire(t) => transition(t, "retire").await?,
        AgentCommand::ReassignOwner { from, to, conn } => {
            let c = Client::new(&conn)?;
            let r: OwnerReassigned = c.post("/v1/agents/reassign-owner", &OwnerReassign { from, to }).await?;
            if conn.json {
                return output::json(&r);
            }
            println!("Moved {} agent(s) from {} to {}", r.reassigned, r.from, r.to);
        }
        AgentCommand::Export {
            format,
            output: out,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let fmt = match format {
                ExportFormat::Csv => "csv",
                ExportFormat::Json => "json",
            };
            let mut res = c.get_raw(&format!("/v1/agents/export?format={fmt}")).await?;
            // A CLI writing its own output: blocking writes are fine here.
            let mut sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut bytes = 0usize;
            while let Some(chunk) = res.chunk().await.context("the export was cut off")? {
                bytes += chunk.len();
                sink.write_all(&chunk)?;
            }
            sink.flush()?;
            if let Some(p) = out {
                eprintln!("Wrote {bytes} bytes to {}", p.display());
            }
        }
    }
    Ok(())
}

fn path(id: &str) -> String {
    format!("/v1/agents/{}", encode(id))
}

async fn transition(t: TransitionArgs, verb: &str) -> anyhow::Result<()> {
    let c = Client::new(&t.conn)?;
    let a: AgentView = c
        .post(
            &format!("{}/{verb}", path(&t.id)),
            &TransitionRequest { reason: t.reason },
        )
        .await?;
    if t.conn.json {
        return output::json(&a);
    }
    println!("Agent {} ({}) is now {}", a.name, a.id, a.status);
    Ok(())
}

fn labels(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    raw.iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("label `{l}` is not `key=value`"))
        })
        .collect()
}

fn ids(raw: &[String]) -> anyhow::Result<Vec<Uuid>> {
    raw.iter()
        .map(|s| Uuid::parse_str(s).map_err(|_| anyhow!("`{s}` is not an agent id (a UUID)")))
        .collect()
}

fn parent_ref(raw: &str) -> anyhow::Result<ParentRef> {
    match raw.split_once(':') {
        Some((kind @ ("agent" | "human"), id)) if !id.is_empty() => Ok(ParentRef {
            type_: kind.to_owned(),
            id: id.to_owned(),
        }),
        _ => bail!("parent `{raw}` is not `agent:<id>` or `human:<id>`"),
    }
}

fn patch(
    name: Option<String>,
    owner: Option<String>,
    purpose: Option<String>,
    f: AgentFields,
    clear: &[ClearField],
) -> anyhow::Result<AgentPatch> {
    let set_or_clear = |value: Option<String>, field: ClearField| -> anyhow::Result<Option<Option<String>>> {
        match (value, clear.contains(&field)) {
            (Some(_), true) => bail!("cannot both set and clear `{field:?}`"),
            (Some(v), false) => Ok(Some(Some(v))),
            (None, true) => Ok(Some(None)),
            (None, false) => Ok(None),
        }
    };
    let p = AgentPatch {
        name: name.map(Some),
        owner: owner.map(Some),
        purpose: purpose.map(Some),
        environment: set_or_clear(f.environment, ClearField::Environment)?,
        team: set_or_clear(f.team, ClearField::Team)?,
        labels: (!f.labels.is_empty()).then(|| labels(&f.labels)).transpose()?.map(Some),
        capabilities: (!f.capabilities.is_empty()).then_some(Some(f.capabilities)),
        class: set_or_clear(f.class, ClearField::Class)?,
        depends_on: (!f.depends_on.is_empty())
            .then(|| ids(&f.depends_on))
            .transpose()?
            .map(Some),
        allowed_scopes: set(f.allowed_scopes),
        allowed_resources: set(f.allowed_resources),
        authorization_details_types: set(f.authorization_details_types),
    };
    if serde_json::to_value(&p)?.as_object().is_some_and(|o| o.is_empty()) {
        bail!("nothing to change: pass at least one field to update");
    }
    Ok(p)
}

/// A replacement list, if any entries were given.
fn set(v: Vec<String>) -> Option<Option<BTreeSet<String>>> {
    (!v.is_empty()).then(|| Some(v.into_iter().collect()))
}

/// Reads agents from a JSON array or JSON lines.
fn read_agents(file: &Path) -> anyhow::Result<Vec<AgentCreate>> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON array of agents", file.display()));
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", file.display(), i + 1)))
        .collect()
}

async fn import(c: &Client, file: &Path, batch: usize, json: bool) -> anyhow::Result<()> {
    let agents = read_agents(file)?;
    let total = agents.len();
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} agents ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut done = AgentBulkCreated {
        created: 0,
        agents: Vec::with_capacity(total),
    };
    for (n, chunk) in agents.chunks(batch).enumerate() {
        let body = AgentBulkCreate { agents: chunk.to_vec() };
        let res: AgentBulkCreated = c.post("/v1/agents/bulk", &body).await.map_err(|e| {
            bar.abandon();
            anyhow!(
                "{e} (in the batch starting at item {}; {} agents were imported before it, each batch is all-or-nothing)",
                n * batch,
                done.created
            )
        })?;
        done.created += res.created;
        done.agents.extend(res.agents);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if json {
        return output::json(&done);
    }
    println!("Imported {} agents", done.created);
    Ok(())
}

fn show(a: &AgentView) {
    let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let deps: Vec<String> = a.depends_on.iter().map(Uuid::to_string).collect();
    fields(&[
        ("id", a.id.to_string()),
        ("spiffe_id", a.spiffe_id.clone()),
        ("tenant", a.tenant.clone()),
        ("name", a.name.clone()),
        ("status", a.status.clone()),
        ("status_reason", opt(&a.status_reason)),
        (
            "status_changed",
            format!("{} by {}", a.status_changed_at, a.status_changed_by),
        ),
        ("owner", a.owner.clone()),
        ("purpose", a.purpose.clone()),
        ("environment", opt(&a.environment)),
        ("team", opt(&a.team)),
        ("class", opt(&a.class)),
        ("labels", labels.join(", ")),
        ("capabilities", a.capabilities.join(", ")),
        (
            "parent",
            a.parent
                .as_ref()
                .map(|p| format!("{}:{}", p.type_, p.id))
                .unwrap_or_default(),
        ),
        ("depends_on", deps.join(", ")),
        ("expires_at", opt(&a.expires_at)),
        ("created", format!("{} by {}", a.created_at, a.created_by)),
        ("updated_at", a.updated_at.clone()),
        ("version", a.version.to_string()),
    ]);
}
