//! TL2: triples of ternary weights as a 4-bit magnitude index plus a sign bit, with a TL1-like
//! "two" part for the columns left over by the tile width (docs/formats/tl.md, 'TL2 byte order'),
//! then the hidden scale slot ('Payload').

use super::row_tiles::{decode_row_tiles, tiles_per_thread};
use super::tl_params::{check_tl2, read_scale_slot, tl2_packed_len, write_scale_slot};
use super::{CodecError, TernaryScales, TernaryTensor, TlParams};

/// Row-group permutation inside a 32-row chunk: groups 8..15 and 16..23 are swapped.
const P: [usize; 4] = [0, 2, 1, 3];

#[inline]
fn permuted(rr: usize) -> usize {
    P[rr / 8] * 8 + rr % 8
}

/// Section sizes: (three-part index bytes, sign bytes, two-part bytes).
pub fn sections(p: &TlParams, rows: usize, cols: usize) -> (usize, usize, usize) {
    let k3 = cols - cols % p.bk_tile;
    let k2 = cols % p.bk_tile;
    (rows * k3 / 6, rows * k3 / 24, rows * k2 / 4)
}

/// The 32-byte chunks of the three part: `f(chunk, row_base, first_triple)`.
fn for_each_three_chunk(
    p: &TlParams,
    rows: usize,
    k3: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let bk = p.bk_tile;
    let mut chunk = 0;
    for i0 in 0..rows / p.bm_tile {
        for i1 in 0..k3 / bk {
            for i2 in 0..p.bm_tile / 32 {
                for i3 in 0..bk / 6 {
                    f(chunk, i0 * p.bm_tile + i2 * 32, i1 * (bk / 3) + i3 * 2);
                    chunk += 1;
                }
            }
        }
    }
}

/// The 32-byte chunks of the sign plane: `f(chunk, row_base, first_triple)` (8 triples each).
fn for_each_sign_chunk(
    p: &TlParams,
    rows: usize,
    k3: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let bk = p.bk_tile;
    let mut chunk = 0;
    for i0 in 0..rows / p.bm_tile {
        for i1 in 0..k3 / bk {
            for i2 in 0..p.bm_tile / 32 {
                for s in 0..bk / 24 {
                    f(chunk, i0 * p.bm_tile + i2 * 32, i1 * (bk / 3) + s * 8);
                    chunk += 1;
                }
            }
        }
    }
}

/// The 32-byte chunks of the two part: `f(chunk, row_base, first_pair)` (pairs counted from
/// the first two-part column).
fn for_each_two_chunk(
    p: &TlParams,
    rows: usize,
    k2: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let mut chunk = 0;
    for i0 in 0..rows / p.bm_tile {
        for i1 in 0..k2 / 32 {
            for i2 in 0..p.bm_tile / 32 {
                for i3 in 0..8 {
                    f(chunk, i0 * p.bm_tile + i2 * 32, i1 * 16 + i3 * 2);
                    chunk += 1;
                }
            }
        }
    }
}

/// Sign-plane byte and bit for row `rr` (0..32) and triple `w` (0..8) of a chunk.
#[inline]
fn sign_position(rr: usize, w: usize) -> (usize, u8) {
    let word = rr % 16;
    let bit = 15 - (2 * w + rr / 16);
    (2 * word + bit / 8, 1u8 << (bit % 8))
}

/// Packs codes into the TL2 weight bytes (three, sign, two, zero padding up to the fork's
/// size formula), without the scale slot.
pub fn pack_codes(
    p: &TlParams,
    codes: &[i8],
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, CodecError> {
    check_tl2(p, rows, cols)?;
    if codes.len() != rows * cols {
        return Err(CodecError::shape(format!(
            "{} codes for {rows} x {cols}",
            codes.len()
        )));
    }
    if let Some(i) = super::first_non_ternary(codes) {
        return Err(CodecError::InvalidCode {
            index: i,
            code: codes[i] as i32,
        });
    }
    let (three_len, sign_len, two_len) = sections(p, rows, cols);
    let total = tl2_packed_len(rows, cols)?;
    if three_len + sign_len + two_len > total {
        return Err(CodecError::TlParams(format!(
            "TL2 sections need {} bytes but the fork's size formula allows {total}",
            three_len + sign_len + two_len
        )));
    }
    let mut out = vec![0u8; total];
    let (three, rest) = out.split_at_mut(three_len);
    let (sign, rest) = rest.split_at_mut(sign_len);
    let two = &mut rest[..two_len];
    // Row tile by row tile over the machine's threads, as the decoder: every section is
    // laid out tile by tile.
    let tiles = rows / p.bm_tile;
    let (t3, ts, t2) = sections(p, p.bm_tile, cols);
    let per = tiles_per_thread(tiles);
    let tile_codes = p.bm_tile * cols;
    let mut parts: Vec<(usize, SectionsMut)> = Vec::new();
    let (mut three, mut sign, mut two) = (three, sign, two);
    for i in 0..tiles.div_ceil(per) {
        let n = per.min(tiles - i * per);
        let (a, r3) = std::mem::take(&mut three).split_at_mut(n * t3);
        let (b, rs) = std::mem::take(&mut sign).split_at_mut(n * ts);
        let (c, r2) = std::mem::take(&mut two).split_at_mut(n * t2);
        (three, sign, two) = (r3, rs, r2);
        parts.push((n, (a, b, c)));
    }
    std::thread::scope(|s| {
        for (i, (n, part)) in parts.into_iter().enumerate() {
            let n_rows = n * p.bm_tile;
            let codes = &codes[i * per * tile_codes..][..n_rows * cols];
            s.spawn(move || pack_tiles(p, codes, n_rows, cols, part));
        }
    });
    Ok(out)
}

/// The three, sign and two sections of some row tiles, being written.
type SectionsMut<'a> = (&'a mut [u8], &'a mut [u8], &'a mut [u8]);

