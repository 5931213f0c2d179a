//! `idv-bench decisions`: authorization decisions with a large registry and
//! policy set (default: 100,000 agents, 1,000 policies, role grants on 10% of
//! the agents).
//!
//! - in process: `idv_policy::Engine::decide` on one thread and on every
//!   core, against plain `cedar-policy` evaluation of the same requests
//!   (the whole policy set, and the action's slice of it) as the limit;
//! - over HTTP: AuthZEN `POST /access/v1/evaluation` against the in-process
//!   server, every decision audited with group commit.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use cedar_policy::{Authorizer, Context, Entities, Entity, EntityUid, PolicySet, Request, RestrictedExpression};
use clap::Args;
use idv_core::Timestamp;
use idv_core::agent::{Agent, Environment};
use idv_core::directory::EntityRef;
use idv_core::grant::Grants;
use idv_core::lifecycle::Status;
use idv_core::role::{GrantSubject, Permission, Role, RoleGrant};
use idv_policy::{Engine, Inputs, Party, Query, Target, compile};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::latency::{Budget, Latency, drive, drive_each};
use crate::server::Server;
use crate::wire;

/// Options of `idv-bench decisions`.
#[derive(Debug, Args)]
pub struct DecisionsArgs {
    /// Agents in the registry.
    #[arg(long, default_value_t = 100_000)]
    pub agents: usize,
    /// Policies in the active version (besides the generated role policies).
    #[arg(long, default_value_t = 1_000)]
    pub policies: usize,
    /// One agent in this many holds a role grant.
    #[arg(long, default_value_t = 10)]
    pub grant_every: usize,
    /// Agents activated over HTTP and used as subjects there.
    #[arg(long, default_value_t = 2_000)]
    pub subjects: usize,
    /// In-process decisions per measurement.
    #[arg(long, default_value_t = 400_000)]
    pub in_process: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// HTTP phase: at most this many seconds…
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// …or this many requests.
    #[arg(long, default_value_t = 2_000_000)]
    pub requests: usize,
    /// Evaluations per request in the batched phase (`POST
    /// /access/v1/evaluations`; 0 skips it).
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Skip the HTTP phase.
    #[arg(long)]
    pub no_http: bool,
}

/// What `idv-bench decisions` measured.
#[derive(Debug, Serialize)]
pub struct DecisionsReport {
    /// The workload.
    pub workload: Workload,
    /// In-process results.
    pub in_process: InProcess,
    /// Over HTTP, if it ran.
    pub http: Option<Http>,
}

/// The workload's shape.
#[derive(Debug, Serialize)]
pub struct Workload {
    /// Agents.
    pub agents: usize,
    /// Policies in the version.
    pub policies: usize,
    /// Roles.
    pub roles: usize,
    /// Role grants to agents.
    pub grants: usize,
    /// Actions declared by the tenant schema.
    pub actions: usize,
    /// Fraction of the sampled requests that were allowed.
    pub allowed_share: f64,
}

/// In-process decision rates.
#[derive(Debug, Serialize)]
pub struct InProcess {
    /// Seconds to build the engine (compile + grants + slices).
    pub build_secs: f64,
    /// `Engine::decide`, one thread.
    pub engine_1_thread_per_sec: f64,
    /// `Engine::decide`, one thread per core.
    pub engine_all_cores_per_sec: f64,
    /// Threads used for the all-cores figure.
    pub threads: usize,
    /// Plain cedar-policy on the whole policy set, one thread.
    pub cedar_full_set_per_sec: f64,
    /// Plain cedar-policy on the action's slice of the set, one thread.
    pub cedar_sliced_per_sec: f64,
    /// Engine (1 thread) / cedar on the slice: the cost of our mapping
    /// (entities from the registry, context, approvals, chains).
    pub ratio_to_cedar_sliced: f64,
    /// Engine (1 thread) / cedar on the whole set.
    pub ratio_to_cedar_full: f64,
}

