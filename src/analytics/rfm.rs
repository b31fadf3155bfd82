//! RFM per customer from purchase occasions, and 1-5 scores from quantile cut points (R `rfm` style):
//! the cut points are the 20/40/60/80 % quantiles (linear interpolation, R's default type 7, DuckDB's
//! `quantile_cont`); a value's score counts the cut points strictly below it, so equal values always get
//! equal scores. Duplicate cut points (heavy ties) are dropped and fewer scores are used; the realised
//! cut points are an output, rounded to 1e-6. Recency is inverted: the most recent customers score highest.

use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;

/// RFM settings of [`rfm_table`].
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub struct RfmParams {
    /// The as-of day (days since 1970-01-01): recency is measured to it.
    pub as_of: i32,
    /// Only occasions in the last `window_days` days count (None: all history).
    pub window_days: Option<i32>,
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Per customer: recency_days, frequency (occasions), monetary_fen (net spend), first_day, last_day.
pub fn rfm_table(occasions: LazyFrame, p: RfmParams) -> LazyFrame {
    let occ = match p.window_days {
        Some(w) => occasions.filter(col("day").gt(lit(p.as_of - w))),
        None => occasions,
    };
    occ.group_by([col("customer_key")])
        .agg([
            col("quality").first(),
            col("day").min().alias("first_day"),
            col("day").max().alias("last_day"),
            col("day").count().cast(DataType::Int64).alias("frequency"),
            col("net_fen").sum().alias("monetary_fen"),
        ])
        .with_column(
            (lit(p.as_of) - col("last_day"))
                .cast(DataType::Int64)
                .alias("recency_days"),
        )
        .sort(["customer_key"], SortMultipleOptions::default())
}

/// [`rfm_table`] at several as-of days in one pass over occasions sorted by customer and day (customer
/// keys as UInt32 codes, as analyze has them): per customer, the occasions up to each day are a prefix of
/// its run of rows, found by binary search, instead of a group-by over all occasions per day. Same
/// columns, types and row order (by customer) as [`rfm_table`].
pub fn rfm_tables(occasions: &DataFrame, days: &[i32], window_days: Option<i32>) -> Result<Vec<DataFrame>> {
    let (keys, day) = super::occasions::sorted_keys_and_days(occasions)?;
    let net: Vec<i64> = occasions.column("net_fen")?.i64()?.into_no_null_iter().collect();
    let quality = occasions.column("quality")?;
    struct Table {
        key: Vec<u32>,
        /// The row of the first occasion counted, for its quality.
        first_row: Vec<IdxSize>,
        first: Vec<i32>,
        last: Vec<i32>,
        frequency: Vec<i64>,
        monetary: Vec<i64>,
        recency: Vec<i64>,
    }
    // Room for every customer in each table up front: grown by doubling, the 14 tables' columns were
    // copied and faulted in twice over.
    let customers = super::occasions::customer_runs(&keys).count();
    let mut tables: Vec<Table> = days
        .iter()
        .map(|_| Table {
            key: Vec::with_capacity(customers),
            first_row: Vec::with_capacity(customers),
            first: Vec::with_capacity(customers),
            last: Vec::with_capacity(customers),
            frequency: Vec::with_capacity(customers),
            monetary: Vec::with_capacity(customers),
            recency: Vec::with_capacity(customers),
        })
        .collect();
    for rows in super::occasions::customer_runs(&keys) {
        let start = rows.start;
        let run = &day[rows];
        for (t, &as_of) in tables.iter_mut().zip(days) {
            let hi = run.partition_point(|d| *d <= as_of);
            let lo = window_days.map_or(0, |w| run[..hi].partition_point(|d| *d <= as_of - w));
            if lo == hi {
                continue;
            }
            t.key.push(keys[start]);
            t.first_row.push((start + lo) as IdxSize);
            t.first.push(run[lo]);
            t.last.push(run[hi - 1]);
            t.frequency.push((hi - lo) as i64);
            t.monetary.push(net[start + lo..start + hi].iter().sum());
            t.recency.push(i64::from(as_of - run[hi - 1]));
        }
    }
    tables
        .into_iter()
        .map(|t| {
            Ok(DataFrame::new(
                t.key.len(),
                // Each column's vector moved in (`Column::new` copies a slice).
                vec![
                    Series::from_vec("customer_key".into(), t.key).into(),
                    // A gather copies the (short, inline) strings' views, not the text.
                    quality.take_slice(&t.first_row)?.with_name("quality".into()),
                    Series::from_vec("first_day".into(), t.first).into(),
                    Series::from_vec("last_day".into(), t.last).into(),
                    Series::from_vec("frequency".into(), t.frequency).into(),
                    Series::from_vec("monetary_fen".into(), t.monetary).into(),
                    Series::from_vec("recency_days".into(), t.recency).into(),
                ],
            )?)
        })
        .collect()
}

/// The realised cut points of each measure (distinct, ascending).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CutPoints {
    pub recency: Vec<f64>,
    pub frequency: Vec<f64>,
    pub monetary: Vec<f64>,
}

