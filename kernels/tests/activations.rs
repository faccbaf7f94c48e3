//! The vectorised activations against their portable twins, for every path this CPU
//! supports (NEON under qemu-aarch64).
//!
//! Bounds: `exp_shifted` gives every value within 2 ulp of libm's `expf` (exact for 0, inf
//! and NaN results), and its f64 sum within the reordering and those 2 ulp of the
//! portable sum. `silu_mul` differs from the portable twin only in `e^−g` (a vector `exp` within
//! 2 ulp instead of libm's); after the add, divide and multiply that follow, every result
//! must be within 6 ulp of the portable one (4 seen) — and exactly equal for NaN, ±inf and zero
//! results.

mod common;

use bitnet_kernels::dispatch::{table_for, KernelPath, SCALAR};
use bitnet_kernels::Runtime;
use common::{assert_covers_required_paths, simd_paths, Rng};

/// Distance in units in the last place; `±0` are the same point.
fn ulps(a: f32, b: f32) -> u32 {
    let ordered = |x: f32| {
        let b = x.to_bits() as i32;
        if b < 0 {
            -(b & 0x7fff_ffff) as i64
        } else {
            b as i64
        }
    };
    (ordered(a) - ordered(b))
        .unsigned_abs()
        .min(u32::MAX as u64) as u32
}

/// Every `got[i]` within `bound` ulp of `want[i]`, and equal where `want` is NaN, infinite
/// or zero; returns the worst distance. `what(i)` names the case in a failure.
fn within_ulps(want: &[f32], got: &[f32], bound: u32, what: impl Fn(usize) -> String) -> u32 {
    let mut worst = 0;
    for (i, (&w, &g)) in want.iter().zip(got).enumerate() {
        if w.is_nan() || !w.is_finite() || w == 0.0 {
            assert!(
                (w.is_nan() && g.is_nan()) || w == g,
                "{}: want {w:e}, got {g:e} (must be exact)",
                what(i)
            );
            continue;
        }
        let d = ulps(w, g);
        assert!(d <= bound, "{}: want {w:e}, got {g:e} ({d} ulp)", what(i));
        worst = worst.max(d);
    }
    worst
}

fn check(path: KernelPath, gate: &[f32], up: &[f32]) -> u32 {
    let mut want = gate.to_vec();
    (SCALAR.silu_mul)(&mut want, up);
    let mut got = gate.to_vec();
    (table_for(path).silu_mul)(&mut got, up);
    within_ulps(&want, &got, 6, |i| {
        format!("{}: silu({}) · {}", path.name(), gate[i], up[i])
    })
}

#[test]
fn silu_mul_within_6_ulp_on_random_and_odd_sizes() {
    let mut rng = Rng(0x5111_u64);
    for path in simd_paths() {
        let mut worst = 0;
        for n in [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 100, 1031, 4096, 6912] {
            for scale in [1e-6, 0.1, 1.0, 4.0, 30.0] {
                let g = rng.f32s(n, scale);
                let u = rng.f32s(n, 2.0);
                worst = worst.max(check(path, &g, &u));
            }
        }
        eprintln!("{}: worst {worst} ulp", path.name());
    }
}

#[test]
fn silu_mul_over_the_whole_exp_range_and_specials() {
    // A sweep through every binade exp meets, with up = 1 so that nothing hides the error:
    // large negative g gives g·e^g, which is subnormal or zero past −87.
    let mut gate: Vec<f32> = (-24_000..=24_000).map(|i| i as f32 * 0.005).collect();
    gate.extend([
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-40,
        -1e-40,
        87.3,
        -87.3,
        88.72,
        -88.72,
        88.73,
        -88.73,
        103.9,
        -103.9,
        104.5,
        -104.5,
        1e10,
        -1e10,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ]);
    let up = vec![1.0; gate.len()];
    for path in simd_paths() {
        let worst = check(path, &gate, &up);
        eprintln!("{}: worst {worst} ulp over the sweep", path.name());
    }
}

