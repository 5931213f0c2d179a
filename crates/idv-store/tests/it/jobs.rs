//! Durable jobs: TTL agents schedule their expiry, due jobs are leased,
//! leases are honoured, each job is claimed by exactly one claimer, and
//! expiry retires the agent as the system.

use std::collections::HashSet;

use idv_core::Clock as _;
use idv_core::agent::{Agent, NewAgent};
use idv_core::audit::{Actor, ActorKind, Outcome};
use idv_core::lifecycle::{Status, Transition};
use idv_store::{Applied, Command, Context, JOB_EXPIRE_AGENT, Job, JobKinds, Store};
use idv_testkit::{Backend, backend_tests};

use crate::{Fixture, chain};

backend_tests!(
    ttl_agents_schedule_an_expire_job,
    due_jobs_are_leased_once_per_lease,
    expiry_retires_the_agent_as_the_system,
    retiring_an_agent_removes_its_expire_job,
    each_job_is_claimed_exactly_once,
    a_lapsed_claim_neither_finishes_nor_reschedules,
    claims_and_due_checks_select_kinds,
    expired_one_time_jtis_are_pruned,
);

/// The job runner's context.
fn jobs_ctx() -> Context {
    Context {
        actor: Actor::system("jobs"),
        request_id: None,
        note: None,
    }
}

async fn claim(store: &Store, lease_secs: i64, limit: i64) -> Vec<Job> {
    match store
        .execute(
            Command::ClaimJobs {
                lease_secs,
                limit,
                kinds: JobKinds::All,
            },
            jobs_ctx(),
        )
        .await
        .unwrap()
    {
        Applied::Jobs(j) => {
            assert!(
                j.len() <= usize::try_from(limit).unwrap(),
                "claimed more than the limit"
            );
            j
        }
        other => panic!("{other:?}"),
    }
}

async fn expire(store: &Store, job: Job) -> Applied {
    store.execute(Command::ExpireAgent(job), jobs_ctx()).await.unwrap()
}

fn ephemeral(f: &Fixture, name: &str, ttl: u64) -> Agent {
    f.agent_with(
        name,
        NewAgent {
            ttl_seconds: Some(ttl),
            ..NewAgent::default()
        },
    )
}

async fn ttl_agents_schedule_an_expire_job(backend: Backend) {
    let f = Fixture::new(backend).await;
    f.create_one("forever").await;
    let a = f.create(vec![ephemeral(&f, "jit", 60)]).await.unwrap().remove(0);
    assert_eq!(a.expires_at, Some(f.clock.now().plus_secs(60)));
    let mut conn = crate::raw(&f.db).await;
    let rows: Vec<(String, String, String, i64, Option<i64>, i64)> =
        sqlx::query_as("SELECT tenant_id, kind, target_id, run_at, locked_until, attempts FROM jobs")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [(
            f.tenant.id.to_string(),
            JOB_EXPIRE_AGENT.to_owned(),
            a.id.to_string(),
            a.expires_at.unwrap().as_micros(),
            None,
            0
        )]
    );
    // Many at once: one job each.
    let batch: Vec<_> = (0..50).map(|i| ephemeral(&f, &format!("e{i}"), 30 + i)).collect();
    f.create(batch).await.unwrap();
    assert_eq!(f.count("SELECT COUNT(*) FROM jobs").await, 51);
}

