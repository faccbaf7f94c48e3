//! Every SIMD routine against its portable twin, for every path this CPU supports (under
//! qemu-aarch64 this covers NEON and dotprod).
//!
//! Bounds: integer results (i2 dots, int8 activations, sums) and the conversions/elementwise
//! routines (absmax, f16->f32, scale_mul, axpy, mix_rows) are identical bit for bit. Float reductions
//! (dot products) may reorder additions and fuse multiplies; they must agree within
//! `4 · n · ε · Σ|a·b|` (the standard summation error bound, doubled for both sides), and the
//! f64 sum of squares within 1e-12 relative.

mod common;

use bitnet_kernels::dispatch::{ActLayout, Kernels, SCALAR};
use common::{bits, simd_tables, Rng, SIZES};

fn float_inputs(rng: &mut Rng, n: usize) -> Vec<Vec<f32>> {
    let mut v = vec![
        vec![0.0; n],
        rng.f32s(n, 1.0),
        rng.f32s(n, 1e-7),
        rng.f32s(n, 3e4),
        (0..n)
            .map(|i| if i % 2 == 0 { 0.5 } else { -1.5 })
            .collect(),
    ];
    // Extremes: one huge value dominates, ties at x.5 after scaling.
    let mut e = rng.f32s(n, 1.0);
    if n > 0 {
        e[n / 2] = 1e30;
    }
    v.push(e);
    v.push((0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.5).collect());
    v.push(
        (0..n)
            .map(|i| if i % 3 == 0 { -127.0 } else { 127.0 })
            .collect(),
    );
    v
}

#[test]
fn quantize_row_and_absmax_identical() {
    let mut rng = Rng(0x1234_5678);
    for k in simd_tables() {
        for n in SIZES.into_iter().chain([2560, 6912]) {
            for x in float_inputs(&mut rng, n) {
                assert_eq!(
                    (k.absmax)(&x).to_bits(),
                    (SCALAR.absmax)(&x).to_bits(),
                    "{} absmax n={n}",
                    k.path.name()
                );
                let mut qa = vec![0i8; n];
                let mut qb = vec![0i8; n];
                let ra = (k.quantize_row)(&x, &mut qa);
                let rb = (SCALAR.quantize_row)(&x, &mut qb);
                assert_eq!(qa, qb, "{} q n={n}", k.path.name());
                assert_eq!(
                    ra.0.to_bits(),
                    rb.0.to_bits(),
                    "{} scale n={n}",
                    k.path.name()
                );
                assert_eq!(ra.1, rb.1, "{} sum n={n}", k.path.name());
            }
        }
    }
}

fn i2_rows(rng: &mut Rng, blocks: usize) -> Vec<Vec<u8>> {
    let rand_codes = |rng: &mut Rng| -> Vec<u8> {
        (0..blocks * 32)
            .map(|_| (0..4).fold(0u8, |b, _| (b << 2) | rng.below(3) as u8))
            .collect()
    };
    vec![
        rand_codes(rng),
        vec![0x55; blocks * 32], // all zero weights (code 1)
        vec![0x00; blocks * 32], // all -1
        vec![0xAA; blocks * 32], // all +1 (code 2, the largest)
    ]
}

fn i8_inputs(rng: &mut Rng, n: usize) -> Vec<Vec<i8>> {
    vec![
        (0..n).map(|_| rng.next_u64() as i8).collect(),
        vec![0; n],
        vec![-128; n],
        vec![127; n],
        (0..n)
            .map(|i| if i % 2 == 0 { -128 } else { 127 })
            .collect(),
    ]
}

/// Activation rows in the order a table's I2 kernels read them.
fn in_layout(k: &Kernels, q: &[i8]) -> Vec<i8> {
    match k.act_layout {
        ActLayout::Plain => q.to_vec(),
        ActLayout::Pairs256 => {
            let mut p = vec![0; q.len()];
            bitnet_kernels::portable::to_pairs_layout(q, &mut p);
            p
        }
    }
}

