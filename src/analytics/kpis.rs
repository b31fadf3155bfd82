//! Weekly KPIs per channel and for all channels, with week-over-week change: net revenue (payments minus
//! refunds, each in the week it happened), orders (payments), customers (distinct keys that paid), average
//! order value, refunds, fees paid and the effective fee rate, and each channel's share of sales.

use polars::prelude::*;

use super::retention::week_of;

fn week_expr(day: Expr) -> Expr {
    (day + lit(3i32)) / lit(7i32)
}

fn per_week(events: LazyFrame, by_channel: bool) -> LazyFrame {
    let keys = if by_channel {
        vec![col("week"), col("channel")]
    } else {
        vec![col("week")]
    };
    let pay = col("kind").eq(lit("payment"));
    let refund = col("kind").eq(lit("refund"));
    let out = events.group_by(keys).agg([
        pay.clone().sum().cast(DataType::Int64).alias("orders"),
        col("amount_fen").filter(pay.clone()).sum().alias("payments_fen"),
        refund.clone().sum().cast(DataType::Int64).alias("refunds"),
        col("amount_fen").filter(refund).sum().alias("refunds_fen"),
        col("fee_millifen").sum().alias("fees_millifen"),
        col("customer_key")
            .filter(pay)
            .drop_nulls()
            .n_unique()
            .cast(DataType::Int64)
            .alias("customers"),
    ]);
    if by_channel {
        out
    } else {
        out.with_column(lit("all").alias("channel"))
    }
}

/// The first week [`weekly`] sums (one before the weeks it shows, for the first week-over-week change).
pub fn first_week(as_of: i32, weeks: i32) -> i32 {
    week_of(as_of) - weeks
}

/// The weekly sums [`weekly`] starts from, per week from [`first_week`] to the week of `as_of` (a day
/// number): week, channel (`all` for all channels), orders, payments_fen, refunds, refunds_fen,
/// fees_millifen, customers. A week and channel with no events has no row.
pub fn weekly_sums(events: LazyFrame, as_of: i32, weeks: i32) -> LazyFrame {
    let first = first_week(as_of, weeks);
    let ev = events
        .with_column(col("local_date").cast(DataType::Int32).alias("day"))
        .filter(col("day").lt_eq(lit(as_of)))
        .with_column(week_expr(col("day")).alias("week"))
        .filter(col("week").gt_eq(lit(first)));
    let all = per_week(ev.clone(), false);
    let channels = per_week(ev, true);
    concat(
        [all.select(SUM_COLUMNS.map(col)), channels.select(SUM_COLUMNS.map(col))],
        UnionArgs::default(),
    )
    .expect("same columns")
}

/// The columns of [`weekly_sums`].
const SUM_COLUMNS: [&str; 8] = [
    "week",
    "channel",
    "orders",
    "payments_fen",
    "refunds",
    "refunds_fen",
    "fees_millifen",
    "customers",
];

/// KPIs for the `weeks` weeks ending with the week of `as_of` (a day number), one row per week and
/// channel plus `all`. Money in fen; fees in 1/1000 fen; rates as fractions; `*_wow` the relative change
/// on the same channel's previous week (null where there is none).
pub fn weekly(events: LazyFrame, as_of: i32, weeks: i32) -> LazyFrame {
    from_sums(weekly_sums(events, as_of, weeks), as_of, weeks)
}

/// [`weekly`] from its [`weekly_sums`] (however they were summed).
pub fn from_sums(stacked: LazyFrame, as_of: i32, weeks: i32) -> LazyFrame {
    let first = first_week(as_of, weeks);
    let wow = |c: &str| {
        let prev = col(c).shift(lit(1)).over([col("channel")]).expect("valid window");
        ((col(c).cast(DataType::Float64) - prev.clone().cast(DataType::Float64)) / prev.cast(DataType::Float64))
            .alias(format!("{c}_wow"))
    };
    stacked
        .with_columns([
            (col("payments_fen") + col("refunds_fen")).alias("net_fen"),
            (col("payments_fen").cast(DataType::Float64) / col("orders").cast(DataType::Float64)).alias("aov_fen"),
            (col("fees_millifen").cast(DataType::Float64) / lit(1000.0) / col("payments_fen").cast(DataType::Float64))
                .alias("effective_fee_rate"),
        ])
        .with_column(
            (col("payments_fen").cast(DataType::Float64)
                / col("payments_fen")
                    .filter(col("channel").eq(lit("all")))
                    .sum()
                    .over([col("week")])
                    .expect("valid window")
                    .cast(DataType::Float64))
            .alias("channel_share"),
        )
        .sort(["channel", "week"], SortMultipleOptions::default())
        .with_columns([wow("net_fen"), wow("orders"), wow("customers"), wow("aov_fen")])
        .filter(col("week").gt(lit(first)))
        .with_column(
            (col("week") * lit(7i32) - lit(3i32))
                .cast(DataType::Date)
                .alias("week_start"),
        )
        .sort(["week", "channel"], SortMultipleOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::retention::week_start;
    use crate::analytics::testing::events;

    #[test]
    fn weekly_kpis_by_hand() {
        let w = week_of(20773);
        let d = week_start(w);
        // Previous week: 2 orders of 10.00 by c1 and c2. This week: 3 orders (30, 20, 10) by c1, c1, c3,
        // a refund of 5.00; fees are 6 millifen per fen of each amount (0.6 %), refunds' fees negative.
        let ev = events(&[
            ("a", "payment", Some("c1"), "strong", d - 5, 1000, None),
            ("b", "payment", Some("c2"), "strong", d - 4, 1000, None),
            ("c", "payment", Some("c1"), "strong", d, 3000, None),
            ("e", "payment", Some("c1"), "strong", d + 1, 2000, None),
            ("f", "payment", Some("c3"), "strong", d + 6, 1000, None),
            ("g", "refund", Some("c1"), "strong", d + 2, -500, Some("c")),
        ]);
        // The test helper's fee is |amount| * 6: make the refund's fee returned (negative).
        let ev = ev.with_column(
            when(col("kind").eq(lit("refund")))
                .then(-col("fee_millifen"))
                .otherwise(col("fee_millifen"))
                .alias("fee_millifen"),
        );
        let k = weekly(ev, d + 6, 2)
            .filter(col("channel").eq(lit("all")))
            .collect()
            .unwrap();
        let i = |c: &str| {
            k.column(c)
                .unwrap()
                .i64()
                .unwrap()
                .into_no_null_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(i("orders"), [2, 3]);
        assert_eq!(i("net_fen"), [2000, 5500]);
        assert_eq!(i("customers"), [2, 2]);
        assert_eq!(i("fees_millifen"), [12_000, 36_000 - 3_000]);
        let f = |c: &str| k.column(c).unwrap().f64().unwrap().get(1).unwrap();
        assert!((f("aov_fen") - 2000.0).abs() < 1e-9);
        assert!((f("net_fen_wow") - 1.75).abs() < 1e-12); // 5500 vs 2000
        assert!((f("effective_fee_rate") - 33.0 / 6000.0).abs() < 1e-12);
        assert!((f("channel_share") - 1.0).abs() < 1e-12);
        assert_eq!(k.height(), 2);
        assert_eq!(
            k.column("net_fen_wow").unwrap().f64().unwrap().get(0),
            None,
            "no week before the first"
        );
    }
}
