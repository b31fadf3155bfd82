//! Writing a frame as a zstd Parquet file, with each text column's encoding chosen from its values.
//!
//! Polars' own writer tries a dictionary on every text column of every row group: it first estimates the
//! column's distinct count (a hash of every value), then, when that is low, builds the dictionary (a hash
//! and a comparison per value). The event tables have columns of both kinds in every row group: ids unique
//! to the row (event, order and refund ids) and columns of a handful of values (the kind, the channel, the
//! file's digest and format, the status, the product). Here a text column is looked at once: values that
//! repeat the row before (most of them, in the columns of a handful of values) cost a comparison of two
//! 16-byte views, a column of at most `SMALL_DICTIONARY` distinct values is written with the dictionary
//! built on the way, and a column whose first `SMALL_DICTIONARY` values are all distinct (ids) is written
//! plain without an estimate. Columns in between (customer keys) are left to Polars' choice: building the
//! dictionary of such a column to its end here made the writer slower, not faster. Event times are
//! written plain (nearly all distinct); every other type is left to Polars' choice. Pages are compressed
//! with one zstd context per writer thread, and pages of near-random bytes (plain customer keys, keyed
//! hashes in hex) are entropy-coded without zstd's search for repeats. The bytes differ from Polars'
//! writer in which encoding a column gets and how such pages are compressed; what is read back is the
//! same frame.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;

use polars::prelude::*;
use polars_arrow::array::{Array, DictionaryArray, PrimitiveArray, Utf8ViewArray, View};
use polars_arrow::datatypes::{ArrowDataType, IntegerType};
use polars_parquet::parquet::compression::Compression;
use polars_parquet::parquet::page::CompressedDictPage;
use polars_parquet::parquet::CowBuffer;
use polars_parquet::write::{
    array_to_columns, fallible_streaming_iterator, get_dtype_encoding, to_parquet_schema, CompressedDataPage,
    CompressedPage, CompressionOptions, DynIter, DynStreamingIterator, Encoding, FileWriter, Page, ParquetType,
    Version, WriteOptions, ZstdLevel,
};
use rayon::prelude::*;

/// zstd level of every Parquet file paylens writes: level 1, zstd's fastest, instead of the default 3
/// (the 10M benchmark's events: 292 MB against 294 MB; most columns are dictionary-encoded first).
const ZSTD_LEVEL: i32 = 1;

/// Rows per row group: the ingest's chunk size, so a full chunk is written as it is.
pub const ROW_GROUP_ROWS: usize = crate::ingest::model::CHUNK_ROWS;

/// Chunks smaller than this (a day's bill) are gathered (copied) into one row group with the chunks after
/// them; a full ingest chunk is written as it is, and so is the chunk of a large bill's piece (`PIECE_LINES`
/// lines, a few of them not rows). Row groups of a quarter of the size made the 1M-row report no faster
/// and the 10M ingest no faster than the noise, so the readers keep about the usual size.
pub const MIN_ROW_GROUP_ROWS: usize = ROW_GROUP_ROWS * 3 / 4;

/// A text column with at most this many distinct values in a row group is written with a dictionary.
const SMALL_DICTIONARY: usize = 4096;

/// Writes the frame's chunks as row groups of their own (the ingest's chunks are at most
/// `ROW_GROUP_ROWS` long), gathering only runs of small ones. Polars' own `finish` would first copy every
/// column of a frame of many chunks into row-group-sized ones: the events of a month arrive as one chunk
/// (or more) per file.
pub fn write_row_groups(f: &File, df: &mut DataFrame) -> PolarsResult<()> {
    align_chunks_cheaply(df)?;
    let schema = df.schema().to_arrow(CompatLevel::newest());
    let options = WriteOptions {
        statistics: StatisticsOptions::default(),
        compression: CompressionOptions::Zstd(Some(ZstdLevel::try_new(ZSTD_LEVEL)?)),
        version: Version::V1,
        data_page_size: None,
    };
    let parquet_schema = to_parquet_schema(&schema)?;
    let fields = parquet_schema.fields().to_vec();
    // Buffered: the page headers and the footer are thrift, written a field (often one byte) at a time.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, f);
    // The file writer is told of no statistics, so it writes no column index (each page's min and max:
    // Polars' writer records a page without them, as `column_pages` writes the ids', as a page of nulls,
    // which DuckDB then skips when it filters). A column chunk's statistics are made from its pages'
    // whatever the file writer is told; the pages are made with `options`.
    let file_options = WriteOptions {
        statistics: StatisticsOptions::empty(),
        ..options
    };
    let mut writer = FileWriter::new_with_parquet_schema(&mut out, schema, parquet_schema, file_options);
    // Chunks are gathered until they make a row group: a full ingest chunk alone (written as it is, a
    // frame of one chunk is not copied), a day's bill with the ones after it.
    let mut group: Vec<DataFrame> = Vec::new();
    let mut rows = 0;
    for chunk in df.split_chunks() {
        rows += chunk.height();
        group.push(chunk);
        if rows >= MIN_ROW_GROUP_ROWS {
            write_row_group(&mut group, &mut writer, &fields, options)?;
            rows = 0;
        }
    }
    write_row_group(&mut group, &mut writer, &fields, options)?;
    writer.end(None)?;
    out.flush()?;
    Ok(())
}

