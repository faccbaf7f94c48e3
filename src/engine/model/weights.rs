//! The model's tensors, prepared once at load time for the kernels.
//!
//! Ternary projections become `TernaryMatrix` (zero-copy when the file layout is the
//! kernel's); anything else (F32/F16 "ternary-scaled" matrices, embeddings, the head) becomes
//! a `DenseMatrix`. [`Weights`] holds the mapped file and, per tensor, its index there and
//! what was prepared (detached from the bytes); each use borrows the bytes again.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bitnet_formats::arch::{self, TensorSpec};
use bitnet_formats::codec::ternary_format_from_metadata;
use bitnet_formats::{GgufFile, TensorInfo, TensorType};
use bitnet_kernels::{
    dense_matmul, ternary_matmul, ternary_matmul_many, DenseMatrix, DetachedDense, DetachedTernary,
    QuantizedActs, Runtime, TernaryMatrix,
};

use super::config::ModelConfig;

/// The payload of the file's tensor number `index`.
fn payload(file: &GgufFile, index: usize) -> &[u8] {
    file.tensors()
        .get(index)
        .map_or(&[], |t| file.tensor_data(t))
}

/// A dense matrix of the file: its tensor's index and its checked shape.
pub struct Dense {
    tensor: usize,
    matrix: DetachedDense,
}

impl Dense {
    /// The matrix, reading `file`'s bytes (the file it was loaded from).
    pub fn matrix<'f>(&self, file: &'f GgufFile) -> DenseMatrix<'f> {
        self.matrix.attach(payload(file, self.tensor))
    }
}

/// One BitLinear projection: `y = W · dequant(quant_int8(x))`, times an optional per-tensor
/// scale (`blk.N.<proj>.scale`).
pub struct Linear {
    kind: LinearKind,
    tensor: usize,
    scale: Option<f32>,
    rows: usize,
}

enum LinearKind {
    Ternary(DetachedTernary),
    /// Weights stored as floats (already ternary-scaled by the converter). The activations are
    /// still quantised to int8 first, exactly as transformers' BitLinear does.
    Dense(DetachedDense),
}

impl Linear {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_ternary(&self) -> bool {
        matches!(self.kind, LinearKind::Ternary(_))
    }

    /// `out` gets `acts.n_tokens · rows` values. `dequant` is scratch for the dense path.
    pub fn forward(
        &self,
        rt: &Runtime,
        file: &GgufFile,
        acts: &QuantizedActs,
        dequant: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let bytes = payload(file, self.tensor);
        match &self.kind {
            LinearKind::Ternary(w) => ternary_matmul(rt, &w.attach(bytes), acts, out),
            LinearKind::Dense(w) => {
                dequant.clear();
                for t in 0..acts.n_tokens {
                    let s = acts.scale[t];
                    dequant.extend(acts.q[t * acts.k..][..acts.k].iter().map(|&q| q as f32 / s));
                }
                dense_matmul(rt, &w.attach(bytes), dequant, acts.n_tokens, out);
            }
        }
        if let Some(s) = self.scale {
            out.iter_mut().for_each(|v| *v *= s);
        }
    }
}

/// Several projections of the same activations (q/k/v, gate/up): the ternary ones run in one
/// parallel region of the kernel pool, the others one by one. The same results as calling
/// [`Linear::forward`] on each.
pub fn forward_many(
    rt: &Runtime,
    file: &GgufFile,
    jobs: &mut [(&Linear, &mut [f32])],
    acts: &QuantizedActs,
    dequant: &mut Vec<f32>,
) {
    let mut matrices: Vec<TernaryMatrix> = Vec::with_capacity(jobs.len());
    let mut outs = Vec::with_capacity(jobs.len());
    for (lin, out) in jobs.iter_mut() {
        match &lin.kind {
            LinearKind::Ternary(w) => {
                matrices.push(w.attach(payload(file, lin.tensor)));
                outs.push(&mut **out);
            }
            LinearKind::Dense(_) => lin.forward(rt, file, acts, dequant, out),
        }
    }
    let mut ternary: Vec<_> = matrices.iter().zip(outs).collect();
    ternary_matmul_many(rt, &mut ternary, acts);
    for (lin, out) in jobs.iter_mut() {
        if let (LinearKind::Ternary(_), Some(s)) = (&lin.kind, lin.scale) {
            out.iter_mut().for_each(|v| *v *= s);
        }
    }
}

pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub attn_sub_norm: Option<Vec<f32>>,
    pub wo: Linear,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Linear,
    pub w_up: Linear,
    pub ffn_sub_norm: Option<Vec<f32>>,
    pub w_down: Linear,
}

pub struct Weights {
    file: Arc<GgufFile>,
    token_embd: Dense,
    pub output_norm: Vec<f32>,
    /// `None`: the head is `token_embd` (tied).
    output: Option<Dense>,
    /// The head re-quantised in memory (`--head-type`), used instead of the file's.
    repacked_head: Option<super::head_repack::RepackedHead>,
    pub layers: Vec<LayerWeights>,
}

