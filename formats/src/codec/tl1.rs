//! TL1: pairs of ternary weights as 4-bit lookup indices in bitnet.cpp's tiled order
//! (docs/formats/tl.md, 'TL1 byte order'), followed by the hidden scale slot ('Payload').

use super::row_tiles::{decode_row_tiles, tiles_per_thread};
use super::tl_params::{check_tl1, read_scale_slot, write_scale_slot};
use super::{CodecError, TernaryScales, TernaryTensor, TlParams};

/// Calls `f(byte_index, row, pair)` for every packed byte: the byte holds pairs `pair` (high
/// nibble) and `pair + 1` (low nibble) of `row`.
fn for_each_byte(p: &TlParams, rows: usize, cols: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (bm_tile, bk_tile, bm) = (p.bm_tile, p.bk_tile, p.bm);
    let by = 256 / bm;
    let mut idx = 0;
    for i0 in 0..rows / bm_tile {
        for i1 in 0..cols / bk_tile {
            for i2 in 0..bm_tile / bm {
                for i3 in 0..bk_tile / by {
                    for i4 in 0..bm / 16 {
                        for i5 in 0..by / 4 {
                            let pair = i1 * (bk_tile / 2) + i3 * (by / 2) + i5 * 2;
                            for r in 0..16 {
                                let row = i0 * bm_tile + i2 * bm + i4 * 16 + r;
                                f(idx, row, pair);
                                idx += 1;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs codes into `rows * cols / 4` bytes (no scale slot).
pub fn pack_codes(
    p: &TlParams,
    codes: &[i8],
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, CodecError> {
    check_tl1(p, rows, cols)?;
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
    // Row tile by row tile over the machine's threads (each tile's bytes are contiguous).
    let tiles = rows / p.bm_tile;
    let per = tiles_per_thread(tiles);
    let tile_codes = p.bm_tile * cols;
    let mut out = vec![0u8; rows * cols / 4];
    std::thread::scope(|s| {
        for (out, codes) in out
            .chunks_mut(per * tile_codes / 4)
            .zip(codes.chunks(per * tile_codes))
        {
            s.spawn(move || {
                // v = 3·t(2p) + t(2p+1) + 4 ∈ 0..=8.
                let v = |row: usize, pair: usize| {
                    let at = row * cols + 2 * pair;
                    (3 * codes[at] + codes[at + 1] + 4) as u8
                };
                for_each_byte(p, codes.len() / cols, cols, |idx, row, pair| {
                    out[idx] = (v(row, pair) << 4) | v(row, pair + 1);
                });
            });
        }
    });
    Ok(out)
}

/// Unpacks `rows * cols / 4` bytes into codes; a nibble above 8 is an error.
pub fn unpack_codes(
    p: &TlParams,
    packed: &[u8],
    rows: usize,
    cols: usize,
) -> Result<Vec<i8>, CodecError> {
    check_tl1(p, rows, cols)?;
    if packed.len() < rows * cols / 4 {
        return Err(CodecError::Size {
            what: "TL1 packed codes".into(),
            expected: rows * cols / 4,
            got: packed.len(),
        });
    }
    // Row tile by row tile over the machine's threads (each tile's bytes are contiguous):
    // on one thread, loading the large shape as TL1 spent 1.5 s here.
    let tile_codes = p.bm_tile * cols;
    let tile_bytes = tile_codes / 4;
    let mut codes = vec![0i8; rows * cols];
    decode_row_tiles(
        "TL1",
        &mut codes,
        rows / p.bm_tile,
        tile_codes,
        |first, out| {
            let n_rows = out.len() / cols;
            let bytes = &packed[first * tile_bytes..][..n_rows * cols / 4];
            let mut bad: Option<(usize, i32)> = None;
            for_each_byte(p, n_rows, cols, |idx, row, pair| {
                unpack_pair_byte(bytes[idx], out, row * cols + 2 * pair, &mut bad);
            });
            match bad {
                Some((index, code)) => Err(CodecError::InvalidCode { index, code }),
                None => Ok(()),
            }
        },
    )?;
    Ok(codes)
}

/// Unpacks one byte of two TL pair indices (`v = 3·t0 + t1 + 4`, high nibble first) into the
/// four codes starting at `at`. TL1 and TL2's "two" part share this encoding. An index above 8
/// is recorded in `bad` (first one wins) and leaves its codes at zero.
pub(super) fn unpack_pair_byte(b: u8, codes: &mut [i8], at: usize, bad: &mut Option<(usize, i32)>) {
    for (k, nib) in [(0, b >> 4), (1, b & 0x0f)] {
        let at = at + 2 * k;
        match PAIRS.get(nib as usize) {
            Some(pair) => codes[at..at + 2].copy_from_slice(pair),
            None => {
                bad.get_or_insert((at, nib as i32));
            }
        }
    }
}

/// The two weights of every valid 4-bit pair index (`3·(t0 + 1) + (t1 + 1)`).
const PAIRS: [[i8; 2]; 9] = {
    let mut t = [[0i8; 2]; 9];
    let mut i = 0;
    while i < 9 {
        t[i] = [(i / 3) as i8 - 1, (i % 3) as i8 - 1];
        i += 1;
    }
    t
};

/// Full payload: packed codes, zero padding to 32, f32 scale, 28 zero bytes.
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
    check_tl1(p, rows, cols)?;
    let packed = rows * cols / 4;
    let scale = read_scale_slot("TL1", bytes, packed)?;
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
    fn worked_example_first_bytes() {
        // docs/formats/tl.md, 'TL1 byte order':
        // row 0 starts +1 +1 0 0 -> 0x84; row 1 starts +1 +1 0 -1 -> 0x83.
        let p = TlParams {
            bm_tile: 64,
            bk_tile: 128,
            bm: 32,
        };
        let (rows, cols) = (64, 256);
        let mut codes = vec![0i8; rows * cols];
        codes[..4].copy_from_slice(&[1, 1, 0, 0]);
        codes[cols..cols + 4].copy_from_slice(&[1, 1, 0, -1]);
        let packed = pack_codes(&p, &codes, rows, cols).unwrap();
        assert_eq!(&packed[..2], &[0x84, 0x83]);
        assert_eq!(unpack_codes(&p, &packed, rows, cols).unwrap(), codes);
    }
}
