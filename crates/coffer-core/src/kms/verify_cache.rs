//! The verify cache: verdicts of recent verifications, so a signature checked again
//! (a hot release artefact, a token verified on every request) costs a hash instead of
//! an ML-DSA or hybrid verification. Seed 002's `verify_cache_max` and
//! `verify_cache_ttl_ms`.
//!
//! Why it can never answer "valid" for a version that no longer verifies: a verdict is
//! looked up only after the request has passed every check a verification makes
//! without the cache (token, scope, key enabled, version active or retiring: the key
//! cache's entry, which this process's own changes replace at once and another
//! replica's within `cache_ttl`). The verdict itself is a pure function of what its
//! lookup key hashes: tenant, key, version (whose public key never changes), algorithm,
//! PQ verify mode, the input and the signature. So the cache adds no staleness to the
//! key cache's. On top of that, every change to a key through this process (rotation,
//! retirement, disable, deletion, shredding its tenant) moves that key's epoch, and
//! verdicts from an older epoch are dropped unread (`verify_cache_stale_total`).
//!
//! Signals: `verify_cache_{hit,miss,stale}_total`; `verify_cache_size` (entries);
//! `verify_cache_ttl_ms`; `verify_cache_stale_max_ms`, the age of the oldest verdict
//! served within the last [`AGE_WINDOW`] (never above the TTL while the cache works,
//! so seed 002's alert at twice the TTL means it does not).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use coffer_crypto::{PqVerifyMode, SignatureAlgorithm};

use super::sign::SignInput;
use crate::ids::{KeyId, TenantId, VersionNumber};

/// How long `verify_cache_stale_max_ms` remembers the oldest verdict it served.
pub const AGE_WINDOW: Duration = Duration::from_secs(10);

/// The verify cache's size and lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyCacheOptions {
    /// Verdicts kept at most (0: no cache).
    pub max_entries: u64,
    /// How long a verdict is kept.
    pub ttl: Duration,
}

impl Default for VerifyCacheOptions {
    /// Seed 002's defaults: 262144 entries, 300000 ms.
    fn default() -> Self {
        Self {
            max_entries: 262_144,
            ttl: Duration::from_millis(300_000),
        }
    }
}

/// This cache's own counts (beside the process-wide metrics, so a test can tell what
/// one server's cache did).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyCacheCounts {
    /// Verdicts served.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Verdicts found from before their key changed, dropped unread.
    pub stale: u64,
}

#[derive(Debug, Clone, Copy)]
struct Verdict {
    valid: bool,
    epoch: u64,
    at: Instant,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A verdict of the current epoch.
    Hit(bool),
    /// Nothing usable: verify, then [`VerifyCache::put`].
    Miss,
}

/// One verification's identity.
pub(crate) struct Question<'a> {
    pub tenant: TenantId,
    pub key: KeyId,
    pub version: VersionNumber,
    pub algorithm: SignatureAlgorithm,
    pub mode: PqVerifyMode,
    pub input: &'a SignInput<'a>,
    pub signature: &'a [u8],
}

impl Question<'_> {
    /// SHA-256 over every field, each length-prefixed: distinct questions never share
    /// a lookup key (short of a SHA-256 collision).
    fn digest(&self) -> [u8; 32] {
        let (kind, data): (&[u8], &[u8]) = match self.input {
            SignInput::Message(m) => (b"message", m),
            SignInput::Digest(d) => (b"digest", d),
            SignInput::MlDsaMu(mu) => (b"mu", mu),
        };
        let version = self.version.get().to_be_bytes();
        let fields: [&[u8]; 8] = [
            self.tenant.as_bytes(),
            self.key.as_bytes(),
            &version,
            self.algorithm.as_str().as_bytes(),
            self.mode.as_str().as_bytes(),
            kind,
            data,
            self.signature,
        ];
        let lengths: Vec<[u8; 8]> = fields
            .iter()
            .map(|f| (f.len() as u64).to_be_bytes())
            .collect();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(16);
        for (field, length) in fields.iter().zip(&lengths) {
            parts.push(length);
            parts.push(field);
        }
        coffer_crypto::hash::sha256(&parts)
    }
}

