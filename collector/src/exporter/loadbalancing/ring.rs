//! Consistent hashing: which backend owns a trace id.
//!
//! Each backend is placed on a 64-bit ring at [`VIRTUAL_NODES`] pseudo-random points
//! (hashes of `endpoint#i`); a trace id belongs to the first point at or after its own
//! hash. Adding a backend takes over only the arcs in front of its new points (about 1/n of
//! the ids), and removing one hands only its own arcs to the neighbours, so a gateway
//! joining or leaving re-routes ~1/n of the traces in flight instead of almost all of them
//! (which `hash % n` would do, splitting every trace being assembled at that moment).
//!
//! Positions depend on the endpoint strings only, never on list order or process, so every
//! sidecar with the same backend set routes a trace id to the same gateway.

/// Points per backend. With 200, each backend's share stays within about ±15% of 1/n
/// (the spread of a sum of 200 arcs), at 200 × 16 bytes per backend.
pub const VIRTUAL_NODES: u32 = 200;

#[derive(Debug, Clone, Default)]
pub struct HashRing {
    /// (position, backend index), sorted by position.
    points: Vec<(u64, usize)>,
    /// Sorted, without duplicates.
    backends: Vec<String>,
}

impl HashRing {
    pub fn new(backends: impl IntoIterator<Item = String>) -> HashRing {
        let mut backends: Vec<String> = backends.into_iter().collect();
        backends.sort();
        backends.dedup();
        let mut points = Vec::with_capacity(backends.len() * VIRTUAL_NODES as usize);
        for (i, b) in backends.iter().enumerate() {
            for v in 0..VIRTUAL_NODES {
                points.push((position(format!("{b}#{v}").as_bytes()), i));
            }
        }
        // Ties (vanishingly rare) are broken by backend order, itself sorted by name, so
        // the ring is the same in every process.
        points.sort_unstable();
        HashRing { points, backends }
    }

    pub fn backends(&self) -> &[String] {
        &self.backends
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The index (into [`HashRing::backends`]) of the backend owning `key`; `None` on an
    /// empty ring.
    pub fn route(&self, key: &[u8]) -> Option<usize> {
        let first = self.points.first()?;
        let h = position(key);
        let at = self.points.partition_point(|(p, _)| *p < h);
        Some(self.points.get(at).unwrap_or(first).1)
    }
}

/// FNV-1a over the bytes, then the SplitMix64 finalizer: FNV alone clusters the points of
/// similar strings (`gw#1`, `gw#2`), the finalizer spreads them over the ring. Stable
/// across processes and releases, unlike `std`'s randomly keyed hasher.
fn position(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateways(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("http://10.0.0.{i}:4317")).collect()
    }

    /// 100,000 random-looking 16-byte trace ids.
    fn trace_ids() -> Vec<[u8; 16]> {
        let mut x: u64 = 42;
        (0..100_000)
            .map(|_| {
                let mut id = [0u8; 16];
                for half in id.chunks_mut(8) {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    half.copy_from_slice(&x.to_be_bytes());
                }
                id
            })
            .collect()
    }

    fn owners(ring: &HashRing, ids: &[[u8; 16]]) -> Vec<String> {
        ids.iter()
            .map(|id| ring.backends()[ring.route(id).unwrap()].clone())
            .collect()
    }

    #[test]
    fn an_empty_ring_routes_nowhere_and_one_backend_takes_all() {
        assert_eq!(HashRing::new(Vec::new()).route(b"x"), None);
        let ring = HashRing::new(gateways(1));
        assert!(trace_ids().iter().all(|id| ring.route(id) == Some(0)));
    }

    #[test]
    fn every_backend_gets_a_fair_share() {
        let ids = trace_ids();
        for n in [2, 3, 5, 10] {
            let ring = HashRing::new(gateways(n));
            let owners = owners(&ring, &ids);
            for b in ring.backends() {
                let share = owners.iter().filter(|o| *o == b).count() as f64 / ids.len() as f64;
                let fair = 1.0 / n as f64;
                assert!(
                    (share - fair).abs() < 0.25 * fair,
                    "{n} backends: {b} has {share:.3}, fair is {fair:.3}"
                );
            }
        }
    }

    #[test]
    fn adding_a_backend_moves_about_one_nth_and_only_to_it() {
        let ids = trace_ids();
        for n in [2, 4, 8] {
            let before = owners(&HashRing::new(gateways(n)), &ids);
            let after = owners(&HashRing::new(gateways(n + 1)), &ids);
            let new = gateways(n + 1).pop().unwrap();
            let moved: Vec<_> = (0..ids.len()).filter(|&i| before[i] != after[i]).collect();
            assert!(
                moved.iter().all(|&i| after[i] == new),
                "keys only move to the new backend"
            );
            let fraction = moved.len() as f64 / ids.len() as f64;
            let expected = 1.0 / (n + 1) as f64;
            assert!(
                (fraction - expected).abs() < 0.3 * expected,
                "{n}->{}: moved {fraction:.3}, expected ~{expected:.3}",
                n + 1
            );
        }
    }

    #[test]
    fn removing_a_backend_moves_only_its_own_keys() {
        let ids = trace_ids();
        let all = gateways(5);
        let before = owners(&HashRing::new(all.clone()), &ids);
        let gone = all[2].clone();
        let after = owners(&HashRing::new(all.into_iter().filter(|b| *b != gone)), &ids);
        for i in 0..ids.len() {
            if before[i] != gone {
                assert_eq!(before[i], after[i], "a key of a remaining backend moved");
            }
        }
        let moved = (0..ids.len()).filter(|&i| before[i] != after[i]).count() as f64;
        assert!(
            (moved / ids.len() as f64 - 0.2).abs() < 0.06,
            "moved {moved}"
        );
    }

    #[test]
    fn order_and_duplicates_of_the_list_do_not_matter() {
        let ids = trace_ids();
        let mut shuffled = gateways(4);
        shuffled.reverse();
        shuffled.push(shuffled[0].clone());
        assert_eq!(
            owners(&HashRing::new(gateways(4)), &ids),
            owners(&HashRing::new(shuffled), &ids)
        );
    }
}
