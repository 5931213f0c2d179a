//! The audit chain: one event per change with the right fields, every
//! filter, the packed chain pages, and tamper evidence.

use idv_core::Clock as _;
use idv_core::admin_token::{AdminToken, Role};
use idv_core::agent::{Environment, NewAgent};
use idv_core::audit::{Action, Actor, ActorKind, Draft, Event, Outcome, TargetKind, TargetType};
use idv_core::lifecycle::Transition;
use idv_core::tenant::Tenant;
use idv_store::{Applied, AuditFilter, Command, Context, JOB_EXPIRE_AGENT, Store};
use idv_testkit::{Backend, backend_tests};
use serde_json::json;
use uuid::Uuid;

use crate::{Fixture, chain, raw, read_chain, verify};

backend_tests!(
    every_write_records_its_events,
    every_audit_filter_narrows,
    chain_pages_match_the_events,
    tampering_breaks_the_chain_where_it_happened,
    a_malformed_column_names_its_event,
);

/// An admin-token actor with a request id and a note.
fn token_ctx(token_id: Uuid, name: &str) -> Context {
    Context {
        actor: Actor {
            kind: ActorKind::AdminToken,
            name: name.into(),
            token_id: Some(token_id),
        },
        request_id: Some(format!("req-{name}")),
        note: Some(json!({ "acting_for": "platform", "n": 1 })),
    }
}

/// What one event must say, beyond what every event of a step shares.
struct Want<'a> {
    tenant_id: Uuid,
    action: &'a str,
    target_type: &'a str,
    target_id: String,
    outcome: Outcome,
    reason: Option<&'a str>,
}

/// Runs `cmd` one second after the previous step and checks that exactly
/// the wanted events were appended, stamped with `ctx` and the clock.
async fn step(f: &Fixture, cmd: Command, ctx: &Context, want: &[Want<'_>]) -> (Result<Applied, String>, Vec<Event>) {
    f.clock.advance_secs(1);
    let head = f.head().await;
    let res = f.store.execute(cmd, ctx.clone()).await.map_err(|e| e.to_string());
    let events = f.events_after(head).await;
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.action.as_str(), e.target_id.as_str(), e.outcome))
        .collect();
    let wanted: Vec<_> = want
        .iter()
        .map(|w| (w.action, w.target_id.as_str(), w.outcome))
        .collect();
    assert_eq!(got, wanted, "events of one step ({res:?})");
    for (e, w) in events.iter().zip(want) {
        assert_eq!(e.tenant_id, w.tenant_id, "{e:?}");
        assert_eq!(e.target_type, w.target_type, "{e:?}");
        assert_eq!(e.reason.as_deref(), w.reason, "{e:?}");
        assert_eq!(e.actor, ctx.actor, "{e:?}");
        assert_eq!(e.request_id, ctx.request_id, "{e:?}");
        assert_eq!(e.time, f.clock.now(), "{e:?}");
        if let Some(note) = &ctx.note {
            assert_eq!(&e.details["request"], note, "{e:?}");
        }
        if e.outcome == Outcome::Failure {
            assert_eq!(e.details["error"].as_str(), res.as_ref().err().map(String::as_str));
        }
    }
    (res, events)
}

