//! Tiny event frames for unit tests.

use polars::prelude::*;

/// (event_id, kind, customer_key, quality, day, amount_fen, payment_event_id)
pub type Row<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, i32, i64, Option<&'a str>);

pub fn events(rows: &[Row]) -> LazyFrame {
    df!(
        "event_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "kind" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "customer_key" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "customer_key_quality" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        "local_date" => rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        "amount_fen" => rows.iter().map(|r| r.5).collect::<Vec<_>>(),
        "payment_event_id" => rows.iter().map(|r| r.6).collect::<Vec<_>>(),
        "channel" => rows.iter().map(|_| "wechat_pay").collect::<Vec<_>>(),
        "fee_millifen" => rows.iter().map(|r| r.5.abs() * 6).collect::<Vec<_>>(),
    )
    .unwrap()
    .lazy()
    .with_column(col("local_date").cast(DataType::Date))
}

/// A string column as owned values ("" for nulls).
pub fn strs(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect()
}

/// An integer column as i64 values (nulls are an error in these tests).
pub fn i64s(df: &DataFrame, c: &str) -> Vec<i64> {
    df.column(c)
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// A seeded pseudo-random source for generated test data: `next(m)` is in `0..m`.
pub fn pseudo_random(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |m| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    }
}

/// Purchase occasions of `customers` customers on integer codes, pseudo-random but seeded: each has 0 to 11
/// occasions on strictly increasing days from day 1000 on, amounts of 1 to 81 yuan, every third or so
/// with a weak key. Sorted by customer and day, as the one-pass analytics take them.
pub fn random_occasions(seed: u64, customers: u32) -> DataFrame {
    let (mut key, mut day, mut net, mut quality) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut next = pseudo_random(seed);
    for c in 0..customers {
        let mut d = 1000 + next(150) as i32;
        for _ in 0..next(12) {
            key.push(c);
            day.push(d);
            net.push(100 + next(8000) as i64);
            quality.push(if next(3) == 0 { "weak" } else { "strong" });
            d += 1 + next(25) as i32;
        }
    }
    df!("customer_key" => key, "quality" => quality, "day" => day, "net_fen" => net).unwrap()
}
