//! One benchmark group per kernel family, on the selected path and on the portable one:
//! `cargo bench -p bitnet-kernels` (set BITNET_FORCE_SCALAR=1 to make the default path
//! portable too).

use bitnet_formats::TensorType;
use std::sync::OnceLock;

use bitnet_kernels::dispatch::SCALAR;
use bitnet_kernels::*;
use divan::{black_box, Bencher};

/// The detected runtime every benchmark runs on (its path and one thread per core).
fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(Runtime::detect)
}

fn main() {
    divan::main();
}

fn rand_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn rand_codes(n: usize, seed: u64) -> Vec<i8> {
    rand_f32(n, seed)
        .iter()
        .map(|v| {
            if *v < -0.33 {
                -1
            } else if *v > 0.33 {
                1
            } else {
                0
            }
        })
        .collect()
}

const K: usize = 2560;

#[divan::bench(args = [1, 4, 64])]
fn quantize_acts_2560(b: Bencher, n: usize) {
    let x = rand_f32(n * K, 1);
    let mut q = QuantizedActs::new();
    b.bench_local(|| quantize_acts(rt(), black_box(&x), K, &mut q));
}

#[divan::bench(args = ["simd", "portable"])]
fn i2_dot_row_2560(b: Bencher, which: &str) {
    let kt = if which == "simd" {
        rt().kernels()
    } else {
        &SCALAR
    };
    let w: Vec<u8> = rand_f32(K / 4, 2)
        .iter()
        .map(|v| ((v.abs() * 80.0) as u8).min(80) % 81)
        .map(|i| {
            let (a, b, c, d) = (i / 27, i / 9 % 3, i / 3 % 3, i % 3);
            (a << 6) | (b << 4) | (c << 2) | d
        })
        .collect();
    let mut q = QuantizedActs::new();
    quantize_acts(rt(), &rand_f32(K, 3), K, &mut q);
    b.bench_local(|| (kt.i2_dot)(black_box(&w), black_box(&q.q)));
}

/// Prefill's 2-row × 8-token tile over 32 rows of the FFN-down width (K = 6912), whose
/// eight activation rows (55 KB) live in L2; `simd-2x4` is a batched step's 2-row × 4-token
/// tile on the same rows, in cache (its rate there against the step's shows what memory
/// adds). (Speed only: the SIMD path gets the plain activation layout here whatever its own
/// is.)
#[divan::bench(args = ["simd", "simd-2x4", "portable"])]
fn i2_tile_32x8_6912(b: Bencher, which: &str) {
    const KD: usize = 6912;
    let kt = if which.starts_with("simd") {
        rt().kernels()
    } else {
        &SCALAR
    };
    let rows: Vec<u8> = rand_f32(32 * KD / 4, 21)
        .iter()
        .map(|v| (v.to_bits() & 0xFF) as u8 & 0b1010_1010)
        .collect();
    let q: Vec<Vec<i8>> = (0..8)
        .map(|t| {
            let mut a = QuantizedActs::new();
            quantize_acts(rt(), &rand_f32(KD, 30 + t), KD, &mut a);
            a.q
        })
        .collect();
    let qs: [&[i8]; 8] = std::array::from_fn(|t| &q[t][..]);
    b.bench_local(|| {
        let mut s = 0i32;
        for r in rows.chunks_exact(2 * KD / 4) {
            let (a, c) = r.split_at(KD / 4);
            if which == "simd-2x4" {
                let q4 = [qs[0], qs[1], qs[2], qs[3]];
                let d = (kt.i2_rows2x4)(black_box([a, c]), black_box(q4));
                s = s.wrapping_add(d[0][0]).wrapping_add(d[1][3]);
            } else {
                let d = (kt.i2_tile)(black_box([a, c]), black_box(qs));
                s = s.wrapping_add(d[0][0]).wrapping_add(d[1][7]);
            }
        }
        s
    });
}

