//! The storage conformance suite: the same tests on SQLite always and on
//! PostgreSQL when `IDV_TEST_POSTGRES_URL` is set, each in a fresh database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod agents;
mod audit;
mod jobs;

use std::sync::Arc;

use idv_core::Timestamp;
use idv_core::agent::{Agent, NewAgent};
use idv_core::audit::{Actor, Event, Verifier};
use idv_core::clock::{Clock, ManualClock, SystemClock};
use idv_core::tenant::Tenant;
use idv_store::{Applied, AuditFilter, Command, Context, Store};
use idv_testkit::Database;
use uuid::Uuid;

/// A store on a fresh database, with a manual clock and a tenant.
#[derive(Debug)]
pub struct Fixture {
    pub store: Store,
    pub db: Database,
    pub clock: Arc<ManualClock>,
    pub tenant: Tenant,
}

impl Fixture {
    pub async fn new(backend: idv_testkit::Backend) -> Self {
        let db = Database::fresh(backend).await.unwrap();
        let now = SystemClock::default().now();
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(now.as_micros())));
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

    pub fn new_agent(&self, name: &str) -> Agent {
        agent_in(&self.store, self.tenant.id, name, NewAgent::default())
    }

    pub async fn create(&self, agents: Vec<Agent>) -> Result<Vec<Agent>, idv_store::StoreError> {
        match self
            .store
            .execute(
                Command::CreateAgents {
                    tenant_id: self.tenant.id,
                    agents,
                },
                ctx(),
            )
            .await?
        {
            Applied::Agents(a) => Ok(a),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Every event of the chain, verified.
    pub async fn chain(&self) -> Vec<Event> {
        chain(&self.store).await
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
        display_name: name.into(),
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
            "owner".into()
        } else {
            spec.owner
        },
        purpose: if spec.purpose.is_empty() {
            "purpose".into()
        } else {
            spec.purpose
        },
        ..spec
    };
    spec.into_agent(store.clock().new_id(), tenant, store.clock().now(), "system:test")
        .unwrap()
}

/// Reads the whole chain and checks it.
pub async fn chain(store: &Store) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .audit_events(&AuditFilter {
                after_seq: after,
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        out.extend(page);
    }
    let mut v = Verifier::default();
    for e in &out {
        v.push(e).unwrap_or_else(|b| panic!("{b}"));
    }
    assert_eq!(store.audit_head().await.unwrap().seq, v.head().seq);
    out
}

/// A raw connection to the fixture's database, for tampering.
pub async fn raw(db: &Database) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&db.url).await.unwrap()
}
