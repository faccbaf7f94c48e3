//! The float kernels written once over [`F32Vector`], a register of f32 lanes that each
//! architecture implements with its own intrinsics (`__m256` for AVX2, `float32x4_t` for
//! NEON), in the manner of memchr's `Vector` trait. Every routine here keeps the operation
//! order the per-architecture copies had, so its bits on each architecture are unchanged:
//! `4 · LANES` elements a step into four accumulators, the remaining `LANES`-wide steps into
//! the first, `(a0 + a1) + (a2 + a3)` reduced by the architecture's horizontal sum, then the
//! scalar tail.
//!
//! Everything is `#[inline(always)]` and `unsafe`: it is compiled only inside a caller's
//! `#[target_feature]` function, whose features are what make the intrinsics sound.

/// The safe `#[target_feature]` entry points of the float kernels on vector type `$v`, for
/// an architecture's `simd` module: `$features` must include `$v`'s (see [`F32Vector`]),
/// which is what makes each call into this module sound. `@rows4` alone gives the two
/// four-row dots under other names (a wider feature set for the same code).
macro_rules! float_entry_points {
    (@rows4 $features:literal, $v:ty, $f16_rows4:ident, $bf16_rows4:ident) => {
        /// Four F16 rows against one `x`; `result[r] == dot_f16(w[r], x)` bit for bit.
        #[target_feature(enable = $features)]
        pub fn $f16_rows4(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::dot_rows4::<$v, $crate::arch::float::F16>(w, x) }
        }

        /// Four BF16 rows against one `x`; `result[r] == dot_bf16(w[r], x)` bit for bit.
        #[target_feature(enable = $features)]
        pub fn $bf16_rows4(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::dot_rows4::<$v, $crate::arch::float::Bf16>(w, x) }
        }
    };
    (@x4 $features:literal, $v:ty, $f16_x4:ident, $bf16_x4:ident) => {
        /// One F16 row against four `xs`; `result[t] == dot_f16(w, xs[t])` bit for bit.
        #[target_feature(enable = $features)]
        pub fn $f16_x4(w: &[u8], xs: [&[f32]; 4]) -> [f32; 4] {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::dot_tokens::<$v, $crate::arch::float::F16, 4>(w, xs) }
        }

        /// One BF16 row against four `xs`; `result[t] == dot_bf16(w, xs[t])` bit for bit.
        #[target_feature(enable = $features)]
        pub fn $bf16_x4(w: &[u8], xs: [&[f32]; 4]) -> [f32; 4] {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::dot_tokens::<$v, $crate::arch::float::Bf16, 4>(w, xs) }
        }
    };
    ($features:literal, $v:ty) => {
        float_entry_points!(@rows4 $features, $v, dot_f16_rows4, dot_bf16_rows4);
        float_entry_points!(@x4 $features, $v, dot_f16_x4, dot_bf16_x4);

        #[target_feature(enable = $features)]
        pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::dot::<$v, $crate::arch::float::F32>(a, b) }
        }

        #[target_feature(enable = $features)]
        pub fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::dot::<$v, $crate::arch::float::F16>(w, x) }
        }

        #[target_feature(enable = $features)]
        pub fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::dot::<$v, $crate::arch::float::Bf16>(w, x) }
        }

        /// Bit-identical: `(x * s) * w` without fusing, as the portable twin.
        #[target_feature(enable = $features)]
        pub fn scale_mul(x: &[f32], w: &[f32], s: f32, out: &mut [f32]) {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::scale_mul::<$v>(x, w, s, out) }
        }

        /// Bit-identical: `y + a * x` without fusing.
        #[target_feature(enable = $features)]
        pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::axpy::<$v>(a, x, y) }
        }

        /// Exact conversion, bit-identical.
        #[target_feature(enable = $features)]
        pub fn f16_to_f32(src: &[u8], out: &mut [f32]) {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::f16_to_f32::<$v>(src, out) }
        }

        /// Round to nearest even: bit-identical to the portable twin.
        #[target_feature(enable = $features)]
        pub fn f32_to_f16(src: &[f32], out: &mut [u8]) {
            // SAFETY: this function enables the vector type's features.
            unsafe { $crate::arch::float::f32_to_f16::<$v>(src, out) }
        }
    };
}

