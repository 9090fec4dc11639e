//! Largest differencing, the k-way Karmarkar–Karp heuristic (Karmarkar & Karp 1982; the k-way
//! form of Michiels et al. 2007), the general method of [`super::balanced_partition`].
//!
//! Every item starts as a partial solution with one non-empty part; the two solutions with the
//! largest spread (max - min part sum; ties to the one made first) are merged by pairing the
//! heaviest parts of one with the lightest of the other, until one solution is left.
//! O(n k log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{by_decreasing_length, PackedKey};
use crate::segments::Groups;

/// The parts of `lengths` (non-negative, summing to `total <= i64::MAX`) after largest
/// differencing into `k` parts, in the order of the last solution (decreasing sum, stably),
/// indices ascending.
pub(super) fn largest_differencing(lengths: &[i64], k: usize, total: u128) -> Groups {
    // Heap keys (spread, creation order) packed in one integer: a `u64` when both fit.
    let order_bits = usize::BITS - (2 * lengths.len()).leading_zeros();
    let part_of = if order_bits + (128 - total.leading_zeros()) <= 64 {
        differencing::<u64>(lengths, k, order_bits)
    } else {
        differencing::<u128>(lengths, k, 64)
    };
    Groups::from_labels(&part_of, k)
}

/// The part of every item after largest differencing, with heap keys of type `K` whose low
/// `shift` bits hold the creation order.
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

/// A partial solution: one item (its length and index), or a merged solution in a slot of
/// [`Solutions::slab`].
#[derive(Clone, Copy)]
enum Solution {
    Item(i64, usize),
    Slot(usize),
}

/// The partial solutions, popped largest spread first, ties in order of creation (the items
/// first, by decreasing length, then merged solutions as they are made).
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
