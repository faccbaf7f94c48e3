//! File-level access to the reference codecs, for comparing them with other implementations
//! (scripts/ci/python-quant-oracle.sh feeds it the same data as the `gguf` Python package).
//!
//! ```text
//! codec_oracle quantize   TYPE COLS IN.f32 OUT.bin   # little-endian f32 rows -> TYPE blocks
//! codec_oracle dequantize TYPE COLS IN.bin OUT.f32   # TYPE blocks -> little-endian f32
//! ```

use std::process::ExitCode;

use bitnet_formats::codec;
use bitnet_formats::TensorType;

fn run(args: &[String]) -> Result<(), String> {
    let [verb, ty, cols, input, output] = args else {
        return Err("usage: codec_oracle quantize|dequantize TYPE COLS IN OUT".into());
    };
    let ty = TensorType::from_name(ty).ok_or_else(|| format!("unknown type {ty}"))?;
    let cols: u64 = cols.parse().map_err(|e| format!("COLS: {e}"))?;
    let data = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    let out = match verb.as_str() {
        "quantize" => {
            let x: Vec<f32> = data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let ne = [cols, x.len() as u64 / cols.max(1)];
            codec::quantize(ty, &x, &ne).map_err(|e| e.to_string())?
        }
        "dequantize" => {
            let row = codec::row_bytes(ty, cols as usize).ok_or("COLS is not whole blocks")? as u64;
            let rows = data.len() as u64 / row.max(1);
            let mut x = vec![0f32; (rows * cols) as usize];
            codec::dequantize(ty, &data, &[cols, rows], &mut x).map_err(|e| e.to_string())?;
            x.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        v => return Err(format!("unknown verb {v}")),
    };
    std::fs::write(output, out).map_err(|e| format!("{output}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codec_oracle: {e}");
            ExitCode::FAILURE
        }
    }
}