/// The prefill GEMM (every SIMD path has one) on 32 rows × 128 tokens at the
/// widths of the 2B4T projections (K = 2560, and 6912 for FFN-down), against its portable
/// twin; skipped when the selected path has no GEMM.
#[divan::bench(args = ["simd-2560", "simd-6912", "portable-2560"], sample_count = 20)]
fn i2_gemm32_x128(b: Bencher, which: &str) {
    let Some(gemm) = rt().kernels().i2_gemm else {
        return;
    };
    let k: usize = which[which.len() - 4..].parse().unwrap();
    let n = 128;
    let rows: Vec<u8> = rand_f32(32 * k / 4, 9)
        .iter()
        .map(|v| ((v.abs() * 80.0) as u8).min(80) % 81)
        .map(|i| ((i / 27) << 6) | ((i / 9 % 3) << 4) | ((i / 3 % 3) << 2) | (i % 3))
        .collect();
    let mut q = QuantizedActs::new();
    quantize_acts(rt(), &rand_f32(n * k, 10), k, &mut q);
    let mut packed = Vec::new();
    (gemm.pack)(&q.q, k, n, &mut packed);
    let mut out = vec![0i32; 32 * n];
    let b = b.counter(divan::counter::ItemsCount::new(32 * n * k));
    if which.starts_with("simd") {
        b.bench_local(|| (gemm.run)(black_box(&rows), k / 4, k, black_box(&packed), n, &mut out));
    } else {
        b.bench_local(|| {
            portable::i2_gemm32(black_box(&rows), k / 4, k, black_box(&q.q), n, &mut out)
        });
    }
}

/// The AVX2 instruction-mix ceiling of every ternary kernel above: a ternary dot costs one
/// `vpmaddubsw` and one `vpaddw` per 32 multiply-adds, so this loop of nothing else (eight
/// independent pairs per step, registers only) is what `i2_gemm32_x128` could reach at
/// best. Reported in multiply-adds (32 per pair): compare its rate with the GEMM's in the
/// same run.
#[cfg(target_arch = "x86_64")]
#[divan::bench(sample_count = 20)]
fn avx2_maddubs_add_peak(b: Bencher) {
    if !std::arch::is_x86_feature_detected!("avx2") {
        return;
    }
    const STEPS: u64 = 100_000;
    b.counter(divan::counter::ItemsCount::new(STEPS * 8 * 32))
        // SAFETY: AVX2 was detected.
        .bench_local(|| unsafe { maddubs_add_pairs(STEPS) });
}

/// `steps` × eight independent `vpmaddubsw` + `vpaddw` pairs on registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn maddubs_add_pairs(steps: u64) {
    use std::arch::x86_64::_mm256_set1_epi8;
    // SAFETY: the asm touches only the registers it declares.
    unsafe {
        std::arch::asm!(
            "2:",
            "vpmaddubsw {t0}, {c}, {x}",
            "vpaddw ymm0, ymm0, {t0}",
            "vpmaddubsw {t1}, {c}, {x}",
            "vpaddw ymm1, ymm1, {t1}",
            "vpmaddubsw {t2}, {c}, {x}",
            "vpaddw ymm2, ymm2, {t2}",
            "vpmaddubsw {t3}, {c}, {x}",
            "vpaddw ymm3, ymm3, {t3}",
            "vpmaddubsw {t0}, {c}, {x}",
            "vpaddw ymm4, ymm4, {t0}",
            "vpmaddubsw {t1}, {c}, {x}",
            "vpaddw ymm5, ymm5, {t1}",
            "vpmaddubsw {t2}, {c}, {x}",
            "vpaddw ymm6, ymm6, {t2}",
            "vpmaddubsw {t3}, {c}, {x}",
            "vpaddw ymm7, ymm7, {t3}",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) steps => _,
            c = in(ymm_reg) _mm256_set1_epi8(1),
            x = in(ymm_reg) _mm256_set1_epi8(3),
            t0 = out(ymm_reg) _, t1 = out(ymm_reg) _,
            t2 = out(ymm_reg) _, t3 = out(ymm_reg) _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            options(nomem, nostack),
        );
    }
}