async fn every_write_records_its_events(backend: Backend) {
    let f = Fixture::new(backend).await;
    let token_id = f.clock.new_id();
    let ctx = token_ctx(token_id, "ci");
    let acme = f.tenant.id;

    // Tenant.
    let beta = Tenant {
        id: f.clock.new_id(),
        name: "beta".into(),
        display_name: "Beta".into(),
        created_at: f.clock.now(),
    };
    let want = Want {
        tenant_id: beta.id,
        action: "tenant.create",
        target_type: "tenant",
        target_id: beta.id.to_string(),
        outcome: Outcome::Success,
        reason: None,
    };
    let (_, ev) = step(&f, Command::CreateTenant(beta.clone()), &ctx, &[want]).await;
    assert_eq!(
        (&ev[0].details["name"], &ev[0].details["display_name"]),
        (&json!("beta"), &json!("Beta"))
    );

    // Admin token.
    let token = AdminToken {
        id: token_id,
        tenant_id: acme,
        name: "ci".into(),
        role: Role::Admin,
        platform: false,
        hint: "idvat_1234…".into(),
        created_at: f.clock.now(),
        created_by: "bootstrap".into(),
        expires_at: None,
        revoked_at: None,
    };
    let cmd = Command::CreateAdminToken {
        token: token.clone(),
        secret_hash: [1; 32],
    };
    let want = Want {
        tenant_id: acme,
        action: "admin_token.create",
        target_type: "admin_token",
        target_id: token.id.to_string(),
        outcome: Outcome::Success,
        reason: None,
    };
    step(&f, cmd, &ctx, &[want]).await.0.unwrap();

    // One agent.
    let a = f.agent_with(
        "a",
        NewAgent {
            environment: Some(Environment::Dev),
            class: Some("crawler".into()),
            ..NewAgent::default()
        },
    );
    let created = |a: &idv_core::agent::Agent| Want {
        tenant_id: acme,
        action: "agent.create",
        target_type: "agent",
        target_id: a.id.to_string(),
        outcome: Outcome::Success,
        reason: None,
    };
    let cmd = Command::CreateAgents {
        tenant_id: acme,
        agents: vec![a.clone()],
    };
    let (_, ev) = step(&f, cmd, &ctx, &[created(&a)]).await;
    let d = &ev[0].details;
    assert_eq!(
        (
            &d["name"],
            &d["owner"],
            &d["environment"],
            &d["class"],
            &d["expires_at"]
        ),
        (
            &json!("a"),
            &json!(a.owner),
            &json!("dev"),
            &json!("crawler"),
            &json!(null)
        )
    );

    // Several agents: one event each, in request order.
    let (b, c) = (f.new_agent("b"), f.new_agent("c"));
    let ttl = f.agent_with(
        "ttl",
        NewAgent {
            ttl_seconds: Some(5),
            ..NewAgent::default()
        },
    );
    let cmd = Command::CreateAgents {
        tenant_id: acme,
        agents: vec![b.clone(), c.clone(), ttl.clone()],
    };
    let (_, ev) = step(&f, cmd, &ctx, &[created(&b), created(&c), created(&ttl)]).await;
    assert_eq!(ev[2].details["expires_at"], json!(ttl.expires_at.unwrap().to_rfc3339()));

    // Update.
    let cmd = Command::UpdateAgent {
        tenant_id: acme,
        id: a.id,
        if_match: Some(1),
        changes: idv_core::agent::AgentChanges {
            purpose: Some("new purpose".into()),
            ..Default::default()
        },
    };
    let want = Want {
        action: "agent.update",
        ..created(&a)
    };
    let (_, ev) = step(&f, cmd, &ctx, &[want]).await;
    assert_eq!(
        (&ev[0].details["changed"], &ev[0].details["version"]),
        (&json!(["purpose"]), &json!(2))
    );

    // Transition, with its reason.
    let cmd = Command::TransitionAgent {
        tenant_id: acme,
        id: a.id,
        transition: Transition::Activate,
        reason: "go live".into(),
    };
    let want = Want {
        action: "agent.activate",
        reason: Some("go live"),
        ..created(&a)
    };
    step(&f, cmd, &ctx, &[want]).await.0.unwrap();

    // A refused transition: one failure event with the reason and the error.
    let cmd = Command::TransitionAgent {
        tenant_id: acme,
        id: a.id,
        transition: Transition::Resume,
        reason: "try".into(),
    };
    let want = Want {
        action: "agent.resume",
        outcome: Outcome::Failure,
        reason: Some("try"),
        ..created(&a)
    };
    let (res, _) = step(&f, cmd, &ctx, &[want]).await;
    assert!(res.is_err());

    // Leasing jobs is bookkeeping: no event.
    f.clock.advance_secs(10);
    let system = Context {
        actor: Actor::system("jobs"),
        request_id: None,
        note: None,
    };
    let cmd = Command::ClaimJobs {
        lease_secs: 60,
        limit: 10,
        kinds: idv_store::JobKinds::All,
    };
    let (res, _) = step(&f, cmd, &system, &[]).await;
    let Ok(Applied::Jobs(jobs)) = res else {
        panic!("{res:?}")
    };
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].kind.as_str(), jobs[0].target_id.clone()),
        (JOB_EXPIRE_AGENT, ttl.id.to_string())
    );

    // Expiry retires the agent as the system.
    let want = Want {
        action: "agent.retire",
        reason: Some("time to live ended"),
        ..created(&ttl)
    };
    let (_, ev) = step(&f, Command::ExpireAgent(jobs[0].clone()), &system, &[want]).await;
    assert_eq!(ev[0].actor.kind, ActorKind::System);
    assert_eq!(ev[0].details["cause"], "ttl");

    // Revocation.
    let cmd = Command::RevokeAdminToken {
        tenant_id: acme,
        id: token.id,
    };
    let want = Want {
        tenant_id: acme,
        action: "admin_token.revoke",
        target_type: "admin_token",
        target_id: token.id.to_string(),
        outcome: Outcome::Success,
        reason: None,
    };
    step(&f, cmd, &ctx, &[want]).await.0.unwrap();

    // A recorded event is stored verbatim, whatever its details hold.
    let draft = Draft {
        tenant_id: beta.id,
        actor: ctx.actor.clone(),
        action: Action::AuthzDecision,
        target_type: TargetType::Agent.into(),
        target_id: "späť/ünïcødé 🚀 \"quoted\" \\ back".into(),
        outcome: Outcome::Denied,
        reason: Some("line\nbreak\ttab".into()),
        request_id: ctx.request_id.clone(),
        details: json!({
            "z": [1, 2.5, -0.0, 1e300, u64::MAX, i64::MIN, null, true],
            "a": { "nested": { "deep": "ü\u{0001}\u{2028}" }, "empty": {} },
            "request": ctx.note.clone(),
        }),
    };
    let want = Want {
        tenant_id: beta.id,
        action: "authz.decision",
        target_type: "agent",
        target_id: draft.target_id.clone(),
        outcome: Outcome::Denied,
        reason: Some("line\nbreak\ttab"),
    };
    let (_, ev) = step(&f, Command::Record(draft.clone()), &ctx, &[want]).await;
    assert_eq!(ev[0].details, draft.details);

    // Everything above is one unbroken chain.
    let events = chain(&f.store).await;
    assert_eq!(events.len(), 13);
}

