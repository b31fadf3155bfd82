//! A text column built straight into Arrow string views, for the columns every ingested row fills.
//!
//! Polars' `StringChunkedBuilder` does the same work in more steps: a short value (12 bytes or less, held
//! in the view itself) is copied into a view on the stack by a `memcpy` call and read back, which stalled
//! on the store of each short value; each push also checks a validity it keeps for every row once a null
//! was seen, and its buffers start at 8 KiB and grow by doubling. Here a short value's view is assembled in
//! registers from at most three loads, and a long value is appended to a buffer sized for a chunk. What the
//! column holds is the same array: views, buffers, validity.

use polars::prelude::*;
use polars_arrow::array::{Utf8ViewArray, View};
use polars_arrow::bitmap::MutableBitmap;
use polars_arrow::datatypes::ArrowDataType;

/// Bytes a view holds in itself (Arrow's limit).
const INLINE: usize = View::MAX_INLINE_SIZE as usize;

/// The first buffer of long values; each next one is twice as large, up to `MAX_BLOCK`.
const FIRST_BLOCK: usize = 64 << 10;
const MAX_BLOCK: usize = 4 << 20;

/// A column of optional text values.
pub struct TextColumn {
    views: Vec<View>,
    /// Full buffers of long values; `in_progress` is the next.
    buffers: Vec<Vec<u8>>,
    in_progress: Vec<u8>,
    /// `None` while no value is null.
    validity: Option<MutableBitmap>,
    /// The leading run: rows from the first on that all hold one value of at most `INLINE` bytes, or are
    /// all null, counted but not yet in `views` (which stays empty until the run ends). A column of one
    /// value or none throughout a bill (its currency, channel, terminals, operators) then costs a
    /// comparison of two views a row instead of a store of one, and its views are written at once.
    run: usize,
    /// The run's view (a null's is the empty view), and whether the run is of nulls.
    run_view: View,
    run_null: bool,
    total_bytes_len: usize,
    total_buffer_len: usize,
}

impl TextColumn {
    pub fn with_capacity(rows: usize) -> TextColumn {
        TextColumn {
            views: Vec::with_capacity(rows),
            buffers: Vec::new(),
            in_progress: Vec::new(),
            validity: None,
            run: 0,
            run_view: View::default(),
            run_null: false,
            total_bytes_len: 0,
            total_buffer_len: 0,
        }
    }

    #[inline]
    pub fn push(&mut self, value: &str) {
        let bytes = value.as_bytes();
        self.total_bytes_len += bytes.len();
        let view = if bytes.len() <= INLINE {
            let view = inline_view(bytes);
            if self.views.is_empty() {
                if self.run == 0 {
                    (self.run, self.run_view, self.run_null) = (1, view, false);
                    return;
                }
                if !self.run_null && self.run_view.as_u128() == view.as_u128() {
                    self.run += 1;
                    return;
                }
            }
            view
        } else {
            self.long_view(bytes)
        };
        if self.run > 0 {
            self.write_run();
        }
        self.views.push(view);
        if let Some(v) = &mut self.validity {
            v.push(true);
        }
    }

    #[inline]
    pub fn push_null(&mut self) {
        if self.views.is_empty() {
            if self.run == 0 {
                (self.run, self.run_view, self.run_null) = (1, View::default(), true);
                return;
            }
            if self.run_null {
                self.run += 1;
                return;
            }
            self.write_run();
        }
        let valid_before = self.views.len();
        self.views.push(View::default());
        self.validity
            .get_or_insert_with(|| {
                let mut v = MutableBitmap::with_capacity(self.views.capacity());
                v.extend_constant(valid_before, true);
                v
            })
            .push(false);
    }

