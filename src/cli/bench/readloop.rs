//! The bandwidth probe's read loops: the widest vector loads the CPU has (AVX-512, AVX2,
//! NEON), several independent accumulators per stream and no software prefetch, so that the
//! probe reads at least as fast as a plain compiled sum loop over the same buffer. Anything
//! slower makes decode's "% of bound" overstate the kernels (above 100 % is a probe bug).

/// A buffer of `len` bytes starting on a 2 MiB boundary inside an anonymous map advised for
/// transparent huge pages: with 4 KiB pages a pass misses the TLB every 4 KiB and reads
/// slower than the model's weights, which the kernel may back with huge pages.
pub struct HugeBuf {
    map: memmap2::MmapMut,
    start: usize,
    len: usize,
}

const HUGE_PAGE: usize = 2 << 20;

impl HugeBuf {
    /// Maps `len` bytes (a multiple of 64) and fills them with a pattern, so every page is
    /// backed before the first pass.
    pub fn new(len: usize) -> std::io::Result<HugeBuf> {
        let mut map = memmap2::MmapMut::map_anon(len + HUGE_PAGE)?;
        let start = (map.as_ptr() as usize).next_multiple_of(HUGE_PAGE) - map.as_ptr() as usize;
        // A refusal (no THP in this kernel) only leaves the small pages.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        for (i, w) in map[start..start + len].chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9).to_le_bytes());
        }
        Ok(HugeBuf { map, start, len })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }
}

/// How one thread reads its part: as one sequential stream (what an OpenMP `sum += a[i]`
/// loop does) or as four streams side by side (what the decode kernels do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    OneStream,
    FourStreams,
}

/// The vector width the probe reads with on this CPU, for the report.
pub fn widest_loads() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return "neon";
    }
    #[allow(unreachable_code)]
    "scalar"
}

/// Reads every byte of `part` (a multiple of 64 bytes, 64-byte aligned) in `shape`; returns
/// a value depending on all of them so the loads cannot be dropped.
pub fn read(part: &[u8], shape: Shape) -> u64 {
    let streams = match shape {
        Shape::OneStream => 1,
        Shape::FourStreams => 4,
    };
    let len = part.len() / (64 * streams) * 64;
    let heads: Vec<&[u8]> = (0..streams)
        .map(|s| &part[s * len..(s + 1) * len])
        .collect();
    let tail = &part[streams * len..];
    read_streams(&heads).wrapping_add(scalar_sum(tail))
}