/// A register of `LANES` f32 lanes.
///
/// # Safety (of every method)
/// The running CPU supports the implementation's target features (for `__m256`: AVX2, FMA
/// and F16C; for `float32x4_t`: NEON), and the methods that take a pointer may read or write
/// `LANES` elements there.
pub(crate) trait F32Vector: Copy {
    const LANES: usize;
    /// How far ahead of the current weight a one-row dot prefetches, in the row's own units
    /// (bytes for f16 and bf16 rows, floats for f32 rows).
    const PREFETCH_AHEAD: usize;
    /// The same for each row of a four-row dot.
    const PREFETCH_AHEAD_ROWS4: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    /// `LANES` little-endian f16 values, widened exactly.
    unsafe fn load_f16(p: *const u8) -> Self;
    /// `LANES` little-endian bf16 values, widened exactly.
    unsafe fn load_bf16(p: *const u8) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// The lanes rounded to f16 (to nearest even), little-endian.
    unsafe fn store_f16(self, p: *mut u8);
    /// `LANES` i32 values, each converted to the nearest f32.
    unsafe fn load_i32(p: *const i32) -> Self;
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    /// IEEE division, exact per lane.
    unsafe fn div(self, o: Self) -> Self;
    /// `self · x + acc`, fused (one rounding).
    unsafe fn mul_add(self, x: Self, acc: Self) -> Self;
    /// The sum of the lanes, in the architecture's one fixed order.
    unsafe fn hsum(self) -> f32;
    /// A hint; it never faults, whatever the address.
    unsafe fn prefetch(p: *const u8);
}

/// How a weight row's elements become f32: `STEP` `Elem`s per weight.
pub(crate) trait Weights {
    type Elem: Copy;
    const STEP: usize;
    /// # Safety
    /// `V`'s target features are enabled, and `p` is valid for `V::LANES * STEP` elements.
    unsafe fn load<V: F32Vector>(p: *const Self::Elem) -> V;
    fn at(w: &[Self::Elem], i: usize) -> f32;
}

pub(crate) struct F32;
pub(crate) struct F16;
pub(crate) struct Bf16;

impl Weights for F32 {
    type Elem = f32;
    const STEP: usize = 1;
    #[inline(always)]
    unsafe fn load<V: F32Vector>(p: *const f32) -> V {
        // SAFETY: forwarded from this function's contract.
        unsafe { V::load(p) }
    }
    #[inline(always)]
    fn at(w: &[f32], i: usize) -> f32 {
        w[i]
    }
}

impl Weights for F16 {
    type Elem = u8;
    const STEP: usize = 2;
    #[inline(always)]
    unsafe fn load<V: F32Vector>(p: *const u8) -> V {
        // SAFETY: forwarded from this function's contract.
        unsafe { V::load_f16(p) }
    }
    #[inline(always)]
    fn at(w: &[u8], i: usize) -> f32 {
        half::f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32()
    }
}

impl Weights for Bf16 {
    type Elem = u8;
    const STEP: usize = 2;
    #[inline(always)]
    unsafe fn load<V: F32Vector>(p: *const u8) -> V {
        // SAFETY: forwarded from this function's contract.
        unsafe { V::load_bf16(p) }
    }
    #[inline(always)]
    fn at(w: &[u8], i: usize) -> f32 {
        half::bf16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32()
    }
}

