//! Dialect resolution (docs/gguf.md, 'Dialects (type ids 36–42)'): type ids 36..=42 mean different
//! things in upstream ggml and in the two generations of the bitnet.cpp fork, and nothing in a file
//! says which. We pick candidates from context (`general.architecture`, `general.file_type`), then
//! prove the choice: every tensor's size under the candidate's size rules must make the recorded
//! offsets consistent.

use super::error::Problem;
use super::TensorInfo;
use crate::arch::Arch;
use crate::types::{Dialect, SizeRule, TensorType};

/// A tensor-info record before its type id is interpreted.
#[derive(Clone, Debug)]
pub(crate) struct RawTensorInfo {
    pub name: String,
    pub ne: Vec<u64>,
    pub raw_type: u32,
    pub offset: u64,
    /// Absolute file offset of the record, for error messages.
    pub info_at: u64,
}

/// Architectures written by the bitnet.cpp tool-chain: the `bitnet_family` rows of the
/// architecture table.
pub const BITNET_ARCHITECTURES: [&str; 3] = [
    Arch::Bitnet.name(),
    Arch::Bitnet25.name(),
    Arch::BitnetB158.name(),
];

/// `general.file_type` values that mean TL1, TL2 and I2_S in the fork (MXFP4_MOE, NVFP4 and
/// Q1_0 upstream).
const BITNET_FILE_TYPES: [u64; 3] = [38, 39, 40];

/// Ids whose meaning depends on the dialect.
fn is_colliding(id: u32) -> bool {
    (36..=42).contains(&id)
}

/// The order in which dialects are tried for a file.
pub(crate) fn candidate_order(
    raw: &[RawTensorInfo],
    architecture: Option<&str>,
    file_type: Option<u64>,
) -> [Dialect; 3] {
    let has_fork_ids = raw.iter().any(|t| matches!(t.raw_type, 36..=39 | 42));
    let bitnet_hint = architecture.is_some_and(|a| BITNET_ARCHITECTURES.contains(&a))
        || (file_type.is_some_and(|f| BITNET_FILE_TYPES.contains(&f)) && has_fork_ids);
    if bitnet_hint {
        // TL2 moved from 39 to 42; a bitnet model using id 39 is most likely the older fork.
        if raw.iter().any(|t| t.raw_type == 39) {
            [Dialect::Bitnet2024, Dialect::Bitnet, Dialect::Upstream]
        } else {
            [Dialect::Bitnet, Dialect::Bitnet2024, Dialect::Upstream]
        }
    } else {
        [Dialect::Upstream, Dialect::Bitnet, Dialect::Bitnet2024]
    }
}

struct Layout {
    tensors: Vec<TensorInfo>,
    /// Offsets equal the running sum of padded sizes, in info order (upstream's rule).
    packed: bool,
    /// The data section ends exactly where the last tensor (or its padding) ends.
    exact_end: bool,
}

type Failure = (u64, Problem);

fn pad(n: u64, alignment: u64) -> Option<u64> {
    n.checked_add(alignment - 1)
        .map(|v| v / alignment * alignment)
}

fn layout_under(
    dialect: Dialect,
    raw: &[RawTensorInfo],
    alignment: u64,
    data_len: u64,
) -> Result<Layout, Failure> {
    let mut tensors = Vec::with_capacity(raw.len());
    for r in raw {
        let fail = |p| (r.info_at, p);
        let ty = TensorType::from_id(r.raw_type, dialect).ok_or_else(|| {
            fail(Problem::UnknownTensorType {
                tensor: r.name.clone(),
                id: r.raw_type,
            })
        })?;
        if ty.size_rule() == SizeRule::NotStorable {
            return Err(fail(Problem::UnstorableType {
                tensor: r.name.clone(),
                id: r.raw_type,
                ty: ty.name(),
            }));
        }
        let nbytes = ty.nbytes(&r.ne).ok_or_else(|| {
            fail(Problem::BadShapeForType {
                tensor: r.name.clone(),
                ty: ty.name(),
                ne: r.ne.clone(),
            })
        })?;
        if r.offset % alignment != 0 {
            return Err(fail(Problem::Misaligned {
                tensor: r.name.clone(),
                offset: r.offset,
                alignment,
            }));
        }
        let end = r.offset.checked_add(nbytes).filter(|&e| e <= data_len);
        let Some(_) = end else {
            return Err(fail(Problem::TensorOutOfBounds {
                tensor: r.name.clone(),
                start: r.offset,
                end: r.offset.saturating_add(nbytes),
                data_len,
            }));
        };
        tensors.push(TensorInfo {
            name: r.name.clone(),
            ne: r.ne.clone(),
            raw_type: r.raw_type,
            ty,
            offset: r.offset,
            nbytes,
        });
    }

    // No two payloads may share bytes (zero-sized tensors share nothing).
    let mut order: Vec<usize> = (0..tensors.len())
        .filter(|&i| tensors[i].nbytes > 0)
        .collect();
    order.sort_by_key(|&i| tensors[i].offset);
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        if a.offset + a.nbytes > b.offset {
            return Err((
                raw[w[1]].info_at,
                Problem::Overlap {
                    first: a.name.clone(),
                    second: b.name.clone(),
                },
            ));
        }
    }

    let mut running = 0u64;
    let mut packed = true;
    for t in &tensors {
        packed &= t.offset == running;
        running = pad(t.offset + t.nbytes, alignment).unwrap_or(u64::MAX);
    }
    let end = tensors
        .iter()
        .map(|t| t.offset + t.nbytes)
        .max()
        .unwrap_or(0);
    let exact_end = data_len == end || Some(data_len) == pad(end, alignment);
    Ok(Layout {
        tensors,
        packed,
        exact_end,
    })
}

