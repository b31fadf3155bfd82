//! Segment transitions (Klaviyo keeps a previous group and a change date): each customer's segment now,
//! one period earlier, and the date it last changed, found by re-running the segmentation at weekly
//! snapshots back in time over the occasions up to each snapshot (refunds as known at the as-of date: a
//! refund after a snapshot is already netted in, which keeps one pass over the events); and the from x to
//! matrix. A customer who did not exist one period earlier comes `from` "(new)".

use anyhow::{bail, Context, Result};
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
    let cuts = cut_points(&table)?;
    let segmented = map.assign(score(table.lazy(), &cuts)).collect()?;
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

/// Segments the RFM tables of [`super::rfm::rfm_tables`] on integer customer codes (`tables[0]` now,
/// `tables[k]` k weeks back) and derives the transitions: the segmented table now, its cut points, and
/// the transitions. The same as [`segment`] on each table followed by [`transitions_from`], but the scores,
/// the segment rules (a lookup in the score cube the map partitions) and the comparison of snapshots are
/// plain loops over the columns instead of a chain of when/then expressions and joins per snapshot. Maps
/// whose segments depend on the customers' means (`mean_split`) take the general way.
pub fn segment_snapshots(
    tables: Vec<DataFrame>,
    map: &SegmentMap,
    as_of: i32,
) -> Result<(DataFrame, CutPoints, Transitions)> {
    let coded = |t: &DataFrame| t.column("customer_key").is_ok_and(|c| c.dtype() == &DataType::UInt32);
    let general = map.basis == super::segments::Basis::MeanSplit || map.rules.len() > usize::from(u8::MAX);
    if general || tables.len() < 2 || !tables.iter().all(coded) {
        let mut tables = tables.into_iter();
        let (now, cuts) = segment(tables.next().context("the RFM table now")?, map)?;
        let earlier = tables.map(|t| Ok(segment(t, map)?.0)).collect::<Result<Vec<_>>>()?;
        let trans = transitions_from(&now, earlier, as_of)?;
        return Ok((now, cuts, trans));
    }
    let cube = map.score_cube();
    let names = map.names();
    // Each snapshot: its customer codes (ascending, as rfm_tables writes them) and segment per customer;
    // the table now also its cut points and scores. The snapshots are scored on two threads, the later
    // half on a second one (each is about a table now's work: cut points, then a loop over its rows).
    type Scores = (Vec<i32>, Vec<i32>, Vec<i32>);
    type Scored = (Vec<u32>, Vec<Option<u8>>, Option<(CutPoints, Scores)>);
    let score = |i: usize, t: &DataFrame| -> Result<Scored> {
        let keys: Vec<u32> = t.column("customer_key")?.u32()?.into_no_null_iter().collect();
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            bail!("RFM tables must be sorted by customer code");
        }
        let values = |c: &str| -> Result<Vec<i64>> { Ok(t.column(c)?.i64()?.into_no_null_iter().collect()) };
        let (recency, frequency, monetary) = (values("recency_days")?, values("frequency")?, values("monetary_fen")?);
        let cuts = CutPoints::of(&recency, &frequency, &monetary);
        let mut scores: Scores = (Vec::new(), Vec::new(), Vec::new());
        let mut segment = Vec::with_capacity(keys.len());
        for j in 0..keys.len() {
            let (r, f, m) = cuts.scores(recency[j], frequency[j], monetary[j]);
            segment.push(cube[(r - 1) as usize][(f - 1) as usize][(m - 1) as usize]);
            if i == 0 {
                scores.0.push(r);
                scores.1.push(f);
                scores.2.push(m);
            }
        }
        Ok((keys, segment, (i == 0).then_some((cuts, scores))))
    };
    let half = tables.len().div_ceil(2);
    let (first, later) = std::thread::scope(|scope| {
        let later = scope.spawn(|| {
            tables[half..]
                .iter()
                .enumerate()
                .map(|(k, t)| score(half + k, t))
                .collect::<Result<Vec<_>>>()
        });
        let first = tables[..half]
            .iter()
            .enumerate()
            .map(|(i, t)| score(i, t))
            .collect::<Result<Vec<_>>>();
        (first, later.join())
    });
    let later = later.map_err(|_| anyhow::anyhow!("a snapshot's scoring thread panicked"))??;
    let mut now_parts = None;
    let mut snapshots: Vec<(Vec<u32>, Vec<Option<u8>>)> = Vec::with_capacity(tables.len());
    for (keys, segment, now) in first?.into_iter().chain(later) {
        if now.is_some() {
            now_parts = now;
        }
        snapshots.push((keys, segment));
    }
    let (cuts, (r, f, m)) = now_parts.expect("the table now is the first");
    let (now_keys, now_segment) = &snapshots[0];
    let name = |s: Option<u8>| s.map(|s| names[s as usize]);
    // For each snapshot back, a cursor that walks its (ascending) codes along the codes now.
    let mut cursors = vec![0usize; snapshots.len()];
    let mut previous: Vec<&str> = Vec::with_capacity(now_keys.len());
    let mut since: Vec<Option<i32>> = Vec::with_capacity(now_keys.len());
    let mut matrix: std::collections::BTreeMap<(&str, Option<&str>), i64> = Default::default();
    for (&key, &seg) in now_keys.iter().zip(now_segment) {
        let mut changed: Option<i32> = None;
        let mut before: Option<Option<u8>> = None;
        for k in 1..snapshots.len() {
            let (keys, segs) = &snapshots[k];
            let c = &mut cursors[k];
            while *c < keys.len() && keys[*c] < key {
                *c += 1;
            }
            // Absent from the snapshot (not yet a customer) counts as a different segment.
            let then = (*c < keys.len() && keys[*c] == key).then(|| segs[*c]);
            if k == 1 {
                before = then;
            }
            if changed.is_none() && then != Some(seg) {
                changed = Some(as_of - 7 * (k as i32 - 1));
            }
        }
        let prev = match before {
            Some(s) => name(s).unwrap_or(NEW),
            None => NEW,
        };
        previous.push(prev);
        since.push(changed);
        *matrix.entry((prev, name(seg))).or_default() += 1;
    }
    let mut now = tables.into_iter().next().expect("checked above");
    let segment: Vec<Option<&str>> = now_segment.iter().map(|&s| name(s)).collect();
    now.with_column(Column::new("r_score".into(), r))?;
    now.with_column(Column::new("f_score".into(), f))?;
    now.with_column(Column::new("m_score".into(), m))?;
    now.with_column(Column::new("segment".into(), segment))?;
    let per_customer = DataFrame::new(
        now_keys.len(),
        vec![
            Column::new("customer_key".into(), now_keys.clone()),
            Column::new("previous_segment".into(), previous),
            Column::new("segment_since".into(), since).cast(&DataType::Date)?,
        ],
    )?;
    // The map's order is the general way's sort: by from, then to (a missing segment first).
    let mut from = Vec::with_capacity(matrix.len());
    let mut to = Vec::with_capacity(matrix.len());
    let mut n = Vec::with_capacity(matrix.len());
    for ((f, t), count) in matrix {
        from.push(f);
        to.push(t);
        n.push(count);
    }
    let matrix = DataFrame::new(
        n.len(),
        vec![
            Column::new("from_segment".into(), from),
            Column::new("to_segment".into(), to),
            Column::new("customers".into(), n),
        ],
    )?;
    Ok((now, cuts, Transitions { per_customer, matrix }))
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

    #[test]
    fn one_pass_segments_and_transitions_equal_the_general_way() {
        // 400 customers with pseudo-random occasions; RFM tables now and 5 weeks back; every basis the
        // one-pass code serves (the rfm preset, the rf grid, and an r_fm_mean map written here), with and
        // without a window, against segment() per table and transitions_from().
        use crate::analytics::segments::{Basis, Rule};
        let occ = crate::analytics::testing::random_occasions(11, 400);
        let rule = |name: &str, r: Option<[f64; 2]>, fm: Option<[f64; 2]>| Rule {
            name: name.into(),
            r,
            f: None,
            m: None,
            fm,
        };
        let fm_mean = SegmentMap {
            name: "fm mean".into(),
            basis: Basis::RFmMean,
            rules: vec![
                rule("Best", Some([4.0, 5.0]), Some([3.5, 5.0])),
                rule("Fading", Some([1.0, 2.0]), Some([3.0, 5.0])),
                rule("Rest", None, None),
            ],
        };
        fm_mean.validate().unwrap();
        let as_of = 1160;
        let days: Vec<i32> = (0..=5).map(|k| as_of - 7 * k).collect();
        for map in [
            SegmentMap::preset("rfm").unwrap(),
            SegmentMap::preset("rf-grid").unwrap(),
            fm_mean,
        ] {
            for window in [None, Some(90)] {
                let tables = crate::analytics::rfm::rfm_tables(&occ, &days, window).unwrap();
                let (now, cuts, t) = segment_snapshots(tables.clone(), &map, as_of).unwrap();
                let mut general = tables.into_iter().map(|t| segment(t, &map).unwrap());
                let (want_now, want_cuts) = general.next().unwrap();
                let want = transitions_from(&want_now, general.map(|g| g.0).collect(), as_of).unwrap();
                let what = format!("{} window {window:?}", map.name);
                assert_eq!(cuts, want_cuts, "{what}");
                assert!(now.equals_missing(&want_now), "{what}:\n{now}\n{want_now}");
                assert!(
                    t.per_customer.equals_missing(&want.per_customer),
                    "{what}:\n{}\n{}",
                    t.per_customer,
                    want.per_customer
                );
                assert!(
                    t.matrix.equals_missing(&want.matrix),
                    "{what}:\n{}\n{}",
                    t.matrix,
                    want.matrix
                );
                assert!(t.matrix.height() > 3, "{what}: a matrix with moves");
            }
        }
    }
}
