//! Purchase occasions, the unit every customer metric counts (../shared/reference/analytics-methods.md):
//! payments net of their refunds, fully refunded payments dropped, and all charges of one customer on
//! one local day merged into one occasion. Days are integers (days since 1970-01-01) throughout the
//! analytics, so week and month arithmetic is plain integer arithmetic.

use anyhow::Result;
use polars::prelude::*;

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Payments up to `as_of` (a day number) with their refunds (also up to `as_of`) netted in. Columns:
/// event_id, customer_key, customer_key_quality, channel, day, net_fen, amount_fen, refunded_fen.
/// Payments with nothing left after refunds are dropped.
pub fn net_payments(events: LazyFrame, as_of: i32) -> LazyFrame {
    payments_with_refunds(events, as_of, []).filter(col("net_fen").gt(lit(0i64)))
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Every payment up to `as_of`, fully refunded ones included, with net_fen as in [`net_payments`];
/// `extra` event columns are carried along.
pub fn payments_with_refunds<const N: usize>(events: LazyFrame, as_of: i32, extra: [&str; N]) -> LazyFrame {
    let upto = col("local_date").cast(DataType::Int32).lt_eq(lit(as_of));
    let refunds = events
        .clone()
        .filter(col("kind").eq(lit("refund")).and(upto.clone()))
        .group_by([col("payment_event_id")])
        .agg([col("amount_fen").sum().alias("refunded_fen")]);
    let mut columns = vec![
        col("event_id"),
        col("customer_key"),
        col("customer_key_quality"),
        col("channel"),
        col("local_date").cast(DataType::Int32).alias("day"),
        col("amount_fen"),
    ];
    columns.extend(extra.map(col));
    events
        .filter(col("kind").eq(lit("payment")).and(upto))
        .select(columns)
        .left_join(refunds, col("event_id"), col("payment_event_id"))
        .with_column(col("refunded_fen").fill_null(lit(0i64)))
        .with_column((col("amount_fen") + col("refunded_fen")).alias("net_fen"))
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// One row per customer and day with a purchase: customer_key, quality, day, net_fen, charges.
/// Payments without a customer key cannot form occasions; see [`key_coverage`].
pub fn occasions(events: LazyFrame, as_of: i32) -> LazyFrame {
    occasions_from_net(net_payments(events, as_of)).sort(["customer_key", "day"], SortMultipleOptions::default())
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// [`occasions`] from net payments already computed (columns customer_key, customer_key_quality, day,
/// net_fen), so one pass over the events serves the occasions and every key-coverage row. Unsorted.
pub fn occasions_from_net(net: LazyFrame) -> LazyFrame {
    net.filter(col("customer_key").is_not_null())
        .group_by([col("customer_key"), col("day")])
        .agg([
            col("customer_key_quality").first().alias("quality"),
            col("net_fen").sum().alias("net_fen"),
            len().cast(DataType::UInt32).alias("charges"),
        ])
}

/// The customer codes and days of occasions sorted by customer and day (as `inputs::Builder` gives
/// them), for the one-pass computations; an error if they are not sorted.
pub fn sorted_keys_and_days(occ: &DataFrame) -> Result<(Vec<u32>, Vec<i32>)> {
    let keys: Vec<u32> = occ.column("customer_key")?.u32()?.into_no_null_iter().collect();
    let days: Vec<i32> = occ.column("day")?.i32()?.into_no_null_iter().collect();
    if (1..keys.len()).any(|i| (keys[i - 1], days[i - 1]) > (keys[i], days[i])) {
        anyhow::bail!("occasions must be sorted by customer_key and day");
    }
    Ok((keys, days))
}

/// The row ranges of each customer's run in keys sorted by customer, in order.
pub fn customer_runs(keys: &[u32]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        (start < keys.len()).then(|| {
            let end = start + keys[start..].partition_point(|k| *k == keys[start]);
            let run = start..end;
            start = end;
            run
        })
    })
}

/// A customer key of 32 lowercase hex digits as the number it spells.
pub(crate) fn hex_key(k: &str) -> Option<u128> {
    hex_number(k.as_bytes().try_into().ok()?)
}

/// 32 lowercase hex digits as the number they spell, 16 at a time (SSE2, which every x86-64 CPU has): the
/// occasion pass reads every payment's key through here, where a table lookup a digit cost about 150
/// instructions a key.
#[cfg(target_arch = "x86_64")]
fn hex_number(b: &[u8; 32]) -> Option<u128> {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_packus_epi16, _mm_set1_epi16, _mm_set1_epi8, _mm_slli_epi16, _mm_srli_epi16, _mm_storeu_si128,
    };
    // The digits' values in pairs (a byte each: first digit << 4 | second), and a bit per byte that is a
    // digit. Bytes from 0x80 up compare below '0' (signed), so they are not digits.
    //
    // SAFETY (both blocks): SSE2 is part of x86-64; the loads read the 32 bytes of `b` (unaligned loads),
    // the store writes the 16 bytes of `out`.
    let pairs = |v: __m128i| unsafe {
        let within = |lo: u8, hi: u8| {
            _mm_and_si128(
                _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
                _mm_cmpgt_epi8(_mm_set1_epi8(hi as i8 + 1), v),
            )
        };
        let (digit, letter) = (within(b'0', b'9'), within(b'a', b'f'));
        let valid = _mm_movemask_epi8(_mm_or_si128(digit, letter));
        // '0'..'9' are 0x30..0x39 and 'a'..'f' 0x61..0x66: the low four bits, plus 9 for a letter.
        let value = _mm_add_epi8(
            _mm_and_si128(v, _mm_set1_epi8(0x0F)),
            _mm_and_si128(letter, _mm_set1_epi8(9)),
        );
        // A 16-bit lane holds a pair, its first digit in the low byte.
        let pair = _mm_or_si128(
            _mm_slli_epi16(_mm_and_si128(value, _mm_set1_epi16(0x00FF)), 4),
            _mm_srli_epi16(value, 8),
        );
        (pair, valid)
    };
    unsafe {
        let (high, high_valid) = pairs(_mm_loadu_si128(b.as_ptr().cast()));
        let (low, low_valid) = pairs(_mm_loadu_si128(b[16..].as_ptr().cast()));
        if high_valid & low_valid != 0xFFFF {
            return None;
        }
        let mut out = [0u8; 16];
        _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_packus_epi16(high, low));
        Some(u128::from_be_bytes(out))
    }
}