    #[inline]
    pub fn push_option(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.push(v),
            None => self.push_null(),
        }
    }

    /// Writes the leading run's views (and, for a run of nulls, its validity bits): the run has ended.
    #[cold]
    fn write_run(&mut self) {
        let n = std::mem::take(&mut self.run);
        self.views.resize(n, self.run_view);
        if self.run_null {
            let mut validity = MutableBitmap::with_capacity(self.views.capacity().max(n));
            validity.extend_constant(n, false);
            self.validity = Some(validity);
        }
    }

    /// Stores a value of more than `INLINE` bytes and returns its view. A value never spans two buffers:
    /// a buffer too full for it is closed and a larger one started. Inlined: called as a function it cost
    /// more instructions than the push itself saved.
    #[inline(always)]
    fn long_view(&mut self, bytes: &[u8]) -> View {
        if self.in_progress.capacity() - self.in_progress.len() < bytes.len() {
            let next = (self.in_progress.capacity() * 2)
                .clamp(FIRST_BLOCK, MAX_BLOCK)
                .max(bytes.len());
            let full = std::mem::replace(&mut self.in_progress, Vec::with_capacity(next));
            if !full.is_empty() {
                self.total_buffer_len += full.len();
                self.buffers.push(full);
            }
        }
        let offset = self.in_progress.len() as u32;
        self.in_progress.extend_from_slice(bytes);
        View {
            length: bytes.len() as u32,
            prefix: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            buffer_idx: self.buffers.len() as u32,
            offset,
        }
    }

    /// The column as an Arrow array.
    pub fn finish(mut self) -> Utf8ViewArray {
        if self.run > 0 {
            self.write_run(); // the column is one run
        }
        if !self.in_progress.is_empty() {
            self.total_buffer_len += self.in_progress.len();
            self.buffers.push(std::mem::take(&mut self.in_progress));
        }
        // SAFETY: every view is of a `&str` (valid UTF-8): either inline, with its length and bytes, or
        // with the index of the buffer it was appended to, its offset there, its length and its first 4
        // bytes; the validity (if any) has a bit per view; the totals are those of the views and buffers.
        unsafe {
            Utf8ViewArray::new_unchecked(
                ArrowDataType::Utf8View,
                self.views.into(),
                self.buffers.into_iter().map(Into::into).collect(),
                self.validity.map(Into::into),
                Some(self.total_bytes_len),
                self.total_buffer_len,
            )
        }
    }

    /// The column as a Polars column named `name`.
    pub fn into_column(self, name: &str) -> Column {
        StringChunked::with_chunk(name.into(), self.finish()).into_column()
    }
}

/// The view of a value of at most `INLINE` bytes: its length, then its bytes, zero-padded. The bytes are
/// read by at most three loads that may overlap (each puts the bytes it reads at their own place, so an
/// overlap writes the same bits twice).
#[inline]
fn inline_view(b: &[u8]) -> View {
    let n = b.len();
    debug_assert!(n <= INLINE);
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u128;
    let data: u128 = match n {
        0 => 0,
        1..=3 => b[0] as u128 | (b[n / 2] as u128) << (n / 2 * 8) | (b[n - 1] as u128) << ((n - 1) * 8),
        4..=8 => word(0) | word(n - 4) << ((n - 4) * 8),
        _ => word(0) | word(4) << 32 | word(n - 4) << ((n - 4) * 8),
    };
    View {
        length: n as u32,
        prefix: data as u32,
        buffer_idx: (data >> 32) as u32,
        offset: (data >> 64) as u32,
    }
}

#[cfg(test)]
mod tests {
    use polars_arrow::array::Array;

    use super::*;

