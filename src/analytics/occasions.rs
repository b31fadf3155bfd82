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

/// [`occasions_from_net`], sorted by customer and day, for net payments whose customer keys are UInt32
/// codes (analyze's): a counting sort by customer and a small sort per customer instead of a hash group-by
/// and a sort.
/// The quality is the first row's of the group, as the group-by takes it.
pub fn occasions_coded(net: &DataFrame) -> Result<DataFrame> {
    let keys = net.column("customer_key")?.u32()?;
    let days = net.column("day")?.i32()?;
    let fen: Vec<i64> = net.column("net_fen")?.i64()?.into_no_null_iter().collect();
    let quality = net.column("customer_key_quality")?.str()?;
    let quality: Vec<Option<&str>> = quality.iter().collect();
    // Rows bucketed by customer code (a counting sort: the codes are dense), then each customer's few
    // rows sorted by day; both steps keep input order among equals.
    let rows: Vec<(u32, i32)> = keys
        .iter()
        .zip(days.iter())
        .map(|(k, d)| k.zip(d).unwrap_or((u32::MAX, 0)))
        .collect();
    let buckets = rows
        .iter()
        .filter(|r| r.0 != u32::MAX)
        .map(|r| r.0 as usize + 1)
        .max()
        .unwrap_or(0);
    let mut start = vec![0usize; buckets + 1];
    for r in rows.iter().filter(|r| r.0 != u32::MAX) {
        start[r.0 as usize + 1] += 1;
    }
    for b in 1..start.len() {
        start[b] += start[b - 1];
    }
    let mut order = vec![0u32; start[buckets]];
    let mut next = start.clone();
    for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.0 != u32::MAX) {
        order[next[r.0 as usize]] = i as u32;
        next[r.0 as usize] += 1;
    }
    let (mut k_out, mut d_out, mut q_out, mut fen_out, mut n_out) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (customer, w) in start.windows(2).enumerate() {
        let run = &mut order[w[0]..w[1]];
        run.sort_by_key(|&i| rows[i as usize].1);
        let mut a = 0;
        while a < run.len() {
            let day = rows[run[a] as usize].1;
            let b = a + run[a..].partition_point(|&i| rows[i as usize].1 == day);
            k_out.push(customer as u32);
            d_out.push(day);
            q_out.push(quality[run[a] as usize]);
            fen_out.push(run[a..b].iter().map(|&i| fen[i as usize]).sum::<i64>());
            n_out.push((b - a) as u32);
            a = b;
        }
    }
    Ok(df!(
        "customer_key" => k_out,
        "day" => d_out,
        "quality" => q_out,
        "net_fen" => fen_out,
        "charges" => n_out,
    )?)
}

/// The customer codes and days of occasions sorted by customer and day (as [`occasions_coded`] gives
/// them), for the one-pass computations; an error if they are not sorted.
pub fn sorted_keys_and_days(occ: &DataFrame) -> Result<(Vec<u32>, Vec<i32>)> {
    let keys: Vec<u32> = occ.column("customer_key")?.u32()?.into_no_null_iter().collect();
    let days: Vec<i32> = occ.column("day")?.i32()?.into_no_null_iter().collect();
    if (1..keys.len()).any(|i| (keys[i - 1], days[i - 1]) > (keys[i], days[i])) {
        anyhow::bail!("occasions must be sorted by customer_key and day");
    }
    Ok((keys, days))
}

/// Replaces the (string) customer keys of a frame by dense integer codes (UInt32, in order of first
/// appearance; a missing key stays missing), so the many group-bys, joins and sorts of the analytics work
/// on 4 bytes instead of 32 characters. Returns the frame and the keys by code, for [`restore_keys`].
pub fn encode_keys(mut df: DataFrame) -> Result<(DataFrame, Vec<String>)> {
    let keys = df.column("customer_key")?.str()?;
    // Store keys are 32 hex digits: as 128-bit numbers they hash and compare without touching the text
    // again. Other keys (tests, hand-made stores) are hashed as text.
    let (codes, by_code) = if keys.iter().all(|k| k.is_none_or(|k| hex_key(k).is_some())) {
        dense_codes(keys, |k| hex_key(k).expect("checked above"))
    } else {
        dense_codes(keys, |k| k)
    };
    df.with_column(Column::new("customer_key".into(), codes))?;
    Ok((df, by_code))
}