#[test]
fn pairs_layout_is_a_permutation_within_each_256_chunk() {
    for n in [0, 5, 128, 256, 300, 640, 1024] {
        let q: Vec<i8> = (0..n).map(|i| (i % 251) as i8).collect();
        let mut p = vec![0; n];
        bitnet_kernels::portable::to_pairs_layout(&q, &mut p);
        for c in 0..n / 256 {
            let mut a = q[c * 256..][..256].to_vec();
            let mut b = p[c * 256..][..256].to_vec();
            // Plane 1 of block 1 is element 128 + 32 = 160, placed at 1·64 + 1·32 = 96.
            assert_eq!(p[c * 256 + 96], q[c * 256 + 160], "n={n}");
            a.sort();
            b.sort();
            assert_eq!(a, b, "n={n} chunk {c}");
        }
        assert_eq!(p[n / 256 * 256..], q[n / 256 * 256..], "n={n} tail");
    }
}

#[test]
fn i2_dot_identical() {
    let mut rng = Rng(42);
    for k in simd_tables() {
        for blocks in [1, 2, 3, 7, 8, 9, 16, 17, 20, 25, 54, 100] {
            let n = blocks * 128;
            for w in i2_rows(&mut rng, blocks) {
                let qs = i8_inputs(&mut rng, n);
                let kq: Vec<Vec<i8>> = qs.iter().map(|q| in_layout(k, q)).collect();
                for (q, kq) in qs.iter().zip(&kq) {
                    assert_eq!(
                        (k.i2_dot)(&w, kq),
                        (SCALAR.i2_dot)(&w, q),
                        "{} blocks={blocks}",
                        k.path.name()
                    );
                }
                let pick = [0, 2, 3, 4];
                assert_eq!(
                    (k.i2_dot4)(&w, pick.map(|i| &kq[i][..])),
                    (SCALAR.i2_dot4)(&w, pick.map(|i| &qs[i][..])),
                    "{} dot4 blocks={blocks}",
                    k.path.name()
                );
                // Decode's mat-vec: row counts around multiples of four (the paths take
                // rows four at a time from the range's quarters), rows stored with and
                // without padding after their whole blocks, mixing this row, fresh random
                // ones, all -1 and all +1.
                let more = i2_rows(&mut rng, blocks);
                let pool = [&w, &more[0], &more[2], &more[3]];
                for n_rows in [1, 3, 4, 5, 8, 9, 13] {
                    for pad in [0, 32] {
                        let rb = blocks * 32 + pad;
                        let mut mat = vec![0x5Au8; n_rows * rb];
                        for r in 0..n_rows {
                            mat[r * rb..][..blocks * 32].copy_from_slice(pool[(r * 7) % 4]);
                        }
                        for (q, kq) in qs.iter().zip(&kq) {
                            let mut got = vec![0; n_rows];
                            let mut want = vec![1; n_rows];
                            (k.i2_matvec)(&mat, rb, kq, &mut got);
                            (SCALAR.i2_matvec)(&mat, rb, q, &mut want);
                            assert_eq!(
                                got,
                                want,
                                "{} matvec blocks={blocks} rows={n_rows} pad={pad}",
                                k.path.name()
                            );
                        }
                    }
                }
                // A 2-row × 8-token tile: this row and a random one, every input twice over.
                let other = i2_rows(&mut rng, blocks).swap_remove(0);
                let eight = [0, 1, 2, 3, 4, 2, 0, 3];
                assert_eq!(
                    (k.i2_tile)([&w, &other], eight.map(|i| &kq[i][..])),
                    (SCALAR.i2_tile)([&w, &other], eight.map(|i| &qs[i][..])),
                    "{} tile blocks={blocks}",
                    k.path.name()
                );
                // A batched decode step's 2-row × 4-token tile, one token repeated (how a
                // step of fewer than four tokens fills its group).
                let four = [3, 1, 4, 4];
                assert_eq!(
                    (k.i2_rows2x4)([&w, &other], four.map(|i| &kq[i][..])),
                    (SCALAR.i2_rows2x4)([&w, &other], four.map(|i| &qs[i][..])),
                    "{} rows2x4 blocks={blocks}",
                    k.path.name()
                );
                let two = [4, 1];
                assert_eq!(
                    (k.i2_rows2x2)([&w, &other], two.map(|i| &kq[i][..])),
                    (SCALAR.i2_rows2x2)([&w, &other], two.map(|i| &qs[i][..])),
                    "{} rows2x2 blocks={blocks}",
                    k.path.name()
                );
            }
        }
    }
}

