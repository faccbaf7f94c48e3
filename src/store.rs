//! Resolving a model argument: a path to a `.gguf` file, or a name in the model store.

use std::path::PathBuf;

/// Turns `-m`'s argument into a GGUF path. A name store (Ollama layout) comes later; for now
/// only existing files are accepted.
pub fn resolve_model(arg: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(arg);
    if path.is_file() {
        Ok(path)
    } else {
        anyhow::bail!("model '{arg}' is not a file")
    }
}
