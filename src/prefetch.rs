//! Hints to the processor to start fetching memory that is about to be read: the rows of a table read at
//! random, and columns read in order long after they were written (a processor's own prefetch stops at
//! each 4 KiB page; a column of 16-byte views crosses one every 256 rows).

use polars_arrow::array::{Utf8ViewArray, View};

/// 16-byte views in a 64-byte cache line; and how many views ahead of the one read a column is fetched
/// (16 lines), one fetch a line.
pub const VIEWS_PER_LINE: usize = 4;
pub const VIEWS_AHEAD: usize = 64;

/// How many rows ahead of the one read a column's texts (stored outside their views) are fetched: each is a
/// cache miss of its own, so fewer are in flight than lines of views.
pub const TEXTS_AHEAD: usize = 16;

/// Starts fetching the memory of `items[i]` into the cache, if there is such an item (a hint: nothing is
/// read).
#[inline]
pub fn prefetch<T>(items: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(item) = items.get(i) {
        // SAFETY: a prefetch is a hint that reads nothing; the pointer is that of an item.
        unsafe {
            std::arch::x86_64::_mm_prefetch(std::ptr::from_ref(item).cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (items, i);
}

/// Fetches the views of a column read in order, `VIEWS_AHEAD` ahead of view `i` (once a cache line).
#[inline]
pub fn prefetch_views(views: &[View], i: usize) {
    if i.is_multiple_of(VIEWS_PER_LINE) {
        prefetch(views, i + VIEWS_AHEAD);
    }
}

/// Starts fetching row `i`'s text (when it is not inside the view) into the cache.
pub fn prefetch_text(texts: &Utf8ViewArray, i: usize) {
    let Some(v) = texts.views().get(i) else { return };
    if v.length <= View::MAX_INLINE_SIZE {
        return;
    }
    let Some(buffer) = texts.data_buffers().get(v.buffer_idx as usize) else {
        return;
    };
    let Some(text) = buffer.get(v.offset as usize..v.offset as usize + v.length as usize) else {
        return;
    };
    prefetch(text, 0);
    prefetch(text, text.len() - 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hints for places past the end (an index of `usize::MAX` too), on an empty slice and on null, inline
    /// and stored values neither panic nor fault: callers ask for rows ahead without checking them.
    #[test]
    fn hints_stay_in_bounds() {
        let empty: [u64; 0] = [];
        prefetch(&empty, 0);
        prefetch(&[1u8, 2, 3], 3);
        prefetch(&[1u8, 2, 3], usize::MAX);
        let texts = Utf8ViewArray::from_slice([Some("short"), None, Some("a value longer than twelve bytes")]);
        for i in [0, 1, 2, 3, 1000, usize::MAX] {
            prefetch_text(&texts, i);
        }
        for i in 0..texts.len() + VIEWS_AHEAD {
            prefetch_views(texts.views(), i);
        }
    }
}