async fn due_jobs_are_leased_once_per_lease(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create(vec![ephemeral(&f, "jit", 60)]).await.unwrap().remove(0);
    let head = f.head().await;
    f.clock.advance_secs(59);
    assert!(claim(&f.store, 30, 10).await.is_empty(), "not due yet");
    f.clock.advance_secs(1);
    let jobs = claim(&f.store, 30, 10).await;
    assert_eq!(jobs.len(), 1, "due at exactly its run time");
    let job = &jobs[0];
    assert_eq!(
        (
            job.kind.as_str(),
            job.target_id.clone(),
            job.tenant_id,
            job.run_at,
            job.attempts
        ),
        (
            JOB_EXPIRE_AGENT,
            a.id.to_string(),
            f.tenant.id,
            a.expires_at.unwrap(),
            1
        )
    );
    // Leased: nobody else gets it until the lease has passed.
    assert!(claim(&f.store, 30, 10).await.is_empty());
    f.clock.advance_secs(30);
    assert!(
        claim(&f.store, 30, 10).await.is_empty(),
        "the lease lasts through its end"
    );
    f.clock.advance_secs(1);
    let again = claim(&f.store, 30, 10).await;
    assert_eq!(again.len(), 1, "a lapsed lease is claimed again");
    assert_eq!((again[0].id, again[0].attempts), (job.id, 2));
    // Leasing writes no audit events.
    assert_eq!(f.head().await, head);

    // The limit is honoured; no job is handed out twice.
    let many: Vec<_> = (0..30).map(|i| ephemeral(&f, &format!("m{i}"), 1)).collect();
    f.create(many).await.unwrap();
    f.clock.advance_secs(1);
    let mut seen = HashSet::new();
    for want in [7, 7, 7, 7, 2, 0] {
        let got = claim(&f.store, 600, 7).await;
        assert_eq!(got.len(), want);
        for j in got {
            assert!(seen.insert(j.id), "claimed twice: {j:?}");
        }
    }
}

async fn expiry_retires_the_agent_as_the_system(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create(vec![ephemeral(&f, "jit", 60)]).await.unwrap().remove(0);
    let b = f
        .create(vec![ephemeral(&f, "jit-suspended", 60)])
        .await
        .unwrap()
        .remove(0);
    f.transition(b.id, Transition::Activate).await.unwrap();
    f.transition(b.id, Transition::Suspend).await.unwrap();
    f.clock.advance_secs(61);
    let jobs = claim(&f.store, 60, 10).await;
    assert_eq!(jobs.len(), 2);
    let head = f.head().await;
    for job in jobs.clone() {
        let Applied::Agent(done) = expire(&f.store, job).await else {
            panic!("expiry returns the agent")
        };
        assert_eq!(done.status, Status::Retired);
        assert_eq!(done.status_changed_by, "system:jobs");
        assert_eq!(done.status_reason.as_deref(), Some("time to live ended"));
        assert_eq!(done.status_changed_at, f.clock.now());
    }
    for id in [a.id, b.id] {
        let now = f.store.agent(f.tenant.id, id).await.unwrap().unwrap();
        assert_eq!(now.status, Status::Retired);
    }
    let events = f.events_after(head).await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.action, "agent.retire");
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.actor.kind, ActorKind::System);
        assert_eq!(e.actor.name, "jobs");
        assert_eq!(e.details["cause"], "ttl");
        assert_eq!(e.details["to"], "retired");
    }
    assert_eq!(events[1].details["from"], "suspended");
    assert_eq!(f.count("SELECT COUNT(*) FROM jobs").await, 0, "done jobs are removed");

    // Running a job again (a lapsed lease run twice) changes nothing.
    let head = f.head().await;
    expire(&f.store, jobs[0].clone()).await;
    assert_eq!(f.head().await, head);
    f.clock.advance_secs(3600);
    assert!(claim(&f.store, 60, 10).await.is_empty());
    chain(&f.store).await;
}