/// The cache.
pub(crate) struct VerifyCache {
    ttl: Duration,
    verdicts: Option<moka::sync::Cache<[u8; 32], Verdict>>,
    /// Per key: how many times it changed through this process.
    epochs: RwLock<HashMap<KeyId, u64>>,
    /// Moves on a change that touches many keys (a tenant shredded, everything cleared).
    global: std::sync::atomic::AtomicU64,
    oldest_served: Mutex<(Instant, Duration)>,
    counts: Mutex<VerifyCacheCounts>,
}

impl Default for VerifyCache {
    fn default() -> Self {
        Self::new(VerifyCacheOptions::default())
    }
}

impl VerifyCache {
    pub fn new(options: VerifyCacheOptions) -> Self {
        metrics::gauge!("verify_cache_ttl_ms").set(options.ttl.as_millis() as f64);
        metrics::gauge!("verify_cache_size").set(0.0);
        metrics::gauge!("verify_cache_stale_max_ms").set(0.0);
        let verdicts = (options.max_entries > 0 && !options.ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(options.max_entries)
                .time_to_live(options.ttl)
                .build()
        });
        Self {
            ttl: options.ttl,
            verdicts,
            epochs: RwLock::default(),
            global: std::sync::atomic::AtomicU64::new(0),
            oldest_served: Mutex::new((Instant::now(), Duration::ZERO)),
            counts: Mutex::default(),
        }
    }

    fn epoch(&self, key: KeyId) -> u64 {
        let own = self
            .epochs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied()
            .unwrap_or(0);
        own.wrapping_add(self.global.load(std::sync::atomic::Ordering::SeqCst) << 32)
    }

    /// The verdict for `question`, if a current one is cached.
    pub fn get(&self, question: &Question<'_>) -> (Lookup, Option<[u8; 32]>) {
        let Some(verdicts) = &self.verdicts else {
            return (Lookup::Miss, None);
        };
        let id = question.digest();
        let found = verdicts.get(&id);
        match found {
            Some(verdict) if verdict.epoch == self.epoch(question.key) => {
                metrics::counter!("verify_cache_hit_total").increment(1);
                self.count(|c| c.hits += 1);
                self.served(verdict.at.elapsed());
                (Lookup::Hit(verdict.valid), Some(id))
            }
            Some(_) => {
                metrics::counter!("verify_cache_stale_total").increment(1);
                self.count(|c| c.stale += 1);
                verdicts.invalidate(&id);
                (Lookup::Miss, Some(id))
            }
            None => {
                metrics::counter!("verify_cache_miss_total").increment(1);
                self.count(|c| c.misses += 1);
                (Lookup::Miss, Some(id))
            }
        }
    }

    /// Keeps `valid` as the verdict of the question `id` names. `epoch` is the key's
    /// epoch read before the verification ran, so a change that happened meanwhile
    /// leaves this verdict stale from the start.
    pub fn put(&self, id: [u8; 32], epoch: u64, valid: bool) {
        if let Some(verdicts) = &self.verdicts {
            verdicts.insert(
                id,
                Verdict {
                    valid,
                    epoch,
                    at: Instant::now(),
                },
            );
            metrics::gauge!("verify_cache_size").set(verdicts.entry_count() as f64);
        }
    }

    /// The key's epoch now (read before verifying; given back to [`Self::put`]).
    pub fn epoch_of(&self, key: KeyId) -> u64 {
        self.epoch(key)
    }

    /// A change to `key`: its verdicts are stale from now on.
    pub fn invalidate_key(&self, key: KeyId) {
        let mut epochs = self.epochs.write().unwrap_or_else(PoisonError::into_inner);
        let epoch = epochs.entry(key).or_insert(0);
        *epoch = epoch.wrapping_add(1);
    }

    /// A change to many keys at once: every verdict is stale from now on.
    pub fn invalidate_all(&self) {
        self.global
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets `verify_cache_ttl_ms` and `verify_cache_size` (at each scrape).
    pub fn report(&self) {
        metrics::gauge!("verify_cache_ttl_ms").set(self.ttl.as_millis() as f64);
        let size = self.verdicts.as_ref().map_or(0, |v| v.entry_count());
        metrics::gauge!("verify_cache_size").set(size as f64);
    }

    /// This cache's counts so far.
    pub fn counts(&self) -> VerifyCacheCounts {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, update: impl FnOnce(&mut VerifyCacheCounts)) {
        update(&mut self.counts.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn served(&self, age: Duration) {
        let mut oldest = self
            .oldest_served
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if oldest.0.elapsed() > AGE_WINDOW {
            *oldest = (Instant::now(), age);
        } else if age > oldest.1 {
            oldest.1 = age;
        }
        metrics::gauge!("verify_cache_stale_max_ms").set(oldest.1.as_millis() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question<'a>(key: KeyId, input: &'a SignInput<'a>, signature: &'a [u8]) -> Question<'a> {
        Question {
            tenant: TenantId::from_bytes([1; 16]),
            key,
            version: VersionNumber::new(1).unwrap(),
            algorithm: SignatureAlgorithm::Ed25519,
            mode: PqVerifyMode::And,
            input,
            signature,
        }
    }

    #[test]
    fn a_verdict_is_served_until_its_key_changes() {
        let cache = VerifyCache::new(VerifyCacheOptions::default());
        let key = KeyId::generate();
        let input = SignInput::Message(b"release");
        let q = question(key, &input, b"sig");
        let (found, id) = cache.get(&q);
        assert_eq!(found, Lookup::Miss);
        cache.put(id.unwrap(), cache.epoch_of(key), true);
        assert_eq!(cache.get(&q).0, Lookup::Hit(true));
        // Another signature, another input, another key: other questions.
        let other_input = SignInput::Message(b"releasf");
        assert_eq!(
            cache.get(&question(key, &other_input, b"sig")).0,
            Lookup::Miss
        );
        assert_eq!(cache.get(&question(key, &input, b"sih")).0, Lookup::Miss);
        let digest = SignInput::Digest(b"release");
        assert_eq!(cache.get(&question(key, &digest, b"sig")).0, Lookup::Miss);

        cache.invalidate_key(key);
        assert_eq!(cache.get(&q).0, Lookup::Miss);
        // A verification that began before a change caches a stale verdict.
        let before = cache.epoch_of(key);
        cache.invalidate_key(key);
        cache.put(cache.get(&q).1.unwrap(), before, true);
        assert_eq!(cache.get(&q).0, Lookup::Miss);
        // `invalidate_all` reaches every key.
        cache.put(cache.get(&q).1.unwrap(), cache.epoch_of(key), true);
        assert_eq!(cache.get(&q).0, Lookup::Hit(true));
        cache.invalidate_all();
        assert_eq!(cache.get(&q).0, Lookup::Miss);
    }

    #[test]
    fn verdicts_expire_with_the_ttl_and_a_zero_size_caches_nothing() {
        let cache = VerifyCache::new(VerifyCacheOptions {
            max_entries: 16,
            ttl: Duration::from_millis(50),
        });
        let key = KeyId::generate();
        let input = SignInput::Message(b"m");
        let q = question(key, &input, b"s");
        cache.put(cache.get(&q).1.unwrap(), cache.epoch_of(key), false);
        assert_eq!(cache.get(&q).0, Lookup::Hit(false));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(cache.get(&q).0, Lookup::Miss);

        let off = VerifyCache::new(VerifyCacheOptions {
            max_entries: 0,
            ttl: Duration::from_secs(1),
        });
        assert_eq!(off.get(&q), (Lookup::Miss, None));
    }
}
