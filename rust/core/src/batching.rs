//! Planning kernels over sequence lengths: micro-batches under a token budget, and a balanced
//! split of a batch across data-parallel ranks.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use crate::error::{EngineError, Result};
use crate::segments::Groups;

fn check_lengths(name: &'static str, lengths: &[i64]) -> Result<()> {
    match lengths.iter().position(|&l| l < 0) {
        None => Ok(()),
        Some(i) => Err(EngineError::range(
            name,
            "non-negative lengths",
            format!("{} at index {i}", lengths[i]),
        )),
    }
}

/// Indices sorted by decreasing length, ties by index.
fn by_decreasing_length(lengths: &[i64]) -> Vec<usize> {
    let n = lengths.len();
    if n <= u32::MAX as usize && lengths.iter().all(|&l| l <= u32::MAX as i64) {
        // Both keys in one `u64` (complemented length above the index): a plain integer sort,
        // faster than comparing tuples through the index. Lengths are known non-negative.
        let mut keys: Vec<u64> = (0..n)
            .map(|i| (u64::from(!(lengths[i] as u32)) << 32) | i as u64)
            .collect();
        keys.sort_unstable();
        return keys
            .iter()
            .map(|&k| (k & u64::from(u32::MAX)) as usize)
            .collect();
    }
    let mut order: Vec<usize> = (0..n).collect();
    // The keys are distinct (the index breaks ties), so an unstable sort gives the same order.
    order.sort_unstable_by_key(|&i| (Reverse(lengths[i]), i));
    order
}

/// Group sequence indices into micro-batches whose cost stays within `max_tokens`.
///
/// Cost of a micro-batch: the sum of its lengths (`padded = false`, for packed/varlen model
/// input) or `count * max length` (`padded = true`, the size of its `[B, L]` padded tensor).
/// With `prompt_lengths`, each sequence also has a prompt that is padded on its own: the padded
/// cost is `count * (max prompt length + max length)`, the size of a `[B, P + R]` input whose
/// prompts are left-padded to `P` and the rest right-padded to `R`, and the summed cost counts
/// both. Best-fit decreasing (sum) or next-fit over decreasing total lengths (padded); a
/// sequence longer than the budget gets a micro-batch of its own, and is the only way a budget is
/// exceeded. Each micro-batch's indices are ascending; micro-batches come in order of creation.
///
/// Errors: negative length, `prompt_lengths` not of length `n`, `max_tokens < 1`.
pub fn pack_microbatches(
    lengths: &[i64],
    max_tokens: i64,
    padded: bool,
    prompt_lengths: Option<&[i64]>,
) -> Result<Groups> {
    check_lengths("lengths", lengths)?;
    if max_tokens < 1 {
        return Err(EngineError::range("max_tokens", "at least 1", max_tokens));
    }
    let n = lengths.len();
    let prompts = match prompt_lengths {
        Some(p) if p.len() != n => {
            return Err(EngineError::shape(
                "prompt_lengths",
                format!("length {n} (as lengths)"),
                p.len(),
            ))
        }
        Some(p) => {
            check_lengths("prompt_lengths", p)?;
            p
        }
        None => &[],
    };
    let prompt = |i: usize| prompts.get(i).copied().unwrap_or(0);
    // What each sequence costs unpadded (no copy without prompts).
    let totals: Cow<[i64]> = match prompt_lengths {
        None => Cow::Borrowed(lengths),
        Some(_) => (0..n)
            .map(|i| lengths[i].saturating_add(prompt(i)))
            .collect(),
    };
    // The micro-batch of each sequence; micro-batches are numbered in order of creation.
    let mut bin_of = vec![0; n];
    let mut n_bins = 0;
    if padded {
        // The longest prompt and rest of the open micro-batch, and how many it holds.
        let (mut width_p, mut width_r, mut count) = (0, 0, 0i64);
        for i in by_decreasing_length(&totals) {
            let (p, r) = (width_p.max(prompt(i)), width_r.max(lengths[i]));
            if n_bins == 0 || (count + 1).saturating_mul(p.saturating_add(r)) > max_tokens {
                (width_p, width_r, count) = (prompt(i), lengths[i], 0);
                n_bins += 1;
            } else {
                (width_p, width_r) = (p, r);
            }
            count += 1;
            bin_of[i] = n_bins - 1;
        }
    } else {
        let order = by_decreasing_length(&totals);
        // (room, bin) as one integer key, the room in the high bits: a `u64` when both fit (the
        // usual case: its comparisons and tree nodes are cheaper than a tuple's), else a `u128`.
        let bin_bits = usize::BITS - lengths.len().leading_zeros();
        n_bins = if bin_bits + (64 - max_tokens.leading_zeros()) <= 64 {
            best_fit::<u64>(&totals, &order, max_tokens, bin_bits, &mut bin_of)
        } else {
            best_fit::<u128>(&totals, &order, max_tokens, 64, &mut bin_of)
        };
    }
    Ok(Groups::from_labels(&bin_of, n_bins))
}

