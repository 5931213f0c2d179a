//! The durable job runner: polls the job table, leases due jobs to this node
//! and runs them. Jobs survive restarts (they are rows); on PostgreSQL the
//! lease (`FOR UPDATE SKIP LOCKED`) gives each due job to exactly one node, and
//! a node that dies mid-job loses its lease so another picks the job up.

use std::sync::atomic::Ordering;
use std::time::Duration;

use idv_core::audit::Actor;
use idv_store::{Applied, Command, Context, Job};
use tokio::sync::watch;

use crate::AppState;

/// How long a leased job stays reserved for this node.
const LEASE_SECS: i64 = 60;
/// Most jobs leased per poll.
const BATCH: i64 = 500;

fn ctx() -> Context {
    Context {
        actor: Actor::system("jobs"),
        request_id: None,
        note: None,
    }
}

/// Runs until `stop` turns true.
pub async fn run(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = run_due(&state).await {
            tracing::warn!(error = %e, "job poll failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Leases and runs every due job once. Returns how many ran.
pub async fn run_due(state: &AppState) -> Result<usize, idv_store::StoreError> {
    let mut ran = 0;
    loop {
        if !state.store.has_due_jobs(state.clock.now()).await? {
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
        for job in jobs {
            ran += 1;
            run_one(state, job).await;
        }
    }
}

async fn run_one(state: &AppState, job: Job) {
    let kind = job.kind.clone();
    let res = match kind.as_str() {
        idv_store::JOB_EXPIRE_AGENT => state.store.execute(Command::ExpireAgent(job), ctx()).await.map(|_| ()),
        idv_store::JOB_RETIRE_CREDENTIAL => state
            .store
            .execute(Command::RetireCredential(job), ctx())
            .await
            .map(|_| ()),
        other => {
            tracing::error!(kind = other, "unknown job kind; it stays leased and will be retried");
            return;
        }
    };
    match res {
        Ok(()) => {
            state.metrics.jobs_run.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            state.metrics.jobs_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(kind, error = %e, "job failed; it will be retried when its lease ends");
        }
    }
}
