//! Owned buffers for weights built at load (repacked ternary rows, a re-quantised head).
//!
//! Decode streams every weight once per token, and from 4 KiB pages each stream misses the
//! TLB every 4 KiB: 2B4T's head re-quantised to Q6_K into a plain `Vec` (4 KiB pages wherever
//! transparent huge pages are in `madvise` mode, the common default) took 12.9–13.5 ms per
//! token, and 9.3–9.6 ms in 2 MiB pages (decode 31.3–31.9 → 35.7–36.4 tok/s; Xeon, 2
//! threads, alternating). So these buffers ask for 2 MiB pages before their first write.

/// A zeroed buffer of `len` bytes whose pages the kernel is asked to back with 2 MiB pages.
///
/// A large zeroed `Vec` comes from fresh anonymous memory that is not touched until it is
/// written, so the advice takes effect when the caller fills it. Only the whole 2 MiB-aligned
/// extents inside the buffer can be huge: a matrix of a few MiB (a repacked TQ2_0
/// projection) gains little, a re-quantised head of hundreds of MiB nearly all. Best effort:
/// without transparent huge pages (or off Linux) it is an ordinary buffer.
pub fn zeroed(len: usize) -> Vec<u8> {
    let v = vec![0u8; len];
    advise_huge(&v);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(v: &[u8]) {
    const PAGE: usize = 4096;
    let start = (v.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (v.as_ptr() as usize + v.len()) / PAGE * PAGE;
    if end <= start {
        return;
    }
    // SAFETY: madvise reads no memory; the range is page-aligned and lies inside `v`'s
    // allocation, and MADV_HUGEPAGE changes how its pages are backed, never their contents.
    // A failure (no THP in this kernel) leaves the small pages.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: &[u8]) {}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_buffers_are_zero_and_writable_at_every_size() {
        for len in [0usize, 1, 4095, 4096, 4097, (2 << 20) + 3, 5 << 20] {
            let mut v = super::zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&b| b == 0), "{len}");
            v.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
            assert!(v.iter().enumerate().all(|(i, &b)| b == i as u8), "{len}");
        }
    }
}
