//! Result tables as CSV for Excel: UTF-8 with BOM, the header in the report's language, segment names and
//! value labels translated, empty cells for nulls. The Parquet beside each CSV keeps the stable names.
//!
//! The customer table and the target lists run to a million rows: cells are formatted a column and a slice
//! of rows at a time into one text buffer per column (no string per cell), and the rows go straight to the
//! file through a buffer.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use foldhash::fast::RandomState;
use polars::prelude::*;

use crate::analyze::date_of;

/// Columns whose values are segment names, and columns whose values are labels from the catalogue's
/// `value` table: both (and `urgency`) are shown in the report's language (the Parquet keeps the stable
/// names).
const SEGMENT_COLUMNS: [&str; 4] = ["segment", "previous_segment", "from_segment", "to_segment"];
const VALUE_COLUMNS: [&str; 6] = ["window", "channel", "key_quality", "demand_class", "measure", "step"];

/// Rows formatted at a time: keeps the formatted text small. (65,536 rows made the customer table's
/// buffers grow to about 8 MB of rows and as much in cells, each new page of them a fault: 8,192 keep a
/// tenth of the 1M report's page faults away, the work per slice being a few column lookups.)
const SLICE_ROWS: usize = 8_192;

/// Writes `df` to `path` (through a temporary file renamed into place, so a reader never sees half a
/// table).
pub fn write_csv(df: &DataFrame, path: &Path) -> Result<()> {
    let tmp = path.with_extension("csv.tmp");
    let written = write_to(df, &tmp)
        .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_to(df: &DataFrame, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 18, file);
    let names = df.get_column_names();
    let mut rows = vec![0xEF, 0xBB, 0xBF];
    let header: Vec<String> = names.iter().map(|s| crate::i18n::name("column", s)).collect();
    for (j, name) in header.iter().enumerate() {
        push_field(
            &mut rows,
            name.as_bytes(),
            true,
            j + 1 == header.len(),
            header.len() == 1,
        );
    }
    if header.is_empty() {
        rows.push(b'\n');
    }
    let mut columns: Vec<Cells> = names
        .iter()
        .map(|n| Cells {
            translate: translation_table(n),
            ..Cells::default()
        })
        .collect();
    let mut offset = 0;
    while offset < df.height() {
        let part = df.slice(offset as i64, SLICE_ROWS);
        for (c, cells) in part.columns().iter().zip(&mut columns) {
            cells.fill(c)?;
        }
        // A column none of whose cells needs quotes (numbers, dates, most text) is not looked at cell by
        // cell.
        let may_need_quotes: Vec<bool> = columns.iter().map(|c| needs_quotes(c.text.as_bytes())).collect();
        let last = columns.len() - 1;
        for i in 0..part.height() {
            for (j, cells) in columns.iter().enumerate() {
                push_field(&mut rows, cells.get(i), may_need_quotes[j], j == last, last == 0);
            }
        }
        out.write_all(&rows)
            .with_context(|| format!("writing {}", path.display()))?;
        rows.clear();
        offset += SLICE_ROWS;
    }
    out.write_all(&rows)
        .and_then(|()| out.flush())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Whether a cell needs quotes in CSV: it holds a comma, a quote or a line break.
fn needs_quotes(cell: &[u8]) -> bool {
    cell.iter().any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
}

/// Appends one cell and the comma or line end after it, quoted as the `csv` crate quotes (only when
/// needed, quotes doubled; the one cell of a one-column row quoted when empty, so the row is not blank).
/// `may_need_quotes`: false when the cell is known to hold nothing that needs them.
fn push_field(out: &mut Vec<u8>, cell: &[u8], may_need_quotes: bool, last: bool, only: bool) {
    if (may_need_quotes && needs_quotes(cell)) || (only && cell.is_empty()) {
        out.push(b'"');
        for &b in cell {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(cell);
    }
    out.push(if last { b'\n' } else { b',' });
}

/// The catalogue table a column's values are translated with, if any.
fn translation_table(column: &str) -> Option<&'static str> {
    if SEGMENT_COLUMNS.contains(&column) {
        Some("segment")
    } else if column == "urgency" {
        Some("urgency")
    } else if VALUE_COLUMNS.contains(&column) {
        Some("value")
    } else {
        None
    }
}

/// One column's cells of a slice of rows as CSV text: cell i is `text[ends[i - 1]..ends[i]]`.
#[derive(Default)]
struct Cells {
    text: String,
    ends: Vec<usize>,
    translate: Option<&'static str>,
    /// Values translated so far (few distinct ones: segment names, channels), and days formatted so far.
    translated: HashMap<String, String, RandomState>,
    days: HashMap<i32, String, RandomState>,
}

impl Cells {
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text.as_bytes()[start..self.ends[i]]
    }

    /// Formats the cells of `c`, replacing the previous slice's.
    fn fill(&mut self, c: &Column) -> Result<()> {
        self.text.clear();
        self.ends.clear();
        let mut ints = itoa::Buffer::new();
        match c.dtype() {
            DataType::String => {
                for v in c.str()?.iter() {
                    self.text.push_str(v.unwrap_or(""));
                    self.end_cell();
                }
            }
            DataType::Date => {
                let days = c.cast(&DataType::Int32)?;
                for d in days.i32()?.iter() {
                    if let Some(d) = d {
                        let text = self.days.entry(d).or_insert_with(|| date_of(d).to_string());
                        self.text.push_str(text);
                    }
                    self.end_cell();
                }
            }
            DataType::Float64 => {
                for v in c.f64()?.iter() {
                    if let Some(v) = v {
                        push_float(&mut self.text, v);
                    }
                    self.end_cell();
                }
            }
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => {
                let v = c.cast(&DataType::Int64)?;
                for v in v.i64()?.iter() {
                    if let Some(v) = v {
                        self.text.push_str(ints.format(v));
                    }
                    self.end_cell();
                }
            }
            _ => {
                for i in 0..c.len() {
                    if let Some(v) = c.get(i).ok().filter(|v| !v.is_null()) {
                        self.text.push_str(&cell_text(&v));
                    }
                    self.end_cell();
                }
            }
        }
        Ok(())
    }

    /// Ends the cell written last, translating it when the column is translated.
    fn end_cell(&mut self) {
        let start = self.ends.last().copied().unwrap_or(0);
        if let Some(table) = self.translate.filter(|_| self.text.len() > start) {
            let value = &self.text[start..];
            let shown = match self.translated.get(value) {
                Some(t) => t,
                None => {
                    let t = crate::i18n::name(table, value);
                    self.translated.entry(value.to_string()).or_insert(t)
                }
            };
            if shown != &self.text[start..] {
                let shown = shown.clone();
                self.text.truncate(start);
                self.text.push_str(&shown);
            }
        }
        self.ends.push(self.text.len());
    }
}

