//! How many threads to use by default.

use std::sync::OnceLock;

static DEFAULT_THREADS: OnceLock<usize> = OnceLock::new();

/// Physical core count (Linux: distinct (package, core) pairs), else logical CPUs.
pub fn physical_cores() -> usize {
    *DEFAULT_THREADS.get_or_init(|| {
        let logical = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        linux_physical_cores()
            .map(|p| p.clamp(1, logical))
            .unwrap_or(logical)
    })
}

fn linux_physical_cores() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mut cores = std::collections::HashSet::new();
    let (mut phys, mut core) = (None::<String>, None::<String>);
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let (Some(p), Some(c)) = (phys.take(), core.take()) {
                cores.insert((p, c));
            }
            continue;
        }
        let mut kv = line.splitn(2, ':');
        let (k, v) = (
            kv.next()?.trim(),
            kv.next().unwrap_or("").trim().to_string(),
        );
        match k {
            "physical id" => phys = Some(v),
            "core id" => core = Some(v),
            _ => {}
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}
