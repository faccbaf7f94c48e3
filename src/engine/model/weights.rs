//! The model's tensors, prepared once at load time for the kernels.
//!
//! Ternary projections become `TernaryMatrix` (zero-copy when the file layout is the
//! kernel's); anything else (F32/F16 "ternary-scaled" matrices, embeddings, the head) becomes
//! a `DenseMatrix`. Both borrow from the mapped file.

use anyhow::{bail, Context, Result};
use bitnet_formats::arch::{self, TensorSpec};
use bitnet_formats::codec::ternary_format_from_metadata;
use bitnet_formats::{GgufFile, TensorInfo};
use bitnet_kernels::{
    dense_matmul, ternary_matmul, ternary_matmul_many, DenseMatrix, QuantizedActs, TernaryMatrix,
};

use super::config::ModelConfig;

/// One BitLinear projection: `y = W · dequant(quant_int8(x))`, times an optional per-tensor
/// scale (`blk.N.<proj>.scale`).
pub struct Linear<'a> {
    kind: LinearKind<'a>,
    scale: Option<f32>,
    rows: usize,
}

enum LinearKind<'a> {
    Ternary(TernaryMatrix<'a>),
    /// Weights stored as floats (already ternary-scaled by the converter). The activations are
    /// still quantised to int8 first, exactly as transformers' BitLinear does.
    Dense(DenseMatrix<'a>),
}

impl<'a> Linear<'a> {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_ternary(&self) -> bool {
        matches!(self.kind, LinearKind::Ternary(_))
    }

    /// `out` gets `acts.n_tokens · rows` values. `dequant` is scratch for the dense path.
    pub fn forward(&self, acts: &QuantizedActs, dequant: &mut Vec<f32>, out: &mut [f32]) {
        match &self.kind {
            LinearKind::Ternary(w) => ternary_matmul(w, acts, out),
            LinearKind::Dense(w) => {
                dequant.clear();
                for t in 0..acts.n_tokens {
                    let s = acts.scale[t];
                    dequant.extend(acts.q[t * acts.k..][..acts.k].iter().map(|&q| q as f32 / s));
                }
                dense_matmul(w, dequant, acts.n_tokens, out);
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
    jobs: &mut [(&Linear, &mut [f32])],
    acts: &QuantizedActs,
    dequant: &mut Vec<f32>,
) {
    let mut ternary = Vec::with_capacity(jobs.len());
    for (lin, out) in jobs.iter_mut() {
        match &lin.kind {
            LinearKind::Ternary(w) => ternary.push((w, &mut **out)),
            LinearKind::Dense(_) => lin.forward(acts, dequant, out),
        }
    }
    ternary_matmul_many(&mut ternary, acts);
    for (lin, out) in jobs.iter_mut() {
        if let (LinearKind::Ternary(_), Some(s)) = (&lin.kind, lin.scale) {
            out.iter_mut().for_each(|v| *v *= s);
        }
    }
}

pub struct LayerWeights<'a> {
    pub attn_norm: Vec<f32>,
    pub wq: Linear<'a>,
    pub wk: Linear<'a>,
    pub wv: Linear<'a>,
    pub attn_sub_norm: Option<Vec<f32>>,
    pub wo: Linear<'a>,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Linear<'a>,
    pub w_up: Linear<'a>,
    pub ffn_sub_norm: Option<Vec<f32>>,
    pub w_down: Linear<'a>,
}

pub struct Weights<'a> {
    pub token_embd: DenseMatrix<'a>,
    pub output_norm: Vec<f32>,
    /// `None`: the head is `token_embd` (tied).
    pub output: Option<DenseMatrix<'a>>,
    pub layers: Vec<LayerWeights<'a>>,
}

impl<'a> Weights<'a> {
    /// Prepares every tensor the graph needs. The config was validated against the shapes.
    pub fn load(file: &'a GgufFile, cfg: &ModelConfig) -> Result<Self> {
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let sub_norm = |s: &TensorSpec| -> Result<Option<Vec<f32>>> {
                if cfg.sub_norms {
                    Ok(Some(vector(file, &s.layer_name(l))?))
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                attn_norm: vector(file, &arch::ATTN_NORM.layer_name(l))?,
                wq: linear(file, l, &arch::ATTN_Q)?,
                wk: linear(file, l, &arch::ATTN_K)?,
                wv: linear(file, l, &arch::ATTN_V)?,
                attn_sub_norm: sub_norm(&arch::ATTN_SUB_NORM)?,
                wo: linear(file, l, &arch::ATTN_OUTPUT)?,
                ffn_norm: vector(file, &arch::FFN_NORM.layer_name(l))?,
                w_gate: linear(file, l, &arch::FFN_GATE)?,
                w_up: linear(file, l, &arch::FFN_UP)?,
                ffn_sub_norm: sub_norm(&arch::FFN_SUB_NORM)?,
                w_down: linear(file, l, &arch::FFN_DOWN)?,
            });
        }
        Ok(Weights {
            token_embd: dense(file, tensor(file, &arch::TOKEN_EMBD.global_name())?)?,
            output_norm: vector(file, &arch::OUTPUT_NORM.global_name())?,
            output: if cfg.tied_output {
                None
            } else {
                Some(dense(file, tensor(file, &arch::OUTPUT.global_name())?)?)
            },
            layers,
        })
    }

    /// The LM head: `output.weight`, or the embedding when tied.
    pub fn head(&self) -> &DenseMatrix<'a> {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }
}

fn tensor<'f>(file: &'f GgufFile, name: &str) -> Result<&'f TensorInfo> {
    file.tensor(name)
        .with_context(|| format!("{}: tensor '{name}' is missing", file.path().display()))
}