/// The events of `all` that `filter` selects (the model).
fn model(all: &[Event], filter: &AuditFilter) -> Vec<i64> {
    let ordered: Vec<&Event> = if filter.newest_first {
        all.iter().rev().collect()
    } else {
        all.iter().collect()
    };
    ordered
        .into_iter()
        .filter(|e| e.seq > filter.after_seq)
        .filter(|e| filter.before_seq.is_none_or(|b| e.seq < b))
        .filter(|e| filter.actor_name.as_ref().is_none_or(|n| &e.actor.name == n))
        .filter(|e| filter.tenant_id.is_none_or(|t| e.tenant_id == t))
        .filter(|e| filter.action.as_ref().is_none_or(|a| &e.action == a))
        .filter(|e| filter.target_id.as_ref().is_none_or(|t| &e.target_id == t))
        .filter(|e| filter.actor_token_id.is_none_or(|t| e.actor.token_id == Some(t)))
        .filter(|e| filter.outcome.is_none_or(|o| e.outcome == o))
        .filter(|e| filter.since.is_none_or(|t| e.time >= t))
        .filter(|e| filter.until.is_none_or(|t| e.time < t))
        .take(usize::try_from(filter.limit).unwrap())
        .map(|e| e.seq)
        .collect()
}

async fn every_audit_filter_narrows(backend: Backend) {
    let f = Fixture::new(backend).await;
    let beta = crate::tenant(&f.store, "beta").await;
    let (t1, t2) = (f.clock.new_id(), f.clock.new_id());
    let contexts = [token_ctx(t1, "one"), token_ctx(t2, "two"), crate::ctx()];
    let mut ids = Vec::new();
    for i in 0..24usize {
        f.clock.advance_secs(1);
        let tenant_id = if i % 3 == 0 { beta.id } else { f.tenant.id };
        let ctx = contexts[i % 3].clone();
        let a = crate::agent_in(&f.store, tenant_id, &format!("agent-{i}"), NewAgent::default());
        ids.push((tenant_id, a.id));
        f.store
            .execute(
                Command::CreateAgents {
                    tenant_id,
                    agents: vec![a],
                },
                ctx.clone(),
            )
            .await
            .unwrap();
        if i % 2 == 0 {
            let (tenant_id, id) = ids[i / 2];
            let cmd = Command::TransitionAgent {
                tenant_id,
                id,
                transition: if i % 4 == 0 {
                    Transition::Activate
                } else {
                    Transition::Suspend
                },
                reason: "r".into(),
            };
            let _ = f.store.execute(cmd, ctx).await;
        }
    }
    let all = chain(&f.store).await;
    let first = all[0].time;
    let tenants = [Some(f.tenant.id), Some(beta.id), Some(f.clock.new_id())];
    let mut filters = vec![AuditFilter::default()];
    for t in tenants {
        filters.push(AuditFilter {
            tenant_id: t,
            ..Default::default()
        });
    }
    for action in [
        "agent.create",
        "agent.activate",
        "agent.suspend",
        "tenant.create",
        "nope",
    ] {
        filters.push(AuditFilter {
            action: Some(action.into()),
            ..Default::default()
        });
    }
    for target in [ids[0].1.to_string(), ids[5].1.to_string(), "nope".into()] {
        filters.push(AuditFilter {
            target_id: Some(target),
            ..Default::default()
        });
    }
    for token in [t1, t2, f.clock.new_id()] {
        filters.push(AuditFilter {
            actor_token_id: Some(token),
            ..Default::default()
        });
    }
    for outcome in [Outcome::Success, Outcome::Failure, Outcome::Denied] {
        filters.push(AuditFilter {
            outcome: Some(outcome),
            ..Default::default()
        });
    }
    for secs in [0, 5, 12, 100] {
        let t = first.plus_secs(secs);
        filters.push(AuditFilter {
            since: Some(t),
            ..Default::default()
        });
        filters.push(AuditFilter {
            until: Some(t),
            ..Default::default()
        });
        filters.push(AuditFilter {
            since: Some(first.plus_secs(3)),
            until: Some(t),
            ..Default::default()
        });
    }
    for after in [0, 1, 17, 1000] {
        filters.push(AuditFilter {
            after_seq: after,
            ..Default::default()
        });
    }
    // Newest first, paged backwards, by actor name (the console's search).
    for before in [None, Some(1), Some(20), Some(1000)] {
        for actor_name in [None, Some("one".to_owned()), Some("nobody".to_owned())] {
            filters.push(AuditFilter {
                tenant_id: Some(f.tenant.id),
                before_seq: before,
                actor_name,
                newest_first: true,
                ..Default::default()
            });
        }
    }
    filters.push(AuditFilter {
        tenant_id: Some(f.tenant.id),
        action: Some("agent.create".into()),
        actor_token_id: Some(t2),
        outcome: Some(Outcome::Success),
        since: Some(first.plus_secs(2)),
        until: Some(first.plus_secs(20)),
        after_seq: 3,
        ..Default::default()
    });
    for filter in &mut filters {
        for limit in [1000, 3] {
            filter.limit = limit;
            let want = model(&all, filter);
            let got: Vec<i64> = f
                .store
                .audit_events(filter)
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(got, want, "{filter:?}");
        }
    }
    // The filters are not vacuous.
    let n = |filter: AuditFilter| model(&all, &AuditFilter { limit: 1000, ..filter }).len();
    assert_eq!(
        n(AuditFilter {
            actor_token_id: Some(t1),
            ..Default::default()
        }),
        12
    );
    assert_eq!(
        n(AuditFilter {
            actor_name: Some("one".into()),
            ..Default::default()
        }),
        12
    );
    assert_eq!(
        n(AuditFilter {
            outcome: Some(Outcome::Failure),
            ..Default::default()
        }),
        6
    );
    assert!(
        n(AuditFilter {
            tenant_id: Some(f.tenant.id),
            action: Some("agent.create".into()),
            actor_token_id: Some(t2),
            outcome: Some(Outcome::Success),
            since: Some(first.plus_secs(2)),
            until: Some(first.plus_secs(20)),
            after_seq: 3,
            ..Default::default()
        }) > 2
    );
}