/// The exact lookup-table alternative to the pairs above (T-MAC's tables turned to run over
/// tokens): for each group of `g` columns, a table of the partial sums of its 3^g ternary
/// patterns for 16 tokens (i16, exact), so that one `vpaddw` of a looked-up entry does
/// 16·g multiply-adds. Only the inner loop, at its best: eight groups' tables built once
/// (L1-resident up to g = 4, 20.7 KB; 62 KB for g = 5, from L2), each row's eight pattern
/// indices read as one u64, four rows in flight. Reported in multiply-adds: if this rate does not clearly beat
/// `avx2_maddubs_add_peak` in the same run, no exact LUT GEMM (which must also build its
/// tables, widen its i16 sums and stream indices from L2) beats the `vpmaddubsw` GEMM.
#[cfg(target_arch = "x86_64")]
#[divan::bench(args = [3, 4, 5], sample_count = 20)]
fn avx2_lut_lookup_peak(b: Bencher, g: u32) {
    if !std::arch::is_x86_feature_detected!("avx2") {
        return;
    }
    let patterns = 3usize.pow(g);
    // 64-byte aligned entries: an entry split over two lines costs two loads.
    let mut storage = vec![0i16; LUT_GROUPS * patterns * 16 + 32];
    let skip = storage.as_ptr().align_offset(64);
    let table = &mut storage[skip..skip + LUT_GROUPS * patterns * 16];
    let values = rand_f32(table.len(), 13);
    for (i, (e, v)) in table.iter_mut().zip(values).enumerate() {
        *e = (v * 300.0) as i16 + (i % 7) as i16;
    }
    let idx: Vec<u8> = rand_f32(LUT_ROWS * LUT_GROUPS, 14)
        .iter()
        .map(|v| ((v.abs() * patterns as f32) as usize).min(patterns - 1) as u8)
        .collect();
    let mut acc = vec![0i16; LUT_ROWS * 16];
    let table = &*table;
    const PASSES: usize = 256;
    b.counter(divan::counter::ItemsCount::new(
        PASSES * LUT_ROWS * LUT_GROUPS * g as usize * 16,
    ))
    .bench_local(|| {
        for _ in 0..PASSES {
            // SAFETY: AVX2 was detected; the indices are below `patterns`.
            unsafe { lut_lookups(black_box(table), patterns, black_box(&idx), &mut acc) }
        }
    });
}

#[cfg(target_arch = "x86_64")]
const LUT_GROUPS: usize = 8;
#[cfg(target_arch = "x86_64")]
const LUT_ROWS: usize = 384;

/// `acc[r] += Σ_j table[j][idx[r][j]]` over 16 i16 lanes, for [`LUT_ROWS`] rows of
/// [`LUT_GROUPS`] indices each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lut_lookups(table: &[i16], patterns: usize, idx: &[u8], acc: &mut [i16]) {
    use std::arch::x86_64::*;
    let (t, a) = (table.as_ptr(), acc.as_mut_ptr());
    for r in (0..LUT_ROWS).step_by(4) {
        // SAFETY: every row and entry read or written lies inside the slices.
        unsafe {
            let mut sum: [__m256i; 4] =
                std::array::from_fn(|i| _mm256_loadu_si256(a.add((r + i) * 16) as *const __m256i));
            let mut words: [u64; 4] = std::array::from_fn(|i| {
                u64::from_le_bytes(idx[(r + i) * 8..(r + i) * 8 + 8].try_into().unwrap())
            });
            for j in 0..LUT_GROUPS {
                for i in 0..4 {
                    let p = (words[i] & 0xff) as usize;
                    words[i] >>= 8;
                    let e = _mm256_loadu_si256(t.add((j * patterns + p) * 16) as *const __m256i);
                    sum[i] = _mm256_add_epi16(sum[i], e);
                }
            }
            for (i, s) in sum.iter().enumerate() {
                _mm256_storeu_si256(a.add((r + i) * 16) as *mut __m256i, *s);
            }
        }
    }
}

