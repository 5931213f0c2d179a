//! Durable background jobs: claiming due ones (leased to one node), renewing
//! the leases of running ones, finishing, retrying and rescheduling them.
//! What each kind of job does lives with its concept (`agents`,
//! `credentials`, `leases`, `keys`, `webhooks`).

use idv_core::Timestamp;
use idv_core::audit::{Action, Outcome, TargetType};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::row::{ts, uuid};
use crate::{Dialect, Store, StoreError};

/// A durable background job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Job id.
    pub id: Uuid,
    /// Tenant of the target.
    pub tenant_id: Uuid,
    /// What to do, e.g. [`crate::JOB_EXPIRE_AGENT`].
    pub kind: String,
    /// What to do it to.
    pub target_id: String,
    /// When it is due.
    pub run_at: Timestamp,
    /// How many times it has been claimed.
    pub attempts: i64,
}

/// Which kinds of job a claim (or a due-job check) takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKinds {
    /// Every kind.
    All,
    /// Only this kind.
    Only(&'static str),
    /// Every kind but this one.
    AllBut(&'static str),
}

impl JobKinds {
    /// The SQL condition on `kind` (bound as parameter `$n`), and the kind
    /// to bind.
    pub(crate) fn condition(self, n: usize) -> (String, Option<&'static str>) {
        match self {
            JobKinds::All => (String::new(), None),
            JobKinds::Only(k) => (format!(" AND kind = ${n}"), Some(k)),
            JobKinds::AllBut(k) => (format!(" AND kind <> ${n}"), Some(k)),
        }
    }
}

pub(crate) fn job(row: &AnyRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        kind: row.try_get("kind")?,
        target_id: row.try_get("target_id")?,
        run_at: ts(row, "run_at")?,
        attempts: row.try_get("attempts")?,
    })
}

/// Finishes a job that is about to run (in the transaction of its work)
/// and returns the id it targets.
pub(crate) async fn take_job(conn: &mut AnyConnection, job: &Job) -> Result<Uuid, StoreError> {
    finish(conn, job).await?;
    Uuid::parse_str(&job.target_id).map_err(|e| StoreError::Corrupt(format!("job target: {e}")))
}

/// Removes a finished job. Like [`retry`], only under the claim that
/// ran it: the claim count (`attempts`) fences out a worker whose lease
/// lapsed and whose job another worker has claimed since.
pub(crate) async fn finish(conn: &mut AnyConnection, job: &Job) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM jobs WHERE id = $1 AND attempts = $2")
        .bind(job.id.to_string())
        .bind(job.attempts)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn retry(
    conn: &mut AnyConnection,
    job: Job,
    run_at: Timestamp,
    error: String,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let done = sqlx::query(
        "UPDATE jobs SET run_at = $1, locked_until = NULL, last_error = $2 WHERE id = $3 AND attempts = $4",
    )
    .bind(run_at.as_micros())
    .bind(error.clone())
    .bind(job.id.to_string())
    .bind(job.attempts)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        // Finished meanwhile (another node, or the target went away), or
        // claimed again after this claim's lease lapsed: that claim decides.
        return Ok((Applied::Done, vec![]));
    }
    let mut d = with_details(
        draft(
            ctx,
            job.tenant_id,
            Action::JobRetry,
            TargetType::Job,
            job.id.to_string(),
        ),
        json!({
            "kind": job.kind, "target_id": job.target_id, "attempts": job.attempts,
            "error": error, "next_run_at": run_at.to_rfc3339(),
        }),
    );
    d.outcome = Outcome::Failure;
    Ok((Applied::Done, vec![d]))
}