/// [`pack_codes`] of whole row tiles into their cuts of the three sections.
fn pack_tiles(
    p: &TlParams,
    codes: &[i8],
    rows: usize,
    cols: usize,
    (three, sign, two): SectionsMut,
) {
    let k3 = cols - cols % p.bk_tile;
    let k2 = cols % p.bk_tile;
    let u = |row: usize, c: usize| {
        let at = row * cols + 3 * c;
        9 * codes[at] as i32 + 3 * codes[at + 1] as i32 + codes[at + 2] as i32
    };
    for_each_three_chunk(p, rows, k3, |chunk, row0, c| {
        for rr in 0..32 {
            let row = row0 + rr;
            let b = ((u(row, c).unsigned_abs() as u8) << 4) | u(row, c + 1).unsigned_abs() as u8;
            three[chunk * 32 + permuted(rr)] = b;
        }
    });
    for_each_sign_chunk(p, rows, k3, |chunk, row0, c| {
        for rr in 0..32 {
            for w in 0..8 {
                if u(row0 + rr, c + w) < 0 {
                    let (byte, mask) = sign_position(rr, w);
                    sign[chunk * 32 + byte] |= mask;
                }
            }
        }
    });
    let v = |row: usize, pair: usize| {
        let at = row * cols + k3 + 2 * pair;
        (3 * codes[at] + codes[at + 1] + 4) as u8
    };
    for_each_two_chunk(p, rows, k2, |chunk, row0, pr| {
        for rr in 0..32 {
            let row = row0 + rr;
            two[chunk * 32 + permuted(rr)] = (v(row, pr) << 4) | v(row, pr + 1);
        }
    });
}

/// Balanced-ternary digits of a triple value `u` in −13..=13.
const fn triple(u: i32) -> [i8; 3] {
    let t0 = (u + 13) / 9 - 1; // first digit: floor((u + 13) / 9) − 1
    let r = u - 9 * t0;
    let t1 = (r + 4) / 3 - 1;
    let t2 = r - 3 * t1;
    [t0 as i8, t1 as i8, t2 as i8]
}

/// [`triple`] of `u − 13` for every `u` in 0..27.
const TRIPLES: [[i8; 3]; 27] = {
    let mut t = [[0i8; 3]; 27];
    let mut u = 0;
    while u < 27 {
        t[u] = triple(u as i32 - 13);
        u += 1;
    }
    t
};

/// Unpacks TL2 weight bytes (at least three + sign + two sections) into codes.
///
/// Every section is laid out row tile by row tile (`bm_tile` rows), so the tiles decode
/// independently: they are split over the machine's threads. On one thread, loading the
/// 0.7B shape as TL2 took 8 s, two thirds of it here.
pub fn unpack_codes(
    p: &TlParams,
    packed: &[u8],
    rows: usize,
    cols: usize,
) -> Result<Vec<i8>, CodecError> {
    check_tl2(p, rows, cols)?;
    let (three_len, sign_len, two_len) = sections(p, rows, cols);
    if packed.len() < three_len + sign_len + two_len {
        return Err(CodecError::Size {
            what: "TL2 packed codes".into(),
            expected: three_len + sign_len + two_len,
            got: packed.len(),
        });
    }
    let (three, rest) = packed.split_at(three_len);
    let (sign, rest) = rest.split_at(sign_len);
    let two = &rest[..two_len];
    let tiles = rows / p.bm_tile;
    let (t3, ts, t2) = sections(p, p.bm_tile, cols);
    let tile_codes = p.bm_tile * cols;
    let mut codes = vec![0i8; rows * cols];
    decode_row_tiles("TL2", &mut codes, tiles, tile_codes, |a, out| {
        let b = a + out.len() / tile_codes;
        let part = (
            &three[a * t3..b * t3],
            &sign[a * ts..b * ts],
            &two[a * t2..b * t2],
        );
        unpack_tiles(p, part, (b - a) * p.bm_tile, cols, out)
    })?;
    Ok(codes)
}

