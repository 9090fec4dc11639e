//! Offsets (CSR) validation, splitting of packed arrays into per-task slices for rayon, and lists
//! of indices stored the same way ([`Groups`]), such as the members of each prompt group
//! ([`group_members`]).

use std::collections::HashMap;

use crate::error::{EngineError, Result};

/// Check that `offsets` indexes a packed array of `n_tokens` tokens:
/// `offsets[0] == 0`, non-decreasing, `offsets[last] == n_tokens`.
pub fn validate_offsets(offsets: &[i64], n_tokens: usize) -> Result<()> {
    let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
        return Err(EngineError::Offsets(
            "expected at least one element (offsets[0] == 0)".into(),
        ));
    };
    if first != 0 {
        return Err(EngineError::Offsets(format!(
            "expected offsets[0] == 0, got {first}"
        )));
    }
    if let Some(i) = offsets.windows(2).position(|w| w[1] < w[0]) {
        return Err(EngineError::Offsets(format!(
            "expected non-decreasing values, got offsets[{}] = {} > offsets[{}] = {}",
            i,
            offsets[i],
            i + 1,
            offsets[i + 1]
        )));
    }
    if last < 0 || last as u64 != n_tokens as u64 {
        return Err(EngineError::Offsets(format!(
            "expected offsets[-1] == number of tokens ({n_tokens}), got {last}"
        )));
    }
    Ok(())
}

/// Token count below which a task is not worth a rayon split.
const MIN_TASK_TOKENS: usize = 1 << 15;

/// Cut the sequences `0..n_seq` into contiguous runs of about `n_tokens / (4 * threads)` tokens
/// (at least [`MIN_TASK_TOKENS`]). Returns sequence boundaries `[0, s_1, ..., n_seq]`.
/// `offsets` must be valid.
pub fn task_bounds(offsets: &[i64]) -> Vec<usize> {
    let n_seq = offsets.len() - 1;
    let n_tokens = offsets[n_seq] as usize;
    let target = (n_tokens / (4 * rayon::current_num_threads())).max(MIN_TASK_TOKENS);
    let mut bounds = vec![0];
    let mut start = 0i64;
    for (s, &offset) in offsets.iter().enumerate().take(n_seq).skip(1) {
        if (offset - start) as usize >= target {
            bounds.push(s);
            start = offset;
        }
    }
    if n_seq > 0 {
        bounds.push(n_seq);
    }
    bounds
}

/// Split `data` at the token offsets of the sequence boundaries `bounds` (from [`task_bounds`]).
pub fn split_at_bounds<'a, T>(
    mut data: &'a mut [T],
    offsets: &[i64],
    bounds: &[usize],
) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(bounds.len().saturating_sub(1));
    for w in bounds.windows(2) {
        let len = (offsets[w[1]] - offsets[w[0]]) as usize;
        let (head, tail) = std::mem::take(&mut data).split_at_mut(len);
        parts.push(head);
        data = tail;
    }
    parts
}

/// Lists of indices in one flat array, CSR-style: list `g` is `members[starts[g]..starts[g + 1]]`.
/// Used for the sequences of each prompt group, micro-batches and data-parallel parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Groups {
    pub members: Vec<usize>,
    pub starts: Vec<usize>,
}

impl Groups {
    /// The indices `0..labels.len()` listed by label (`labels[i] < n_lists`), ascending within
    /// each list: a counting sort, O(n + n_lists), one allocation for all the lists.
    pub fn from_labels(labels: &[usize], n_lists: usize) -> Groups {
        let mut starts = vec![0; n_lists + 1];
        for &l in labels {
            starts[l + 1] += 1;
        }
        for g in 0..n_lists {
            starts[g + 1] += starts[g];
        }
        let mut next = starts[..n_lists].to_vec();
        let mut members = vec![0; labels.len()];
        for (i, &l) in labels.iter().enumerate() {
            members[next[l]] = i;
            next[l] += 1;
        }
        Groups { members, starts }
    }

    /// Number of lists.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members of list `g`.
    pub fn get(&self, g: usize) -> &[usize] {
        &self.members[self.starts[g]..self.starts[g + 1]]
    }

    /// The lists' members, list by list.
    pub fn iter(&self) -> impl Iterator<Item = &[usize]> {
        self.starts.windows(2).map(|w| &self.members[w[0]..w[1]])
    }
}

/// The sequences of each group of `group_ids`, groups in order of first appearance, members
/// ascending. One hash lookup per run of equal ids (the responses to one prompt usually sit side
/// by side), then a counting sort ([`Groups::from_labels`]).
pub fn group_members(group_ids: &[i64]) -> Groups {
    let mut slot: HashMap<i64, usize> = HashMap::new();
    let mut labels = Vec::with_capacity(group_ids.len());
    for run in group_ids.chunk_by(|a, b| a == b) {
        let next = slot.len();
        let g = *slot.entry(run[0]).or_insert(next);
        labels.extend(std::iter::repeat_n(g, run.len()));
    }
    Groups::from_labels(&labels, slot.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn group_members_matches_a_linear_scan(
            group_ids in prop::collection::vec(-3i64..4, 0..40), sort in any::<bool>()
        ) {
            let mut group_ids = group_ids;
            if sort {
                group_ids.sort_unstable();
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

    #[test]
    fn valid_offsets_pass() {
        assert!(validate_offsets(&[0, 2, 2, 5], 5).is_ok());
        assert!(validate_offsets(&[0], 0).is_ok());
    }

    #[test]
    fn bad_offsets_are_rejected_with_reason() {
        assert!(validate_offsets(&[], 0).is_err());
        assert!(validate_offsets(&[1, 5], 5)
            .unwrap_err()
            .to_string()
            .contains("offsets[0] == 0"));
        assert!(validate_offsets(&[0, 3, 2, 5], 5)
            .unwrap_err()
            .to_string()
            .contains("non-decreasing"));
        assert!(validate_offsets(&[0, 2, 4], 5)
            .unwrap_err()
            .to_string()
            .contains("number of tokens"));
    }

    #[test]
    fn split_covers_all_tokens_in_order() {
        let offsets: Vec<i64> = (0..=100).map(|i| i * 1000).collect();
        let bounds = task_bounds(&offsets);
        assert_eq!(*bounds.first().unwrap(), 0);
        assert_eq!(*bounds.last().unwrap(), 100);
        let mut data: Vec<usize> = (0..100_000).collect();
        let parts = split_at_bounds(&mut data, &offsets, &bounds);
        let joined: Vec<usize> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(joined, (0..100_000).collect::<Vec<_>>());
    }
}