    /// Values of every length from empty to past the inline limit, multi-byte text, nulls (first, in the
    /// middle, last) and enough long values to fill several buffers: each reads back as pushed, and the
    /// array equals the one Polars' own builder makes of the same values.
    #[test]
    fn values_read_back_as_pushed_and_as_polars_builds_them() {
        let mut values: Vec<Option<String>> = vec![None];
        for n in 0..=40 {
            values.push(Some("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"[..n].to_string()));
        }
        values.push(Some("拿铁".into())); // 6 bytes
        values.push(Some("拿铁咖啡".into())); // 12 bytes: the largest inline
        values.push(Some("拿铁咖啡（大杯）".into()));
        values.push(None);
        for i in 0..20_000 {
            values.push(Some(format!("wx:4200002{i:020}")));
        }
        values.push(None);

        let mut col = TextColumn::with_capacity(4);
        for v in &values {
            col.push_option(v.as_deref());
        }
        let ours = col.finish();
        assert_eq!(ours.len(), values.len());
        assert!(ours.data_buffers().len() > 2, "several buffers");
        let back: Vec<Option<String>> = ours.iter().map(|v| v.map(str::to_string)).collect();
        assert_eq!(back, values);

        let polars = StringChunked::from_iter_options("v".into(), values.iter().map(|v| v.as_deref()));
        let ours = StringChunked::with_chunk("v".into(), ours);
        assert!(ours.clone().into_series().equals_missing(&polars.into_series()));
        assert_eq!(ours.null_count(), 3);
        // The totals the array was given are those Polars counts from the views.
        let arr = ours.downcast_iter().next().expect("one chunk");
        let bytes: usize = values.iter().flatten().map(String::len).sum();
        assert_eq!(arr.total_bytes_len(), bytes);
        assert_eq!(
            arr.total_buffer_len(),
            arr.data_buffers().iter().map(|b| b.len()).sum::<usize>()
        );
    }

    /// Without a null the column has no validity (as Polars' builder gives it).
    #[test]
    fn a_column_without_nulls_has_no_validity() {
        let mut col = TextColumn::with_capacity(2);
        col.push("SUCCESS");
        col.push("wx:420000200000000000000001");
        assert!(col.finish().validity().is_none());
    }

    /// A leading run (of one short value, or of nulls) is counted, not written, until another value
    /// comes or the column ends: columns of one value or none throughout, and runs ended by a null, by
    /// another short value, by an empty one and by a long one, read back as pushed and as Polars' builder
    /// makes them, with their null counts.
    #[test]
    fn leading_runs_read_back_as_pushed() {
        let long = "wx:420000200000000000000001";
        let cases: Vec<Vec<Option<&str>>> = vec![
            vec![None; 70_000],
            vec![Some("wechat_pay"); 70_000],
            vec![Some(""); 3],
            vec![Some(long); 3],
            [vec![None; 1000], vec![Some("JSAPI"), None, Some(long)]].concat(),
            [vec![None; 5], vec![Some(long), None]].concat(),
            vec![None, Some("")],
            vec![Some(""), None],
            vec![Some("CNY"), None, None],
            [vec![Some("payment"); 99], vec![Some("refund"), Some("payment")]].concat(),
            [vec![Some("拿铁咖啡"); 4], vec![Some(long), Some("拿铁咖啡")]].concat(),
            vec![Some(""), Some(""), Some("x")],
        ];
        for values in cases {
            let mut col = TextColumn::with_capacity(values.len());
            for v in &values {
                col.push_option(*v);
            }
            let ours = StringChunked::with_chunk("v".into(), col.finish());
            let polars = StringChunked::from_iter_options("v".into(), values.iter().copied());
            assert!(ours.clone().into_series().equals_missing(&polars.into_series()));
            assert_eq!(ours.len(), values.len());
            let nulls = values.iter().filter(|v| v.is_none()).count();
            assert_eq!(ours.null_count(), nulls);
            let arr = ours.downcast_iter().next().expect("one chunk");
            assert_eq!(arr.validity().is_some(), nulls > 0, "a validity only with nulls");
            if let Some(v) = arr.validity() {
                assert_eq!(v.len(), values.len());
            }
            let bytes: usize = values.iter().flatten().map(|v| v.len()).sum();
            assert_eq!(arr.total_bytes_len(), bytes);
        }
    }
}
