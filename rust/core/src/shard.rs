//! Dealing each prompt group's responses to the mini-critics (AsyPPO §3 step 3).

use std::collections::HashMap;

use crate::dispatch::avx2_dispatch;
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
/// every run is a whole group; `None` otherwise. The neighbours are compared 64 pairs at a time
/// into a bit mask of run starts (vectorised; AVX2 when the CPU has it).
pub fn ascending_runs(group_ids: &[i64]) -> Option<Vec<usize>> {
    let mut starts = vec![0];
    let mut descending = false;
    for (block, (left, right)) in group_ids
        .chunks(64)
        .zip(group_ids.get(1..).unwrap_or_default().chunks(64))
        .enumerate()
    {
        let mut changes = changed_neighbours(&left[..right.len()], right, &mut descending);
        while changes != 0 {
            starts.push(64 * block + 1 + changes.trailing_zeros() as usize);
            changes &= changes - 1;
        }
    }
    if !group_ids.is_empty() {
        starts.push(group_ids.len());
    }
    (!descending).then_some(starts)
}

avx2_dispatch! {
    /// Bit `j` set iff `left[j] != right[j]` (at most 64 pairs); sets `descending` if any
    /// `left[j] > right[j]`.
    fn changed_neighbours<>(left: &[i64], right: &[i64], descending: &mut bool) -> u64
        = changed_neighbours_portable;
}

