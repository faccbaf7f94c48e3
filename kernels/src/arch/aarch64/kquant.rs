//! NEON twins of the `portable::q8k` dots. Q6_K: per 16-element group the 6-bit values are
//! rebuilt with a shift-left-insert (nibble | high pair << 4), multiplied with the int8
//! activations into i16 pairs (`smull`/`smlal2`, at most 2 · 63 · 127), widened and scaled
//! into i32. Q8_0 / Q4_0: the same multiply per block. Every block's integer sum is exact;
//! the blocks are combined as in the portable code.

use std::arch::aarch64::*;

use crate::portable::{block0_term, q6k_row, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES};

/// A Q6_K row (whole blocks) against one token's Q8K activations; same bits as the
/// portable routine.
#[target_feature(enable = "neon")]
pub fn dot_q6k_q8k(row: &[u8], q: &[i8], d8: &[f32], bsums: &[i16]) -> f32 {
    q6k_row(
        row,
        q,
        d8,
        bsums,
        // SAFETY: the slices are one whole block (q6k_row); NEON is this function's feature.
        |blk, q, bsums| unsafe { block_isum(blk.as_ptr(), q.as_ptr(), bsums.as_ptr()) },
        |b| half::f16::from_bits(b).to_f32(),
    )
}

/// # Safety
/// `blk` is valid for one Q6_K block (210 bytes), `q` for 256 bytes and `bsums` for 16 i16.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn block_isum(blk: *const u8, q: *const i8, bsums: *const i16) -> i32 {
    // SAFETY: the caller guarantees one whole Q6_K block at `blk` (210 bytes: scales at
    // 192..208), its 256 activations at `q` and 16 group sums at `bsums`; every load reads
    // inside them (e < 256).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m3 = vdupq_n_u8(3);
        let mut acc = vdupq_n_s32(0);
        for half in 0..2 {
            for sub in 0..2 {
                // 16 elements l = 16·sub .. 16·sub + 16 of each of the half's four planes.
                let ql0 = vld1q_u8(blk.add(64 * half + 16 * sub));
                let ql1 = vld1q_u8(blk.add(64 * half + 32 + 16 * sub));
                let qh = vld1q_u8(blk.add(128 + 32 * half + 16 * sub));
                let planes = [
                    vsliq_n_u8::<4>(vandq_u8(ql0, m4), vandq_u8(qh, m3)),
                    vsliq_n_u8::<4>(vandq_u8(ql1, m4), vandq_u8(vshrq_n_u8::<2>(qh), m3)),
                    vsliq_n_u8::<4>(vshrq_n_u8::<4>(ql0), vandq_u8(vshrq_n_u8::<4>(qh), m3)),
                    vsliq_n_u8::<4>(vshrq_n_u8::<4>(ql1), vshrq_n_u8::<6>(qh)),
                ];
                for (j, &v) in planes.iter().enumerate() {
                    let e = 128 * half + 32 * j + 16 * sub;
                    let v = vreinterpretq_s8_u8(v);
                    let x = vld1q_s8(q.add(e));
                    let p = vmlal_high_s8(vmull_s8(vget_low_s8(v), vget_low_s8(x)), v, x);
                    let sc = *blk.add(192 + e / 16) as i8 as i32;
                    acc = vmlaq_n_s32(acc, vpaddlq_s16(p), sc);
                }
            }
        }
        let mut offset = 0i32;
        for g in 0..16 {
            offset += (*blk.add(192 + g) as i8 as i32) * (*bsums.add(g) as i32);
        }
        vaddvq_s32(acc) - 32 * offset
    }
}

/// NEON twin of `portable::dot_q8_0_q8k`: per block `smull`/`smlal2` into i16 pairs (at
/// most 2 · 128 · 127), widened and summed exactly; the blocks combined as in the portable
/// code.
#[target_feature(enable = "neon")]
pub fn dot_q8_0_q8k(row: &[u8], q: &[i8], d8: &[f32]) -> f32 {
    let nb = (row.len() / Q8_0_BLOCK_BYTES)
        .min(q.len() / 32)
        .min(d8.len() * 8);
    let mut sum = 0f32;
    for b in 0..nb {
        let blk = &row[b * Q8_0_BLOCK_BYTES..(b + 1) * Q8_0_BLOCK_BYTES];
        let mut acc = vdupq_n_s32(0);
        for h in 0..2 {
            // SAFETY: bytes 2 + 16h..18 + 16h of the 34-byte block, and activations
            // 32b + 16h..+16 with b < nb ≤ q.len() / 32.
            let (w, x) = unsafe {
                (
                    vld1q_s8(blk.as_ptr().add(2 + 16 * h) as *const i8),
                    vld1q_s8(q.as_ptr().add(32 * b + 16 * h)),
                )
            };
            let p = vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x);
            acc = vpadalq_s16(acc, p);
        }
        sum += block0_term(blk, d8[b / 8], vaddvq_s32(acc));
    }
    sum
}

/// NEON twin of `portable::dot_q4_0_q8k`: the nibbles unpacked to two vectors of 0..=15,
/// multiplied as for Q8_0, the stored +8 removed with the group sums.
#[target_feature(enable = "neon")]
pub fn dot_q4_0_q8k(row: &[u8], q: &[i8], d8: &[f32], bsums: &[i16]) -> f32 {
    let nb = (row.len() / Q4_0_BLOCK_BYTES)
        .min(q.len() / 32)
        .min(d8.len() * 8)
        .min(bsums.len() / 2);
    let m4 = vdupq_n_u8(0x0F);
    let mut sum = 0f32;
    for b in 0..nb {
        let blk = &row[b * Q4_0_BLOCK_BYTES..(b + 1) * Q4_0_BLOCK_BYTES];
        // SAFETY: bytes 2..18 of the 18-byte block.
        let qs = unsafe { vld1q_u8(blk.as_ptr().add(2)) };
        let halves = [vandq_u8(qs, m4), vshrq_n_u8::<4>(qs)];
        let mut acc = vdupq_n_s32(0);
        for (h, &v) in halves.iter().enumerate() {
            let v = vreinterpretq_s8_u8(v);
            // SAFETY: activations 32b + 16h..+16 with b < nb ≤ q.len() / 32.
            let x = unsafe { vld1q_s8(q.as_ptr().add(32 * b + 16 * h)) };
            acc = vpadalq_s16(
                acc,
                vmlal_high_s8(vmull_s8(vget_low_s8(v), vget_low_s8(x)), v, x),
            );
        }
        let bsum32 = bsums[2 * b] as i32 + bsums[2 * b + 1] as i32;
        sum += block0_term(blk, d8[b / 8], vaddvq_s32(acc) - 8 * bsum32);
    }
    sum
}
