//! Keys and values of the tokens a session has already processed, per layer, in f32 or
//! (`--kv-type f16`, llama.cpp's default cache type) f16.
//!
//! Each layer stores its keys head by head: all positions of KV head 0, then of head 1, …
//! (`[head][position][head_dim]`), and the values the same way. Attention for one head then
//! reads one contiguous run, which the hardware prefetcher streams; position-major rows made
//! it read `head_dim` values every `kv_dim`, and decode's attention ran at half the speed of
//! the weights. The capacity grows by doubling up to the context (reserving the whole context
//! up front would cost gigabytes for 4k-context models that mostly see short prompts); a
//! growth re-lays the heads out once.
//!
//! f16 halves the cache's memory and the bytes attention reads per decoded token, which grow
//! with the context (at 4096 positions the 2B4T shape reads 630 MB of f32 cache per token,
//! half as much as its weights). Values are rounded to nearest even once, when stored. It is
//! not the default because it moves logits by more than the 0.1 that the transformers
//! reference checks allow on the small fixture models (0.11–0.18).

use std::str::FromStr;

use bitnet_kernels::{ops, Runtime};

/// The element type of a KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvType {
    #[default]
    F32,
    F16,
}

impl KvType {
    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
        }
    }

    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }
}

impl FromStr for KvType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(KvType::F32),
            "f16" => Ok(KvType::F16),
            _ => Err(format!("unknown KV cache type {s:?} (expected f32 or f16)")),
        }
    }
}

pub struct KvCache {
    n_head_kv: usize,
    head_dim: usize,
    n_ctx: usize,
    len: usize,
    layers: Vec<LayerCache>,
}

/// One layer: `cap` positions per head, the first `filled` of them written.
struct LayerCache {
    cap: usize,
    filled: usize,
    keys: Buf,
    values: Buf,
}

enum Buf {
    F32(Vec<f32>),
    /// Little-endian f16, two bytes per value (the layout the kernels' f16 rows take).
    F16(Vec<u8>),
}

/// A contiguous run of cached values (one head's keys or values).
#[derive(Clone, Copy, Debug)]
pub enum KvRun<'a> {
    F32(&'a [f32]),
    /// Little-endian f16 bytes.
    F16(&'a [u8]),
}

#[cfg(test)]
impl KvRun<'_> {
    /// The values in f32 (exact for both types).
    pub fn to_f32(self) -> Vec<f32> {
        match self {
            KvRun::F32(x) => x.to_vec(),
            KvRun::F16(x) => x
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }
}

impl Buf {
    fn new(t: KvType, n: usize) -> Buf {
        match t {
            KvType::F32 => Buf::F32(vec![0.0; n]),
            KvType::F16 => Buf::F16(vec![0; 2 * n]),
        }
    }

    fn len(&self) -> usize {
        match self {
            Buf::F32(b) => b.len(),
            Buf::F16(b) => b.len() / 2,
        }
    }

    fn kind(&self) -> KvType {
        match self {
            Buf::F32(_) => KvType::F32,
            Buf::F16(_) => KvType::F16,
        }
    }

    fn store(&mut self, rt: &Runtime, at: usize, src: &[f32]) {
        match self {
            Buf::F32(b) => b[at..at + src.len()].copy_from_slice(src),
            Buf::F16(b) => ops::f32_to_f16(rt, src, &mut b[2 * at..2 * (at + src.len())]),
        }
    }

    fn run(&self, at: usize, n: usize) -> KvRun<'_> {
        match self {
            Buf::F32(b) => KvRun::F32(&b[at..at + n]),
            Buf::F16(b) => KvRun::F16(&b[2 * at..2 * (at + n)]),
        }
    }

    /// Copies `n` values from `from` to `to < from` (regions may overlap).
    fn move_down(&mut self, from: usize, to: usize, n: usize) {
        match self {
            Buf::F32(b) => b.copy_within(from..from + n, to),
            Buf::F16(b) => b.copy_within(2 * from..2 * (from + n), 2 * to),
        }
    }

    /// Applies `f` to `n` values from `at`, in f32 (an f16 run is widened, then rounded back
    /// to nearest even as a store rounds it).
    fn map(&mut self, at: usize, n: usize, f: &dyn Fn(&mut [f32])) {
        match self {
            Buf::F32(b) => f(&mut b[at..at + n]),
            Buf::F16(b) => {
                let run = &mut b[2 * at..2 * (at + n)];
                let mut x: Vec<f32> = run
                    .chunks_exact(2)
                    .map(|v| half::f16::from_le_bytes([v[0], v[1]]).to_f32())
                    .collect();
                f(&mut x);
                for (v, y) in run.chunks_exact_mut(2).zip(x) {
                    v.copy_from_slice(&half::f16::from_f32(y).to_le_bytes());
                }
            }
        }
    }

    /// The same heads with `cap` positions each instead of `old_cap`, the first `filled`
    /// of each kept.
    fn relayout(&self, heads: usize, hd: usize, old_cap: usize, cap: usize, filled: usize) -> Buf {
        fn copy<T: Copy>(
            old: &[T],
            new: &mut [T],
            heads: usize,
            hd: usize,
            caps: (usize, usize),
            n: usize,
        ) {
            for h in 0..heads {
                new[h * caps.1 * hd..][..n * hd].copy_from_slice(&old[h * caps.0 * hd..][..n * hd]);
            }
        }
        let mut new = Buf::new(self.kind(), heads * cap * hd);
        match (self, &mut new) {
            (Buf::F32(o), Buf::F32(n)) => copy(o, n, heads, hd, (old_cap, cap), filled),
            (Buf::F16(o), Buf::F16(n)) => copy(o, n, heads, 2 * hd, (old_cap, cap), filled),
            _ => unreachable!("a buffer keeps its type"),
        }
        new
    }
}

