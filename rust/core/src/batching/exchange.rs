//! The exact split of [`super::balanced_partition`] for batches of many items per part: parts
//! whose token sums differ by at most 1, the most balanced split there is, in time linear in the
//! number of items.
//!
//! With `T` tokens in `k` parts, `T = q k + r` (`0 <= r < k`), a split is optimal when `r` parts
//! hold `q + 1` tokens and the others `q`: no split has a smaller spread (max - min part sum).
//! Items start dealt round-robin (item `i` in part `i mod k`, its *home*), which is already
//! nearly even for lengths in any order that changes slowly (sorted, or grouped by prompt), and
//! three steps get from there to an optimal split:
//!
//! 1. **Level** ([`Split::level`]): while the heaviest and lightest parts differ by more than a
//!    quarter to a half of the longest item, move from the heaviest to the lightest one of its
//!    home items that is at most half their difference (a large one while the gap is large).
//!    The spread never grows, so each part's home items are scanned at most twice.
//! 2. **Settle** ([`Split::settle`]): one part at a time, the open part farthest from its target
//!    (`q` or `q + 1`, as many of each as the split needs) is brought to it exactly. With `d` the
//!    tokens it holds too many: it takes in an item of length `-d` from another open part, gives
//!    one of length `d`, swaps one of its items `a` for another open part's `a - d`, or, rarely,
//!    trades two items for one. Items are found by length in a table, so a part is settled in
//!    about as many probes as it takes to meet a length present elsewhere. The other open part
//!    absorbs `d`; the last one is exact by the sums.
//! 3. **List** ([`Split::into_groups`]): the parts by decreasing sum, indices ascending.
//!
//! The exchanges need items of many lengths in every part, so the split is attempted only with
//! many items per part, and it reports `None` when a step finds no item to move: the caller
//! then falls back to largest differencing. With 128 items of lengths up to 8,192 per part it
//! succeeds on nearly every random batch; see the tests.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;

use crate::segments::Groups;

/// Fewest items per part, on average, with which the split is attempted.
const MIN_ITEMS_PER_PART: usize = 32;
/// Pairs of items the three-item exchanges may try, per item, before the split gives up.
const PROBES_PER_ITEM: usize = 8;
/// Longest length the lookup table covers (a `u32` per length, 4 MiB per thread at most).
const MAX_TABLE_LENGTH: i64 = 1 << 20;

/// Whether [`exact_split`] is worth trying on `n` items of lengths up to `bound` (non-negative)
/// in `k` parts: at least [`MIN_ITEMS_PER_PART`] items per part, lengths the table covers, and
/// enough items per part for the lengths to meet: `(n / k)^2 >= bound / 8`. Below that the
/// exchanges rarely exist (measured on 100 batches of uniform lengths into 8 parts: found on 83 to
/// 100 of them at `(n / k)^2 = max / 8`, on 16 at `max / 32`, never at `max / 64`).
pub(super) fn worth_trying(n: usize, k: usize, bound: i64) -> bool {
    let per_part = (n / k) as u128;
    per_part >= MIN_ITEMS_PER_PART as u128
        && bound <= MAX_TABLE_LENGTH
        && n < u32::MAX as usize
        && 8 * per_part * per_part >= bound as u128
}

thread_local! {
    /// An item of each length, by length: reused across calls and never cleared, since an entry
    /// is trusted only if it names an item of the current call with that length
    /// ([`Split::item_of_length`]), and each call writes an entry for each of its lengths.
    static BY_LENGTH: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Split `lengths` (non-negative, summing to `total`, none above `bound`; see [`worth_trying`])
/// into `k` parts whose sums differ by at most 1, listed by decreasing sum, indices ascending;
/// `None` when the exchanges find no item to move.
pub(super) fn exact_split(lengths: &[i64], k: usize, total: i64, bound: i64) -> Option<Groups> {
    BY_LENGTH.with_borrow_mut(|by_length| {
        if by_length.len() <= bound as usize {
            by_length.resize(bound as usize + 1, 0);
        }
        // The spread levelling stops at: a power of two from a quarter to a half of the longest
        // length (`bound` is at least the longest and has no more bits).
        let spread = ((1i64 << (64 - bound.leading_zeros())) / 4).max(1);
        let mut split = Split::new(lengths, k, total, by_length);
        let ones = (total % k as i64) as usize;
        (split.level(spread) && split.settle(ones)).then(|| split.into_groups())
    })
}

/// Relocations `(item, to part)` that settle a part, and the target they meet.
type Plan = (usize, Vec<(usize, usize)>);

/// What settling part `p` asks of an exchange: `d` tokens out of `p`, into parts still `open`,
/// for one of the `choices` of (target, d).
struct Request<'r> {
    p: usize,
    choices: &'r [(usize, i64)],
    open: &'r [bool],
}