impl Weights {
    /// Prepares every tensor the graph needs. The config was validated against the shapes.
    pub fn load(rt: &Runtime, file: Arc<GgufFile>, cfg: &ModelConfig) -> Result<Self> {
        let f = &*file;
        let norm = |name: &str| vector(rt, f, name);
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let sub_norm = |s: &TensorSpec| -> Result<Option<Vec<f32>>> {
                if cfg.sub_norms {
                    Ok(Some(norm(&s.layer_name(l))?))
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                attn_norm: norm(&arch::ATTN_NORM.layer_name(l))?,
                wq: linear(rt, f, l, &arch::ATTN_Q)?,
                wk: linear(rt, f, l, &arch::ATTN_K)?,
                wv: linear(rt, f, l, &arch::ATTN_V)?,
                attn_sub_norm: sub_norm(&arch::ATTN_SUB_NORM)?,
                wo: linear(rt, f, l, &arch::ATTN_OUTPUT)?,
                ffn_norm: norm(&arch::FFN_NORM.layer_name(l))?,
                w_gate: linear(rt, f, l, &arch::FFN_GATE)?,
                w_up: linear(rt, f, l, &arch::FFN_UP)?,
                ffn_sub_norm: sub_norm(&arch::FFN_SUB_NORM)?,
                w_down: linear(rt, f, l, &arch::FFN_DOWN)?,
            });
        }
        Ok(Weights {
            token_embd: dense(f, &arch::TOKEN_EMBD.global_name())?,
            output_norm: norm(&arch::OUTPUT_NORM.global_name())?,
            output: if cfg.tied_output {
                None
            } else {
                Some(dense(f, &arch::OUTPUT.global_name())?)
            },
            layers,
            file,
            repacked_head: None,
        })
    }

    /// Re-quantises the head in memory to `ty` (Q8_0 or Q6_K); see `head_repack`.
    pub fn repack_head(&mut self, rt: &Runtime, ty: bitnet_formats::TensorType) -> Result<()> {
        let packed = super::head_repack::repack_head(rt, &self.head(), ty)?;
        self.repacked_head = Some(packed);
        Ok(())
    }

    /// The file the weights read.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The embedding matrix.
    pub fn token_embd(&self) -> DenseMatrix<'_> {
        self.token_embd.matrix(&self.file)
    }

    /// The LM head: `output.weight`, or the embedding when tied.
    pub fn head(&self) -> DenseMatrix<'_> {
        if let Some(h) = &self.repacked_head {
            return h.matrix();
        }
        self.output
            .as_ref()
            .unwrap_or(&self.token_embd)
            .matrix(&self.file)
    }
}

/// The tensor called `name` and its index in the file.
fn tensor<'f>(file: &'f GgufFile, name: &str) -> Result<(usize, &'f TensorInfo)> {
    file.tensors()
        .iter()
        .position(|t| t.name == name)
        .map(|i| (i, &file.tensors()[i]))
        .with_context(|| format!("{}: tensor '{name}' is missing", file.path().display()))
}

fn dims(t: &TensorInfo) -> (usize, usize) {
    (t.rows() as usize, t.cols() as usize)
}

fn dense(file: &GgufFile, name: &str) -> Result<Dense> {
    let (index, t) = tensor(file, name)?;
    dense_at(file, index, t)
}

fn dense_at(file: &GgufFile, index: usize, t: &TensorInfo) -> Result<Dense> {
    let (rows, cols) = dims(t);
    let matrix = DenseMatrix::new(t.ty, file.tensor_data(t), rows, cols).with_context(|| {
        format!(
            "{}: tensor '{}' ({})",
            file.path().display(),
            t.name,
            t.ty.name()
        )
    })?;
    Ok(Dense {
        tensor: index,
        matrix: matrix.detach(),
    })
}

/// A 1-D tensor (norm weights) as f32, whatever its stored type.
fn vector(rt: &Runtime, file: &GgufFile, name: &str) -> Result<Vec<f32>> {
    let (_, t) = tensor(file, name)?;
    let n = t.n_elements() as usize;
    let m = DenseMatrix::new(t.ty, file.tensor_data(t), 1, n).with_context(|| {
        format!(
            "{}: tensor '{name}' ({})",
            file.path().display(),
            t.ty.name()
        )
    })?;
    let mut out = vec![0.0; n];
    m.row_to_f32(rt, 0, &mut out);
    Ok(out)
}

fn linear(rt: &Runtime, file: &GgufFile, layer: usize, proj: &TensorSpec) -> Result<Linear> {
    let name = proj.layer_name(layer);
    let (index, t) = tensor(file, &name)?;
    let (rows, cols) = dims(t);
    let path = file.path().display();
    // Q2_0 without code 11 (+2d) is ternary with 64-element scales; with it, or with K not
    // a whole number of 256-blocks, it is dequantised like any other block type.
    let ternary_q2 = t.ty == TensorType::Q2_0
        && cols.is_multiple_of(256)
        && bitnet_formats::codec::q2::q2_0_is_ternary(file.tensor_data(t));
    let kind = if t.ty.is_ternary() || ternary_q2 {
        // The layout (I2_S x86/ARM) or TL tile parameters come from our metadata keys, with
        // the published tools' defaults for foreign files.
        let fmt = ternary_format_from_metadata(file.metadata(), &name, t.ty, rows, cols)
            .with_context(|| format!("{path}: tensor '{name}'"))?;
        LinearKind::Ternary(
            TernaryMatrix::new(&fmt, file.tensor_data(t), rows, cols)
                .with_context(|| format!("{path}: tensor '{name}' ({})", t.ty.name()))?
                .detach(),
        )
    } else {
        LinearKind::Dense(dense_at(file, index, t)?.matrix)
    };
    let scale = match file.tensor(&proj.scale_name(layer)) {
        None => None,
        Some(s) if s.n_elements() == 1 => Some(vector(rt, file, &s.name)?[0]),
        Some(s) => bail!(
            "{path}: tensor '{}' should hold one value, has {}",
            s.name,
            s.n_elements()
        ),
    };
    Ok(Linear {
        kind,
        tensor: index,
        scale,
        rows,
    })
}
