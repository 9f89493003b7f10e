//! Single-flight and the `cache_for` cache: concurrent requests for the same (module, target,
//! hostname) share one in-flight probe, and a module with `cache_for` serves a fresh enough
//! result without probing.
//!
//! A small in-house map of shared results rather than moka: without `cache_for` nothing outlives
//! the probe, so moka's admission and eviction bookkeeping would be pure per-probe overhead; here
//! a probe costs two short locks on one of 64 shards.

use crate::probe::recorder::FailureReason;
use crate::probe::ProbeOutcome;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const SHARDS: usize = 64;
/// Cached results kept at most (per shard); beyond it, results are served but not cached.
const MAX_CACHED_PER_SHARD: usize = 4096;

type Shard = Mutex<HashMap<String, Slot>>;

enum Slot {
    InFlight {
        id: u64,
        result: watch::Receiver<Option<Arc<ProbeOutcome>>>,
    },
    Cached {
        outcome: Arc<ProbeOutcome>,
        until: Instant,
    },
}

pub struct SingleFlight {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    next_id: AtomicU64,
}

impl Default for SingleFlight {
    fn default() -> Self {
        Self::new()
    }
}

/// How a request was answered, for tests and debug output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Probed,
    Shared,
    Cached,
}

impl SingleFlight {
    pub fn new() -> Self {
        SingleFlight {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// The key of a probe: everything that makes two requests the same probe.
    pub fn key(module: &str, target: &str, hostname: Option<&str>) -> String {
        let mut k = String::with_capacity(module.len() + target.len() + 2);
        k.push_str(module);
        k.push('\0');
        k.push_str(target);
        if let Some(h) = hostname {
            k.push('\0');
            k.push_str(h);
        }
        k
    }

    fn shard(&self, key: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Runs `probe` unless the same key is in flight (then shares its result, waiting at most
    /// until `deadline`) or cached and fresh (then serves it).
    pub async fn run<F, Fut>(
        &self,
        key: String,
        cache_for: Option<Duration>,
        deadline: Instant,
        probe: F,
    ) -> (Arc<ProbeOutcome>, Served)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Arc<ProbeOutcome>>,
    {
        let shard = self.shard(&key);
        let (tx, id) = loop {
            let mut waiting = {
                let mut map = shard.lock();
                match map.get(&key) {
                    Some(Slot::Cached { outcome, until }) if *until > Instant::now() => {
                        return (outcome.clone(), Served::Cached)
                    }
                    Some(Slot::InFlight { result, .. }) => result.clone(),
                    _ => {
                        let (tx, rx) = watch::channel(None);
                        let id = self.next_id.fetch_add(1, Relaxed);
                        map.insert(key.clone(), Slot::InFlight { id, result: rx });
                        break (tx, id);
                    }
                }
            };
            let shared = tokio::time::timeout_at(deadline, async {
                waiting
                    .wait_for(Option::is_some)
                    .await
                    .map(|v| v.clone().expect("waited for Some"))
            })
            .await;
            match shared {
                Ok(Ok(v)) => return (v, Served::Shared),
                // The leader's request went away before finishing: try again (maybe as leader).
                Ok(Err(_)) => continue,
                Err(_) => {
                    return (
                        Arc::new(crate::probe::refused(
                            FailureReason::Timeout,
                            "timed out waiting for the identical probe already running".into(),
                        )),
                        Served::Shared,
                    )
                }
            }
        };
        let mut leader = Leader {
            shard,
            key: Some(key),
            id,
        };
        let outcome = probe().await;
        let cacheable = outcome.failure != Some(FailureReason::RejectedByLimit);
        {
            let mut map = shard.lock();
            let key = leader.key.take().expect("leader key");
            match cache_for.filter(|d| !d.is_zero() && cacheable) {
                Some(d) => {
                    if map.len() >= MAX_CACHED_PER_SHARD {
                        let now = Instant::now();
                        map.retain(|_, s| match s {
                            Slot::Cached { until, .. } => *until > now,
                            Slot::InFlight { .. } => true,
                        });
                    }
                    if map.len() < MAX_CACHED_PER_SHARD {
                        map.insert(
                            key,
                            Slot::Cached {
                                outcome: outcome.clone(),
                                until: Instant::now() + d,
                            },
                        );
                    } else {
                        remove_if_ours(&mut map, &key, id);
                    }
                }
                None => remove_if_ours(&mut map, &key, id),
            }
        }
        let _ = tx.send(Some(outcome.clone()));
        (outcome, Served::Probed)
    }

    /// Entries held (in flight and cached), for tests and memory checks.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets cached results (on config reload, module settings may have changed).
    pub fn clear_cache(&self) {
        for s in self.shards.iter() {
            s.lock().retain(|_, s| matches!(s, Slot::InFlight { .. }));
        }
    }
}

fn remove_if_ours(map: &mut HashMap<String, Slot>, key: &str, id: u64) {
    if matches!(map.get(key), Some(Slot::InFlight { id: i, .. }) if *i == id) {
        map.remove(key);
    }
}

/// Clears the in-flight entry if the leading request is cancelled; its followers then retry.
struct Leader<'a> {
    shard: &'a Shard,
    key: Option<String>,
    id: u64,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            remove_if_ours(&mut self.shard.lock(), &key, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn outcome() -> Arc<ProbeOutcome> {
        Arc::new(crate::probe::refused(FailureReason::Other, "x".into()))
    }

    #[tokio::test]
    async fn concurrent_calls_share_one_run_and_nothing_stays() {
        let sf = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let far = Instant::now() + Duration::from_secs(10);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (sf, runs) = (sf.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                sf.run(SingleFlight::key("m", "t", None), None, far, || async {
                    runs.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    outcome()
                })
                .await
                .1
            }));
        }
        let mut probed = 0;
        for t in tasks {
            probed += (t.await.unwrap() == Served::Probed) as usize;
        }
        assert_eq!((runs.load(Relaxed), probed), (1, 1));
        assert!(sf.is_empty());
    }

    #[tokio::test]
    async fn cache_for_serves_until_expiry() {
        let sf = SingleFlight::new();
        let far = Instant::now() + Duration::from_secs(10);
        let key = || SingleFlight::key("m", "t", Some("h"));
        let ttl = Some(Duration::from_millis(300));
        assert_eq!(
            sf.run(key(), ttl, far, || async { outcome() }).await.1,
            Served::Probed
        );
        assert_eq!(
            sf.run(key(), ttl, far, || async { outcome() }).await.1,
            Served::Cached
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            sf.run(key(), ttl, far, || async { outcome() }).await.1,
            Served::Probed
        );
    }

    #[tokio::test]
    async fn a_cancelled_leader_lets_a_follower_probe() {
        let sf = Arc::new(SingleFlight::new());
        let far = Instant::now() + Duration::from_secs(10);
        let sf2 = sf.clone();
        let leader = tokio::spawn(async move {
            sf2.run(SingleFlight::key("m", "t", None), None, far, || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                outcome()
            })
            .await
        });
        while sf.is_empty() {
            tokio::task::yield_now().await;
        }
        let sf3 = sf.clone();
        let follower = tokio::spawn(async move {
            sf3.run(SingleFlight::key("m", "t", None), None, far, || async {
                outcome()
            })
            .await
            .1
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        assert_eq!(follower.await.unwrap(), Served::Probed);
    }
}
