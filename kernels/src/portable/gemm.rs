//! The prefill GEMMs' side of the portable module: how each GEMM wants a prompt's int8
//! activations packed, and the twin every GEMM is tested against.

use super::i2_dot;

/// Weight rows per GEMM call (every path's GEMM).
pub const GEMM_ROWS: usize = 32;

/// Packs the activations of `groups` groups of 16 tokens (rows of `k` in `q`, `k` a multiple
/// of 64) into the tile layout of the AMX GEMM: per group `g` and 64-column chunk `c`, a
/// 16 × 64-byte tile whose row `i` holds, token by token, the four activations of columns
/// `64c + 4i .. 64c + 4i + 4`: `out[((g·C + c)·16 + i)·64 + 4n + r] = q[(16g + n)·k + 64c + 4i + r]`.
pub fn pack_acts_tiles16(q: &[i8], k: usize, groups: usize, out: &mut Vec<i8>) {
    assert!(
        k.is_multiple_of(64),
        "pack_acts_tiles16: K = {k} is not a multiple of 64"
    );
    assert!(
        q.len() >= 16 * groups * k,
        "pack_acts_tiles16: activations too short"
    );
    let chunks = k / 64;
    out.clear();
    out.resize(16 * groups * k, 0);
    for g in 0..groups {
        for n in 0..16 {
            let row = &q[(16 * g + n) * k..][..k];
            for c in 0..chunks {
                let tile = &mut out[(g * chunks + c) * 1024..][..1024];
                for i in 0..16 {
                    tile[i * 64 + 4 * n..][..4].copy_from_slice(&row[64 * c + 4 * i..][..4]);
                }
            }
        }
    }
}

/// Columns per chunk of the AVX2 GEMM for rows of `k` (a multiple of 128): the fewest
/// chunks of at most 2048 columns, rounded up to whole 128-blocks. 2048 is the most an i16
/// lane can sum exactly (64 `maddubs` lanes of at most 512 in magnitude); within that
/// bound, fewer chunks mean fewer flushes to i32.
pub fn gemm_chunk_len(k: usize) -> usize {
    let chunks = k.div_ceil(2048).max(1);
    k.div_ceil(chunks).next_multiple_of(128).min(2048)
}

/// Packs `n` tokens' activations (rows of `k` in `q`, `k` a multiple of 128) chunk-major
/// for the AVX2 GEMM: chunk `c` (columns `c0 .. c0 + len`, see [`gemm_chunk_len`]) holds
/// every token's `len` activations in token order, so that one chunk of the whole prompt
/// is one contiguous region: `out[c0·n + t·len + j] = q[t·k + c0 + j]`.
pub fn pack_acts_chunks(q: &[i8], k: usize, n: usize, out: &mut Vec<i8>) {
    assert!(
        k.is_multiple_of(128),
        "pack_acts_chunks: K = {k} is not a multiple of 128"
    );
    assert!(q.len() >= n * k, "pack_acts_chunks: activations too short");
    let chunk = gemm_chunk_len(k);
    out.clear();
    out.reserve(n * k);
    for c0 in (0..k).step_by(chunk) {
        let len = chunk.min(k - c0);
        for t in 0..n {
            out.extend_from_slice(&q[t * k + c0..][..len]);
        }
    }
}

/// The twin of every GEMM entry: `out[r·n + t] = i2_dot(row r, token t)` for the
/// [`GEMM_ROWS`] rows `row_bytes` apart (each `k / 4` bytes of I2 layout A) and the `n`
/// tokens whose activations are the rows of `q` (plain layout, `k` columns each).
pub fn i2_gemm32(rows: &[u8], row_bytes: usize, k: usize, q: &[i8], n: usize, out: &mut [i32]) {
    for r in 0..GEMM_ROWS {
        let row = &rows[r * row_bytes..][..k / 4];
        for t in 0..n {
            out[r * n + t] = i2_dot(row, &q[t * k..][..k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_k_in_whole_blocks_within_the_i16_bound() {
        for k in (128..=16384).step_by(128) {
            let c = gemm_chunk_len(k);
            assert!(
                c.is_multiple_of(128) && c <= 2048 && c > 0,
                "k={k} chunk={c}"
            );
            // No chunk is needlessly small: at most one more chunk than the bound forces.
            assert!(k.div_ceil(c) <= k.div_ceil(2048), "k={k} chunk={c}");
        }
        assert_eq!(gemm_chunk_len(2560), 1280);
        assert_eq!(gemm_chunk_len(6912), 1792);
    }

    #[test]
    fn chunk_packing_is_a_permutation_with_the_documented_index() {
        let (k, n) = (2560, 3);
        let q: Vec<i8> = (0..n * k).map(|i| (i * 7 % 251) as i8).collect();
        let mut out = Vec::new();
        pack_acts_chunks(&q, k, n, &mut out);
        assert_eq!(out.len(), n * k);
        let chunk = gemm_chunk_len(k);
        for t in 0..n {
            for col in 0..k {
                let (c0, j) = (col / chunk * chunk, col % chunk);
                let len = chunk.min(k - c0);
                assert_eq!(out[c0 * n + t * len + j], q[t * k + col], "t={t} col={col}");
            }
        }
    }
}
