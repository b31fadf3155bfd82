//! Cell rules shared by every export dialect: trimming (backticks, TABs, padding), the `/` empty marker,
//! exact decimal money (integer fen, fees in 1/1000 fen), local bill times to UTC instants, and the text
//! decoding of whole files (BOM, UTF-8, GB18030). Dialect modules call these; none re-implements them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Fen per yuan.
pub const FEN: i64 = 100;
/// Fees are kept in 1/1000 fen, the 5 decimals of yuan the WeChat bill prints (`0.04000`).
pub const MILLIFEN_PER_FEN: i64 = 1000;

/// Strips what the platforms wrap cells in: spaces, TABs, CR, one leading backtick (WeChat merchant),
/// surrounding double quotes, and full-width spaces.
#[inline]
pub fn clean_cell(raw: &str) -> &str {
    // Most cells of a bill (`` `4200001234 ``, `` `SUCCESS ``, `JSAPI`) begin, after at most a backtick,
    // and end with a printable ASCII byte: nothing to trim. Bytes above `"` (0x22) are none of the
    // padding, the quote or the first and last byte of a full-width space.
    let b = raw.as_bytes();
    if let Some(&last) = b.last() {
        let start = usize::from(b[0] == b'`');
        if let Some(&first) = b.get(start) {
            if (b'#'..0x80).contains(&first) && (b'#'..0x80).contains(&last) {
                // SAFETY: `start` is 0 or 1, past an ASCII backtick: a char boundary.
                return unsafe { raw.get_unchecked(start..) };
            }
        }
    }
    clean_cell_padded(raw)
}

/// [`clean_cell`] of a cell that may need trimming.
fn clean_cell_padded(raw: &str) -> &str {
    // The common cells (`` `SUCCESS ``, `28.00\t`) need no char decoding: ASCII padding and the backtick
    // are trimmed by bytes, and the general way is taken only when an end still has padding, a quote or
    // a full-width space (U+3000, `E3 80 80`), which the general way trims.
    let b = raw.as_bytes();
    let pad = |c: u8| c == b' ' || c == b'\t' || c == b'\r';
    let (mut start, mut end) = (0, b.len());
    while start < end && pad(b[start]) {
        start += 1;
    }
    while end > start && pad(b[end - 1]) {
        end -= 1;
    }
    if start < end && b[start] == b'`' {
        start += 1;
    }
    const IDEOGRAPHIC_SPACE: &[u8] = "\u{3000}".as_bytes();
    let inner = &b[start..end];
    let clean_start = inner.first().is_none_or(|&c| !pad(c) && c != b'"') && !inner.starts_with(IDEOGRAPHIC_SPACE);
    let clean_end = inner.last().is_none_or(|&c| !pad(c) && c != b'"') && !inner.ends_with(IDEOGRAPHIC_SPACE);
    if clean_start && clean_end {
        // start and end only passed ASCII bytes: both are char boundaries.
        return &raw[start..end];
    }
    clean_cell_general(raw)
}

fn clean_cell_general(raw: &str) -> &str {
    let trimmed = raw.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\u{3000}');
    let trimmed = trimmed.strip_prefix('`').unwrap_or(trimmed);
    let trimmed = if trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"') {
        &trimmed[1..trimmed.len() - 1]
    } else {
        trimmed
    };
    trimmed.trim_matches(|c: char| c == ' ' || c == '\t')
}

/// A cleaned cell, or `None` when it is empty or the platforms' `/` placeholder.
pub fn opt_cell(raw: &str) -> Option<&str> {
    let c = clean_cell(raw);
    (!c.is_empty() && c != "/").then_some(c)
}

/// Parses a decimal amount exactly into an integer scaled by `10^scale`.
/// Accepts a sign, `¥`/`￥`, thousands separators and up to `scale` decimals (more are accepted only
/// when they are zeros). Rejects floats in scientific notation and anything else.
pub fn parse_scaled(raw: &str, scale: u32) -> Result<i64, String> {
    // A cell the caller already cleaned (or that needs no cleaning) is read as it is: a plain decimal has
    // nothing to clean, so this is what cleaning first would give.
    if let Some(v) = plain_decimal(raw.as_bytes(), scale) {
        return Ok(v);
    }
    // Cleaning only trims: a cell of the same length is the same cell, already tried above.
    let s = clean_cell(raw);
    match (s.len() < raw.len())
        .then(|| plain_decimal(s.as_bytes(), scale))
        .flatten()
    {
        Some(v) => Ok(v),
        None => parse_scaled_general(raw, scale),
    }
}

