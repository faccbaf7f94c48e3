//! What the host offers the weights: whether advised memory gets 2 MiB pages, how much of a
//! mapping has them (smaps), and how much memory is free to copy a file into.

/// Whether anonymous memory advised `MADV_HUGEPAGE` can get 2 MiB pages: transparent huge
/// pages in `always` or `madvise` mode.
pub(super) fn anon_huge_pages_enabled() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| thp_mode_allows_advised(&mode))
}

/// Whether the text of `/sys/kernel/mm/transparent_hugepage/enabled` (the selected mode in
/// brackets) gives huge pages to advised memory.
fn thp_mode_allows_advised(mode: &str) -> bool {
    mode.contains("[always]") || mode.contains("[madvise]")
}

/// Memory this process can still take, in bytes: `MemAvailable` from `/proc/meminfo`,
/// capped by the headroom of its memory cgroup (a container's limit, which `MemAvailable`
/// does not see: copying a model past it would get the process killed). `None` where
/// `/proc/meminfo` cannot be read.
pub(super) fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let machine = kb * 1024;
    Some(cgroup_headroom().map_or(machine, |h| h.min(machine)))
}

/// Limit minus usage of this process's memory cgroup (v2, else v1); `None` without a limit.
/// Usage counts the page cache too, so this errs towards keeping a file mapped.
fn cgroup_headroom() -> Option<u64> {
    let read = |p: String| std::fs::read_to_string(p).ok();
    let cgroups = read("/proc/self/cgroup".into())?;
    let (v2, v1) = cgroup_paths(&cgroups);
    let v2 = v2.and_then(|p| {
        let dir = format!("/sys/fs/cgroup{}", p.trim_end_matches('/'));
        headroom(
            &read(format!("{dir}/memory.max"))?,
            &read(format!("{dir}/memory.current"))?,
        )
    });
    v2.or_else(|| {
        let dir = format!("/sys/fs/cgroup/memory{}", v1?.trim_end_matches('/'));
        headroom(
            &read(format!("{dir}/memory.limit_in_bytes"))?,
            &read(format!("{dir}/memory.usage_in_bytes"))?,
        )
    })
}

/// The cgroup v2 path (`0::PATH`) and the v1 memory controller's path (`N:...memory...:PATH`)
/// in the text of `/proc/self/cgroup`.
fn cgroup_paths(text: &str) -> (Option<&str>, Option<&str>) {
    let (mut v2, mut v1) = (None, None);
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path);
        }
    }
    (v2, v1)
}

/// `limit − usage` from a cgroup's limit and usage files; `None` for no limit (`max` in v2,
/// a number near 2^63 in v1) or text that is not a number.
fn headroom(limit: &str, usage: &str) -> Option<u64> {
    let limit: u64 = limit.trim().parse().ok()?;
    let usage: u64 = usage.trim().parse().ok()?;
    (limit < 1 << 60).then(|| limit.saturating_sub(usage))
}

/// Bytes of `range` that the kernel currently backs with 2 MiB pages, from
/// `/proc/self/smaps`; `None` where that file cannot be read (off Linux). Counts whole
/// mappings that overlap `range`, capped at its length.
pub fn huge_page_bytes(range: &[u8]) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let lo = range.as_ptr() as u64;
    let kb = huge_kb_overlapping(&smaps, lo, lo + range.len() as u64);
    Some((kb * 1024).min(range.len() as u64))
}

/// The `AnonHugePages` and `FilePmdMapped` kilobytes of the mappings in `smaps` (the text of
/// `/proc/PID/smaps`) that overlap the addresses `lo..hi`.
fn huge_kb_overlapping(smaps: &str, lo: u64, hi: u64) -> u64 {
    let mut overlaps = false;
    let mut total_kb = 0u64;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                overlaps = a < hi && lo < b;
                continue;
            }
        }
        if overlaps && (first == "AnonHugePages:" || first == "FilePmdMapped:") {
            total_kb += words
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total_kb
}

#[cfg(test)]
mod tests {
    use super::{cgroup_paths, headroom, huge_kb_overlapping, thp_mode_allows_advised};

    #[test]
    fn thp_modes_that_give_advised_memory_huge_pages() {
        assert!(thp_mode_allows_advised("always [madvise] never\n"));
        assert!(thp_mode_allows_advised("[always] madvise never\n"));
        assert!(!thp_mode_allows_advised("always madvise [never]\n"));
        assert!(!thp_mode_allows_advised(""));
    }

    #[test]
    fn cgroup_paths_for_v2_and_the_v1_memory_controller() {
        assert_eq!(cgroup_paths("0::/\n"), (Some("/"), None));
        let hybrid = "9:name=systemd:/\n4:memory:/ci/job7\n3:cpu,cpuacct:/\n0::/\n";
        assert_eq!(cgroup_paths(hybrid), (Some("/"), Some("/ci/job7")));
        assert_eq!(cgroup_paths("5:cpuacct,memory:/a\n"), (None, Some("/a")));
        assert_eq!(cgroup_paths(""), (None, None));
    }

    #[test]
    fn headroom_is_limit_minus_usage_and_none_without_a_limit() {
        assert_eq!(headroom("4294967296\n", "1073741824\n"), Some(3 << 30));
        assert_eq!(headroom("1000", "2000"), Some(0));
        assert_eq!(headroom("max\n", "1073741824\n"), None);
        assert_eq!(headroom("9223372036854771712\n", "15778693120\n"), None);
        assert_eq!(headroom("", "1"), None);
    }

    /// Three mappings in smaps' format: only those overlapping the range count, both huge
    /// page fields add up, and other fields with a size in kB do not.
    #[test]
    fn huge_pages_of_the_overlapping_mappings_only() {
        let smaps = "\
7f0000000000-7f0000400000 r--s 00000000 fd:00 12 /models/a.gguf
Size:               4096 kB
AnonHugePages:         0 kB
FilePmdMapped:      2048 kB
7f0000400000-7f0000800000 rw-p 00000000 00:00 0
Size:               4096 kB
AnonHugePages:      4096 kB
FilePmdMapped:         0 kB
7f0000800000-7f0000c00000 rw-p 00000000 00:00 0
AnonHugePages:      4096 kB
";
        let base = 0x7f00_0000_0000u64;
        assert_eq!(huge_kb_overlapping(smaps, base, base + 0x1000), 2048);
        assert_eq!(
            huge_kb_overlapping(smaps, base + 0x3f_f000, base + 0x40_1000),
            6144
        );
        assert_eq!(
            huge_kb_overlapping(smaps, base + 0x40_0000, base + 0x80_0000),
            4096
        );
        assert_eq!(
            huge_kb_overlapping(smaps, base + 0xc0_0000, base + 0xd0_0000),
            0
        );
        assert_eq!(huge_kb_overlapping("", base, base + 1), 0);
    }
}