fn close(a: f32, b: f32, n: usize, mag: f64, what: &str) {
    let bound = 4.0 * (n.max(1) as f64) * f32::EPSILON as f64 * mag + f32::MIN_POSITIVE as f64;
    assert!(
        ((a as f64) - (b as f64)).abs() <= bound,
        "{what}: {a} vs {b} (bound {bound})"
    );
}

#[test]
fn float_dots_within_bound() {
    let mut rng = Rng(7);
    for k in simd_tables() {
        for n in SIZES.into_iter().chain([2560]) {
            for (a, b) in float_inputs(&mut rng, n)
                .into_iter()
                .zip(float_inputs(&mut rng, n))
            {
                let a: Vec<f32> = a.iter().map(|v| v.clamp(-6e4, 6e4)).collect();
                let mag: f64 = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (*x as f64 * *y as f64).abs())
                    .sum();
                close(
                    (k.dot_f32)(&a, &b),
                    (SCALAR.dot_f32)(&a, &b),
                    n,
                    mag,
                    &format!("{} dot_f32 n={n}", k.path.name()),
                );
                let h: Vec<u8> = a
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect();
                let hv: Vec<f32> = a.iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
                let mag16: f64 = hv
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (*x as f64 * *y as f64).abs())
                    .sum();
                close(
                    (k.dot_f16)(&h, &b),
                    (SCALAR.dot_f16)(&h, &b),
                    n,
                    mag16,
                    &format!("{} dot_f16 n={n}", k.path.name()),
                );
                let bf: Vec<u8> = a
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect();
                let bv: Vec<f32> = a
                    .iter()
                    .map(|v| half::bf16::from_f32(*v).to_f32())
                    .collect();
                let magb: f64 = bv
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (*x as f64 * *y as f64).abs())
                    .sum();
                close(
                    (k.dot_bf16)(&bf, &b),
                    (SCALAR.dot_bf16)(&bf, &b),
                    n,
                    magb,
                    &format!("{} dot_bf16 n={n}", k.path.name()),
                );

                let mut oa = vec![0f32; n];
                let mut ob = vec![0f32; n];
                (k.f16_to_f32)(&h, &mut oa);
                (SCALAR.f16_to_f32)(&h, &mut ob);
                assert_eq!(bits(&oa), bits(&ob), "{} f16_to_f32 n={n}", k.path.name());

                let (sa, sb) = ((k.sum_sq)(&a), (SCALAR.sum_sq)(&a));
                assert!(
                    (sa - sb).abs() <= 1e-12 * sb.abs(),
                    "{} sum_sq n={n}: {sa} vs {sb}",
                    k.path.name()
                );

                (k.scale_mul)(&a, &b, 0.37, &mut oa);
                (SCALAR.scale_mul)(&a, &b, 0.37, &mut ob);
                assert_eq!(bits(&oa), bits(&ob), "{} scale_mul n={n}", k.path.name());

                let (mut ya, mut yb) = (b.clone(), b.clone());
                (k.axpy)(-1.25, &a, &mut ya);
                (SCALAR.axpy)(-1.25, &a, &mut yb);
                assert_eq!(bits(&ya), bits(&yb), "{} axpy n={n}", k.path.name());
            }
        }
    }
}

