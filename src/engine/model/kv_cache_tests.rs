//! Tests of the KV cache: layout across growth, truncation and shifts, f16 rounding.

use super::*;
use bitnet_kernels::Runtime;

/// Key `(position, head, i)` of the test rows: distinct everywhere, exact in f16.
fn key(pos: usize, h: usize, i: usize) -> f32 {
    (pos * 16 + h * 4 + i) as f32
}

fn rows(from: usize, n: usize, heads: usize, hd: usize) -> Vec<f32> {
    (from..from + n)
        .flat_map(|p| (0..heads).flat_map(move |h| (0..hd).map(move |i| key(p, h, i))))
        .collect()
}

#[test]
fn heads_are_contiguous_across_growth_and_truncation() {
    let rt = Runtime::detect();
    for kind in [KvType::F32, KvType::F16] {
        let (heads, hd) = (3, 2);
        let mut c = KvCache::new(kind, 2, heads, hd, 100);
        // 40 positions in uneven steps: the capacity grows 16 → 32 → 64 on the way.
        let mut n = 0;
        for step in [1, 15, 1, 7, 16] {
            for l in 0..2 {
                let k = rows(n, step, heads, hd);
                let v: Vec<f32> = k.iter().map(|x| -x).collect();
                c.append(&rt, l, &k, &v);
            }
            c.commit(step);
            n += step;
        }
        assert_eq!(c.len(), 40);
        assert_eq!(c.bytes(), 2 * 2 * 64 * heads * hd * kind.bytes());
        let kv = c.layer(1);
        assert_eq!(kv.len(), 40);
        for h in 0..heads {
            let want: Vec<f32> = (0..40)
                .flat_map(|p| (0..hd).map(move |i| key(p, h, i)))
                .collect();
            assert_eq!(kv.keys(h).to_f32(), want, "{kind:?} head {h}");
            let neg: Vec<f32> = want.iter().map(|x| -x).collect();
            assert_eq!(kv.values(h).to_f32(), neg, "{kind:?} head {h}");
        }
        c.truncate(3);
        let want = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)].map(|(p, i)| key(p, 2, i));
        assert_eq!(c.layer(0).keys(2).to_f32(), want);
        // A failed pass leaves uncommitted rows behind; truncate(len) removes them.
        c.append(&rt, 0, &rows(3, 1, heads, hd), &rows(3, 1, heads, hd));
        assert_eq!(c.layer(0).len(), 4);
        c.truncate(c.len());
        assert_eq!(c.layer(0).len(), 3);
        // Appending after truncation overwrites the dropped positions.
        for l in 0..2 {
            c.append(&rt, l, &[7.0; 6], &[7.0; 6]);
        }
        c.commit(1);
        assert_eq!(c.layer(1).keys(1).to_f32()[6..8], [7.0, 7.0]);
    }
}

#[test]
fn shift_drops_a_range_moves_the_rest_and_maps_only_moved_keys() {
    let rt = Runtime::detect();
    for kind in [KvType::F32, KvType::F16] {
        let (heads, hd) = (2, 2);
        let mut c = KvCache::new(kind, 2, heads, hd, 20);
        let k = rows(0, 10, heads, hd);
        let v: Vec<f32> = k.iter().map(|x| -x).collect();
        for l in 0..2 {
            c.append(&rt, l, &k, &v);
        }
        c.commit(10);
        // Keep 2, drop positions 2..5; the moved keys are negated, values not.
        c.shift(2, 3, &|keys| keys.iter_mut().for_each(|x| *x = -*x));
        assert_eq!(c.len(), 7);
        for l in 0..2 {
            for h in 0..heads {
                let kv = c.layer(l);
                let pos = [0, 1, 5, 6, 7, 8, 9];
                let held_key = |p: usize, i| if p < 2 { key(p, h, i) } else { -key(p, h, i) };
                let want: Vec<f32> = pos
                    .iter()
                    .flat_map(|&p| (0..hd).map(move |i| held_key(p, i)))
                    .collect();
                assert_eq!(kv.keys(h).to_f32(), want, "{kind:?} layer {l} head {h}");
                let want: Vec<f32> = pos
                    .iter()
                    .flat_map(|&p| (0..hd).map(move |i| -key(p, h, i)))
                    .collect();
                assert_eq!(kv.values(h).to_f32(), want, "{kind:?} layer {l} head {h}");
            }
        }
        // Appending goes on after the kept positions.
        for l in 0..2 {
            c.append(&rt, l, &rows(10, 1, heads, hd), &rows(10, 1, heads, hd));
        }
        c.commit(1);
        assert_eq!(
            c.layer(0).keys(1).to_f32()[14..16],
            [key(10, 1, 0), key(10, 1, 1)]
        );
    }
}

#[test]
fn capacity_stops_at_the_context() {
    let rt = Runtime::detect();
    let mut c = KvCache::new(KvType::F32, 1, 1, 4, 20);
    c.append(&rt, 0, &[1.0; 4 * 17], &[1.0; 4 * 17]);
    c.commit(17);
    c.append(&rt, 0, &[2.0; 4 * 3], &[2.0; 4 * 3]);
    c.commit(3);
    assert_eq!(c.bytes(), 2 * 20 * 4 * 4);
    assert_eq!(c.layer(0).keys(0).to_f32()[4 * 19], 2.0);
}

#[test]
fn f16_stores_round_to_nearest_even() {
    let rt = Runtime::detect();
    let mut c = KvCache::new(KvType::F16, 1, 1, 4, 4);
    // 1 + 2^-11 lies halfway between two f16 values: the tie goes to the even one (1.0);
    // 1 + 3·2^-11 rounds up to 1 + 2^-9; 65520 overflows f16 to infinity.
    let k = [
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        -0.1,
        65520.0,
    ];
    c.append(&rt, 0, &k, &k);
    let got = c.layer(0).keys(0).to_f32();
    assert_eq!(got[..2], [1.0, 1.0 + 2f32.powi(-9)]);
    assert!((got[2] + 0.1).abs() < 1e-4 && got[2] != -0.1);
    assert_eq!(got[3], f32::INFINITY);
    // f32 keeps every bit.
    let mut c = KvCache::new(KvType::F32, 1, 1, 4, 4);
    c.append(&rt, 0, &k, &k);
    assert_eq!(c.layer(0).values(0).to_f32(), k);
}

#[test]
fn type_names_parse() {
    assert_eq!("F16".parse::<KvType>(), Ok(KvType::F16));
    assert_eq!("f32".parse::<KvType>(), Ok(KvType::F32));
    let err = "q8_0".parse::<KvType>().unwrap_err();
    assert!(err.contains("q8_0") && err.contains("f16"), "{err}");
}