async fn retiring_an_agent_removes_its_expire_job(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create(vec![ephemeral(&f, "early", 60)]).await.unwrap().remove(0);
    let b = f.create(vec![ephemeral(&f, "late", 60)]).await.unwrap().remove(0);
    let target = |id: uuid::Uuid| format!("SELECT COUNT(*) FROM jobs WHERE target_id = '{id}'");
    assert_eq!(f.count(&target(a.id)).await, 1);
    f.transition(a.id, Transition::Retire).await.unwrap();
    assert_eq!(f.count(&target(a.id)).await, 0);
    assert_eq!(f.count(&target(b.id)).await, 1, "other agents' jobs stay");
    // Suspending does not cancel expiry.
    f.transition(b.id, Transition::Activate).await.unwrap();
    f.transition(b.id, Transition::Suspend).await.unwrap();
    assert_eq!(f.count(&target(b.id)).await, 1);
    f.clock.advance_secs(61);
    let jobs = claim(&f.store, 60, 10).await;
    assert_eq!(
        jobs.iter().map(|j| j.target_id.clone()).collect::<Vec<_>>(),
        [b.id.to_string()]
    );

    // Retired while its job is leased: running the job then does nothing.
    f.transition(b.id, Transition::Retire).await.unwrap();
    let head = f.head().await;
    expire(&f.store, jobs[0].clone()).await;
    assert_eq!(f.head().await, head, "no second retirement");
    let now = f.store.agent(f.tenant.id, b.id).await.unwrap().unwrap();
    assert_eq!(
        now.status_changed_by, "system:test",
        "retired by the operator, not by expiry"
    );
    chain(&f.store).await;
}

async fn each_job_is_claimed_exactly_once(backend: Backend) {
    let f = Fixture::new(backend).await;
    let agents: Vec<_> = (0..1_000).map(|i| ephemeral(&f, &format!("e{i}"), 10)).collect();
    f.create(agents.clone()).await.unwrap();
    f.clock.advance_secs(11);
    // Two nodes on PostgreSQL; one SQLite file has one node, so there the
    // claimers share it.
    let nodes = match backend {
        Backend::Postgres => vec![f.store.clone(), f.second_node().await],
        Backend::Sqlite => vec![f.store.clone()],
    };
    let head = f.head().await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = nodes[i % nodes.len()].clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let jobs = claim(&store, 300, 13).await;
                    if jobs.is_empty() {
                        return mine;
                    }
                    for job in jobs {
                        mine.push(job.id);
                        expire(&store, job).await;
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a job was claimed twice");
    assert_eq!(all.len(), 1_000, "every job was claimed");
    assert_eq!(f.count("SELECT COUNT(*) FROM jobs").await, 0);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM agents WHERE status = 'retired'").await,
        1_000
    );
    let events = f.events_after(head).await;
    let retired: HashSet<_> = events
        .iter()
        .filter(|e| e.action == "agent.retire")
        .map(|e| e.target_id.clone())
        .collect();
    assert_eq!(events.len(), 1_000, "one retirement per agent");
    assert_eq!(retired.len(), 1_000);
    chain(&nodes[nodes.len() - 1]).await;
}

/// The claim count fences job bookkeeping: a worker whose lease lapsed, and
/// whose job another worker claimed since, changes nothing.
async fn a_lapsed_claim_neither_finishes_nor_reschedules(backend: Backend) {
    let f = Fixture::new(backend).await;
    f.create(vec![ephemeral(&f, "jit", 1)]).await.unwrap();
    f.clock.advance_secs(1);
    let lapsed = claim(&f.store, 30, 10).await.remove(0);
    f.clock.advance_secs(31);
    let current = claim(&f.store, 30, 10).await.remove(0);
    assert_eq!((current.id, current.attempts), (lapsed.id, lapsed.attempts + 1));
    let head = f.head().await;
    let later = f.clock.now().plus_secs(3_600);
    let retry = |job: Job| Command::RetryJob {
        job,
        run_at: later,
        error: "target down".into(),
    };
    f.store.execute(retry(lapsed.clone()), jobs_ctx()).await.unwrap();
    f.store.execute(Command::FinishJob(lapsed), jobs_ctx()).await.unwrap();
    assert_eq!(
        f.count("SELECT COUNT(*) FROM jobs").await,
        1,
        "the lapsed claim finished the job"
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM jobs WHERE last_error IS NULL").await,
        1,
        "the lapsed claim rescheduled the job"
    );
    assert_eq!(f.head().await, head, "the lapsed claim's retry was audited");
    // The current claim's retry and finish apply.
    f.store.execute(retry(current.clone()), jobs_ctx()).await.unwrap();
    assert_eq!(
        f.count("SELECT COUNT(*) FROM jobs WHERE last_error = 'target down'")
            .await,
        1
    );
    let events = f.events_after(head).await;
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["job.retry"]
    );
    f.store.execute(Command::FinishJob(current), jobs_ctx()).await.unwrap();
    assert_eq!(f.count("SELECT COUNT(*) FROM jobs").await, 0);
}

