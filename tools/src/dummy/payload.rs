//! Random tensor payloads: ternary codes in each packed format, F16 noise, and the ternary
//! values as F16 for shapes a format cannot hold.

use bitnet_formats::codec::{
    self, I2sLayout, TernaryFormat, TernaryScales, TernaryTensor, TlParams,
};
use rayon::prelude::*;

/// xorshift64*: fast, deterministic, good enough for random weights.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    #[inline]
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Fills `out` in parallel, 64 KiB per task, each task with its own stream.
fn par_fill(out: &mut [u8], seed: u64, f: impl Fn(&mut Rng, &mut [u8]) + Sync) {
    out.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(i, c)| f(&mut Rng::new(seed ^ ((i as u64 + 1) << 20)), c));
}

/// The 81 bytes whose four 2-bit fields are all in 0..=2 (valid I2_S / TQ2_0 code bytes),
/// repeated to fill 256 entries. Built at compile time: built per call, it cost a heap
/// allocation per TQ2_0 block, and the threads' malloc lock made the 2B file take 22 s.
const VALID_CODE_BYTES: [u8; 256] = {
    let mut valid = [0u8; 81];
    let (mut n, mut b) = (0, 0);
    while b < 256 {
        if b & 3 != 3 && (b >> 2) & 3 != 3 && (b >> 4) & 3 != 3 && (b >> 6) & 3 != 3 {
            valid[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = valid[i % 81];
        i += 1;
    }
    t
};

fn random_codes(rng: &mut Rng, out: &mut [u8]) {
    for c in out.chunks_mut(8) {
        let r = rng.next().to_le_bytes();
        for (o, b) in c.iter_mut().zip(r) {
            *o = VALID_CODE_BYTES[b as usize];
        }
    }
}

/// `n` F16 values uniform in `[-amp, amp]`.
pub(crate) fn f16_noise(n: usize, amp: f32, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; 2 * n];
    par_fill(&mut out, seed, |rng, c| {
        for p in c.chunks_mut(2) {
            let u = (rng.next() >> 40) as f32 / (1u64 << 24) as f32;
            p.copy_from_slice(&half::f16::from_f32((2.0 * u - 1.0) * amp).to_le_bytes());
        }
    });
    out
}

/// Random ternary values times `s`, as F16, for shapes the requested format cannot hold.
pub(crate) fn ternary_as_f16(rows: usize, cols: usize, s: f32, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..rows * cols)
        .flat_map(|_| half::f16::from_f32(((rng.next() % 3) as f32 - 1.0) * s).to_le_bytes())
        .collect()
}

/// A random ternary payload of `rows × cols` in `fmt`, with scale `s` (every block).
pub(crate) fn ternary_payload(
    fmt: &TernaryFormat,
    rows: usize,
    cols: usize,
    s: f32,
    seed: u64,
) -> std::io::Result<Vec<u8>> {
    let n = rows * cols;
    match fmt {
        TernaryFormat::I2s(I2sLayout::X86) => {
            let mut v = vec![0u8; n / 4 + 32];
            par_fill(&mut v[..n / 4], seed, random_codes);
            v[n / 4..n / 4 + 4].copy_from_slice(&s.to_le_bytes());
            Ok(v)
        }
        TernaryFormat::Tq2_0 => {
            let mut v = vec![0u8; n / 256 * 66];
            let d = half::f16::from_f32(s).to_le_bytes();
            v.par_chunks_mut(66 * 1024).enumerate().for_each(|(i, c)| {
                let mut rng = Rng::new(seed ^ ((i as u64 + 1) << 20));
                for b in c.chunks_mut(66) {
                    random_codes(&mut rng, &mut b[..64]);
                    b[64..66].copy_from_slice(&d);
                }
            });
            Ok(v)
        }
        TernaryFormat::Tq1_0 => Ok(tq1_0_payload(n, s, seed)),
        _ => encoded_payload(fmt, rows, cols, s, seed),
    }
}

fn tq1_0_payload(n: usize, s: f32, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n / 256 * 54];
    let d = half::f16::from_f32(s).to_le_bytes();
    let enc = |q: u32| (q * 256).div_ceil(243) as u8;
    v.par_chunks_mut(54 * 1024).enumerate().for_each(|(i, c)| {
        let mut rng = Rng::new(seed ^ ((i as u64 + 1) << 20));
        for b in c.chunks_mut(54) {
            for o in &mut b[..48] {
                *o = enc((rng.next() % 243) as u32);
            }
            for o in &mut b[48..52] {
                *o = enc(3 * (rng.next() % 81) as u32);
            }
            b[52..54].copy_from_slice(&d);
        }
    });
    v
}

/// Formats without a direct random fill (TL1, TL2, I2_S ARM) go through the encoder.
fn encoded_payload(
    fmt: &TernaryFormat,
    rows: usize,
    cols: usize,
    s: f32,
    seed: u64,
) -> std::io::Result<Vec<u8>> {
    let mut codes = vec![0i8; rows * cols];
    codes
        .par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(i, c)| {
            let mut rng = Rng::new(seed ^ ((i as u64 + 1) << 20));
            // Eight values from each draw, byte b giving ⌊3b/256⌋ − 1.
            for c8 in c.chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                for (t, b) in c8.iter_mut().zip(r) {
                    *t = ((3 * b as u32) >> 8) as i8 - 1;
                }
            }
        });
    let t = TernaryTensor {
        rows,
        cols,
        codes,
        scales: TernaryScales::PerTensor(s),
    };
    codec::encode_ternary(fmt, &t).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Tile parameters for TL formats: the shipped preset for the shape, else a valid choice.
pub(crate) fn tl_params(tl2: bool, rows: usize, cols: usize) -> TlParams {
    let preset = if tl2 {
        codec::tl_params::tl2_preset(rows, cols)
    } else {
        codec::tl_params::tl1_preset(rows, cols)
    };
    preset.unwrap_or_else(|| {
        let bm_tile = [256, 128, 64, 32]
            .into_iter()
            .find(|b| rows.is_multiple_of(*b))
            .unwrap_or(32);
        let bk_tile = if tl2 {
            [192, 96]
                .into_iter()
                .find(|b| cols.is_multiple_of(*b))
                .unwrap_or(96)
        } else {
            [128, 64, 32]
                .into_iter()
                .find(|b| cols.is_multiple_of(*b))
                .unwrap_or(32)
        };
        TlParams {
            bm_tile,
            bk_tile,
            bm: 32,
        }
    })
}