/// Writes the gathered chunks (if any) as one row group and empties `group`. The columns are encoded and
/// compressed in parallel; the file is written in column order.
fn write_row_group(
    group: &mut Vec<DataFrame>,
    writer: &mut FileWriter<&mut std::io::BufWriter<&File>>,
    fields: &[ParquetType],
    options: WriteOptions,
) -> PolarsResult<()> {
    let mut parts = group.drain(..);
    let Some(mut rows) = parts.next() else {
        return Ok(());
    };
    for p in parts {
        rows.vstack_mut_owned(p)?;
    }
    if rows.height() == 0 {
        return Ok(());
    }
    rows.rechunk_mut_par();
    for batch in rows.iter_chunks(CompatLevel::newest(), false) {
        let columns: Vec<Vec<CompressedPage>> = polars_core::runtime::RAYON.install(|| {
            batch
                .columns()
                .par_iter()
                .zip(fields)
                .map(|(array, type_)| column_pages(array.as_ref(), type_, options))
                .collect::<PolarsResult<_>>()
        })?;
        let row_group = DynIter::new(columns.iter().map(|pages| {
            Ok(DynStreamingIterator::new(fallible_streaming_iterator::convert(
                pages.iter().map(PolarsResult::Ok),
            )))
        }));
        writer.write(batch.len() as u64, row_group)?;
    }
    Ok(())
}

/// One column of a row group, encoded and compressed.
fn column_pages(array: &dyn Array, type_: &ParquetType, options: WriteOptions) -> PolarsResult<Vec<CompressedPage>> {
    let plan = match array.as_any().downcast_ref::<Utf8ViewArray>() {
        Some(text) => plan_text(text),
        // Times of events are nearly all distinct: Polars would estimate the distinct count of each row
        // group (a hash of every value) to find that out, and write them plain.
        None if matches!(array.dtype(), ArrowDataType::Timestamp(..)) => TextPlan::Plain,
        None => TextPlan::PolarsChoice,
    };
    let (array, encodings): (&dyn Array, Vec<Encoding>) = match &plan {
        TextPlan::Dictionary(d) => (d, vec![Encoding::RleDictionary]),
        TextPlan::Plain => (array, vec![Encoding::Plain]),
        TextPlan::PolarsChoice => (array, get_dtype_encoding(array.dtype())),
    };
    // Text written plain is ids (order ids, transaction ids, keyed hashes): nearly all distinct and in no
    // order, so a row group's smallest and largest id let a reader skip nothing, and finding them was a
    // comparison of every id's bytes. Their null counts are kept.
    let options = match (&plan, array.dtype()) {
        (TextPlan::Plain, ArrowDataType::Utf8View) => WriteOptions {
            statistics: StatisticsOptions {
                min_value: false,
                max_value: false,
                ..options.statistics
            },
            ..options
        },
        _ => options,
    };
    let mut out = Vec::new();
    for pages in array_to_columns(array, type_.clone(), options, &encodings)? {
        for page in pages {
            out.push(compress_page(page?)?);
        }
    }
    Ok(out)
}

