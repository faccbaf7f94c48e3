//! Coding a LUT payload's row tiles on all threads. Both TL1 and TL2 lay every section out
//! row tile by row tile, so the tiles encode and decode independently.

use super::CodecError;

/// Splits `codes` (`tiles` row tiles of `tile_codes` codes each, zeroed) over the machine's
/// threads and calls `decode(first_tile, out)` for each part, `out` holding whole tiles. A
/// bad code's index, reported relative to `out`, is moved to the start of the tensor; when
/// several parts fail, the first part's error is returned (the first bad code in row order).
pub(super) fn decode_row_tiles(
    what: &str,
    codes: &mut [i8],
    tiles: usize,
    tile_codes: usize,
    decode: impl Fn(usize, &mut [i8]) -> Result<(), CodecError> + Sync,
) -> Result<(), CodecError> {
    if tiles == 0 || tile_codes == 0 {
        return Ok(());
    }
    let per = tiles_per_thread(tiles);
    let decode = &decode;
    let results: Vec<Result<(), CodecError>> = std::thread::scope(|s| {
        let handles: Vec<_> = codes
            .chunks_mut(per * tile_codes)
            .enumerate()
            .map(|(i, out)| {
                s.spawn(move || {
                    decode(i * per, out).map_err(|e| match e {
                        CodecError::InvalidCode { index, code } => CodecError::InvalidCode {
                            index: index + i * per * tile_codes,
                            code,
                        },
                        e => e,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(CodecError::shape(format!(
                        "{what} decoding thread panicked"
                    )))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Row tiles per thread when `tiles` are spread over the machine's threads (at least 1).
pub(super) fn tiles_per_thread(tiles: usize) -> usize {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    tiles.div_ceil(threads.clamp(1, tiles.max(1))).max(1)
}