/// A split in progress: every item's part, and how far each part's sum is above `q`.
struct Split<'a> {
    lengths: &'a [i64],
    by_length: &'a [u32],
    /// Item `i`'s part; its home part is `i % k`.
    part_of: Vec<u32>,
    /// Part sum minus `q`.
    excess: Vec<i64>,
    /// The items that have moved, in order of moving (some more than once).
    moved: Vec<usize>,
    /// What is left of the three-item searches' budget ([`Split::spend_probe`]).
    probes_left: Cell<usize>,
}

impl<'a> Split<'a> {
    /// Items dealt round-robin, and `by_length` written for them.
    fn new(lengths: &'a [i64], k: usize, total: i64, by_length: &'a mut [u32]) -> Self {
        let mut excess = vec![-(total / k as i64); k];
        for (r, row) in lengths.chunks(k).enumerate() {
            for (j, (e, &len)) in excess.iter_mut().zip(row).enumerate() {
                *e += len;
                by_length[len as usize] = (r * k + j) as u32;
            }
        }
        let homes: Vec<u32> = (0..k as u32).collect();
        let mut part_of = Vec::with_capacity(lengths.len() + k);
        while part_of.len() < lengths.len() {
            part_of.extend_from_slice(&homes);
        }
        part_of.truncate(lengths.len());
        Split {
            lengths,
            by_length,
            part_of,
            excess,
            moved: Vec::new(),
            probes_left: Cell::new(PROBES_PER_ITEM * lengths.len()),
        }
    }

    /// Step 1: bring the spread to at most `spread`; false if the heaviest part has no home item
    /// left to move.
    fn level(&mut self, spread: i64) -> bool {
        let k = self.excess.len();
        // Per part, two scans of its home items: one for items of a quarter of the limit or
        // more, so that large gaps are closed by large items, and one for any item within the
        // limit, used when the first finds none. Both only move forward: the limit never grows,
        // and the second scan still sees the small items the first passed over.
        let mut large: Vec<usize> = (0..k).collect();
        let mut any: Vec<usize> = (0..k).collect();
        loop {
            let heavy = (0..k)
                .max_by_key(|&p| (self.excess[p], Reverse(p)))
                .unwrap();
            let light = (0..k).min_by_key(|&p| (self.excess[p], p)).unwrap();
            let gap = self.excess[heavy] - self.excess[light];
            if gap <= spread {
                return true;
            }
            // Moving at most half the gap leaves both within the old extremes.
            let limit = gap / 2;
            let Some(i) = self
                .next_home(heavy, &mut large[heavy], (limit / 4).max(1), limit)
                .or_else(|| self.next_home(heavy, &mut any[heavy], 1, limit))
            else {
                return false;
            };
            self.relocate(i, light);
        }
    }

    /// The next home item of part `p` from `cursor` on that is still in `p`, of a length in
    /// `lo..=hi`; the cursor moves past it.
    fn next_home(&self, p: usize, cursor: &mut usize, lo: i64, hi: i64) -> Option<usize> {
        let k = self.excess.len();
        let found = (*cursor..self.lengths.len()).step_by(k).find(|&i| {
            let len = self.lengths[i];
            lo <= len && len <= hi && self.part_of[i] == p as u32
        });
        *cursor = found.map_or(self.lengths.len(), |i| i + k);
        found
    }

