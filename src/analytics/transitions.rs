//! Segment transitions (Klaviyo keeps a previous group and a change date): each customer's segment now,
//! one period earlier, and the date it last changed, found by re-running the segmentation at weekly
//! snapshots back in time over the occasions up to each snapshot (refunds as known at the as-of date: a
//! refund after a snapshot is already netted in, which keeps one pass over the events); and the from x to
//! matrix. A customer who did not exist one period earlier comes `from` "(new)".

use anyhow::Result;
use polars::prelude::*;

use super::rfm::{cut_points, score, CutPoints};
#[cfg(test)]
use super::rfm::{rfm_table, RfmParams};
use super::segments::SegmentMap;

pub const NEW: &str = "(new)";

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// The scored and segmented RFM table at `day` from purchase occasions, with its cut points.
pub fn segmented_at(
    occasions: LazyFrame,
    day: i32,
    window_days: Option<i32>,
    map: &SegmentMap,
) -> Result<(DataFrame, CutPoints)> {
    let occ = occasions.filter(col("day").lt_eq(lit(day)));
    let table = rfm_table(
        occ,
        RfmParams {
            as_of: day,
            window_days,
        },
    )
    .collect()?;
    segment(table, map)
}

/// Scores and segments an RFM table (of [`rfm_table`] or [`super::rfm::rfm_tables`]).
pub fn segment(table: DataFrame, map: &SegmentMap) -> Result<(DataFrame, CutPoints)> {
    let table = table.lazy();
    let cuts = cut_points(&table)?;
    let segmented = map.assign(score(table, &cuts)).collect()?;
    Ok((segmented, cuts))
}

/// Per-customer transition facts and the from x to matrix.
pub struct Transitions {
    /// customer_key, previous_segment, segment_since (date of the first weekly snapshot showing the
    /// current segment; null when unchanged over the whole look-back).
    pub per_customer: DataFrame,
    /// from_segment, to_segment, customers.
    pub matrix: DataFrame,
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Compares the segmentation `now` (at `as_of`) with weekly snapshots 1..=`weeks_back` weeks earlier.
pub fn transitions(
    occasions: LazyFrame,
    now: &DataFrame,
    as_of: i32,
    weeks_back: i32,
    window_days: Option<i32>,
    map: &SegmentMap,
) -> Result<Transitions> {
    let earlier = (1..=weeks_back.max(1))
        .map(|k| Ok(segmented_at(occasions.clone(), as_of - 7 * k, window_days, map)?.0))
        .collect::<Result<Vec<_>>>()?;
    transitions_from(now, earlier, as_of)
}

/// [`transitions`] from the segmented snapshots already computed: `earlier[k - 1]` is `k` weeks back.
pub fn transitions_from(now: &DataFrame, earlier: Vec<DataFrame>, as_of: i32) -> Result<Transitions> {
    // One column per snapshot back (s1 = one week earlier), joined on the customer key, whatever its type.
    if earlier.is_empty() {
        anyhow::bail!("transitions need at least one earlier snapshot");
    }
    let weeks = earlier.len() as i32;
    let mut joined = now.clone().lazy().select([col("customer_key"), col("segment")]);
    for (k, df) in (1..).zip(earlier) {
        joined = joined.left_join(
            df.lazy()
                .select([col("customer_key"), col("segment").alias(format!("s{k}"))]),
            col("customer_key"),
            col("customer_key"),
        );
    }
    // The first snapshot back that differs (absent counts as different): the change happened after it.
    let differs = |k: i32| col(format!("s{k}")).neq_missing(col("segment"));
    let mut since = lit(NULL).cast(DataType::Int32);
    for k in (1..=weeks).rev() {
        since = when(differs(k)).then(lit(as_of - 7 * (k - 1))).otherwise(since);
    }
    let per_customer = joined
        .select([
            col("customer_key"),
            col("segment"),
            col("s1").fill_null(lit(NEW)).alias("previous_segment"),
            since.cast(DataType::Date).alias("segment_since"),
        ])
        .sort(["customer_key"], SortMultipleOptions::default())
        .collect()?;
    let matrix = per_customer
        .clone()
        .lazy()
        .group_by([
            col("previous_segment").alias("from_segment"),
            col("segment").alias("to_segment"),
        ])
        .agg([len().cast(DataType::Int64).alias("customers")])
        .sort(["from_segment", "to_segment"], SortMultipleOptions::default())
        .collect()?;
    let per_customer = per_customer.drop("segment")?;
    Ok(Transitions { per_customer, matrix })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::events;

    #[test]
    fn previous_segment_and_change_date() {
        // RF grid, as of day 1000. c0..c7 bought once, on days 900, 910, ..., 970; "hot" weekly on days
        // 965, 972, ..., 1000; "new" once on day 999.
        // Now: recencies 0, 1, 30, ..., 100 -> type-7 cut points 24.2, 46, 64, 82; frequencies nine 1s and
        // a 6 -> one cut point {1}. hot: R5 F2 = Potential Loyalists; new: R5 F1 = New Customers;
        // c7 (r 30): R4 F1 = Promising.
        // A week earlier (day 993): recencies 0, 23, ..., 93 -> cuts 29, 45, 61, 67: c7 (r 23) was R5 F1 =
        // New Customers; hot (5 purchases, r 0) already R5 F2. Two to four weeks back hot stays R5 F2.
        let map = SegmentMap::preset("rf-grid").unwrap();
        let as_of = 1000;
        let mut rows: Vec<(String, i32)> = (0..8).map(|c| (format!("c{c}"), 900 + c * 10)).collect();
        rows.extend((0..6).map(|w| ("hot".to_string(), as_of - 7 * w)));
        rows.push(("new".into(), as_of - 1));
        let ids: Vec<String> = (0..rows.len()).map(|i| format!("p{i}")).collect();
        let spec: Vec<_> = rows
            .iter()
            .zip(&ids)
            .map(|((c, d), id)| (id.as_str(), "payment", Some(c.as_str()), "strong", *d, 1000i64, None))
            .collect();
        let occ = crate::analytics::occasions::occasions(events(&spec), as_of);
        let (now, cuts) = segmented_at(occ.clone(), as_of, None, &map).unwrap();
        assert_eq!(cuts.recency, vec![24.2, 46.0, 64.0, 82.0]);
        assert_eq!(cuts.frequency, vec![1.0]);
        let t = transitions(occ, &now, as_of, 4, None, &map).unwrap();
        let pc = &t.per_customer;
        let row = |k: &str| {
            let i = pc
                .column("customer_key")
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .position(|x| x == Some(k))
                .unwrap();
            let now_i = now
                .column("customer_key")
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .position(|x| x == Some(k))
                .unwrap();
            (
                now.column("segment")
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(now_i)
                    .unwrap()
                    .to_string(),
                pc.column("previous_segment")
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    .unwrap()
                    .to_string(),
                pc.column("segment_since")
                    .unwrap()
                    .cast(&DataType::Int32)
                    .unwrap()
                    .i32()
                    .unwrap()
                    .get(i),
            )
        };
        assert_eq!(row("new"), ("New Customers".into(), NEW.into(), Some(as_of)));
        assert_eq!(
            row("hot"),
            ("Potential Loyalists".into(), "Potential Loyalists".into(), None)
        );
        assert_eq!(row("c7"), ("Promising".into(), "New Customers".into(), Some(as_of)));
        let total: i64 = t
            .matrix
            .column("customers")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .sum();
        assert_eq!(total, 10);
    }
}
