//! Dealing each prompt group's responses to the mini-critics (arXiv 2510.01656, Algorithm 1; the
//! rule is written out in `docs/data_engine.md`).

use crate::error::{EngineError, Result};
use crate::rng::SplitMix64;
use crate::segments::group_members;

/// The most critics [`shard_groups`] deals to: far beyond any ensemble, and it bounds the output
/// (`n_critics * n` bools) by a multiple of the input before anything is allocated.
pub const MAX_CRITICS: i64 = 1 << 16;

/// Which responses each critic trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardMode {
    /// Each group is shuffled and dealt round-robin: disjoint shards, balanced within every group.
    Disjoint,
    /// Every critic sees every response (the naive-ensemble ablation).
    Shared,
    /// One shuffle of the whole batch dealt round-robin, ignoring groups (the paper's failure mode).
    Random,
}

/// Row-major `[n_critics, n]` bools, `out[m * n + i]` true iff critic `m` trains on sequence `i`.
///
/// `Disjoint`: groups are taken in order of first appearance; each group's members are shuffled
/// (Fisher–Yates) by one SplitMix64 stream seeded with `seed` and dealt round-robin, the dealing
/// position carrying over from one group to the next. So every critic gets `floor(n_g / M)` or
/// `ceil(n_g / M)` of each group, the shards are disjoint and cover the batch, and the critics'
/// totals differ by at most one. `Random`: the whole batch is shuffled and dealt the same way.
/// `Shared`: every critic gets everything. Same inputs, same output, on every platform.
///
/// Errors: `n_critics` outside `[1, MAX_CRITICS]`, an output too large to allocate.
pub fn shard_groups(
    group_ids: &[i64],
    n_critics: i64,
    seed: u64,
    mode: ShardMode,
) -> Result<Vec<bool>> {
    if !(1..=MAX_CRITICS).contains(&n_critics) {
        return Err(EngineError::range(
            "n_critics",
            format!("an integer in [1, {MAX_CRITICS}]"),
            n_critics,
        ));
    }
    let (m, n) = (n_critics as usize, group_ids.len());
    let len = m.saturating_mul(n);
    let mut out = crate::error::try_vec(len, mode == ShardMode::Shared, "n_critics")?;
    let order: Vec<usize> = match mode {
        ShardMode::Shared => return Ok(out),
        ShardMode::Disjoint => {
            let groups = group_members(group_ids);
            let mut rng = SplitMix64::new(seed);
            let mut members = groups.members;
            for w in groups.starts.windows(2) {
                rng.shuffle(&mut members[w[0]..w[1]]);
            }
            members
        }
        ShardMode::Random => {
            let mut all: Vec<usize> = (0..n).collect();
            SplitMix64::new(seed).shuffle(&mut all);
            all
        }
    };
    // Deal: the j-th sequence in dealing order goes to critic j mod M.
    for (j, i) in order.into_iter().enumerate() {
        out[(j % m) * n + i] = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn critic_of(out: &[bool], m: usize, i: usize) -> Vec<usize> {
        let n = out.len() / m;
        (0..m).filter(|&c| out[c * n + i]).collect()
    }

    proptest! {
        #[test]
        fn disjoint_shards_partition_every_group_evenly(
            group_ids in prop::collection::vec(0i64..6, 0..60), m in 1i64..6, seed in any::<u64>()
        ) {
            let (n, mu) = (group_ids.len(), m as usize);
            let out = shard_groups(&group_ids, m, seed, ShardMode::Disjoint).unwrap();
            prop_assert_eq!(out.len(), mu * n);
            for i in 0..n {
                prop_assert_eq!(critic_of(&out, mu, i).len(), 1);
            }
            for members in group_members(&group_ids).iter() {
                for c in 0..mu {
                    let k = members.iter().filter(|&&i| out[c * n + i]).count();
                    prop_assert!(k == members.len() / mu || k == members.len().div_ceil(mu));
                }
            }
            let totals: Vec<usize> =
                (0..mu).map(|c| out[c * n..(c + 1) * n].iter().filter(|&&b| b).count()).collect();
            prop_assert!(totals.iter().max().unwrap() - totals.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn the_deal_is_the_documented_shuffle_and_deal() {
        // Groups 7 (members 0, 2) and 3 (1, 3, 4): each shuffled by one stream, dealt in turn.
        let ids = [7, 3, 7, 3, 3];
        let mut rng = SplitMix64::new(9);
        let (mut a, mut b) = (vec![0, 2], vec![1, 3, 4]);
        rng.shuffle(&mut a);
        rng.shuffle(&mut b);
        let out = shard_groups(&ids, 2, 9, ShardMode::Disjoint).unwrap();
        for (j, i) in a.into_iter().chain(b).enumerate() {
            assert_eq!(critic_of(&out, 2, i), vec![j % 2]);
        }
    }

    #[test]
    fn shared_gives_everything_to_everyone() {
        let out = shard_groups(&[0, 0, 1], 2, 0, ShardMode::Shared).unwrap();
        assert!(out.len() == 6 && out.iter().all(|&b| b));
    }

    #[test]
    fn random_mode_is_a_balanced_split() {
        let out = shard_groups(&[0; 9], 3, 4, ShardMode::Random).unwrap();
        assert!((0..9).all(|i| critic_of(&out, 3, i).len() == 1));
        assert!((0..3).all(|c| out[c * 9..(c + 1) * 9].iter().filter(|&&b| b).count() == 3));
    }

    #[test]
    fn seed_changes_the_deal_but_not_its_balance() {
        let ids = vec![0i64; 64];
        let a = shard_groups(&ids, 2, 1, ShardMode::Disjoint).unwrap();
        let b = shard_groups(&ids, 2, 2, ShardMode::Disjoint).unwrap();
        assert_ne!(a, b);
        assert_eq!(a[..64].iter().filter(|&&x| x).count(), 32);
        assert_eq!(b[..64].iter().filter(|&&x| x).count(), 32);
    }

    #[test]
    fn critic_counts_outside_the_range_are_refused_before_allocating() {
        for m in [0, -1, MAX_CRITICS + 1, i64::MAX] {
            let err = shard_groups(&[0, 1], m, 0, ShardMode::Shared).unwrap_err();
            assert!(err
                .to_string()
                .starts_with("n_critics: expected an integer in"));
        }
        assert_eq!(
            shard_groups(&[], MAX_CRITICS, 0, ShardMode::Disjoint)
                .unwrap()
                .len(),
            0
        );
    }
}