/// Attention's per-head loops over a strided KV cache: scores within the dot bound of the
/// portable loop, the weighted sum of values bit for bit.
#[test]
fn attention_rows_match_portable() {
    let mut rng = Rng(0xA77E);
    for k in simd_tables() {
        for d in [1usize, 7, 8, 31, 64, 96, 128, 130] {
            for n in [0usize, 1, 3, 4, 5, 17, 64] {
                let stride = 3 * d + 5;
                let len = if n == 0 { 0 } else { (n - 1) * stride + d };
                for (q, rows) in float_inputs(&mut rng, d)
                    .into_iter()
                    .zip(float_inputs(&mut rng, len))
                {
                    let q: Vec<f32> = q.iter().map(|v| v.clamp(-6e4, 6e4)).collect();
                    let (mut sa, mut sb) = (vec![0f32; n], vec![0f32; n]);
                    (k.dot_rows_f32)(&q, &rows, stride, &mut sa, true);
                    (SCALAR.dot_rows_f32)(&q, &rows, stride, &mut sb, false);
                    let mut hot = vec![0f32; n];
                    (k.dot_rows_f32)(&q, &rows, stride, &mut hot, false);
                    assert_eq!(
                        bits(&hot),
                        bits(&sa),
                        "{} dot_rows: hot != cold",
                        k.path.name()
                    );
                    for p in 0..n {
                        let mag: f64 = (0..d)
                            .map(|i| (q[i] as f64 * rows[p * stride + i] as f64).abs())
                            .sum();
                        let what = format!("{} dot_rows d={d} n={n} p={p}", k.path.name());
                        close(sa[p], sb[p], d, mag, &what);
                    }
                    // Softmax-like weights, and the extremes of the inputs as weights.
                    let w: Vec<f32> = (0..n)
                        .map(|p| rows.get(p * stride).copied().unwrap_or(0.0))
                        .collect();
                    let start = rng.f32s(d, 1.0);
                    let (mut oa, mut ob, mut hot) = (start.clone(), start.clone(), start);
                    (k.mix_rows_f32)(&w, &rows, stride, &mut oa, true);
                    (SCALAR.mix_rows_f32)(&w, &rows, stride, &mut ob, false);
                    (k.mix_rows_f32)(&w, &rows, stride, &mut hot, false);
                    assert_eq!(
                        bits(&hot),
                        bits(&oa),
                        "{} mix_rows: hot != cold",
                        k.path.name()
                    );
                    assert_eq!(
                        bits(&oa),
                        bits(&ob),
                        "{} mix_rows d={d} n={n}",
                        k.path.name()
                    );
                    // The same rows stored as f16 (an f16 KV cache), clamped into its range.
                    let clamped: Vec<f32> = rows.iter().map(|v| v.clamp(-6e4, 6e4)).collect();
                    let mut h = vec![0u8; 2 * len];
                    (SCALAR.f32_to_f16)(&clamped, &mut h);
                    let wide: Vec<f32> = h
                        .chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect();
                    (k.dot_rows_f16)(&q, &h, stride, &mut sa, true);
                    (SCALAR.dot_rows_f16)(&q, &h, stride, &mut sb, false);
                    let mut hot = vec![0f32; n];
                    (k.dot_rows_f16)(&q, &h, stride, &mut hot, false);
                    assert_eq!(
                        bits(&hot),
                        bits(&sa),
                        "{} dot_rows_f16: hot != cold",
                        k.path.name()
                    );
                    for p in 0..n {
                        let mag: f64 = (0..d)
                            .map(|i| (q[i] as f64 * wide[p * stride + i] as f64).abs())
                            .sum();
                        let what = format!("{} dot_rows_f16 d={d} n={n} p={p}", k.path.name());
                        close(sa[p], sb[p], d, mag, &what);
                    }
                    let start = rng.f32s(d, 1.0);
                    let (mut oa, mut ob, mut hot) = (start.clone(), start.clone(), start);
                    (k.mix_rows_f16)(&w, &h, stride, &mut oa, true);
                    (SCALAR.mix_rows_f16)(&w, &h, stride, &mut ob, false);
                    (k.mix_rows_f16)(&w, &h, stride, &mut hot, false);
                    assert_eq!(
                        bits(&hot),
                        bits(&oa),
                        "{} mix_rows_f16: hot != cold",
                        k.path.name()
                    );
                    assert_eq!(
                        bits(&oa),
                        bits(&ob),
                        "{} mix_rows_f16 d={d} n={n}",
                        k.path.name()
                    );
                }
            }
        }
    }
}

