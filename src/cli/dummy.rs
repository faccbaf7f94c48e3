//! `bitnet-gguf dummy`: random ternary models of real shapes (docs/model.md, 'Known shapes'), so
//! that performance can be measured without downloading a checkpoint.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bitnet_formats::codec::{
    self, I2sLayout, TernaryFormat, TernaryScales, TernaryTensor, TlParams,
};
use bitnet_formats::{Dialect, GgufWriter, TensorSource, TensorType, Value, ValueType};
use rayon::prelude::*;

#[derive(clap::Args)]
pub struct DummyArgs {
    /// Model shape: 2b4t, large, 3b, 8b or tiny.
    #[arg(long)]
    pub shape: String,
    /// Ternary type: i2_s, i2_s-arm, tq1_0, tq2_0, tl1, tl2.
    #[arg(long = "type", default_value = "i2_s")]
    pub ty: String,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Hyper-parameters of a known model shape (docs/model.md, 'Known shapes').
struct Shape {
    arch: &'static str,
    name: &'static str,
    vocab: usize,
    hidden: usize,
    ffn: usize,
    layers: usize,
    heads: usize,
    heads_kv: usize,
    ctx: usize,
    rope_base: f32,
    /// `llama` models have a separate F16 `output.weight` and no sub-norms.
    llama: bool,
    bos: u32,
    eos: u32,
}

fn shape(name: &str) -> Result<Shape> {
    let s = |arch,
             name,
             vocab,
             hidden,
             ffn,
             layers,
             heads,
             heads_kv,
             ctx,
             rope_base,
             llama,
             bos,
             eos| Shape {
        arch,
        name,
        vocab,
        hidden,
        ffn,
        layers,
        heads,
        heads_kv,
        ctx,
        rope_base,
        llama,
        bos,
        eos,
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "2b4t" | "2b" => s(
            "bitnet-b1.58",
            "dummy-bitnet-b1.58-2B-4T",
            128256,
            2560,
            6912,
            30,
            20,
            5,
            4096,
            500000.0,
            false,
            128000,
            128001,
        ),
        "large" | "0.7b" => s(
            "bitnet",
            "dummy-bitnet_b1_58-large",
            32002,
            1536,
            4096,
            24,
            16,
            16,
            2048,
            10000.0,
            false,
            1,
            2,
        ),
        "3b" => s(
            "bitnet",
            "dummy-bitnet_b1_58-3B",
            32002,
            3200,
            8640,
            26,
            32,
            32,
            2048,
            10000.0,
            false,
            1,
            2,
        ),
        "8b" => s(
            "llama",
            "dummy-Llama3-8B-1.58",
            128256,
            4096,
            14336,
            32,
            32,
            8,
            8192,
            500000.0,
            true,
            128000,
            128001,
        ),
        "tiny" => s(
            "bitnet-b1.58",
            "dummy-tiny-bitnet-b1.58",
            4096,
            256,
            768,
            6,
            8,
            4,
            256,
            500000.0,
            false,
            4080,
            4081,
        ),
        other => bail!("unknown shape {other:?} (expected 2b4t, large, 3b, 8b or tiny)"),
    })
}

/// xorshift64*: fast, deterministic, good enough for random weights.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    #[inline]
    fn next(&mut self) -> u64 {
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

/// A random ternary payload of `rows × cols` in `fmt`, with scale `s` (every block).
fn ternary_payload(
    fmt: &TernaryFormat,
    rows: usize,
    cols: usize,
    s: f32,
    seed: u64,
) -> std::io::Result<Vec<u8>> {
    let n = rows * cols;
    let io = |e: codec::CodecError| std::io::Error::other(e.to_string());
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
        TernaryFormat::Tq1_0 => {
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
            Ok(v)
        }
        _ => {
            let mut codes = vec![0i8; n];
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
            codec::encode_ternary(fmt, &t).map_err(io)
        }
    }
}