/// How a page's bytes are compressed (both are plain zstd frames, read as any other).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ZstdMode {
    /// zstd at `ZSTD_LEVEL`: repeated strings found and the rest entropy-coded.
    Matches,
    /// The bytes entropy-coded (Huffman literals) with next to no search for repeats: for pages of
    /// near-random text such as keyed hashes in hex, where level 1 finds almost nothing to gain from
    /// repeats but spends most of its time looking (hex keys: 335 MB/s and 2.07x at level 1, 600 MB/s and
    /// 1.91x this way).
    Literals,
}

/// zstd level of `ZstdMode::Literals`: a negative level steps over input without matches faster the
/// lower it is; literals are compressed all the same (`ZSTD_c_literalCompressionMode`).
const LITERALS_LEVEL: i32 = -100;

/// Bytes at the start of a page compressed both ways to choose a page's mode; pages of less than
/// `SAMPLED_PAGE` bytes are compressed at `ZSTD_LEVEL` without a sample.
const SAMPLE: usize = 16 << 10;
const SAMPLED_PAGE: usize = 4 * SAMPLE;

thread_local! {
    /// Each writer thread's zstd contexts (`ZstdMode::Matches`, `ZstdMode::Literals`), kept from page to
    /// page: Polars' `compress` creates and clears a new one for every page, and zero-fills the page's
    /// worst-case output size first.
    static ZSTD: std::cell::RefCell<[Option<zstd::bulk::Compressor<'static>>; 2]> =
        const { std::cell::RefCell::new([None, None]) };
}

/// `input` compressed in `mode` into one zstd frame.
fn zstd_frame(input: &[u8], mode: ZstdMode) -> PolarsResult<Vec<u8>> {
    ZSTD.with(|cell| {
        let mut cell = cell.borrow_mut();
        let ctx = match &mut cell[mode as usize] {
            Some(ctx) => ctx,
            empty => empty.insert(match mode {
                ZstdMode::Matches => zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
                ZstdMode::Literals => {
                    let mut c = zstd::bulk::Compressor::new(LITERALS_LEVEL)?;
                    c.set_parameter(zstd::zstd_safe::CParameter::LiteralCompressionMode(
                        zstd::zstd_safe::ParamSwitch::Enable,
                    ))?;
                    c
                }
            }),
        };
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(input.len()));
        ctx.compress_to_buffer(input, &mut out)?;
        Ok(out)
    })
    .map_err(|e: std::io::Error| polars_err!(ComputeError: "zstd: {e}"))
}

/// The mode for a page of these bytes: `Literals` when a sample of them gains less than an eighth more
/// from repeats than from entropy coding alone (a plain page of hex keys gains 8 %, from the 4-byte
/// length before each value). Looked for only where level 1 compresses the sample less than 3 times:
/// ids with common prefixes, times and dictionary keys compress far more.
fn zstd_mode(page: &[u8]) -> PolarsResult<ZstdMode> {
    if page.len() < SAMPLED_PAGE {
        return Ok(ZstdMode::Matches);
    }
    let sample = &page[..SAMPLE];
    let matches = zstd_frame(sample, ZstdMode::Matches)?.len();
    if matches * 3 > SAMPLE && zstd_frame(sample, ZstdMode::Literals)?.len() * 8 <= matches * 9 {
        return Ok(ZstdMode::Literals);
    }
    Ok(ZstdMode::Matches)
}

/// A page compressed with zstd: in the mode `zstd_mode` chooses, one frame per page, without a new
/// context per page. Pages at `ZSTD_LEVEL` are the bytes Polars' `compress` writes (same library, same
/// level).
fn compress_page(page: Page) -> PolarsResult<CompressedPage> {
    let zstd = |input: &[u8]| -> PolarsResult<Vec<u8>> { zstd_frame(input, zstd_mode(input)?) };
    Ok(match page {
        Page::Data(p) => {
            let buffer = zstd(p.buffer())?;
            CompressedPage::Data(CompressedDataPage::new(
                p.header().clone(),
                CowBuffer::Owned(buffer),
                Compression::Zstd,
                p.buffer().len(),
                p.descriptor.clone(),
                p.num_rows
                    .ok_or_else(|| polars_err!(ComputeError: "a data page without its row count"))?,
            ))
        }
        Page::Dict(p) => {
            let buffer = zstd(&p.buffer)?;
            CompressedPage::Dict(CompressedDictPage::new(
                CowBuffer::Owned(buffer),
                Compression::Zstd,
                p.buffer.len(),
                p.num_values,
                p.is_sorted,
            ))
        }
    })
}

