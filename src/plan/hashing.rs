//! The planner's hash maps and look-alike keys: Fx hashing (rustc-hash),
//! seeded once per process.
//!
//! A plan of 100,000 people looks each of them up several times by address,
//! id and (id, product); with std's SipHash, hashing was a quarter of the
//! planner's instructions. Fx costs a fraction of that. The per-process
//! seed keeps bucket placement unpredictable to whoever picks the
//! addresses. Iteration order never reaches a plan: everything the planner
//! emits is sorted.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::OnceLock;

use rustc_hash::FxHasher;

pub type Map<K, V> = HashMap<K, V, Seeded>;
pub type Set<T> = HashSet<T, Seeded>;

/// Builds Fx hashers from this process's seed.
#[derive(Clone, Copy)]
pub struct Seeded {
    seed: usize,
}

impl Default for Seeded {
    fn default() -> Self {
        static SEED: OnceLock<usize> = OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            // std's RandomState draws its keys from the OS once per process.
            std::collections::hash_map::RandomState::new().hash_one(0x5eed_u32) as usize
        });
        Seeded { seed }
    }
}

impl BuildHasher for Seeded {
    type Hasher = FxHasher;

    fn build_hasher(&self) -> FxHasher {
        FxHasher::with_seed(self.seed)
    }
}

/// An empty map with room for `n` entries.
pub fn map_with_capacity<K, V>(n: usize) -> Map<K, V> {
    HashMap::with_capacity_and_hasher(n, Seeded::default())
}
