//! The durable job runner: polls the job table, leases due jobs to this node
//! and runs them. Jobs survive restarts (they are rows); on PostgreSQL the
//! lease (`FOR UPDATE SKIP LOCKED`) gives each due job to exactly one node, and
//! a node that dies mid-job loses its lease so another picks the job up.
//! While the node lives, a heartbeat renews the leases of the jobs it holds,
//! so a lease can be short (a dead node's jobs wait at most about one lease)
//! and still outlast a slow job.
//!
//! Webhook deliveries have a loop of their own ([`deliveries`]): they wait on
//! receivers, so they must never hold up lease revocation, expiry or key
//! rotation, and they are leased only as slots to run them free up.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use idv_store::{Context, Job, JobKinds};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::AppState;

/// Most jobs leased per poll.
const BATCH: i64 = 500;
/// Jobs of a lease run at once.
const CONCURRENCY: usize = 8;
/// How often a node prunes the webhook delivery log.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Prune batches per hour at most.
const PRUNE_STEPS: usize = 100;
/// Webhook deliveries in flight at once on a node. A node leases no more
/// deliveries than it has free slots, so a leased delivery starts at once
/// and a backlog drains as fast as receivers answer.
pub const DELIVERIES_IN_FLIGHT: usize = 16;
/// How often, at most, the delivery loop looks for new events and due
/// deliveries when no slot freed up meanwhile (two cheap reads on an idle
/// node): events reach receivers within this of their commit.
const DELIVERY_POLL: Duration = Duration::from_millis(250);
/// Every job kind but webhook deliveries.
const NOT_DELIVERIES: JobKinds = JobKinds::AllBut(idv_store::JOB_DELIVER_WEBHOOK);

fn ctx() -> Context {
    Context::system("jobs")
}

/// The jobs this node claimed and has not finished, with when their lease
/// was last extended (claimed or renewed).
#[derive(Debug, Default)]
struct Held(Mutex<HashMap<Uuid, (Job, Instant)>>);

impl Held {
    fn add(&self, jobs: &[Job], at: Instant) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.extend(jobs.iter().map(|j| (j.id, (j.clone(), at))));
    }

    fn done(&self, id: Uuid) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    fn all(&self) -> Vec<Job> {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.values().map(|(j, _)| j.clone()).collect()
    }

    fn renewed(&self, jobs: &[Job], at: Instant) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for j in jobs {
            if let Some((_, t)) = m.get_mut(&j.id) {
                *t = at;
            }
        }
    }

    /// Whether the lease of `id` was extended less than `within` ago.
    fn fresh(&self, id: Uuid, within: Duration) -> bool {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.get(&id).is_some_and(|(_, t)| t.elapsed() < within)
    }
}

fn whole_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Runs until `stop` turns true; leases last `lease`.
pub async fn run(state: AppState, every: Duration, lease: Duration, mut stop: watch::Receiver<bool>) {
    let held = Arc::new(Held::default());
    tokio::spawn(heartbeat(state.clone(), held.clone(), lease, stop.clone()));
    let delivering = tokio::spawn(deliveries(
        state.clone(),
        held.clone(),
        every.min(DELIVERY_POLL),
        lease,
        stop.clone(),
    ));
    let mut pruned: Option<tokio::time::Instant> = None;
    loop {
        crate::app::throttle::FailedAuth::flush(&state, false).await;
        // The delivery log's retention and expired one-time `jti`s, hourly
        // on each node (deleting what another node already deleted finds
        // nothing).
        if pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            let jtis = prune_seen_jtis(&state).await;
            if let Err(e) = &jtis {
                tracing::warn!(error = %e, "pruning expired one-time jtis failed; retrying");
            }
            match state.store.prune_webhook_deliveries(ctx()).await {
                Ok(_) if jtis.is_ok() => pruned = Some(tokio::time::Instant::now()),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning the webhook delivery log failed; retrying"),
            }
        }
        if let Err(e) = run_due(&state, &held, lease, &stop).await {
            tracing::warn!(error = %e, "job poll failed; retrying");
        }
        let stopping = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            // Counted refusals are on the record before the node stops.
            crate::app::throttle::FailedAuth::flush(&state, true).await;
            if let Err(e) = delivering.await {
                tracing::warn!(error = %e, "the webhook delivery loop ended abnormally");
            }
            return;
        }
    }
}