/// How a column of a row group is written.
enum TextPlan {
    /// With this dictionary (built while the column was looked at).
    Dictionary(DictionaryArray<u32>),
    /// Plain: the values are ids or event times, nearly all distinct, or all null.
    Plain,
    /// As Polars decides (an estimate of the distinct count, then a dictionary or plain).
    PolarsChoice,
}

/// Looks at a text column once: a dictionary if it has few distinct values, plain if its values look like
/// ids (the first `SMALL_DICTIONARY` all distinct), else Polars' choice.
fn plan_text(a: &Utf8ViewArray) -> TextPlan {
    if a.is_empty() {
        return TextPlan::PolarsChoice;
    }
    if a.null_count() == a.len() {
        // All null (a bill without terminals or operators): nothing but the nulls to write. Polars would
        // estimate the distinct count and build a dictionary of no values.
        return TextPlan::Plain;
    }
    let views = a.views();
    // Values of at most 12 bytes are looked up by their view (length and bytes, zero-padded: equal views
    // are equal values), longer ones by their text: the short values of a row group's few distinct ones
    // (kinds, statuses, most product names) cost no hash of their bytes and no comparison of them.
    let mut short: HashMap<u128, u32, foldhash::fast::FixedState> = HashMap::default();
    let mut long: HashMap<&str, u32, foldhash::fast::FixedState> = HashMap::default();
    let mut values: Vec<&str> = Vec::new();
    let mut keys: Vec<u32> = Vec::with_capacity(a.len());
    // The view and key of the last value looked up: equal views are equal values (a view holds the
    // length and the first bytes, and either the rest of a short value or where a long one is stored).
    let mut last: Option<(u128, u32)> = None;
    let mut repeated = 0usize;
    let no_nulls = a.null_count() == 0;
    let mut i = 0;
    while let Some(view) = views.get(i) {
        // A run of the last value (most rows of a column of a handful of values: the kind, the channel,
        // the currency) is passed over a view at a time and its keys written at once. Without nulls only:
        // a null's view is that of an empty value.
        if let (Some((v, k)), true) = (last, no_nulls) {
            let mut end = i;
            while views.get(end).is_some_and(|w| w.as_u128() == v) {
                crate::prefetch::prefetch_views(views, end);
                end += 1;
            }
            if end > i {
                keys.extend(std::iter::repeat_n(k, end - i));
                repeated += end - i;
                i = end;
                continue;
            }
        }
        // The views were written by a parser a while ago and are read here first, in order: a fetch ahead
        // crosses the pages where the processor's own stops (half of this loop's time was the loads).
        crate::prefetch::prefetch_views(views, i);
        let at = i;
        i += 1;
        if a.is_null(at) {
            keys.push(0);
            continue;
        }
        let is_short = view.length <= View::MAX_INLINE_SIZE;
        let view = view.as_u128();
        if let Some((v, k)) = last {
            if v == view {
                repeated += 1;
                keys.push(k);
                continue;
            }
        }
        // SAFETY: at < a.len() (the views are the array's own).
        let value = unsafe { a.value_unchecked(at) };
        let found = if is_short { short.get(&view) } else { long.get(value) };
        let key = match found {
            Some(&k) => {
                repeated += 1;
                k
            }
            None => {
                if values.len() == SMALL_DICTIONARY {
                    // Ids are never repeated; a column that repeats some values (customer keys) may still
                    // be worth a dictionary over the whole row group, which Polars estimates.
                    return if repeated == 0 {
                        TextPlan::Plain
                    } else {
                        TextPlan::PolarsChoice
                    };
                }
                let k = values.len() as u32;
                values.push(value);
                if is_short {
                    short.insert(view, k);
                } else {
                    long.insert(value, k);
                }
                k
            }
        };
        last = Some((view, key));
        keys.push(key);
    }
    if values.is_empty() {
        return TextPlan::Plain; // all null (looked at above)
    }
    if repeated == 0 {
        return TextPlan::Plain; // a short row group of ids: a dictionary would only add the keys
    }
    let keys = PrimitiveArray::<u32>::new(ArrowDataType::UInt32, keys.into(), a.validity().cloned());
    let values = Utf8ViewArray::from_slice_values(&values);
    let dtype = ArrowDataType::Dictionary(IntegerType::UInt32, Box::new(ArrowDataType::Utf8View), false);
    match DictionaryArray::try_new(dtype, keys, values.boxed()) {
        Ok(d) => TextPlan::Dictionary(d),
        Err(_) => TextPlan::PolarsChoice,
    }
}

