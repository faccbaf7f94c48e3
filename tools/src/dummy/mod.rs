//! Random ternary models of real shapes, so that performance can be measured without
//! downloading a checkpoint. The tensor list, names and shapes come from the architecture
//! table (`bitnet_formats::arch`); only the values are random.

mod payload;
mod tokenizer;

use std::path::PathBuf;

use bitnet_formats::arch::{parse_layer_name, Arch, Dims, HParam, Role, TensorSpec, LAYER_TENSORS};
use bitnet_formats::codec::{self, I2sLayout, TernaryFormat};
use bitnet_formats::{Dialect, GgufError, GgufWriter, TensorSource, TensorType};

use payload::{f16_noise, ternary_as_f16, ternary_payload, tl_params};

/// Hyper-parameters of a known model shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub arch: Arch,
    pub name: &'static str,
    pub vocab: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub layers: usize,
    pub heads: usize,
    pub heads_kv: usize,
    pub ctx: usize,
    pub rope_base: f32,
    pub bos: u32,
    pub eos: u32,
}

/// `--shape` spellings and the shapes they name.
const SHAPES: &[(&[&str], Shape)] = &[
    (
        &["2b4t", "2b"],
        Shape {
            arch: Arch::BitnetB158,
            name: "dummy-bitnet-b1.58-2B-4T",
            vocab: 128256,
            hidden: 2560,
            ffn: 6912,
            layers: 30,
            heads: 20,
            heads_kv: 5,
            ctx: 4096,
            rope_base: 500000.0,
            bos: 128000,
            eos: 128001,
        },
    ),
    (
        &["large", "0.7b"],
        Shape {
            arch: Arch::Bitnet,
            name: "dummy-bitnet_b1_58-large",
            vocab: 32002,
            hidden: 1536,
            ffn: 4096,
            layers: 24,
            heads: 16,
            heads_kv: 16,
            ctx: 2048,
            rope_base: 10000.0,
            bos: 1,
            eos: 2,
        },
    ),
    (
        &["3b"],
        Shape {
            arch: Arch::Bitnet,
            name: "dummy-bitnet_b1_58-3B",
            vocab: 32002,
            hidden: 3200,
            ffn: 8640,
            layers: 26,
            heads: 32,
            heads_kv: 32,
            ctx: 2048,
            rope_base: 10000.0,
            bos: 1,
            eos: 2,
        },
    ),
    (
        &["8b"],
        Shape {
            arch: Arch::Llama,
            name: "dummy-Llama3-8B-1.58",
            vocab: 128256,
            hidden: 4096,
            ffn: 14336,
            layers: 32,
            heads: 32,
            heads_kv: 8,
            ctx: 8192,
            rope_base: 500000.0,
            bos: 128000,
            eos: 128001,
        },
    ),
    (
        &["tiny"],
        Shape {
            arch: Arch::BitnetB158,
            name: "dummy-tiny-bitnet-b1.58",
            vocab: 4096,
            hidden: 256,
            ffn: 768,
            layers: 6,
            heads: 8,
            heads_kv: 4,
            ctx: 256,
            rope_base: 500000.0,
            bos: 4080,
            eos: 4081,
        },
    ),
];