/// One attention head (d = 128) against 512 cached keys/values of a 5-head cache: scores and
/// the weighted sum of values, on the selected path (prefetching as for a block's first
/// read, and not: `simd-hot`, the rows just read) and the portable one.
#[divan::bench(args = ["simd", "simd-hot", "portable"])]
fn attention_head_128x512(b: Bencher, which: &str) {
    let kt = if which.starts_with("simd") {
        rt().kernels()
    } else {
        &SCALAR
    };
    let cold = which != "simd-hot";
    let (d, n, stride) = (128, 512, 640);
    let q = rand_f32(d, 11);
    let kv = rand_f32(n * stride, 12);
    let mut scores = vec![0f32; n];
    let mut out = vec![0f32; d];
    b.bench_local(|| {
        (kt.dot_rows_f32)(black_box(&q), black_box(&kv), stride, &mut scores, cold);
        (kt.mix_rows_f32)(black_box(&scores), black_box(&kv), stride, &mut out, cold);
    });
}

/// Decode (1 token), a server's batched decode step (2, 4 tokens: ideally barely slower
/// than 1; 6 goes through the AMX GEMM padded to 16 where there is one) and prefill (16, 64,
/// 128 tokens) through the public matmul: the 2B4T FFN-up shape.
#[divan::bench(args = [1, 2, 3, 4, 6, 16, 64, 128], sample_count = 20)]
fn ternary_matmul_6912x2560(b: Bencher, n: usize) {
    let m = 6912;
    let w = TernaryMatrix::from_ternary(&rand_codes(m * K, 4), m, K, 0.5).unwrap();
    let mut q = QuantizedActs::new();
    quantize_acts(rt(), &rand_f32(n * K, 5), K, &mut q);
    let mut out = vec![0f32; n * m];
    b.bench_local(|| ternary_matmul(rt(), &w, &q, &mut out));
}

/// The same shape as TQ2_0 with a different scale in every 256-block (a TQ file quantised
/// from a model that is not ternary per tensor): prefill through the per-block path.
#[divan::bench(args = [16, 128], sample_count = 10)]
fn ternary_matmul_tq2_blocks_6912x2560(b: Bencher, n: usize) {
    let m = 6912;
    let codes = rand_codes(m * K, 4);
    let mut blob = Vec::with_capacity(m * K / 256 * 66);
    for (i, blk) in codes.chunks(256).enumerate() {
        // TQ2_0: 64 bytes of codes + 1, four per byte (element j of each 32-run in bits
        // 2·(j / 32 % 4)), then an f16 scale.
        let mut qs = [0u8; 64];
        for (j, &c) in blk.iter().enumerate() {
            qs[j % 32 + 32 * (j / 128)] |= ((c + 1) as u8) << (2 * (j / 32 % 4));
        }
        blob.extend(qs);
        blob.extend(((0x3800 + (i % 512)) as u16).to_le_bytes());
    }
    let w = TernaryMatrix::new(&TernaryFormat::Tq2_0, &blob, m, K).unwrap();
    assert!(w.has_block_scales());
    let mut q = QuantizedActs::new();
    quantize_acts(rt(), &rand_f32(n * K, 5), K, &mut q);
    let mut out = vec![0f32; n * m];
    b.bench_local(|| ternary_matmul(rt(), &w, &q, &mut out));
}

#[divan::bench(
    args = [TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q6_K],
    sample_count = 20
)]
fn dense_matvec_8192x2560(b: Bencher, ty: TensorType) {
    let m = 8192;
    let wf = rand_f32(m * K, 6);
    let bytes: Vec<u8> = match ty {
        TensorType::F16 => wf
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        TensorType::BF16 => wf
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        // Random bytes are a valid Q6_K block; only d (the last two bytes) is set.
        TensorType::Q6_K => wf
            .chunks(256)
            .flat_map(|c| {
                let mut blk: Vec<u8> = c[..208].iter().map(|v| (v * 127.0) as i8 as u8).collect();
                blk.extend(half::f16::from_f32(1e-3).to_le_bytes());
                blk
            })
            .collect(),
        _ => wf
            .chunks(32)
            .flat_map(|c| {
                let mut blk = half::f16::from_f32(1.0 / 127.0).to_le_bytes().to_vec();
                blk.extend(c.iter().map(|v| (v * 127.0) as i8 as u8));
                blk
            })
            .collect(),
    };
    let w = DenseMatrix::new(ty, &bytes, m, K).unwrap();
    let x = rand_f32(K, 7);
    let mut out = vec![0f32; m];
    b.bench_local(|| dense_matmul(rt(), &w, black_box(&x), 1, &mut out));
}