/// A claim (and the cheap due check before it) takes only the kinds asked
/// for: the webhook delivery loop leases deliveries, the job loop the rest.
async fn claims_and_due_checks_select_kinds(backend: Backend) {
    let f = Fixture::new(backend).await;
    f.create(vec![ephemeral(&f, "short", 1)]).await.unwrap();
    f.clock.advance_secs(1);
    let now = f.clock.now();
    let other = JobKinds::Only("webhook.deliver");
    assert!(!f.store.has_due_jobs(now, other).await.unwrap());
    assert!(
        f.store
            .has_due_jobs(now, JobKinds::AllBut("webhook.deliver"))
            .await
            .unwrap()
    );
    assert!(
        f.store
            .has_due_jobs(now, JobKinds::Only(JOB_EXPIRE_AGENT))
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .has_due_jobs(now, JobKinds::AllBut(JOB_EXPIRE_AGENT))
            .await
            .unwrap()
    );
    let take = |kinds| Command::ClaimJobs {
        lease_secs: 60,
        limit: 10,
        kinds,
    };
    let Applied::Jobs(none) = f.store.execute(take(other), jobs_ctx()).await.unwrap() else {
        panic!("not a claim")
    };
    assert!(none.is_empty());
    let Applied::Jobs(got) = f
        .store
        .execute(take(JobKinds::AllBut("webhook.deliver")), jobs_ctx())
        .await
        .unwrap()
    else {
        panic!("not a claim")
    };
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, JOB_EXPIRE_AGENT);
    assert!(!f.store.has_due_jobs(now, JobKinds::All).await.unwrap(), "leased");
}

/// One-time `jti`s (client assertions, DPoP proofs) are kept while they
/// could be replayed and pruned after, so the table does not grow with
/// traffic; an unexpired one is still refused.
async fn expired_one_time_jtis_are_pruned(backend: Backend) {
    let f = Fixture::new(backend).await;
    let issue = |once: Vec<(String, idv_core::Timestamp)>| Command::IssueToken {
        event: idv_core::audit::Draft {
            tenant_id: f.tenant.id,
            actor: Actor::system("test"),
            action: idv_core::audit::Action::TokenIssue,
            target_type: idv_core::audit::TargetType::Token.into(),
            target_id: "t".into(),
            outcome: Outcome::Success,
            reason: None,
            request_id: None,
            details: serde_json::json!({}),
        },
        once,
    };
    let now = f.clock.now();
    let keys = vec![
        ("short".to_owned(), now.plus_secs(10)),
        ("long".to_owned(), now.plus_secs(100)),
    ];
    f.store.execute(issue(keys), jobs_ctx()).await.unwrap();
    let prune = || async {
        match f.store.execute(Command::PruneSeenJtis, jobs_ctx()).await.unwrap() {
            Applied::Count(n) => n,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(prune().await, 0, "nothing expired yet");
    f.clock.advance_secs(11);
    assert_eq!(prune().await, 1);
    let again = f
        .store
        .execute(issue(vec![("long".into(), now.plus_secs(100))]), jobs_ctx())
        .await;
    assert!(matches!(again, Err(idv_store::StoreError::Replayed(k)) if k == "long"));
    f.clock.advance_secs(90);
    assert_eq!(prune().await, 1);
    assert_eq!(prune().await, 0);
}