/// f32 → f16 bits identical to the portable twin: random values at several scales,
/// round-to-even ties, the f16 subnormal range, overflow, infinities, signed zeros; NaN
/// stays NaN. Lengths around the vector widths.
#[test]
fn f32_to_f16_identical() {
    let mut rng = Rng(0xF16);
    let mut edge = vec![
        0.0,
        -0.0,
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        65504.0,
        65519.0,
        65520.0,
        -1e9,
        f32::INFINITY,
        f32::NEG_INFINITY,
        6e-8,
        3e-8,
        2f32.powi(-24) * 1.5,
        f32::MIN_POSITIVE,
    ];
    edge.extend(rng.f32s(40, 1.0));
    edge.extend(rng.f32s(40, 1e-5));
    edge.extend(rng.f32s(40, 7e4));
    for k in simd_tables() {
        for n in [0, 1, 3, 4, 5, 7, 8, 9, 17, edge.len()] {
            let x = &edge[..n];
            let (mut a, mut b) = (vec![0u8; 2 * n], vec![1u8; 2 * n]);
            (k.f32_to_f16)(x, &mut a);
            (SCALAR.f32_to_f16)(x, &mut b);
            assert_eq!(a, b, "{} n={n}", k.path.name());
        }
        let mut a = [0u8; 16];
        (k.f32_to_f16)(&[f32::NAN; 8], &mut a);
        for c in a.chunks_exact(2) {
            assert!(
                half::f16::from_le_bytes([c[0], c[1]]).is_nan(),
                "{}",
                k.path.name()
            );
        }
    }
}

/// The four-row F16/BF16 dots (decode's output head) promise more than the bound above:
/// each result is the one-row dot of that row on the same path, bit for bit.
#[test]
fn half_row_quads_equal_single_rows_bit_for_bit() {
    let mut rng = Rng(0xF16);
    let mut tables = simd_tables();
    tables.push(&SCALAR);
    for k in tables {
        for n in SIZES.into_iter().chain([64, 96, 2560]) {
            let xs = float_inputs(&mut rng, n);
            // Random, all zero, the largest finite half and its negative interleaved with
            // subnormals, and a scaled ramp.
            let vals: [Vec<f32>; 4] = [
                rng.f32s(n, 2.0),
                vec![0.0; n],
                (0..n)
                    .map(|i| match i % 3 {
                        0 => 65504.0,
                        1 => -65504.0,
                        _ => 6e-8,
                    })
                    .collect(),
                (0..n).map(|i| i as f32 * 0.01 - 1.0).collect(),
            ];
            let f16_rows: Vec<Vec<u8>> = vals
                .iter()
                .map(|r| {
                    r.iter()
                        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                        .collect()
                })
                .collect();
            let bf16_rows: Vec<Vec<u8>> = vals
                .iter()
                .map(|r| {
                    r.iter()
                        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                        .collect()
                })
                .collect();
            for x in &xs {
                let x: Vec<f32> = x.iter().map(|v| v.clamp(-1e3, 1e3)).collect();
                for (rows, quad, one, name) in [
                    (&f16_rows, k.dot_f16_rows4, k.dot_f16, "f16"),
                    (&bf16_rows, k.dot_bf16_rows4, k.dot_bf16, "bf16"),
                ] {
                    let four: [&[u8]; 4] = std::array::from_fn(|r| &rows[r][..]);
                    let got = quad(four, &x);
                    for r in 0..4 {
                        assert_eq!(
                            got[r].to_bits(),
                            one(four[r], &x).to_bits(),
                            "{} dot_{name}_rows4 n={n} row {r}",
                            k.path.name()
                        );
                    }
                }
            }
            // One row × four tokens (a batched decode step's head): the tokens differ in
            // sign, order and zeros, and each must equal its own one-token dot.
            let x: Vec<f32> = xs[0].iter().map(|v| v.clamp(-1e3, 1e3)).collect();
            let toks: [Vec<f32>; 4] = [
                x.clone(),
                x.iter().rev().copied().collect(),
                vec![0.0; n],
                x.iter().map(|v| -3.0 * v).collect(),
            ];
            let four: [&[f32]; 4] = std::array::from_fn(|t| &toks[t][..]);
            for (rows, x4, rows2, one, name) in [
                (
                    &f16_rows,
                    k.dot_f16_x4,
                    k.dot_f16_rows2_x4,
                    k.dot_f16,
                    "f16",
                ),
                (
                    &bf16_rows,
                    k.dot_bf16_x4,
                    k.dot_bf16_rows2_x4,
                    k.dot_bf16,
                    "bf16",
                ),
            ] {
                for (r, row) in rows.iter().enumerate() {
                    // Two rows × four tokens: this row and the next (the last with the first).
                    let other = &rows[(r + 1) % rows.len()];
                    let (got, pair) = (x4(row, four), rows2([row, other], four));
                    for t in 0..4 {
                        let want = one(row, four[t]).to_bits();
                        let name = format!("{} dot_{name} n={n} row {r} token {t}", k.path.name());
                        assert_eq!(got[t].to_bits(), want, "{name}: x4");
                        assert_eq!(pair[0][t].to_bits(), want, "{name}: rows2_x4");
                        let want_other = one(other, four[t]).to_bits();
                        assert_eq!(pair[1][t].to_bits(), want_other, "{name}: rows2_x4, row 2");
                    }
                }
            }
        }
    }
}