fn read_streams(heads: &[&[u8]]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            return unsafe { x86::sum_avx512(heads) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { x86::sum_avx2(heads) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: NEON is part of the aarch64 baseline.
        return unsafe { arm::sum_neon(heads) };
    }
    #[allow(unreachable_code)]
    heads
        .iter()
        .flat_map(|h| h.chunks_exact(8))
        .fold(0u64, |a, w| {
            a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Every stream read 64 bytes at a time in lockstep, four independent accumulators
    /// per stream over 256 bytes (an add's latency never limits the loads).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sum_avx512(heads: &[&[u8]]) -> u64 {
        let len = heads.iter().map(|h| h.len()).min().unwrap_or(0);
        let mut acc = [_mm512_setzero_si512(); 16];
        let steps = len / 256;
        for i in 0..steps {
            for (s, h) in heads.iter().enumerate().take(4) {
                for j in 0..4 {
                    // SAFETY: `i * 256 + j * 64 + 64 ≤ steps * 256 ≤ len ≤ h.len()`.
                    let v = unsafe { _mm512_loadu_si512(h.as_ptr().add(i * 256 + j * 64).cast()) };
                    acc[4 * s + j] = _mm512_add_epi64(acc[4 * s + j], v);
                }
            }
        }
        let mut t = _mm512_setzero_si512();
        for a in acc {
            t = _mm512_add_epi64(t, a);
        }
        let mut out = [0u64; 8];
        // SAFETY: `out` holds 64 bytes.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), t) };
        let rest = heads
            .iter()
            .map(|h| super::scalar_sum(&h[steps * 256..len]));
        out.iter()
            .chain(rest.collect::<Vec<_>>().iter())
            .fold(0u64, |a, &b| a.wrapping_add(b))
    }

    /// [`sum_avx512`] on 32-byte registers.
    #[target_feature(enable = "avx2")]
    pub unsafe fn sum_avx2(heads: &[&[u8]]) -> u64 {
        let len = heads.iter().map(|h| h.len()).min().unwrap_or(0);
        let mut acc = [_mm256_setzero_si256(); 16];
        let steps = len / 128;
        for i in 0..steps {
            for (s, h) in heads.iter().enumerate().take(4) {
                for j in 0..4 {
                    // SAFETY: `i * 128 + j * 32 + 32 ≤ steps * 128 ≤ len ≤ h.len()`.
                    let v = unsafe { _mm256_loadu_si256(h.as_ptr().add(i * 128 + j * 32).cast()) };
                    acc[4 * s + j] = _mm256_add_epi64(acc[4 * s + j], v);
                }
            }
        }
        let mut t = _mm256_setzero_si256();
        for a in acc {
            t = _mm256_add_epi64(t, a);
        }
        let mut out = [0u64; 4];
        // SAFETY: `out` holds 32 bytes.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), t) };
        let rest = heads
            .iter()
            .map(|h| super::scalar_sum(&h[steps * 128..len]));
        out.iter()
            .chain(rest.collect::<Vec<_>>().iter())
            .fold(0u64, |a, &b| a.wrapping_add(b))
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    /// As the x86 loops, on 16-byte registers, 64 bytes per stream and step.
    #[target_feature(enable = "neon")]
    pub unsafe fn sum_neon(heads: &[&[u8]]) -> u64 {
        let len = heads.iter().map(|h| h.len()).min().unwrap_or(0);
        let mut acc = [vdupq_n_u64(0); 16];
        let steps = len / 64;
        for i in 0..steps {
            for (s, h) in heads.iter().enumerate().take(4) {
                for j in 0..4 {
                    // SAFETY: `i * 64 + j * 16 + 16 ≤ steps * 64 ≤ len ≤ h.len()`.
                    let v = unsafe { vld1q_u64(h.as_ptr().add(i * 64 + j * 16).cast()) };
                    acc[4 * s + j] = vaddq_u64(acc[4 * s + j], v);
                }
            }
        }
        let t = acc.iter().fold(vdupq_n_u64(0), |a, &b| vaddq_u64(a, b));
        let body = vgetq_lane_u64::<0>(t).wrapping_add(vgetq_lane_u64::<1>(t));
        heads
            .iter()
            .map(|h| super::scalar_sum(&h[steps * 64..len]))
            .fold(body, |a, b| a.wrapping_add(b))
    }
}

/// The wrapping sum of `b`'s little-endian u64 words (and its last bytes one by one).
fn scalar_sum(b: &[u8]) -> u64 {
    let words = b.chunks_exact(8);
    let tail = words
        .remainder()
        .iter()
        .fold(0u64, |a, &x| a.wrapping_add(x as u64));
    words.fold(tail, |a, w| {
        a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_reads_every_word() {
        // Odd lengths leave a tail of partial steps on every path.
        let buf: Vec<u8> = (0..(64 * 1000 + 8 * 3) as u32)
            .map(|i| (i * 7 + 3) as u8)
            .collect();
        for len in [0, 8, 64, 256 + 8, 4096 + 64 * 3, buf.len()] {
            let part = &buf[..len];
            let want = scalar_sum(part);
            assert_eq!(read(part, Shape::OneStream), want, "len {len}");
            assert_eq!(read(part, Shape::FourStreams), want, "len {len}");
        }
    }

    #[test]
    fn huge_buf_is_aligned_and_filled() {
        let b = HugeBuf::new(4 << 20).unwrap();
        assert_eq!(b.bytes().as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(b.bytes().len(), 4 << 20);
        assert_eq!(&b.bytes()[8..16], &0x9E37_79B9u64.to_le_bytes());
    }
}