/// Gives every column the chunk lengths of the frame's first chunked column, without copying the
/// chunked columns: a constant column (a file's format and digest) is built per chunk, and a column
/// chunked otherwise (one file's digest over a file of several chunks) is sliced to those lengths.
fn align_chunks_cheaply(df: &mut DataFrame) -> PolarsResult<()> {
    let lengths: Vec<usize> = match df.columns().iter().find_map(|c| c.as_series()) {
        Some(s) => s.chunk_lengths().collect(),
        None => return Ok(()),
    };
    if lengths.len() <= 1 {
        return Ok(());
    }
    for name in df.get_column_names_owned() {
        let c = df.column(&name)?;
        if c.as_series()
            .is_some_and(|s| s.chunk_lengths().eq(lengths.iter().copied()))
        {
            continue;
        }
        let (whole, constant) = match c.as_scalar_column() {
            Some(sc) => (sc.as_single_value_series(), true),
            None => (c.as_materialized_series().rechunk(), false),
        };
        let mut aligned: Option<Series> = None;
        let mut offset = 0;
        for &len in &lengths {
            let part = if constant {
                whole.new_from_index(0, len)
            } else {
                whole.slice(offset as i64, len)
            };
            offset += len;
            match &mut aligned {
                Some(a) => {
                    a.append_owned(part)?;
                }
                None => aligned = Some(part),
            }
        }
        if let Some(a) = aligned {
            df.replace(&name, a.into_column())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text columns of each kind, with nulls and values longer than a view holds, written in two row
    /// groups: what is read back is the frame, and (read with the `parquet` crate, not Polars) the columns
    /// of few values have a dictionary page, the ids none.
    #[test]
    fn text_columns_get_their_encoding_and_read_back_whole() {
        // splitmix64's finaliser: near-random bits, as a keyed hash's are.
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let n = ROW_GROUP_ROWS + 1000;
        let products = [
            "拿铁咖啡（大杯，燕麦奶）",
            "可颂",
            "拿铁咖啡（大杯，燕麦奶）",
            "全麦欧包配坚果与蔓越莓",
        ];
        let whole = df!(
            "event_id" => (0..n).map(|i| format!("wx:4200002{i:012}")).collect::<Vec<_>>(),
            "kind" => (0..n).map(|i| (i % 7 != 3).then_some(if i % 50 == 0 { "refund" } else { "payment" })).collect::<Vec<_>>(),
            // Each value a string of its own: equal values in different places of the buffers.
            "product_name" => (0..n).map(|i| products[(i / 3) % products.len()].to_string()).collect::<Vec<_>>(),
            "customer_key" => (0..n).map(|i| format!("{:032x}", (i * 7919) % 6000)).collect::<Vec<_>>(),
            "refund_id" => (0..n).map(|_| None::<&str>).collect::<Vec<_>>(),
            // No nulls, runs of every length (empty text among them, whose view is a null's).
            "status" => (0..n).map(|i| ["SUCCESS", "", "REFUND", "一个超过十二字节的状态"][(i * i / 977) % 4]).collect::<Vec<_>>(),
            "amount_fen" => (0..n as i64).collect::<Vec<_>>(),
            // Keyed hashes of many customers, some repeated: plain, and entropy-coded only (`zstd_mode`).
            "payer_key" => (0..n).map(|i| format!("{:016x}{:016x}", mix(i as u64 % 50_000), mix((i as u64 % 50_000) << 32 | 1))).collect::<Vec<_>>(),
        )
        .expect("a frame");
        // Two chunks, as two ingest chunks of a month would be.
        let mut df = whole.slice(0, ROW_GROUP_ROWS);
        df.vstack_mut(&whole.slice(ROW_GROUP_ROWS as i64, n))
            .expect("same schema");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.parquet");
        let mut written = df.clone();
        write_row_groups(&File::create(&path).expect("create"), &mut written).expect("written");
        let back = crate::store::read_parquet(&path).expect("read back");
        assert!(back.equals_missing(&whole), "{back:?}\n{whole:?}");

        let reader = parquet::file::serialized_reader::SerializedFileReader::new(File::open(&path).expect("open"))
            .expect("parquet");
        let meta = parquet::file::reader::FileReader::metadata(&reader);
        assert_eq!(meta.num_row_groups(), 2);
        for (i, g) in meta.row_groups().iter().enumerate() {
            let column = |name: &str| {
                g.columns()
                    .iter()
                    .find(|c| c.column_path().string() == name)
                    .expect("column")
            };
            let dictionary = |name: &str| column(name).dictionary_page_offset().is_some();
            assert!(dictionary("kind"));
            assert!(dictionary("product_name"));
            assert!(dictionary("status"));
            assert!(!dictionary("event_id"));
            assert!(!dictionary("payer_key"));
            assert!(!dictionary("refund_id"), "all null: no dictionary");
            let stats = |name: &str| {
                let c = column(name);
                // No column index: Polars' would mark a page of ids (no min or max) as all null, and
                // DuckDB would then skip it when filtering.
                assert_eq!(c.column_index_offset(), None, "{name}");
                let s = c.statistics().expect("statistics");
                (
                    s.null_count_opt(),
                    s.min_bytes_opt().map(<[u8]>::to_vec),
                    s.max_bytes_opt().map(<[u8]>::to_vec),
                )
            };
            // Ids: null counts only. Columns of few values and numbers: their range as well.
            assert_eq!(stats("event_id"), (Some(0), None, None));
            assert_eq!(stats("refund_id").0, Some(g.num_rows() as u64));
            let (nulls, min, max) = stats("kind");
            assert!(nulls.unwrap() > 0);
            assert_eq!(
                (min.as_deref(), max.as_deref()),
                (Some(&b"payment"[..]), Some(&b"refund"[..]))
            );
            let first = i as i64 * ROW_GROUP_ROWS as i64;
            let (_, min, max) = stats("amount_fen");
            assert_eq!(min, Some(first.to_le_bytes().to_vec()));
            assert_eq!(max, Some((first + g.num_rows() - 1).to_le_bytes().to_vec()));
        }
        // The text as the `parquet` crate decodes it (its own zstd reader).
        let file = File::open(&path).expect("open");
        let batches = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        let mut texts: HashMap<&str, Vec<Option<String>>> = HashMap::new();
        for batch in batches {
            let batch = batch.expect("a batch");
            for name in ["event_id", "payer_key", "customer_key"] {
                let c = batch.column_by_name(name).expect("column");
                let c = arrow::array::AsArray::as_string_view(c);
                texts
                    .entry(name)
                    .or_default()
                    .extend(c.iter().map(|v| v.map(str::to_string)));
            }
        }
        for (name, got) in texts {
            let want: Vec<Option<String>> = whole
                .column(name)
                .expect("column")
                .str()
                .expect("text")
                .iter()
                .map(|v| v.map(str::to_string))
                .collect();
            assert!(got == want, "{name} differs as the parquet crate reads it");
        }
    }

    /// Pages of keyed hashes in hex are entropy-coded only; pages of ids with shared prefixes, and small
    /// pages, get level 1.
    #[test]
    fn a_page_is_compressed_for_what_it_holds() {
        let mut hex = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..4000 {
            // A plain page's value: its length in 4 bytes, then 32 near-random hex digits (xorshift64), as
            // keyed hashes are.
            hex.extend(32u32.to_le_bytes());
            for _ in 0..2 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                hex.extend(format!("{x:016x}").bytes());
            }
        }
        assert_eq!(zstd_mode(&hex).unwrap(), ZstdMode::Literals);
        let ids: Vec<u8> = (0..4000)
            .flat_map(|i| format!("wx:4200002{i:012}").into_bytes())
            .collect();
        assert_eq!(zstd_mode(&ids).unwrap(), ZstdMode::Matches);
        assert_eq!(zstd_mode(&hex[..SAMPLED_PAGE - 1]).unwrap(), ZstdMode::Matches);
        // Either way a zstd frame of the bytes.
        let frame = zstd_frame(&hex, ZstdMode::Literals).unwrap();
        assert!(frame.len() < hex.len() * 11 / 20, "{} of {}", frame.len(), hex.len());
        assert_eq!(zstd::bulk::decompress(&frame, hex.len()).unwrap(), hex);
    }
}