pub(crate) async fn renew_leases(
    conn: &mut AnyConnection,
    now: Timestamp,
    jobs: &[Job],
    lease_secs: i64,
) -> Result<Effect, StoreError> {
    // A job finished meanwhile is gone, one claimed again after this claim
    // lapsed has a higher `attempts`, one rescheduled has no lease: none of
    // them is touched.
    for job in jobs {
        sqlx::query("UPDATE jobs SET locked_until = $1 WHERE id = $2 AND attempts = $3 AND locked_until IS NOT NULL")
            .bind(now.plus_secs(lease_secs).as_micros())
            .bind(job.id.to_string())
            .bind(job.attempts)
            .execute(&mut *conn)
            .await?;
    }
    Ok((Applied::Done, vec![]))
}

pub(crate) async fn claim(
    conn: &mut AnyConnection,
    dialect: Dialect,
    now: Timestamp,
    (lease_secs, limit, kinds): (i64, i64, JobKinds),
) -> Result<Effect, StoreError> {
    // Dialect split: PostgreSQL skips rows other nodes have locked, so each due
    // job is leased to exactly one node; SQLite has one node and one writer.
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let (kind, bound) = kinds.condition(4);
    let sql = format!(
        "UPDATE jobs SET locked_until = $1, attempts = attempts + 1 WHERE id IN \
         (SELECT id FROM jobs WHERE run_at <= $2 AND (locked_until IS NULL OR locked_until < $2){kind} \
         ORDER BY run_at LIMIT $3{lock}) RETURNING id, tenant_id, kind, target_id, run_at, attempts"
    );
    let mut q = sqlx::query(&sql)
        .bind(now.plus_secs(lease_secs).as_micros())
        .bind(now.as_micros())
        .bind(limit);
    if let Some(k) = bound {
        q = q.bind(k);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let jobs = rows.iter().map(job).collect::<Result<Vec<_>, _>>()?;
    Ok((Applied::Jobs(jobs), vec![]))
}

/// Runs a recurring job again at `run_at` (bookkeeping, no event).
pub(crate) async fn reschedule(conn: &mut AnyConnection, job: &Job, run_at: Timestamp) -> Result<Effect, StoreError> {
    sqlx::query("UPDATE jobs SET run_at = $1, locked_until = NULL, attempts = 0, last_error = NULL WHERE id = $2")
        .bind(run_at.as_micros())
        .bind(job.id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok((Applied::Done, vec![]))
}

impl Store {
    /// Whether any job is due and not leased at `now`: a cheap read that lets
    /// an idle node skip the claiming write (and its commit).
    pub async fn has_due_jobs(&self, now: Timestamp, kinds: crate::JobKinds) -> Result<bool, StoreError> {
        let (kind, bound) = kinds.condition(2);
        let sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM jobs WHERE run_at <= $1 \
             AND (locked_until IS NULL OR locked_until < $1){kind} LIMIT 1) AS due"
        );
        let mut q = sqlx::query(&sql).bind(now.as_micros());
        if let Some(k) = bound {
            q = q.bind(k);
        }
        let row = q.fetch_one(&self.inner.read).await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}

typed_writes! {
    /// Leases up to `limit` due jobs of `kinds` to this node for `lease_secs`.
    fn claim_jobs(lease_secs: i64, limit: i64, kinds: JobKinds) -> Vec<Job> {
        Command::ClaimJobs { lease_secs, limit, kinds } => Applied::Jobs(j) => j
    }

    /// Extends the leases of jobs this node claimed and still runs.
    fn renew_job_leases(jobs: Vec<Job>, lease_secs: i64) {
        Command::RenewJobLeases { jobs, lease_secs }
    }

    /// A job failed with `error`: it runs again at `run_at`.
    fn retry_job(job: Job, run_at: Timestamp, error: String) {
        Command::RetryJob { job, run_at, error }
    }

    /// Finishes a job that has nothing (left) to do.
    fn finish_job(job: Job) {
        Command::FinishJob(job)
    }

    /// Runs a recurring job again at `run_at`.
    fn reschedule_job(job: Job, run_at: Timestamp) {
        Command::RescheduleJob { job, run_at }
    }
}
