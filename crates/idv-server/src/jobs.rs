//! The durable job runner: polls the job table, leases due jobs to this node
//! and runs them. Jobs survive restarts (they are rows); on PostgreSQL the
//! lease (`FOR UPDATE SKIP LOCKED`) gives each due job to exactly one node, and
//! a node that dies mid-job loses its lease so another picks the job up.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt as _;
use idv_store::{Applied, Command, Context, Job};
use tokio::sync::watch;

use crate::AppState;

/// How long a leased job stays reserved for this node.
const LEASE_SECS: i64 = 60;
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

/// Runs until `stop` turns true.
pub async fn run(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
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
        if let Err(e) = run_due(&state, &stop).await {
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

/// Leases and runs due jobs, batch after batch, until none is due or `stop`
/// turns true (jobs keep coming due under load, so shutdown must not wait
/// for the table to empty; leased jobs not run go back when their lease
/// ends). Returns how many ran.
async fn run_due(state: &AppState, stop: &watch::Receiver<bool>) -> Result<usize, idv_store::StoreError> {
    let mut ran = 0;
    loop {
        if *stop.borrow() || !state.store.has_due_jobs(state.clock.now()).await? {
            return Ok(ran);
        }
        let jobs = match state
            .store
            .execute(
                Command::ClaimJobs {
                    lease_secs: LEASE_SECS,
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
        // Concurrently, so their writes share group commits; each job is
        // its own unit of work and fails alone. A job not started by half
        // its lease is left alone: started later, it could still run when
        // the lease ends and another node claims it (slow webhook
        // receivers can hold a batch that long); it is claimed again then.
        let claimed = tokio::time::Instant::now();
        let fresh = Duration::from_secs(u64::try_from(LEASE_SECS / 2).unwrap_or(30));
        futures_util::stream::iter(jobs)
            .for_each_concurrent(CONCURRENCY, |job| async move {
                if claimed.elapsed() >= fresh {
                    return;
                }
                if job.kind == idv_store::JOB_DELIVER_WEBHOOK {
                    if let Ok(slot) = state.delivery_slots.clone().try_acquire_owned() {
                        let state = state.clone();
                        tokio::spawn(async move {
                            run_one(&state, job).await;
                            drop(slot);
                        });
                    }
                    return;
                }
                run_one(state, job).await;
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