/// A float as [`cell_text`] writes it; amounts in yuan (a whole number of fen, most of the floats in the
/// tables) without the general formatter: the nearest double to `c / 100` prints as `c / 100` at six
/// decimals, so the fen give the same digits.
fn push_float(out: &mut String, f: f64) {
    let cents = (f * 100.0).round();
    if cents.abs() < 1e15 && cents / 100.0 == f {
        let c = cents as i64;
        if c < 0 {
            out.push('-');
        }
        let (whole, frac) = (c.abs() / 100, c.abs() % 100);
        out.push_str(itoa::Buffer::new().format(whole));
        if frac != 0 {
            out.push('.');
            out.push(char::from(b'0' + (frac / 10) as u8));
            if frac % 10 != 0 {
                out.push(char::from(b'0' + (frac % 10) as u8));
            }
        }
        return;
    }
    out.push_str(&cell_text(&AnyValue::Float64(f)));
}

fn cell_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Null => String::new(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Date(d) => date_of(*d).to_string(),
        AnyValue::Float64(f) => {
            let s = format!("{f:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".into()
            } else {
                s.to_string()
            }
        }
        AnyValue::Float32(f) => format!("{f}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_as_the_general_formatter_prints_them() {
        let mut next = crate::analytics::testing::pseudo_random(3);
        let mut values: Vec<f64> = (-2000..2000).map(|c| c as f64 / 100.0).collect();
        values.extend((0..20_000).map(|_| (next(1 << 40) as f64 - (1u64 << 39) as f64) / 100.0));
        values.extend([0.1 + 0.2, 1.0 / 3.0, -0.0, 1e-7, 123456.789, 2.5e14, 0.125]);
        for v in values {
            let mut fast = String::new();
            push_float(&mut fast, v);
            assert_eq!(fast, cell_text(&AnyValue::Float64(v)), "{v:?}");
        }
    }

    #[test]
    fn cells_of_every_kind_and_quoting() {
        let df = df!(
            "customer_key" => ["a", "b,c", "d\"e"],
            "label" => [Some("x"), None, Some("")],
            "day" => [Some(0i32), None, Some(20_000)],
            "n" => [Some(1u32), None, Some(4_000_000_000)],
            "yuan" => [Some(12.5), Some(-0.05), None],
            "ok" => [Some(true), None, Some(false)],
        )
        .unwrap()
        .lazy()
        .with_column(col("day").cast(DataType::Date))
        .collect()
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        write_csv(&df, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let body: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            body,
            [
                "a,x,1970-01-01,1,12.5,true",
                "\"b,c\",,,,-0.05,",
                "\"d\"\"e\",,2024-10-04,4000000000,,false"
            ]
        );
        assert!(text.starts_with('\u{feff}'));
        assert!(!dir.path().join("t.csv.tmp").exists());
    }

    /// The `csv` crate's writer as the independent reference for quoting: random text cells with commas,
    /// quotes, line breaks and empties, in frames of one and of three columns.
    #[test]
    fn quoting_matches_the_csv_crate() {
        let mut next = crate::analytics::testing::pseudo_random(11);
        let pieces = ["a", "拿铁", ",", "\"", "\r", "\n", " ", ""];
        let mut cell = || -> Option<String> {
            match next(10) {
                0 => None,
                _ => Some(
                    (0..next(4))
                        .map(|_| pieces[next(pieces.len() as u64) as usize])
                        .collect(),
                ),
            }
        };
        for width in [1, 3] {
            let n = 500;
            let columns: Vec<Column> = (0..width)
                .map(|j| Column::new(format!("c{j}").into(), (0..n).map(|_| cell()).collect::<Vec<_>>()))
                .collect();
            let df = DataFrame::new(n, columns).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.csv");
            write_csv(&df, &path).unwrap();
            let mut want = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
            want.write_record(df.get_column_names().iter().map(|s| s.as_str()))
                .unwrap();
            for i in 0..n {
                let row: Vec<String> = df
                    .columns()
                    .iter()
                    .map(|c| c.str().unwrap().get(i).unwrap_or("").to_string())
                    .collect();
                want.write_record(&row).unwrap();
            }
            assert_eq!(
                std::fs::read(&path).unwrap(),
                want.into_inner().unwrap(),
                "{width} columns"
            );
        }
    }

    #[test]
    fn rows_across_slices() {
        let n = SLICE_ROWS as i64 * 2 + 7;
        let df = df!("i" => (0..n).collect::<Vec<_>>(), "segment" => (0..n).map(|i| ["Champions", "Lost"][(i % 2) as usize]).collect::<Vec<_>>()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        write_csv(&df, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines().skip(1);
        for i in 0..n {
            let want = format!("{i},{}", crate::i18n::segment(["Champions", "Lost"][(i % 2) as usize]));
            assert_eq!(lines.next(), Some(want.as_str()));
        }
        assert_eq!(lines.next(), None);
    }
}