fn dims(t: &TensorInfo) -> (usize, usize) {
    (t.rows() as usize, t.cols() as usize)
}

fn dense<'f>(file: &'f GgufFile, t: &TensorInfo) -> Result<DenseMatrix<'f>> {
    let (rows, cols) = dims(t);
    DenseMatrix::new(t.ty, file.tensor_data(t), rows, cols).with_context(|| {
        format!(
            "{}: tensor '{}' ({})",
            file.path().display(),
            t.name,
            t.ty.name()
        )
    })
}

/// A 1-D tensor (norm weights) as f32, whatever its stored type.
fn vector(file: &GgufFile, name: &str) -> Result<Vec<f32>> {
    let t = tensor(file, name)?;
    let n = t.n_elements() as usize;
    let m = DenseMatrix::new(t.ty, file.tensor_data(t), 1, n).with_context(|| {
        format!(
            "{}: tensor '{name}' ({})",
            file.path().display(),
            t.ty.name()
        )
    })?;
    let mut out = vec![0.0; n];
    m.row_to_f32(0, &mut out);
    Ok(out)
}

fn linear<'f>(file: &'f GgufFile, layer: usize, proj: &TensorSpec) -> Result<Linear<'f>> {
    let name = proj.layer_name(layer);
    let t = tensor(file, &name)?;
    let (rows, cols) = dims(t);
    let path = file.path().display();
    let kind = if t.ty.is_ternary() {
        // The layout (I2_S x86/ARM) or TL tile parameters come from our metadata keys, with
        // the published tools' defaults for foreign files.
        let fmt = ternary_format_from_metadata(file.metadata(), &name, t.ty, rows, cols)
            .with_context(|| format!("{path}: tensor '{name}'"))?;
        LinearKind::Ternary(
            TernaryMatrix::new(&fmt, file.tensor_data(t), rows, cols)
                .with_context(|| format!("{path}: tensor '{name}' ({})", t.ty.name()))?,
        )
    } else {
        LinearKind::Dense(dense(file, t)?)
    };
    let scale = match file.tensor(&proj.scale_name(layer)) {
        None => None,
        Some(s) if s.n_elements() == 1 => Some(vector(file, &s.name)?[0]),
        Some(s) => bail!(
            "{path}: tensor '{}' should hold one value, has {}",
            s.name,
            s.n_elements()
        ),
    };
    Ok(Linear { kind, scale, rows })
}
