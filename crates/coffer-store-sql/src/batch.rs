//! Group commit for key creation, on both databases: concurrent `create_key` calls share
//! one transaction (and so one durable commit) on a writer connection.
//!
//! - The group's creations are admitted against the quotas, then written together: one
//!   multi-row INSERT per table (keys, versions, aliases, events) inside one savepoint.
//!   If the database refuses that (an alias taken), the savepoint is rolled back and
//!   the creations are written again one at a time, each inside its own savepoint, so
//!   the one refused is rolled back alone and answered with its own error while the
//!   others commit. A quota refusal is decided before any write and answered alone.
//! - The audit entries of the creations that stayed are appended after the last of
//!   them, in one statement: the audit head (PostgreSQL's `audit_head` row) is taken
//!   last and held only for that statement and the commit, as every other writing
//!   transaction takes it after its own rows. On PostgreSQL the tenants' rows are
//!   locked first, in tenant id order, so two groups (or a group and a single change)
//!   never wait on each other in a cycle.
//! - Quotas: each tenant's keys and aliases are counted once per group, under its lock
//!   (`quota::Tally`), and each admitted creation adds to the count. A tenant shredded
//!   by then has its creations refused (`NotFound`).
//! - Counting a large tenant is a scan of its keys; on SQLite the counts a group
//!   committed with are kept for the next group, unless another write ran in between
//!   (`kept`).
//! - A failure of the database itself (an I/O error, a full disk, a refused audit
//!   insert, a failed commit) fails every creation of the group: none is answered
//!   before the commit, so nothing unanswered was acknowledged and nothing of the group
//!   is kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_core::audit::AuditEntry;
use coffer_core::store::Record;
use coffer_core::{Key, KeyVersion, StoreError, StoreResult, TenantId};
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use crate::Backend;
use crate::audit::{self, AuditHead};
use crate::errors::{corrupt, unavailable};
use crate::health::WriterHealth;
use crate::keys::{self, Creation};
use crate::quota::{SharedQuotas, Tally};
use crate::tenants;

mod kept;

use kept::KeptCounts;

/// Key creations per transaction at most.
const BATCH: usize = 64;

/// Each tenant's count of the group; `None` for a tenant shredded by now.
type Tallies = BTreeMap<TenantId, Option<Tally>>;

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
        backend: Backend,
        writer: AnyPool,
        head: Arc<AuditHead>,
        health: Arc<WriterHealth>,
        quotas: SharedQuotas,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(1024);
        let writing = Writing {
            writer,
            head,
            health,
            quotas,
            kept: KeptCounts::new(backend),
        };
        tokio::spawn(run(queue, writing));
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

/// What the task writes with; `kept` is its own, from one group to the next.
struct Writing {
    writer: AnyPool,
    head: Arc<AuditHead>,
    health: Arc<WriterHealth>,
    quotas: SharedQuotas,
    kept: KeptCounts,
}

async fn run(mut queue: mpsc::Receiver<Job>, mut writing: Writing) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!("kms_key_creation_batch_keys").record(jobs.len() as f64);
        let outcomes = commit(&jobs, &mut writing).await;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let _ = job.done.send(outcome);
        }
    }
}

/// One transaction for the batch; one answer per job.
async fn commit(jobs: &[Job], writing: &mut Writing) -> Vec<StoreResult<()>> {
    let Writing {
        writer,
        head,
        health,
        quotas,
        kept,
    } = writing;
    let mut pooled = match writer.acquire().await {
        Ok(pooled) => pooled,
        Err(error) => {
            let error = health.failed(unavailable(error));
            return jobs.iter().map(|_| Err(error.clone())).collect();
        }
    };
    // Read while the writer connection is held (see `kept`).
    let writes = health.writes();
    let known = kept.take(writes);
    let staging = head.begin();
    let outcome = async {
        let mut tx = sqlx::Connection::begin(&mut *pooled)
            .await
            .map_err(unavailable)?;
        let tallies = count_tenants(&mut tx, jobs, &known).await?;
        let answers = match together(&mut tx, jobs, tallies.clone(), quotas).await? {
            Some(answers) => answers,
            None => one_by_one(&mut tx, jobs, tallies.clone(), quotas).await?,
        };
        let entries: Vec<AuditEntry> = jobs
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| answer.is_ok())
            .map(|(job, _)| job.record.audit.clone())
            .collect();
        if !entries.is_empty() {
            audit::append_in(&mut tx, head, &entries).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        // The counts as committed: the group's tenants with what it wrote, the others
        // as they were kept.
        let mut after = known;
        after.extend(tallies);
        for (job, _) in jobs.iter().zip(&answers).filter(|(_, a)| a.is_ok()) {
            count(&mut after, job);
        }
        Ok((answers, after))
    }
    .await;
    staging.settle(outcome.is_ok());
    match health.settle(pooled, outcome).await {
        Ok((answers, after)) => {
            kept.keep(writes, after);
            answers
        }
        Err(error) => jobs.iter().map(|_| Err(error.clone())).collect(),
    }
}

