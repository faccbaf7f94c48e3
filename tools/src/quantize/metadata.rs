//! Metadata changes for the output file: file type, quantisation version, our codec keys, and
//! for TQ outputs the architecture name upstream llama.cpp / Ollama know.

use bitnet_formats::arch::{Activation, ActivationRule, Arch, HParam};
use bitnet_formats::codec::meta::{I2S_LAYOUT_KEY, TL_KEY_PREFIX};
use bitnet_formats::{Dialect, Metadata, Value};

use super::Target;

/// Rewrites copied metadata for `target`; returns the output architecture. With `names`, the
/// architecture takes its name in that dialect (upstream knows the 2B4T graph only as
/// `bitnet`), and a graph whose activation the old name implied gets it written in keys.
pub(crate) fn rewrite(
    meta: &mut Metadata,
    target: Target,
    names: Option<Dialect>,
) -> Option<String> {
    // Codec keys describe the input's tensors; the writer records the output's afresh.
    let stale: Vec<String> = meta
        .keys()
        .filter(|k| k.starts_with(TL_KEY_PREFIX) || *k == I2S_LAYOUT_KEY)
        .map(str::to_string)
        .collect();
    for k in stale {
        meta.remove(&k);
    }
    if names != Some(Dialect::Upstream) {
        meta.set("general.file_type", target.file_type());
        if target.is_ternary() || target == Target::Q2_0 {
            meta.set("general.quantization_version", 2u32);
        }
    }
    let arch = rename(meta, names);
    if names == Some(Dialect::Upstream) {
        // llama-quantize sets both keys last, in this order, whatever the type: the same bytes.
        meta.remove("general.quantization_version");
        meta.remove("general.file_type");
        meta.set("general.quantization_version", 2u32);
        meta.set("general.file_type", target.file_type());
    }
    arch
}

/// The architecture's name in `names`' dialect, with the activation its old name implied
/// written in keys; returns the output architecture.
fn rename(meta: &mut Metadata, names: Option<Dialect>) -> Option<String> {
    let arch = meta.get_str("general.architecture").map(str::to_string);
    let known = arch.as_deref().and_then(|a| Arch::from_name(a).ok());
    let (Some(a), Some(dialect)) = (known, names) else {
        return arch;
    };
    let to = a.name_in(dialect);
    if to != a.name() {
        *meta = rename_arch(meta, a.name(), to);
    }
    let act = match a.spec().activation {
        ActivationRule::Fixed(act) if to != a.name() => Some(act),
        _ => [HParam::HiddenAct, HParam::HiddenActivation]
            .iter()
            .find_map(|hp| meta.get_str(&hp.key(to)).and_then(Activation::from_name)),
    };
    for (key, value) in act.iter().flat_map(|act| act.metadata(to)) {
        if !meta.contains(&key) {
            meta.set(key, value);
        }
    }
    Some(to.to_string())
}

/// A copy of `meta` with `general.architecture = to` and every `{from}.*` key moved to
/// `{to}.*`, in the original order.
fn rename_arch(meta: &Metadata, from: &str, to: &str) -> Metadata {
    let prefix = format!("{from}.");
    let mut out = Metadata::new();
    for (k, v) in meta.iter() {
        let key = match k.strip_prefix(&prefix) {
            Some(rest) => format!("{to}.{rest}"),
            None => k.to_string(),
        };
        let value = if k == "general.architecture" {
            Value::from(to)
        } else {
            v.clone()
        };
        out.set(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_output_ends_with_the_keys_llama_quantize_appends() {
        let mut m = Metadata::new();
        m.set("general.architecture", "bitnet-b1.58");
        m.set("general.file_type", 1u32);
        m.set("tokenizer.ggml.model", "gpt2");
        rewrite(&mut m, Target::Q2_0, Some(Dialect::Upstream));
        let keys: Vec<&str> = m.keys().collect();
        assert_eq!(
            keys[keys.len() - 2..],
            ["general.quantization_version", "general.file_type"]
        );
        assert_eq!(m.get_str("tokenizer.ggml.model"), Some("gpt2"));
    }

    #[test]
    fn tq_output_uses_the_upstream_bitnet_architecture() {
        let mut m = Metadata::new();
        m.set("general.architecture", "bitnet-b1.58");
        m.set("bitnet-b1.58.block_count", 30u32);
        m.set("general.file_type", 40u32);
        m.set("bitnet.tl.blk.0.attn_q.weight.bm", 64u32);
        m.set(I2S_LAYOUT_KEY, "x86");
        let arch = rewrite(&mut m, Target::Tq2_0, Some(Dialect::Upstream));
        assert_eq!(arch.as_deref(), Some("bitnet"));
        assert_eq!(m.get_str("general.architecture"), Some("bitnet"));
        assert_eq!(m.get_u32("bitnet.block_count"), Some(30));
        assert!(!m.contains("bitnet-b1.58.block_count"));
        assert_eq!(m.get_str("bitnet.hidden_act"), Some("relu2"));
        assert_eq!(m.get_str("bitnet.hidden_activation"), Some("relu2"));
        assert_eq!(m.get_u32("general.file_type"), Some(37));
        assert_eq!(m.get_u32("general.quantization_version"), Some(2));
        assert!(!m.contains(I2S_LAYOUT_KEY));
        assert!(!m.contains("bitnet.tl.blk.0.attn_q.weight.bm"));
        assert_eq!(m.keys().next(), Some("general.architecture"));
    }

    #[test]
    fn i2s_output_keeps_the_architecture() {
        let mut m = Metadata::new();
        m.set("general.architecture", "bitnet-b1.58");
        assert_eq!(
            rewrite(&mut m, Target::I2s(Default::default()), None).as_deref(),
            Some("bitnet-b1.58")
        );
        assert_eq!(m.get_u32("general.file_type"), Some(40));
        assert!(!m.contains("bitnet.hidden_act"));
    }

    #[test]
    fn upstream_f16_output_is_renamed_and_keeps_a_keyed_activation() {
        let mut m = Metadata::new();
        m.set("general.architecture", "bitnet-b1.58");
        assert_eq!(
            rewrite(&mut m, Target::F16, Some(Dialect::Upstream)).as_deref(),
            Some("bitnet")
        );
        assert_eq!(m.get_str("bitnet.hidden_activation"), Some("relu2"));
        // A file already named `bitnet` gains upstream's key beside ours.
        let mut m = Metadata::new();
        m.set("general.architecture", "bitnet");
        m.set("bitnet.hidden_act", "silu");
        rewrite(&mut m, Target::Tq1_0, Some(Dialect::Upstream));
        assert_eq!(m.get_str("bitnet.hidden_activation"), Some("silu"));
    }
}