    /// Step 2: bring every part to `q` or `q + 1`, `ones` of them to `q + 1`; false if a part
    /// finds no exchange.
    fn settle(&mut self, mut ones: usize) -> bool {
        let k = self.excess.len();
        let mut open = vec![true; k];
        for left in (2..=k).rev() {
            // The open part farthest from both targets.
            let p = (0..k)
                .filter(|&p| open[p])
                .max_by_key(|&p| ((2 * self.excess[p] - 1).abs(), Reverse(p)))
                .unwrap();
            // Its targets: q + 1 while parts at q + 1 are still due, q while the other open
            // parts can still take every one that is due.
            let choices: Vec<(usize, i64)> = [1, 0]
                .into_iter()
                .filter(|&t| t <= ones && ones - t < left)
                .map(|t| (t, self.excess[p] - t as i64))
                .collect();
            let settled_at = match choices.iter().find(|&&(_, d)| d == 0) {
                Some(&(t, _)) => Some(t),
                None => self.exchange(p, &choices, &open),
            };
            let Some(t) = settled_at else {
                return false;
            };
            open[p] = false;
            ones -= t;
        }
        true
    }

    /// Move `d` tokens out of part `p` into other open parts, for one of the `choices` of
    /// (target, d): one item out or in, a swap, two out for one in, or one out for two in, the
    /// first found in that order. Returns the target met.
    fn exchange(&mut self, p: usize, choices: &[(usize, i64)], open: &[bool]) -> Option<usize> {
        let ask = Request { p, choices, open };
        let (target, moves) = self
            .take_in(&ask)
            .or_else(|| self.give_or_swap(&ask))
            // Rarely needed: most parts settle with one or two items.
            .or_else(|| self.give_two(&ask))
            .or_else(|| self.take_two(&ask))?;
        for (i, to) in moves {
            self.relocate(i, to);
        }
        Some(target)
    }

    /// An item of length `-d` from another open part.
    fn take_in(&self, ask: &Request) -> Option<Plan> {
        ask.choices.iter().find_map(|&(t, d)| {
            let j = self.item_of_length(-d)?;
            self.open_elsewhere(j, ask)?;
            Some((t, vec![(j, ask.p)]))
        })
    }

    /// An item `a` of `p` alone if `a == d`, to the open part with the least excess, or for an
    /// item `a - d` of another open part.
    fn give_or_swap(&self, ask: &Request) -> Option<Plan> {
        let p = ask.p;
        let lightest = (0..ask.open.len())
            .filter(|&q| q != p && ask.open[q])
            .min_by_key(|&q| (self.excess[q], q))?;
        self.home_items(p).find_map(|i| {
            let a = self.lengths[i];
            ask.choices.iter().find_map(|&(t, d)| {
                if a == d {
                    return Some((t, vec![(i, lightest)]));
                }
                let j = self.item_of_length(a - d)?;
                let q = self.open_elsewhere(j, ask)?;
                Some((t, vec![(i, q), (j, p)]))
            })
        })
    }

    /// Items `a`, `a2` of `p` for an item `a + a2 - d` of another open part.
    fn give_two(&self, ask: &Request) -> Option<Plan> {
        let mine: Vec<usize> = self.home_items(ask.p).collect();
        let pairs = mine
            .iter()
            .enumerate()
            .flat_map(|(x, &i)| mine[x + 1..].iter().map(move |&i2| (i, i2)));
        pairs
            .take_while(|_| self.spend_probe())
            .find_map(|(i, i2)| {
                let a = self.lengths[i] + self.lengths[i2];
                ask.choices.iter().find_map(|&(t, d)| {
                    let j = self.item_of_length(a - d)?;
                    let q = self.open_elsewhere(j, ask)?;
                    Some((t, vec![(i, q), (i2, q), (j, ask.p)]))
                })
            })
    }

    /// An item `a` of `p` for items `b` and `a - b - d` of one other open part.
    fn take_two(&self, ask: &Request) -> Option<Plan> {
        let p = ask.p;
        let theirs = || {
            (0..ask.open.len())
                .filter(move |&q| q != p && ask.open[q])
                .flat_map(|q| self.home_items(q))
        };
        let pairs = self
            .home_items(p)
            .flat_map(|i| theirs().map(move |j| (i, j)));
        pairs.take_while(|_| self.spend_probe()).find_map(|(i, j)| {
            let q = self.part_of[j] as usize;
            let rest = self.lengths[i] - self.lengths[j];
            ask.choices.iter().find_map(|&(t, d)| {
                let j2 = self.item_of_length(rest - d)?;
                (j2 != j && self.part_of[j2] as usize == q)
                    .then(|| (t, vec![(i, q), (j, p), (j2, p)]))
            })
        })
    }

