//! The one raw-pointer wrapper for parallel tasks that write disjoint parts of a buffer.

/// A buffer whose disjoint parts parallel tasks write: a raw pointer that may cross threads,
/// for outputs that are not one chunk per task (a token tile's rows spread over a larger
/// matrix, several arrays written per item).
pub struct DisjointMut<T>(*mut T);

// By hand: the derives would ask `T: Copy`, and a copy of the pointer copies no `T`.
impl<T> Clone for DisjointMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DisjointMut<T> {}
// SAFETY: the wrapper only hands out its elements through `slice` and `write`, whose
// callers promise that no two threads touch the same element; sending `T`s between threads
// that way needs `T: Send`.
unsafe impl<T: Send> Send for DisjointMut<T> {}
// SAFETY: as for `Send`: shared copies reach disjoint elements only.
unsafe impl<T: Send> Sync for DisjointMut<T> {}

impl<T> DisjointMut<T> {
    pub fn new(buf: &mut [T]) -> Self {
        DisjointMut(buf.as_mut_ptr())
    }

    /// `len` elements from element `at` on. A method, so that closures capture the whole
    /// (Sync) wrapper rather than its raw pointer.
    ///
    /// # Safety
    /// The range lies inside the buffer given to `new`, which outlives the slice, and no
    /// one else reads or writes that range meanwhile.
    pub unsafe fn slice<'a>(self, at: usize, len: usize) -> &'a mut [T] {
        // SAFETY: the caller guarantees the range is inside the live buffer and unshared.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }

    /// Stores `v` at element `at`.
    ///
    /// # Safety
    /// As for [`DisjointMut::slice`], for that one element.
    #[inline]
    pub unsafe fn write(self, at: usize, v: T) {
        // SAFETY: the caller guarantees the element is inside the live buffer and unshared.
        unsafe { self.0.add(at).write(v) }
    }
}
