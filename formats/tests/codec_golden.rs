//! Every public golden case (tests/fixtures/golden, produced by running the reference
//! implementations) reproduced byte for byte in both directions.

use std::path::PathBuf;

use bitnet_formats::codec::{
    self, decode_ternary, encode_ternary, i2s, quantize_i2s_c_rule, quantize_i2s_python_rule, tl1,
    tl2, weight_quant_absmean, I2sLayout, TernaryFormat, TernaryScales, TernaryTensor, TlParams,
};
use bitnet_formats::TensorType;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn case(id: &str) -> Value {
    manifest()
        .into_iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id}"))
}

fn bin(id: &str, role: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{id}.{role}.bin"))).unwrap()
}

/// Minimal reader for the little-endian float32 `.npy` files of the fixtures.
fn npy_f32(id: &str, role: &str) -> Vec<f32> {
    let bytes = std::fs::read(dir().join(format!("{id}.{role}.npy"))).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"));
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn shape(c: &Value) -> (usize, usize) {
    let s = c["shape_numpy_MxK"].as_array().unwrap();
    (
        s[0].as_u64().unwrap() as usize,
        s[1].as_u64().unwrap() as usize,
    )
}

fn scale_of(c: &Value) -> f32 {
    let hex = c["scale_f32_hex"].as_str().unwrap();
    f32::from_bits(u32::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap())
}

fn sign_codes(x: &[f32]) -> Vec<i8> {
    x.iter()
        .map(|&v| {
            if v.abs() < 1e-6 {
                0
            } else if v > 0.0 {
                1
            } else {
                -1
            }
        })
        .collect()
}

fn ids_of(ty: &str) -> Vec<String> {
    manifest()
        .into_iter()
        .filter(|c| c["type"] == ty)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn i2s_layout(c: &Value) -> I2sLayout {
    match c["variant"].as_str().unwrap() {
        "x86_act_parallel_128" => I2sLayout::X86,
        "arm_64" => I2sLayout::Arm,
        "x86_no_act_parallel_1x4" => I2sLayout::RowInterleaved,
        v => panic!("unknown variant {v}"),
    }
}

#[test]
fn manifest_lists_every_case_we_test() {
    let ids: Vec<String> = manifest()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids_of("I2_S").len(), 11);
    assert_eq!(ids_of("TQ1_0").len() + ids_of("TQ2_0").len(), 6);
    assert_eq!(ids_of("TL1").len() + ids_of("TL2").len(), 3);
    assert!(ids.len() >= 20);
}

#[test]
fn i2s_pack_and_unpack_every_case() {
    for id in ids_of("I2_S") {
        let c = case(&id);
        let (rows, cols) = shape(&c);
        let layout = i2s_layout(&c);
        let blob = bin(&id, "tensor_blob");
        assert_eq!(
            blob.len() as u64,
            c["tensor_blob_nbytes"].as_u64().unwrap(),
            "{id}"
        );
        assert_eq!(
            TensorType::I2_S
                .nbytes(&[cols as u64, rows as u64])
                .unwrap(),
            blob.len() as u64
        );
        let input = npy_f32(&id, c["pack_input"].as_str().unwrap());
        let reference = c["reference"]["function"].as_str().unwrap();

        // Pack with the rule of the producer that made the fixture.
        let (codes, scale) = if reference == "quantize_to_i2_s" {
            let over = c["override_scale"].as_f64().map(|v| v as f32);
            quantize_i2s_python_rule(&input, over)
        } else {
            quantize_i2s_c_rule(&input)
        };
        assert_eq!(scale.to_bits(), scale_of(&c).to_bits(), "{id}: scale");
        let t = TernaryTensor {
            rows,
            cols,
            codes,
            scales: TernaryScales::PerTensor(scale),
        };
        let packed = encode_ternary(&TernaryFormat::I2s(layout), &t).unwrap();
        assert_eq!(packed, blob, "{id}: packed bytes");

        // Unpack back to the codes.
        let back = decode_ternary(&TernaryFormat::I2s(layout), &blob, rows, cols).unwrap();
        assert_eq!(back, t, "{id}: decoded");
        if c["pack_input"] != "raw_f32" {
            assert_eq!(
                back.codes,
                sign_codes(&input),
                "{id}: codes vs sign(pack_input)"
            );
        }
    }
}

#[test]
fn i2s_python_and_c_rules_agree_on_converter_output() {
    for id in ids_of("I2_S") {
        let c = case(&id);
        if c["crosscheck_python_quantize_to_i2_s_identical"] != true {
            continue;
        }
        let input = npy_f32(&id, "ternary_scaled_f32");
        assert_eq!(
            quantize_i2s_c_rule(&input),
            quantize_i2s_python_rule(&input, None),
            "{id}"
        );
    }
}

#[test]
fn i2s_raw_float_rules_differ_as_documented() {
    // C: sign only, scale = max|x|. Python: scale = first non-zero magnitude, rounding.
    let input = npy_f32("i2s_x86_rawfloat_c_8x128", "raw_f32");
    let (codes, scale) = quantize_i2s_c_rule(&input);
    assert!(codes.iter().all(|&c| c != 0));
    assert_eq!(scale, input.iter().fold(0f32, |m, v| m.max(v.abs())));
}

#[test]
fn weight_quant_matches_the_converter() {
    for id in ids_of("I2_S")
        .into_iter()
        .chain(ids_of("TL1"))
        .chain(ids_of("TL2"))
        .chain(ids_of("TQ2_0"))
    {
        let c = case(&id);
        if c["pack_input"] != "ternary_scaled_f32" {
            continue;
        }
        let raw = npy_f32(&id, "raw_f32");
        let expected = npy_f32(&id, "ternary_scaled_f32");
        let (codes, scale) = weight_quant_absmean(&raw);
        let ours: Vec<f32> = codes.iter().map(|&t| t as f32 * scale).collect();
        assert_eq!(codes, sign_codes(&expected), "{id}: codes");
        let max = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        // Bit-exact whenever the abs-mean is order-independent; otherwise within one ulp of
        // PyTorch's f32 reduction.
        let ulps = (scale.to_bits() as i64 - max.to_bits() as i64).abs();
        if id == "i2s_x86_exactsum_8x128" {
            assert_eq!(ours, expected, "{id}");
            let scaled = codec::weight_quant_scaled(&raw);
            assert_eq!(
                scaled.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{id}: weight_quant_scaled bits (incl. -0.0)"
            );
        }
        assert!(ulps <= 1, "{id}: scale {scale} vs {max}");
    }
}

fn tl_params(c: &Value) -> TlParams {
    let k = &c["kernel_config"];
    TlParams {
        bm_tile: k["bm"].as_u64().unwrap() as usize,
        bk_tile: k["bk"].as_u64().unwrap() as usize,
        bm: k["bmm"].as_u64().unwrap() as usize,
    }
}

#[test]
fn tl_pack_and_unpack_every_case() {
    for id in ids_of("TL1").into_iter().chain(ids_of("TL2")) {
        let c = case(&id);
        let (rows, cols) = shape(&c);
        let p = tl_params(&c);
        let is_tl1 = c["type"] == "TL1";
        let input = npy_f32(&id, "ternary_scaled_f32");
        let codes = sign_codes(&input);
        let packed_ref = bin(&id, "packed");
        let blob = bin(&id, "tensor_blob");
        let packed = if is_tl1 {
            tl1::pack_codes(&p, &codes, rows, cols).unwrap()
        } else {
            tl2::pack_codes(&p, &codes, rows, cols).unwrap()
        };
        assert_eq!(packed, packed_ref, "{id}: packed");
        let (_, scale) = quantize_i2s_c_rule(&input);
        assert_eq!(
            scale.to_bits(),
            scale_of(&c).to_bits(),
            "{id}: scale = max|x|"
        );
        let fmt = if is_tl1 {
            TernaryFormat::Tl1(p)
        } else {
            TernaryFormat::Tl2(p)
        };
        let t = TernaryTensor {
            rows,
            cols,
            codes,
            scales: TernaryScales::PerTensor(scale),
        };
        assert_eq!(
            encode_ternary(&fmt, &t).unwrap(),
            blob,
            "{id}: blob with scale slot"
        );
        assert_eq!(blob.len(), fmt.payload_len(rows, cols).unwrap());
        assert_eq!(
            decode_ternary(&fmt, &blob, rows, cols).unwrap(),
            t,
            "{id}: decoded"
        );
        if !is_tl1 {
            let split = &c["tl2_split"];
            let (three, sign, two) = tl2::sections(&p, rows, cols);
            assert_eq!(three as u64, split["three_index_bytes"].as_u64().unwrap());
            assert_eq!(sign as u64, split["sign_bytes"].as_u64().unwrap());
            assert_eq!(two as u64, split["two_index_bytes"].as_u64().unwrap());
        }
    }
}

#[test]
fn tq_quantize_dequantize_every_case() {
    for id in ids_of("TQ1_0").into_iter().chain(ids_of("TQ2_0")) {
        let c = case(&id);
        let (rows, cols) = shape(&c);
        let ty = TensorType::from_name(c["type"].as_str().unwrap()).unwrap();
        let ne = [cols as u64, rows as u64];
        let input = npy_f32(&id, c["pack_input"].as_str().unwrap());
        let blob = bin(&id, "tensor_blob");
        assert_eq!(
            codec::quantize(ty, &input, &ne).unwrap(),
            blob,
            "{id}: quantize"
        );
        let mut out = vec![0f32; rows * cols];
        codec::dequantize(ty, &blob, &ne, &mut out).unwrap();
        let expected = npy_f32(&id, "dequant_f32");
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{id}: dequantize"
        );
        // The codes + block scales route gives the same bytes back.
        let fmt = if ty == TensorType::TQ1_0 {
            TernaryFormat::Tq1_0
        } else {
            TernaryFormat::Tq2_0
        };
        let t = decode_ternary(&fmt, &blob, rows, cols).unwrap();
        assert_eq!(encode_ternary(&fmt, &t).unwrap(), blob, "{id}: re-encode");
        assert_eq!(t.dequantize(), out, "{id}: codes * scales");
        if c["pack_input"] == "ternary_scaled_f32" {
            // Ternary-scaled input: encoding codes + the f32 per-tensor scale is the same as
            // ggml quantizing the floats.
            let (codes, scale) = quantize_i2s_c_rule(&input);
            let t = TernaryTensor {
                rows,
                cols,
                codes,
                scales: TernaryScales::PerTensor(scale),
            };
            assert_eq!(encode_ternary(&fmt, &t).unwrap(), blob, "{id}: from codes");
        }
    }
}

