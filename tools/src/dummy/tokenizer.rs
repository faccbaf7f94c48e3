//! A byte-level vocabulary for dummy models, so that the engine can tokenise prompts.

use bitnet_formats::{GgufWriter, Value, ValueType};

/// Byte-level GPT-2 style vocabulary: the 256 byte symbols, fillers, and Llama-3 style
/// special tokens at the `bos`/`eos` ids.
pub(crate) fn write_tokenizer(w: &mut GgufWriter, vocab: usize, bos: u32, eos: u32) {
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
    let mut tokens: Vec<String> = Vec::with_capacity(vocab);
    let mut types: Vec<i32> = Vec::with_capacity(vocab);
    for i in 0..vocab {
        let (t, ty) = if let Some(c) = bytes_to_unicode.get(i) {
            (c.to_string(), 1)
        } else if i == bos as usize {
            ("<|begin_of_text|>".to_string(), 3)
        } else if i == eos as usize {
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
    w.set("tokenizer.ggml.bos_token_id", bos);
    w.set("tokenizer.ggml.eos_token_id", eos);
    w.set("tokenizer.ggml.add_bos_token", true);
}