/// Best-fit over the sequences in `order`: each goes to the open micro-batch with the least room
/// that still holds it, or opens one; writes `bin_of` and returns the number of micro-batches.
/// The open ones are a search tree of keys `room << shift | bin`, so the best fit is the first
/// key from `len << shift` on (ties in room to the lowest bin).
fn best_fit<K: PackedKey>(
    lengths: &[i64],
    order: &[usize],
    max_tokens: i64,
    shift: u32,
    bin_of: &mut [usize],
) -> usize {
    let mut open: BTreeSet<K> = BTreeSet::new();
    let mut n_bins = 0;
    for &i in order {
        let len = lengths[i] as u64;
        // Every room is below `max_tokens`: a longer sequence (whose key would not fit) fits none.
        let fit = (len <= max_tokens as u64)
            .then(|| open.range(K::pack(len, 0, shift)..).next().copied())
            .flatten();
        bin_of[i] = match fit {
            Some(key) => {
                let (room, b) = key.unpack(shift);
                open.remove(&key);
                open.insert(K::pack(room - len, b, shift));
                b
            }
            None => {
                if len < max_tokens as u64 {
                    open.insert(K::pack(max_tokens as u64 - len, n_bins, shift));
                }
                n_bins += 1;
                n_bins - 1
            }
        };
    }
    n_bins
}

/// An unsigned integer holding a (room, bin) pair, room in the high bits (see [`best_fit`]).
trait PackedKey: Ord + Copy {
    fn pack(room: u64, bin: usize, shift: u32) -> Self;
    fn unpack(self, shift: u32) -> (u64, usize);
}

macro_rules! impl_packed_key {
    ($t:ty) => {
        impl PackedKey for $t {
            fn pack(room: u64, bin: usize, shift: u32) -> Self {
                (<$t>::from(room) << shift) | bin as $t
            }
            fn unpack(self, shift: u32) -> (u64, usize) {
                ((self >> shift) as u64, (self & ((1 << shift) - 1)) as usize)
            }
        }
    };
}
impl_packed_key!(u64);
impl_packed_key!(u128);

/// Split sequence indices into `n_parts` parts with token sums as equal as the
/// Karmarkar–Karp largest-differencing heuristic gets (Karmarkar & Karp 1982; the k-way form of
/// Michiels et al. 2007), e.g. to give each data-parallel rank the same work.
///
/// Every item starts as a partial solution with one non-empty part; the two solutions with the
/// largest spread (max - min part sum; ties to the one made first) are merged by pairing the
/// heaviest parts of one with the lightest of the other, until one solution is left.
/// O(n k log n). Part indices are ascending; parts are ordered by decreasing token sum.
///
/// Errors: negative length, lengths summing past `i64::MAX`, `n_parts < 1`.
pub fn balanced_partition(lengths: &[i64], n_parts: usize) -> Result<Groups> {
    check_lengths("lengths", lengths)?;
    if n_parts < 1 {
        return Err(EngineError::range("n_parts", "at least 1", n_parts));
    }
    let total: u128 = lengths.iter().map(|&l| l as u128).sum();
    if total > i64::MAX as u128 {
        return Err(EngineError::range(
            "lengths",
            "a sum of at most 2^63 - 1",
            total,
        ));
    }
    // Heap keys (spread, creation order) packed in one integer: a `u64` when both fit.
    let order_bits = usize::BITS - (2 * lengths.len()).leading_zeros();
    let part_of = if order_bits + (128 - total.leading_zeros()) <= 64 {
        differencing::<u64>(lengths, n_parts, order_bits)
    } else {
        differencing::<u128>(lengths, n_parts, 64)
    };
    Ok(Groups::from_labels(&part_of, n_parts))
}