/// Chooses the dialect and resolves every tensor's type and size.
pub(crate) fn resolve_layout(
    raw: &[RawTensorInfo],
    architecture: Option<&str>,
    file_type: Option<u64>,
    alignment: u64,
    data_len: u64,
) -> Result<(Dialect, Vec<TensorInfo>), Failure> {
    let order = candidate_order(raw, architecture, file_type);
    if !raw.iter().any(|t| is_colliding(t.raw_type)) {
        // Every dialect reads these ids the same way: the context alone names the dialect.
        return layout_under(order[0], raw, alignment, data_len).map(|l| (order[0], l.tensors));
    }
    let mut best: Option<(u8, Dialect, Layout)> = None;
    let mut failures: Vec<(Dialect, Failure)> = Vec::new();
    for dialect in order {
        match layout_under(dialect, raw, alignment, data_len) {
            Ok(layout) => {
                let rank = u8::from(layout.packed) * 2 + u8::from(layout.exact_end);
                if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                    best = Some((rank, dialect, layout));
                }
            }
            Err(f) => failures.push((dialect, f)),
        }
    }
    if let Some((_, dialect, layout)) = best {
        return Ok((dialect, layout.tensors));
    }
    // Every dialect failed. If they all failed for the same reason, that reason is the
    // clearest message; otherwise list what each one found.
    let first = failures[0].1.clone();
    if failures.iter().all(|(_, f)| f.1 == first.1) {
        return Err(first);
    }
    let detail = failures
        .iter()
        .map(|(d, (_, p))| format!("as {d}: {p}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err((first.0, Problem::NoConsistentDialect(detail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, ne: &[u64], id: u32, offset: u64) -> RawTensorInfo {
        RawTensorInfo {
            name: name.into(),
            ne: ne.to_vec(),
            raw_type: id,
            offset,
            info_at: 0,
        }
    }

    #[test]
    fn id_39_is_decided_by_the_offsets() {
        // TL2 64x256 is 4128 bytes; MXFP4 of the same shape is 8704.
        let tensors = [raw("a", &[256, 64], 39, 0), raw("b", &[128], 0, 4128)];
        let (d, t) = resolve_layout(&tensors, Some("bitnet"), None, 32, 4128 + 512).unwrap();
        assert_eq!(d, Dialect::Bitnet2024);
        assert_eq!(t[0].ty, TensorType::TL2);
        // The same ids laid out for MXFP4 prove the upstream reading even with a bitnet hint.
        let tensors = [raw("a", &[256, 64], 39, 0), raw("b", &[128], 0, 8704)];
        let (d, t) = resolve_layout(&tensors, Some("bitnet"), None, 32, 8704 + 512).unwrap();
        assert_eq!(t[0].ty, TensorType::MXFP4);
        assert_ne!(d, Dialect::Bitnet2024);
    }

    #[test]
    fn fork_ids_without_context_still_resolve() {
        let tensors = [raw("w", &[128, 4], 36, 0)];
        let (d, t) = resolve_layout(&tensors, None, None, 32, 160).unwrap();
        assert_eq!(d, Dialect::Bitnet);
        assert_eq!(t[0].ty, TensorType::I2_S);
    }

    #[test]
    fn unknown_ids_name_the_tensor() {
        let tensors = [raw("w", &[128, 4], 77, 0)];
        let (_, p) = resolve_layout(&tensors, None, None, 32, 1 << 20).unwrap_err();
        assert_eq!(
            p,
            Problem::UnknownTensorType {
                tensor: "w".into(),
                id: 77
            }
        );
    }
}
