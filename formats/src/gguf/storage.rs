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
use super::host_memory::{anon_huge_pages_enabled, available_memory, huge_page_bytes};

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
    /// half of the memory available (a memory cgroup's limit counts) and transparent huge
    /// pages are on (Linux; elsewhere the file stays mapped).
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
                // one whose copy could not get 2 MiB pages either (THP off). Off Linux neither
                // figure can be read, so the file stays mapped.
                if !auto_copies(len as u64, None, available) || !anon_huge_pages_enabled() {
                    return Ok(Storage::Map(map));
                }
                if !auto_copies(len as u64, populated_huge_bytes(&map), available) {
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

/// Faults every page of `map` in (reading the file if it is not cached yet, as the first
/// token would) and returns how many of its bytes the kernel mapped with 2 MiB pages; `None`
/// where that is unknown (off Linux, or a kernel without MADV_POPULATE_READ, before 5.14).
fn populated_huge_bytes(map: &memmap2::Mmap) -> Option<u64> {
    #[cfg(target_os = "linux")]
    let populated = map.advise(memmap2::Advice::PopulateRead).is_ok();
    #[cfg(not(target_os = "linux"))]
    let populated = false;
    populated.then(|| huge_page_bytes(map)).flatten()
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
