//! Keys and values of the tokens a session has already processed, per layer, in f32.
//!
//! Each layer stores its keys head by head: all positions of KV head 0, then of head 1, …
//! (`[head][position][head_dim]`), and the values the same way. Attention for one head then
//! reads one contiguous run, which the hardware prefetcher streams; position-major rows made
//! it read `head_dim` values every `kv_dim`, and decode's attention ran at half the speed of
//! the weights. The capacity grows by doubling up to the context (reserving the whole context
//! up front would cost gigabytes for 4k-context models that mostly see short prompts); a
//! growth re-lays the heads out once.

pub struct KvCache {
    n_head_kv: usize,
    head_dim: usize,
    n_ctx: usize,
    len: usize,
    layers: Vec<LayerCache>,
}

/// One layer: `cap` positions per head, the first `filled` of them written.
#[derive(Default)]
struct LayerCache {
    cap: usize,
    filled: usize,
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// The keys and values of one layer, positions `0..n`, head by head.
pub struct LayerKv<'a> {
    keys: &'a [f32],
    values: &'a [f32],
    cap: usize,
    head_dim: usize,
    n: usize,
}

impl<'a> LayerKv<'a> {
    /// Keys of KV head `h`: `n · head_dim` values, position after position.
    pub fn keys(&self, h: usize) -> &'a [f32] {
        &self.keys[h * self.cap * self.head_dim..][..self.n * self.head_dim]
    }

    /// Values of KV head `h`, laid out as [`LayerKv::keys`].
    pub fn values(&self, h: usize) -> &'a [f32] {
        &self.values[h * self.cap * self.head_dim..][..self.n * self.head_dim]
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.n
    }
}

/// Smallest capacity allocated, in positions.
const MIN_CAP: usize = 16;

impl KvCache {
    pub fn new(n_layer: usize, n_head_kv: usize, head_dim: usize, n_ctx: usize) -> Self {
        KvCache {
            n_head_kv,
            head_dim,
            n_ctx,
            len: 0,
            layers: (0..n_layer).map(|_| LayerCache::default()).collect(),
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
    pub fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
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
                lc.keys[at..at + hd].copy_from_slice(&kr[h * hd..(h + 1) * hd]);
                lc.values[at..at + hd].copy_from_slice(&vr[h * hd..(h + 1) * hd]);
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

    /// Bytes currently held (for reporting).
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|lc| (lc.keys.len() + lc.values.len()) * 4)
            .sum()
    }
}

impl LayerCache {
    /// Re-lays both buffers out with `cap` positions per head, keeping the filled ones.
    fn grow(&mut self, n_head: usize, hd: usize, cap: usize) {
        let relayout = |old: &[f32]| {
            let mut new = vec![0f32; n_head * cap * hd];
            for h in 0..n_head {
                let run = self.filled * hd;
                new[h * cap * hd..][..run].copy_from_slice(&old[h * self.cap * hd..][..run]);
            }
            new
        };
        self.keys = relayout(&self.keys);
        self.values = relayout(&self.values);
        self.cap = cap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key `(position, head, i)` of the test rows: distinct everywhere.
    fn key(pos: usize, h: usize, i: usize) -> f32 {
        (pos * 100 + h * 10 + i) as f32
    }

    fn rows(from: usize, n: usize, heads: usize, hd: usize) -> Vec<f32> {
        (from..from + n)
            .flat_map(|p| (0..heads).flat_map(move |h| (0..hd).map(move |i| key(p, h, i))))
            .collect()
    }

    #[test]
    fn heads_are_contiguous_across_growth_and_truncation() {
        let (heads, hd) = (3, 2);
        let mut c = KvCache::new(2, heads, hd, 100);
        // 40 positions in uneven steps: the capacity grows 16 → 32 → 64 on the way.
        let mut n = 0;
        for step in [1, 15, 1, 7, 16] {
            for l in 0..2 {
                let k = rows(n, step, heads, hd);
                let v: Vec<f32> = k.iter().map(|x| -x).collect();
                c.append(l, &k, &v);
            }
            c.commit(step);
            n += step;
        }
        assert_eq!(c.len(), 40);
        let kv = c.layer(1);
        assert_eq!(kv.len(), 40);
        for h in 0..heads {
            let want: Vec<f32> = (0..40)
                .flat_map(|p| (0..hd).map(move |i| key(p, h, i)))
                .collect();
            assert_eq!(kv.keys(h), &want[..], "head {h}");
            assert_eq!(kv.values(h)[5], -want[5]);
        }
        c.truncate(3);
        assert_eq!(
            c.layer(0).keys(2),
            &[
                key(0, 2, 0),
                key(0, 2, 1),
                key(1, 2, 0),
                key(1, 2, 1),
                key(2, 2, 0),
                key(2, 2, 1)
            ]
        );
        // A failed pass leaves uncommitted rows behind; truncate(len) removes them.
        c.append(0, &rows(3, 1, heads, hd), &rows(3, 1, heads, hd));
        assert_eq!(c.layer(0).len(), 4);
        c.truncate(c.len());
        assert_eq!(c.layer(0).len(), 3);
        // Appending after truncation overwrites the dropped positions.
        for l in 0..2 {
            c.append(l, &[7.0; 6], &[7.0; 6]);
        }
        c.commit(1);
        assert_eq!(&c.layer(1).keys(1)[6..8], &[7.0, 7.0]);
    }

    #[test]
    fn capacity_stops_at_the_context() {
        let mut c = KvCache::new(1, 1, 4, 20);
        c.append(0, &[1.0; 4 * 17], &[1.0; 4 * 17]);
        c.commit(17);
        c.append(0, &[2.0; 4 * 3], &[2.0; 4 * 3]);
        c.commit(3);
        assert_eq!(c.bytes(), 2 * 20 * 4 * 4);
        assert_eq!(c.layer(0).keys(0)[4 * 19], 2.0);
    }
}