fn parse_scaled_general(raw: &str, scale: u32) -> Result<i64, String> {
    let s = clean_cell(raw);
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let s = s.trim_start_matches(['¥', '￥']).trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) if !neg => (true, r),
        _ => (neg, s),
    };
    if s.is_empty() {
        return Err(crate::tr!("reject.amount_empty", raw = raw));
    }
    let (int_part, frac_part) = s.split_once('.').unwrap_or((s, ""));
    // Thousands separators are dropped; nothing else but digits may stand before the point.
    let int_digits = int_part.bytes().filter(|&b| b != b',');
    let bad = |why: String| Err(crate::tr!("reject.amount", raw = raw.trim(), why = why));
    if int_digits.clone().next().is_none() && frac_part.is_empty()
        || !int_digits.clone().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return bad(crate::tr!("reject.not_a_number").to_string());
    }
    if frac_part.len() > scale as usize && frac_part[scale as usize..].bytes().any(|b| b != b'0') {
        return bad(crate::tr!("reject.too_many_decimals", scale = scale));
    }
    let mut value: i64 = 0;
    for b in int_digits {
        value = match value.checked_mul(10).and_then(|v| v.checked_add((b - b'0') as i64)) {
            Some(v) => v,
            None => return bad(crate::tr!("reject.too_large").to_string()),
        };
    }
    let mut frac: i64 = 0;
    for i in 0..scale as usize {
        let d = frac_part.as_bytes().get(i).map_or(0, |b| (b - b'0') as i64);
        frac = frac * 10 + d;
    }
    let total = value.checked_mul(10i64.pow(scale)).and_then(|v| v.checked_add(frac));
    match total {
        Some(t) => Ok(if neg { -t } else { t }),
        None => bad(crate::tr!("reject.too_large").to_string()),
    }
}

/// The form nearly every amount cell has, `-?digits(.digits)?` with at most `scale` decimals and at most
/// 18 digits once scaled, read without the general path's checks; anything else is `None`.
fn plain_decimal(b: &[u8], scale: u32) -> Option<i64> {
    // One pass over the bytes (every row has 6-9 amounts): the digits before the point, then those after.
    const POW10: [i64; 19] = {
        let mut p = [1i64; 19];
        let mut i = 1;
        while i < 19 {
            p[i] = p[i - 1] * 10;
            i += 1;
        }
        p
    };
    let (neg, b) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    let scale = scale as usize;
    let mut v: i64 = 0;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        // At most 18 digits in all: no overflow.
        if i + scale >= 18 {
            return None;
        }
        v = v * 10 + i64::from(d);
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut decimals = 0;
    if let Some(&c) = b.get(i) {
        if c != b'.' || i + 1 == b.len() {
            return None;
        }
        for &c in &b[i + 1..] {
            let d = c.wrapping_sub(b'0');
            if d > 9 || decimals == scale {
                return None;
            }
            v = v * 10 + i64::from(d);
            decimals += 1;
        }
    }
    let v = v * POW10[scale - decimals];
    Some(if neg { -v } else { v })
}

/// Yuan with up to 2 decimals to integer fen.
pub fn parse_fen(raw: &str) -> Result<i64, String> {
    parse_scaled(raw, 2)
}

/// Yuan with up to 5 decimals (WeChat fees) to 1/1000 fen.
pub fn parse_millifen(raw: &str) -> Result<i64, String> {
    parse_scaled(raw, 5)
}

/// An amount cell that may be empty (empty means 0).
pub fn parse_fen_or_zero(raw: &str) -> Result<i64, String> {
    opt_cell(raw).map_or(Ok(0), parse_fen)
}

/// A fee cell that may be empty (empty means 0), in 1/1000 fen.
pub fn parse_millifen_or_zero(raw: &str) -> Result<i64, String> {
    opt_cell(raw).map_or(Ok(0), parse_millifen)
}

/// Formats fen as yuan with two decimals (`-1234` -> `-12.34`).
pub fn format_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / FEN, fen.abs() % FEN)
}

/// Parses a local bill time: `2019-07-25 08:35:41`, full-width colons, `2019/9/26 12:45` (Excel re-save,
/// seconds lost), `2019-07-25T08:35:41`, or a date alone (midnight).
pub fn parse_local_time(raw: &str) -> Result<NaiveDateTime, String> {
    if let Some(t) = fast_local_time(raw) {
        return Ok(t);
    }
    let s: String = clean_cell(raw)
        .chars()
        .map(|c| match c {
            '：' => ':',
            'T' => ' ',
            c => c,
        })
        .collect();
    let s = s.trim();
    const FORMATS: [&str; 6] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%Y%m%d %H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ];
    for f in FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t);
        }
    }
    for f in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists"));
        }
    }
    Err(crate::tr!("reject.time", raw = raw.trim()))
}