/// An F16 head against a batched decode step's tokens (two rows × four tokens per call):
/// memory-bound from DRAM, so 2 to 8 tokens should cost little more than 1.
#[divan::bench(args = [1, 2, 4, 8], sample_count = 20)]
fn dense_f16_batch_8192x2560(b: Bencher, n: usize) {
    let m = 8192;
    let bytes: Vec<u8> = rand_f32(m * K, 6)
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let w = DenseMatrix::new(TensorType::F16, &bytes, m, K).unwrap();
    let x = rand_f32(n * K, 7);
    let mut out = vec![0f32; n * m];
    b.bench_local(|| dense_matmul(rt(), &w, black_box(&x), n, &mut out));
}

/// A prompt's widened head rows: 2 rows × 3 tokens, as one tile call ("tile") or as six
/// `dot_f32` calls ("pairs"), the same bits either way. L1/L2-resident.
#[divan::bench(args = ["tile", "pairs"])]
fn dot_f32_tile_2x3_2560(b: Bencher, how: &str) {
    let kt = rt().kernels();
    let rows = [rand_f32(K, 21), rand_f32(K, 22)];
    let xs = [rand_f32(K, 23), rand_f32(K, 24), rand_f32(K, 25)];
    let rows = [rows[0].as_slice(), rows[1].as_slice()];
    let xs = [xs[0].as_slice(), xs[1].as_slice(), xs[2].as_slice()];
    if how == "tile" {
        b.bench_local(|| (kt.dot_f32_tile)(black_box(rows), black_box(xs)));
    } else {
        b.bench_local(|| black_box(rows).map(|r| black_box(xs).map(|x| (kt.dot_f32)(r, x))));
    }
}

#[divan::bench]
fn rms_norm_2560(b: Bencher) {
    let x = rand_f32(K, 8);
    let w = rand_f32(K, 9);
    let mut out = vec![0f32; K];
    b.bench_local(|| rms_norm(rt(), black_box(&x), &w, 1e-5, &mut out));
}

#[divan::bench]
fn softmax_4096(b: Bencher) {
    let x = rand_f32(4096, 10);
    b.bench_local(|| {
        let mut y = x.clone();
        ops::softmax(rt(), &mut y);
        y
    });
}

/// The SiLU gate over a large FFN's width (Llama-style models), SIMD path and portable.
#[divan::bench(args = ["simd", "portable"])]
fn silu_mul_6912(b: Bencher, which: &str) {
    let g = rand_f32(6912, 11);
    let u = rand_f32(6912, 12);
    let f = if which == "simd" {
        rt().kernels().silu_mul
    } else {
        SCALAR.silu_mul
    };
    let mut y = g.clone();
    b.bench_local(|| {
        y.copy_from_slice(&g);
        f(black_box(&mut y), &u);
    });
}

/// One thread streaming 256 MiB of F16 rows (larger than the caches) against one token:
/// one row after another (one stream) or four rows per call from the four quarters (four
/// streams, what decode's head does). The gap is the reason decode reads four rows at once.
#[divan::bench(args = ["one_stream", "four_streams"], sample_count = 5)]
fn f16_head_stream_256mib(b: Bencher, how: &str) {
    const K: usize = 2560;
    let rows = (256 << 20) / (2 * K);
    let bytes: Vec<u8> = rand_f32(rows * K, 11)
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let x = rand_f32(K, 12);
    let kt = rt().kernels();
    let row = |r: usize| &bytes[r * 2 * K..(r + 1) * 2 * K];
    let quarter = rows / 4;
    b.bench_local(|| {
        let mut s = 0f32;
        if how == "one_stream" {
            for r in 0..4 * quarter {
                s += (kt.dot_f16)(row(r), black_box(&x));
            }
        } else {
            for i in 0..quarter {
                let v = (kt.dot_f16_rows4)(std::array::from_fn(|j| row(j * quarter + i)), &x);
                s += v.iter().sum::<f32>();
            }
        }
        s
    });
}