impl Shape {
    /// Looks up a `--shape` value (case-insensitive).
    pub fn named(name: &str) -> Result<Shape, DummyError> {
        let lower = name.to_ascii_lowercase();
        SHAPES
            .iter()
            .find(|(names, _)| names.contains(&lower.as_str()))
            .map(|(_, s)| *s)
            .ok_or_else(|| DummyError::UnknownShape(name.to_string()))
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    fn dims(&self) -> Dims {
        Dims {
            n_embd: self.hidden,
            n_vocab: self.vocab,
            q_dim: self.heads * self.head_dim(),
            kv_dim: self.heads_kv * self.head_dim(),
            n_ff: self.ffn,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DummyError {
    #[error("unknown shape {0:?} (expected 2b4t, large, 3b, 8b or tiny)")]
    UnknownShape(String),
    #[error("unknown ternary type {0:?} (i2_s, i2_s-arm, tq1_0, tq2_0, tl1, tl2)")]
    UnknownType(String),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: GgufError },
    #[error("--type: {0}")]
    Dialect(String),
}

#[derive(Clone, Debug)]
pub struct DummyOptions {
    /// A [`Shape::named`] spelling.
    pub shape: String,
    /// i2_s, i2_s-arm, tq1_0, tq2_0, tl1 or tl2.
    pub ty: String,
    pub output: PathBuf,
    pub seed: u64,
    /// Type ids and architecture names (default: [`Dialect::default_for`] the type).
    pub dialect: Option<Dialect>,
}

#[derive(Clone, Debug)]
pub struct DummyReport {
    pub ty: TensorType,
    pub bytes: u64,
    /// Projections whose shape the ternary type cannot hold; they were stored as F16.
    pub f16_fallbacks: Vec<String>,
}

pub fn parse_ternary_type(s: &str) -> Result<(TensorType, Option<I2sLayout>), DummyError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "i2_s" | "i2s" => (TensorType::I2_S, Some(I2sLayout::X86)),
        "i2_s-arm" | "i2_s_arm" => (TensorType::I2_S, Some(I2sLayout::Arm)),
        "tq1_0" => (TensorType::TQ1_0, None),
        "tq2_0" => (TensorType::TQ2_0, None),
        "tl1" => (TensorType::TL1, None),
        "tl2" => (TensorType::TL2, None),
        _ => return Err(DummyError::UnknownType(s.to_string())),
    })
}

/// Writes a random model of `opts.shape` with its projections in `opts.ty`.
pub fn write_dummy(opts: &DummyOptions) -> Result<DummyReport, DummyError> {
    let sh = Shape::named(&opts.shape)?;
    let (ty, layout) = parse_ternary_type(&opts.ty)?;
    let write_err = |source| DummyError::Write {
        path: opts.output.clone(),
        source,
    };
    let dialect = opts.dialect.unwrap_or_else(|| Dialect::default_for(ty));
    if let Some(why) = dialect.refusal(ty) {
        return Err(DummyError::Dialect(why));
    }
    let mut w = GgufWriter::new(dialect);
    write_metadata(&mut w, &sh, ty, layout);
    let mut fallbacks = Vec::new();
    let dims = sh.dims();
    let with_output = !sh.arch.spec().tied_output;
    for (name, spec) in sh.arch.tensors(sh.layers, with_output) {
        let ne = spec.ne(&dims);
        let (ty, src) = match spec.role {
            Role::Norm | Role::SubNorm => (TensorType::F32, ones(&ne)),
            Role::Embedding => (TensorType::F16, noise(&ne, opts.seed)),
            Role::Output => (TensorType::F16, noise(&ne, opts.seed ^ 7)),
            Role::Ternary => {
                let seed = opts.seed ^ projection_seed(&name);
                let t = ternary_tensor(&mut w, &name, spec, &dims, (ty, layout), seed);
                if t.0 == TensorType::F16 {
                    fallbacks.push(name.clone());
                }
                t
            }
        };
        w.add_tensor(name, &ne, ty, src).map_err(write_err)?;
    }
    crate::output::write_gguf(w, &opts.output, &mut |_, _| {}).map_err(write_err)?;
    Ok(DummyReport {
        ty,
        bytes: std::fs::metadata(&opts.output).map_or(0, |m| m.len()),
        f16_fallbacks: fallbacks,
    })
}

