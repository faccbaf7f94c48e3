//! The prefill GEMM entries and the I2_S epilogue row of every path this CPU supports
//! (under qemu-aarch64, NEON and dotprod) against their portable twins: integer dots and
//! epilogue bits identical.

mod common;

use bitnet_kernels::dispatch::SCALAR;
use common::{bits, simd_tables, Rng, SIZES};

/// The GEMM entries (AMX, AVX-512 VNNI, AVX-VNNI, AVX2, NEON) against their portable twin, and
/// the twin against plain i2 dots: random codes and activations, all -1 / +1 rows,
/// activation extremes, widths of one and of several (uneven) column chunks, more tokens
/// than one token block.
#[test]
fn gemm32_matches_portable() {
    let mut rng = Rng(0x6E44);
    let tables: Vec<_> = simd_tables()
        .into_iter()
        .filter(|k| k.i2_gemm.is_some())
        .collect();
    for k in tables {
        let gemm = k.i2_gemm.unwrap();
        for (kk, groups, pad) in [
            (128usize, 1usize, 0usize),
            (384, 2, 32),
            (640, 3, 0),
            (2176, 2, 0),
            (2560, 1, 96),
            (4352, 1, 0),
            (256, 70, 0), // more tokens than one block of the AVX2 / AVX-512 GEMMs
        ] {
            let row_bytes = kk / 4 + pad;
            let mut rows: Vec<u8> = (0..32 * row_bytes)
                .map(|_| (0..4).fold(0u8, |b, _| (b << 2) | rng.below(3) as u8))
                .collect();
            rows[..row_bytes].fill(0x00); // a row of -1
            rows[row_bytes..2 * row_bytes].fill(0xAA); // a row of +1
            let n = gemm.group * groups;
            let mut q: Vec<i8> = (0..n * kk).map(|_| rng.next_u64() as i8).collect();
            q[..kk].fill(-128);
            q[kk..2 * kk].fill(127);
            let mut packed = Vec::new();
            (gemm.pack)(&q, kk, n, &mut packed);
            let (mut a, mut b) = (vec![0i32; 32 * n], vec![0i32; 32 * n]);
            (gemm.run)(&rows, row_bytes, kk, &packed, n, &mut a);
            // Token-major to the twin's row-major order.
            a = (0..32 * n).map(|i| a[(i % n) * 32 + i / n]).collect();
            bitnet_kernels::portable::i2_gemm32(&rows, row_bytes, kk, &q, n, &mut b);
            assert_eq!(a, b, "{} gemm32 k={kk} n={n}", k.path.name());
            for r in 0..32 {
                for t in 0..n {
                    let want =
                        (SCALAR.i2_dot)(&rows[r * row_bytes..][..kk / 4], &q[t * kk..][..kk]);
                    assert_eq!(b[r * n + t], want, "portable gemm32 k={kk} r={r} t={t}");
                }
            }
        }
    }
}

/// A GEMM entry refuses shapes outside its contract by name, before touching a buffer.
#[test]
fn gemm32_rejects_broken_shapes() {
    for k in simd_tables() {
        let Some(gemm) = k.i2_gemm else { continue };
        let (kk, n) = (256, 2 * gemm.group);
        let rows = vec![0u8; 32 * kk / 4];
        let mut packed = Vec::new();
        (gemm.pack)(&vec![1i8; n * kk], kk, n, &mut packed);
        let mut out = vec![0i32; 32 * n];
        let fails = |rows: &[u8], k: usize, n: usize, out: &mut [i32]| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (gemm.run)(rows, kk / 4, k, &packed, n, out)
            }))
            .err()
            .map(|e| match e.downcast::<String>() {
                Ok(s) => *s,
                Err(e) => e
                    .downcast::<&str>()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            })
        };
        let msg = fails(&rows, 200, n, &mut out).unwrap_or_default();
        assert!(
            msg.contains("not a multiple of 128"),
            "{}: {msg}",
            k.path.name()
        );
        let msg = fails(&rows[..rows.len() - 1], kk, n, &mut out).unwrap_or_default();
        assert!(msg.contains("rows too short"), "{}: {msg}", k.path.name());
        let msg = fails(&rows, kk, n, &mut out[..32 * n - 1]).unwrap_or_default();
        assert!(msg.contains("output too short"), "{}: {msg}", k.path.name());
        if gemm.group > 1 {
            let msg = fails(&rows, kk, n - 1, &mut out).unwrap_or_default();
            assert!(msg.contains("not whole groups"), "{}: {msg}", k.path.name());
        }
        assert!(fails(&rows, kk, n, &mut out).is_none(), "{}", k.path.name());
    }
}

/// The I2_S epilogue row, bit for bit: random and extreme dots (beyond f32's exact integers,
/// i32's ends), zero and huge sums, tiny and huge scales, every length around the 4-, 8- and
/// 16-lane steps, and an output longer than the dots (left untouched past them).
#[test]
fn i2s_epilogue_row_identical() {
    let mut rng = Rng(0xE91);
    for k in simd_tables() {
        for n in SIZES.into_iter().chain([16, 17, 47, 64]) {
            let mut dots: Vec<i32> = (0..n)
                .map(|_| rng.next_u64() as i32 >> (rng.below(24) as u32))
                .collect();
            for (i, d) in [i32::MAX, i32::MIN, 0, (1 << 24) + 1, -(1 << 25) - 3]
                .into_iter()
                .enumerate()
            {
                if i < n {
                    dots[n - 1 - i] = d;
                }
            }
            for (sum, act_scale, scale) in [
                (0, 1.0, 1.0),
                (rng.next_u64() as i32 >> 8, 127.0 / 3.7, 0.8125),
                (i32::MIN, 1e-30, 3e30),
                (-12345, 7.0e20, 1e-20),
            ] {
                let (mut a, mut b) = (vec![-1f32; n + 3], vec![-1f32; n + 3]);
                (k.i2s_epilogue_row)(&dots, sum, act_scale, scale, &mut a);
                (SCALAR.i2s_epilogue_row)(&dots, sum, act_scale, scale, &mut b);
                assert_eq!(
                    bits(&a),
                    bits(&b),
                    "{} epilogue n={n} sum={sum}",
                    k.path.name()
                );
                assert!(
                    a[n..].iter().all(|&v| v == -1.0),
                    "{} wrote past the dots",
                    k.path.name()
                );
                let want: Vec<f32> = dots
                    .iter()
                    .map(|&d| bitnet_kernels::portable::i2s_epilogue(d, sum, act_scale, scale))
                    .collect();
                assert_eq!(bits(&b[..n]), bits(&want), "portable epilogue n={n}");
            }
        }
    }
}