/// `YYYY-MM-DD HH:MM:SS` (after the cell's backtick or TAB padding), the form nearly every bill row has,
/// without allocating; anything else goes the general way.
fn fast_local_time(raw: &str) -> Option<NaiveDateTime> {
    // Already clean (19 bytes, digits where digits go) or cleaned here: the same bytes either way.
    let b = if raw.len() == 19 { raw } else { clean_cell(raw) }.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter()
            .try_fold(0u32, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + (d - b'0') as u32))
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?.and_hms_opt(
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )
}

/// Parses with an explicit chrono format (generic CSV mappings), falling back to the built-in forms.
pub fn parse_local_time_with(raw: &str, format: Option<&str>) -> Result<NaiveDateTime, String> {
    if let Some(f) = format {
        let s = clean_cell(raw);
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t);
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists"));
        }
    }
    parse_local_time(raw)
}

/// Local wall time in `tz` to a UTC instant. The bills' zone has no DST; for a zone that does, an
/// ambiguous time takes the earlier instant and a skipped one is an error.
pub fn to_utc(local: NaiveDateTime, tz: Tz) -> Result<DateTime<Utc>, String> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("time {local} does not exist in zone {tz}"))
}

/// Local bill times to UTC instants, with the zone's offset looked up once a local day: bills run in time
/// order, and a zone lookup for every row (`to_utc`) was about 3 % of a large bill's ingest. A day on which
/// the zone's offset changes (or may: a time at its start, middle or end that is missing or ambiguous) is
/// never taken from the cache: its times go through `to_utc` one by one.
pub struct ToUtc {
    tz: Tz,
    /// The last local date looked up, and the offset (seconds east of UTC) the zone keeps all that day.
    day: std::cell::Cell<Option<(NaiveDate, Option<i32>)>>,
}

impl ToUtc {
    pub fn new(tz: Tz) -> ToUtc {
        ToUtc {
            tz,
            day: std::cell::Cell::new(None),
        }
    }

    /// What `to_utc` gives.
    pub fn convert(&self, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
        let date = local.date();
        let offset = match self.day.get() {
            Some((d, offset)) if d == date => offset,
            _ => {
                let offset = whole_day_offset(date, self.tz);
                self.day.set(Some((date, offset)));
                offset
            }
        };
        match offset {
            Some(east) => Ok((local - chrono::Duration::seconds(i64::from(east))).and_utc()),
            None => to_utc(local, self.tz),
        }
    }
}

/// The zone's offset (seconds east of UTC) on a local date it keeps all day: the same, and unambiguous, at
/// 00:00, 12:00 and 23:59:59 (a zone changes its offset at most once a day). `None` on a day of a change.
fn whole_day_offset(date: NaiveDate, tz: Tz) -> Option<i32> {
    use chrono::Offset;
    let at = |h, m, s| -> Option<i32> {
        let t = tz.from_local_datetime(&date.and_hms_opt(h, m, s)?).single()?;
        Some(t.offset().fix().local_minus_utc())
    };
    let first = at(0, 0, 0)?;
    (at(12, 0, 0)? == first && at(23, 59, 59)? == first).then_some(first)
}

/// An Excel serial date (days since 1899-12-30, fraction = time of day) to a local time.
pub fn excel_serial_to_local(serial: f64) -> Option<NaiveDateTime> {
    if !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let base = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
    let secs = (serial * 86_400.0).round() as i64;
    base.checked_add_signed(chrono::Duration::seconds(secs))
}

/// Checks a platform id: digits or letters; an Excel-mangled id like `4.20000E+27` is unrecoverable.
pub fn check_id<'a>(raw: &'a str, what: &str) -> Result<&'a str, String> {
    let c = clean_cell(raw);
    let b = c.as_bytes();
    // A `+` is looked for first (one search call): ids have none.
    let exponent = b.contains(&b'+') && b.windows(2).any(|w| (w[0] | 0x20) == b'e' && w[1] == b'+');
    if exponent && b.contains(&b'.') {
        return Err(crate::tr!("reject.scientific_id", what = what, id = c));
    }
    Ok(c)
}

/// The text encoding a file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Gb18030,
}

impl TextEncoding {
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Gb18030 => "GBK/GB18030",
        }
    }
}