/// Renews the leases of the jobs this node holds, every third of a lease,
/// until `stop` turns true: a node that dies stops renewing, and its jobs go
/// to another node when their lease ends, at most `lease` after the last
/// renewal.
async fn heartbeat(state: AppState, held: Arc<Held>, lease: Duration, mut stop: watch::Receiver<bool>) {
    let every = lease / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let jobs = held.all();
        if jobs.is_empty() {
            continue;
        }
        let at = Instant::now();
        match state
            .store
            .renew_job_leases(jobs.clone(), whole_secs(lease), ctx())
            .await
        {
            Ok(_) => held.renewed(&jobs, at),
            Err(e) => tracing::warn!(error = %e, held = jobs.len(), "could not renew job leases; retrying"),
        }
    }
}

/// Deletes expired one-time `jti`s, a bounded batch at a time, until none
/// is left (or [`PRUNE_STEPS`] batches, the rest an hour later).
async fn prune_seen_jtis(state: &AppState) -> Result<(), idv_store::StoreError> {
    for _ in 0..PRUNE_STEPS {
        if state.store.prune_seen_jtis(ctx()).await? == 0 {
            break;
        }
    }
    Ok(())
}

/// Leases and runs due jobs (webhook deliveries aside), batch after batch, until none is due or `stop`
/// turns true (jobs keep coming due under load, so shutdown must not wait
/// for the table to empty; leased jobs not run go back when their lease
/// ends). Returns how many ran.
async fn run_due(
    state: &AppState,
    held: &Arc<Held>,
    lease: Duration,
    stop: &watch::Receiver<bool>,
) -> Result<usize, idv_store::StoreError> {
    let mut ran = 0;
    loop {
        if *stop.borrow() || !state.store.has_due_jobs(state.clock.now(), NOT_DELIVERIES).await? {
            return Ok(ran);
        }
        let claimed = Instant::now();
        let jobs = state
            .store
            .claim_jobs(whole_secs(lease), BATCH, NOT_DELIVERIES, ctx())
            .await?;
        if jobs.is_empty() {
            return Ok(ran);
        }
        ran += jobs.len();
        held.add(&jobs, claimed);
        // Concurrently, so their writes share group commits; each job is
        // its own unit of work and fails alone. The heartbeat keeps the
        // batch leased while it waits; a job whose lease was last extended
        // half a lease ago (renewals failing) is left alone: started now, it
        // could still run when the lease ends and another node claims it.
        // It is claimed again then.
        let fresh = lease / 2;
        futures_util::stream::iter(jobs)
            .for_each_concurrent(CONCURRENCY, |job| async move {
                let id = job.id;
                if held.fresh(id, fresh) {
                    run_one(state, job).await;
                }
                held.done(id);
            })
            .await;
    }
}