/// The part of every item after largest differencing ([`balanced_partition`]), with heap keys of
/// type `K` whose low `shift` bits hold the creation order.
fn differencing<K: PackedKey>(lengths: &[i64], k: usize, shift: u32) -> Vec<usize> {
    let mut solutions = Solutions::<K>::new(lengths, k, shift);
    let mut part_of = vec![0; lengths.len()];
    while let Some(heavy) = solutions.pop() {
        let Some(light) = solutions.pop() else {
            // The last solution: each part's items are its list.
            let mut parts = vec![EMPTY; k];
            solutions.load(heavy, &mut parts);
            for (p, &(_, first, _)) in parts.iter().enumerate() {
                let mut i = first;
                while i != NONE {
                    part_of[i] = p;
                    i = solutions.next[i];
                }
            }
            break;
        };
        solutions.merge(heavy, light);
    }
    part_of
}

/// A part of a partial solution: its token sum and its items as a linked list (first and last
/// item, [`NONE`] when empty; the links are [`Solutions::next`]), so that joining two parts is
/// one link and merging solutions copies no index lists.
type Part = (i64, usize, usize);
const NONE: usize = usize::MAX;
const EMPTY: Part = (0, NONE, NONE);

/// A partial solution of [`balanced_partition`]: one item (its length and index), or a merged
/// solution in a slot of [`Solutions::slab`].
#[derive(Clone, Copy)]
enum Solution {
    Item(i64, usize),
    Slot(usize),
}

/// The partial solutions of [`balanced_partition`], popped largest spread first, ties in order of
/// creation (the items first, by decreasing length, then merged solutions as they are made).
///
/// The items need no heap: sorted once, they are taken from the front and compared with the top
/// of a heap that holds only merged solutions, as packed keys `spread << shift | (max - order)`.
/// Merged solutions keep their `k` parts (sorted by decreasing sum) in slots of one slab, and a
/// popped solution's slot is reused, so the working set stays small. Same merges, and so the
/// same result, as one heap of all solutions.
struct Solutions<'a, K> {
    lengths: &'a [i64],
    k: usize,
    shift: u32,
    /// The largest creation order the low `shift` bits hold.
    last_order: usize,
    /// Item indices by decreasing length, ties by index, and how many have been taken.
    items: Vec<usize>,
    taken: usize,
    heap: BinaryHeap<K>,
    /// The key of the newest merged solution, kept out of the heap: it is often popped next (an
    /// item joining a solution leaves it with the largest spread), and then costs no heap push
    /// and pop.
    newest: Option<K>,
    /// The slot of merged solution number `n + j` at `j`.
    slot_of: Vec<usize>,
    slab: Vec<Part>,
    free: Vec<usize>,
    /// The item after each item in its part's list.
    next: Vec<usize>,
    /// Scratch for a general merge: the two solutions' parts.
    heavy: Vec<Part>,
    light: Vec<Part>,
}

impl<'a, K: PackedKey> Solutions<'a, K> {
    fn new(lengths: &'a [i64], k: usize, shift: u32) -> Self {
        Self {
            lengths,
            k,
            shift,
            last_order: usize::MAX.checked_shr(usize::BITS - shift).unwrap_or(0),
            items: by_decreasing_length(lengths),
            taken: 0,
            heap: BinaryHeap::new(),
            newest: None,
            slot_of: Vec::with_capacity(lengths.len()),
            slab: Vec::new(),
            free: Vec::new(),
            next: vec![NONE; lengths.len()],
            heavy: vec![EMPTY; k],
            light: vec![EMPTY; k],
        }
    }

    /// The heap key of the solution made `order`-th with this spread.
    fn key(&self, spread: i64, order: usize) -> K {
        K::pack(spread as u64, self.last_order - order, self.shift)
    }

