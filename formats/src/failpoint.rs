//! Test-only pauses at named points of long writes, so that a test can act while a write is
//! half done (kill the process, run a concurrent `rm`) without timing guesses.
//!
//! `BITNET_FAILPOINT=name=PATH[,name=PATH…]`: on reaching `name` the process creates
//! `PATH.reached`, then waits until `PATH` exists. Unset (always, outside tests) it costs one
//! environment lookup per call; callers call it once per write, never per byte.

use std::path::PathBuf;
use std::time::Duration;

/// Pauses at `name` when `BITNET_FAILPOINT` names it (see the module documentation).
pub fn pause(name: &str) {
    let Some(spec) = std::env::var_os("BITNET_FAILPOINT") else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    for entry in spec.split(',') {
        let Some((point, path)) = entry.split_once('=') else {
            continue;
        };
        if point.trim() != name {
            continue;
        }
        let go = PathBuf::from(path.trim());
        let mut reached = go.clone().into_os_string();
        reached.push(".reached");
        let _ = std::fs::write(&reached, name);
        while !go.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
