//! Tenants, admin tokens and agents.

use std::collections::BTreeMap;

use idv_core::Clock as _;
use idv_core::admin_token::{AdminToken, Role};
use idv_core::agent::{AgentChanges, NewAgent, Parent};
use idv_core::lifecycle::{Status, Transition};
use idv_store::{AgentFilter, Applied, Command, Store, StoreError};
use idv_testkit::{Backend, backend_tests};

use crate::{Fixture, agent_in, ctx, tenant};

backend_tests!(
    migrations_are_idempotent_and_race_safely,
    tenants_and_admin_tokens,
    agents_create_read_and_filter,
    bulk_create_is_all_or_nothing,
    updates_check_the_version,
    transitions_follow_the_lifecycle,
);

async fn migrations_are_idempotent_and_race_safely(backend: Backend) {
    let f = Fixture::new(backend).await;
    let (a, b) = tokio::join!(
        Store::open(&f.db.url, f.clock.clone()),
        Store::open(&f.db.url, f.clock.clone())
    );
    a.unwrap();
    b.unwrap();
    assert!(f.store.tenant_by_name("acme").await.unwrap().is_some());
    f.store.ping().await.unwrap();
}

async fn tenants_and_admin_tokens(backend: Backend) {
    let f = Fixture::new(backend).await;
    let dup = idv_core::tenant::Tenant {
        id: f.clock.new_id(),
        ..f.tenant.clone()
    };
    let err = f.store.execute(Command::CreateTenant(dup), ctx()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let other = tenant(&f.store, "beta").await;
    assert_eq!(f.store.tenant(other.id).await.unwrap().unwrap().name, "beta");
    let names: Vec<String> = f
        .store
        .tenants(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme", "beta"]);

    let token = AdminToken {
        id: f.clock.new_id(),
        tenant_id: f.tenant.id,
        name: "ci".into(),
        role: Role::Operator,
        platform: false,
        hint: "idvat_abcd…".into(),
        created_at: f.clock.now(),
        created_by: "system:test".into(),
        expires_at: None,
        revoked_at: None,
    };
    let hash = [7u8; 32];
    f.store
        .execute(
            Command::CreateAdminToken {
                token: token.clone(),
                secret_hash: hash,
            },
            ctx(),
        )
        .await
        .unwrap();
    assert_eq!(f.store.admin_token_by_hash(&hash).await.unwrap().unwrap(), token);
    assert!(f.store.admin_token_by_hash(&[8u8; 32]).await.unwrap().is_none());
    // Another tenant cannot see or revoke it.
    assert!(f.store.admin_token(other.id, token.id).await.unwrap().is_none());
    let err = f
        .store
        .execute(
            Command::RevokeAdminToken {
                tenant_id: other.id,
                id: token.id,
            },
            ctx(),
        )
        .await;
    assert!(matches!(err, Err(StoreError::NotFound { .. })));
    let revoked = match f
        .store
        .execute(
            Command::RevokeAdminToken {
                tenant_id: f.tenant.id,
                id: token.id,
            },
            ctx(),
        )
        .await
    {
        Ok(Applied::AdminToken(t)) => t,
        other => panic!("{other:?}"),
    };
    assert!(revoked.revoked_at.is_some());
    assert!(
        !f.store
            .admin_token_by_hash(&hash)
            .await
            .unwrap()
            .unwrap()
            .is_usable(f.clock.now())
    );
    f.chain().await;
}

async fn agents_create_read_and_filter(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut specs = Vec::new();
    for i in 0..30 {
        let spec = NewAgent {
            owner: format!("owner-{}", i % 3),
            environment: Some(["dev", "test", "prod"][i % 3].parse().unwrap()),
            class: Some(if i < 10 { "a".into() } else { "b".into() }),
            labels: BTreeMap::from([("tier".into(), if i % 2 == 0 { "gold".into() } else { "silver".into() })]),
            ..NewAgent::default()
        };
        specs.push(agent_in(&f.store, f.tenant.id, &format!("bot-{i:02}"), spec));
    }
    let created = f.create(specs).await.unwrap();
    assert_eq!(created.len(), 30);
    let got = f.store.agent(f.tenant.id, created[4].id).await.unwrap().unwrap();
    assert_eq!(got, created[4]);
    let list = |filter: AgentFilter| {
        let store = f.store.clone();
        let t = f.tenant.id;
        async move {
            store
                .agents(
                    t,
                    &AgentFilter {
                        limit: filter.limit.clamp(1, 1000),
                        ..filter
                    },
                )
                .await
                .unwrap()
        }
    };
    let all = AgentFilter {
        limit: 1000,
        ..AgentFilter::default()
    };
    assert_eq!(
        list(AgentFilter {
            owner: Some("owner-1".into()),
            ..all.clone()
        })
        .await
        .len(),
        10
    );
    assert_eq!(
        list(AgentFilter {
            environment: Some("prod".parse().unwrap()),
            ..all.clone()
        })
        .await
        .len(),
        10
    );
    assert_eq!(
        list(AgentFilter {
            class: Some("a".into()),
            ..all.clone()
        })
        .await
        .len(),
        10
    );
    assert_eq!(
        list(AgentFilter {
            status: Some(Status::Provisioning),
            ..all.clone()
        })
        .await
        .len(),
        30
    );
    assert_eq!(
        list(AgentFilter {
            status: Some(Status::Active),
            ..all.clone()
        })
        .await
        .len(),
        0
    );
    let gold = vec![("tier".to_owned(), "gold".to_owned())];
    assert_eq!(
        list(AgentFilter {
            labels: gold,
            ..all.clone()
        })
        .await
        .len(),
        15
    );
    assert_eq!(
        list(AgentFilter {
            name_prefix: Some("bot-1".into()),
            ..all.clone()
        })
        .await
        .len(),
        10
    );
    assert_eq!(
        list(AgentFilter {
            name_prefix: Some("nope".into()),
            ..all.clone()
        })
        .await
        .len(),
        0
    );
    // Keyset pagination.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(AgentFilter {
            after,
            limit: 7,
            ..AgentFilter::default()
        })
        .await;
        seen.extend(page.iter().map(|a| a.id));
        if page.len() < 7 {
            break;
        }
        after = page.last().map(|a| a.id);
    }
    let mut expect: Vec<_> = created.iter().map(|a| a.id).collect();
    expect.sort();
    assert_eq!(seen, expect);
    // Names are per tenant.
    let beta = tenant(&f.store, "beta").await;
    let same = agent_in(&f.store, beta.id, "bot-00", NewAgent::default());
    f.store
        .execute(
            Command::CreateAgents {
                tenant_id: beta.id,
                agents: vec![same],
            },
            ctx(),
        )
        .await
        .unwrap();
    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 30);
    assert_eq!(f.store.count_agents(None).await.unwrap(), 31);
    assert!(f.store.agent(beta.id, created[0].id).await.unwrap().is_none());
    f.chain().await;
}

