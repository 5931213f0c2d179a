//! `idv policy|role|grant|entity|decide|approval …`.

use std::path::Path;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use idv_api::{
    ApprovalDecision, ApprovalView, AzAction, AzEntity, EntitiesPut, EntityView, EvaluationRequest, EvaluationResponse,
    GrantCreate, GrantSubjectRef, GrantView, Page, PolicyTest, PolicyTestReport, PolicyUpload, PolicyValidation,
    PolicyVersionView, PolicyVersions, RolePut, RoleView,
};
use serde_json::{Map, Value};

use super::{list_pages, print_next};
use crate::cli::{Connection, PageArgs};
use crate::client::{Client, ServerProblem, compile_problem, encode};
use crate::output::{self, Table, fields, opt};

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_opt(path: Option<&Path>) -> anyhow::Result<Option<String>> {
    path.map(read).transpose()
}

/// What to call a compile problem's source: the file it came from.
fn source_name<'a>(policies: &'a Path, schema: Option<&'a Path>) -> impl Fn(&str) -> String + 'a {
    move |source| match (source, schema) {
        ("policies", _) => policies.display().to_string(),
        ("schema", Some(s)) => s.display().to_string(),
        (other, _) => other.to_owned(),
    }
}

fn show_version(v: &PolicyVersionView) {
    fields(&[
        ("version", v.version.to_string()),
        ("active", v.active.to_string()),
        ("policies", v.policy_ids.join(" ")),
        ("description", v.description.clone()),
        ("created_at", v.created_at.clone()),
        ("created_by", v.created_by.clone()),
        ("activated_at", opt(&v.activated_at)),
    ]);
}

/// What a newly active version leaves without effect, on standard error.
fn warn(v: &PolicyVersionView) {
    for w in &v.warnings {
        eprintln!("warning: {w}");
    }
}

