//! Where an open GGUF's bytes live: a read-only map of the file, a copy in anonymous memory,
//! or an owned buffer (in-memory files).
//!
//! A decode step streams every weight once, so the page size matters: with 4 KiB pages a
//! stream misses the TLB every 4 KiB. On a Xeon (2 threads, 2b4t, F16 head) the head's
//! F16 dot read the mapped file at 27–28 GB/s while 31 % of it sat in 4 KiB pages, and at
//! 31–32 GB/s from 2 MiB pages (mapped after the page cache was refilled, or copied); decode
//! ran 5–15 % faster. Both kinds of map therefore ask for 2 MiB pages, and
//! [`Residency::Auto`] copies the file when the page cache cannot give them.

use std::fs::File;
use std::io::Read;

use super::error::GgufError;

/// How `GgufFile::open_with` holds the file's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Residency {
    /// Map the file read-only: nothing is copied and the page cache is shared with every
    /// other process reading it. Whether its pages are 2 MiB depends on how the kernel
    /// filled the page cache.
    Mapped,
    /// Read the file into anonymous memory: costs one read of the file at load and its
    /// size in private memory, but gets 2 MiB pages wherever transparent huge pages are
    /// enabled, whatever state the page cache is in.
    Copied,
    /// Map the file and fault it in; keep the map when the kernel backs at least
    /// [`AUTO_MIN_HUGE_PCT`] % of it with 2 MiB pages, else copy it, when the copy fits in
    /// half of the memory available and transparent huge pages are on (Linux; elsewhere
    /// the file stays mapped).
    #[default]
    Auto,
}

/// Below this share of a file's whole 2 MiB pages mapped huge, [`Residency::Auto`] copies it.
pub const AUTO_MIN_HUGE_PCT: u64 = 90;

/// [`Residency::Auto`]'s choice for a file of `len` bytes of which `huge` are in 2 MiB pages
/// (`None`: unknown), with `available` bytes of memory available (`None`: unknown). Copies
/// only when the pages are known to be small, or unknown, and the copy surely fits.
pub fn auto_copies(len: u64, huge: Option<u64>, available: Option<u64>) -> bool {
    const HUGE_PAGE: u64 = 2 << 20;
    let whole = len / HUGE_PAGE * HUGE_PAGE;
    let small_pages = match huge {
        Some(h) => h * 100 < whole * AUTO_MIN_HUGE_PCT,
        None => true,
    };
    small_pages && available.is_some_and(|a| len <= a / 2)
}

pub(super) enum Storage {
    /// The file, mapped.
    Map(memmap2::Mmap),
    /// The file's bytes, read into an anonymous map.
    Copy(memmap2::Mmap),
    Bytes(Vec<u8>),
}

impl Storage {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Map(m) | Storage::Copy(m) => m,
            Storage::Bytes(b) => b,
        }
    }

    /// How the bytes are held: mapped from the file, or in memory.
    pub(super) fn residency(&self) -> Residency {
        match self {
            Storage::Map(_) => Residency::Mapped,
            Storage::Copy(_) | Storage::Bytes(_) => Residency::Copied,
        }
    }

    pub(super) fn open(
        file: &File,
        len: u64,
        how: Residency,
        label: &str,
    ) -> Result<Self, GgufError> {
        if len == 0 {
            // Mapping an empty file fails on some systems; parse the empty slice instead.
            return Ok(Storage::Bytes(Vec::new()));
        }
        let len = usize::try_from(len).map_err(|_| {
            GgufError::io(
                label,
                std::io::Error::other("the file is larger than the address space"),
            )
        })?;
        match how {
            Residency::Mapped => Ok(Storage::Map(map_file(file, label)?)),
            Residency::Copied => {
                let mut copy = anon_map(len, label)?;
                (&*file)
                    .read_exact(&mut copy)
                    .map_err(|e| GgufError::io(label, e))?;
                sealed(copy, label)
            }
            Residency::Auto => {
                let map = map_file(file, label)?;
                let available = available_memory();
                // A file too large to copy stays mapped, and is not faulted in here either
                // (a file larger than memory would be read through once for nothing); so does
                // one whose copy could not get 2 MiB pages either (THP off).
                if !cfg!(target_os = "linux")
                    || !auto_copies(len as u64, None, available)
                    || !anon_huge_pages_enabled()
                {
                    return Ok(Storage::Map(map));
                }
                // Faults every page in (reading the file if it is not cached yet, as the
                // first token would), so that smaps tells how the kernel mapped it. A
                // kernel without MADV_POPULATE_READ (before 5.14) leaves the count unknown.
                #[cfg(target_os = "linux")]
                let populated = map.advise(memmap2::Advice::PopulateRead).is_ok();
                #[cfg(not(target_os = "linux"))]
                let populated = false;
                let huge = huge_page_bytes(&map).filter(|_| populated);
                if !auto_copies(len as u64, huge, available) {
                    return Ok(Storage::Map(map));
                }
                let mut copy = anon_map(len, label)?;
                copy.copy_from_slice(&map);
                sealed(copy, label)
            }
        }
    }
}

/// The file, mapped read-only and advised for 2 MiB pages.
fn map_file(file: &File, label: &str) -> Result<memmap2::Mmap, GgufError> {
    // SAFETY: the map is read-only. Like every mmap-based model loader we rely on the file
    // not being truncated or modified while it is open.
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| GgufError::io(label, e))?;
    // Best effort, here and below: without transparent huge pages (or off Linux) the map
    // keeps 4 KiB pages and works the same, only slower.
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    Ok(map)
}

/// `len` bytes of anonymous memory (`len` is the file's size on disk, not a count read from
/// its bytes), advised for 2 MiB pages before the first write, so they fault in huge.
fn anon_map(len: usize, label: &str) -> Result<memmap2::MmapMut, GgufError> {
    let map = memmap2::MmapMut::map_anon(len).map_err(|e| GgufError::io(label, e))?;
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    Ok(map)
}

fn sealed(copy: memmap2::MmapMut, label: &str) -> Result<Storage, GgufError> {
    let map = copy.make_read_only().map_err(|e| GgufError::io(label, e))?;
    Ok(Storage::Copy(map))
}

/// Whether anonymous memory advised `MADV_HUGEPAGE` can get 2 MiB pages: transparent huge
/// pages in `always` or `madvise` mode.
fn anon_huge_pages_enabled() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| thp_mode_allows_advised(&mode))
}

/// Whether the text of `/sys/kernel/mm/transparent_hugepage/enabled` (the selected mode in
/// brackets) gives huge pages to advised memory.
fn thp_mode_allows_advised(mode: &str) -> bool {
    mode.contains("[always]") || mode.contains("[madvise]")
}

/// `MemAvailable` from `/proc/meminfo`, in bytes; `None` where it cannot be read.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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
    use super::{huge_kb_overlapping, thp_mode_allows_advised};

    #[test]
    fn thp_modes_that_give_advised_memory_huge_pages() {
        assert!(thp_mode_allows_advised("always [madvise] never\n"));
        assert!(thp_mode_allows_advised("[always] madvise never\n"));
        assert!(!thp_mode_allows_advised("always madvise [never]\n"));
        assert!(!thp_mode_allows_advised(""));
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
