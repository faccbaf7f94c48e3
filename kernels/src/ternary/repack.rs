//! Turning every ternary payload into the kernel layout: I2 layout A rows (docs/formats/i2s.md,
//! 'Packing layouts', 128 codes per 32 bytes, code = t + 1), each row padded to whole blocks with
//! code 1.
//!
//! | source | what happens at load | memory |
//! |---|---|---|
//! | I2_S x86 layout, K % 128 == 0 | borrowed from the mmap (zero-copy) | none |
//! | I2_S other layouts / K % 128 != 0 | decoded and repacked | 2 bits per weight |
//! | TQ2_0 | each byte's 2-bit fields reversed; f16 block scales widened to f32 | 2.125 bits/weight (source: 2.0625) |
//! | TQ1_0 | base-3 digits unpacked and repacked; f32 block scales | 2.125 bits/weight (source: 1.6875) |

use half::f16;

use crate::error::KernelError;
use crate::portable::{I2_BLOCK, I2_BLOCK_BYTES};

/// Bytes of one repacked row of `cols` codes.
pub fn row_bytes(cols: usize) -> usize {
    cols.div_ceil(I2_BLOCK) * I2_BLOCK_BYTES
}

/// Code of element `k` of a layout-A row.
#[inline]
pub fn get(row: &[u8], k: usize) -> u8 {
    let (blk, j) = (k / I2_BLOCK, k % I2_BLOCK);
    (row[blk * I2_BLOCK_BYTES + j % 32] >> (6 - 2 * (j / 32))) & 3
}

/// Byte `bi` of a layout-A row from the codes of its elements: byte j of block b holds
/// elements b·128 + j + 32·p at bits 6 − 2p.
#[inline]
fn layout_byte(bi: usize, code: impl Fn(usize) -> u8) -> u8 {
    let base = bi / 32 * I2_BLOCK + bi % 32;
    (0..4).fold(0u8, |acc, p| acc | code(base + 32 * p) << (6 - 2 * p))
}

/// Packs codes produced by `code(m, k)` into padded layout-A rows, a byte (four codes) at a
/// time and the rows split over the machine's threads: element by element on one thread,
/// repacking the 3B shape's FFN down projections took three seconds of its load.
pub fn pack_rows(rows: usize, cols: usize, code: impl Fn(usize, usize) -> u8 + Sync) -> Vec<u8> {
    rows_in_parallel(rows, cols, |m, row| {
        for (bi, byte) in row.iter_mut().enumerate() {
            *byte = layout_byte(bi, |k| if k < cols { code(m, k) } else { 1 });
        }
    })
}

/// [`pack_rows`] of row-major ternary values (−1..=1, as the LUT decoders give them) a whole
/// 128-block at a time, in loops the compiler vectorises: through the per-element closure,
/// this repacking was two thirds of loading a TL2 file. A value out of range leaves a 2-bit
/// code 3, which [`has_code3`] reports.
pub fn pack_ternary_rows(values: &[i8], rows: usize, cols: usize) -> Vec<u8> {
    assert_eq!(
        values.len(),
        rows * cols,
        "pack_ternary_rows: {rows} x {cols}"
    );
    rows_in_parallel(rows, cols, |m, row| {
        let src = &values[m * cols..(m + 1) * cols];
        let mut last = [0i8; I2_BLOCK]; // a partial block, padded with t = 0 (code 1)
        let tail = src.chunks_exact(I2_BLOCK).remainder();
        last[..tail.len()].copy_from_slice(tail);
        let blocks = src
            .chunks_exact(I2_BLOCK)
            .chain((!tail.is_empty()).then_some(&last[..]));
        for (b, out) in blocks.zip(row.chunks_exact_mut(I2_BLOCK_BYTES)) {
            let c = |p: usize, j: usize| (b[32 * p + j] + 1) as u8 & 3;
            for (j, byte) in out.iter_mut().enumerate() {
                *byte = c(0, j) << 6 | c(1, j) << 4 | c(2, j) << 2 | c(3, j);
            }
        }
    })
}

/// `rows` padded layout-A rows of `cols` codes, each filled by `fill(m, row)`, the rows split
/// over the machine's threads.
fn rows_in_parallel(rows: usize, cols: usize, fill: impl Fn(usize, &mut [u8]) + Sync) -> Vec<u8> {
    let rb = row_bytes(cols);
    let mut out = crate::weight_buf::zeroed(rows * rb);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = rows.div_ceil(threads).max(1);
    let fill = &fill;
    std::thread::scope(|s| {
        for (i, part) in out.chunks_mut(per * rb).enumerate() {
            s.spawn(move || {
                for (r, row) in part.chunks_exact_mut(rb).enumerate() {
                    fill(i * per + r, row);
                }
            });
        }
    });
    out
}

