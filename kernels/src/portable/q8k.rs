//! Quantised rows (Q6_K, Q8_0, Q4_0) against int8 activations, ggml's `vec_dot_*_q8_K`
//! scheme: the activations of a token are quantised once per 256-block (`Q8K`), so that a
//! row is dotted in integers instead of being widened to f32 first. Every path computes
//! each block's integer sum exactly and combines the blocks with the same f32 operations in
//! the same order, so all paths give the same bits.

/// Elements per Q6_K (and Q8K) block.
pub const QK_K: usize = 256;
/// Bytes per Q6_K block: 128 low nibbles, 64 bytes of high 2-bit pairs, 16 scales, f16 d.
pub const Q6K_BLOCK_BYTES: usize = 210;

/// One token's activations, quantised per 256-block: `x ≈ d · q`.
#[derive(Clone, Debug, Default)]
pub struct Q8K {
    pub q: Vec<i8>,
    /// One scale per block.
    pub d: Vec<f32>,
    /// Σ q over each 16-element group (16 per block): Q6_K stores `q6 + 32`, and the
    /// offset's share of a block is `32 · Σ_g scale_g · bsum_g`.
    pub bsums: Vec<i16>,
}

/// Bytes of one ggml Q8_K block: f32 d, 256 int8, 16 i16 group sums.
const Q8K_BLOCK_BYTES: usize = 4 + QK_K + 32;

/// Quantises `x` with the codecs' Q8_K rule, ggml's `quantize_row_q8_K_ref` (so the head
/// sees llama.cpp's activations): per block `d = −max / 127` for the value `max` of largest
/// magnitude, `q = round(x / d)` (ties to even), so |q| ≤ 127; the block bytes are then
/// split into the three arrays the kernels read. A last block shorter than 256 (a Q8_0 or
/// Q4_0 row of K = 3200, which llama.cpp writes for heads whose K is no multiple of 256) is
/// quantised padded with zeros: they change neither its maximum nor its sums, and the row
/// kernels stop at the row's last 32-block.
pub fn quantize_q8k(x: &[f32], out: &mut Q8K) {
    let nb = x.len().div_ceil(QK_K);
    let mut bytes = vec![0u8; nb * Q8K_BLOCK_BYTES];
    let whole = x.len() / QK_K * QK_K;
    let (body, last) = bytes.split_at_mut(whole / QK_K * Q8K_BLOCK_BYTES);
    bitnet_formats::codec::kquants::quantize_q8_k(&x[..whole], body);
    if whole < x.len() {
        let mut padded = [0f32; QK_K];
        padded[..x.len() - whole].copy_from_slice(&x[whole..]);
        bitnet_formats::codec::kquants::quantize_q8_k(&padded, last);
    }
    out.q.clear();
    out.d.clear();
    out.bsums.clear();
    for blk in bytes.chunks_exact(Q8K_BLOCK_BYTES) {
        out.d
            .push(f32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]));
        out.q.extend(blk[4..4 + QK_K].iter().map(|&b| b as i8));
        out.bsums.extend(
            blk[4 + QK_K..]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]])),
        );
    }
}

/// The 6-bit value (0..=63, the weight plus 32) of element `i` of a Q6_K block.
#[inline]
pub fn q6k_value(blk: &[u8], i: usize) -> i32 {
    let (half, r) = (i / 128, i % 128);
    let (j, l) = (r / 32, r % 32);
    let ql = blk[half * 64 + l + 32 * (j % 2)];
    let qh = blk[128 + half * 32 + l];
    let lo = if j < 2 { ql & 0xF } else { ql >> 4 };
    (lo | (((qh >> (2 * j)) & 3) << 4)) as i32
}

/// The exact integer sum of one block: `Σ_g scale_g · (Σ_{i∈g} v_i · q_i − 32 · bsum_g)`.
/// Walked plane by plane (32 elements that share their bit positions) so that the inner
/// loop has constant shifts and vectorises.
pub fn q6k_block_isum(blk: &[u8], q: &[i8], bsums: &[i16]) -> i32 {
    let mut isum = 0i32;
    for half in 0..2 {
        let ql = &blk[half * 64..half * 64 + 64];
        let qh = &blk[128 + half * 32..128 + half * 32 + 32];
        for j in 0..4 {
            let (shift_lo, shift_hi) = (4 * (j as u32 / 2), 2 * j as u32);
            let ql = &ql[32 * (j % 2)..32 * (j % 2) + 32];
            let base = half * 128 + 32 * j;
            for sub in 0..2 {
                let g = base / 16 + sub;
                let mut dot = 0i32;
                for l in 16 * sub..16 * sub + 16 {
                    let v = ((ql[l] >> shift_lo) & 0xF) | (((qh[l] >> shift_hi) & 3) << 4);
                    dot += v as i32 * q[base + l] as i32;
                }
                isum += (blk[192 + g] as i8 as i32) * (dot - 32 * bsums[g] as i32);
            }
        }
    }
    isum
}

/// A Q6_K row (whole blocks) against one token's [`Q8K`] activations.
pub fn dot_q6k_q8k(row: &[u8], q: &[i8], d8: &[f32], bsums: &[i16]) -> f32 {
    q6k_row(row, q, d8, bsums, q6k_block_isum, |b| {
        half::f16::from_bits(b).to_f32()
    })
}

