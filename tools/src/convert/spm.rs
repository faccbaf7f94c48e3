//! SentencePiece-only checkpoints (`tokenizer.model`, no `tokenizer.json`): llama.cpp's `llama`
//! vocabulary keys, read from the model's protobuf with a small reader of the fields used.
//!
//! `ModelProto` fields: 1 = repeated `SentencePiece` {1 piece: string, 2 score: float, 3 type:
//! enum (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6 — llama.cpp's token
//! types use the same numbers)}, 2 = `TrainerSpec` {40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id:
//! int32, defaults 0, 1, 2, -1}. Every other field is skipped.

use std::path::Path;

use bitnet_formats::{Value, ValueType};

use super::error::ConvertError;

/// llama.cpp's type for ids the model file does not cover (`[PAD<id>]` fillers).
const TOKEN_UNUSED: i32 = 5;

/// The vocabulary of a `tokenizer.model`.
#[derive(Debug, PartialEq)]
pub struct SpmModel {
    pub pieces: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<i32>,
    pub unk_id: Option<u32>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.buf.len())
            .ok_or("field runs past the end of its message")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field: number, wire type, and its varint value or its bytes.
    fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Bytes(self.bytes(8)?),
            2 => {
                let n = self.varint()?;
                Field::Bytes(self.bytes(n)?)
            }
            5 => Field::Bytes(self.bytes(4)?),
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok(Some((key >> 3, value)))
    }
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn piece(buf: &[u8]) -> Result<(String, f32, i32), String> {
    let (mut text, mut score, mut ty) = (None, 0f32, 1i32);
    let mut r = Reader { buf, pos: 0 };
    while let Some((num, f)) = r.field()? {
        match (num, f) {
            (1, Field::Bytes(b)) => {
                text = Some(String::from_utf8(b.to_vec()).map_err(|_| "piece is not UTF-8")?)
            }
            (2, Field::Bytes(b)) if b.len() == 4 => {
                score = f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            (3, Field::Varint(v)) => {
                ty = i32::try_from(v)
                    .ok()
                    .filter(|t| (1..=6).contains(t))
                    .ok_or_else(|| format!("piece type {v} is not 1..6"))?
            }
            _ => {}
        }
    }
    Ok((text.ok_or("piece without text")?, score, ty))
}

/// A special id of the trainer spec; negative means "none" (pad's default).
fn special_id(v: u64) -> Option<u32> {
    u32::try_from(v as i64).ok()
}

/// Parses a SentencePiece `ModelProto`.
pub fn parse_model(buf: &[u8]) -> Result<SpmModel, String> {
    let mut m = SpmModel {
        pieces: Vec::new(),
        scores: Vec::new(),
        types: Vec::new(),
        unk_id: Some(0),
        bos_id: Some(1),
        eos_id: Some(2),
        pad_id: None,
    };
    let mut r = Reader { buf, pos: 0 };
    while let Some((num, f)) = r.field()? {
        match (num, f) {
            (1, Field::Bytes(b)) => {
                let (text, score, ty) =
                    piece(b).map_err(|e| format!("piece {}: {e}", m.pieces.len()))?;
                m.pieces.push(text);
                m.scores.push(score);
                m.types.push(ty);
            }
            (2, Field::Bytes(b)) => {
                let mut t = Reader { buf: b, pos: 0 };
                while let Some((num, f)) = t.field()? {
                    if let Field::Varint(v) = f {
                        match num {
                            40 => m.unk_id = special_id(v),
                            41 => m.bos_id = special_id(v),
                            42 => m.eos_id = special_id(v),
                            43 => m.pad_id = special_id(v),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if m.pieces.is_empty() {
        return Err("no pieces (not a SentencePiece model?)".into());
    }
    Ok(m)
}

/// The `tokenizer.ggml.*` entries llama.cpp's converter writes for a SentencePiece vocabulary,
/// padded to `vocab_size` with `[PAD<id>]` (type UNUSED) when the model has fewer pieces.
pub fn spm_entries(path: &Path, vocab_size: usize) -> Result<Vec<(String, Value)>, ConvertError> {
    let bytes = std::fs::read(path).map_err(|e| ConvertError::io(path, e))?;
    let terr = |message: String| ConvertError::Tokenizer {
        path: path.to_owned(),
        message,
    };
    let mut m = parse_model(&bytes).map_err(terr)?;
    if m.pieces.len() > vocab_size {
        return Err(terr(format!(
            "{} pieces but the model's vocab_size is {vocab_size}",
            m.pieces.len()
        )));
    }
    for i in m.pieces.len()..vocab_size {
        m.pieces.push(format!("[PAD{i}]"));
        m.scores.push(-1000.0);
        m.types.push(TOKEN_UNUSED);
    }
    let n = m.pieces.len();
    let in_vocab = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
    let mut entries = vec![
        ("tokenizer.ggml.model".to_owned(), Value::from("llama")),
        ("tokenizer.ggml.pre".to_owned(), Value::from("default")),
        ("tokenizer.ggml.tokens".to_owned(), Value::strings(m.pieces)),
        (
            "tokenizer.ggml.scores".to_owned(),
            Value::array_of(ValueType::F32, m.scores.into_iter().map(Value::F32)),
        ),
        (
            "tokenizer.ggml.token_type".to_owned(),
            Value::array_of(ValueType::I32, m.types.into_iter().map(Value::I32)),
        ),
    ];
    for (key, id) in [
        ("bos_token_id", m.bos_id),
        ("eos_token_id", m.eos_id),
        ("unknown_token_id", m.unk_id),
        ("padding_token_id", m.pad_id),
    ] {
        if let Some(id) = in_vocab(id) {
            entries.push((format!("tokenizer.ggml.{key}"), Value::U32(id)));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(num: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    #[test]
    fn reads_pieces_and_trainer_ids() {
        let mut p = Vec::new();
        bytes_field(1, "▁the".as_bytes(), &mut p);
        varint(2 << 3 | 5, &mut p);
        p.extend_from_slice(&(-3.5f32).to_le_bytes());
        varint(3 << 3, &mut p);
        varint(3, &mut p);
        let mut spec = Vec::new();
        varint(43 << 3, &mut spec);
        varint(u64::MAX, &mut spec); // pad_id = -1
        varint(41 << 3, &mut spec);
        varint(0, &mut spec);
        let mut m = Vec::new();
        bytes_field(1, &p, &mut m);
        bytes_field(2, &spec, &mut m);
        let model = parse_model(&m).unwrap();
        assert_eq!(model.pieces, vec!["▁the"]);
        assert_eq!(model.scores, vec![-3.5]);
        assert_eq!(model.types, vec![3]);
        assert_eq!((model.bos_id, model.pad_id), (Some(0), None));
    }

    #[test]
    fn truncated_or_foreign_input_is_an_error() {
        assert!(parse_model(&[0x0a, 0x05, b'a']).is_err());
        assert!(parse_model(b"{\"model\": 1}").is_err());
        assert!(parse_model(&[]).is_err());
    }
}