impl CutPoints {
    /// The R, F and M scores of one customer, as [`score`] computes them for a table: a score counts the
    /// cut points strictly below the value; recency is inverted.
    pub fn scores(&self, recency: i64, frequency: i64, monetary: i64) -> (i32, i32, i32) {
        let below = |v: i64, cuts: &[f64]| cuts.iter().filter(|&&c| v as f64 > c).count() as i32;
        (
            self.recency.len() as i32 + 1 - below(recency, &self.recency),
            below(frequency, &self.frequency) + 1,
            below(monetary, &self.monetary) + 1,
        )
    }

    /// Number of distinct scores each measure can take (5 unless ties collapsed cut points).
    pub fn levels(&self) -> (usize, usize, usize) {
        (
            self.recency.len() + 1,
            self.frequency.len() + 1,
            self.monetary.len() + 1,
        )
    }
}

const QUANTILES: [f64; 4] = [0.2, 0.4, 0.6, 0.8];

/// Computes the cut points over the customers of an RFM table (nulls left out, as a quantile leaves them).
pub fn cut_points(table: &DataFrame) -> Result<CutPoints> {
    let values = |m: &str| -> Result<Vec<i64>> {
        Ok(table
            .column(m)?
            .cast(&DataType::Int64)?
            .i64()?
            .iter()
            .flatten()
            .collect())
    };
    Ok(CutPoints::of(
        &values("recency_days")?,
        &values("frequency")?,
        &values("monetary_fen")?,
    ))
}

impl CutPoints {
    /// The cut points of the customers' recency, frequency and monetary values.
    pub fn of(recency: &[i64], frequency: &[i64], monetary: &[i64]) -> CutPoints {
        CutPoints {
            recency: type7_cuts(recency),
            frequency: type7_cuts(frequency),
            monetary: type7_cuts(monetary),
        }
    }
}

/// The [`QUANTILES`] of `values` (type 7: h = (n - 1) p, interpolated between the values ranked floor(h)
/// and ceil(h), in the arithmetic of Polars' linear quantile), rounded to 1e-6, each distinct once.
fn type7_cuts(values: &[i64]) -> Vec<f64> {
    let mut cuts: Vec<f64> = Vec::with_capacity(QUANTILES.len());
    let Some(last) = values.len().checked_sub(1) else {
        return cuts;
    };
    let at = QUANTILES.map(|q| last as f64 * q);
    // Each quantile's two ranks; a lower rank of one can be below the upper rank of the one before.
    let mut ranks: Vec<usize> = at.iter().flat_map(|h| [*h as usize, h.ceil() as usize]).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let ranked = values_at_ranks(values, &ranks);
    let value = |rank: usize| ranked[ranks.binary_search(&rank).expect("a rank asked for")] as f64;
    for h in at {
        let (lower, upper) = (value(h as usize), value(h.ceil() as usize));
        let x = if lower == upper {
            lower
        } else {
            (h - (h as usize) as f64) * (upper - lower) + lower
        };
        // Interpolation leaves float noise (18760.000000000015); the measures are integers, so a cut point
        // rounded to 1e-6 scores every value the same way any engine's would.
        let x = (x * 1e6).round() / 1e6;
        if cuts.last() != Some(&x) {
            cuts.push(x);
        }
    }
    cuts
}