/// Guesses the encoding from the first bytes: a UTF-8 BOM or valid UTF-8 (allowing a character cut at
/// the end of the sample) means UTF-8; anything else is read as GB18030, the superset of GBK.
pub fn sniff_encoding(sample: &[u8]) -> TextEncoding {
    if sample.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return TextEncoding::Utf8;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => TextEncoding::Utf8,
        Err(e) if e.error_len().is_none() => TextEncoding::Utf8,
        Err(_) => TextEncoding::Gb18030,
    }
}

/// Decodes one line (or a whole small file) in the given encoding, dropping a UTF-8 BOM and a trailing CR.
/// Invalid bytes become U+FFFD; the caller sees them as unreadable cells, never as a panic.
pub fn decode(bytes: &[u8], enc: TextEncoding) -> String {
    let mut out = String::new();
    decode_into(bytes, enc, &mut out);
    out
}

/// [`decode`] appending to `out`, without an allocation of its own once `out` has grown to a line's size.
pub fn decode_into(bytes: &[u8], enc: TextEncoding, out: &mut String) {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match enc {
        // simdutf8 checks a line of mostly ASCII with some Chinese several times faster than std.
        TextEncoding::Utf8 => match simdutf8::basic::from_utf8(bytes) {
            Ok(s) => out.push_str(s),
            Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
        },
        TextEncoding::Gb18030 => {
            let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
            let start = out.len();
            out.reserve(
                decoder
                    .max_utf8_buffer_length(bytes.len())
                    .unwrap_or(bytes.len() * 3 + 16),
            );
            let (result, _, _) = decoder.decode_to_string(bytes, out, true);
            if result != encoding_rs::CoderResult::InputEmpty {
                // Cannot happen with the space reserved above; decode the slow way rather than lose text.
                out.truncate(start);
                out.push_str(&encoding_rs::GB18030.decode_without_bom_handling(bytes).0);
            }
        }
    }
}

/// Splits one CSV line the way these exports need: commas separate, double quotes group (with `""` as
/// an escaped quote), and stray TABs or spaces after a closing quote (WeChat personal, 2025-04 on) are
/// tolerated. Cells are returned raw; callers clean them with [`clean_cell`].
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(32);
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' if in_quotes => in_quotes = false,
            '"' if cur.trim_matches([' ', '\t', '`']).is_empty() => {
                cur.clear();
                in_quotes = true;
            }
            ',' if !in_quotes => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The cells of a line split at every comma (what `line.split(',')` gives, faster: the merchant bills
/// have millions of lines of 20-30 cells), and whether the line has a double quote: such a line goes
/// through [`split_csv_line`] instead. The quotes are looked for in the same pass, not by a search first.
pub fn split_commas<'a>(line: &'a str, cells: &mut Vec<&'a str>) -> bool {
    cells.clear();
    // Commas are dense in a bill line (one in every 8 or 9 bytes), where a search call per comma costs
    // more than finding them a block at a time: each comma of a block of 32 bytes is a bit of a mask. The
    // line's last bytes are a block of their own, padded with zeros (neither comma nor quote), and the
    // cells are written where the vector has room, its capacity checked once a block instead of once a
    // cell: a line is 20-30 cells.
    let bytes = line.as_bytes();
    let n = bytes.len();
    cells.reserve(1);
    let mut count = 0;
    let mut start = 0;
    let mut quotes = 0;
    let mut at = 0;
    while at < n {
        let block: [u8; 32] = match bytes.get(at..at + 32) {
            Some(b) => b.try_into().expect("32 bytes"),
            None => {
                let mut padded = [0u8; 32];
                padded[..n - at].copy_from_slice(&bytes[at..]);
                padded
            }
        };
        let (mut commas, q) = block_masks(&block);
        quotes |= q;
        // Room for a cell at each comma of the block and for the line's last cell.
        let most = (n - at).min(32) + 1;
        if cells.capacity() < count + most {
            // SAFETY: the first `count` cells were written below.
            unsafe { cells.set_len(count) };
            cells.reserve(most);
        }
        let out = cells.as_mut_ptr();
        while commas != 0 {
            let comma = at + commas.trailing_zeros() as usize;
            // SAFETY: `start` is 0 or just past a comma, `comma` is at one, `start <= comma <= len`; a
            // comma is ASCII, so both sides of it are char boundaries (checking them again was a tenth of
            // this function's time). `count` is below the capacity made sure of above.
            unsafe { out.add(count).write(line.get_unchecked(start..comma)) };
            count += 1;
            start = comma + 1;
            commas &= commas - 1;
        }
        at += 32;
    }
    // SAFETY: room for one more cell was made above (or by `reserve(1)`); `start` is 0 or just past a
    // comma; the first `count` cells were written.
    unsafe {
        cells.as_mut_ptr().add(count).write(line.get_unchecked(start..));
        cells.set_len(count + 1);
    }
    quotes != 0
}

