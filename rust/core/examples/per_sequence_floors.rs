//! Times the per-sequence kernels in Rust alone (no Python call), for `benchmarks/RESULTS.md`.
//! `shard_groups` is timed on both of its paths: two critics (a subset drawn per group) and three
//! (a shuffle per group); `balanced_partition` on both of its methods: the exact split, and
//! largest differencing, which it falls back to, here for lengths past the exact split's table.
//!
//!     cargo run --release -p asyppo-core --example per_sequence_floors

use std::time::Instant;

use asyppo_core::batching::{balanced_partition, pack_microbatches};
use asyppo_core::groups::{group_advantages, GroupBaseline};
use asyppo_core::rng::SplitMix64;
use asyppo_core::shard::{shard_groups, ShardMode};

/// Best time of one call of `f` (in microseconds) over 20 samples of 200 calls each.
fn micros(mut f: impl FnMut()) -> f64 {
    (0..100).for_each(|_| f());
    (0..20)
        .map(|_| {
            let start = Instant::now();
            (0..200).for_each(|_| f());
            start.elapsed().as_secs_f64() / 200.0 * 1e6
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    println!("| sequences | step | time (us) |");
    println!("|---:|---|---:|");
    for n in [1024usize, 4096] {
        let mut rng = SplitMix64::new(n as u64);
        let lengths: Vec<i64> = (0..n).map(|_| 1 + rng.below(8192) as i64).collect();
        let group_ids: Vec<i64> = (0..n).map(|i| (i / 8) as i64).collect();
        let scores: Vec<f32> = (0..n).map(|_| rng.below(2) as f32).collect();
        let (mut shards, mut advantages) = (vec![false; 2 * n], vec![0f32; n]);
        let mut shards3 = vec![false; 3 * n];
        let scaled: Vec<i64> = lengths.iter().map(|&l| l << 8).collect();
        let rows: [(&str, f64); 6] = [
            (
                "shard_groups (M=2, groups of 8)",
                micros(|| {
                    shard_groups(&group_ids, 2, 0, ShardMode::Disjoint, &mut shards).unwrap()
                }),
            ),
            (
                "shard_groups (M=3, groups of 8): the shuffle",
                micros(|| {
                    shard_groups(&group_ids, 3, 0, ShardMode::Disjoint, &mut shards3).unwrap()
                }),
            ),
            (
                "group_advantages (grpo)",
                micros(|| {
                    group_advantages(
                        &scores,
                        &group_ids,
                        GroupBaseline::Grpo,
                        1e-6,
                        &mut advantages,
                    )
                    .unwrap()
                }),
            ),
            (
                "pack_microbatches (65,536 tokens)",
                micros(|| drop(pack_microbatches(&lengths, 65536, false, None).unwrap())),
            ),
            (
                "balanced_partition (8 parts): the exact split",
                micros(|| drop(balanced_partition(&lengths, 8).unwrap())),
            ),
            (
                "the same lengths x 256: largest differencing",
                micros(|| drop(balanced_partition(&scaled, 8).unwrap())),
            ),
        ];
        for (step, us) in rows {
            println!("| {n} | {step} | {us:.2} |");
        }
    }
}