    /// Whether the three-item searches may try one more pair of items: a few per item in all,
    /// so that a split that finds no exchange gives up in time linear in the items.
    fn spend_probe(&self) -> bool {
        let left = self.probes_left.get();
        self.probes_left.set(left.saturating_sub(1));
        left > 0
    }

    /// The home items of part `p` still in it: nearly all its items, found without a list.
    fn home_items(&self, p: usize) -> impl Iterator<Item = usize> + '_ {
        (p..self.lengths.len())
            .step_by(self.excess.len())
            .filter(move |&i| self.part_of[i] as usize == p)
    }

    /// The part of item `j` if it is open and not the part being settled.
    fn open_elsewhere(&self, j: usize, ask: &Request) -> Option<usize> {
        let q = self.part_of[j] as usize;
        (q != ask.p && ask.open[q]).then_some(q)
    }

    /// An item of this length, if any.
    fn item_of_length(&self, len: i64) -> Option<usize> {
        let j = *self.by_length.get(usize::try_from(len).ok()?)? as usize;
        (self.lengths.get(j) == Some(&len)).then_some(j)
    }

    /// Move item `i` to part `to`.
    fn relocate(&mut self, i: usize, to: usize) {
        let from = self.part_of[i] as usize;
        let len = self.lengths[i];
        self.excess[from] -= len;
        self.excess[to] += len;
        self.part_of[i] = to as u32;
        self.moved.push(i);
    }

    /// Step 3: the parts by decreasing sum (ties by part number), indices ascending: each part's
    /// home items, less those that left, merged with those it took in.
    fn into_groups(self) -> Groups {
        let (n, k) = (self.lengths.len(), self.excess.len());
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by_key(|&p| (Reverse(self.excess[p]), p));
        // Where each part's home sequence p, p + k, ... changes: an item left it or joined it.
        let mut changes: Vec<(usize, usize)> = Vec::with_capacity(2 * self.moved.len());
        for &i in &self.moved {
            let (home, now) = (i % k, self.part_of[i] as usize);
            if home != now {
                changes.extend([(home, i), (now, i)]);
            }
        }
        changes.sort_unstable();
        changes.dedup();
        let mut members = Vec::with_capacity(n);
        let mut starts = Vec::with_capacity(k + 1);
        starts.push(0);
        for p in order {
            let first = changes.partition_point(|&(q, _)| q < p);
            let mut from = p;
            for &(_, i) in changes[first..].iter().take_while(|&&(q, _)| q == p) {
                members.extend((from..i).step_by(k));
                let (row, column) = (i - i % k, i % k);
                if column == p {
                    from = i + k; // left
                } else {
                    members.push(i); // joined
                    from = if column < p { row + p } else { row + k + p };
                }
            }
            members.extend((from..n).step_by(k));
            starts.push(members.len());
        }
        Groups { members, starts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use proptest::prelude::*;

    fn split(lengths: &[i64], k: usize) -> Option<Groups> {
        let bound = lengths.iter().fold(0, |acc, &l| acc | l);
        exact_split(lengths, k, lengths.iter().sum(), bound)
    }

    /// Coverage, ascending indices, decreasing sums, and the optimum: `total % k` parts at
    /// `q + 1`, the rest at `q`.
    fn assert_optimal(lengths: &[i64], k: usize, parts: &Groups) {
        assert_eq!(parts.len(), k);
        let mut seen = parts.members.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        assert!(parts.iter().all(|p| p.windows(2).all(|w| w[0] < w[1])));
        let sums: Vec<i64> = parts
            .iter()
            .map(|p| p.iter().map(|&i| lengths[i]).sum())
            .collect();
        assert!(sums.windows(2).all(|w| w[0] >= w[1]), "{sums:?}");
        let total: i64 = lengths.iter().sum();
        let (q, r) = (total / k as i64, (total % k as i64) as usize);
        let expected: Vec<i64> = (0..k).map(|p| q + i64::from(p < r)).collect();
        assert_eq!(sums, expected);
    }

    fn uniform(seed: u64, n: usize, longest: u64) -> Vec<i64> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| 1 + (rng.next_u64() % longest) as i64)
            .collect()
    }

    #[test]
    fn rollout_batches_split_optimally() {
        // Batches like the benchmark's: lengths uniform in 1..=8192, 8 ranks.
        for seed in 0..100 {
            for n in [1024, 4096] {
                let lengths = uniform(seed, n, 8192);
                let parts = split(&lengths, 8).expect("an exact split");
                assert_optimal(&lengths, 8, &parts);
            }
        }
    }

    #[test]
    fn sorted_and_grouped_batches_split_optimally() {
        let mut lengths = uniform(1, 2048, 8192);
        lengths.sort_unstable();
        assert_optimal(&lengths, 8, &split(&lengths, 8).unwrap());
        lengths.reverse();
        assert_optimal(&lengths, 8, &split(&lengths, 8).unwrap());
        // Groups of 8 responses of one prompt, of similar lengths.
        let centres = uniform(2, 256, 7000);
        let jitter = uniform(3, 2048, 1000);
        let grouped: Vec<i64> = (0..2048).map(|i| centres[i / 8] + jitter[i]).collect();
        assert_optimal(&grouped, 8, &split(&grouped, 8).unwrap());
    }

    #[test]
    fn many_parts_and_long_lengths_mostly_split_optimally() {
        let mut found = 0;
        for seed in 0..20 {
            for (n, k, longest) in [(4096, 64, 8192), (2048, 8, 32768), (1024, 4, 100_000)] {
                let lengths = uniform(seed, n, longest);
                if let Some(parts) = split(&lengths, k) {
                    assert_optimal(&lengths, k, &parts);
                    found += 1;
                }
            }
        }
        assert!(found >= 55, "{found} of 60");
    }

    #[test]
    fn zero_lengths_one_part_and_equal_lengths() {
        let zeros = vec![0; 100];
        assert_optimal(&zeros, 3, &split(&zeros, 3).unwrap());
        let lengths = uniform(4, 100, 50);
        assert_optimal(&lengths, 1, &split(&lengths, 1).unwrap());
        let equal = vec![7; 96];
        assert_optimal(&equal, 3, &split(&equal, 3).unwrap());
        // One item more in a part, and no smaller one to even it out: no exact split here.
        assert!(split(&[7; 97], 3).is_none());
    }

    #[test]
    fn a_stale_table_entry_is_not_trusted() {
        // The first call leaves an entry for length 5000 at index 3; the second has no item of
        // that length, and its item 3 has another length.
        let mut first = uniform(5, 256, 4000);
        first[3] = 5000;
        split(&first, 4).unwrap();
        let second = uniform(6, 256, 4000);
        BY_LENGTH.with_borrow_mut(|table| {
            assert_eq!(table[5000], 3);
            let total = second.iter().sum();
            let current = Split::new(&second, 4, total, table);
            assert_eq!(current.item_of_length(5000), None);
            let j = current.item_of_length(second[3]).unwrap();
            assert_eq!(second[j], second[3]);
        });
    }

    #[test]
    fn the_split_is_tried_with_many_items_per_part_of_lengths_the_table_holds() {
        assert!(worth_trying(1024, 8, 16383));
        assert!(!worth_trying(1024, 8, 1 << 20)); // 128 items per part for 2^20 lengths
        assert!(!worth_trying(248, 8, 100)); // 31 items per part
        assert!(!worth_trying(1 << 24, 8, (1 << 20) + 1)); // past the table
    }

    proptest! {
        #[test]
        fn an_exact_split_is_optimal(
            lengths in prop::collection::vec(0i64..3000, 64..400), k in 1usize..5
        ) {
            if let Some(parts) = split(&lengths, k) {
                assert_optimal(&lengths, k, &parts);
            }
        }
    }
}