/// The wider x86 tables run the same `exp` operations on sixteen lanes as AVX2 does on eight,
/// so their values must be AVX2's bits exactly (the sums may differ by their order only).
#[test]
fn wider_lanes_give_the_avx2_bits() {
    let paths = simd_paths();
    if !paths.contains(&KernelPath::Avx2) {
        return;
    }
    let mut rng = Rng(0x1616);
    let avx2 = table_for(KernelPath::Avx2);
    for path in paths.into_iter().filter(|&p| p != KernelPath::Avx2) {
        let kt = table_for(path);
        for n in [1, 15, 16, 17, 33, 1031, 4096] {
            let g = rng.f32s(n, 20.0);
            let u = rng.f32s(n, 2.0);
            let (mut a, mut b) = (g.clone(), g.clone());
            (avx2.silu_mul)(&mut a, &u);
            (kt.silu_mul)(&mut b, &u);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{} silu_mul n={n}", path.name());
            let (mut a, mut b) = (g.clone(), g);
            let (sa, sb) = (
                (avx2.exp_shifted)(&mut a, 3.0),
                (kt.exp_shifted)(&mut b, 3.0),
            );
            assert_eq!(bits(&a), bits(&b), "{} exp_shifted n={n}", path.name());
            assert!(
                (sa - sb).abs() <= 1e-12 * sa.abs(),
                "{} sum n={n}",
                path.name()
            );
        }
    }
}

#[test]
fn silu_mul_checks_its_lengths() {
    let mut g = vec![1.0f32; 8];
    let r = std::panic::catch_unwind(move || {
        bitnet_kernels::ops::silu_mul(&Runtime::detect(), &mut g, &[1.0; 7])
    });
    assert!(r.is_err(), "a short `up` must be refused");
    let mut g = vec![2.0f32; 9];
    bitnet_kernels::ops::silu_mul(&Runtime::detect(), &mut g, &[3.0; 12]);
    let want = 2.0 / (1.0 + (-2.0f32).exp()) * 3.0;
    assert!(g.iter().all(|&v| ulps(v, want) <= 4), "{g:?} vs {want}");
}

fn check_exp(path: KernelPath, x: &[f32], shift: f32) -> u32 {
    let mut want = x.to_vec();
    let want_sum = (SCALAR.exp_shifted)(&mut want, shift);
    let mut got = x.to_vec();
    let got_sum = (table_for(path).exp_shifted)(&mut got, shift);
    let worst = within_ulps(&want, &got, 2, |i| {
        format!("{}: e^({} − {shift})", path.name(), x[i])
    });
    if want_sum.is_finite() {
        let tol = 2.5e-7 * want_sum.abs() + 1e-300;
        assert!(
            (want_sum - got_sum).abs() <= tol,
            "{}: sum {want_sum:e} vs {got_sum:e}",
            path.name()
        );
    } else {
        assert!(
            want_sum == got_sum || (want_sum.is_nan() && got_sum.is_nan()),
            "{}: sum {want_sum:e} vs {got_sum:e}",
            path.name()
        );
    }
    worst
}

#[test]
fn exp_within_2_ulp_of_libm_over_its_range() {
    // Every binade from the underflow to the overflow threshold, and the thresholds.
    let mut x: Vec<f32> = (-22_000..=18_000).map(|i| i as f32 * 0.005).collect();
    x.extend([
        0.0, -0.0, 1e-30, -1e-30, -87.33, -87.34, -103.97, -103.98, -104.0, -150.0, 88.72, 88.7228,
        88.723, 89.0, 1e30, -1e30,
    ]);
    for path in simd_paths() {
        let worst = check_exp(path, &x, 0.0);
        eprintln!("{}: exp worst {worst} ulp over the sweep", path.name());
    }
}

#[test]
fn exp_shifted_as_softmax_uses_it() {
    let mut rng = Rng(0xe4b);
    for path in simd_paths() {
        for n in [0, 1, 3, 7, 8, 9, 33, 100, 1031] {
            for scale in [0.0, 1e-3, 1.0, 10.0, 60.0] {
                let x = rng.f32s(n, scale);
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                check_exp(path, &x, if n == 0 { 0.0 } else { max });
                check_exp(path, &x, 3.5);
            }
        }
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0,
            -1.0,
            2.0,
            0.5,
            7.0,
            9.0,
        ];
        check_exp(path, &specials, 0.0);
        check_exp(path, &specials[2..], 1.0);
    }
}

#[test]
fn softmax_sums_to_one_on_every_path() {
    let mut rng = Rng(0x50f7);
    let x = rng.f32s(77, 5.0);
    let paths: Vec<KernelPath> = KernelPath::ALL
        .into_iter()
        .filter(|p| p.is_supported())
        .collect();
    assert_covers_required_paths(&paths);
    for path in paths {
        let mut y = x.clone();
        let sum = (table_for(path).exp_shifted)(&mut y, 0.0);
        assert!(sum > 0.0);
        let p: f64 = y.iter().map(|&v| v as f64 / sum).sum();
        assert!((p - 1.0).abs() < 1e-6, "{}: {p}", path.name());
    }
}