/// Codes in order of first appearance of `id(key)`, and the keys by code.
fn dense_codes<'a, K: std::hash::Hash + Eq>(
    keys: &'a StringChunked,
    id: impl Fn(&'a str) -> K,
) -> (Vec<Option<u32>>, Vec<String>) {
    let mut codes = Vec::with_capacity(keys.len());
    let mut by_code: Vec<String> = Vec::new();
    let mut seen: std::collections::HashMap<K, u32, foldhash::fast::RandomState> = Default::default();
    for k in keys.iter() {
        codes.push(k.map(|k| {
            *seen.entry(id(k)).or_insert_with(|| {
                by_code.push(k.to_string());
                by_code.len() as u32 - 1
            })
        }));
    }
    (codes, by_code)
}

/// A customer key of 32 lowercase hex digits as the number it spells.
fn hex_key(k: &str) -> Option<u128> {
    let b = k.as_bytes();
    if b.len() != 32 {
        return None;
    }
    b.iter().try_fold(0u128, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u128::from(d))
    })
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
    fn coded_occasions_equal_the_group_by() {
        // Rows in no particular order: several charges a day, qualities changing, days before 1970, a
        // customer without a key.
        let (mut k, mut d, mut fen, mut q) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut next = crate::analytics::testing::pseudo_random(3);
        for _ in 0..3000 {
            k.push((next(20) > 0).then(|| next(200) as u32));
            d.push(next(60) as i32 - 20);
            fen.push(1 + next(9000) as i64);
            q.push(["strong", "weak"][next(2) as usize]);
        }
        let net = df!("customer_key" => k, "day" => d, "net_fen" => fen, "customer_key_quality" => q).unwrap();
        let got = occasions_coded(&net).unwrap();
        let want = occasions_from_net(net.lazy())
            .sort(["customer_key", "day"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        assert!(got.height() > 1000);
        assert!(got.equals_missing(&want), "{got}\n{want}");
    }

    #[test]
    fn keys_become_dense_codes_and_come_back() {
        let df = df!("customer_key" => [Some("d"), Some("a"), None, Some("d"), Some("b")]).unwrap();
        let (coded, keys) = encode_keys(df.clone()).unwrap();
        assert_eq!(keys, ["d", "a", "b"]);
        let codes: Vec<Option<u32>> = coded.column("customer_key").unwrap().u32().unwrap().iter().collect();
        assert_eq!(codes, [Some(0), Some(1), None, Some(0), Some(2)]);
        assert_eq!(restore_keys(coded, &keys).unwrap(), df);
        // Store keys (32 hex digits) take the numeric way: the same codes.
        let hex = |c: char| Some(c.to_string().repeat(32));
        let df =
            df!("customer_key" => [hex('d'), hex('a'), None, hex('d'), hex('b'), Some("0123456789abcdef".repeat(2))])
                .unwrap();
        let (coded, keys) = encode_keys(df.clone()).unwrap();
        assert_eq!(keys.len(), 4);
        let codes: Vec<Option<u32>> = coded.column("customer_key").unwrap().u32().unwrap().iter().collect();
        assert_eq!(codes, [Some(0), Some(1), None, Some(0), Some(2), Some(3)]);
        assert_eq!(restore_keys(coded, &keys).unwrap(), df);
        assert_eq!(
            hex_key(&"0123456789abcdef".repeat(2)),
            Some(0x0123456789abcdef0123456789abcdef)
        );
        assert_eq!(hex_key(&"A".repeat(32)), None);
    }
}
