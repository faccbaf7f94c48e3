//! `create` from a Hugging Face checkpoint: `FROM ./dir` is converted on the fly (`-q TYPE`,
//! default i2_s), and `FROM hf.co/ORG/REPO` is pulled first when the store lacks it.

use std::fs;
use std::path::Path;

use bitnet_tools::convert::{self, ConvertOptions, WeightType};

use super::create::{Base, CreateSpec};
use super::lease::Lease;
use super::pull::{self, PullEvent, PullOptions};
use super::{manifest, Store};
use crate::serve::hub::{HubConfig, HubRef};

/// Converts the checkpoint in `dir` to a GGUF in the lease's `tmp/` (swept if this process
/// dies), then moves it into `blobs/` under `lease`'s protection. Returns its digest
/// (`sha256:<hex>`).
pub fn convert_into_store(
    lease: &Lease,
    store: &Store,
    dir: &Path,
    weight_type: &str,
    name: Option<String>,
) -> anyhow::Result<String> {
    let wt = WeightType::parse(weight_type).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown weight type {weight_type:?}; choose one of {}",
            WeightType::NAMES.join(", ")
        )
    })?;
    let (out, file) = lease.temp_file()?;
    drop(file);
    let result = (|| -> anyhow::Result<String> {
        let mut opts = ConvertOptions::new(dir, &out);
        opts.weight_type = wt;
        opts.name = name;
        opts.force = true;
        convert::convert(&opts, &mut |_| {})
            .map_err(|e| anyhow::anyhow!("converting {}: {e}", dir.display()))?;
        let (hex, _) = manifest::sha256_file(&out)?;
        pull::add_blob_from_file(lease, store, &out, &hex, true)?;
        Ok(format!("sha256:{hex}"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&out);
    }
    result
}

/// Makes a `create` base usable: converts a checkpoint directory (with `quantize` as its
/// weight type), pulls a Hub model the store does not have yet. `quantize` applies to
/// checkpoints only; a GGUF is re-quantised with `bitnet-gguf quantize`.
/// The blob of a converted checkpoint is protected by `lease`, which the caller holds until
/// its `create` has written the manifest.
pub fn prepare_base(
    lease: &Lease,
    store: &Store,
    spec: &mut CreateSpec,
    quantize: Option<&str>,
    hub: &HubConfig,
    events: &mut dyn FnMut(PullEvent),
) -> anyhow::Result<()> {
    match &spec.base {
        Base::Checkpoint(dir) => {
            let ty = quantize.unwrap_or("i2_s");
            events(PullEvent::Status(&format!(
                "converting {} to {ty}",
                dir.display()
            )));
            let name = dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
            spec.base = Base::Blob(convert_into_store(lease, store, dir, ty, name)?);
        }
        Base::Model(from) if HubRef::parse(from).is_some() && store.open(from)?.is_none() => {
            let opts = PullOptions {
                hub: hub.clone(),
                weight_type: quantize.map(str::to_string),
            };
            pull::pull(store, &from.clone(), &opts, events)?;
        }
        _ if quantize.is_some() => anyhow::bail!(
            "-q/--quantize applies to a checkpoint (FROM ./dir, or FROM hf.co/ORG/REPO of \
             safetensors); re-quantise a GGUF with `bitnet-gguf quantize`"
        ),
        _ => {}
    }
    Ok(())
}