/// The values ranked `ranks` (ascending, distinct, each below `values.len()`) in `values` sorted. Values spanning a
/// range not much wider than their count (days of recency, counts of occasions) are counted per value;
/// others are selected in one copy, partitioned in place rank after rank, each selection working only on
/// what lies above the one before. (A sort, or a copy and a selection per quantile as a query engine does
/// it, costs several times more for the 14 tables of a report.)
fn values_at_ranks(values: &[i64], ranks: &[usize]) -> Vec<i64> {
    let mut out = Vec::with_capacity(ranks.len());
    let (Some(&min), Some(&max)) = (values.iter().min(), values.iter().max()) else {
        return out;
    };
    let span = (max as i128 - min as i128) as u128;
    if span < 2 * values.len().max(1024) as u128 {
        let mut counts = vec![0u32; span as usize + 1];
        for v in values {
            counts[(*v - min) as usize] += 1;
        }
        let (mut below, mut next) = (0usize, ranks.iter().peekable());
        for (offset, count) in counts.iter().enumerate() {
            below += *count as usize;
            while next.next_if(|r| **r < below).is_some() {
                out.push(min + offset as i64);
            }
        }
        return out;
    }
    let mut v = values.to_vec();
    // v[..from] holds values ranked below `from`, the one ranked `from - 1` in its place; v[from..] holds
    // the rest, unordered.
    let mut from = 0;
    for &rank in ranks {
        if rank >= from {
            v[from..].select_nth_unstable(rank - from);
            from = rank + 1;
        }
        out.push(v[rank]);
    }
    out
}

/// How many cut points lie strictly below the value: 0..=len.
fn below(column: &str, cuts: &[f64]) -> Expr {
    cuts.iter().fold(lit(0i32), |acc, c| {
        acc + col(column).cast(DataType::Float64).gt(lit(*c)).cast(DataType::Int32)
    })
}

