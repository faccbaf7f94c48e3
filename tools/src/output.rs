//! Writing an output GGUF so that nothing half-written survives: a temporary file beside the
//! output, renamed over it when complete; and on Ctrl-C / SIGTERM, which end the process
//! without running destructors, a handler that deletes the temporary files still open.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use bitnet_formats::{GgufError, GgufWriter};

/// Temporary outputs of this process that a signal must not leave behind.
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

fn install_signal_cleanup() {
    HANDLER.call_once(|| {
        // Another handler installed first (an embedding program's) keeps precedence; the
        // temporary file is then only removed on the error paths.
        let _ = ctrlc::set_handler(|| {
            let paths = IN_PROGRESS
                .lock()
                .map(|v| v.clone())
                .unwrap_or_else(|p| p.into_inner().clone());
            for p in paths {
                let _ = std::fs::remove_file(p);
            }
            std::process::exit(130);
        });
    });
}

/// A temporary file registered for removal on a signal; unregistered when dropped.
struct Registered(PathBuf);

impl Registered {
    fn new(path: &Path) -> Registered {
        if let Ok(mut v) = IN_PROGRESS.lock() {
            v.push(path.to_path_buf());
        }
        Registered(path.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut v) = IN_PROGRESS.lock() {
            v.retain(|p| p != &self.0);
        }
    }
}

/// Writes `writer` to `path` through `.gguf-write-XXXX` in the same directory and a rename,
/// calling `progress(tensor name, payload bytes)` after each tensor; the temporary file is
/// registered for removal on a signal while it exists.
pub fn write_gguf(
    writer: GgufWriter,
    path: &Path,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<(), GgufError> {
    install_signal_cleanup();
    let mut first = true;
    let mut progress = |name: &str, bytes: u64| {
        progress(name, bytes);
        if std::mem::take(&mut first) {
            bitnet_formats::failpoint::pause("gguf-write-mid");
        }
    };
    writer.write_via_temp(path, &mut progress, Registered::new)
}