/// HTTP results.
#[derive(Debug, Serialize)]
pub struct Http {
    /// Seconds to load the registry, policies, roles and grants.
    pub setup_secs: f64,
    /// AuthZEN single evaluations.
    pub evaluation: Latency,
    /// Audit events written during the phase (every decision is one).
    pub audit_events: i64,
    /// Writer batches (group commits) during the phase.
    pub batches: u64,
    /// Mean wall time of one group commit, first statement to durable, µs.
    pub batch_us: f64,
    /// Of that, the commit itself (WAL write and fsync on SQLite), µs.
    pub commit_us: f64,
    /// Share of the phase the writer was running a batch (1.0: never idle).
    pub writer_busy: f64,
    /// Where the CPU went during the single-evaluation phase (load generator
    /// included: it runs in this process), and the hypervisor's steal.
    pub evaluation_cpu: crate::cpu::PhaseCpu,
    /// AuthZEN batches (`/access/v1/evaluations`), if that phase ran.
    pub batched: Option<Batched>,
    /// The floor: `GET /healthz` (no work, no audit) with the same client
    /// and connections, for what HTTP alone costs on this machine.
    pub floor: Latency,
}

/// The batched phase: a PEP asking several questions for one subject in one
/// request (e.g. which of a page of records it may show).
#[derive(Debug, Serialize)]
pub struct Batched {
    /// Evaluations per request.
    pub per_request: usize,
    /// Requests (latency is per request).
    pub latency: Latency,
    /// Decisions per second (requests × evaluations).
    pub decisions_per_sec: f64,
    /// Audit events written during the phase (every decision is one).
    pub audit_events: i64,
}

const SERVICES: usize = 50;
const ROLES: usize = 50;
/// Owners and classes as `load::write_agent` makes them.
const CLASSES: usize = 50;

/// The tenant schema fragment: 100 actions, half under `read`, half under `write`.
fn schema() -> String {
    let mut s = String::new();
    for k in 0..SERVICES {
        for (op, group) in [("get", "read"), ("put", "write")] {
            s.push_str(&format!(
                "action \"svc{k}:{op}\" in [Action::\"{group}\"] appliesTo {{ principal: [Agent, Human, Group], resource: [Resource], context: Request }};\n"
            ));
        }
    }
    s
}

/// `n` policies of four shapes.
fn policies(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let k = i % SERVICES;
        let op = if (i / SERVICES).is_multiple_of(2) { "get" } else { "put" };
        let text = match i % 10 {
            0 => format!(
                "forbid(principal is Agent, action == Action::\"svc{k}:put\", resource) when {{ context has amount && context.amount > {} }};",
                10_000 + i
            ),
            1 => format!(
                "permit(principal is Agent, action == Action::\"svc{k}:get\", resource) when {{ principal.labels.contains(\"shard={}\") }};",
                i % 100
            ),
            2 => format!(
                "permit(principal in Class::\"class-{}\", action in [Action::\"svc{k}:get\", Action::\"svc{k}:put\"], resource) when {{ context.hour >= 0 && context.hour < 24 }};",
                i % CLASSES
            ),
            _ => format!(
                "permit(principal is Agent in Role::\"role{}\", action == Action::\"svc{k}:{op}\", resource) when {{ resource has owner && resource.owner == principal.owner }};",
                i % ROLES
            ),
        };
        s.push_str(&format!("@id(\"p{i}\")\n{text}\n"));
    }
    s
}

fn roles() -> Vec<Role> {
    (0..ROLES)
        .map(|r| Role {
            tenant_id: Uuid::nil(),
            name: format!("role{r}"),
            description: String::new(),
            actions: BTreeSet::from([format!("svc{r}:get"), format!("svc{}:get", (r + 1) % SERVICES)]),
            updated_at: Timestamp::from_micros(0),
        })
        .collect()
}