/// Q6_K blocks: random bytes (every pattern is a valid block), plus the extremes of each
/// field (6-bit values 0 and 63, scales −128 and 127).
fn q6k_rows(rng: &mut Rng, blocks: usize) -> Vec<Vec<u8>> {
    let block = |fill: Option<u8>, sc: Option<u8>, rng: &mut Rng| {
        let mut b: Vec<u8> = (0..208)
            .map(|_| fill.unwrap_or_else(|| rng.below(256) as u8))
            .collect();
        if let Some(s) = sc {
            b[192..208].fill(s);
        }
        b.extend(half::f16::from_f32(1e-3 * (1 + rng.below(200)) as f32).to_le_bytes());
        b
    };
    let mut rows = Vec::new();
    for (fill, sc) in [
        (None, None),
        (None, None),
        (Some(0xFF), Some(0x7F)),
        (Some(0xFF), Some(0x80)),
        (Some(0x00), Some(0x80)),
    ] {
        rows.push((0..blocks).flat_map(|_| block(fill, sc, rng)).collect());
    }
    rows
}

#[test]
fn q6k_dot_identical() {
    use bitnet_kernels::portable::{quantize_q8k, Q8K};
    let mut rng = Rng(0x6b6b);
    for blocks in [1usize, 2, 3, 10] {
        let k = blocks * 256;
        for x in float_inputs(&mut rng, k) {
            let mut a = Q8K::default();
            quantize_q8k(&x, &mut a);
            assert!(a.q.iter().all(|&q| q >= -127));
            for row in q6k_rows(&mut rng, blocks) {
                let want = (SCALAR.dot_q6k_q8k)(&row, &a.q, &a.d, &a.bsums);
                for t in simd_tables() {
                    let got = (t.dot_q6k_q8k)(&row, &a.q, &a.d, &a.bsums);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} blocks={blocks}: {got} vs {want}",
                        t.path.name()
                    );
                }
            }
        }
    }
}

#[test]
fn q6k_dot_matches_dequantised_values() {
    // The portable routine itself against a direct Σ (v − 32) · scale · q.
    use bitnet_kernels::portable::{q6k_value, quantize_q8k, Q8K};
    let mut rng = Rng(0x6b6c);
    let row = q6k_rows(&mut rng, 2).swap_remove(0);
    let x = rng.f32s(512, 1.0);
    let mut a = Q8K::default();
    quantize_q8k(&x, &mut a);
    let mut want = 0f32;
    for (b, blk) in row.chunks_exact(210).enumerate() {
        let mut isum = 0i32;
        for i in 0..256 {
            let sc = blk[192 + i / 16] as i8 as i32;
            isum += sc * (q6k_value(blk, i) - 32) * a.q[b * 256 + i] as i32;
        }
        let d6 = half::f16::from_le_bytes([blk[208], blk[209]]).to_f32();
        want += (d6 * a.d[b]) * isum as f32;
    }
    let got = (SCALAR.dot_q6k_q8k)(&row, &a.q, &a.d, &a.bsums);
    assert_eq!(got.to_bits(), want.to_bits());
}

/// Rows of 32-element blocks that start with an f16 scale (Q8_0: 32 payload bytes, Q4_0:
/// 16): random payloads, and payloads filled with each extreme byte.
fn block0_rows(rng: &mut Rng, k: usize, payload: usize, fills: [Option<u8>; 4]) -> Vec<Vec<u8>> {
    fills
        .into_iter()
        .map(|fill| {
            (0..k / 32)
                .flat_map(|_| {
                    let d = half::f16::from_f32(1e-2 * (1 + rng.below(100)) as f32);
                    let mut b = d.to_le_bytes().to_vec();
                    b.extend((0..payload).map(|_| fill.unwrap_or_else(|| rng.below(256) as u8)));
                    b
                })
                .collect()
        })
        .collect()
}