/// [`unpack_codes`] of whole row tiles, the sections cut to those tiles, into `codes`
/// (`rows · cols`, zeroed); a bad code's index is relative to the first of these rows.
fn unpack_tiles(
    p: &TlParams,
    (three, sign, two): (&[u8], &[u8], &[u8]),
    rows: usize,
    cols: usize,
    codes: &mut [i8],
) -> Result<(), CodecError> {
    let (bk, bm) = (p.bk_tile, p.bm_tile);
    let (k3, k2) = (cols - cols % bk, cols % bk);
    let (k_tiles, groups, tpt) = (k3 / bk, bm / 32, bk / 3);
    let (three_g, sign_g) = ((bk / 6) * 32, (bk / 24) * 32);
    let mut bad: Option<(usize, i32)> = None;
    // One 32-row group of one K tile at a time, each row's codes written in order with its
    // magnitude and sign looked up together: through a magnitude array written across rows
    // and a second pass for the signs, this was 6 ns per weight (now ~2).
    for i0 in 0..rows / bm {
        for i1 in 0..k_tiles {
            for i2 in 0..groups {
                let g = (i0 * k_tiles + i1) * groups + i2;
                let mags = &three[g * three_g..(g + 1) * three_g];
                let signs = &sign[g * sign_g..(g + 1) * sign_g];
                let row0 = i0 * bm + i2 * 32;
                for rr in 0..32 {
                    let pr = permuted(rr);
                    let at = (row0 + rr) * cols + i1 * bk;
                    let out = &mut codes[at..at + bk];
                    // A row's eight signs in one sign chunk are one 16-bit word, triple w at
                    // bit 15 − (2w + rr/16) (`sign_position`); shifted so w is at 15 − 2w.
                    let (sign_lo, _) = sign_position(rr, 7);
                    for (c, chunk) in out.chunks_exact_mut(24).enumerate().take(tpt / 8) {
                        let at = at + 24 * c;
                        let sb = &signs[c * 32 + sign_lo..];
                        let word = u16::from_le_bytes([sb[0], sb[1]]) << (rr / 16);
                        for (w, digits) in chunk.chunks_exact_mut(3).enumerate() {
                            let t = 8 * c + w;
                            let b = mags[(t / 2) * 32 + pr];
                            let m = (if w % 2 == 0 { b >> 4 } else { b & 0x0f }) as usize;
                            if m > 13 {
                                bad.get_or_insert((at + 3 * w, m as i32));
                                continue;
                            }
                            let negative = word >> (15 - 2 * w) & 1 != 0;
                            let u = if negative { 13 - m } else { 13 + m };
                            digits.copy_from_slice(&TRIPLES[u]);
                        }
                    }
                }
            }
        }
    }
    if let Some((index, code)) = bad {
        return Err(CodecError::InvalidCode { index, code });
    }
    for_each_two_chunk(p, rows, k2, |chunk, row0, pr| {
        for rr in 0..32 {
            let b = two[chunk * 32 + permuted(rr)];
            let at = (row0 + rr) * cols + k3 + 2 * pr;
            super::tl1::unpack_pair_byte(b, codes, at, &mut bad);
        }
    });
    match bad {
        Some((index, code)) => Err(CodecError::InvalidCode { index, code }),
        None => Ok(()),
    }
}

pub fn encode(p: &TlParams, t: &TernaryTensor) -> Result<Vec<u8>, CodecError> {
    let scale = t.per_tensor_scale()?;
    let mut out = pack_codes(p, &t.codes, t.rows, t.cols)?;
    write_scale_slot(&mut out, scale);
    Ok(out)
}

pub fn decode(
    p: &TlParams,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<TernaryTensor, CodecError> {
    check_tl2(p, rows, cols)?;
    let packed = tl2_packed_len(rows, cols)?;
    let scale = read_scale_slot("TL2", bytes, packed)?;
    let codes = unpack_codes(p, &bytes[..packed], rows, cols)?;
    Ok(TernaryTensor {
        rows,
        cols,
        codes,
        scales: TernaryScales::PerTensor(scale),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_round_trip() {
        for t0 in -1..=1i8 {
            for t1 in -1..=1i8 {
                for t2 in -1..=1i8 {
                    let u = 9 * t0 as i32 + 3 * t1 as i32 + t2 as i32;
                    assert_eq!(triple(u), [t0, t1, t2]);
                }
            }
        }
    }
}
