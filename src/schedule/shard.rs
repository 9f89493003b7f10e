//! `--schedule.shard=i/n`: replica i of n runs the scheduled targets whose stable hash of
//! (module, target) is i modulo n, so n replicas cover every target exactly once.

use crate::metrics::cardinality::fnv1a64;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index of this replica.
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    /// One replica runs everything.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Whether this replica runs `module` against `target`. FNV-1a over the raw bytes: the same
    /// answer in every process, on every machine and in every version.
    pub fn owns(&self, module: &str, target: &str) -> bool {
        self.count <= 1
            || fnv1a64(&[module.as_bytes(), target.as_bytes()]) % u64::from(self.count)
                == u64::from(self.index)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("invalid shard {s:?}: expected i/n with 0 <= i < n, e.g. 0/3");
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let index: u32 = i.trim().parse().map_err(|_| err())?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "1/3".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 3 }
        );
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn replicas_cover_every_target_exactly_once() {
        for n in [1u32, 2, 3, 5, 8, 13] {
            let mut per_shard = vec![0usize; n as usize];
            for t in 0..20_000 {
                let target = format!("10.{}.{}.{}:80", t / 65536, (t / 256) % 256, t % 256);
                let owners: Vec<u32> = (0..n)
                    .filter(|i| {
                        Shard {
                            index: *i,
                            count: n,
                        }
                        .owns("http_2xx", &target)
                    })
                    .collect();
                assert_eq!(owners.len(), 1, "{target} with n={n}: {owners:?}");
                per_shard[owners[0] as usize] += 1;
            }
            // Roughly even: no replica gets less than half its fair share.
            let fair = 20_000 / n as usize;
            assert!(
                per_shard.iter().all(|c| *c > fair / 2),
                "n={n}: {per_shard:?}"
            );
        }
    }

    #[test]
    fn assignment_is_pinned() {
        // The assignment must not change between versions (replicas of mixed versions during a
        // rolling update would otherwise skip or double targets).
        let s = |i| Shard { index: i, count: 7 };
        let owner = (0..7)
            .find(|i| s(*i).owns("tcp_connect", "example.org:443"))
            .unwrap();
        let expected = (fnv1a64(&[b"tcp_connect", b"example.org:443"]) % 7) as u32;
        assert_eq!(owner, expected);
        assert_eq!(fnv1a64(&[b"tcp_connect", b"example.org:443"]), PINNED);
    }

    const PINNED: u64 = 3_984_276_373_080_873_283;
}