fn synthetic_agent(i: usize) -> Agent {
    let t = Timestamp::from_micros(0);
    Agent {
        id: Uuid::from_u128(i as u128 + 1),
        tenant_id: Uuid::nil(),
        name: format!("agent-{i:08}"),
        owner: crate::load::owner(i),
        purpose: String::new(),
        environment: Some(Environment::Prod),
        team: Some("payments".into()),
        labels: BTreeMap::from([("shard".to_owned(), (i % 100).to_string())]),
        capabilities: vec!["ledger:read".into()],
        class: Some(format!("class-{}", i % CLASSES)),
        parent: None,
        depends_on: vec![],
        grants: Grants::default(),
        status: Status::Active,
        status_reason: None,
        status_changed_at: t,
        status_changed_by: String::new(),
        expires_at: None,
        created_at: t,
        created_by: String::new(),
        updated_at: t,
        version: 1,
        tokens_not_before: None,
    }
}

/// Request `i` of the mix: which agent, action, resource owner and amount.
fn request(i: usize, agents: usize) -> (usize, String, String, i64) {
    // A cheap scramble so consecutive requests hit different agents.
    let x = i.wrapping_mul(2_654_435_761) % agents.max(1);
    let k = i % SERVICES;
    let op = if i.is_multiple_of(3) { "put" } else { "get" };
    let owner = if i.is_multiple_of(2) {
        crate::load::owner(x)
    } else {
        "someone-else".to_owned()
    };
    (x, format!("svc{k}:{op}"), owner, (i % 20_000) as i64)
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

/// Runs the benchmark.
pub async fn run(args: &DecisionsArgs, server: Option<&Arc<Server>>) -> anyhow::Result<DecisionsReport> {
    let schema = schema();
    let text = policies(args.policies);
    let roles = roles();
    crate::say(&format!(
        "building the engine: {} agents, {} policies, grants on 1 in {}",
        args.agents, args.policies, args.grant_every
    ));
    let agents: Vec<Agent> = (0..args.agents).map(synthetic_agent).collect();
    let grants: Vec<RoleGrant> = agents
        .iter()
        .enumerate()
        .filter(|(i, _)| i.is_multiple_of(args.grant_every.max(1)))
        .map(|(i, a)| RoleGrant {
            id: Uuid::from_u128(10_000_000 + i as u128),
            tenant_id: Uuid::nil(),
            subject: GrantSubject::Agent(a.id),
            permission: Permission::Role(format!("role{}", i % ROLES)),
            condition: None,
            expires_at: None,
            created_at: Timestamp::from_micros(0),
            created_by: String::new(),
        })
        .collect();
    let t = Instant::now();
    let compiled = compile(&text, Some(&schema))
        .map_err(|p| anyhow!("the workload does not compile ({} problems): {:?}", p.len(), p.first()))?;
    let engine = Arc::new(Engine::build(Inputs {
        compiled: Arc::new(compiled),
        version: 1,
        roles: &roles,
        grants: &grants,
        directory: &[],
        now: Timestamp::from_micros(0),
    }));
    let build_secs = t.elapsed().as_secs_f64();
    if !engine.warnings().is_empty() {
        bail!("engine warnings: {:?}", engine.warnings());
    }
    let now = Timestamp::from_micros(1_764_547_200_000_000);
    let n = args.in_process;
    let decide = |engine: &Engine, agents: &[Agent], i: usize| -> anyhow::Result<bool> {
        let (x, action, owner, amount) = request(i, agents.len());
        let res = EntityRef {
            type_name: "Resource".into(),
            id: format!("r{}", i % 1000),
        };
        let mut props = Map::new();
        props.insert("owner".into(), Value::String(owner));
        let mut ctx = Map::new();
        ctx.insert("amount".into(), json!(amount));
        let agent = agents.get(x).ok_or_else(|| anyhow!("no agent {x}"))?;
        let d = engine.decide(&Query {
            actor: Party::Agent(agent),
            delegators: vec![],
            action: &action,
            action_properties: None,
            subject_properties: None,
            resource: Target::Entity {
                uid: &res,
                properties: Some(&props),
            },
            context: &ctx,
            now,
            source_ip: None,
            token: None,
        })?;
        Ok(d.allowed())
    };
    crate::say("in process: Engine::decide, one thread");
    let t = Instant::now();
    let mut allowed = 0usize;
    for i in 0..n {
        allowed += usize::from(decide(&engine, &agents, i)?);
    }
    let one = rate(n, t.elapsed());
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    crate::say(&format!("in process: Engine::decide, {threads} threads"));
    let t = Instant::now();
    std::thread::scope(|sc| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (engine, agents) = (&engine, &agents);
                sc.spawn(move || -> anyhow::Result<()> {
                    for i in (k..n).step_by(threads) {
                        decide(engine, agents, i)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow!("a benchmark thread panicked"))??;
        }
        Ok(())
    })?;
    let all = rate(n, t.elapsed());
    crate::say("in process: plain cedar-policy on the same requests");
    let (full, sliced) = cedar_baseline(&text, &schema, &roles, &grants, &agents, n.min(50_000))?;
    let in_process = InProcess {
        build_secs,
        engine_1_thread_per_sec: one,
        engine_all_cores_per_sec: all,
        threads,
        cedar_full_set_per_sec: full,
        cedar_sliced_per_sec: sliced,
        ratio_to_cedar_sliced: one / sliced.max(1e-9),
        ratio_to_cedar_full: one / full.max(1e-9),
    };
    let workload = Workload {
        agents: args.agents,
        policies: args.policies,
        roles: roles.len(),
        grants: grants.len(),
        actions: SERVICES * 2,
        allowed_share: allowed as f64 / n.max(1) as f64,
    };
    let http = match server {
        Some(s) if !args.no_http => Some(http(args, s, &schema, &text).await?),
        _ => None,
    };
    Ok(DecisionsReport {
        workload,
        in_process,
        http,
    })
}

fn uid(t: &str, id: &str) -> anyhow::Result<EntityUid> {
    Ok(EntityUid::from_type_name_and_id(
        cedar_policy::EntityTypeName::from_str(t)?,
        cedar_policy::EntityId::new(id),
    ))
}

/// Plain cedar-policy: the same policies (and role policies), entities built
/// ahead of time, each request evaluated with `Authorizer::is_authorized`
/// against the whole set and against the action's slice. Returns
/// decisions per second for both.
fn cedar_baseline(
    text: &str,
    schema: &str,
    roles: &[Role],
    grants: &[RoleGrant],
    agents: &[Agent],
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut all = text.to_owned();
    for r in roles {
        let actions: Vec<String> = r.actions.iter().map(|a| format!("Action::\"{a}\"")).collect();
        all.push_str(&format!(
            "permit(principal in Role::\"{}\", action in [{}], resource);\n",
            r.name,
            actions.join(", ")
        ));
    }
    let set = PolicySet::from_str(&all)?;
    let schema = cedar_policy::Schema::from_cedarschema_str(&format!("{}\n{schema}", idv_policy::BASE_SCHEMA))
        .map_err(|e| anyhow!("{e}"))?
        .0;
    let actions = schema.action_entities()?;
    let role_of: HashMap<Uuid, String> = grants
        .iter()
        .filter_map(|g| match (&g.subject, &g.permission) {
            (GrantSubject::Agent(a), Permission::Role(r)) => Some((*a, r.clone())),
            _ => None,
        })
        .collect();
    // Slices by action, as the engine makes them.
    let mut slices: HashMap<EntityUid, PolicySet> = HashMap::new();
    for a in schema.actions() {
        let mut up: HashSet<EntityUid> = actions.ancestors(a).map(|i| i.cloned().collect()).unwrap_or_default();
        up.insert(a.clone());
        let mut s = PolicySet::new();
        for p in set.policies() {
            let applies = match p.action_constraint() {
                cedar_policy::ActionConstraint::Any => true,
                cedar_policy::ActionConstraint::Eq(x) => up.contains(&x),
                cedar_policy::ActionConstraint::In(xs) => xs.iter().any(|x| up.contains(x)),
            };
            if applies {
                s.add(p.clone())?;
            }
        }
        slices.insert(a.clone(), s);
    }
    let mut prepared = Vec::with_capacity(n);
    for i in 0..n {
        let (x, action, owner, amount) = request(i, agents.len());
        let a = agents.get(x).ok_or_else(|| anyhow!("no agent {x}"))?;
        let mut parents = HashSet::new();
        if let Some(c) = &a.class {
            parents.insert(uid("Class", c)?);
        }
        if let Some(r) = role_of.get(&a.id) {
            parents.insert(uid("Role", r)?);
        }
        let principal = Entity::new(
            uid("Agent", &a.id.to_string())?,
            HashMap::from([
                ("name".to_owned(), RestrictedExpression::new_string(a.name.clone())),
                ("status".to_owned(), RestrictedExpression::new_string("active".into())),
                ("owner".to_owned(), RestrictedExpression::new_string(a.owner.clone())),
                (
                    "labels".to_owned(),
                    RestrictedExpression::new_set(
                        a.labels
                            .iter()
                            .map(|(k, v)| RestrictedExpression::new_string(format!("{k}={v}"))),
                    ),
                ),
                ("capabilities".to_owned(), RestrictedExpression::new_set([])),
            ]),
            parents,
        )?;
        let resource = Entity::new(
            uid("Resource", &format!("r{}", i % 1000))?,
            HashMap::from([("owner".to_owned(), RestrictedExpression::new_string(owner))]),
            HashSet::new(),
        )?;
        let action_uid = uid("Action", &action)?;
        let mut ents = vec![principal.clone(), resource.clone()];
        if let Some(e) = actions.get(&action_uid) {
            ents.push(e.clone());
        }
        let entities = Entities::from_entities(ents, None)?;
        let context = Context::from_pairs([
            ("amount".to_owned(), RestrictedExpression::new_long(amount)),
            ("hour".to_owned(), RestrictedExpression::new_long(12)),
            ("now".to_owned(), RestrictedExpression::new_long(1_764_547_200)),
        ])?;
        let req = Request::new(principal.uid(), action_uid.clone(), resource.uid(), context, None)?;
        prepared.push((req, entities, action_uid));
    }
    let auth = Authorizer::new();
    // The whole set is slow: a sample of the requests is enough.
    let sample = n.min(2_000);
    let t = Instant::now();
    for (req, ents, _) in prepared.iter().take(sample) {
        std::hint::black_box(auth.is_authorized(req, &set, ents));
    }
    let full = rate(sample, t.elapsed());
    let t = Instant::now();
    for (req, ents, a) in &prepared {
        let s = slices.get(a).ok_or_else(|| anyhow!("no slice"))?;
        std::hint::black_box(auth.is_authorized(req, s, ents));
    }
    let sliced = rate(n, t.elapsed());
    Ok((full, sliced))
}

async fn admin(server: &Server, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<Value> {
    let res = server
        .http()
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(server.token())
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let bytes = res.bytes().await?;
    if !status.is_success() {
        bail!("{path}: {status} {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The writer's counters so far, from the server's `/metrics`.
#[derive(Clone, Copy, Debug)]
struct WriterCounters {
    batches: f64,
    busy_secs: f64,
    commit_secs: f64,
}

async fn writer_counters(server: &Server) -> anyhow::Result<WriterCounters> {
    let text = String::from_utf8(server.get("/metrics").await?)?;
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| anyhow!("no {name} in /metrics"))
    };
    Ok(WriterCounters {
        batches: get("idv_audit_batches_total")?,
        busy_secs: get("idv_audit_batch_seconds_total")?,
        commit_secs: get("idv_audit_commit_seconds_total")?,
    })
}

async fn head_seq(server: &Server) -> anyhow::Result<i64> {
    let v: Value = serde_json::from_slice(&server.get("/v1/audit/head").await?)?;
    v.get("seq")
        .and_then(Value::as_i64)
        .ok_or_else(|| anyhow!("no seq in {v}"))
}

/// Every decision answered must have moved the audit head: the phase's
/// figures only count if each one was audited (other writers may add more).
fn audited(decisions: usize, events: i64) -> anyhow::Result<()> {
    if events < i64::try_from(decisions).unwrap_or(i64::MAX) {
        bail!("{decisions} decisions answered but only {events} audit events written");
    }
    Ok(())
}

async fn http(args: &DecisionsArgs, server: &Arc<Server>, schema: &str, text: &str) -> anyhow::Result<Http> {
    let t = Instant::now();
    crate::say(&format!("loading {} agents over HTTP", args.agents));
    let (_, ids) = crate::load::bulk(server, args.agents, 10_000, 4, crate::bar(args.agents, "agents")).await?;
    let ids = Arc::new(ids);
    crate::say("uploading the policy version and roles");
    admin(
        server,
        reqwest::Method::POST,
        "/v1/policies",
        json!({"policies": text, "schema": schema, "activate": true, "description": "benchmark"}),
    )
    .await?;
    for r in roles() {
        admin(
            server,
            reqwest::Method::PUT,
            &format!("/v1/roles/{}", r.name),
            json!({"actions": r.actions}),
        )
        .await?;
    }
    let every = args.grant_every.max(1);
    let grants = args.agents.div_ceil(every);
    crate::say(&format!("granting roles to {grants} agents"));
    let ids2 = ids.clone();
    let s2 = server.clone();
    drive(
        Budget {
            requests: grants,
            time: None,
        },
        16,
        crate::bar(grants, "grants"),
        move |g| {
            let (s, ids) = (s2.clone(), ids2.clone());
            async move {
                let i = g * every;
                let id = ids.get(i).ok_or_else(|| anyhow!("no agent {i}"))?;
                admin(
                    &s,
                    reqwest::Method::POST,
                    "/v1/grants",
                    json!({"subject": {"type": "agent", "id": id}, "role": format!("role{}", i % ROLES)}),
                )
                .await
                .map(drop)
            }
        },
    )
    .await?;
    let subjects = args.subjects.min(args.agents);
    crate::say(&format!("activating {subjects} subject agents"));
    let s2 = server.clone();
    let ids2 = ids.clone();
    let stride = (args.agents / subjects.max(1)).max(1);
    drive(
        Budget {
            requests: subjects,
            time: None,
        },
        16,
        crate::bar(subjects, "activate"),
        move |k| {
            let (s, ids) = (s2.clone(), ids2.clone());
            async move {
                let id = ids.get(k * stride).ok_or_else(|| anyhow!("no agent"))?;
                admin(
                    &s,
                    reqwest::Method::POST,
                    &format!("/v1/agents/{id}/activate"),
                    json!({"reason": "benchmark"}),
                )
                .await
                .map(drop)
            }
        },
    )
    .await?;
    let setup_secs = t.elapsed().as_secs_f64();
    // A PEP token, as a real enforcement point would hold.
    let pep = admin(
        server,
        reqwest::Method::POST,
        "/v1/admin-tokens",
        json!({"name": "bench-pep", "role": "pep"}),
    )
    .await?;
    let pep = Arc::new(
        pep.get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("no token"))?
            .to_owned(),
    );
    let (batch_ids, batch_pep) = (ids.clone(), pep.clone());
    let before = head_seq(server).await?;
    let writer_before = writer_counters(server).await?;
    crate::say(&format!("AuthZEN evaluations, {} clients", args.clients));
    // The lean client (one connection per client, no pool): the load
    // generator shares these cores with the server.
    let base = server.base.clone();
    let cpu = crate::cpu::snapshot();
    let evaluation = drive_each(
        Budget {
            requests: args.requests,
            time: Some(Duration::from_secs(args.secs)),
        },
        args.clients,
        crate::bar(args.requests, "decisions"),
        || wire::Conn::open(&base),
        move |mut conn, i| {
            let (ids, pep) = (ids.clone(), pep.clone());
            async move {
                let (x, action, owner, amount) = request(i, subjects);
                let id = ids.get(x * stride).ok_or_else(|| anyhow!("no agent"))?;
                let body = json!({
                    "subject": {"type": "agent", "id": id},
                    "action": {"name": action},
                    "resource": {"type": "Resource", "id": format!("r{}", i % 1000), "properties": {"owner": owner}},
                    "context": {"amount": amount},
                });
                let body = serde_json::to_vec(&body)?;
                let (status, answer) = conn
                    .send("POST", "/access/v1/evaluation", Some(pep.as_str()), Some(&body))
                    .await?;
                if status != 200 || !answer.starts_with(b"{\"decision\":") {
                    bail!("evaluation: {status} {}", String::from_utf8_lossy(&answer));
                }
                Ok(conn)
            }
        },
    )
    .await?;
    let evaluation_cpu = cpu.until_now("AuthZEN evaluations");
    let audit_events = head_seq(server).await? - before;
    audited(evaluation.requests, audit_events)?;
    let writer_after = writer_counters(server).await?;
    let batches = writer_after.batches - writer_before.batches;
    let per_batch = |secs: f64| secs * 1e6 / batches.max(1.0);
    let busy_secs = writer_after.busy_secs - writer_before.busy_secs;
    let commit_us = per_batch(writer_after.commit_secs - writer_before.commit_secs);
    let writer_busy = busy_secs / (evaluation.requests as f64 / evaluation.per_sec.max(1e-9)).max(1e-9);
    let batched = if args.batch == 0 {
        None
    } else {
        Some(batched(args, server, batch_ids, batch_pep, stride, subjects).await?)
    };
    crate::say(&format!("HTTP floor: GET /healthz, {} clients", args.clients));
    let base = server.base.clone();
    let floor = drive_each(
        Budget {
            requests: args.requests,
            time: Some(Duration::from_secs(args.secs.min(5))),
        },
        args.clients,
        crate::bar(args.requests, "healthz"),
        || wire::Conn::open(&base),
        |mut conn, _| async move {
            let (status, _) = conn.send("GET", "/healthz", None, None).await?;
            if status != 200 {
                bail!("healthz: {status}");
            }
            Ok(conn)
        },
    )
    .await?;
    Ok(Http {
        setup_secs,
        evaluation,
        audit_events,
        batches: batches as u64, // read back from a counter: integral
        batch_us: per_batch(busy_secs),
        commit_us,
        writer_busy,
        evaluation_cpu,
        batched,
        floor,
    })
}

/// `POST /access/v1/evaluations`: `args.batch` evaluations per request, one
/// subject (the request's default) and varied actions, resources and amounts.
async fn batched(
    args: &DecisionsArgs,
    server: &Arc<Server>,
    ids: Arc<Vec<Uuid>>,
    pep: Arc<String>,
    stride: usize,
    subjects: usize,
) -> anyhow::Result<Batched> {
    let n = args.batch;
    let before = head_seq(server).await?;
    crate::say(&format!("AuthZEN batches of {n}, {} clients", args.clients));
    let base = server.base.clone();
    let latency = drive_each(
        Budget {
            requests: args.requests / n,
            time: Some(Duration::from_secs(args.secs)),
        },
        args.clients,
        crate::bar(args.requests / n, "batches"),
        || wire::Conn::open(&base),
        move |mut conn, i| {
            let (ids, pep) = (ids.clone(), pep.clone());
            async move {
                let (x, _, owner, _) = request(i, subjects);
                let id = ids.get(x * stride).ok_or_else(|| anyhow!("no agent"))?;
                let items: Vec<Value> = (0..n)
                    .map(|j| {
                        let (_, action, _, amount) = request(i * n + j, subjects);
                        json!({
                            "action": {"name": action},
                            "resource": {"type": "Resource", "id": format!("r{}", (i * n + j) % 1000), "properties": {"owner": owner}},
                            "context": {"amount": amount},
                        })
                    })
                    .collect();
                let body = serde_json::to_vec(&json!({
                    "subject": {"type": "agent", "id": id},
                    "evaluations": items,
                }))?;
                let (status, answer) = conn
                    .send("POST", "/access/v1/evaluations", Some(pep.as_str()), Some(&body))
                    .await?;
                let v: Value = serde_json::from_slice(&answer)?;
                let answered = v.get("evaluations").and_then(Value::as_array).map_or(0, Vec::len);
                if status != 200 || answered != n {
                    bail!("evaluations: {status} {}", String::from_utf8_lossy(&answer));
                }
                Ok(conn)
            }
        },
    )
    .await?;
    let audit_events = head_seq(server).await? - before;
    audited(latency.requests * n, audit_events)?;
    Ok(Batched {
        per_request: n,
        decisions_per_sec: latency.per_sec * n as f64,
        audit_events,
        latency,
    })
}

impl DecisionsReport {
    /// The human-readable table.
    pub fn print_table(&self) {
        let w = &self.workload;
        let p = &self.in_process;
        println!(
            "workload: {} agents, {} policies (+{} roles), {} grants, {} actions; {:.0}% allowed",
            w.agents,
            w.policies,
            w.roles,
            w.grants,
            w.actions,
            w.allowed_share * 100.0
        );
        println!("engine build: {:.2} s", p.build_secs);
        println!(
            "in process, Engine::decide, 1 thread:      {:>10.0} /s",
            p.engine_1_thread_per_sec
        );
        println!(
            "in process, Engine::decide, {} threads:     {:>10.0} /s",
            p.threads, p.engine_all_cores_per_sec
        );
        println!(
            "plain cedar-policy, whole set, 1 thread:   {:>10.0} /s",
            p.cedar_full_set_per_sec
        );
        println!(
            "plain cedar-policy, action slice, 1 thread:{:>10.0} /s",
            p.cedar_sliced_per_sec
        );
        println!(
            "ratio engine / cedar: {:.2} (slice), {:.2} (whole set)",
            p.ratio_to_cedar_sliced, p.ratio_to_cedar_full
        );
        if let Some(h) = &self.http {
            let e = &h.evaluation;
            println!(
                "HTTP AuthZEN evaluation ({} clients): {:.0} /s, p50 {} us, p99 {} us, max {} us; {} decisions, {} audit events in {} group commits ({:.1} per commit); setup {:.1} s",
                e.clients,
                e.per_sec,
                e.p50_us,
                e.p99_us,
                e.max_us,
                e.requests,
                h.audit_events,
                h.batches,
                h.audit_events as f64 / h.batches.max(1) as f64,
                h.setup_secs
            );
            println!(
                "group commit: {:.0} us per batch, of which {:.0} us committing; writer busy {:.0}% of the phase",
                h.batch_us,
                h.commit_us,
                h.writer_busy * 100.0
            );
            let c = &h.evaluation_cpu;
            let per = c.micros_per(e.requests as f64);
            let of = |g: &str| per.get(g).copied().unwrap_or(0.0);
            println!(
                "CPU per decision: {:.0} us (server runtime {:.0}, writer {:.0}, sqlite workers {:.0}, load generator {:.0}, other {:.0}); hypervisor steal {:.0}% of the machine",
                of("total"),
                of("server runtime"),
                of("writer"),
                of("sqlite workers"),
                of("load generator"),
                of("other"),
                c.steal_percent
            );
            if let Some(b) = &h.batched {
                let l = &b.latency;
                println!(
                    "HTTP AuthZEN evaluations, {} per request ({} clients): {:.0} decisions/s ({:.0} requests/s), p50 {} us, p99 {} us per request; {} audit events",
                    b.per_request, l.clients, b.decisions_per_sec, l.per_sec, l.p50_us, l.p99_us, b.audit_events
                );
            }
            let f = &h.floor;
            println!(
                "HTTP floor, GET /healthz ({} clients): {:.0} /s, p50 {} us, p99 {} us",
                f.clients, f.per_sec, f.p50_us, f.p99_us
            );
        }
    }
}