/// The row loop every path shares: whole blocks only, each block's exact integer sum from
/// `isum(block, its activations, its 16 group sums)`, its term `(d6 · d8) · isum` with `d6`
/// widened by `f16` (exact on every path), the terms added in block order. Inlined into the
/// SIMD twins, so their block kernels and conversions inline into it.
#[inline(always)]
pub fn q6k_row(
    row: &[u8],
    q: &[i8],
    d8: &[f32],
    bsums: &[i16],
    mut isum: impl FnMut(&[u8], &[i8], &[i16]) -> i32,
    f16: impl Fn(u16) -> f32,
) -> f32 {
    let nb = (row.len() / Q6K_BLOCK_BYTES)
        .min(q.len() / QK_K)
        .min(d8.len())
        .min(bsums.len() / 16);
    let mut sum = 0f32;
    for b in 0..nb {
        let blk = &row[b * Q6K_BLOCK_BYTES..(b + 1) * Q6K_BLOCK_BYTES];
        let s = isum(
            blk,
            &q[b * QK_K..(b + 1) * QK_K],
            &bsums[b * 16..(b + 1) * 16],
        );
        let d6 = f16(u16::from_le_bytes([blk[208], blk[209]]));
        sum += (d6 * d8[b]) * s as f32;
    }
    sum
}

/// Bytes per Q8_0 block: f16 d, then 32 int8 values.
pub const Q8_0_BLOCK_BYTES: usize = 34;

/// A Q8_0 row against one token's [`Q8K`] activations (eight Q8_0 blocks per activation
/// block): per block the exact integer sum times `d_w · d_x`, added in block order, as for
/// Q6_K. Any whole number of Q8_0 blocks (see [`quantize_q8k`] for a short last block).
pub fn dot_q8_0_q8k(row: &[u8], q: &[i8], d8: &[f32]) -> f32 {
    q8_0_blocks_from(row, q, d8, 0, 0.0)
}

/// Adds the terms of Q8_0 blocks `first..` to `sum`, in order: the whole portable loop, and
/// the SIMD twins' tail after their eight-block groups.
pub fn q8_0_blocks_from(row: &[u8], q: &[i8], d8: &[f32], first: usize, mut sum: f32) -> f32 {
    let nb = row.len() / Q8_0_BLOCK_BYTES;
    for b in first..nb {
        let blk = &row[b * Q8_0_BLOCK_BYTES..(b + 1) * Q8_0_BLOCK_BYTES];
        sum += block0_term(
            blk,
            d8[b / 8],
            q8_0_block_isum(blk, &q[32 * b..32 * b + 32]),
        );
    }
    sum
}

/// Σ w · x over one Q8_0 block (exact).
#[inline]
pub fn q8_0_block_isum(blk: &[u8], q: &[i8]) -> i32 {
    blk[2..]
        .iter()
        .zip(q)
        .map(|(&w, &x)| w as i8 as i32 * x as i32)
        .sum()
}

/// `(d_w · d_x) · isum` for one block that starts with its f16 scale (Q8_0, Q4_0), the f32
/// step every path shares.
#[inline]
pub fn block0_term(blk: &[u8], d8: f32, isum: i32) -> f32 {
    let dw = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
    (dw * d8) * isum as f32
}

/// Bytes per Q4_0 block: f16 d, then 16 bytes holding elements `j` (low nibble) and
/// `j + 16` (high nibble), each stored plus 8.
pub const Q4_0_BLOCK_BYTES: usize = 18;

/// Σ (v − 8) · x over one Q4_0 block (exact); `bsum32` is Σ x over the block.
#[inline]
pub fn q4_0_block_isum(blk: &[u8], q: &[i8], bsum32: i32) -> i32 {
    let mut dot = 0i32;
    for j in 0..16 {
        dot +=
            (blk[2 + j] & 0xF) as i32 * q[j] as i32 + (blk[2 + j] >> 4) as i32 * q[j + 16] as i32;
    }
    dot - 8 * bsum32
}

/// A Q4_0 row against one token's [`Q8K`] activations, as for Q8_0.
pub fn dot_q4_0_q8k(row: &[u8], q: &[i8], d8: &[f32], bsums: &[i16]) -> f32 {
    q4_0_blocks_from(row, q, d8, bsums, 0, 0.0)
}

/// [`q8_0_blocks_from`] for Q4_0.
pub fn q4_0_blocks_from(
    row: &[u8],
    q: &[i8],
    d8: &[f32],
    bsums: &[i16],
    first: usize,
    mut sum: f32,
) -> f32 {
    let nb = row.len() / Q4_0_BLOCK_BYTES;
    for b in first..nb {
        let blk = &row[b * Q4_0_BLOCK_BYTES..(b + 1) * Q4_0_BLOCK_BYTES];
        let bsum32 = bsums[2 * b] as i32 + bsums[2 * b + 1] as i32;
        let isum = q4_0_block_isum(blk, &q[32 * b..32 * b + 32], bsum32);
        sum += block0_term(blk, d8[b / 8], isum);
    }
    sum
}
