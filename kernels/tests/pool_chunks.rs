//! The chunked parallel loops hand every whole chunk to exactly one task, with its own
//! index, and leave a short tail alone, whether chunks are split evenly or claimed.

use bitnet_kernels::{parallel_chunks_mut, parallel_chunks_mut_balanced, set_threads};

fn check(run: impl Fn(&mut [u32], usize, usize)) {
    for (len, chunk, min_items) in [
        (0, 3, 1),
        (2, 3, 1),
        (3, 3, 1),
        (1000, 3, 1),
        (1001, 7, 4),
        (64, 1, 64),
    ] {
        let mut data = vec![0u32; len];
        run(&mut data, chunk, min_items);
        let whole = len / chunk * chunk;
        for (j, &v) in data.iter().enumerate() {
            let want = if j < whole { (j / chunk) as u32 + 1 } else { 0 };
            assert_eq!(v, want, "len {len}, chunk {chunk}: element {j}");
        }
    }
}

#[test]
fn every_chunk_once_with_its_index() {
    set_threads(2);
    let body = |i: usize, c: &mut [u32]| {
        for v in c.iter_mut() {
            *v += i as u32 + 1;
        }
    };
    check(|d, chunk, min| parallel_chunks_mut(d, chunk, min, body));
    for per_thread in [1, 8, 100] {
        check(|d, chunk, min| parallel_chunks_mut_balanced(d, chunk, per_thread, min, body));
    }
}