/// `Σ w[i]·x[i]` over the shorter of the two (`w` counted in weights).
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn dot<V: F32Vector, W: Weights>(w: &[W::Elem], x: &[f32]) -> f32 {
    let (l, s) = (V::LANES, W::STEP);
    let n = (w.len() / s).min(x.len());
    // SAFETY: the caller enables `V`'s features.
    let mut a = [unsafe { V::zero() }; 4];
    let mut i = 0;
    while i + 4 * l <= n {
        // Weights stream from memory (the output head is the largest matrix): fetch ahead
        // of the out-of-order window.
        // SAFETY: a prefetch never faults; every load reads below `i + 4·LANES ≤ n`
        // weights of `w` and elements of `x`.
        unsafe {
            V::prefetch(w.as_ptr().wrapping_add(i * s + V::PREFETCH_AHEAD).cast());
            for (j, aj) in a.iter_mut().enumerate() {
                let wv = W::load::<V>(w.as_ptr().add((i + l * j) * s));
                *aj = wv.mul_add(V::load(x.as_ptr().add(i + l * j)), *aj);
            }
        }
        i += 4 * l;
    }
    // SAFETY: the caller enables `V`'s features; `n` bounds both rows.
    unsafe { dot_finish::<V, W>(&mut a, w, x, i, n) }
}

/// The end every dot shares, so that they give the same bits: the remaining `LANES`-wide
/// steps from element `i` into `a[0]`, the four accumulators summed, the scalar tail.
///
/// # Safety
/// `V`'s target features are enabled, and `n` is at most `x.len()` and `w`'s length in
/// weights.
#[inline(always)]
pub(crate) unsafe fn dot_finish<V: F32Vector, W: Weights>(
    a: &mut [V; 4],
    w: &[W::Elem],
    x: &[f32],
    mut i: usize,
    n: usize,
) -> f32 {
    let (l, s) = (V::LANES, W::STEP);
    while i + l <= n {
        // SAFETY: the loads read below `i + LANES ≤ n`, inside both rows (the contract).
        unsafe {
            let wv = W::load::<V>(w.as_ptr().add(i * s));
            a[0] = wv.mul_add(V::load(x.as_ptr().add(i)), a[0]);
        }
        i += l;
    }
    // SAFETY: the caller enables `V`'s features.
    let mut sum = unsafe { a[0].add(a[1]).add(a[2].add(a[3])).hsum() };
    while i < n {
        sum += W::at(w, i) * x[i];
        i += 1;
    }
    sum
}

/// [`dot`] over four rows side by side against one `x`: each row keeps its own four
/// accumulators and the same operations in the same order, so `result[r]` is bit-identical
/// to the one-row dot of row `r`. Reading four rows at once lets a caller stream from four
/// places (faster from DRAM than one stream); the x loads are shared.
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn dot_rows4<V: F32Vector, W: Weights>(
    w: [&[W::Elem]; 4],
    x: &[f32],
) -> [f32; 4] {
    let (l, s) = (V::LANES, W::STEP);
    let n = w.iter().fold(x.len(), |n, r| n.min(r.len() / s));
    // SAFETY: the caller enables `V`'s features.
    let mut a = [[unsafe { V::zero() }; 4]; 4];
    let mut i = 0;
    while i + 4 * l <= n {
        // SAFETY: a prefetch never faults; every load reads below `i + 4·LANES ≤ n`
        // weights of each row and elements of `x`.
        unsafe {
            for r in w {
                V::prefetch(
                    r.as_ptr()
                        .wrapping_add(i * s + V::PREFETCH_AHEAD_ROWS4)
                        .cast(),
                );
            }
            for j in 0..4 {
                let xv = V::load(x.as_ptr().add(i + l * j));
                for (r, ar) in w.iter().zip(a.iter_mut()) {
                    let wv = W::load::<V>(r.as_ptr().add((i + l * j) * s));
                    ar[j] = wv.mul_add(xv, ar[j]);
                }
            }
        }
        i += 4 * l;
    }
    let body = i;
    // SAFETY: the caller enables `V`'s features; `n` bounds every row and `x`.
    std::array::from_fn(|r| unsafe { dot_finish::<V, W>(&mut a[r], w[r], x, body, n) })
}