async fn chain_pages_match_the_events(backend: Backend) {
    let f = Fixture::new(backend).await;
    assert_eq!(f.store.audit_chain_page(0, 10).await.unwrap().len(), 1);
    assert_eq!(f.store.audit_chain_page(1, 10).await.unwrap(), []);
    let draft = Draft {
        tenant_id: f.tenant.id,
        actor: Actor {
            kind: ActorKind::AdminToken,
            name: "ünïcødé \"name\"".into(),
            token_id: Some(f.clock.new_id()),
        },
        action: Action::AuthzDecision,
        target_type: TargetKind::Entity("t".into()),
        target_id: "🚀".into(),
        outcome: Outcome::Denied,
        reason: Some("a\nb".into()),
        request_id: None,
        details: json!({ "f": 0.1, "big": u64::MAX, "s": "\u{0}\u{7f}\\/", "arr": [[], {}] }),
    };
    f.store.execute(Command::Record(draft), crate::ctx()).await.unwrap();
    for i in 0..40 {
        f.create_one(&format!("p{i}")).await;
    }
    let all = chain(&f.store).await;
    for size in [1, 7, 1000] {
        let mut paged: Vec<Event> = Vec::new();
        loop {
            let after = paged.last().map_or(0, |e| e.seq);
            let page = f.store.audit_chain_page(after, size).await.unwrap();
            assert!(page.len() <= usize::try_from(size).unwrap());
            if page.is_empty() {
                break;
            }
            paged.extend(page);
        }
        assert_eq!(paged, all, "pages of {size}");
    }
    // From the middle, as a verifier resuming at a checkpoint would.
    assert_eq!(f.store.audit_chain_page(20, 5).await.unwrap(), all[20..25]);
}

