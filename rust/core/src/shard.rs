//! Dealing each prompt group's responses to the mini-critics (AsyPPO §3 step 3).

use std::collections::HashMap;

use crate::error::{EngineError, Result};
use crate::rng::SplitMix64;
use crate::segments::Groups;

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

/// Where the runs of equal ids start (`[0, s_1, ..., n]`, CSR-style) if the ids ascend, so that
/// every run is a whole group; `None` otherwise.
pub fn ascending_runs(group_ids: &[i64]) -> Option<Vec<usize>> {
    let mut starts = vec![0];
    let mut ascending = true;
    for (i, w) in (1..).zip(group_ids.windows(2)) {
        ascending &= w[0] <= w[1];
        if w[0] != w[1] {
            starts.push(i);
        }
    }
    if !group_ids.is_empty() {
        starts.push(group_ids.len());
    }
    ascending.then_some(starts)
}

/// Group the sequences by `group_ids`. The responses to one prompt usually sit side by side, and
/// usually in ascending id order: then every run of equal ids is a whole group and no lookup is
/// needed. Otherwise the hash map is consulted once per run of equal ids, not once per
/// sequence. Either way the members land in one allocation (no vector per group).
pub fn group_members(group_ids: &[i64]) -> Groups {
    if let Some(starts) = ascending_runs(group_ids) {
        let members = (0..group_ids.len()).collect();
        return Groups { members, starts };
    }
    let mut slot: HashMap<i64, usize> = HashMap::new();
    let mut labels = vec![0; group_ids.len()];
    let mut run_start = 0;
    for run in group_ids.chunk_by(|a, b| a == b) {
        let n_groups = slot.len();
        let g = *slot.entry(run[0]).or_insert(n_groups);
        labels[run_start..run_start + run.len()].fill(g);
        run_start += run.len();
    }
    Groups::from_labels(&labels, slot.len())
}

/// Fill `out` (row-major `[n_critics, n_seq]`) with `out[m, i] = true` iff critic `m` trains on
/// sequence `i`.
///
/// `Disjoint`: groups are taken in order of first appearance; each group's members are shuffled
/// by a SplitMix64 stream seeded with `seed` and dealt round-robin, the dealing cursor carrying
/// over from one group to the next. So every critic gets `floor(n_g / M)` or `ceil(n_g / M)` of
/// each group, the shards are disjoint and cover the batch, and the totals differ by at most one.
/// `Random`: the whole batch is shuffled and dealt the same way. Same inputs, same output.
///
/// Errors: `n_critics == 0`, `out.len() != n_critics * n_seq`.
pub fn shard_groups(
    group_ids: &[i64],
    n_critics: usize,
    seed: u64,
    mode: ShardMode,
    out: &mut [bool],
) -> Result<()> {
    if n_critics == 0 {
        return Err(EngineError::range("n_critics", "at least 1", 0));
    }
    let n = group_ids.len();
    if out.len() != n_critics * n {
        return Err(EngineError::shape(
            "out",
            format!("{n_critics} * {n} elements"),
            out.len(),
        ));
    }
    out.fill(mode == ShardMode::Shared);
    // The sequences in dealing order: every group shuffled in turn, or the whole batch at once.
    let (mut order, starts) = match mode {
        ShardMode::Shared => return Ok(()),
        ShardMode::Disjoint => {
            let groups = group_members(group_ids);
            (groups.members, groups.starts)
        }
        ShardMode::Random => ((0..n).collect(), vec![0, n]),
    };
    let mut rng = SplitMix64::new(seed);
    for w in starts.windows(2) {
        rng.shuffle(&mut order[w[0]..w[1]]);
    }
    // Round-robin over the whole order, so the dealing position carries over from group to group.
    for deal in order.chunks(n_critics) {
        for (critic, &i) in deal.iter().enumerate() {
            out[critic * n + i] = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn disjoint_shards_partition_every_group_evenly(
            group_ids in prop::collection::vec(0i64..6, 0..60), m in 1usize..6, seed in any::<u64>()
        ) {
            let n = group_ids.len();
            let mut out = vec![false; m * n];
            shard_groups(&group_ids, m, seed, ShardMode::Disjoint, &mut out).unwrap();
            for i in 0..n {
                prop_assert_eq!((0..m).filter(|&c| out[c * n + i]).count(), 1);
            }
            for members in group_members(&group_ids).iter() {
                let ng = members.len();
                for c in 0..m {
                    let k = members.iter().filter(|&&i| out[c * n + i]).count();
                    prop_assert!(k == ng / m || k == ng.div_ceil(m));
                }
            }
            let totals: Vec<usize> = (0..m).map(|c| out[c * n..(c + 1) * n].iter().filter(|&&b| b).count()).collect();
            prop_assert!(totals.iter().max().unwrap() - totals.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn shared_gives_everything_to_everyone() {
        let mut out = vec![false; 6];
        shard_groups(&[0, 0, 1], 2, 0, ShardMode::Shared, &mut out).unwrap();
        assert!(out.iter().all(|&b| b));
    }

    #[test]
    fn seed_changes_the_deal_but_not_its_balance() {
        let ids = vec![0i64; 64];
        let (mut a, mut b) = (vec![false; 128], vec![false; 128]);
        shard_groups(&ids, 2, 1, ShardMode::Disjoint, &mut a).unwrap();
        shard_groups(&ids, 2, 2, ShardMode::Disjoint, &mut b).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            a.iter().filter(|&&x| x).count(),
            b.iter().filter(|&&x| x).count()
        );
    }

    proptest! {
        #[test]
        fn group_members_matches_a_linear_scan(
            mut group_ids in prop::collection::vec(-3i64..4, 0..40), sort in any::<bool>()
        ) {
            if sort {
                group_ids.sort_unstable(); // the lookup-free path
            }
            let mut reference: Vec<(i64, Vec<usize>)> = Vec::new();
            for (i, &id) in group_ids.iter().enumerate() {
                match reference.iter_mut().find(|(g, _)| *g == id) {
                    Some((_, members)) => members.push(i),
                    None => reference.push((id, vec![i])),
                }
            }
            let groups = group_members(&group_ids);
            let got: Vec<&[usize]> = groups.iter().collect();
            let want: Vec<&[usize]> = reference.iter().map(|(_, m)| &m[..]).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn group_members_collects_scattered_runs_in_order_of_first_appearance() {
        let groups = group_members(&[7, 7, 3, 3, 7, 5, 3]);
        let got: Vec<&[usize]> = groups.iter().collect();
        assert_eq!(got, vec![&[0, 1, 4][..], &[2, 3, 6][..], &[5][..]]);
        assert_eq!(group_members(&[]).len(), 0);
    }
}