/// [`dot`] of one weight row against `T` activation rows: every token keeps its own four
/// accumulators and [`dot`]'s operations in its order, so `result[t]` is bit-identical to
/// `dot(w, xs[t])`; each weight is loaded and widened once for all `T` tokens (a batched
/// decode step's output head reads the row from memory once).
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn dot_tokens<V: F32Vector, W: Weights, const T: usize>(
    w: &[W::Elem],
    xs: [&[f32]; T],
) -> [f32; T] {
    let (l, s) = (V::LANES, W::STEP);
    let n = xs.iter().fold(w.len() / s, |n, x| n.min(x.len()));
    // SAFETY: the caller enables `V`'s features.
    let mut a = [[unsafe { V::zero() }; 4]; T];
    let mut i = 0;
    while i + 4 * l <= n {
        // SAFETY: a prefetch never faults; every load reads below `i + 4·LANES ≤ n`
        // weights of `w` and elements of every `xs[t]`.
        unsafe {
            V::prefetch(w.as_ptr().wrapping_add(i * s + V::PREFETCH_AHEAD).cast());
            for j in 0..4 {
                let wv = W::load::<V>(w.as_ptr().add((i + l * j) * s));
                for (x, at) in xs.iter().zip(a.iter_mut()) {
                    at[j] = wv.mul_add(V::load(x.as_ptr().add(i + l * j)), at[j]);
                }
            }
        }
        i += 4 * l;
    }
    let body = i;
    // SAFETY: the caller enables `V`'s features; `n` bounds the row and every `xs[t]`.
    std::array::from_fn(|t| unsafe { dot_finish::<V, W>(&mut a[t], w, xs[t], body, n) })
}

/// [`dot`] of `R` f32 rows against `T` activation rows at once, every pair with its own
/// four accumulators and [`dot`]'s operations in its order, so `out[r][t]` is bit-identical
/// to `dot(rows[r], xs[t])`; each load feeds several FMAs (a prompt's output head).
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn dot_tile<V: F32Vector, const R: usize, const T: usize>(
    rows: [&[f32]; R],
    xs: [&[f32]; T],
) -> [[f32; T]; R] {
    let l = V::LANES;
    let n = rows
        .iter()
        .chain(&xs)
        .fold(usize::MAX, |n, v| n.min(v.len()));
    // SAFETY: the caller enables `V`'s features.
    let mut a = [[[unsafe { V::zero() }; 4]; T]; R];
    let mut i = 0;
    while i + 4 * l <= n {
        for j in 0..4 {
            // SAFETY: every load reads below `i + 4·LANES ≤ n`, inside every row.
            unsafe {
                let xv: [V; T] = std::array::from_fn(|t| V::load(xs[t].as_ptr().add(i + l * j)));
                for (row, ar) in rows.iter().zip(a.iter_mut()) {
                    let wv = V::load(row.as_ptr().add(i + l * j));
                    for (art, xvt) in ar.iter_mut().zip(xv) {
                        art[j] = wv.mul_add(xvt, art[j]);
                    }
                }
            }
        }
        i += 4 * l;
    }
    let body = i;
    std::array::from_fn(|r| {
        std::array::from_fn(|t| {
            // SAFETY: the caller enables `V`'s features; `n` bounds every row.
            unsafe { dot_finish::<V, F32>(&mut a[r][t], rows[r], xs[t], body, n) }
        })
    })
}