/// The comma and quote masks of a block of 32 bytes, from those of its two halves.
fn block_masks(block: &[u8; 32]) -> (u32, u32) {
    let (lo, hi) = block.split_at(16);
    let (c0, q0) = commas_and_quotes(lo.try_into().expect("16 bytes"));
    let (c1, q1) = commas_and_quotes(hi.try_into().expect("16 bytes"));
    (c0 | c1 << 16, q0 | q1 << 16)
}

/// Bit `i` of the first mask is set where byte `i` of the block is a comma, of the second where it is a
/// double quote: two compares of the whole block (SSE2, which every x86-64 CPU has).
#[cfg(target_arch = "x86_64")]
fn commas_and_quotes(block: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is part of x86-64; the load reads the block's 16 bytes (unaligned load).
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let commas = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b',' as i8)));
        let quotes = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)));
        (commas as u32, quotes as u32)
    }
}

#[cfg(not(target_arch = "x86_64"))]
use commas_and_quotes_by_words as commas_and_quotes;

/// The same masks, 8 bytes at a time in a 64-bit word (on other CPUs).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn commas_and_quotes_by_words(block: &[u8; 16]) -> (u32, u32) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // One bit a byte: bit i where byte i of `word` is `b`.
    let mask = |word: u64, b: u8| {
        let x = word ^ (u64::from(b) * 0x0101_0101_0101_0101);
        let top = !(((x & LOW7) + LOW7) | x | LOW7);
        ((top >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    let (lo, hi) = block.split_at(8);
    let lo = u64::from_le_bytes(lo.try_into().expect("8 bytes"));
    let hi = u64::from_le_bytes(hi.try_into().expect("8 bytes"));
    (
        mask(lo, b',') | mask(hi, b',') << 8,
        mask(lo, b'"') | mask(hi, b'"') << 8,
    )
}

/// The cells of a bill line: split at commas, or by [`split_csv_line`] when the line has quotes (whose
/// cells then live in `quoted`).
pub fn line_cells<'a>(line: &'a str, quoted: &'a mut Vec<String>) -> Vec<&'a str> {
    let mut cells = Vec::new();
    line_cells_into(line, quoted, &mut cells);
    cells
}

/// [`line_cells`] into `cells` (cleared first), for a loop over lines that keeps one vector of cells.
pub fn line_cells_into<'a>(line: &'a str, quoted: &'a mut Vec<String>, cells: &mut Vec<&'a str>) {
    if split_commas(line, cells) {
        *quoted = split_csv_line(line);
        cells.clear();
        cells.extend(quoted.iter().map(String::as_str));
    }
}

/// An empty vector of cells with the memory of `cells`, free of the line they borrowed: the vector of a
/// line's cells is used again for the next line instead of allocated per line.
pub fn recycle_cells<'b>(mut cells: Vec<&str>) -> Vec<&'b str> {
    cells.clear();
    // Collecting an empty vector's iterator into a vector of the same layout reuses its memory.
    cells
        .into_iter()
        .map(|_| -> &'b str { unreachable!("the vector is empty") })
        .collect()
}

/// A header row mapped by name: canonical column name -> position. Aliases map other spellings to the
/// canonical one, so dialects never address a column by position.
#[derive(Debug, Clone)]
pub struct Header {
    pub len: usize,
    /// Looked up by name for every cell of every row: foldhash, not SipHash.
    idx: std::collections::HashMap<String, usize, foldhash::fast::RandomState>,
}

impl Header {
    /// Builds from raw header cells; `aliases` is (other spelling, canonical name).
    pub fn new<S: AsRef<str>>(cells: &[S], aliases: &[(&str, &str)]) -> Header {
        let mut idx = std::collections::HashMap::default();
        for (i, c) in cells.iter().enumerate() {
            let name = clean_cell(c.as_ref());
            if name.is_empty() {
                continue;
            }
            let canonical = aliases.iter().find(|(a, _)| *a == name).map_or(name, |(_, c)| *c);
            idx.entry(canonical.to_string()).or_insert(i);
        }
        let len = cells
            .iter()
            .rposition(|c| !clean_cell(c.as_ref()).is_empty())
            .map_or(0, |p| p + 1);
        Header { len, idx }
    }

    pub fn get(&self, name: &str) -> Option<usize> {
        self.idx.get(name).copied()
    }

    pub fn has(&self, name: &str) -> bool {
        self.idx.contains_key(name)
    }

    /// The required names this header lacks.
    pub fn missing<'n>(&self, required: &[&'n str]) -> Vec<&'n str> {
        required.iter().copied().filter(|n| !self.has(n)).collect()
    }

    /// The cleaned cell of a named column in a row ("" when the column or cell is absent).
    pub fn cell<'r, S: AsRef<str>>(&self, row: &'r [S], name: &str) -> &'r str {
        Header::at(row, self.get(name))
    }

    /// Like [`Header::cell`], `None` for empty and `/`.
    pub fn opt<'r, S: AsRef<str>>(&self, row: &'r [S], name: &str) -> Option<&'r str> {
        Header::opt_at(row, self.get(name))
    }

    /// The cleaned cell at a position [`Header::get`] resolved once per file ("" when absent): the large
    /// dialects look columns up once, not per cell.
    pub fn at<S: AsRef<str>>(row: &[S], idx: Option<usize>) -> &str {
        idx.and_then(|i| row.get(i)).map_or("", |c| clean_cell(c.as_ref()))
    }

    /// Like [`Header::at`], `None` for empty and `/`.
    pub fn opt_at<S: AsRef<str>>(row: &[S], idx: Option<usize>) -> Option<&str> {
        let c = Header::at(row, idx);
        (!c.is_empty() && c != "/").then_some(c)
    }

    /// Like [`Header::opt`], owned.
    pub fn owned<S: AsRef<str>>(&self, row: &[S], name: &str) -> Option<String> {
        self.opt(row, name).map(str::to_string)
    }
}

