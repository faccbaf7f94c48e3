//! Shared helpers for the converter tests: fixture paths, an independent reading of the
//! safetensors inputs, and building modified checkpoints in temporary directories.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitnet_formats::codec::{decode_ternary, I2sLayout, TernaryFormat};
use bitnet_formats::GgufFile;
use bitnet_tools::convert::{convert, ConvertOptions, ConvertReport, WeightType};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn tiny_dir() -> PathBuf {
    repo().join("models/tiny-bitnet-b1.58")
}

pub fn llama_dir() -> PathBuf {
    repo().join("tests/fixtures/hf/hf1bitllm-llama-packed")
}

pub fn onebit_dir() -> PathBuf {
    repo().join("tests/fixtures/hf/1bitllm-bitnet-style")
}

pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
];

/// One tensor as stored in a safetensors file, read with the safetensors crate directly.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl RawTensor {
    /// Elements as f32 with a plain loop (bf16/f16/f32 only).
    pub fn floats(&self) -> Vec<f32> {
        match self.dtype {
            safetensors::Dtype::BF16 => self
                .data
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            safetensors::Dtype::F16 => self
                .data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            safetensors::Dtype::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            d => panic!("not a float tensor: {d:?}"),
        }
    }
}

pub fn read_safetensors(path: &Path) -> BTreeMap<String, RawTensor> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                RawTensor {
                    dtype: v.dtype(),
                    shape: v.shape().to_vec(),
                    data: v.data().to_vec(),
                },
            )
        })
        .collect()
}

pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, RawTensor>) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data).unwrap(),
            )
        })
        .collect();
    safetensors::tensor::serialize_to_file(views, None, path).unwrap();
}

/// The absmean rule written out plainly (docs/convert.md, 'Ternary values'): mean|W| summed
/// sequentially in f64, `s = 1/max(m, 1e-5)` in f32, codes `clamp(round_half_even(W·s))`, scale
/// `1/s`.
pub fn absmean_reference(w: &[f32]) -> (Vec<i8>, f32) {
    let mut sum = 0f64;
    for &x in w {
        sum += (x as f64).abs();
    }
    let m = ((sum / w.len() as f64) as f32).max(1e-5);
    let s = 1.0f32 / m;
    let codes = w
        .iter()
        .map(|&x| (x * s).round_ties_even().clamp(-1.0, 1.0) as i8)
        .collect();
    (codes, 1.0f32 / s)
}

/// Unpacks a transformers-packed u8 `[M/4, K]` weight with plain loops.
pub fn unpack_reference(packed: &[u8], packed_rows: usize, cols: usize) -> Vec<i8> {
    let rows = packed_rows * 4;
    let mut out = vec![0i8; rows * cols];
    for r in 0..packed_rows {
        for c in 0..cols {
            let b = packed[r * cols + c];
            for i in 0..4 {
                out[(i * packed_rows + r) * cols + c] = ((b >> (2 * i)) & 3) as i8 - 1;
            }
        }
    }
    out
}

pub fn copy_dir_files(from: &Path, to: &Path, names: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for n in names {
        let src = from.join(n);
        if src.exists() {
            std::fs::copy(&src, to.join(n)).unwrap();
        }
    }
}

pub fn run(dir: &Path, out: &Path, wt: WeightType, name: &str) -> ConvertReport {
    let mut opts = ConvertOptions::new(dir, out);
    opts.weight_type = wt;
    opts.name = Some(name.into());
    opts.force = true;
    convert(&opts, &mut |_| {}).unwrap_or_else(|e| panic!("converting {}: {e}", dir.display()))
}

/// Codes and scale of an I2_S (x86) tensor of the file.
pub fn i2s_tensor(file: &GgufFile, name: &str) -> (Vec<i8>, f32) {
    let t = file
        .tensor(name)
        .unwrap_or_else(|| panic!("no tensor {name}"));
    let (cols, rows) = (t.ne[0] as usize, t.ne[1] as usize);
    let tt = decode_ternary(
        &TernaryFormat::I2s(I2sLayout::X86),
        file.tensor_data(t),
        rows,
        cols,
    )
    .unwrap();
    let scale = tt.per_tensor_scale().unwrap();
    (tt.codes, scale)
}

/// Row-major f32 values of an F32 tensor.
pub fn f32_tensor(file: &GgufFile, name: &str) -> Vec<f32> {
    let t = file.tensor(name).unwrap();
    file.tensor_data(t)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub const PROJECTIONS: &[(&str, &str)] = &[
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Files left in a directory other than the given ones (temporary files must not survive).
pub fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}