/// `out = (x · s) · w` without fusing, as the portable twin.
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn scale_mul<V: F32Vector>(x: &[f32], w: &[f32], s: f32, out: &mut [f32]) {
    let (l, n) = (V::LANES, x.len().min(w.len()).min(out.len()));
    // SAFETY: the caller enables `V`'s features.
    let vs = unsafe { V::splat(s) };
    let mut i = 0;
    while i + l <= n {
        // SAFETY: the loads and the store touch `i..i + LANES`, below `n` ≤ every length.
        unsafe {
            let v = V::load(x.as_ptr().add(i))
                .mul(vs)
                .mul(V::load(w.as_ptr().add(i)));
            v.store(out.as_mut_ptr().add(i));
        }
        i += l;
    }
    for j in i..n {
        out[j] = x[j] * s * w[j];
    }
}

/// `y += a · x` without fusing.
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn axpy<V: F32Vector>(a: f32, x: &[f32], y: &mut [f32]) {
    let (l, n) = (V::LANES, x.len().min(y.len()));
    // SAFETY: the caller enables `V`'s features.
    let va = unsafe { V::splat(a) };
    let mut i = 0;
    while i + l <= n {
        // SAFETY: the loads and the store touch `i..i + LANES`, below `n` ≤ both lengths.
        unsafe {
            let p = y.as_mut_ptr().add(i);
            V::load(p).add(va.mul(V::load(x.as_ptr().add(i)))).store(p);
        }
        i += l;
    }
    for j in i..n {
        y[j] += a * x[j];
    }
}

/// Little-endian f16 to f32, exact.
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn f16_to_f32<V: F32Vector>(src: &[u8], out: &mut [f32]) {
    let (l, n) = (V::LANES, (src.len() / 2).min(out.len()));
    let mut i = 0;
    while i + l <= n {
        // SAFETY: reads bytes `2i..2(i + LANES)` of `src` and writes `i..i + LANES` of
        // `out`, both below `n`.
        unsafe { V::load_f16(src.as_ptr().add(2 * i)).store(out.as_mut_ptr().add(i)) };
        i += l;
    }
    for (j, o) in out.iter_mut().enumerate().take(n).skip(i) {
        *o = F16::at(src, j);
    }
}

/// f32 to little-endian f16, rounding to nearest even: bit-identical to the portable twin.
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn f32_to_f16<V: F32Vector>(src: &[f32], out: &mut [u8]) {
    let (l, n) = (V::LANES, src.len().min(out.len() / 2));
    let mut i = 0;
    while i + l <= n {
        // SAFETY: reads `i..i + LANES` of `src` and writes bytes `2i..2(i + LANES)` of
        // `out`, both below `n`.
        unsafe { V::load(src.as_ptr().add(i)).store_f16(out.as_mut_ptr().add(2 * i)) };
        i += l;
    }
    crate::portable::f32_to_f16(&src[i..n], &mut out[2 * i..2 * n]);
}

/// The I2_S epilogue of a row of dots (`portable::i2s_epilogue_row`): every output of a
/// ternary matmul goes through one division (the fork's order of operations, kept for
/// bit-exact outputs); IEEE division is exact per lane, so the bits are the twin's.
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
pub(crate) unsafe fn i2s_epilogue_row<V: F32Vector>(
    dots: &[i32],
    act_sum: i32,
    act_scale: f32,
    scale: f32,
    out: &mut [f32],
) {
    let (l, n) = (V::LANES, dots.len().min(out.len()));
    // SAFETY: the caller enables `V`'s features.
    let (sum, div, mul) = unsafe {
        (
            V::splat(act_sum as f32),
            V::splat(act_scale),
            V::splat(scale),
        )
    };
    let mut i = 0;
    while i + l <= n {
        // SAFETY: reads `dots[i..i + LANES]` and writes `out[i..i + LANES]`, below `n`.
        unsafe {
            let d = V::load_i32(dots.as_ptr().add(i));
            d.sub(sum).div(div).mul(mul).store(out.as_mut_ptr().add(i));
        }
        i += l;
    }
    crate::portable::i2s_epilogue_row(&dots[i..n], act_sum, act_scale, scale, &mut out[i..n]);
}
