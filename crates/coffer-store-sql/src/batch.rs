//! Group commit for key creation on SQLite: concurrent `create_key` calls share one
//! transaction (and so one fsync) on the single writer connection, each inside its own
//! savepoint, so one that a rule of the schema refuses (an alias taken) is rolled back
//! alone and answered with its own error while the others commit. A failure of the
//! database itself fails the whole batch: nothing in it was acknowledged, nothing of it
//! is kept. Each key's audit entry is appended inside its savepoint, as for any change,
//! and its quotas are checked there (a refusal is rolled back alone, like a taken alias).

use std::sync::Arc;

use coffer_core::store::Record;
use coffer_core::{Key, KeyVersion, StoreError, StoreResult};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::audit::{self, AuditHead};
use crate::errors::unavailable;
use crate::health::WriterHealth;
use crate::keys;
use crate::quota::SharedQuotas;

/// Key creations per transaction at most.
const BATCH: usize = 64;

struct Job {
    key: Key,
    first: KeyVersion,
    record: Record,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The queue in front of the writer. Dropping every sender ends the task.
#[derive(Clone)]
pub struct KeyCreations {
    jobs: mpsc::Sender<Job>,
}

impl KeyCreations {
    /// Starts the task that commits queued key creations.
    pub fn start(
        writer: AnyPool,
        head: Arc<AuditHead>,
        health: Arc<WriterHealth>,
        quotas: SharedQuotas,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(1024);
        tokio::spawn(run(queue, writer, head, health, quotas));
        Self { jobs }
    }

    /// Creates `key` with its first version; returns once committed (or refused).
    pub async fn create(&self, key: &Key, first: &KeyVersion, record: &Record) -> StoreResult<()> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            key: key.clone(),
            first: first.clone(),
            record: record.clone(),
            done,
        };
        let stopped = || StoreError::Unavailable("the key creation queue stopped".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(
    mut queue: mpsc::Receiver<Job>,
    writer: AnyPool,
    head: Arc<AuditHead>,
    health: Arc<WriterHealth>,
    quotas: SharedQuotas,
) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let outcomes = commit(&jobs, &writer, &head, &health, &quotas).await;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let _ = job.done.send(outcome);
        }
    }
}

/// One transaction for the batch; one answer per job.
async fn commit(
    jobs: &[Job],
    writer: &AnyPool,
    head: &AuditHead,
    health: &WriterHealth,
    quotas: &SharedQuotas,
) -> Vec<StoreResult<()>> {
    let pooled = match writer.acquire().await {
        Ok(pooled) => pooled,
        Err(error) => {
            let error = health.failed(unavailable(error));
            return jobs.iter().map(|_| Err(error.clone())).collect();
        }
    };
    let mut pooled = pooled;
    head.begin();
    let outcome = async {
        let mut tx = sqlx::Connection::begin(&mut *pooled)
            .await
            .map_err(unavailable)?;
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs {
            savepoint(&mut tx, "SAVEPOINT key_creation").await?;
            let staged = head.staged();
            let created = async {
                // Counted after the savepoints before it: one batch cannot overfill.
                let limits = quotas.of(job.key.tenant);
                keys::create(&mut tx, &limits, &job.key, &job.first, &job.record).await?;
                audit::append_in(&mut tx, head, std::slice::from_ref(&job.record.audit)).await?;
                Ok::<_, StoreError>(())
            }
            .await;
            match created {
                Ok(()) => answers.push(Ok(())),
                Err(error @ StoreError::Unavailable(_)) => return Err(error),
                Err(refused) => {
                    savepoint(&mut tx, "ROLLBACK TO SAVEPOINT key_creation").await?;
                    head.restore(staged);
                    answers.push(Err(refused));
                }
            }
            savepoint(&mut tx, "RELEASE SAVEPOINT key_creation").await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(answers)
    }
    .await;
    head.settle(outcome.is_ok());
    match health.settle(pooled, outcome).await {
        Ok(answers) => answers,
        Err(error) => jobs.iter().map(|_| Err(error.clone())).collect(),
    }
}

async fn savepoint(conn: &mut sqlx::AnyConnection, statement: &str) -> StoreResult<()> {
    sqlx::query(statement)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(unavailable)
}