/// True when any 2-bit field of `data` is 3 (a code no ternary format produces).
pub fn has_code3(data: &[u8]) -> bool {
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    let mut bad = 0u64;
    for w in words {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        bad |= v & (v >> 1) & 0x5555_5555_5555_5555;
    }
    for &b in tail {
        bad |= (b & (b >> 1) & 0x55) as u64;
    }
    bad != 0
}

/// Code of flat element `i` of an I2_S payload in the x86 (`BLOCK` = 128, layout A) or ARM
/// (64, layout B) layout. A constant block size turns the divisions into shifts.
#[inline]
pub fn i2s_flat_code<const BLOCK: usize>(data: &[u8], i: usize) -> u8 {
    let sub = BLOCK / 4;
    let (blk, j) = (i / BLOCK, i % BLOCK);
    (data[blk * sub + j % sub] >> (6 - 2 * (j / sub))) & 3
}

/// Reverses the four 2-bit fields of a byte (TQ2_0 stores element n at bits 2n, layout A at
/// bits 6 - 2n).
const fn reverse_pairs_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let v = b as u8;
        t[b] = ((v & 3) << 6) | (((v >> 2) & 3) << 4) | (((v >> 4) & 3) << 2) | (v >> 6);
        b += 1;
    }
    t
}
static REVERSE_PAIRS: [u8; 256] = reverse_pairs_table();

/// TQ2_0 -> layout A rows + one f32 scale per 256 elements (row-major, cols/256 per row).
pub fn tq2_0(bytes: &[u8], rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
    let nb = rows * cols / 256;
    let mut data = crate::weight_buf::zeroed(nb * 64);
    let mut scales = Vec::with_capacity(nb);
    for (src, dst) in bytes.chunks_exact(66).zip(data.chunks_exact_mut(64)) {
        for (d, &s) in dst.iter_mut().zip(&src[..64]) {
            *d = REVERSE_PAIRS[s as usize];
        }
        scales.push(f16::from_le_bytes([src[64], src[65]]).to_f32());
    }
    (data, scales)
}

/// Bytes of one Q2_0 block (f16 scale, then 16 bytes of 2-bit codes).
pub const Q2_0_BLOCK_BYTES: usize = 18;

/// Q2_0 -> layout A rows, one f32 scale per 64 elements, and per 64-block whether all its
/// weights are zero (code 1 everywhere). Element j of a block is at bits 2·(j % 4) of code
/// byte j / 4; `cols` is a multiple of 64.
pub fn q2_0(bytes: &[u8], rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>, Vec<bool>) {
    let blocks = &bytes[..rows * cols / 64 * Q2_0_BLOCK_BYTES];
    let data = pack_rows(rows, cols, |m, k| {
        let i = m * cols + k;
        let b = &blocks[i / 64 * Q2_0_BLOCK_BYTES + 2..];
        (b[i % 64 / 4] >> (2 * (i % 4))) & 3
    });
    let (scales, zero) = blocks
        .chunks_exact(Q2_0_BLOCK_BYTES)
        .map(|b| {
            let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
            (d, b[2..].iter().all(|&q| q == 0x55))
        })
        .unzip();
    (data, scales, zero)
}

/// TQ1_0 -> layout A rows + one f32 scale per 256 elements.
pub fn tq1_0(bytes: &[u8], rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let digit = |byte: u8, i: usize| -> u8 { ((byte.wrapping_mul(POW3[i]) as u16 * 3) >> 8) as u8 };
    let nb = rows * cols / 256;
    let mut data = crate::weight_buf::zeroed(nb * 64);
    let mut scales = Vec::with_capacity(nb);
    let mut codes = [0u8; 256];
    for (src, dst) in bytes.chunks_exact(54).zip(data.chunks_exact_mut(64)) {
        for m in 0..32 {
            for i in 0..5 {
                codes[m + 32 * i] = digit(src[m], i);
            }
        }
        for m in 0..16 {
            for i in 0..5 {
                codes[160 + m + 16 * i] = digit(src[32 + m], i);
            }
        }
        for j in 0..4 {
            for i in 0..4 {
                codes[240 + j + 4 * i] = digit(src[48 + j], i);
            }
        }
        for (bi, byte) in dst.iter_mut().enumerate() {
            *byte = layout_byte(bi, |k| codes[k]);
        }
        scales.push(f16::from_le_bytes([src[52], src[53]]).to_f32());
    }
    (data, scales)
}

/// Checks the payload length, naming the format.
pub fn need(what: &str, bytes: &[u8], need: usize) -> Result<(), KernelError> {
    if bytes.len() < need {
        return Err(KernelError::TooShort {
            what: what.to_string(),
            need,
            got: bytes.len(),
        });
    }
    Ok(())
}
