//! The storage conformance suite: the same tests on SQLite always and on
//! PostgreSQL when `IDV_TEST_POSTGRES_URL` is set, each in a fresh database
//! (a new SQLite file or a new PostgreSQL schema).
//!
//! Modules follow the store's contract: `migrations`, `tenants` (and admin
//! tokens), `agents`, `audit` (one event per write, filters, tamper
//! evidence), `writer` (group commit, fail closed), `jobs` (TTL expiry,
//! leases, exactly-once claiming) and `nodes` (several stores on one
//! PostgreSQL schema).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod agents;
mod audit;
mod figures;
mod jobs;
mod migrations;
mod nodes;
mod tenants;
mod webhooks;
mod writer;

use std::sync::Arc;

use idv_core::Timestamp;
use idv_core::agent::{Agent, AgentChanges, NewAgent};
use idv_core::audit::{Actor, Event, Verifier};
use idv_core::clock::{Clock, ManualClock, SystemClock};
use idv_core::lifecycle::Transition;
use idv_core::tenant::Tenant;
use idv_store::{Applied, AuditFilter, Command, Context, Store, StoreError};
use idv_testkit::{Backend, Database};
use uuid::Uuid;

/// A store on a fresh database, with a manual clock and a tenant `acme`.
#[derive(Debug)]
pub struct Fixture {
    pub store: Store,
    pub db: Database,
    pub clock: Arc<ManualClock>,
    pub tenant: Tenant,
}

/// A manual clock starting at the current wall-clock time (whole seconds,
/// so boundaries computed in seconds are exact).
pub fn manual_clock() -> Arc<ManualClock> {
    let now = SystemClock::default().now().as_micros();
    Arc::new(ManualClock::new(Timestamp::from_micros(now - now % 1_000_000)))
}

impl Fixture {
    pub async fn new(backend: Backend) -> Self {
        let db = Database::fresh(backend).await.unwrap();
        let clock = manual_clock();
        let store = Store::open(&db.url, clock.clone()).await.unwrap();
        let tenant = tenant(&store, "acme").await;
        Fixture {
            store,
            db,
            clock,
            tenant,
        }
    }

    /// Another store on the same database (a second node).
    pub async fn second_node(&self) -> Store {
        Store::open(&self.db.url, self.clock.clone()).await.unwrap()
    }

    /// A valid agent named `name` in the fixture's tenant.
    pub fn new_agent(&self, name: &str) -> Agent {
        agent_in(&self.store, self.tenant.id, name, NewAgent::default())
    }

    /// An agent in the fixture's tenant from `spec` (owner and purpose filled in).
    pub fn agent_with(&self, name: &str, spec: NewAgent) -> Agent {
        agent_in(&self.store, self.tenant.id, name, spec)
    }

    pub async fn create(&self, agents: Vec<Agent>) -> Result<Vec<Agent>, StoreError> {
        create_in(&self.store, self.tenant.id, agents).await
    }

    pub async fn create_one(&self, name: &str) -> Agent {
        self.create(vec![self.new_agent(name)]).await.unwrap().remove(0)
    }

    pub async fn update(&self, id: Uuid, if_match: Option<i64>, changes: AgentChanges) -> Result<Agent, StoreError> {
        update(&self.store, self.tenant.id, id, if_match, changes).await
    }

    pub async fn transition(&self, id: Uuid, transition: Transition) -> Result<Agent, StoreError> {
        crate::transition(&self.store, self.tenant.id, id, transition, "because").await
    }

    /// Every event of the chain, verified.
    pub async fn chain(&self) -> Vec<Event> {
        chain(&self.store).await
    }