#[test]
fn tq_first_bytes_match_the_spec_examples() {
    assert_eq!(bin("tq2_0_2x256_ties", "tensor_blob")[0], 0x86);
    assert_eq!(bin("tq1_0_2x256_ties", "tensor_blob")[0], 0xf2);
    let blob = bin("i2s_x86_4x128", "tensor_blob");
    assert_eq!(blob[0], 0x05);
    let t = i2s::decode(I2sLayout::X86, &blob, 4, 128).unwrap();
    assert_eq!(
        t.scales,
        TernaryScales::PerTensor(f32::from_bits(0x3f55b039))
    );
}

#[test]
fn q8_k_activations_and_tq_dot_products_match_ggml() {
    for id in ["tq1_0_kernel_4x512_t2", "tq2_0_kernel_4x512_t2"] {
        let c = case(id);
        let (rows, cols) = shape(&c);
        let act = npy_f32(id, "act_f32");
        let tokens = act.len() / cols;
        let q8k = codec::quantize(TensorType::Q8_K, &act, &[cols as u64, tokens as u64]).unwrap();
        assert_eq!(q8k, bin(id, "act_q8K_blocks"), "{id}: Q8_K blocks");
        // ggml's vec_dot_tq*_q8_K: per 256-block integer dot, scaled by d_w · d_a, summed in f32.
        let fmt = if id.starts_with("tq1") {
            TernaryFormat::Tq1_0
        } else {
            TernaryFormat::Tq2_0
        };
        let w = decode_ternary(&fmt, &bin(id, "tensor_blob"), rows, cols).unwrap();
        let TernaryScales::PerBlock(dw) = &w.scales else {
            panic!()
        };
        let expected = npy_f32(id, "out_f32");
        let nb = cols / 256;
        for t in 0..tokens {
            for m in 0..rows {
                let mut sum = 0f32;
                for b in 0..nb {
                    let blk = &q8k[(t * nb + b) * 292..(t * nb + b + 1) * 292];
                    let da = f32::from_le_bytes(blk[0..4].try_into().unwrap());
                    let dot: i32 = (0..256)
                        .map(|j| w.codes[m * cols + b * 256 + j] as i32 * blk[4 + j] as i8 as i32)
                        .sum();
                    sum += dot as f32 * (dw[m * nb + b] * da);
                }
                assert_eq!(
                    sum.to_bits(),
                    expected[t * rows + m].to_bits(),
                    "{id}: token {t} row {m}"
                );
            }
        }
    }
}

#[test]
fn tl1_tensor_inside_the_fork_written_gguf_decodes() {
    let file = bitnet_formats::GgufFile::open(dir().join("mini_tl1.gguf")).unwrap();
    let info = file.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(info.ty, TensorType::TL1);
    let p = tl_params(&case("tl1_64x256"));
    let t = decode_ternary(&TernaryFormat::Tl1(p), file.tensor_data(info), 64, 256).unwrap();
    assert_eq!(
        t.codes,
        sign_codes(&npy_f32("tl1_64x256", "ternary_scaled_f32"))
    );
    assert_eq!(
        t.scales,
        TernaryScales::PerTensor(scale_of(&case("tl1_64x256")))
    );
    // The fork's file does not record its tile parameters and 64 x 256 is no shipped preset.
    let e = codec::tl_params_from_metadata(file.metadata(), &info.name, TensorType::TL1, 64, 256)
        .unwrap_err();
    assert!(e.to_string().contains("blk.0.attn_q.weight"), "{e}");
}