/// Number of cells in a row once trailing empty cells (trailing commas) are dropped.
pub fn used_len<S: AsRef<str>>(row: &[S]) -> usize {
    row.iter()
        .rposition(|c| !clean_cell(c.as_ref()).is_empty())
        .map_or(0, |p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offset looked up once a day gives the instants chrono's zone lookup gives, every 7 minutes
    /// (and the seconds around each change) over years of zones with and without summer time: changes
    /// at 02:00, at midnight (Santiago, Beirut), by half an hour (Lord Howe), and none (Shanghai).
    #[test]
    fn times_to_utc_by_the_day_are_chrono_s() {
        use chrono::{Datelike, Timelike};
        let zones = [
            "Asia/Shanghai",
            "America/New_York",
            "Europe/London",
            "America/Santiago",
            "Asia/Beirut",
            "Australia/Lord_Howe",
        ];
        for name in zones {
            let tz: Tz = name.parse().expect("a zone");
            let by_day = ToUtc::new(tz);
            let start = NaiveDate::from_ymd_opt(2019, 1, 1)
                .expect("a date")
                .and_hms_opt(0, 0, 0)
                .expect("a time");
            let mut checked = 0;
            let mut t = start;
            while t.date().year() < 2026 {
                // Each step, and the seconds either side of 00:00, 01:00, 02:00 and 03:00 of the day.
                let mut times = vec![t];
                if t.time().minute() < 7 && t.time().hour() < 4 {
                    let hour = t.date().and_hms_opt(t.time().hour(), 0, 0).expect("an hour");
                    times.extend((-2..=2).map(|s| hour + chrono::Duration::seconds(s)));
                }
                for local in times {
                    assert_eq!(by_day.convert(local), to_utc(local, tz), "{name} {local}");
                    checked += 1;
                }
                t += chrono::Duration::minutes(7);
            }
            assert!(checked > 500_000, "{checked}");
            // Going back a day (rows out of order) looks the day up again.
            let d = |y, m, day| {
                NaiveDate::from_ymd_opt(y, m, day)
                    .expect("a date")
                    .and_hms_opt(9, 30, 0)
                    .expect("a time")
            };
            for local in [d(2024, 7, 1), d(2024, 1, 1), d(2024, 7, 1)] {
                assert_eq!(by_day.convert(local), to_utc(local, tz), "{name} {local}");
            }
        }
    }

    /// Splitting 16 bytes at a time gives the cells `str::split` gives, and finds the quotes `contains`
    /// finds, for commas and quotes at every place in a word, multi-byte text and lines of every length.
    #[test]
    fn commas_split_as_str_split_does() {
        let parts = [
            "", ",", "`a", "拿铁", ",,", "x,y", "`0.00", "\u{3000}", "abcdefgh", ",`", "\"", "a\"\"b",
        ];
        let mut next = crate::analytics::testing::pseudo_random(7);
        // Every length twice: lines with quotes and lines without.
        for len in 0..800 {
            let parts = if len % 2 == 0 { &parts[..10] } else { &parts[..] };
            let len = len / 2;
            let mut line = String::new();
            while line.len() < len {
                line.push_str(parts[next(parts.len() as u64) as usize]);
            }
            let mut cells = Vec::new();
            let quoted = split_commas(&line, &mut cells);
            assert_eq!(cells, line.split(',').collect::<Vec<_>>(), "{line:?}");
            assert_eq!(quoted, line.contains('"'), "{line:?}");
        }
    }

    /// Both ways of finding commas and quotes in a block give the masks of a byte-by-byte look, for
    /// blocks of random bytes, of commas and quotes only, and of multi-byte text.
    #[test]
    fn block_masks_mark_each_comma_and_quote() {
        let by_bytes = |b: &[u8; 16]| {
            let mask = |c: u8| (0..16).filter(|&i| b[i] == c).map(|i| 1u32 << i).sum::<u32>();
            (mask(b','), mask(b'"'))
        };
        let mut next = crate::analytics::testing::pseudo_random(11);
        let text = "拿铁,\"a\",`0.00,".as_bytes();
        for round in 0..3000 {
            let block: [u8; 16] = std::array::from_fn(|i| match round % 3 {
                0 => next(256) as u8,
                1 => [b',', b'"', b'a', 0x80 | b','][next(4) as usize],
                _ => text[(i + round) % text.len()],
            });
            assert_eq!(commas_and_quotes(&block), by_bytes(&block), "{block:?}");
            assert_eq!(commas_and_quotes_by_words(&block), by_bytes(&block), "{block:?}");
        }
    }

    /// One vector of cells serves line after line: each line's cells are its own (quoted or not), and the
    /// vector's memory is kept.
    #[test]
    fn one_vector_of_cells_serves_every_line() {
        let lines = ["`a,`b,,`c", "x,\"y,z\",w", "", "拿铁,`0.00,\u{3000}"];
        let mut spare: Vec<&str> = Vec::with_capacity(32);
        let memory = spare.as_ptr();
        for round in 0..3 {
            for line in lines {
                let line = format!("{line}{}", ",".repeat(round));
                let mut quoted = Vec::new();
                let mut cells = recycle_cells(std::mem::take(&mut spare));
                line_cells_into(&line, &mut quoted, &mut cells);
                assert_eq!(cells, line_cells(&line, &mut Vec::new()), "{line:?}");
                let want: Vec<String> = split_csv_line(&line);
                assert_eq!(cells, want.iter().map(String::as_str).collect::<Vec<_>>(), "{line:?}");
                spare = recycle_cells(cells);
                assert!(spare.is_empty());
            }
        }
        assert_eq!(spare.as_ptr(), memory, "the memory is reused, not allocated per line");
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(parse_fen("6.00"), Ok(600));
        assert_eq!(parse_fen("`6.00"), Ok(600));
        assert_eq!(parse_fen("-0.04"), Ok(-4));
        assert_eq!(parse_fen("¥28.16"), Ok(2816));
        assert_eq!(parse_fen("￥1,234.56"), Ok(123456));
        assert_eq!(parse_fen("-¥3.5"), Ok(-350));
        assert_eq!(parse_fen("0.1\t"), Ok(10));
        assert_eq!(parse_fen(".5"), Ok(50));
        assert!(parse_fen("12,3x").is_err());
        assert!(parse_fen("1.234").is_err());
        assert!(parse_fen("").is_err());
        assert!(parse_fen("1e5").is_err());
        assert!(parse_fen("99999999999999999999").is_err());
        assert_eq!(parse_millifen("0.04000"), Ok(4000));
        assert_eq!(parse_millifen("-0.00600"), Ok(-600));
        assert_eq!(parse_millifen("0.01"), Ok(1000));
    }

    #[test]
    fn the_fast_amount_path_agrees_with_the_general_one() {
        let cells = sequences(&["", "-", "0", "7", "12", ".", "00", "5", ",", "¥", " ", "e", "999999999"]);
        let mut fast = 0;
        for c in &cells {
            for scale in [0, 2, 5] {
                if let Some(v) = plain_decimal(clean_cell(c).as_bytes(), scale) {
                    fast += 1;
                    assert_eq!(parse_scaled_general(c, scale), Ok(v), "{c:?} scale {scale}");
                }
            }
        }
        assert!(fast > 1000, "the fast path read {fast} cells");
    }

    #[test]
    fn times_in_every_spelling() {
        let t = NaiveDateTime::parse_from_str("2019-07-25 08:35:41", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(parse_local_time("`2019-07-25 08:35:41"), Ok(t));
        assert_eq!(parse_local_time("2019-07-25 08：35：41"), Ok(t));
        let m = NaiveDateTime::parse_from_str("2019-09-26 12:45:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(parse_local_time("2019/9/26 12:45"), Ok(m));
        assert!(parse_local_time("yesterday").is_err());
        let utc = to_utc(t, chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(utc.to_rfc3339(), "2019-07-25T00:35:41+00:00");
    }

    #[test]
    fn excel_serial() {
        // 45658.5 = 2025-01-01 12:00 (Excel's 1900 system).
        let t = excel_serial_to_local(45658.5).unwrap();
        assert_eq!(t.to_string(), "2025-01-01 12:00:00");
    }

    #[test]
    fn csv_lines_with_quirks() {
        let cells = split_csv_line("\"2025-05-01 10:00:00\",\"二维码收款\",\"3985734\"\t,\"a,b\",`x");
        let cells: Vec<&str> = cells.iter().map(|c| clean_cell(c)).collect();
        assert_eq!(cells, ["2025-05-01 10:00:00", "二维码收款", "3985734", "a,b", "x"]);
        assert_eq!(opt_cell(" / "), None);
        assert!(check_id("4.20000E+27", "交易号").is_err());
        assert_eq!(
            check_id("`4200000925202101284997714292", "id"),
            Ok("4200000925202101284997714292")
        );
    }

    #[test]
    fn encodings() {
        let (gbk, _, _) = encoding_rs::GBK.encode("#支付宝业务明细查询");
        assert_eq!(sniff_encoding(&gbk), TextEncoding::Gb18030);
        assert_eq!(decode(&gbk, TextEncoding::Gb18030), "#支付宝业务明细查询");
        assert_eq!(sniff_encoding("交易时间".as_bytes()), TextEncoding::Utf8);
        assert_eq!(sniff_encoding(&"交易时间".as_bytes()[..5]), TextEncoding::Utf8);
        assert_eq!(format_yuan(-1234), "-12.34");
        assert_eq!(format_yuan(5), "0.05");
    }

    /// A UTF-8 line is decoded as std's lossy decoding reads it (valid or not), without its BOM and CR.
    #[test]
    fn utf8_lines_decode_as_std_reads_them() {
        let parts: [&[u8]; 9] = [
            b"`a",
            "拿铁".as_bytes(),
            b",",
            &[0xE6, 0x8B],
            &[0xFF],
            b"0.00",
            &[0xC0, 0x80],
            b"x",
            "\u{3000}".as_bytes(),
        ];
        let mut next = crate::analytics::testing::pseudo_random(13);
        for len in 0..300 {
            let mut line = Vec::new();
            while line.len() < len {
                line.extend_from_slice(parts[next(parts.len() as u64) as usize]);
            }
            let mut out = String::from("kept:");
            decode_into(&line, TextEncoding::Utf8, &mut out);
            assert_eq!(out, format!("kept:{}", String::from_utf8_lossy(&line)), "{line:?}");
        }
        let mut out = String::new();
        decode_into("\u{FEFF}交易时间\r".as_bytes(), TextEncoding::Utf8, &mut out);
        assert_eq!(out, "交易时间");
    }

    /// Every sequence of up to four of `parts`, in any order.
    fn sequences(parts: &[&str]) -> Vec<String> {
        let mut cells = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = cells
                .iter()
                .flat_map(|c| parts.iter().map(move |p| format!("{c}{p}")))
                .collect();
            cells.extend(longer);
        }
        cells
    }

    #[test]
    fn the_fast_cell_path_agrees_with_the_general_one() {
        // Padding, backticks, quotes and text in any order.
        let cells = sequences(&[
            "",
            " ",
            "\t",
            "\r",
            "`",
            "\"",
            "\u{3000}",
            "a",
            "28.00",
            "拿铁",
            "/",
            ",",
            "ab c",
            "中\u{3000}",
            "#",
            "\u{7f}",
        ]);
        for c in &cells {
            assert_eq!(clean_cell(c), clean_cell_general(c), "{c:?}");
        }
    }

    #[test]
    fn the_fast_time_path_agrees_with_chrono() {
        for raw in [
            "`2026-11-22 07:05:09",
            "2026-11-22 23:59:59\t",
            "2024-02-29 00:00:00",
            "2026-02-29 10:00:00",
            "2026-13-01 10:00:00",
            "2026-11-22 24:00:00",
            "2026-11-2a 10:00:00",
            "2026/11/22 10:00:00",
        ] {
            let chrono = NaiveDateTime::parse_from_str(clean_cell(raw), "%Y-%m-%d %H:%M:%S").ok();
            assert_eq!(fast_local_time(raw), chrono, "{raw}");
        }
        assert!(parse_local_time("2026-02-29 10:00:00").is_err());
        assert!(parse_local_time("2026/11/22 10:00:00").is_ok());
    }
}