/// Every tenant of the group, locked and counted in id order (see the module docs);
/// `None` for a tenant shredded by now: its creations are refused, as they would be
/// had its tenant key been read from the store (the service may hold it in a cache).
/// A tenant in `known` (counts still true, see `kept`; SQLite only) is not counted again.
async fn count_tenants(
    conn: &mut AnyConnection,
    jobs: &[Job],
    known: &Tallies,
) -> StoreResult<Tallies> {
    let mut tallies = BTreeMap::new();
    let mut ids: Vec<TenantId> = jobs.iter().map(|job| job.key.tenant).collect();
    ids.sort_unstable();
    ids.dedup();
    for tenant in ids {
        if let Some(known) = known.get(&tenant) {
            tallies.insert(tenant, *known);
            continue;
        }
        let tally = Tally::take(&mut *conn, tenant).await?;
        let live = tenants::holds_kek(&mut *conn, tenant).await?;
        tallies.insert(tenant, live.then_some(tally));
    }
    Ok(tallies)
}

/// Whether `job` fits beside what its tenant's count holds (quotas, and the tenant
/// not shredded). The outer error is the group's: a tenant that was not counted.
fn admit(tallies: &Tallies, quotas: &SharedQuotas, job: &Job) -> StoreResult<StoreResult<()>> {
    let tenant = job.key.tenant;
    Ok(match tallies.get(&tenant) {
        None => return Err(corrupt("a tenant of the group was not counted")),
        Some(None) => Err(StoreError::NotFound("tenant key")),
        Some(Some(tally)) => tally.admit(&quotas.of(tenant), &job.key),
    })
}

/// Counts `job` as written.
fn count(tallies: &mut Tallies, job: &Job) {
    if let Some(Some(tally)) = tallies.get_mut(&job.key.tenant) {
        tally.add(&job.key);
    }
}

/// Writes every admitted creation of the group at once (`keys::create_all`): the usual
/// case, and four statements whatever the group's size. `None` when the database
/// refused one of them (an alias taken): nothing of the group is left written, and the
/// caller writes them [`one_by_one`] to answer each with its own outcome.
async fn together(
    conn: &mut AnyConnection,
    jobs: &[Job],
    mut tallies: Tallies,
    quotas: &SharedQuotas,
) -> StoreResult<Option<Vec<StoreResult<()>>>> {
    let mut answers = Vec::with_capacity(jobs.len());
    let mut creations = Vec::with_capacity(jobs.len());
    for job in jobs {
        let admitted = admit(&tallies, quotas, job)?;
        if admitted.is_ok() {
            count(&mut tallies, job);
            creations.push(Creation {
                key: &job.key,
                first: &job.first,
                record: &job.record,
            });
        }
        answers.push(admitted);
    }
    if creations.is_empty() {
        return Ok(Some(answers));
    }
    savepoint(&mut *conn, "SAVEPOINT key_group").await?;
    match keys::create_all(&mut *conn, &creations).await {
        Ok(()) => {
            savepoint(&mut *conn, "RELEASE SAVEPOINT key_group").await?;
            Ok(Some(answers))
        }
        Err(error @ StoreError::Unavailable(_)) => Err(error),
        Err(refused) => {
            savepoint(&mut *conn, "ROLLBACK TO SAVEPOINT key_group").await?;
            savepoint(&mut *conn, "RELEASE SAVEPOINT key_group").await?;
            if creations.len() == 1 {
                // The only creation written is the one refused.
                for answer in answers.iter_mut().filter(|answer| answer.is_ok()) {
                    *answer = Err(refused.clone());
                }
                return Ok(Some(answers));
            }
            Ok(None)
        }
    }
}

/// Writes the group's creations one at a time, each in its own savepoint, so a refused
/// one is rolled back alone; counts start again from `tallies` (taken before
/// [`together`] counted anything).
async fn one_by_one(
    conn: &mut AnyConnection,
    jobs: &[Job],
    mut tallies: Tallies,
    quotas: &SharedQuotas,
) -> StoreResult<Vec<StoreResult<()>>> {
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        let admitted = admit(&tallies, quotas, job)?;
        if admitted.is_err() {
            answers.push(admitted);
            continue;
        }
        savepoint(&mut *conn, "SAVEPOINT key_creation").await?;
        match keys::create(&mut *conn, &job.key, &job.first, &job.record).await {
            Ok(()) => {
                savepoint(&mut *conn, "RELEASE SAVEPOINT key_creation").await?;
                count(&mut tallies, job);
                answers.push(Ok(()));
            }
            Err(error @ StoreError::Unavailable(_)) => return Err(error),
            Err(refused) => {
                savepoint(&mut *conn, "ROLLBACK TO SAVEPOINT key_creation").await?;
                savepoint(&mut *conn, "RELEASE SAVEPOINT key_creation").await?;
                answers.push(Err(refused));
            }
        }
    }
    Ok(answers)
}

async fn savepoint(conn: &mut sqlx::AnyConnection, statement: &str) -> StoreResult<()> {
    sqlx::query(statement)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(unavailable)
}