/// Tile parameters for TL formats: the shipped preset for the shape, else a valid choice.
fn tl_params(tl2: bool, rows: usize, cols: usize) -> TlParams {
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

/// Byte-level GPT-2 style vocabulary: the 256 byte symbols, fillers, and Llama-3 style
/// special tokens at the shape's bos/eos ids.
fn write_tokenizer(w: &mut GgufWriter, sh: &Shape) {
    let mut bytes_to_unicode = Vec::with_capacity(256);
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    for b in 0..256u32 {
        if printable(b) {
            bytes_to_unicode.push(char::from_u32(b).expect("latin-1"));
        } else {
            bytes_to_unicode.push(char::from_u32(256 + extra).expect("valid"));
            extra += 1;
        }
    }
    let mut tokens: Vec<String> = Vec::with_capacity(sh.vocab);
    let mut types: Vec<i32> = Vec::with_capacity(sh.vocab);
    for i in 0..sh.vocab {
        let (t, ty) = if let Some(c) = bytes_to_unicode.get(i) {
            (c.to_string(), 1)
        } else if i == sh.bos as usize {
            ("<|begin_of_text|>".to_string(), 3)
        } else if i == sh.eos as usize {
            ("<|end_of_text|>".to_string(), 3)
        } else {
            (format!("[PAD{i}]"), 4)
        };
        tokens.push(t);
        types.push(ty);
    }
    w.set("tokenizer.ggml.model", "gpt2");
    w.set("tokenizer.ggml.pre", "llama-bpe");
    w.set("tokenizer.ggml.tokens", Value::strings(tokens));
    w.set(
        "tokenizer.ggml.token_type",
        Value::array_of(ValueType::I32, types.into_iter().map(Value::I32)),
    );
    // The BPE tokenizer requires at least one merge; one over the space byte is enough.
    w.set("tokenizer.ggml.merges", Value::strings(["\u{120} \u{120}"]));
    w.set("tokenizer.ggml.bos_token_id", sh.bos);
    w.set("tokenizer.ggml.eos_token_id", sh.eos);
    w.set("tokenizer.ggml.add_bos_token", true);
}

fn parse_ternary_type(s: &str) -> Result<(TensorType, Option<I2sLayout>)> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "i2_s" | "i2s" => (TensorType::I2_S, Some(I2sLayout::X86)),
        "i2_s-arm" | "i2_s_arm" => (TensorType::I2_S, Some(I2sLayout::Arm)),
        "tq1_0" => (TensorType::TQ1_0, None),
        "tq2_0" => (TensorType::TQ2_0, None),
        "tl1" => (TensorType::TL1, None),
        "tl2" => (TensorType::TL2, None),
        other => bail!("unknown ternary type {other:?} (i2_s, i2_s-arm, tq1_0, tq2_0, tl1, tl2)"),
    })
}