/// The delivery loop: turns new audit events into deliveries and starts due
/// deliveries in free slots, every `every` and whenever a delivery ends,
/// until `stop` turns true (deliveries under way finish on their own).
async fn deliveries(
    state: AppState,
    held: Arc<Held>,
    every: Duration,
    lease: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let freed = Arc::new(Notify::new());
    loop {
        if let Err(e) = crate::app::webhooks::dispatch(&state).await {
            tracing::warn!(error = %e, "webhook dispatch failed; retrying");
        }
        if let Err(e) = start_deliveries(&state, &held, lease, &freed).await {
            tracing::warn!(error = %e, "webhook delivery poll failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            // A permit stored by `notify_one` is not lost if no one waited.
            _ = freed.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Leases as many due deliveries as there are free slots and starts each in
/// one, until the slots are full or none is due. Returns how many started.
async fn start_deliveries(
    state: &AppState,
    held: &Arc<Held>,
    lease: Duration,
    freed: &Arc<Notify>,
) -> Result<usize, idv_store::StoreError> {
    const DELIVERIES: JobKinds = JobKinds::Only(idv_store::JOB_DELIVER_WEBHOOK);
    let mut started = 0;
    loop {
        let free = state.delivery_slots.available_permits();
        if free == 0 || !state.store.has_due_jobs(state.clock.now(), DELIVERIES).await? {
            return Ok(started);
        }
        let claimed = Instant::now();
        let limit = i64::try_from(free).unwrap_or(i64::MAX);
        let jobs = state
            .store
            .claim_jobs(whole_secs(lease), limit, DELIVERIES, ctx())
            .await?;
        if jobs.is_empty() {
            return Ok(started);
        }
        // The heartbeat renews a delivery's lease while its receiver answers.
        held.add(&jobs, claimed);
        for job in jobs {
            // INVARIANT: only this loop takes slots, and it leased no more
            // jobs than were free, so this does not wait.
            let Ok(slot) = state.delivery_slots.clone().acquire_owned().await else {
                return Ok(started);
            };
            let (state, freed, held) = (state.clone(), freed.clone(), held.clone());
            tokio::spawn(async move {
                let id = job.id;
                run_one(&state, job).await;
                held.done(id);
                drop(slot);
                freed.notify_one();
            });
            started += 1;
        }
    }
}

async fn run_one(state: &AppState, job: Job) {
    let res = match job.kind.as_str() {
        idv_store::JOB_EXPIRE_AGENT => state
            .store
            .expire_agent(job.clone(), ctx())
            .await
            .map_err(|e| e.to_string()),
        idv_store::JOB_RETIRE_CREDENTIAL => state
            .store
            .retire_credential(job.clone(), ctx())
            .await
            .map_err(|e| e.to_string()),
        idv_store::JOB_ROTATE_CREDENTIAL => crate::app::rotation::rotate_due(state, job.clone(), ctx())
            .await
            .map_err(|e| e.to_string()),
        idv_store::JOB_REVOKE_LEASE => crate::app::leases::revoke_due(state, job.clone())
            .await
            .map_err(|e| e.to_string()),
        idv_store::JOB_SWEEP_TARGET => sweep(state, job.clone()).await,
        idv_store::JOB_ROTATE_SIGNING_KEYS => crate::app::keys::rotate_due(state, job.clone(), ctx())
            .await
            .map_err(|e| e.to_string()),
        idv_store::JOB_DELIVER_WEBHOOK => crate::app::webhooks::deliver(state, job.clone())
            .await
            .map_err(|e| e.to_string()),
        kind => Err(format!("unknown job kind `{kind}` (a newer node's job?)")),
    };
    match res {
        Ok(()) => {
            state.metrics.jobs_run.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => {
            state.metrics.jobs_failed.fetch_add(1, Ordering::Relaxed);
            let run_at = state.clock.now().plus_secs(backoff_secs(job.attempts));
            tracing::warn!(kind = %job.kind, job = %job.id, attempts = job.attempts, %error, "job failed; retrying later");
            // If even this fails, the lease runs out and the job is claimed again.
            if let Err(e) = state.store.retry_job(job, run_at, error, ctx()).await {
                tracing::warn!(error = %e, "could not reschedule a failed job; its lease will expire");
            }
        }
    }
}

/// Sweeps a target for orphaned roles and comes back later; a target
/// deleted meanwhile ends the job.
async fn sweep(state: &AppState, job: Job) -> Result<(), String> {
    match crate::app::leases::sweep(state, job.tenant_id, &job.target_id, ctx()).await {
        Ok(_) => {}
        Err(crate::app::AppError::Store(idv_store::StoreError::NotFound { .. })) => {
            return state.store.finish_job(job, ctx()).await.map_err(|e| e.to_string());
        }
        Err(e) => return Err(e.to_string()),
    }
    let run_at = state.clock.now().plus_secs(idv_store::SWEEP_EVERY_SECS);
    state
        .store
        .reschedule_job(job, run_at, ctx())
        .await
        .map_err(|e| e.to_string())
}

/// Seconds before a job that failed `attempts` times runs again: 5 s,
/// doubling, at most an hour.
fn backoff_secs(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    (5_i64 << doublings).min(3600)
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let got: Vec<i64> = [0, 1, 2, 3, 4, 10, 1_000].map(backoff_secs).to_vec();
        assert_eq!(got, vec![5, 5, 10, 20, 40, 2560, 3600]);
    }
}