    /// The solution with the largest spread, ties to the one made first.
    fn pop(&mut self) -> Option<Solution> {
        let top = self.heap.peek().copied().max(self.newest);
        if let Some(&i) = self.items.get(self.taken) {
            let len = self.lengths[i];
            if top.is_none_or(|t| self.key(len, self.taken) > t) {
                self.taken += 1;
                return Some(Solution::Item(len, i));
            }
        }
        let top = top?;
        if self.newest == Some(top) {
            self.newest = None;
        } else {
            self.heap.pop();
        }
        let order = self.last_order - top.unpack(self.shift).1;
        Some(Solution::Slot(self.slot_of[order - self.lengths.len()]))
    }

    /// Merge two solutions, `heavy` popped first: its heaviest part joins `light`'s lightest, and
    /// so on; the parts are then sorted by decreasing sum (stably).
    fn merge(&mut self, heavy: Solution, light: Solution) {
        let k = self.k;
        if let (Solution::Slot(slot), Solution::Item(len, i)) = (heavy, light) {
            // The item joins the lightest part, which then moves up past the lighter ones: in
            // place, the same as the general merge.
            let last = slot * k + k - 1;
            self.slab[last] = self.join(self.slab[last], (len, i, i));
            let parts = &mut self.slab[slot * k..last + 1];
            let mut j = k - 1;
            while j > 0 && parts[j - 1].0 < parts[j].0 {
                parts.swap(j - 1, j);
                j -= 1;
            }
            return self.push(slot);
        }
        let (mut h, mut l) = (
            std::mem::take(&mut self.heavy),
            std::mem::take(&mut self.light),
        );
        self.load(heavy, &mut h);
        self.load(light, &mut l);
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slab.extend_from_slice(&h);
            self.slab.len() / k - 1
        });
        for j in 0..k {
            self.slab[slot * k + j] = self.join(h[j], l[k - 1 - j]);
        }
        self.slab[slot * k..(slot + 1) * k].sort_by_key(|p| Reverse(p.0));
        (self.heavy, self.light) = (h, l);
        self.push(slot);
    }

    /// Write a solution's parts into `parts`; its slot, if any, is free again.
    fn load(&mut self, solution: Solution, parts: &mut [Part]) {
        match solution {
            Solution::Item(len, i) => {
                parts.fill(EMPTY);
                parts[0] = (len, i, i);
            }
            Solution::Slot(slot) => {
                parts.copy_from_slice(&self.slab[slot * self.k..(slot + 1) * self.k]);
                self.free.push(slot);
            }
        }
    }

    /// The part holding the items of both.
    fn join(&mut self, a: Part, b: Part) -> Part {
        match (a.1, b.1) {
            (NONE, _) => b,
            (_, NONE) => a,
            _ => {
                self.next[a.2] = b.1;
                (a.0 + b.0, a.1, b.2)
            }
        }
    }

    /// Queue the merged solution in `slot` (parts sorted by decreasing sum).
    fn push(&mut self, slot: usize) {
        let parts = &self.slab[slot * self.k..(slot + 1) * self.k];
        let order = self.lengths.len() + self.slot_of.len();
        let key = self.key(parts[0].0 - parts[self.k - 1].0, order);
        if let Some(older) = self.newest.replace(key) {
            self.heap.push(older);
        }
        self.slot_of.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn microbatches_cover_once_and_respect_budget(
            pairs in prop::collection::vec((0i64..100, 0i64..40), 0..80), budget in 1i64..300,
            padded in any::<bool>(), with_prompts in any::<bool>(),
        ) {
            let lengths: Vec<i64> = pairs.iter().map(|p| p.0).collect();
            let prompts: Vec<i64> = pairs.iter().map(|p| if with_prompts { p.1 } else { 0 }).collect();
            let given = with_prompts.then_some(&prompts[..]);
            let bins = pack_microbatches(&lengths, budget, padded, given).unwrap();
            let mut seen = bins.members.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
            for bin in bins.iter() {
                prop_assert!(!bin.is_empty() && bin.windows(2).all(|w| w[0] < w[1]));
                let longest = |x: &[i64]| bin.iter().map(|&i| x[i]).max().unwrap();
                let cost = if padded {
                    bin.len() as i64 * (longest(&prompts) + longest(&lengths))
                } else {
                    bin.iter().map(|&i| prompts[i] + lengths[i]).sum()
                };
                prop_assert!(cost <= budget || bin.len() == 1);
            }
        }

        #[test]
        fn partition_covers_once_and_beats_round_robin_bound(
            lengths in prop::collection::vec(0i64..1000, 0..100), k in 1usize..6
        ) {
            let parts = balanced_partition(&lengths, k).unwrap();
            prop_assert_eq!(parts.len(), k);
            let mut seen = parts.members.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
            let sums: Vec<i64> = parts.iter().map(|p| p.iter().map(|&i| lengths[i]).sum()).collect();
            // Differencing never leaves a spread above the largest item.
            let spread = sums.iter().max().unwrap() - sums.iter().min().unwrap();
            prop_assert!(spread <= lengths.iter().copied().max().unwrap_or(0));
        }
    }

    #[test]
    fn sequences_far_beyond_the_budget_get_their_own_microbatches() {
        let bins = pack_microbatches(&[i64::MAX / 2, 3, 1 << 40, 4], 8, false, None).unwrap();
        assert_eq!(
            bins.iter().collect::<Vec<_>>(),
            vec![&[0][..], &[2][..], &[1, 3][..]]
        );
    }

    #[test]
    fn a_budget_too_wide_for_64_bit_keys_packs_the_same() {
        // `i64::MAX` leaves no bits for the bin in a `u64` key: the `u128` keys are used.
        let lengths = [5, 3, 2, 9, 1];
        let wide = pack_microbatches(&lengths, i64::MAX, false, None).unwrap();
        assert_eq!(wide.iter().collect::<Vec<_>>(), vec![&[0, 1, 2, 3, 4][..]]);
        let narrow = pack_microbatches(&lengths, 10, false, None).unwrap();
        assert_eq!(
            narrow.iter().collect::<Vec<_>>(),
            vec![&[3, 4][..], &[0, 1, 2][..]]
        );
    }

    #[test]
    fn prompts_padded_apart_cost_their_own_longest() {
        // Rows (prompt, rest) = (8, 1) and (1, 8): one [2, 9 + 9] input, not 2 * 9.
        let bins = pack_microbatches(&[1, 8], 20, true, Some(&[8, 1])).unwrap();
        assert_eq!(bins.len(), 2);
        let bins = pack_microbatches(&[1, 8], 36, true, Some(&[8, 1])).unwrap();
        assert_eq!(bins.iter().collect::<Vec<_>>(), vec![&[0, 1][..]]);
        let err = pack_microbatches(&[1, 8], 36, true, Some(&[8])).unwrap_err();
        assert!(err.to_string().starts_with("prompt_lengths"));
    }

    #[test]
    fn oversized_sequence_gets_its_own_microbatch() {
        let bins = pack_microbatches(&[50, 5, 5], 10, false, None).unwrap();
        assert_eq!(bins.iter().collect::<Vec<_>>(), vec![&[0][..], &[1, 2][..]]);
    }

    #[test]
    fn lengths_too_long_for_64_bit_keys_partition_the_same() {
        // Sums near 2^62 leave no bits for the order in a `u64` key: the `u128` keys are used.
        // Scaling every length scales every spread, so the merges are the same.
        let narrow = [4, 3, 4, 5, 2];
        let wide = balanced_partition(&narrow.map(|l| l << 58), 2).unwrap();
        let narrow = balanced_partition(&narrow, 2).unwrap();
        assert_eq!(
            wide.iter().collect::<Vec<_>>(),
            narrow.iter().collect::<Vec<_>>()
        );
        let err = balanced_partition(&[i64::MAX, 1], 2).unwrap_err();
        assert!(err.to_string().starts_with("lengths"));
    }

    #[test]
    fn partition_of_equal_items_is_even() {
        let parts = balanced_partition(&[3; 8], 4).unwrap();
        assert!(parts.iter().all(|p| p.len() == 2));
    }
}
