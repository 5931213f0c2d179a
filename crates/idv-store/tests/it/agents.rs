//! Agents: create (one and many, all or nothing), names, reads, every list
//! filter and keyset pagination, versioned updates, the lifecycle.

use std::collections::{BTreeMap, HashSet};

use idv_core::Clock as _;
use idv_core::agent::{Agent, AgentChanges, AgentError, Environment, NewAgent, Parent};
use idv_core::audit::Outcome;
use idv_core::lifecycle::{InvalidTransition, Status, Transition};
use idv_store::{AgentFilter, StoreError};
use idv_testkit::{Backend, backend_tests};
use uuid::Uuid;

use crate::{Fixture, agent_in, create_in, tenant, update};

backend_tests!(
    an_agent_round_trips_every_field,
    names_are_unique_per_tenant,
    bulk_create_is_all_or_nothing,
    references_must_exist_in_the_tenant,
    every_filter_narrows_and_pages,
    updates_check_the_version,
    transitions_follow_the_lifecycle,
    retired_agents_are_read_only_and_keep_their_names,
);

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn an_agent_round_trips_every_field(backend: Backend) {
    let f = Fixture::new(backend).await;
    let parent = f.create_one("parent").await;
    let dep = f.create_one("dependency").await;
    let spec = NewAgent {
        owner: "Zoë Ågren <zoe@bank.example>".into(),
        purpose: "reconcile payments — nightly, 日本語 too".into(),
        environment: Some(Environment::Prod),
        team: Some("risk".into()),
        labels: labels(&[("tier", "gold"), ("cost-center", "42"), ("a/b", "with space")]),
        capabilities: vec!["payments:read".into(), "ledger/write".into()],
        class: Some("reconciler".into()),
        parent: Some(Parent::Agent(parent.id)),
        depends_on: vec![dep.id],
        ttl_seconds: Some(3600),
        ..NewAgent::default()
    };
    let a = f.agent_with("payments-bot.v2", spec);
    let created = f.create(vec![a.clone()]).await.unwrap();
    assert_eq!(created, std::slice::from_ref(&a), "the store returns what it stored");
    assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(&a));
    assert!(a.expires_at.is_some());

    let human = f.agent_with(
        "human-child",
        NewAgent {
            parent: Some(Parent::Human("alice@bank.example".into())),
            ..NewAgent::default()
        },
    );
    f.create(vec![human.clone()]).await.unwrap();
    assert_eq!(f.store.agent(f.tenant.id, human.id).await.unwrap(), Some(human));

    // Not visible from another tenant, nor under an unknown id.
    let beta = tenant(&f.store, "beta").await;
    assert_eq!(f.store.agent(beta.id, a.id).await.unwrap(), None);
    assert_eq!(f.store.agent(f.tenant.id, f.clock.new_id()).await.unwrap(), None);
    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 4);
    assert_eq!(f.store.count_agents(Some(beta.id)).await.unwrap(), 0);
    f.chain().await;
}