#[cfg(not(target_arch = "x86_64"))]
use hex_number_by_digits as hex_number;

/// Each ASCII byte's hex digit value, 0xFF for bytes that are not a lowercase hex digit.
#[cfg(any(test, not(target_arch = "x86_64")))]
const HEX_DIGIT: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};

/// The same number a digit at a time (on other CPUs).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn hex_number_by_digits(b: &[u8; 32]) -> Option<u128> {
    // Two 64-bit halves: 128-bit shifts cost several instructions each.
    let (mut hi, mut lo, mut bad) = (0u64, 0u64, 0u8);
    for i in 0..16 {
        let (h, l) = (HEX_DIGIT[b[i] as usize], HEX_DIGIT[b[16 + i] as usize]);
        bad |= h | l;
        hi = hi << 4 | u64::from(h & 0xF);
        lo = lo << 4 | u64::from(l & 0xF);
    }
    (bad & 0xF0 == 0).then_some(u128::from(hi) << 64 | u128::from(lo))
}

pub fn restore_keys(mut df: DataFrame, keys: &[String]) -> Result<DataFrame> {
    let codes = df.column("customer_key")?.u32()?;
    let restored: Vec<Option<&str>> = codes
        .iter()
        .map(|c| c.and_then(|c| keys.get(c as usize)).map(String::as_str))
        .collect();
    df.with_column(Column::new("customer_key".into(), restored))?;
    Ok(df)
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Shares of net sales (fen) up to `as_of` by customer-key quality: one row with none_share, weak_share,
/// strong_share and the fen behind them. Shown beside every customer metric.
pub fn key_coverage(events: LazyFrame, as_of: i32, from_day: Option<i32>) -> LazyFrame {
    key_coverage_from_net(net_payments(events, as_of), from_day)
}

/// [`key_coverage`] from net payments already computed.
pub fn key_coverage_from_net(net: LazyFrame, from_day: Option<i32>) -> LazyFrame {
    let net = match from_day {
        Some(d) => net.filter(col("day").gt_eq(lit(d))),
        None => net,
    };
    let q = |name: &str| col("net_fen").filter(col("customer_key_quality").eq(lit(name))).sum();
    net.select([
        col("net_fen").sum().alias("net_fen"),
        q("none").alias("none_fen"),
        q("weak").alias("weak_fen"),
        q("strong").alias("strong_fen"),
    ])
    .with_columns([
        (col("none_fen").cast(DataType::Float64) / col("net_fen").cast(DataType::Float64)).alias("none_share"),
        (col("weak_fen").cast(DataType::Float64) / col("net_fen").cast(DataType::Float64)).alias("weak_share"),
        (col("strong_fen").cast(DataType::Float64) / col("net_fen").cast(DataType::Float64)).alias("strong_share"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::{events, i64s, strs};

    #[test]
    fn refunds_net_and_same_day_charges_merge() {
        // c1: two charges on day 10 (one occasion of 30+20), a 50 payment on day 12 partly refunded (-15).
        // c2: a 40 payment fully refunded (no occasion), and a refund alone without its payment.
        // c3: a payment after as-of (ignored). No key: a 70 payment.
        let ev = events(&[
            ("p1", "payment", Some("c1"), "strong", 10, 3000, None),
            ("p2", "payment", Some("c1"), "strong", 10, 2000, None),
            ("p3", "payment", Some("c1"), "strong", 12, 5000, None),
            ("r3", "refund", Some("c1"), "strong", 13, -1500, Some("p3")),
            ("p4", "payment", Some("c2"), "weak", 11, 4000, None),
            ("r4", "refund", Some("c2"), "weak", 11, -4000, Some("p4")),
            ("r9", "refund", Some("c2"), "weak", 11, -999, Some("p_unknown")),
            ("p5", "payment", Some("c3"), "strong", 30, 1000, None),
            ("p6", "payment", None, "none", 12, 7000, None),
        ]);
        let occ = occasions(ev.clone(), 20).collect().unwrap();
        let keys: Vec<String> = strs(&occ, "customer_key");
        let days: Vec<i32> = occ.column("day").unwrap().i32().unwrap().into_no_null_iter().collect();
        let net: Vec<i64> = i64s(&occ, "net_fen");
        let charges: Vec<u32> = occ
            .column("charges")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(keys, ["c1", "c1"]);
        assert_eq!(days, [10, 12]);
        assert_eq!(net, [5000, 3500]);
        assert_eq!(charges, [2, 1]);
        // A refund dated after as-of does not count yet.
        let early = occasions(ev.clone(), 12).collect().unwrap();
        let net: Vec<i64> = i64s(&early, "net_fen");
        assert_eq!(net, [5000, 5000]);
        // Net sales 5000 + 3500 (c1) + 7000 (no key): 7000 / 15500 without a key, no weak-keyed sales left.
        let cov = key_coverage(ev, 20, None).collect().unwrap();
        let share = cov.column("none_share").unwrap().f64().unwrap().get(0).unwrap();
        assert!((share - 7000.0 / 15500.0).abs() < 1e-12);
        assert_eq!(cov.column("weak_fen").unwrap().i64().unwrap().get(0), Some(0));
    }

    #[test]
    fn store_keys_as_numbers_and_back() {
        let df = df!("customer_key" => [Some("d"), Some("a"), None, Some("d")]).unwrap();
        let coded = df!("customer_key" => [Some(1u32), Some(0), None, Some(1)]).unwrap();
        assert_eq!(restore_keys(coded, &["a".into(), "d".into()]).unwrap(), df);
        // Store keys as numbers: their order is the text's.
        assert_eq!(
            hex_key(&"0123456789abcdef".repeat(2)),
            Some(0x0123456789abcdef0123456789abcdef)
        );
        assert_eq!(hex_key(&"f".repeat(32)), Some(u128::MAX));
        assert!(hex_key(&"09".repeat(16)) < hex_key(&"0a".repeat(16)));
        assert_eq!(hex_key(&"A".repeat(32)), None);
        assert_eq!(hex_key(&"a".repeat(31)), None);
        assert_eq!(hex_key(&format!("{}g", "a".repeat(31))), None);
    }

    #[test]
    fn hex_keys_16_digits_at_a_time_as_one_at_a_time() {
        use rand::{Rng, SeedableRng};
        // Keys of hex digits with, now and then, a byte next to a digit's range ('/', ':', '`', 'g'),
        // an upper-case one, or one from 0x80 up, at any place.
        let near = [
            b'/', b':', b'`', b'g', b'A', b'F', b'@', 0x80, 0xB0, 0xE6, 0xFF, 0, b' ',
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut valid, mut invalid) = (0, 0);
        for _ in 0..20_000 {
            let mut b = [0u8; 32];
            for x in &mut b {
                *x = b"0123456789abcdef"[rng.random_range(0..16)];
            }
            for _ in 0..rng.random_range(0..3) {
                if rng.random_bool(0.3) {
                    b[rng.random_range(0..32)] = near[rng.random_range(0..near.len())];
                }
            }
            let want = hex_number_by_digits(&b);
            assert_eq!(hex_number(&b), want, "{b:?}");
            if want.is_some() {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert!(valid > 1000 && invalid > 1000, "{valid} valid, {invalid} invalid");
        assert_eq!(hex_number(&[b'f'; 32]), Some(u128::MAX));
        assert_eq!(hex_number(&[b'0'; 32]), Some(0));
    }
}
