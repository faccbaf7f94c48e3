//! The parallel loops hand every item to exactly one task, whether the work is split
//! evenly or claimed in chunks, and a chunked slice's short tail is left alone.

use std::sync::atomic::{AtomicU32, Ordering};

use bitnet_kernels::{Pool, PoolKind};

/// Two-thread pools of every kind.
fn pools() -> Vec<Pool> {
    PoolKind::ALL
        .into_iter()
        .map(|kind| Pool::new(2, kind).unwrap())
        .collect()
}

#[test]
fn chunks_get_their_own_index_once() {
    for pool in pools() {
        chunks_on(&pool);
    }
}

fn chunks_on(pool: &Pool) {
    for (len, chunk, min_items) in [(0, 3, 1), (2, 3, 1), (3, 3, 1), (1000, 3, 1), (1001, 7, 4)] {
        let mut data = vec![0u32; len];
        pool.parallel_chunks_mut(&mut data, chunk, min_items, |i, c| {
            c.iter_mut().for_each(|v| *v += i as u32 + 1)
        });
        let whole = len / chunk * chunk;
        for (j, &v) in data.iter().enumerate() {
            let want = if j < whole { (j / chunk) as u32 + 1 } else { 0 };
            assert_eq!(v, want, "len {len}, chunk {chunk}: element {j}");
        }
    }
}

#[test]
fn ranges_cover_every_item_once() {
    for pool in pools() {
        ranges_on(&pool);
    }
}

fn ranges_on(pool: &Pool) {
    for n in [0usize, 1, 2, 5, 64, 1000, 4097] {
        for (per_thread, min_chunk, align) in [(1, 1, 1), (8, 1, 1), (8, 3, 4), (100, 1, 32)] {
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            let mark = |a: usize, b: usize| {
                assert!(a < b && b <= n, "range {a}..{b} of {n}");
                (a..b).for_each(|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                })
            };
            pool.parallel_ranges_balanced(n, per_thread, min_chunk, align, mark);
            pool.parallel_ranges(n, min_chunk, align, mark);
            for (i, h) in hits.iter().enumerate() {
                assert_eq!(
                    h.load(Ordering::Relaxed),
                    2,
                    "n {n}, item {i}, {per_thread} per thread"
                );
            }
        }
    }
}