/// `idv policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Upload a version (validated; errors show line and column).
    Upload {
        /// Cedar policy file.
        file: PathBuf,
        /// Cedar schema fragment with the tenant's resource types and actions.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Why this version exists.
        #[arg(long)]
        description: Option<String>,
        /// Activate it at once.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check a policy file against the schema without storing it.
    Validate {
        /// Cedar policy file.
        file: PathBuf,
        /// Cedar schema fragment.
        #[arg(long)]
        schema: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Make a stored version active.
    Activate {
        /// Version number.
        #[arg(value_name = "VERSION")]
        number: i64,
        #[command(flatten)]
        conn: Connection,
    },
    /// Re-activate the version active before the current one.
    Rollback {
        #[command(flatten)]
        conn: Connection,
    },
    /// List versions (the active one marked).
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one version with its text.
    Get {
        /// Version number.
        #[arg(value_name = "VERSION")]
        number: i64,
        #[command(flatten)]
        conn: Connection,
    },
    /// Run a file of AuthZEN requests (a JSON array) against a candidate and
    /// the active version; show the decisions that would change.
    Test {
        /// JSON file: an array of AuthZEN evaluation requests.
        requests: PathBuf,
        /// A stored version to try (its number).
        #[arg(long, conflicts_with = "file")]
        candidate: Option<i64>,
        /// Or a Cedar policy file not yet uploaded.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Its schema fragment.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Ask every request as this subject (`agent:<id>`, `<type>:<id>`),
        /// in place of any subject in the file, like the defaults of an
        /// AuthZEN batch: one file of requests serves any agent.
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv role …`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or replace a role.
    Put {
        /// Role name.
        name: String,
        /// An action it permits on any resource (repeatable; none: a role
        /// that only policies refer to, e.g. `principal in Role::"payer"`).
        #[arg(long = "action", value_name = "ACTION")]
        actions: Vec<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List roles.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a role no grant holds.
    Delete {
        /// Role name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Who a grant goes to.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GrantSubjectArg {
    /// One agent (by id).
    Agent,
    /// Every agent of a class.
    Class,
    /// Every member of a group.
    Group,
}

/// `idv grant …`.
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Grant a role (or `--action`) to an agent, class or group.
    Create {
        /// `agent`, `class` or `group`.
        #[arg(value_enum)]
        subject_type: GrantSubjectArg,
        /// Agent id, class or group name.
        subject: String,
        /// The role to grant.
        #[arg(long, required_unless_present = "action", conflicts_with = "action")]
        role: Option<String>,
        /// Or a single action.
        #[arg(long)]
        action: Option<String>,
        /// A Cedar condition that must also hold, e.g. `context.amount < 1000`.
        #[arg(long = "when")]
        condition: Option<String>,
        /// Expiry: RFC 3339 or a duration from now (`8h`, `30d`).
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List grants.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a grant.
    Delete {
        /// Grant id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv entity …`.
#[derive(Debug, Subcommand)]
pub enum EntityCommand {
    /// Create or replace entities from a JSON file (an array of Cedar
    /// entities: `uid`, `attrs`, `parents`).
    Put {
        /// JSON file.
        file: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the directory.
    List {
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv decide`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The subject: `agent:<id>`, `token:<access token>` or `<type>:<id>`.
    #[arg(long)]
    pub subject: String,
    /// The action.
    #[arg(long)]
    pub action: String,
    /// The resource: `<type>:<id>` (e.g. `Resource:acct-1`, `agent:<id>`).
    #[arg(long)]
    pub resource: String,
    /// Context as a JSON object, e.g. `{"amount": 500}`.
    #[arg(long)]
    pub context: Option<String>,
    /// Resource properties as a JSON object.
    #[arg(long)]
    pub properties: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `idv approval …`.
#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List approval requests.
    List {
        /// `pending`, `approved`, `rejected` or `used`.
        #[arg(long)]
        status: Option<String>,
        /// Only those assigned to this owner.
        #[arg(long)]
        assignee: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Approve: the same request may then go ahead once.
    Approve {
        /// Approval id.
        id: String,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Reject.
    Reject {
        /// Approval id.
        id: String,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs `idv policy …`.
pub async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Upload {
            file,
            schema,
            description,
            activate,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = PolicyUpload {
                policies: read(&file)?,
                schema: read_opt(schema.as_deref())?,
                description,
                activate,
            };
            let name = source_name(&file, schema.as_deref());
            let v: PolicyVersionView =
                c.post("/v1/policies", &body)
                    .await
                    .map_err(|e| match e.downcast::<ServerProblem>() {
                        Ok(p) => anyhow!(p.naming(&name)),
                        Err(e) => e,
                    })?;
            if conn.json {
                return output::json(&v);
            }
            println!(
                "Stored version {}{}",
                v.version,
                if v.active { " (active)" } else { "" }
            );
            show_version(&v);
            warn(&v);
        }
        PolicyCommand::Validate { file, schema, conn } => {
            let c = Client::new(&conn)?;
            let body = PolicyUpload {
                policies: read(&file)?,
                schema: read_opt(schema.as_deref())?,
                description: None,
                activate: false,
            };
            let v: PolicyValidation = c.post("/v1/policies/validate", &body).await?;
            if conn.json {
                output::json(&v)?;
            } else if v.valid {
                println!(
                    "{}: valid ({} policies: {})",
                    file.display(),
                    v.policy_ids.len(),
                    v.policy_ids.join(" ")
                );
            } else {
                let name = source_name(&file, schema.as_deref());
                for e in &v.errors {
                    eprintln!("{}", compile_problem(e, &name(&e.source)));
                }
            }
            if !v.valid {
                bail!("{} problem(s)", v.errors.len());
            }
        }
        PolicyCommand::Activate { number: version, conn } => {
            let c = Client::new(&conn)?;
            let v: PolicyVersionView = c.post(&format!("/v1/policies/{version}/activate"), &Map::new()).await?;
            if conn.json {
                return output::json(&v);
            }
            println!("Version {} is active", v.version);
            warn(&v);
        }
        PolicyCommand::Rollback { conn } => {
            let c = Client::new(&conn)?;
            let v: PolicyVersionView = c.post("/v1/policies/rollback", &Map::new()).await?;
            if conn.json {
                return output::json(&v);
            }
            println!("Rolled back: version {} is active", v.version);
            warn(&v);
        }
        PolicyCommand::List { conn } => {
            let c = Client::new(&conn)?;
            let list: PolicyVersions = c.get("/v1/policies").await?;
            if conn.json {
                return output::json(&list);
            }
            let mut t = Table::new(&["VERSION", "ACTIVE", "POLICIES", "CREATED", "BY", "DESCRIPTION"]);
            for v in &list.items {
                t.row(vec![
                    v.version.to_string(),
                    if v.active { "*".into() } else { String::new() },
                    v.policy_ids.len().to_string(),
                    v.created_at.clone(),
                    v.created_by.clone(),
                    v.description.clone(),
                ]);
            }
            t.print();
        }
        PolicyCommand::Get { number: version, conn } => {
            let c = Client::new(&conn)?;
            let v: PolicyVersionView = c.get(&format!("/v1/policies/{version}")).await?;
            if conn.json {
                return output::json(&v);
            }
            show_version(&v);
            if let Some(s) = &v.schema {
                println!("\n// schema\n{s}");
            }
            println!("\n// policies\n{}", v.policies.as_deref().unwrap_or(""));
        }
        PolicyCommand::Test {
            requests,
            candidate: version,
            file,
            schema,
            subject,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let not_requests = || format!("{} is not a JSON array of AuthZEN requests", requests.display());
            let mut raw: Vec<Value> = serde_json::from_str(&read(&requests)?).with_context(not_requests)?;
            if let Some(spec) = subject {
                let subject = serde_json::to_value(thing(&spec, "subject")?)?;
                for r in &mut raw {
                    if let Some(o) = r.as_object_mut() {
                        o.insert("subject".to_owned(), subject.clone());
                    }
                }
            }
            let reqs: Vec<EvaluationRequest> = serde_json::from_value(Value::Array(raw)).with_context(not_requests)?;
            if version.is_none() && file.is_none() {
                bail!("give --candidate N (a stored version) or --file policies.cedar");
            }
            let body = PolicyTest {
                version,
                policies: read_opt(file.as_deref())?,
                schema: read_opt(schema.as_deref())?,
                requests: reqs.clone(),
            };
            let report: PolicyTestReport = c.post("/v1/policies/test", &body).await?;
            if conn.json {
                return output::json(&report);
            }
            let mut t = Table::new(&["#", "SUBJECT", "ACTION", "RESOURCE", "ACTIVE", "CANDIDATE", "POLICIES"]);
            for r in report.results.iter().filter(|r| r.changed) {
                let q = reqs.get(r.index);
                t.row(vec![
                    r.index.to_string(),
                    q.map(|q| format!("{}:{}", q.subject.type_, short(&q.subject.id)))
                        .unwrap_or_default(),
                    q.map(|q| q.action.name.clone()).unwrap_or_default(),
                    q.map(|q| format!("{}:{}", q.resource.type_, q.resource.id))
                        .unwrap_or_default(),
                    r.active.clone(),
                    r.candidate.clone(),
                    r.candidate_policies.join(" "),
                ]);
            }
            let active = report
                .active_version
                .map_or_else(|| "none".to_owned(), |v| v.to_string());
            if report.changed == 0 {
                println!(
                    "No decision changes ({} requests; active version {active}).",
                    report.results.len()
                );
            } else {
                t.print();
                println!(
                    "{} of {} decisions would change (active version {active}).",
                    report.changed,
                    report.results.len()
                );
            }
        }
    }
    Ok(())
}

/// Tokens are long; show their start only.
fn short(s: &str) -> String {
    if s.len() > 40 {
        format!("{}…", s.get(..16).unwrap_or(s))
    } else {
        s.to_owned()
    }
}

/// Runs `idv role …`.
pub async fn role(cmd: RoleCommand) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Put {
            name,
            actions,
            description,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = RolePut {
                description,
                actions: actions.into_iter().collect(),
            };
            let r: RoleView = c.put(&format!("/v1/roles/{}", encode(&name)), &body).await?;
            if conn.json {
                return output::json(&r);
            }
            println!(
                "Role {}: {}",
                r.name,
                r.actions.iter().cloned().collect::<Vec<_>>().join(" ")
            );
        }
        RoleCommand::List { conn } => {
            let c = Client::new(&conn)?;
            let roles: Vec<RoleView> = c.get("/v1/roles").await?;
            if conn.json {
                return output::json(&roles);
            }
            let mut t = Table::new(&["NAME", "ACTIONS", "DESCRIPTION"]);
            for r in &roles {
                t.row(vec![
                    r.name.clone(),
                    r.actions.iter().cloned().collect::<Vec<_>>().join(" "),
                    r.description.clone(),
                ]);
            }
            t.print();
        }
        RoleCommand::Delete { name, conn } => {
            let c = Client::new(&conn)?;
            c.delete_empty(&format!("/v1/roles/{}", encode(&name))).await?;
            if conn.json {
                return output::json(&serde_json::json!({ "deleted": name }));
            }
            println!("Deleted role {name}");
        }
    }
    Ok(())
}

/// Runs `idv grant …`.
pub async fn grant(cmd: GrantCommand) -> anyhow::Result<()> {
    match cmd {
        GrantCommand::Create {
            subject_type,
            subject,
            role,
            action,
            condition,
            expires,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let body = GrantCreate {
                subject: GrantSubjectRef {
                    type_: match subject_type {
                        GrantSubjectArg::Agent => "agent",
                        GrantSubjectArg::Class => "class",
                        GrantSubjectArg::Group => "group",
                    }
                    .to_owned(),
                    id: subject,
                },
                role,
                action,
                condition,
                expires,
            };
            let g: GrantView = c.post("/v1/grants", &body).await?;
            if conn.json {
                return output::json(&g);
            }
            println!("Granted {} (grant {})", what(&g), g.id);
        }
        GrantCommand::List { page, conn } => {
            let c = Client::new(&conn)?;
            let grants: Page<GrantView> = list_pages(&c, "/v1/grants", vec![], &page).await?;
            if conn.json {
                return output::json(&grants);
            }
            let mut t = Table::new(&["ID", "SUBJECT", "GRANTS", "CONDITION", "EXPIRES"]);
            for g in &grants.items {
                t.row(vec![
                    g.id.to_string(),
                    format!("{}:{}", g.subject.type_, g.subject.id),
                    what(g),
                    opt(&g.condition),
                    match (&g.expires_at, g.expired) {
                        (Some(t), true) => format!("{t} (expired)"),
                        _ => opt(&g.expires_at),
                    },
                ]);
            }
            t.print();
            print_next(&grants);
        }
        GrantCommand::Delete { id, conn } => {
            let c = Client::new(&conn)?;
            c.delete_empty(&format!("/v1/grants/{}", encode(&id))).await?;
            if conn.json {
                return output::json(&serde_json::json!({ "deleted": id }));
            }
            println!("Deleted grant {id}");
        }
    }
    Ok(())
}

fn what(g: &GrantView) -> String {
    match (&g.role, &g.action) {
        (Some(r), _) => format!("role {r} to {}:{}", g.subject.type_, g.subject.id),
        (None, Some(a)) => format!("action {a} to {}:{}", g.subject.type_, g.subject.id),
        (None, None) => String::new(),
    }
}

/// Runs `idv entity …`.
pub async fn entity(cmd: EntityCommand) -> anyhow::Result<()> {
    match cmd {
        EntityCommand::Put { file, conn } => {
            let c = Client::new(&conn)?;
            let entities: Vec<Value> = serde_json::from_str(&read(&file)?)
                .with_context(|| format!("{} is not a JSON array of entities", file.display()))?;
            let out: Value = c.post("/v1/entities", &EntitiesPut { entities }).await?;
            if conn.json {
                return output::json(&out);
            }
            println!("Stored {} entities", text(&out, "/stored"));
        }
        EntityCommand::List { conn } => {
            let c = Client::new(&conn)?;
            let items: Vec<EntityView> = c.get("/v1/entities").await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["TYPE", "ID", "PARENTS"]);
            for e in &items {
                let parents: Vec<String> = e
                    .parents
                    .iter()
                    .map(|p| format!("{}:{}", text(p, "/type"), text(p, "/id")))
                    .collect();
                t.row(vec![text(&e.uid, "/type"), text(&e.uid, "/id"), parents.join(" ")]);
            }
            t.print();
        }
    }
    Ok(())
}

fn object(text: Option<&str>, what: &str) -> anyhow::Result<Option<Map<String, Value>>> {
    text.map(|t| {
        serde_json::from_str::<Map<String, Value>>(t).with_context(|| format!("--{what} must be a JSON object"))
    })
    .transpose()
}

fn thing(spec: &str, what: &str) -> anyhow::Result<AzEntity> {
    let Some((t, id)) = spec.split_once(':') else {
        bail!("--{what} is `<type>:<id>`, e.g. `agent:0192…` or `Resource:acct-1`");
    };
    Ok(AzEntity {
        type_: t.to_owned(),
        id: id.to_owned(),
        properties: None,
    })
}

/// Runs `idv decide`.
pub async fn decide(a: DecideArgs) -> anyhow::Result<()> {
    let c = Client::new(&a.conn)?;
    let mut resource = thing(&a.resource, "resource")?;
    resource.properties = object(a.properties.as_deref(), "properties")?;
    let body = EvaluationRequest {
        subject: thing(&a.subject, "subject")?,
        action: AzAction {
            name: a.action,
            properties: None,
        },
        resource,
        context: object(a.context.as_deref(), "context")?,
    };
    let d: EvaluationResponse = c.post("/access/v1/evaluation", &body).await?;
    if a.conn.json {
        return output::json(&d);
    }
    let ctx = d.context.unwrap_or(Value::Null);
    let policies: Vec<&str> = ctx
        .pointer("/policies")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let decision = ctx
        .pointer("/decision")
        .and_then(Value::as_str)
        .unwrap_or(if d.decision { "allow" } else { "deny" })
        .to_owned();
    // A denial always says why: a rule outside policy (`context.reason`), a
    // `forbid` that applied, or Cedar's default deny (no `permit` applied).
    let reason = match ctx.pointer("/reason").and_then(Value::as_str) {
        Some(r) => Some(r.to_owned()),
        None if decision != "deny" => None,
        None if policies.is_empty() => Some("no policy permits it (default deny)".to_owned()),
        None => Some("forbidden by the policies below".to_owned()),
    };
    let shown = if policies.is_empty() {
        "(none)".to_owned()
    } else {
        policies.join(" ")
    };
    let mut rows = vec![("decision", decision)];
    if let Some(r) = reason {
        rows.push(("reason", r));
    }
    rows.push(("policies", shown));
    if let Some(id) = ctx.pointer("/approval/id").and_then(Value::as_str) {
        rows.push(("approval", format!("{id} ({})", text(&ctx, "/approval/status"))));
    }
    if let Some(e) = ctx.pointer("/errors").and_then(Value::as_array) {
        rows.push((
            "errors",
            e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "),
        ));
    }
    fields(&rows);
    Ok(())
}

fn show_approval(a: &ApprovalView) {
    fields(&[
        ("id", a.id.to_string()),
        ("status", a.status.clone()),
        ("assignee", a.assignee.clone()),
        (
            "subject",
            format!("{}:{}", text(&a.subject, "/type"), text(&a.subject, "/id")),
        ),
        ("action", a.action.clone()),
        (
            "resource",
            format!("{}:{}", text(&a.resource, "/type"), text(&a.resource, "/id")),
        ),
        ("context", a.context.to_string()),
        ("reasons", a.reasons.join("; ")),
        ("expires_at", a.expires_at.clone()),
        (
            "approvers",
            format!("{} ({} needed)", a.approvers.join(" and "), a.required),
        ),
        ("approved_by", a.approved_by.join(", ")),
        ("decided_by", opt(&a.decided_by)),
        ("comment", opt(&a.comment)),
    ]);
}

/// Runs `idv approval …`.
pub async fn approval(cmd: ApprovalCommand) -> anyhow::Result<()> {
    match cmd {
        ApprovalCommand::List {
            status,
            assignee,
            page,
            conn,
        } => {
            let c = Client::new(&conn)?;
            let q = vec![("status", status), ("assignee", assignee)];
            let items: Page<ApprovalView> = list_pages(&c, "/v1/approvals", q, &page).await?;
            if conn.json {
                return output::json(&items);
            }
            let mut t = Table::new(&["ID", "STATUS", "ASSIGNEE", "ACTION", "RESOURCE", "CREATED", "REASON"]);
            for a in &items.items {
                t.row(vec![
                    a.id.to_string(),
                    a.status.clone(),
                    a.assignee.clone(),
                    a.action.clone(),
                    format!("{}:{}", text(&a.resource, "/type"), text(&a.resource, "/id")),
                    a.created_at.clone(),
                    a.reasons.join("; "),
                ]);
            }
            t.print();
            print_next(&items);
        }
        ApprovalCommand::Approve { id, comment, conn } => decide_approval(&id, comment, &conn, "approve").await?,
        ApprovalCommand::Reject { id, comment, conn } => decide_approval(&id, comment, &conn, "reject").await?,
    }
    Ok(())
}

async fn decide_approval(
    id: &str,
    comment: Option<String>,
    conn: &crate::cli::Connection,
    verb: &str,
) -> anyhow::Result<()> {
    let c = Client::new(conn)?;
    let a: ApprovalView = c
        .post(
            &format!("/v1/approvals/{}/{verb}", encode(id)),
            &ApprovalDecision { comment },
        )
        .await?;
    if conn.json {
        return output::json(&a);
    }
    show_approval(&a);
    Ok(())
}

/// The text at a JSON pointer (numbers and booleans as JSON), or "".
fn text(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}
