//! The durable job runner: polls the job table, leases due jobs to this node
//! and runs them. Jobs survive restarts (they are rows); on PostgreSQL the
//! lease (`FOR UPDATE SKIP LOCKED`) gives each due job to exactly one node, and
//! a node that dies mid-job loses its lease so another picks the job up.
//! While the node lives, a heartbeat renews the leases of the jobs it holds,
//! so a lease can be short (a dead node's jobs wait at most about one lease)
//! and still outlast a slow job.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use idv_store::{Applied, Command, Context, Job};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::AppState;

/// Most jobs leased per poll.
const BATCH: i64 = 500;
/// Jobs of a lease run at once.
const CONCURRENCY: usize = 8;
/// How often a node prunes the webhook delivery log.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Webhook deliveries in flight at once on a node. They run beside the
/// batch, not in it, so slow receivers (up to the delivery timeout each)
/// never hold up lease revocation, expiry or key rotation; a delivery that
/// finds no free slot stays leased and is claimed again when its lease ends.
pub const DELIVERIES_IN_FLIGHT: usize = 16;

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
    let mut pruned: Option<tokio::time::Instant> = None;
    loop {
        crate::app::throttle::FailedAuth::flush(&state, false).await;
        // Webhook deliveries first, so those it makes run in this poll.
        if let Err(e) = crate::app::webhooks::dispatch(&state).await {
            tracing::warn!(error = %e, "webhook dispatch failed; retrying");
        }
        // The delivery log's retention, hourly on each node (deleting what
        // another node already deleted finds nothing).
        if pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            match state.store.execute(Command::PruneWebhookDeliveries, ctx()).await {
                Ok(_) => pruned = Some(tokio::time::Instant::now()),
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
            _ = stop.wait_for(|s| *s) => return,
        }
        let jobs = held.all();
        if jobs.is_empty() {
            continue;
        }
        let at = Instant::now();
        let renew = Command::RenewJobLeases {
            jobs: jobs.clone(),
            lease_secs: whole_secs(lease),
        };
        match state.store.execute(renew, ctx()).await {
            Ok(_) => held.renewed(&jobs, at),
            Err(e) => tracing::warn!(error = %e, held = jobs.len(), "could not renew job leases; retrying"),
        }
    }
}

/// Leases and runs due jobs, batch after batch, until none is due or `stop`
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
        if *stop.borrow() || !state.store.has_due_jobs(state.clock.now()).await? {
            return Ok(ran);
        }
        let claimed = Instant::now();
        let jobs = match state
            .store
            .execute(
                Command::ClaimJobs {
                    lease_secs: whole_secs(lease),
                    limit: BATCH,
                },
                ctx(),
            )
            .await?
        {
            Applied::Jobs(j) => j,
            _ => Vec::new(),
        };
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
                if !held.fresh(id, fresh) {
                    held.done(id);
                    return;
                }
                if job.kind == idv_store::JOB_DELIVER_WEBHOOK {
                    if let Ok(slot) = state.delivery_slots.clone().try_acquire_owned() {
                        let (state, held) = (state.clone(), held.clone());
                        tokio::spawn(async move {
                            run_one(&state, job).await;
                            held.done(id);
                            drop(slot);
                        });
                    } else {
                        held.done(id);
                    }
                    return;
                }
                run_one(state, job).await;
                held.done(id);
            })
            .await;
    }
}

async fn run_one(state: &AppState, job: Job) {
    let cmd = match job.kind.as_str() {
        idv_store::JOB_EXPIRE_AGENT => Some(Command::ExpireAgent(job.clone())),
        idv_store::JOB_RETIRE_CREDENTIAL => Some(Command::RetireCredential(job.clone())),
        _ => None,
    };
    let res = match (cmd, job.kind.as_str()) {
        (Some(cmd), _) => state
            .store
            .execute(cmd, ctx())
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        (None, idv_store::JOB_ROTATE_CREDENTIAL) => crate::app::rotation::rotate_due(state, job.clone(), ctx())
            .await
            .map_err(|e| e.to_string()),
        (None, idv_store::JOB_REVOKE_LEASE) => crate::app::leases::revoke_due(state, job.clone())
            .await
            .map_err(|e| e.to_string()),
        (None, idv_store::JOB_SWEEP_TARGET) => sweep(state, job.clone()).await,
        (None, idv_store::JOB_ROTATE_SIGNING_KEYS) => crate::app::keys::rotate_due(state, job.clone(), ctx())
            .await
            .map_err(|e| e.to_string()),
        (None, idv_store::JOB_DELIVER_WEBHOOK) => crate::app::webhooks::deliver(state, job.clone())
            .await
            .map_err(|e| e.to_string()),
        (None, kind) => Err(format!("unknown job kind `{kind}` (a newer node's job?)")),
    };
    match res {
        Ok(()) => {
            state.metrics.jobs_run.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => {
            state.metrics.jobs_failed.fetch_add(1, Ordering::Relaxed);
            let run_at = state.clock.now().plus_secs(backoff_secs(job.attempts));
            tracing::warn!(kind = %job.kind, job = %job.id, attempts = job.attempts, %error, "job failed; retrying later");
            let retry = Command::RetryJob { job, run_at, error };
            // If even this fails, the lease runs out and the job is claimed again.
            if let Err(e) = state.store.execute(retry, ctx()).await {
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
            return state
                .store
                .execute(Command::FinishJob(job), ctx())
                .await
                .map(drop)
                .map_err(|e| e.to_string());
        }
        Err(e) => return Err(e.to_string()),
    }
    let run_at = state.clock.now().plus_secs(idv_store::SWEEP_EVERY_SECS);
    state
        .store
        .execute(Command::RescheduleJob { job, run_at }, ctx())
        .await
        .map(drop)
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