    /// Events after `seq`, unverified (for checking what one command wrote).
    pub async fn events_after(&self, seq: i64) -> Vec<Event> {
        self.store
            .audit_events(&AuditFilter {
                after_seq: seq,
                limit: 100_000,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    pub async fn head(&self) -> i64 {
        self.store.audit_head().await.unwrap().seq
    }

    /// `SELECT COUNT(*) …` on a raw connection.
    pub async fn count(&self, sql: &str) -> i64 {
        count(&self.db, sql).await
    }
}

/// The audit context of a test actor.
pub fn ctx() -> Context {
    Context {
        actor: Actor::system("test"),
        request_id: Some("req-1".into()),
        note: None,
    }
}

pub async fn tenant(store: &Store, name: &str) -> Tenant {
    let t = Tenant {
        id: store.clock().new_id(),
        name: name.into(),
        display_name: format!("{name} inc."),
        created_at: store.clock().now(),
    };
    match store.execute(Command::CreateTenant(t), ctx()).await.unwrap() {
        Applied::Tenant(t) => t,
        other => panic!("unexpected {other:?}"),
    }
}

pub fn agent_in(store: &Store, tenant: Uuid, name: &str, spec: NewAgent) -> Agent {
    let spec = NewAgent {
        name: name.into(),
        owner: if spec.owner.is_empty() {
            "owner@example.com".into()
        } else {
            spec.owner
        },
        purpose: if spec.purpose.is_empty() {
            "testing".into()
        } else {
            spec.purpose
        },
        ..spec
    };
    spec.into_agent(store.clock().new_id(), tenant, store.clock().now(), "system:test")
        .unwrap()
}

pub async fn create_in(store: &Store, tenant_id: Uuid, agents: Vec<Agent>) -> Result<Vec<Agent>, StoreError> {
    match store
        .execute(Command::CreateAgents { tenant_id, agents }, ctx())
        .await?
    {
        Applied::Agents(a) => Ok(a),
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn update(
    store: &Store,
    tenant_id: Uuid,
    id: Uuid,
    if_match: Option<i64>,
    changes: AgentChanges,
) -> Result<Agent, StoreError> {
    let cmd = Command::UpdateAgent {
        tenant_id,
        id,
        if_match,
        changes,
    };
    match store.execute(cmd, ctx()).await? {
        Applied::Agent(a) => Ok(*a),
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn transition(
    store: &Store,
    tenant_id: Uuid,
    id: Uuid,
    transition: Transition,
    reason: &str,
) -> Result<Agent, StoreError> {
    let cmd = Command::TransitionAgent {
        tenant_id,
        id,
        transition,
        reason: reason.into(),
    };
    match store.execute(cmd, ctx()).await? {
        Applied::Agent(a) => Ok(*a),
        other => panic!("unexpected {other:?}"),
    }
}

/// Reads the whole chain page by page and checks it with the [`Verifier`];
/// also checks that the recorded head is the last verified event, and that
/// the packed pages a verifier reads ([`Store::audit_chain_page`]) hold the
/// same events.
pub async fn chain(store: &Store) -> Vec<Event> {
    let out = read_chain(store).await;
    let mut packed: Vec<Event> = Vec::new();
    loop {
        let after = packed.last().map_or(0, |e| e.seq);
        let page = store.audit_chain_page(after, 10_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        packed.extend(page);
    }
    assert!(packed == out, "audit_chain_page and audit_events disagree");
    if let Err(b) = verify(&out) {
        panic!("{b}");
    }
    let head = store.audit_head().await.unwrap();
    match out.last() {
        Some(last) => assert_eq!((head.seq, head.hash), (last.seq, last.hash)),
        None => assert_eq!(head, idv_core::audit::Head::EMPTY),
    }
    out
}

/// Every stored event, in chain order, unverified.
pub async fn read_chain(store: &Store) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let page = store
            .audit_events(&AuditFilter {
                after_seq: out.last().map_or(0, |e| e.seq),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Walks `events` from the start of the chain.
pub fn verify(events: &[Event]) -> Result<(), idv_core::audit::Break> {
    let mut v = Verifier::default();
    events.iter().try_for_each(|e| v.push(e))
}

/// Asserts that the chain's sequence numbers are exactly `1..=n`.
pub fn assert_gapless(events: &[Event]) {
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let want: Vec<i64> = (1..=i64::try_from(events.len()).unwrap()).collect();
    assert_eq!(seqs, want, "sequence numbers have gaps or repeats");
}

/// A raw connection to the database, for inspecting and tampering.
pub async fn raw(db: &Database) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&db.url).await.unwrap()
}

/// Runs statements on a raw connection.
pub async fn exec(db: &Database, statements: &[&str]) {
    let mut conn = raw(db).await;
    for sql in statements {
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// `SELECT COUNT(*) …` on a raw connection.
pub async fn count(db: &Database, sql: &str) -> i64 {
    let mut conn = raw(db).await;
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
    n
}