/// Every stored event, read both ways; the two must agree.
async fn both_ways(store: &Store) -> Vec<Event> {
    let events = read_chain(store).await;
    let mut packed = Vec::new();
    loop {
        let page = store
            .audit_chain_page(packed.last().map_or(0, |e: &Event| e.seq), 1000)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        packed.extend(page);
    }
    assert_eq!(packed, events, "chain pages and audit_events disagree");
    events
}

async fn tampering_breaks_the_chain_where_it_happened(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create_one("a0").await;
    f.transition(a.id, Transition::Activate).await.unwrap();
    for i in 1..10 {
        f.create_one(&format!("a{i}")).await;
    }
    let original = chain(&f.store).await;
    assert_eq!(original.len(), 12);
    let mut conn = raw(&f.db).await;

    // One altered column at a time; each breaks the chain at that event,
    // and restoring the value mends it.
    let cases: &[(&str, i64)] = &[
        ("UPDATE audit_events SET target_id = 'someone-else' WHERE seq = 4", 4),
        (
            "UPDATE audit_events SET details = '{\"name\":\"evil\"}' WHERE seq = 5",
            5,
        ),
        ("UPDATE audit_events SET details = 'not json' WHERE seq = 5", 5),
        ("UPDATE audit_events SET time = time + 1 WHERE seq = 6", 6),
        ("UPDATE audit_events SET actor_name = 'root' WHERE seq = 7", 7),
        ("UPDATE audit_events SET outcome = 'failure' WHERE seq = 8", 8),
        ("UPDATE audit_events SET reason = NULL WHERE seq = 3", 3),
        ("UPDATE audit_events SET request_id = 'forged' WHERE seq = 1", 1),
        ("UPDATE audit_events SET action = 'agent.delete' WHERE seq = 12", 12),
        ("UPDATE audit_events SET prev_hash = hash WHERE seq = 9", 9),
    ];
    for (sql, seq) in cases {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        let b = verify(&both_ways(&f.store).await).unwrap_err();
        assert_eq!(b.seq, *seq, "{sql}: {b}");
        restore(&mut conn, &original[usize::try_from(seq - 1).unwrap()]).await;
        assert_eq!(chain(&f.store).await, original, "restored after {sql}");
    }

    // An altered event whose own hash was recomputed still breaks the next link.
    let mut forged = original[3].clone();
    forged.target_id = "someone-else".into();
    forged.hash = forged.compute_hash();
    sqlx::query("UPDATE audit_events SET target_id = $1, hash = $2 WHERE seq = 4")
        .bind(forged.target_id.clone())
        .bind(forged.hash.to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
    let b = verify(&both_ways(&f.store).await).unwrap_err();
    assert_eq!(b.seq, 5, "{b}");
    assert!(b.problem.contains("prev_hash"), "{b}");
    restore(&mut conn, &original[3]).await;

    // A deleted event in the middle is reported missing.
    sqlx::query("DELETE FROM audit_events WHERE seq = 7")
        .execute(&mut conn)
        .await
        .unwrap();
    let b = verify(&both_ways(&f.store).await).unwrap_err();
    assert_eq!(b.seq, 7, "{b}");
    assert!(b.problem.contains("missing"), "{b}");
}

/// A stored column that cannot be decoded is reported with the sequence
/// number of its event, by both ways of reading the chain.
async fn a_malformed_column_names_its_event(backend: Backend) {
    let f = Fixture::new(backend).await;
    for i in 0..8 {
        f.create_one(&format!("m{i}")).await;
    }
    let original = chain(&f.store).await;
    let mut conn = raw(&f.db).await;
    let short_hash = match backend {
        Backend::Sqlite => "UPDATE audit_events SET hash = X'0102' WHERE seq = 5",
        Backend::Postgres => "UPDATE audit_events SET hash = '\\x0102'::bytea WHERE seq = 5",
    };
    let mut cases = vec![
        (short_hash, 5, "hash"),
        (
            "UPDATE audit_events SET tenant_id = 'not-a-uuid' WHERE seq = 6",
            6,
            "tenant_id",
        ),
        ("UPDATE audit_events SET outcome = 'maybe' WHERE seq = 7", 7, "outcome"),
    ];
    if backend == Backend::Sqlite {
        // SQLite keeps a text in an integer column: a value of the wrong type.
        cases.push(("UPDATE audit_events SET time = 'yesterday' WHERE seq = 3", 3, "type"));
    }
    for (sql, seq, what) in cases {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        let packed = f.store.audit_chain_page(0, 1000).await.unwrap_err().to_string();
        let rows = f
            .store
            .audit_events(&AuditFilter::default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        for err in [Some(packed), rows.err()].into_iter().flatten() {
            assert!(err.contains(&format!("audit event {seq}:")), "{sql}: {err}");
            assert!(err.contains(what), "{sql}: {err}");
        }
        let e = &original[usize::try_from(seq - 1).unwrap()];
        sqlx::query("UPDATE audit_events SET tenant_id = $1 WHERE seq = $2")
            .bind(e.tenant_id.to_string())
            .bind(seq)
            .execute(&mut conn)
            .await
            .unwrap();
        restore(&mut conn, e).await;
        assert_eq!(chain(&f.store).await, original, "restored after {sql}");
    }
}

/// Writes every column of `e` back into its row.
async fn restore(conn: &mut sqlx::AnyConnection, e: &Event) {
    sqlx::query(
        "UPDATE audit_events SET target_id = $1, details = $2, time = $3, actor_name = $4, outcome = $5, \
         reason = $6, request_id = $7, action = $8, prev_hash = $9, hash = $10 WHERE seq = $11",
    )
    .bind(e.target_id.clone())
    .bind(idv_core::audit::canonical_json(&e.details))
    .bind(e.time.as_micros())
    .bind(e.actor.name.clone())
    .bind(e.outcome.as_str())
    .bind(e.reason.clone())
    .bind(e.request_id.clone())
    .bind(e.action.clone())
    .bind(e.prev_hash.to_vec())
    .bind(e.hash.to_vec())
    .bind(e.seq)
    .execute(&mut *conn)
    .await
    .unwrap();
}