#[test]
fn q8_0_dot_identical() {
    use bitnet_kernels::portable::{quantize_q8k, Q8K};
    let mut rng = Rng(0x8080);
    // Whole 256-blocks, and K with a short last activation block (3200: the 3B shape).
    for k in [256usize, 512, 1280, 32, 96, 288, 3200] {
        let rows = block0_rows(&mut rng, k, 32, [None, Some(0x80), Some(0x7F), Some(0x00)]);
        for x in float_inputs(&mut rng, k) {
            let mut a = Q8K::default();
            quantize_q8k(&x, &mut a);
            for row in &rows {
                let want = (SCALAR.dot_q8_0_q8k)(row, &a.q, &a.d);
                // The portable routine against a direct Σ w · x per block.
                let mut direct = 0f32;
                for (b, blk) in row.chunks_exact(34).enumerate() {
                    let isum: i32 = (0..32)
                        .map(|i| blk[2 + i] as i8 as i32 * a.q[32 * b + i] as i32)
                        .sum();
                    let dw = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                    direct += (dw * a.d[b / 8]) * isum as f32;
                }
                assert_eq!(want.to_bits(), direct.to_bits());
                for t in simd_tables() {
                    let got = (t.dot_q8_0_q8k)(row, &a.q, &a.d);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} k={k}: {got} vs {want}",
                        t.path.name()
                    );
                }
            }
        }
    }
}

#[test]
fn q4_0_dot_identical() {
    use bitnet_kernels::portable::{quantize_q8k, Q8K};
    let mut rng = Rng(0x4040);
    // Whole 256-blocks, and K with a short last activation block (3200: the 3B shape).
    for k in [256usize, 512, 1280, 32, 96, 288, 3200] {
        let rows = block0_rows(&mut rng, k, 16, [None, Some(0x00), Some(0xFF), Some(0x88)]);
        for x in float_inputs(&mut rng, k) {
            let mut a = Q8K::default();
            quantize_q8k(&x, &mut a);
            for row in &rows {
                let want = (SCALAR.dot_q4_0_q8k)(row, &a.q, &a.d, &a.bsums);
                // The portable routine against a direct Σ (v − 8) · x per block.
                let mut direct = 0f32;
                for (b, blk) in row.chunks_exact(18).enumerate() {
                    let isum: i32 = (0..32)
                        .map(|i| {
                            let byte = blk[2 + i % 16];
                            let v = if i < 16 { byte & 0xF } else { byte >> 4 };
                            (v as i32 - 8) * a.q[32 * b + i] as i32
                        })
                        .sum();
                    let dw = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                    direct += (dw * a.d[b / 8]) * isum as f32;
                }
                assert_eq!(want.to_bits(), direct.to_bits());
                for t in simd_tables() {
                    let got = (t.dot_q4_0_q8k)(row, &a.q, &a.d, &a.bsums);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} k={k}: {got} vs {want}",
                        t.path.name()
                    );
                }
            }
        }
    }
}

#[test]
fn f32_tile_is_each_pairs_dot() {
    // The contract is the path's own dot_f32 per (row, token), bit for bit, on every table.
    let mut rng = Rng(0x7113);
    let mut tables = simd_tables();
    tables.push(&SCALAR);
    for n in SIZES.into_iter().chain([2560]) {
        let inputs = float_inputs(&mut rng, n);
        for (i, t) in inputs.iter().enumerate() {
            let rows = [t.as_slice(), inputs[(i + 1) % inputs.len()].as_slice()];
            let xs = [2, 3, 5].map(|j| inputs[(i + j) % inputs.len()].as_slice());
            for k in &tables {
                let got = (k.dot_f32_tile)(rows, xs);
                for r in 0..2 {
                    for (c, x) in xs.iter().enumerate() {
                        let want = (k.dot_f32)(rows[r], x);
                        assert_eq!(
                            got[r][c].to_bits(),
                            want.to_bits(),
                            "{} n={n} r={r} t={c}: {} vs {want}",
                            k.path.name(),
                            got[r][c]
                        );
                    }
                }
            }
        }
    }
}