async fn bulk_create_is_all_or_nothing(backend: Backend) {
    let f = Fixture::new(backend).await;
    let many: Vec<_> = (0..5_000).map(|i| f.new_agent(&format!("m-{i}"))).collect();
    f.create(many).await.unwrap();
    let head = f.store.audit_head().await.unwrap().seq;

    // A name already taken anywhere in the batch: nothing is created.
    let mut batch: Vec<_> = (0..100).map(|i| f.new_agent(&format!("n-{i}"))).collect();
    batch.push(f.new_agent("m-4999"));
    assert!(matches!(f.create(batch).await, Err(StoreError::Conflict(_))));
    // An unknown dependency: nothing is created.
    let mut dep = f.new_agent("dependent");
    dep.depends_on = vec![f.clock.new_id()];
    let batch = vec![f.new_agent("n-x"), dep];
    assert!(matches!(f.create(batch).await, Err(StoreError::Invalid(_))));
    // A parent created in the same batch is fine.
    let parent = f.new_agent("parent");
    let mut child = f.new_agent("child");
    child.parent = Some(Parent::Agent(parent.id));
    f.create(vec![parent, child]).await.unwrap();

    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 5_002);
    let events = f.chain().await;
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.seq > head && e.outcome.as_str() == "failure")
        .collect();
    assert_eq!(refused.len(), 2, "each refused batch leaves one failure event");
    assert_eq!(events.iter().filter(|e| e.action == "agent.create").count(), 5_002);
}

async fn updates_check_the_version(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create(vec![f.new_agent("u")]).await.unwrap().remove(0);
    let update = |if_match: Option<i64>, changes: AgentChanges| {
        f.store.execute(
            Command::UpdateAgent {
                tenant_id: f.tenant.id,
                id: a.id,
                if_match,
                changes,
            },
            ctx(),
        )
    };
    let changed = match update(
        Some(1),
        AgentChanges {
            team: Some(Some("t".into())),
            ..Default::default()
        },
    )
    .await
    {
        Ok(Applied::Agent(a)) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(changed.version, 2);
    assert_eq!(changed.team.as_deref(), Some("t"));
    let err = update(
        Some(1),
        AgentChanges {
            owner: Some("x".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed { current: 2 }), "{err:?}");
    update(
        None,
        AgentChanges {
            team: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let now = f.store.agent(f.tenant.id, a.id).await.unwrap().unwrap();
    assert_eq!((now.version, now.team, now.owner.as_str()), (3, None, "owner"));
    // Renaming onto a taken name conflicts.
    f.create(vec![f.new_agent("taken")]).await.unwrap();
    let err = update(
        None,
        AgentChanges {
            name: Some("taken".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    f.chain().await;
}

async fn transitions_follow_the_lifecycle(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create(vec![f.new_agent("t")]).await.unwrap().remove(0);
    let go = |transition: Transition| {
        f.store.execute(
            Command::TransitionAgent {
                tenant_id: f.tenant.id,
                id: a.id,
                transition,
                reason: "because".into(),
            },
            ctx(),
        )
    };
    assert!(matches!(go(Transition::Suspend).await, Err(StoreError::Transition(_))));
    for (t, s) in [
        (Transition::Activate, Status::Active),
        (Transition::Suspend, Status::Suspended),
        (Transition::Resume, Status::Active),
        (Transition::Retire, Status::Retired),
    ] {
        match go(t).await.unwrap() {
            Applied::Agent(a) => assert_eq!(a.status, s),
            other => panic!("{other:?}"),
        }
    }
    let err = go(Transition::Activate).await.unwrap_err();
    assert!(err.to_string().contains("retired"), "{err}");
    // The retired name stays reserved.
    assert!(matches!(
        f.create(vec![f.new_agent("t")]).await,
        Err(StoreError::Conflict(_))
    ));
    f.chain().await;
}
