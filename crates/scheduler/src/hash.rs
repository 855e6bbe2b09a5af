//! The stable seeded hash that breaks ties between equally scored nodes and picks where a node scan starts, so
//! that the same input with the same seed always gives the same plan (no process-random hasher involved).

/// Mixes `bytes` into `state` (FNV-1a), then finishes with a splitmix64 round for good low bits.
pub fn stable_hash(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix(h)
}

/// One splitmix64 finalisation round.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_hash_and_seed_matters() {
        let a = stable_hash(1, &[b"web-0", b"node-1"]);
        assert_eq!(a, stable_hash(1, &[b"web-0", b"node-1"]));
        assert_ne!(a, stable_hash(2, &[b"web-0", b"node-1"]));
        assert_ne!(a, stable_hash(1, &[b"web-0n", b"ode-1"]));
    }
}