/// The keys and values of one layer, positions `0..n`, head by head.
pub struct LayerKv<'a> {
    keys: &'a Buf,
    values: &'a Buf,
    cap: usize,
    head_dim: usize,
    n: usize,
}

impl<'a> LayerKv<'a> {
    /// Keys of KV head `h`: `n · head_dim` values, position after position.
    pub fn keys(&self, h: usize) -> KvRun<'a> {
        self.keys
            .run(h * self.cap * self.head_dim, self.n * self.head_dim)
    }

    /// Values of KV head `h`, laid out as [`LayerKv::keys`].
    pub fn values(&self, h: usize) -> KvRun<'a> {
        self.values
            .run(h * self.cap * self.head_dim, self.n * self.head_dim)
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// Smallest capacity allocated, in positions.
const MIN_CAP: usize = 16;

impl KvCache {
    pub fn new(
        kind: KvType,
        n_layer: usize,
        n_head_kv: usize,
        head_dim: usize,
        n_ctx: usize,
    ) -> Self {
        let empty = || LayerCache {
            cap: 0,
            filled: 0,
            keys: Buf::new(kind, 0),
            values: Buf::new(kind, 0),
        };
        KvCache {
            n_head_kv,
            head_dim,
            n_ctx,
            len: 0,
            layers: (0..n_layer).map(|_| empty()).collect(),
        }
    }

    /// Number of positions stored (equal in every layer once a forward pass completes).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Appends the keys and values (`n · kv_dim` each, position-major as the projections
    /// produce them) of `n` new positions to one layer. The layer must hold exactly `len()`
    /// positions before the call, and `len() + n <= n_ctx()`.
    pub fn append(&mut self, rt: &Runtime, layer: usize, k: &[f32], v: &[f32]) {
        let (hd, kvd) = (self.head_dim, self.kv_dim());
        debug_assert_eq!(k.len(), v.len());
        debug_assert_eq!(k.len() % kvd, 0);
        let n = k.len() / kvd;
        let lc = &mut self.layers[layer];
        debug_assert_eq!(lc.filled, self.len);
        let need = lc.filled + n;
        if need > lc.cap {
            let cap = (lc.cap * 2)
                .max(need)
                .max(MIN_CAP)
                .min(self.n_ctx.max(need));
            lc.grow(self.n_head_kv, hd, cap);
        }
        for (t, (kr, vr)) in k.chunks_exact(kvd).zip(v.chunks_exact(kvd)).enumerate() {
            let pos = lc.filled + t;
            for h in 0..self.n_head_kv {
                let at = (h * lc.cap + pos) * hd;
                lc.keys.store(rt, at, &kr[h * hd..(h + 1) * hd]);
                lc.values.store(rt, at, &vr[h * hd..(h + 1) * hd]);
            }
        }
        lc.filled = need;
    }

    /// Marks `n` positions appended to every layer as committed.
    pub fn commit(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.len <= self.n_ctx);
    }

    /// Keys and values of one layer, including positions appended but not yet committed.
    pub fn layer(&self, layer: usize) -> LayerKv<'_> {
        let lc = &self.layers[layer];
        LayerKv {
            keys: &lc.keys,
            values: &lc.values,
            cap: lc.cap,
            head_dim: self.head_dim,
            n: lc.filled,
        }
    }

    /// Forgets every position from `n` on (no-op when `n >= len`). Also drops positions
    /// appended by a forward pass that failed before committing.
    pub fn truncate(&mut self, n: usize) {
        self.len = n.min(self.len);
        for lc in &mut self.layers {
            lc.filled = self.len;
        }
    }

    /// Context shift (llama.cpp's): drops positions `keep..keep + discard` and moves the ones
    /// after them down by `discard`. `rotate_back` turns a run of whole keys (head after head
    /// of `head_dim` values) from their old positions to their new ones, so the cache reads as
    /// if the kept tokens had been at their new positions all along, without evaluating them
    /// again. Values carry no position and move as they are.
    pub fn shift(&mut self, keep: usize, discard: usize, rotate_back: &dyn Fn(&mut [f32])) {
        let discard = discard.min(self.len.saturating_sub(keep));
        if discard == 0 {
            return;
        }
        let (hd, moved) = (self.head_dim, self.len - keep - discard);
        for lc in &mut self.layers {
            for h in 0..self.n_head_kv {
                let base = h * lc.cap * hd;
                let (from, to) = (base + (keep + discard) * hd, base + keep * hd);
                lc.values.move_down(from, to, moved * hd);
                lc.keys.move_down(from, to, moved * hd);
                lc.keys.map(to, moved * hd, rotate_back);
            }
            lc.filled = self.len - discard;
        }
        self.len -= discard;
    }

    /// Bytes currently held (for reporting).
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|lc| (lc.keys.len() + lc.values.len()) * lc.keys.kind().bytes())
            .sum()
    }
}

impl LayerCache {
    /// Re-lays both buffers out with `cap` positions per head, keeping the filled ones.
    fn grow(&mut self, n_head: usize, hd: usize, cap: usize) {
        self.keys = self.keys.relayout(n_head, hd, self.cap, cap, self.filled);
        self.values = self.values.relayout(n_head, hd, self.cap, cap, self.filled);
        self.cap = cap;
    }
}

#[cfg(test)]
#[path = "kv_cache_tests.rs"]
mod tests;