/// Hyper-parameters, file type and tokenizer, with the architecture named as the writer's
/// dialect knows it (upstream knows the 2B4T graph only as `bitnet`, as `convert --type tq2_0`
/// writes it) and the activation in keys when the name no longer implies it.
fn write_metadata(w: &mut GgufWriter, sh: &Shape, ty: TensorType, layout: Option<I2sLayout>) {
    let a = sh.arch.name_in(w.dialect());
    w.set("general.architecture", a);
    if a != sh.arch.name() {
        if let bitnet_formats::arch::ActivationRule::Fixed(act) = sh.arch.spec().activation {
            for (key, value) in act.metadata(a) {
                w.set(key, value);
            }
        }
    }
    w.set("general.name", sh.name);
    let k = |hp: HParam| hp.key(a);
    w.set(k(HParam::VocabSize), sh.vocab as u32);
    w.set(k(HParam::ContextLength), sh.ctx as u32);
    w.set(k(HParam::EmbeddingLength), sh.hidden as u32);
    w.set(k(HParam::BlockCount), sh.layers as u32);
    w.set(k(HParam::FeedForwardLength), sh.ffn as u32);
    w.set(k(HParam::RopeDimensionCount), sh.head_dim() as u32);
    w.set(k(HParam::HeadCount), sh.heads as u32);
    w.set(k(HParam::HeadCountKv), sh.heads_kv as u32);
    w.set(k(HParam::RmsEpsilon), 1e-5f32);
    w.set(k(HParam::RopeFreqBase), sh.rope_base);
    let file_type: Option<u32> = match ty {
        TensorType::I2_S => Some(40),
        TensorType::TQ1_0 => Some(36),
        TensorType::TQ2_0 => Some(37),
        TensorType::TL1 => Some(38),
        TensorType::TL2 => Some(39),
        _ => None,
    };
    if let Some(ft) = file_type {
        w.set("general.file_type", ft);
    }
    w.set("general.quantization_version", 2u32);
    if let Some(l) = layout {
        codec::meta::set_i2s_layout(w.metadata_mut(), l);
    }
    tokenizer::write_tokenizer(w, sh.vocab, sh.bos, sh.eos);
}

/// Distinct per projection: the layer and the projection's index within it.
fn projection_seed(name: &str) -> u64 {
    let Some((layer, spec)) = parse_layer_name(name) else {
        return 0;
    };
    let index = LAYER_TENSORS
        .iter()
        .filter(|t| t.is_ternary())
        .position(|t| *t == spec)
        .unwrap_or(0);
    (layer as u64) << 32 | (index as u64) << 8
}

fn elements(ne: &[u64]) -> usize {
    ne.iter().product::<u64>() as usize
}

fn ones(ne: &[u64]) -> TensorSource<'static> {
    TensorSource::Owned(1f32.to_le_bytes().repeat(elements(ne)))
}

fn noise(ne: &[u64], seed: u64) -> TensorSource<'static> {
    let n = elements(ne);
    TensorSource::Lazy(Box::new(move || Ok(f16_noise(n, 0.05, seed))))
}

/// A projection in the requested ternary type, or as F16 when the type cannot hold its shape.
fn ternary_tensor(
    w: &mut GgufWriter,
    name: &str,
    spec: &TensorSpec,
    dims: &Dims,
    (ty, layout): (TensorType, Option<I2sLayout>),
    seed: u64,
) -> (TensorType, TensorSource<'static>) {
    let ne = spec.ne(dims);
    let (cols, rows) = (ne[0] as usize, ne[1] as usize);
    // Scale so that a row's output has roughly unit size for unit-RMS input.
    let s = 1.0 / ((cols as f32) * 2.0 / 3.0).sqrt();
    let fmt = match ty {
        TensorType::I2_S => TernaryFormat::I2s(layout.unwrap_or_default()),
        TensorType::TQ1_0 => TernaryFormat::Tq1_0,
        TensorType::TQ2_0 => TernaryFormat::Tq2_0,
        TensorType::TL1 => TernaryFormat::Tl1(tl_params(false, rows, cols)),
        _ => TernaryFormat::Tl2(tl_params(true, rows, cols)),
    };
    let fits = match fmt {
        TernaryFormat::Tq1_0 | TernaryFormat::Tq2_0 => cols % 256 == 0,
        TernaryFormat::I2s(_) => (rows * cols) % 128 == 0,
        _ => true,
    };
    if !fits {
        let data = ternary_as_f16(rows, cols, s, seed);
        return (TensorType::F16, TensorSource::Owned(data));
    }
    codec::meta::record_format(w.metadata_mut(), name, &fmt);
    let src = TensorSource::Lazy(Box::new(move || ternary_payload(&fmt, rows, cols, s, seed)));
    (ty, src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_shapes_and_types_are_errors() {
        assert!(matches!(
            Shape::named("nope"),
            Err(DummyError::UnknownShape(_))
        ));
        assert_eq!(Shape::named("2B").unwrap().layers, 30);
        assert!(parse_ternary_type("q4_0").is_err());
        assert!(parse_ternary_type("tq2_0").is_ok());
    }
}
