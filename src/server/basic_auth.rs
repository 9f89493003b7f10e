//! `basic_auth_users` checks that cannot be turned into a CPU burner. bcrypt is slow by design
//! (tens of milliseconds), so, as Prometheus' exporter-toolkit does:
//! - verdicts are cached by a digest of user, password and hash, the failed ones too: the same
//!   wrong password sent again costs a hash lookup, not a bcrypt;
//! - one bcrypt runs at a time, so a flood of new passwords takes one core, not all of them;
//! - an unknown user is checked against a fake hash of the same cost, so the time of a refusal
//!   does not tell which user names exist.

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

/// Verdicts kept; the cache is cleared when full (an attacker cycling passwords pays one
/// bcrypt per new password either way).
const MAX_CACHED: usize = 4096;

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Compared against for unknown users; as costly as the dearest real hash.
    fake_hash: String,
    verdicts: Mutex<HashMap<[u8; 32], bool>>,
    one_at_a_time: Semaphore,
    bcrypt_runs: AtomicU64,
}

impl BasicAuth {
    /// `users` maps names to bcrypt hashes, already checked to look like bcrypt.
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        let cost = users
            .values()
            .filter_map(|h| bcrypt_cost(h))
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        // Hashing a random-free constant is fine: nobody can log in with it (unknown users are
        // refused whatever the comparison says).
        let fake_hash = if users.is_empty() {
            String::new()
        } else {
            bcrypt::hash("siembox-exporter: no such user", cost).unwrap_or_default()
        };
        BasicAuth {
            users,
            fake_hash,
            verdicts: Mutex::new(HashMap::new()),
            one_at_a_time: Semaphore::new(1),
            bcrypt_runs: AtomicU64::new(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// How many bcrypt comparisons ran since start (tests, and a bound on the CPU spent).
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(Ordering::Relaxed)
    }

    /// Whether `user` with `password` is one of the configured users.
    pub async fn check(&self, user: &str, password: &str) -> bool {
        let (known, hash) = match self.users.get(user) {
            Some(h) => (true, h.as_str()),
            None => (false, self.fake_hash.as_str()),
        };
        let key = digest(user, password, hash);
        if let Some(v) = self.cached(&key) {
            return v && known;
        }
        let Ok(_permit) = self.one_at_a_time.acquire().await else {
            return false;
        };
        // Identical requests queued behind the permit find the verdict of the first.
        if let Some(v) = self.cached(&key) {
            return v && known;
        }
        self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
        let (password, hash_owned) = (password.to_string(), hash.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            bcrypt::verify(&password, &hash_owned).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let mut verdicts = self.verdicts.lock();
        if verdicts.len() >= MAX_CACHED {
            verdicts.clear();
        }
        verdicts.insert(key, ok);
        ok && known
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        self.verdicts.lock().get(key).copied()
    }
}

/// The cost field of a bcrypt hash (`$2y$10$…` → 10).
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

fn digest(user: &str, password: &str, hash: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(user.as_bytes())
        .chain_update([0u8])
        .chain_update(password.as_bytes())
        .chain_update([0u8])
        .chain_update(hash.as_bytes())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cost_of_a_hash() {
        assert_eq!(bcrypt_cost("$2y$10$abcdefghijklmnopqrstuu"), Some(10));
        assert_eq!(bcrypt_cost("$2b$04$x"), Some(4));
        assert_eq!(bcrypt_cost("nonsense"), None);
    }
}