#[inline(always)]
fn changed_neighbours_portable(left: &[i64], right: &[i64], descending: &mut bool) -> u64 {
    let mut changes = 0u64;
    let mut down = false;
    for (j, (x, y)) in left.iter().zip(right).enumerate() {
        changes |= u64::from(x != y) << j;
        down |= x > y;
    }
    *descending |= down;
    changes
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
/// With two critics the shuffle and deal are not run but drawn in law ([`deal_to_two`]).
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
    if mode == ShardMode::Disjoint && n_critics == 2 {
        deal_to_two(group_ids, seed, out);
        return Ok(());
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

/// `Disjoint` dealing to two critics (the paper's setting). Shuffling a group of `n_g` and dealing
/// it from the critic whose turn it is decides only which `ceil(n_g / 2)` members that critic
/// gets, and every such subset is equally likely; so the subset is drawn directly and uniformly
/// ([`Subsets`]): the same distribution as the shuffle, from far fewer random bits (a group of 8
/// takes about half a generator word instead of 7 bounded draws). The turn passes when `n_g` is
/// odd, as the dealing position would.
fn deal_to_two(group_ids: &[i64], seed: u64, out: &mut [bool]) {
    let n = group_ids.len();
    let (first, second) = out.split_at_mut(n);
    let mut subsets = Subsets(SplitMix64::new(seed));
    if with_fixed_group_size!(group_ids, G => {
        deal_fixed_size::<G>(group_ids, &mut subsets, first, second)
    }) {
        return;
    }
    let mut second_takes_more = false;
    match ascending_runs(group_ids) {
        // Every group a contiguous stretch: its bits are written eight at a time.
        Some(starts) => {
            for w in starts.windows(2) {
                let (a, b) = (&mut first[w[0]..w[1]], &mut second[w[0]..w[1]]);
                let (more, fewer) = if second_takes_more { (b, a) } else { (a, b) };
                subsets.draw(w[1] - w[0], |block, bits| {
                    write_bits(bits, &mut more[64 * block..]);
                    write_bits(!bits, &mut fewer[64 * block..]);
                });
                second_takes_more ^= (w[1] - w[0]) % 2 == 1;
            }
        }
        None => {
            for members in group_members(group_ids).iter() {
                subsets.draw(members.len(), |block, bits| {
                    for (j, &i) in members[64 * block..].iter().take(64).enumerate() {
                        let to_more = bits >> j & 1 == 1;
                        first[i] = to_more != second_takes_more;
                        second[i] = to_more == second_takes_more;
                    }
                });
                second_takes_more ^= members.len() % 2 == 1;
            }
        }
    }
}

/// The length of the first run of equal ids if it divides the batch: the candidate size of a
/// fixed-size layout, to be checked with [`fixed_size_runs`].
pub(crate) fn leading_run_length(group_ids: &[i64]) -> Option<usize> {
    let size = group_ids
        .iter()
        .take_while(|&&id| id == group_ids[0])
        .count();
    (size > 0 && group_ids.len().is_multiple_of(size)).then_some(size)
}

/// `$body` with `$g` a `const usize` holding the group size of `$ids` if it is one of the sizes
/// that get code of their own (2, 4, ..., 64, the usual n samples per prompt; see
/// [`leading_run_length`]), else `false`. `$body` returns whether it handled the layout.
macro_rules! with_fixed_group_size {
    ($ids:expr, $g:ident => $body:expr) => {
        $crate::shard::with_fixed_group_size!(@sizes $ids, $g, $body; 2 4 8 16 32 64)
    };
    (@sizes $ids:expr, $g:ident, $body:expr; $($size:literal)*) => {
        match $crate::shard::leading_run_length($ids) {
            $(Some($size) => {
                const $g: usize = $size;
                $body
            })*
            _ => false,
        }
    };
}

pub(crate) use with_fixed_group_size;

/// Whether the ids are consecutive runs of exactly `G` equal ids, ascending from run to run (one
/// pass the compiler vectorises; `group_ids.len()` a multiple of `G`).
#[inline(always)]
pub(crate) fn fixed_size_runs<const G: usize>(group_ids: &[i64]) -> bool {
    let runs = group_ids.as_chunks::<G>().0;
    runs.iter()
        .all(|g| g.iter().fold(true, |same, &x| same & (x == g[0])))
        && runs.windows(2).all(|w| w[0][0] < w[1][0])
}

avx2_dispatch! {
    /// [`deal_to_two`] when the groups are consecutive runs of `G` (even, so the turn never
    /// passes) with ascending ids: all subsets drawn at once ([`Subsets::many`]) and written as
    /// whole rows. `false`, with nothing written, for any other layout.
    fn deal_fixed_size<; const G: usize>(
        group_ids: &[i64],
        subsets: &mut Subsets,
        first: &mut [bool],
        second: &mut [bool],
    ) -> bool = deal_fixed_size_portable;
}

#[inline(always)]
fn deal_fixed_size_portable<const G: usize>(
    group_ids: &[i64],
    subsets: &mut Subsets,
    first: &mut [bool],
    second: &mut [bool],
) -> bool {
    if !fixed_size_runs::<G>(group_ids) {
        return false;
    }
    let (a, b) = (first.as_chunks_mut::<G>().0, second.as_chunks_mut::<G>().0);
    for ((a, b), bits) in a
        .iter_mut()
        .zip(b)
        .zip(subsets.many::<G>(group_ids.len() / G))
    {
        write_bits(bits, a);
        write_bits(!bits, b);
    }
    true
}

/// Uniform `ceil(n / 2)`-subsets of `n` members from a generator.
struct Subsets(SplitMix64);

impl Subsets {
    /// Draw a uniform subset of `ceil(n / 2)` of `n` members, handed to `emit(block, bits)` 64
    /// members at a time (bit `j` of block `b`: member `64 b + j` is in the subset).
    ///
    /// Up to 64 members: random `n`-bit patterns, rejected until one has `ceil(n / 2)` bits set
    /// ([`Lanes`]); every pattern is equally likely, so every accepted subset is too. About
    /// `sqrt(pi n / 2)` patterns are needed (3.5 for 8 members), several from each generator
    /// word. Beyond 64 members: selection sampling (Knuth, TAOCP vol. 2, §3.4.2, Algorithm S),
    /// member `j` joining with probability `(still needed) / (members left)`.
    fn draw(&mut self, n: usize, mut emit: impl FnMut(usize, u64)) {
        if n <= 64 {
            let lanes = Lanes::new(n as u32);
            loop {
                let candidates = lanes.candidates(self.0.next_u64());
                let matches = lanes.matches(candidates);
                if matches != 0 {
                    emit(0, lanes.lane(candidates, matches.trailing_zeros()));
                    return;
                }
            }
        }
        let mut needed = n - n / 2;
        for block in 0..n.div_ceil(64) {
            let mut bits = 0u64;
            for j in 0..(n - 64 * block).min(64) {
                if self.0.below(n - 64 * block - j) < needed {
                    bits |= 1 << j;
                    needed -= 1;
                }
            }
            emit(block, bits);
        }
    }

    /// `count` independent uniform `G / 2`-subsets of `G <= 64` members, as bits. Every matching
    /// lane of a word is kept, without a branch per lane: each lane is stored at the fill
    /// position, which advances only past the matches.
    #[inline(always)]
    fn many<const G: usize>(&mut self, count: usize) -> Vec<u64> {
        let lanes = Lanes::new(G as u32);
        let per_word = (64 / lanes.width) as usize;
        let mut subsets = vec![0; count + per_word];
        let mut filled = 0;
        while filled < count {
            let candidates = lanes.candidates(self.0.next_u64());
            let matches = lanes.matches(candidates);
            for lane in 0..per_word {
                let flag = lane as u32 * lanes.width + 7;
                subsets[filled] = lanes.lane(candidates, flag);
                filled += (matches >> flag & 1) as usize;
            }
        }
        subsets.truncate(count);
        subsets
    }
}

/// A generator word read as candidate subsets of `n <= 64` members wanting `k = ceil(n / 2)`:
/// lanes of `width` bits (`n` rounded up to a power of two, at least 8), each lane's low `n`
/// bits one candidate. Lanes are disjoint bits of a uniform word, so they are independent and
/// uniform, and so is each lane that matches.
#[derive(Clone, Copy)]
struct Lanes {
    n: u32,
    k: u32,
    width: u32,
    /// One in the lowest bit of each lane.
    ones: u64,
}

impl Lanes {
    #[inline(always)]
    fn new(n: u32) -> Self {
        let width = n.next_power_of_two().max(8);
        let ones = match width {
            8 => 0x0101_0101_0101_0101,
            16 => 0x0001_0001_0001_0001,
            32 => 0x0000_0001_0000_0001,
            _ => 1,
        };
        Self {
            n,
            k: n - n / 2,
            width,
            ones,
        }
    }

    /// The low `n` bits.
    #[inline(always)]
    fn all(self) -> u64 {
        u64::MAX >> (64 - self.n)
    }

    /// The word with each lane cut to its low `n` bits.
    #[inline(always)]
    fn candidates(self, word: u64) -> u64 {
        word & (self.all() * self.ones)
    }

    /// Bit 7 of every lane whose candidate has `k` bits set, counted for all lanes at once
    /// (SWAR population count, then the counts of a lane's bytes summed into its low byte).
    #[inline(always)]
    fn matches(self, candidates: u64) -> u64 {
        let mut counts = candidates - ((candidates >> 1) & 0x5555_5555_5555_5555);
        counts = (counts & 0x3333_3333_3333_3333) + ((counts >> 2) & 0x3333_3333_3333_3333);
        counts = (counts + (counts >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        if self.width >= 16 {
            counts = (counts + (counts >> 8)) & 0x00ff_00ff_00ff_00ff;
        }
        if self.width >= 32 {
            counts = (counts + (counts >> 16)) & 0x0000_ffff_0000_ffff;
        }
        if self.width == 64 {
            counts = (counts + (counts >> 32)) & 0xffff_ffff;
        }
        // A lane's count XOR k is at most 127: adding 0x7f sets its bit 7 unless it is zero.
        let high = 0x80 * self.ones;
        !(((counts ^ (u64::from(self.k) * self.ones)) + 0x7f * self.ones) & high) & high
    }

    /// The candidate of the lane that holds bit `flag`.
    #[inline(always)]
    fn lane(self, candidates: u64, flag: u32) -> u64 {
        (candidates >> (flag & !(self.width - 1))) & self.all()
    }
}

/// Each byte value as eight bools, least significant bit first.
const BOOLS_OF_BYTE: [[bool; 8]; 256] = {
    let mut table = [[false; 8]; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut j = 0;
        while j < 8 {
            table[byte][j] = byte >> j & 1 == 1;
            j += 1;
        }
        byte += 1;
    }
    table
};

/// `row[j] = bit j of bits` for the first `min(64, row.len())` entries, a byte of bits at a time.
fn write_bits(bits: u64, row: &mut [bool]) {
    let len = row.len().min(64);
    let (bytes, rest) = row[..len].as_chunks_mut::<8>();
    for (chunk, byte) in bytes.iter_mut().zip(bits.to_le_bytes()) {
        *chunk = BOOLS_OF_BYTE[usize::from(byte)];
    }
    if !rest.is_empty() {
        let byte = (bits >> (8 * bytes.len())) as u8;
        rest.copy_from_slice(&BOOLS_OF_BYTE[usize::from(byte)][..rest.len()]);
    }
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

    proptest! {
        #[test]
        fn lane_matches_agree_with_a_plain_bit_count(n in 1u32..=64, word in any::<u64>()) {
            let lanes = Lanes::new(n);
            let candidates = lanes.candidates(word);
            let matches = lanes.matches(candidates);
            for lane in 0..64 / lanes.width {
                let flag = lane * lanes.width + 7;
                let candidate = lanes.lane(candidates, flag);
                prop_assert_eq!(candidate, (word >> (lane * lanes.width)) & lanes.all());
                prop_assert_eq!(matches >> flag & 1 == 1, candidate.count_ones() == n - n / 2);
            }
        }

        #[test]
        fn two_critics_balance_groups_of_any_size_in_either_layout(
            sizes in prop::collection::vec(1usize..150, 0..12), seed in any::<u64>(), scatter in any::<bool>()
        ) {
            // Ascending runs (fixed-size or not), or the same groups interleaved.
            let mut group_ids: Vec<i64> = sizes.iter().enumerate()
                .flat_map(|(g, &s)| std::iter::repeat_n(g as i64, s)).collect();
            if scatter {
                SplitMix64::new(seed).shuffle(&mut group_ids);
            }
            let n = group_ids.len();
            let mut out = vec![false; 2 * n];
            shard_groups(&group_ids, 2, seed, ShardMode::Disjoint, &mut out).unwrap();
            prop_assert!((0..n).all(|i| out[i] != out[n + i]));
            for members in group_members(&group_ids).iter() {
                let k = members.iter().filter(|&&i| out[i]).count();
                prop_assert!(k == members.len() / 2 || k == members.len().div_ceil(2));
            }
            let first = out[..n].iter().filter(|&&b| b).count();
            prop_assert!(first.abs_diff(n - first) <= 1);
        }
    }

    /// Chi-square statistic of `counts` against equal expected frequencies.
    fn chi_square(counts: &HashMap<u64, usize>, draws: usize, outcomes: usize) -> f64 {
        let expected = draws as f64 / outcomes as f64;
        assert_eq!(counts.len(), outcomes, "every subset should occur");
        counts
            .values()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn every_subset_is_equally_likely() {
        // 0.1 % critical values of chi-square: 5 degrees of freedom 20.5, 9: 27.9, 69: 111.
        for (n, outcomes, critical) in [(4usize, 6, 20.5), (5, 10, 27.9), (8, 70, 111.0)] {
            let draws = 2000 * outcomes;
            let mut subsets = Subsets(SplitMix64::new(n as u64));
            let mut one_at_a_time = HashMap::new();
            for _ in 0..draws {
                subsets.draw(n, |_, bits| *one_at_a_time.entry(bits).or_insert(0) += 1);
            }
            assert!(one_at_a_time
                .keys()
                .all(|b| b.count_ones() as usize == n - n / 2));
            assert!(
                chi_square(&one_at_a_time, draws, outcomes) < critical,
                "draw, n = {n}"
            );
            if n == 8 {
                let mut all_at_once = HashMap::new();
                for bits in subsets.many::<8>(draws) {
                    *all_at_once.entry(bits).or_insert(0) += 1;
                }
                assert!(
                    chi_square(&all_at_once, draws, outcomes) < critical,
                    "many, n = 8"
                );
            }
        }
    }

    #[test]
    fn selection_sampling_of_large_groups_is_exact_and_even() {
        // 100 members: 50 chosen every time, each member about half the time.
        let mut subsets = Subsets(SplitMix64::new(11));
        let mut chosen = [0usize; 100];
        for _ in 0..4000 {
            let mut count = 0;
            subsets.draw(100, |block, bits| {
                for (j, c) in chosen[64 * block..].iter_mut().take(64).enumerate() {
                    *c += (bits >> j & 1) as usize;
                }
                count += (bits & (u64::MAX >> (64 - (100 - 64 * block).min(64)))).count_ones();
            });
            assert_eq!(count, 50);
        }
        // Binomial(4000, 1/2): sd 31.6; 5 sd.
        assert!(chosen.iter().all(|&c| c.abs_diff(2000) < 160), "{chosen:?}");
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
