//! Keys and values of the tokens a session has already processed, per layer, in f32.
//!
//! Rows are `kv_dim = n_head_kv · head_dim` wide and stored position after position, so the
//! attention for one head reads a strided column block. The buffers grow with the sequence
//! (reserving the whole context up front would cost gigabytes for 4k-context models that
//! mostly see short prompts).

pub struct KvCache {
    kv_dim: usize,
    n_ctx: usize,
    len: usize,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl KvCache {
    pub fn new(n_layer: usize, kv_dim: usize, n_ctx: usize) -> Self {
        KvCache {
            kv_dim,
            n_ctx,
            len: 0,
            keys: vec![Vec::new(); n_layer],
            values: vec![Vec::new(); n_layer],
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
        self.kv_dim
    }

    /// Appends the keys and values (`n · kv_dim` each) of `n` new positions to one layer.
    /// The layer must hold exactly `len()` positions before the call.
    pub fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        debug_assert_eq!(k.len(), v.len());
        debug_assert_eq!(k.len() % self.kv_dim, 0);
        debug_assert_eq!(self.keys[layer].len(), self.len * self.kv_dim);
        self.keys[layer].extend_from_slice(k);
        self.values[layer].extend_from_slice(v);
    }

    /// Marks `n` positions appended to every layer as committed.
    pub fn commit(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.len <= self.n_ctx);
    }

    /// Keys and values of one layer, including positions appended but not yet committed.
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        (&self.keys[layer], &self.values[layer])
    }

    /// Forgets every position from `n` on (no-op when `n >= len`). Also drops positions
    /// appended by a forward pass that failed before committing.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len = n;
        for buf in self.keys.iter_mut().chain(self.values.iter_mut()) {
            buf.truncate(n * self.kv_dim);
        }
    }

    /// Bytes currently held (for reporting).
    pub fn bytes(&self) -> usize {
        self.keys
            .iter()
            .chain(self.values.iter())
            .map(|b| b.len() * 4)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_commit_truncate() {
        let mut c = KvCache::new(2, 3, 8);
        for l in 0..2 {
            c.append(l, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[0.0; 6]);
        }
        c.commit(2);
        assert_eq!(c.len(), 2);
        assert_eq!(c.layer(1).0, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        c.truncate(1);
        assert_eq!(c.len(), 1);
        assert_eq!(c.layer(0).0, &[1.0, 2.0, 3.0]);
        // A failed pass leaves uncommitted rows behind; truncate(len) removes them.
        c.append(0, &[9.0; 3], &[9.0; 3]);
        c.truncate(c.len());
        assert_eq!(c.layer(0).0.len(), 3);
    }
}