async fn names_are_unique_per_tenant(backend: Backend) {
    let f = Fixture::new(backend).await;
    let beta = tenant(&f.store, "beta").await;
    let first = f.create_one("worker").await;
    let err = f.create(vec![f.new_agent("worker")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("`worker`"), "{err}");
    // The same name in another tenant is a different agent.
    let other = agent_in(&f.store, beta.id, "worker", NewAgent::default());
    create_in(&f.store, beta.id, vec![other.clone()]).await.unwrap();
    assert_eq!(f.store.agent(beta.id, other.id).await.unwrap(), Some(other));
    assert_eq!(f.store.count_agents(None).await.unwrap(), 2);

    // Renaming onto a taken name conflicts; renaming frees the old name.
    let second = f.create_one("helper").await;
    let err = f
        .update(
            second.id,
            None,
            AgentChanges {
                name: Some("worker".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let renamed = f
        .update(
            first.id,
            Some(1),
            AgentChanges {
                name: Some("worker-2".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "worker-2");
    f.create_one("worker").await;
    // Renaming to its own name is not a conflict.
    f.update(
        renamed.id,
        None,
        AgentChanges {
            name: Some("worker-2".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 3);
    f.chain().await;
}

/// Rows in the tables a creation writes to besides `agents`.
async fn side_rows(f: &Fixture) -> (i64, i64, i64) {
    (
        f.count("SELECT COUNT(*) FROM agents").await,
        f.count("SELECT COUNT(*) FROM agent_labels").await,
        f.count("SELECT COUNT(*) FROM jobs").await,
    )
}

/// Asserts that a refused creation left no rows and exactly one failure event.
async fn assert_refused(f: &Fixture, head: i64, before: (i64, i64, i64), n: usize) {
    assert_eq!(side_rows(f).await, before, "a refused batch leaves no rows behind");
    let events = f.events_after(head).await;
    assert_eq!(events.len(), 1, "only the failure is recorded: {events:?}");
    let e = &events[0];
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.tenant_id, f.tenant.id);
    if n == 1 {
        assert_eq!(e.action, "agent.create");
    } else {
        assert_eq!(e.action, "agent.create_bulk");
        assert_eq!(e.target_id, format!("{n} agents"));
    }
    assert!(e.details["error"].as_str().is_some_and(|s| !s.is_empty()), "{e:?}");
}

async fn bulk_create_is_all_or_nothing(backend: Backend) {
    let f = Fixture::new(backend).await;
    let many: Vec<_> = (0..5_000)
        .map(|i| {
            f.agent_with(
                &format!("m-{i:04}"),
                NewAgent {
                    labels: labels(&[("batch", "one"), ("parity", if i % 2 == 0 { "even" } else { "odd" })]),
                    ttl_seconds: (i % 10 == 0).then_some(600),
                    ..NewAgent::default()
                },
            )
        })
        .collect();
    let head = f.head().await;
    let created = f.create(many.clone()).await.unwrap();
    assert_eq!(created, many, "returned in request order");
    assert_eq!(side_rows(&f).await, (5_000, 10_000, 500));
    let events = f.events_after(head).await;
    assert_eq!(events.len(), 5_000, "one event per agent");
    assert!(
        events
            .iter()
            .zip(&many)
            .all(|(e, a)| e.action == "agent.create" && e.target_id == a.id.to_string())
    );
    assert_eq!(
        f.store.agent(f.tenant.id, many[4321].id).await.unwrap().as_ref(),
        Some(&many[4321])
    );

    // Keyset pagination over all of them: no duplicates, no omissions.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = f
            .store
            .agents(
                f.tenant.id,
                &AgentFilter {
                    after,
                    limit: 777,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.into_iter().map(|a| a.id));
    }
    let mut want: Vec<Uuid> = many.iter().map(|a| a.id).collect();
    want.sort();
    assert_eq!(seen, want);

    let before = side_rows(&f).await;
    let fresh = |prefix: &str, n: usize| -> Vec<Agent> {
        (0..n)
            .map(|i| {
                f.agent_with(
                    &format!("{prefix}-{i:04}"),
                    NewAgent {
                        labels: labels(&[("batch", prefix)]),
                        ttl_seconds: Some(60),
                        ..NewAgent::default()
                    },
                )
            })
            .collect()
    };

    // A name twice in the request.
    let head = f.head().await;
    let mut batch = fresh("dup", 4_999);
    batch.push(f.new_agent("dup-0003"));
    let err = f.create(batch).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_refused(&f, head, before, 5_000).await;

    // A name already taken (the last of 5,000).
    let head = f.head().await;
    let mut batch = fresh("taken", 4_999);
    batch.push(f.new_agent("m-4999"));
    let err = f.create(batch).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_refused(&f, head, before, 5_000).await;

    // An unknown dependency (the last of 5,000), named by its position.
    let head = f.head().await;
    let mut batch = fresh("dep", 5_000);
    batch[4_999].depends_on = vec![f.clock.new_id()];
    let err = f.create(batch).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(AgentError::Invalid { field, .. }) if field == "agents[4999].depends_on"),
        "{err:?}"
    );
    assert_refused(&f, head, before, 5_000).await;

    // A refused single agent is audited as `agent.create`.
    let head = f.head().await;
    let mut one = f.new_agent("lonely");
    one.parent = Some(Parent::Agent(f.clock.new_id()));
    let err = f.create(vec![one]).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(AgentError::Invalid { field, .. }) if field == "parent"),
        "{err:?}"
    );
    assert_refused(&f, head, before, 1).await;

    // The database refuses a row part-way through the inserts (an id that
    // is already taken, in a later statement than the first): the rows
    // already inserted for this request are rolled back too.
    let head = f.head().await;
    let mut batch = fresh("late", 5_000);
    batch[4_000].id = many[0].id;
    f.create(batch).await.unwrap_err();
    assert_eq!(side_rows(&f).await, before, "a refused batch leaves no rows behind");
    assert!(
        f.events_after(head).await.iter().all(|e| e.outcome != Outcome::Success),
        "nothing is recorded as created"
    );

    // Parents and dependencies created in the same request are fine, in any order.
    let parent = f.new_agent("parent");
    let sibling = f.new_agent("sibling");
    let mut child = f.new_agent("child");
    child.parent = Some(Parent::Agent(parent.id));
    child.depends_on = vec![sibling.id];
    f.create(vec![child, sibling, parent]).await.unwrap();
    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 5_003);
    f.chain().await;
}

async fn references_must_exist_in_the_tenant(backend: Backend) {
    let f = Fixture::new(backend).await;
    let beta = tenant(&f.store, "beta").await;
    let foreign = agent_in(&f.store, beta.id, "foreign", NewAgent::default());
    create_in(&f.store, beta.id, vec![foreign.clone()]).await.unwrap();
    let local = f.create_one("local").await;

    let mut a = f.new_agent("dep-on-foreign");
    a.depends_on = vec![foreign.id];
    let err = f.create(vec![a]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "another tenant's agent is unknown here: {err:?}"
    );
    let mut a = f.new_agent("child-of-foreign");
    a.parent = Some(Parent::Agent(foreign.id));
    let err = f.create(vec![a]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

    let mut a = f.new_agent("dep-on-local");
    a.depends_on = vec![local.id];
    let a = f.create(vec![a]).await.unwrap().remove(0);
    // An update is checked the same way, and a refused update changes nothing.
    let err = f
        .update(
            a.id,
            None,
            AgentChanges {
                depends_on: Some(vec![local.id, foreign.id]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(&a));
    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 2);
    f.chain().await;
}

/// The agents of `all` that `filter` selects, in id order (the model).
fn model(all: &[Agent], filter: &AgentFilter) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = all
        .iter()
        .filter(|a| filter.status.is_none_or(|s| a.status == s))
        .filter(|a| filter.owner.as_ref().is_none_or(|o| &a.owner == o))
        .filter(|a| filter.environment.is_none_or(|e| a.environment == Some(e)))
        .filter(|a| filter.class.as_ref().is_none_or(|c| a.class.as_ref() == Some(c)))
        .filter(|a| filter.labels.iter().all(|(k, v)| a.labels.get(k) == Some(v)))
        .filter(|a| {
            filter
                .name_prefix
                .as_ref()
                .is_none_or(|p| a.name.starts_with(p.as_str()))
        })
        .map(|a| a.id)
        .collect();
    ids.sort();
    ids
}

/// Every page of `filter` with page size `limit`, checking each page is at
/// most `limit` long.
async fn paged(f: &Fixture, filter: &AgentFilter, limit: i64) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = f
            .store
            .agents(
                f.tenant.id,
                &AgentFilter {
                    after,
                    limit,
                    ..filter.clone()
                },
            )
            .await
            .unwrap();
        assert!(page.len() <= usize::try_from(limit).unwrap());
        let Some(last) = page.last() else { return out };
        after = Some(last.id);
        out.extend(page.into_iter().map(|a| a.id));
    }
}

async fn every_filter_narrows_and_pages(backend: Backend) {
    let f = Fixture::new(backend).await;
    let envs = [
        None,
        Some(Environment::Dev),
        Some(Environment::Test),
        Some(Environment::Prod),
    ];
    let specs: Vec<Agent> = (0..60)
        .map(|i| {
            let mut l = vec![("tier", ["gold", "silver", "bronze"][i % 3])];
            if i % 4 == 0 {
                l.push(("region", "eu"));
            }
            if i % 5 == 0 {
                l.push(("region", "us"));
            }
            f.agent_with(
                &format!("{}-{i:02}", ["alpha", "beta", "al"][i % 3]),
                NewAgent {
                    owner: format!("owner-{}", i % 4),
                    environment: envs[i % 4],
                    class: (i % 6 != 0).then(|| ["crawler", "planner"][i % 2].to_owned()),
                    labels: labels(&l),
                    ..NewAgent::default()
                },
            )
        })
        .collect();
    let created = f.create(specs).await.unwrap();
    // Spread the statuses.
    for (i, a) in created.iter().enumerate() {
        match i % 4 {
            1 => {
                f.transition(a.id, Transition::Activate).await.unwrap();
            }
            2 => {
                f.transition(a.id, Transition::Activate).await.unwrap();
                f.transition(a.id, Transition::Suspend).await.unwrap();
            }
            3 if i % 8 == 3 => {
                f.transition(a.id, Transition::Retire).await.unwrap();
            }
            _ => {}
        }
    }
    // A lookalike tenant that no filter may leak.
    let beta = tenant(&f.store, "beta").await;
    let lookalikes: Vec<_> = created
        .iter()
        .take(20)
        .map(|a| {
            agent_in(
                &f.store,
                beta.id,
                &a.name,
                NewAgent {
                    owner: a.owner.clone(),
                    environment: a.environment,
                    class: a.class.clone(),
                    labels: a.labels.clone(),
                    ..NewAgent::default()
                },
            )
        })
        .collect();
    create_in(&f.store, beta.id, lookalikes).await.unwrap();

    let all = f
        .store
        .agents(
            f.tenant.id,
            &AgentFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 60);
    for a in &all {
        assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(a));
    }
    let label = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let filters = vec![
        AgentFilter::default(),
        AgentFilter {
            status: Some(Status::Provisioning),
            ..Default::default()
        },
        AgentFilter {
            status: Some(Status::Active),
            ..Default::default()
        },
        AgentFilter {
            status: Some(Status::Suspended),
            ..Default::default()
        },
        AgentFilter {
            status: Some(Status::Retired),
            ..Default::default()
        },
        AgentFilter {
            owner: Some("owner-2".into()),
            ..Default::default()
        },
        AgentFilter {
            owner: Some("owner-9".into()),
            ..Default::default()
        },
        AgentFilter {
            environment: Some(Environment::Prod),
            ..Default::default()
        },
        AgentFilter {
            environment: Some(Environment::Dev),
            ..Default::default()
        },
        AgentFilter {
            class: Some("crawler".into()),
            ..Default::default()
        },
        AgentFilter {
            labels: vec![label("tier", "gold")],
            ..Default::default()
        },
        AgentFilter {
            labels: vec![label("region", "eu")],
            ..Default::default()
        },
        AgentFilter {
            labels: vec![label("tier", "gold"), label("region", "eu")],
            ..Default::default()
        },
        AgentFilter {
            labels: vec![label("region", "eu"), label("region", "us")],
            ..Default::default()
        },
        AgentFilter {
            labels: vec![label("tier", "platinum")],
            ..Default::default()
        },
        AgentFilter {
            name_prefix: Some("al".into()),
            ..Default::default()
        },
        AgentFilter {
            name_prefix: Some("alpha-1".into()),
            ..Default::default()
        },
        AgentFilter {
            name_prefix: Some("alpha-_".into()),
            ..Default::default()
        },
        AgentFilter {
            name_prefix: Some("al%".into()),
            ..Default::default()
        },
        AgentFilter {
            name_prefix: Some(String::new()),
            ..Default::default()
        },
        AgentFilter {
            status: Some(Status::Active),
            owner: Some("owner-1".into()),
            environment: Some(Environment::Dev),
            class: Some("planner".into()),
            labels: vec![label("tier", "silver")],
            name_prefix: Some("beta".into()),
            ..Default::default()
        },
        AgentFilter {
            status: Some(Status::Provisioning),
            labels: vec![label("region", "eu")],
            ..Default::default()
        },
    ];
    for filter in &filters {
        let want = model(&all, filter);
        let got: Vec<Uuid> = f
            .store
            .agents(
                f.tenant.id,
                &AgentFilter {
                    limit: 1000,
                    ..filter.clone()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(got, want, "{filter:?}");
        for limit in [1, 3, 7] {
            assert_eq!(paged(&f, filter, limit).await, want, "{filter:?}, pages of {limit}");
        }
    }
    // Sanity: the filters above are not vacuous.
    assert_eq!(model(&all, &filters[11]).len(), 12);
    assert_eq!(model(&all, &filters[12]).len(), 4, "labels combine with AND");
    assert!(model(&all, &filters[13]).is_empty(), "one key cannot have two values");
    assert_eq!(model(&all, &filters[15]).len(), 40);
    assert_eq!(model(&all, &filters[20]).len(), 5);

    // `after` an id that is not an agent still pages correctly.
    let mid = all[29].id;
    let between = Uuid::from_u128(mid.as_u128() + 1);
    let rest = f
        .store
        .agents(
            f.tenant.id,
            &AgentFilter {
                after: Some(between),
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.len(), 30);

    // Changing labels moves an agent between label filters.
    let gold = AgentFilter {
        labels: vec![label("tier", "gold")],
        limit: 1000,
        ..Default::default()
    };
    let target = &all[0];
    assert_eq!(target.labels, labels(&[("tier", "gold"), ("region", "us")]));
    f.update(
        target.id,
        None,
        AgentChanges {
            labels: Some(labels(&[("tier", "platinum")])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let now_gold: Vec<Uuid> = f
        .store
        .agents(f.tenant.id, &gold)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert!(!now_gold.contains(&target.id));
    assert_eq!(now_gold.len(), model(&all, &gold).len() - 1);
    let platinum = f
        .store
        .agents(
            f.tenant.id,
            &AgentFilter {
                labels: vec![label("tier", "platinum")],
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(platinum.iter().map(|a| a.id).collect::<Vec<_>>(), [target.id]);
    assert_eq!(
        f.store
            .agents(
                f.tenant.id,
                &AgentFilter {
                    labels: vec![label("region", "us")],
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .iter()
            .filter(|a| a.id == target.id)
            .count(),
        0,
        "labels not in the new set are gone"
    );
}

async fn updates_check_the_version(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create_one("u").await;
    assert_eq!(a.version, 1);
    f.clock.advance_secs(3);
    let changed = f
        .update(
            a.id,
            Some(1),
            AgentChanges {
                team: Some(Some("t".into())),
                owner: Some("new-owner".into()),
                environment: Some(Some(Environment::Test)),
                capabilities: Some(vec!["x:y".into()]),
                allowed_scopes: Some(["ledger:read".to_owned()].into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.version, 2);
    assert_eq!(changed.grants.scopes, ["ledger:read".to_owned()].into());
    assert_eq!(changed.updated_at, f.clock.now());
    assert_eq!(changed.created_at, a.created_at);
    assert_eq!(
        (changed.team.as_deref(), changed.owner.as_str(), changed.environment),
        (Some("t"), "new-owner", Some(Environment::Test))
    );
    assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(&changed));

    // A stale version is refused with the current one, and changes nothing.
    let head = f.head().await;
    let err = f
        .update(
            a.id,
            Some(1),
            AgentChanges {
                owner: Some("x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed { current: 2 }), "{err:?}");
    assert!(err.to_string().contains('2'), "{err}");
    assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(&changed));
    let refused = f.events_after(head).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (refused[0].action.as_str(), refused[0].outcome),
        ("agent.update", Outcome::Failure)
    );
    // A future version is stale too.
    let err = f.update(a.id, Some(3), AgentChanges::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed { current: 2 }), "{err:?}");

    // Without If-Match the change applies; clearing an optional field works.
    let cleared = f
        .update(
            a.id,
            None,
            AgentChanges {
                team: Some(None),
                environment: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (cleared.version, cleared.team.as_deref(), cleared.environment),
        (3, None, None)
    );
    assert_eq!(cleared.owner, "new-owner");

    // An invalid change is refused and changes nothing.
    let err = f
        .update(
            a.id,
            None,
            AgentChanges {
                name: Some("no spaces allowed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().unwrap().version, 3);

    // Unknown agents, and agents of another tenant, are not found.
    let beta = tenant(&f.store, "beta").await;
    let err = update(&f.store, beta.id, a.id, None, AgentChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = f
        .update(f.clock.new_id(), None, AgentChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    // Two writers with the same If-Match: exactly one wins.
    let racers: Vec<_> = (0..2)
        .map(|i| {
            let store = f.store.clone();
            let (t, id) = (f.tenant.id, a.id);
            tokio::spawn(async move {
                let changes = AgentChanges {
                    purpose: Some(format!("racer {i}")),
                    ..Default::default()
                };
                update(&store, t, id, Some(3), changes).await
            })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(a) => {
                wins += 1;
                assert_eq!(a.version, 4);
            }
            Err(StoreError::PreconditionFailed { current: 4 }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(wins, 1);

    let events = f.chain().await;
    let updates: Vec<_> = events
        .iter()
        .filter(|e| e.action == "agent.update" && e.outcome == Outcome::Success)
        .collect();
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0].details["version"], 2);
    let mut fields: Vec<&str> = updates[0].details["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["capabilities", "environment", "owner", "team"]);
}

async fn transitions_follow_the_lifecycle(backend: Backend) {
    let f = Fixture::new(backend).await;
    let path = |s: Status| -> &'static [Transition] {
        match s {
            Status::Provisioning => &[],
            Status::Active => &[Transition::Activate],
            Status::Suspended => &[Transition::Activate, Transition::Suspend],
            Status::Retired => &[Transition::Retire],
        }
    };
    let mut n = 0;
    for from in Status::ALL {
        for t in Transition::ALL {
            n += 1;
            let a = f.create_one(&format!("a{n}")).await;
            let mut version = 1;
            for step in path(from) {
                f.transition(a.id, *step).await.unwrap();
                version += 1;
            }
            f.clock.advance_secs(1);
            let head = f.head().await;
            match from.apply(t) {
                Ok(to) => {
                    let done = f.transition(a.id, t).await.unwrap();
                    assert_eq!(done.status, to);
                    assert_eq!(done.version, version + 1);
                    assert_eq!(done.status_reason.as_deref(), Some("because"));
                    assert_eq!(done.status_changed_at, f.clock.now());
                    assert_eq!(done.status_changed_by, "system:test");
                    if matches!(t, Transition::Suspend | Transition::Resume) {
                        // Tokens issued until now stay dead after a resumption.
                        assert_eq!(done.tokens_not_before, Some(f.clock.now()));
                    }
                    assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(&done));
                    let ev = f.events_after(head).await;
                    assert_eq!(ev.len(), 1);
                    assert_eq!(ev[0].action, format!("agent.{}", t.as_str()));
                    assert_eq!(ev[0].outcome, Outcome::Success);
                    assert_eq!(ev[0].reason.as_deref(), Some("because"));
                    assert_eq!(ev[0].details["from"], from.as_str());
                    assert_eq!(ev[0].details["to"], to.as_str());
                }
                Err(_) => {
                    let err = f.transition(a.id, t).await.unwrap_err();
                    match &err {
                        StoreError::Transition(InvalidTransition { from: f2, transition }) => {
                            assert_eq!((*f2, *transition), (from, t));
                        }
                        other => panic!("{from} + {t}: {other:?}"),
                    }
                    // The message names the current state.
                    assert_eq!(err.to_string(), format!("cannot {t} an agent that is {from}"));
                    let now = f.store.agent(f.tenant.id, a.id).await.unwrap().unwrap();
                    assert_eq!((now.status, now.version), (from, version), "nothing changed");
                    let ev = f.events_after(head).await;
                    assert_eq!(ev.len(), 1);
                    assert_eq!(ev[0].action, format!("agent.{}", t.as_str()));
                    assert_eq!(ev[0].outcome, Outcome::Failure);
                    assert_eq!(ev[0].reason.as_deref(), Some("because"));
                }
            }
        }
    }
    let err = f.transition(f.clock.new_id(), Transition::Activate).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    f.chain().await;
}

async fn retired_agents_are_read_only_and_keep_their_names(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create_one("old-name").await;
    let retired = f.transition(a.id, Transition::Retire).await.unwrap();
    assert_eq!(retired.status, Status::Retired);
    // Still readable and listed.
    assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(&retired));
    // Read-only.
    let err = f
        .update(
            a.id,
            Some(retired.version),
            AgentChanges {
                name: Some("new-name".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Its name stays reserved, in one request or many.
    for batch in [
        vec![f.new_agent("old-name")],
        vec![f.new_agent("x"), f.new_agent("old-name")],
    ] {
        let err = f.create(batch).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }
    // Nor can a live agent be renamed onto it.
    let b = f.create_one("live").await;
    let err = f
        .update(
            b.id,
            None,
            AgentChanges {
                name: Some("old-name".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let names: HashSet<String> = f
        .store
        .agents(
            f.tenant.id,
            &AgentFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, HashSet::from(["old-name".to_owned(), "live".to_owned()]));
    f.chain().await;
}