/// Adds r_score, f_score, m_score (1 = worst, highest = best) to an RFM table.
pub fn score(table: LazyFrame, cuts: &CutPoints) -> LazyFrame {
    let r_levels = cuts.recency.len() as i32 + 1;
    table.with_columns([
        (lit(r_levels) - below("recency_days", &cuts.recency)).alias("r_score"),
        (below("frequency", &cuts.frequency) + lit(1i32)).alias("f_score"),
        (below("monetary_fen", &cuts.monetary) + lit(1i32)).alias("m_score"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::i64s;

    fn table(freq: &[i64], monetary: &[i64], recency: &[i64]) -> LazyFrame {
        let n = freq.len();
        df!(
            "customer_key" => (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>(),
            "frequency" => freq,
            "monetary_fen" => monetary,
            "recency_days" => recency,
        )
        .unwrap()
        .lazy()
    }

    fn scores(df: &DataFrame, c: &str) -> Vec<i32> {
        df.column(c).unwrap().i32().unwrap().into_no_null_iter().collect()
    }

    #[test]
    fn quantile_cut_points_by_hand() {
        // Values 1..=10. Type-7 quantile at p: h = (n-1)p; 0.2 -> 2.8, 0.4 -> 4.6, 0.6 -> 6.4, 0.8 -> 8.2.
        let v: Vec<i64> = (1..=10).collect();
        let t = table(&v, &v, &v);
        let cuts = cut_points(&t.clone().collect().unwrap()).unwrap();
        for (got, want) in cuts.frequency.iter().zip([2.8, 4.6, 6.4, 8.2]) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        let s = score(t, &cuts).collect().unwrap();
        // 1,2 -> 1; 3,4 -> 2; 5,6 -> 3; 7,8 -> 4; 9,10 -> 5. Recency inverted.
        assert_eq!(scores(&s, "f_score"), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(scores(&s, "r_score"), [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
    }

    /// The cut points of Polars' own linear quantile, rounded and deduplicated as `cut_points` does.
    fn polars_cuts(values: &[i64]) -> Vec<f64> {
        let df = df!("v" => values).unwrap();
        let exprs: Vec<Expr> = QUANTILES
            .iter()
            .enumerate()
            .map(|(i, q)| {
                col("v")
                    .cast(DataType::Float64)
                    .quantile(lit(*q), QuantileMethod::Linear)
                    .alias(format!("q{i}"))
            })
            .collect();
        let out = df.lazy().select(exprs).collect().unwrap();
        let mut cuts: Vec<f64> = Vec::new();
        for i in 0..QUANTILES.len() {
            if let Some(x) = out.column(&format!("q{i}")).unwrap().f64().unwrap().get(0) {
                let x = (x * 1e6).round() / 1e6;
                if cuts.last() != Some(&x) {
                    cuts.push(x);
                }
            }
        }
        cuts
    }

    #[test]
    fn cut_points_match_polars_linear_quantiles() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut cases: Vec<Vec<i64>> = vec![vec![], vec![5], vec![9, 2], vec![3, 3, 3], vec![1, 2, 3, 4, 5]];
        for n in [3usize, 4, 7, 10, 11, 50, 101, 1000, 20_000] {
            for spread in [1i64, 3, 40, 1_000_000_000] {
                cases.push((0..n).map(|_| rng.random_range(0..=spread)).collect());
            }
        }
        // Both ways of ranking: spans of a few values (counted) and of 1e9 (selected), at every size.
        for n in [3usize, 4, 7, 10, 11, 50, 101, 1000, 3000, 20_000] {
            cases.push((0..n).map(|i| -(i as i64 % 7) * 1_000_000_000).collect());
        }
        for values in &cases {
            assert_eq!(type7_cuts(values), polars_cuts(values), "{} values", values.len());
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let ranks: Vec<usize> = (0..values.len()).step_by(values.len() / 7 + 1).collect();
            let want: Vec<i64> = ranks.iter().map(|r| sorted[*r]).collect();
            assert_eq!(values_at_ranks(values, &ranks), want);
        }
    }

    #[test]
    fn ties_get_equal_scores_and_fewer_levels() {
        // Frequencies: seven customers bought once, two twice, one 9 times. Quantiles: 1, 1, 1, 2 -> cuts
        // {1, 2}: once -> 1, twice -> 2, nine -> 3. Identical customers never land in different scores.
        let f = [1, 1, 1, 1, 1, 1, 1, 2, 2, 9];
        let t = table(&f, &f, &f);
        let cuts = cut_points(&t.clone().collect().unwrap()).unwrap();
        assert_eq!(cuts.frequency, vec![1.0, 2.0]);
        assert_eq!(cuts.levels().1, 3);
        let s = score(t, &cuts).collect().unwrap();
        assert_eq!(scores(&s, "f_score"), [1, 1, 1, 1, 1, 1, 1, 2, 2, 3]);
    }

    #[test]
    fn window_and_recency() {
        let occ = df!(
            "customer_key" => ["a", "a", "a", "b"],
            "quality" => ["strong"; 4],
            "day" => [100i32, 150, 190, 120],
            "net_fen" => [1000i64, 2000, 500, 700],
        )
        .unwrap()
        .lazy();
        let t = rfm_table(
            occ.clone(),
            RfmParams {
                as_of: 200,
                window_days: None,
            },
        )
        .collect()
        .unwrap();
        assert_eq!(i64s(&t, "recency_days"), [10, 80]);
        assert_eq!(i64s(&t, "frequency"), [3, 1]);
        assert_eq!(i64s(&t, "monetary_fen"), [3500, 700]);
        // A 60-day window keeps days 141..=200: a has two occasions, b none.
        let w = rfm_table(
            occ,
            RfmParams {
                as_of: 200,
                window_days: Some(60),
            },
        )
        .collect()
        .unwrap();
        assert_eq!(w.height(), 1);
        assert_eq!(w.column("monetary_fen").unwrap().i64().unwrap().get(0), Some(2500));
    }

    #[test]
    fn one_pass_tables_equal_a_group_by_per_day() {
        // 300 customers with pseudo-random occasions (strictly increasing days per customer, qualities
        // varying); the one-pass tables at six days, with and without a window, against rfm_table.
        let occ = crate::analytics::testing::random_occasions(7, 300);
        let days = [1200, 1193, 1150, 1100, 1050, 990];
        for window in [None, Some(60)] {
            let tables = rfm_tables(&occ, &days, window).unwrap();
            for (t, &d) in tables.iter().zip(&days) {
                let want = rfm_table(
                    occ.clone().lazy().filter(col("day").lt_eq(lit(d))),
                    RfmParams {
                        as_of: d,
                        window_days: window,
                    },
                )
                .collect()
                .unwrap();
                assert!(t.equals_missing(&want), "day {d}, window {window:?}:\n{t}\n{want}");
            }
            assert_eq!(tables.last().unwrap().height(), 0, "no occasion is that early");
        }
        // Unsorted input is refused, not silently wrong.
        let unsorted =
            df!("customer_key" => [2u32, 1], "quality" => ["strong"; 2], "day" => [5i32, 6], "net_fen" => [1i64, 1])
                .unwrap();
        assert!(rfm_tables(&unsorted, &[10], None).is_err());
    }
}