pub fn dummy(args: DummyArgs) -> Result<()> {
    let sh = shape(&args.shape)?;
    let (ty, layout) = parse_ternary_type(&args.ty)?;
    let dialect = if ty.is_bitnet_only() {
        Dialect::Bitnet
    } else {
        Dialect::Upstream
    };
    let started = Instant::now();
    let mut w = GgufWriter::new(dialect);
    // Upstream llama.cpp knows only `bitnet` and reads the 2B4T activation from a key, as
    // `convert --type tq2_0` writes it (docs/model.md, 'Architectures'): TQ files stay loadable
    // there.
    let relu2 = sh.arch == "bitnet-b1.58";
    let a = if relu2 && matches!(dialect, Dialect::Upstream) {
        "bitnet"
    } else {
        sh.arch
    };
    w.set("general.architecture", a);
    if a != sh.arch {
        w.set(format!("{a}.hidden_act"), "relu2");
    }
    w.set("general.name", sh.name);
    w.set(format!("{a}.vocab_size"), sh.vocab as u32);
    w.set(format!("{a}.context_length"), sh.ctx as u32);
    w.set(format!("{a}.embedding_length"), sh.hidden as u32);
    w.set(format!("{a}.block_count"), sh.layers as u32);
    w.set(format!("{a}.feed_forward_length"), sh.ffn as u32);
    w.set(
        format!("{a}.rope.dimension_count"),
        (sh.hidden / sh.heads) as u32,
    );
    w.set(format!("{a}.attention.head_count"), sh.heads as u32);
    w.set(format!("{a}.attention.head_count_kv"), sh.heads_kv as u32);
    w.set(format!("{a}.attention.layer_norm_rms_epsilon"), 1e-5f32);
    w.set(format!("{a}.rope.freq_base"), sh.rope_base);
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
    write_tokenizer(&mut w, &sh);

    let (h, f, v) = (sh.hidden, sh.ffn, sh.vocab);
    let head_dim = h / sh.heads;
    let kv = head_dim * sh.heads_kv;
    let seed = args.seed;
    let f16_random = move |n: usize, amp: f32, seed: u64| -> TensorSource<'static> {
        TensorSource::Lazy(Box::new(move || {
            let mut out = vec![0u8; 2 * n];
            par_fill(&mut out, seed, |rng, c| {
                for p in c.chunks_mut(2) {
                    let u = (rng.next() >> 40) as f32 / (1u64 << 24) as f32;
                    p.copy_from_slice(&half::f16::from_f32((2.0 * u - 1.0) * amp).to_le_bytes());
                }
            });
            Ok(out)
        }))
    };
    let ones =
        |n: usize| -> TensorSource<'static> { TensorSource::Owned(1f32.to_le_bytes().repeat(n)) };
    w.add_tensor(
        "token_embd.weight",
        &[h as u64, v as u64],
        TensorType::F16,
        f16_random(h * v, 0.05, seed),
    )?;
    w.add_tensor("output_norm.weight", &[h as u64], TensorType::F32, ones(h))?;
    if sh.llama {
        w.add_tensor(
            "output.weight",
            &[h as u64, v as u64],
            TensorType::F16,
            f16_random(h * v, 0.05, seed ^ 7),
        )?;
    }
    let mut fallbacks = Vec::new();
    for l in 0..sh.layers {
        w.add_tensor(
            format!("blk.{l}.attn_norm.weight"),
            &[h as u64],
            TensorType::F32,
            ones(h),
        )?;
        w.add_tensor(
            format!("blk.{l}.ffn_norm.weight"),
            &[h as u64],
            TensorType::F32,
            ones(h),
        )?;
        if !sh.llama {
            w.add_tensor(
                format!("blk.{l}.attn_sub_norm.weight"),
                &[h as u64],
                TensorType::F32,
                ones(h),
            )?;
            w.add_tensor(
                format!("blk.{l}.ffn_sub_norm.weight"),
                &[f as u64],
                TensorType::F32,
                ones(f),
            )?;
        }
        let projs = [
            ("attn_q", h, h),
            ("attn_k", h, kv),
            ("attn_v", h, kv),
            ("attn_output", h, h),
            ("ffn_gate", h, f),
            ("ffn_up", h, f),
            ("ffn_down", f, h),
        ];
        for (i, (p, cols, rows)) in projs.into_iter().enumerate() {
            let name = format!("blk.{l}.{p}.weight");
            let tseed = seed ^ ((l as u64) << 32 | (i as u64) << 8);
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
                // The format cannot hold this shape: store the ternary values as F16.
                fallbacks.push(name.clone());
                let mut rng = Rng::new(tseed);
                let data: Vec<u8> = (0..rows * cols)
                    .flat_map(|_| {
                        half::f16::from_f32(((rng.next() % 3) as f32 - 1.0) * s).to_le_bytes()
                    })
                    .collect();
                w.add_tensor(
                    name,
                    &[cols as u64, rows as u64],
                    TensorType::F16,
                    TensorSource::Owned(data),
                )?;
                continue;
            }
            codec::meta::record_format(w.metadata_mut(), &name, &fmt);
            let src = TensorSource::Lazy(Box::new(move || {
                ternary_payload(&fmt, rows, cols, s, tseed)
            }));
            w.add_tensor(name, &[cols as u64, rows as u64], ty, src)?;
        }
    }
    w.write(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let size = std::fs::metadata(&args.output)
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "wrote {} ({} {}, {:.2} GB) in {:.1} s",
        args.output.display(),
        args.shape,
        ty.name(),
        size as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    if !fallbacks.is_empty() {
        eprintln!(
            "{} tensors do not fit {} and were stored as F16 (e.g. {})",
            fallbacks.len(),
            ty.name(),
            fallbacks[0]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_shapes_and_types_are_errors() {
        assert!(shape("nope").is_err());
        assert!(shape("2b4t").is_ok());
        assert!(parse_ternary_type("q4_0").is_err());
        assert!(parse_ternary_type("tq2_0").is_ok());
    }
}
