//! Group commit for key creation, on both databases: concurrent `create_key` calls share
//! one transaction (and so one durable commit) on a writer connection.
//!
//! - Each creation runs inside its own savepoint, so one that a rule refuses (an alias
//!   taken, a quota full) is rolled back alone and answered with its own error while
//!   the others commit.
//! - The audit entries of the creations that stayed are appended after the last of
//!   them, in one statement: the audit head (PostgreSQL's `audit_head` row) is taken
//!   last and held only for that statement and the commit, as every other writing
//!   transaction takes it after its own rows. On PostgreSQL the tenants' rows are
//!   locked first, in tenant id order, so two groups (or a group and a single change)
//!   never wait on each other in a cycle.
//! - Quotas: each tenant's keys and aliases are counted once per group, under its lock
//!   (`quota::Tally`), and each admitted creation adds to the count.
//! - A failure of the database itself (an I/O error, a full disk, a refused audit
//!   insert, a failed commit) fails every creation of the group: none is answered
//!   before the commit, so nothing unanswered was acknowledged and nothing of the group
//!   is kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_core::audit::AuditEntry;
use coffer_core::store::Record;
use coffer_core::{Key, KeyVersion, StoreError, StoreResult, TenantId};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::audit::{self, AuditHead};
use crate::errors::{corrupt, unavailable};
use crate::health::WriterHealth;
use crate::keys;
use crate::quota::{SharedQuotas, Tally};

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
        metrics::histogram!("kms_key_creation_batch_keys").record(jobs.len() as f64);
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
    let mut pooled = match writer.acquire().await {
        Ok(pooled) => pooled,
        Err(error) => {
            let error = health.failed(unavailable(error));
            return jobs.iter().map(|_| Err(error.clone())).collect();
        }
    };
    head.begin();
    let outcome = async {
        let mut tx = sqlx::Connection::begin(&mut *pooled)
            .await
            .map_err(unavailable)?;
        // Every tenant of the group, locked and counted in id order (see the module docs).
        let mut tallies = BTreeMap::<TenantId, Tally>::new();
        let mut tenants: Vec<TenantId> = jobs.iter().map(|job| job.key.tenant).collect();
        tenants.sort_unstable();
        tenants.dedup();
        for tenant in tenants {
            tallies.insert(tenant, Tally::take(&mut tx, tenant).await?);
        }
        let mut answers = Vec::with_capacity(jobs.len());
        let mut entries: Vec<AuditEntry> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Some(tally) = tallies.get_mut(&job.key.tenant) else {
                return Err(corrupt("a tenant of the group was not counted"));
            };
            if let Err(refused) = tally.admit(&quotas.of(job.key.tenant), &job.key) {
                answers.push(Err(refused));
                continue;
            }
            savepoint(&mut tx, "SAVEPOINT key_creation").await?;
            match keys::create(&mut tx, &job.key, &job.first, &job.record).await {
                Ok(()) => {
                    savepoint(&mut tx, "RELEASE SAVEPOINT key_creation").await?;
                    tally.add(&job.key);
                    entries.push(job.record.audit.clone());
                    answers.push(Ok(()));
                }
                Err(error @ StoreError::Unavailable(_)) => return Err(error),
                Err(refused) => {
                    savepoint(&mut tx, "ROLLBACK TO SAVEPOINT key_creation").await?;
                    savepoint(&mut tx, "RELEASE SAVEPOINT key_creation").await?;
                    answers.push(Err(refused));
                }
            }
        }
        if !entries.is_empty() {
            audit::append_in(&mut tx, head, &entries).await?;
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
