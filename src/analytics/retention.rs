//! Repeat purchase and retention from purchase occasions: the in-window repeat rate and the Shopify-style
//! returning-customer rate (labelled apart: the second reads higher), cohort triangles by month or ISO
//! week with unreached cells empty (right-censored), purchase latency per step, and new / returning /
//! lapsed customers per week. Weeks are Monday-based; days are integers since 1970-01-01 (a Thursday).

use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;

/// Monday-based week number of a day number (week 0 starts Monday 1969-12-29).
pub fn week_of(day: i32) -> i32 {
    (day + 3).div_euclid(7)
}

/// First day (a Monday) of a week number.
pub fn week_start(week: i32) -> i32 {
    week * 7 - 3
}

/// `expr.over(customer_key)`: per-customer window expressions.
#[cfg(test)]
trait PerCustomer {
    fn pipe_over(self) -> Expr;
}

#[cfg(test)]
impl PerCustomer for Expr {
    fn pipe_over(self) -> Expr {
        self.over([col("customer_key")])
            .expect("a column window is a valid expression")
    }
}

#[cfg(test)]
fn week_expr(day: Expr) -> Expr {
    // Floor division for non-negative day numbers; the store's dates are after 1970.
    (day + lit(3i32)) / lit(7i32)
}

#[cfg(test)]
fn month_expr(day: Expr) -> Expr {
    let date = day.cast(DataType::Date);
    date.clone().dt().year().cast(DataType::Int32) * lit(12i32) + date.dt().month().cast(DataType::Int32) - lit(1i32)
}

/// Month number (year * 12 + month - 1) of a day number.
pub fn month_of(day: i32) -> i32 {
    use chrono::Datelike;
    let d = crate::analyze::date_of(day);
    d.year() * 12 + d.month() as i32 - 1
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// In-window repeat rate and returning-customer rate over days `from..=to`.
pub fn repeat_rates(occasions: LazyFrame, from: i32, to: i32) -> LazyFrame {
    let first_ever = first_days(occasions.clone());
    repeat_rates_given_first(occasions, first_ever, from, to)
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Each customer's first occasion day: customer_key, first_day.
pub fn first_days(occasions: LazyFrame) -> LazyFrame {
    occasions
        .group_by([col("customer_key")])
        .agg([col("day").min().alias("first_day")])
}

/// [`first_days`] of occasions sorted by customer and day: each customer's first row.
pub fn first_days_sorted(occ: &DataFrame) -> Result<DataFrame> {
    let (keys, days) = super::occasions::sorted_keys_and_days(occ)?;
    let (mut k, mut d) = (Vec::new(), Vec::new());
    for i in 0..keys.len() {
        if i == 0 || keys[i - 1] != keys[i] {
            k.push(keys[i]);
            d.push(days[i]);
        }
    }
    Ok(df!("customer_key" => k, "first_day" => d)?)
}

/// [`latency`] in one pass over occasions sorted by customer and day. Same columns and rows.
pub fn latency_sorted(occ: &DataFrame) -> Result<DataFrame> {
    let (keys, days) = super::occasions::sorted_keys_and_days(occ)?;
    // Gaps by step: the 2nd occasion's (1->2), the 3rd's (2->3), later ones (3->4+).
    let mut gaps: [Vec<i32>; 3] = Default::default();
    let mut n = 0usize;
    for i in 0..keys.len() {
        n = if i > 0 && keys[i - 1] == keys[i] { n + 1 } else { 1 };
        if n >= 2 {
            gaps[(n - 2).min(2)].push(days[i] - days[i - 1]);
        }
    }
    let (mut steps, mut count, mut median, mut mean) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (step, g) in ["1->2", "2->3", "3->4+"].into_iter().zip(gaps.iter_mut()) {
        if g.is_empty() {
            continue;
        }
        g.sort_unstable();
        let m = g.len() / 2;
        steps.push(step);
        count.push(g.len() as i64);
        median.push(if g.len() % 2 == 1 {
            f64::from(g[m])
        } else {
            (f64::from(g[m - 1]) + f64::from(g[m])) / 2.0
        });
        // Integer gaps: the sum is exact in f64, as any engine's would be.
        mean.push(g.iter().map(|x| i64::from(*x)).sum::<i64>() as f64 / g.len() as f64);
    }
    Ok(df!("step" => steps, "gaps" => count, "median_days" => median, "mean_days" => mean)?)
}

/// [`repeat_rates`] with the first days ([`first_days`]) already computed, for many windows.
#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
pub fn repeat_rates_given_first(occasions: LazyFrame, first_ever: LazyFrame, from: i32, to: i32) -> LazyFrame {
    occasions
        .filter(col("day").gt_eq(lit(from)).and(col("day").lt_eq(lit(to))))
        .group_by([col("customer_key")])
        .agg([col("day").count().alias("n")])
        .inner_join(first_ever, col("customer_key"), col("customer_key"))
        .select([
            col("customer_key").count().cast(DataType::Int64).alias("customers"),
            col("n")
                .gt_eq(lit(2u32))
                .sum()
                .cast(DataType::Int64)
                .alias("repeat_customers"),
            col("first_day")
                .lt(lit(from))
                .sum()
                .cast(DataType::Int64)
                .alias("returning_customers"),
        ])
        .with_columns([
            (col("repeat_customers").cast(DataType::Float64) / col("customers").cast(DataType::Float64))
                .alias("repeat_rate"),
            (col("returning_customers").cast(DataType::Float64) / col("customers").cast(DataType::Float64))
                .alias("returning_rate"),
            lit(from).alias("from_day"),
            lit(to).alias("to_day"),
        ])
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// The repeat-purchase trend: for each of the `weeks` weeks ending with the as-of week, both rates over the
/// `window_days` days ending on that week's last day (the as-of day for the as-of week), so each point is
/// the same measure as `repeat_rates` on a trailing window. `first_ever`: [`first_days`] of the occasions.
pub fn repeat_trend(
    occasions: LazyFrame,
    first_ever: LazyFrame,
    as_of: i32,
    weeks: i32,
    window_days: i32,
) -> Result<DataFrame> {
    let last = week_of(as_of);
    let points = ((last - weeks + 1)..=last)
        .map(|w| {
            let to = (week_start(w) + 6).min(as_of);
            repeat_rates_given_first(occasions.clone(), first_ever.clone(), to - window_days + 1, to)
                .with_column(lit(w).alias("week"))
        })
        .collect::<Vec<_>>();
    Ok(concat(points, UnionArgs::default())?
        .select(TREND_COLUMNS.map(col))
        .sort(["week"], SortMultipleOptions::default())
        .collect()?)
}

/// The columns of the repeat-purchase trend, in order.
const TREND_COLUMNS: [&str; 6] = [
    "week",
    "from_day",
    "to_day",
    "customers",
    "repeat_rate",
    "returning_rate",
];

/// [`repeat_rates_given_first`] for several windows `(from, to)` in one pass over occasions sorted by
/// customer and day: a customer's occasions in a window are a slice of its run, found by binary search,
/// and its first occasion is the run's first. One row per window, in their order, with the same columns.
pub fn repeat_windows_sorted(occ: &DataFrame, windows: &[(i32, i32)]) -> Result<DataFrame> {
    let (keys, days) = super::occasions::sorted_keys_and_days(occ)?;
    // Per window: customers, repeat customers, returning customers.
    let mut counts = vec![[0i64; 3]; windows.len()];
    for rows in super::occasions::customer_runs(&keys) {
        let run = &days[rows];
        for (c, &(from, to)) in counts.iter_mut().zip(windows) {
            let n = run.partition_point(|d| *d <= to) - run.partition_point(|d| *d < from);
            if n > 0 {
                c[0] += 1;
                c[1] += i64::from(n >= 2);
                c[2] += i64::from(run[0] < from);
            }
        }
    }
    let rate = |i: usize| -> Vec<f64> { counts.iter().map(|c| c[i] as f64 / c[0] as f64).collect() };
    Ok(df!(
        "customers" => counts.iter().map(|c| c[0]).collect::<Vec<_>>(),
        "repeat_customers" => counts.iter().map(|c| c[1]).collect::<Vec<_>>(),
        "returning_customers" => counts.iter().map(|c| c[2]).collect::<Vec<_>>(),
        "repeat_rate" => rate(1),
        "returning_rate" => rate(2),
        "from_day" => windows.iter().map(|w| w.0).collect::<Vec<_>>(),
        "to_day" => windows.iter().map(|w| w.1).collect::<Vec<_>>(),
    )?)
}

/// [`repeat_trend`] by [`repeat_windows_sorted`], over occasions sorted by customer and day.
pub fn repeat_trend_sorted(occ: &DataFrame, as_of: i32, weeks: i32, window_days: i32) -> Result<DataFrame> {
    let last = week_of(as_of);
    let weeks: Vec<i32> = ((last - weeks + 1)..=last).collect();
    let windows: Vec<(i32, i32)> = weeks
        .iter()
        .map(|&w| {
            let to = (week_start(w) + 6).min(as_of);
            (to - window_days + 1, to)
        })
        .collect();
    let rates = repeat_windows_sorted(occ, &windows)?;
    Ok(rates
        .lazy()
        .with_column(Series::new("week".into(), weeks).lit())
        .select(TREND_COLUMNS.map(col))
        .collect()?)
}

/// Cohort period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Period {
    Month,
    Week,
}

/// One cell of a cohort triangle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortCell {
    /// Cohort period number (month or week number).
    pub cohort: i32,
    pub size: i64,
    /// Periods after the cohort's first.
    pub k: i32,
    /// Share of the cohort with an occasion in period cohort + k; `None` when not reached by as-of.
    pub retention: Option<f64>,
    /// Net spend of the cohort's customers in periods 0..=k, per cohort customer; `None` when not reached.
    pub cumulative_fen_per_customer: Option<f64>,
}

/// cohort -> (size, k -> (active customers, revenue fen))
type Cells = std::collections::BTreeMap<i32, (i64, std::collections::BTreeMap<i32, (i64, i64)>)>;

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// The cohort triangle up to `as_of`, every reachable cell present (0 where nobody came back) and the
/// unreached ones `None`, for each cohort k = 0..=(the longest any cohort has reached).
pub fn cohorts(occasions: LazyFrame, period: Period, as_of: i32) -> Result<Vec<CohortCell>> {
    let p = |day: Expr| match period {
        Period::Month => month_expr(day),
        Period::Week => week_expr(day),
    };
    let occ = occasions
        .filter(col("day").lt_eq(lit(as_of)))
        .with_column(p(col("day")).alias("period"))
        .with_column(col("period").min().pipe_over().alias("cohort"))
        .with_column((col("period") - col("cohort")).alias("k"));
    let sizes = occ
        .clone()
        .filter(col("k").eq(lit(0i32)))
        .group_by([col("cohort")])
        .agg([col("customer_key").n_unique().cast(DataType::Int64).alias("size")]);
    let cells = occ
        .group_by([col("cohort"), col("k")])
        .agg([
            col("customer_key").n_unique().cast(DataType::Int64).alias("active"),
            col("net_fen").sum().alias("revenue_fen"),
        ])
        .join(sizes, [col("cohort")], [col("cohort")], JoinArgs::new(JoinType::Left))
        .sort(["cohort", "k"], SortMultipleOptions::default())
        .collect()?;
    let cohort = cells.column("cohort")?.i32()?;
    let k = cells.column("k")?.i32()?;
    let active = cells.column("active")?.i64()?;
    let revenue = cells.column("revenue_fen")?.i64()?;
    let size = cells.column("size")?.i64()?;
    let mut by_cohort: Cells = Default::default();
    for i in 0..cells.height() {
        let (c, kk) = (cohort.get(i).unwrap_or(0), k.get(i).unwrap_or(0));
        let e = by_cohort
            .entry(c)
            .or_insert((size.get(i).unwrap_or(0), Default::default()));
        e.1.insert(kk, (active.get(i).unwrap_or(0), revenue.get(i).unwrap_or(0)));
    }
    Ok(triangle(by_cohort, period, as_of))
}

/// [`cohorts`] in one pass over occasions sorted by customer and day (as `inputs::Builder` gives
/// them): each customer's periods come in order, so a customer is active in a cell once per change of period.
pub fn cohorts_sorted(occ: &DataFrame, period: Period, as_of: i32) -> Result<Vec<CohortCell>> {
    let (keys, days) = super::occasions::sorted_keys_and_days(occ)?;
    let net = occ.column("net_fen")?.i64()?;
    // Period numbers by day, computed once per day in the data's range.
    let lo = days.iter().copied().min().unwrap_or(0);
    let hi = days.iter().copied().filter(|&d| d <= as_of).max().unwrap_or(lo);
    let of = |d: i32| match period {
        Period::Month => month_of(d),
        Period::Week => week_of(d),
    };
    let periods: Vec<i32> = (lo..=hi.max(lo)).map(of).collect();
    // Counts per cohort (its size, and per period since: active customers and net spend), indexed by
    // period from the first; a cohort's row made when its first customer comes.
    let first = periods.first().copied().unwrap_or(0);
    let side = (periods.last().copied().unwrap_or(first) - first + 1) as usize;
    let mut sizes = vec![0i64; side];
    let mut rows: Vec<Vec<(i64, i64)>> = vec![Vec::new(); side];
    let (mut cohort, mut last) = (0usize, 0usize);
    for (i, ((&key, &day), net)) in keys.iter().zip(&days).zip(net.iter()).enumerate() {
        if day > as_of {
            continue;
        }
        let p = (periods[(day - lo) as usize] - first) as usize;
        // Later days come later: a customer's earlier row was not skipped.
        let new_customer = i == 0 || keys[i - 1] != key;
        if new_customer {
            cohort = p;
            sizes[cohort] += 1;
            if rows[cohort].is_empty() {
                rows[cohort] = vec![(0, 0); side - cohort];
            }
        }
        let cell = &mut rows[cohort][p - cohort];
        if new_customer || p != last {
            cell.0 += 1;
        }
        cell.1 += net.unwrap_or(0);
        last = p;
    }
    let by_cohort: Cells = rows
        .into_iter()
        .enumerate()
        .filter(|(c, _)| sizes[*c] > 0)
        .map(|(c, row)| (first + c as i32, (sizes[c], (0..).zip(row).collect())))
        .collect();
    Ok(triangle(by_cohort, period, as_of))
}

/// Cohort cells as [`cohorts`] returns them, from the counts.
fn triangle(by_cohort: Cells, period: Period, as_of: i32) -> Vec<CohortCell> {
    let last_period = match period {
        Period::Month => month_of(as_of),
        Period::Week => week_of(as_of),
    };
    let max_k = by_cohort.keys().next().map_or(0, |first| last_period - first);
    let mut out = Vec::new();
    for (c, (size, ks)) in by_cohort {
        let mut cumulative = 0i64;
        for kk in 0..=max_k {
            let reached = c + kk <= last_period;
            let (act, rev) = ks.get(&kk).copied().unwrap_or((0, 0));
            cumulative += rev;
            out.push(CohortCell {
                cohort: c,
                size,
                k: kk,
                retention: reached.then(|| act as f64 / size as f64),
                cumulative_fen_per_customer: reached.then(|| cumulative as f64 / size as f64),
            });
        }
    }
    out
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Median and mean days from occasion n to n+1, per step (1->2, 2->3, 3->4+), with how many gaps.
pub fn latency(occasions: LazyFrame) -> LazyFrame {
    occasions
        .sort(["customer_key", "day"], SortMultipleOptions::default())
        .with_columns([
            (col("day") - col("day").shift(lit(1)).pipe_over()).alias("gap"),
            col("day").cum_count(false).pipe_over().alias("n"),
        ])
        .filter(col("gap").is_not_null())
        .with_column(
            when(col("n").eq(lit(2u32)))
                .then(lit("1->2"))
                .when(col("n").eq(lit(3u32)))
                .then(lit("2->3"))
                .otherwise(lit("3->4+"))
                .alias("step"),
        )
        .group_by([col("step")])
        .agg([
            col("gap").count().cast(DataType::Int64).alias("gaps"),
            col("gap").cast(DataType::Float64).median().alias("median_days"),
            col("gap").cast(DataType::Float64).mean().alias("mean_days"),
        ])
        .sort(["step"], SortMultipleOptions::default())
}

#[cfg(test)] // tests only: the Polars definition analyze's one-pass code is checked against
/// Per week (the `weeks` weeks ending with the as-of week): new customers (first occasion that week),
/// returning (an occasion that week, first before it), lapsed (the week their `lapse_days` without a
/// purchase ran out).
pub fn weekly_customers(occasions: LazyFrame, as_of: i32, weeks: i32, lapse_days: i32) -> LazyFrame {
    let last = week_of(as_of);
    let frame = df!("week" => ((last - weeks + 1)..=last).collect::<Vec<i32>>())
        .expect("one column")
        .lazy();
    let occ = occasions
        .filter(col("day").lt_eq(lit(as_of)))
        .sort(["customer_key", "day"], SortMultipleOptions::default())
        .with_columns([
            col("day").min().pipe_over().alias("first_day"),
            col("day").shift(lit(-1)).pipe_over().alias("next_day"),
        ]);
    let active = occ
        .clone()
        .with_column(week_expr(col("day")).alias("week"))
        .with_column((week_expr(col("first_day")).eq(col("week"))).alias("is_new"))
        .group_by([col("week"), col("customer_key")])
        .agg([col("is_new").any(true)])
        .group_by([col("week")])
        .agg([
            col("is_new").sum().cast(DataType::Int64).alias("new_customers"),
            col("is_new")
                .not()
                .sum()
                .cast(DataType::Int64)
                .alias("returning_customers"),
        ]);
    let lapsed = occ
        .with_column((col("day") + lit(lapse_days)).alias("lapse_day"))
        .filter(
            col("lapse_day")
                .lt_eq(lit(as_of))
                .and(col("next_day").is_null().or(col("next_day").gt(col("lapse_day")))),
        )
        .with_column(week_expr(col("lapse_day")).alias("week"))
        .group_by([col("week")])
        .agg([col("customer_key")
            .count()
            .cast(DataType::Int64)
            .alias("lapsed_customers")]);
    frame
        .left_join(active, col("week"), col("week"))
        .left_join(lapsed, col("week"), col("week"))
        .with_columns([
            col("new_customers").fill_null(lit(0i64)),
            col("returning_customers").fill_null(lit(0i64)),
            col("lapsed_customers").fill_null(lit(0i64)),
            (col("week") * lit(7i32) - lit(3i32))
                .cast(DataType::Date)
                .alias("week_start"),
        ])
        .sort(["week"], SortMultipleOptions::default())
}

/// [`weekly_customers`] in one pass over occasions sorted by customer and day (analyze's, customer keys
/// as UInt32 codes) instead of a sort and two window functions. Same columns and rows.
pub fn weekly_customers_sorted(occ: &DataFrame, as_of: i32, weeks: i32, lapse_days: i32) -> Result<DataFrame> {
    let (keys, days) = super::occasions::sorted_keys_and_days(occ)?;
    let last = week_of(as_of);
    let first_week = last - weeks + 1;
    let slot = |week: i32| {
        (first_week..=last)
            .contains(&week)
            .then(|| (week - first_week) as usize)
    };
    let n = weeks.max(0) as usize;
    let (mut new, mut returning, mut lapsed) = (vec![0i64; n], vec![0i64; n], vec![0i64; n]);
    for rows in super::occasions::customer_runs(&keys) {
        let run = &days[rows];
        let run = &run[..run.partition_point(|d| *d <= as_of)];
        let first_week_of_customer = run.first().map(|d| week_of(*d));
        let mut seen_week = None;
        for (j, &day) in run.iter().enumerate() {
            let week = week_of(day);
            if seen_week != Some(week) {
                seen_week = Some(week);
                if let Some(i) = slot(week) {
                    if Some(week) == first_week_of_customer {
                        new[i] += 1;
                    } else {
                        returning[i] += 1;
                    }
                }
            }
            let lapse_day = day + lapse_days;
            if lapse_day <= as_of && run.get(j + 1).is_none_or(|next| *next > lapse_day) {
                if let Some(i) = slot(week_of(lapse_day)) {
                    lapsed[i] += 1;
                }
            }
        }
    }
    Ok(df!(
        "week" => (first_week..=last).collect::<Vec<i32>>(),
        "new_customers" => new,
        "returning_customers" => returning,
        "lapsed_customers" => lapsed,
    )?
    .lazy()
    .with_column(
        (col("week") * lit(7i32) - lit(3i32))
            .cast(DataType::Date)
            .alias("week_start"),
    )
    .collect()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::strs;

    fn occ(rows: &[(&str, i32, i64)]) -> LazyFrame {
        df!(
            "customer_key" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "quality" => rows.iter().map(|_| "strong").collect::<Vec<_>>(),
            "day" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "net_fen" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )
        .unwrap()
        .lazy()
    }

    #[test]
    fn weeks_start_on_monday() {
        // 1970-01-01 (day 0) was a Thursday: its week starts Monday 1969-12-29 (day -3).
        assert_eq!(week_start(week_of(0)), -3);
        // 2026-11-16 is a Monday: day 20773.
        let monday = (chrono::NaiveDate::from_ymd_opt(2026, 11, 16).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32;
        assert_eq!(week_start(week_of(monday)), monday);
        assert_eq!(week_start(week_of(monday + 6)), monday);
        assert_eq!(week_of(monday + 7), week_of(monday) + 1);
    }

    #[test]
    fn repeat_and_returning_rates_by_hand() {
        // Window days 100..=130. a: first ever at 50, twice in window (repeat, returning). b: first at 110,
        // once (new). c: first at 105, twice (repeat, new). d: only before the window.
        let o = occ(&[
            ("a", 50, 1),
            ("a", 101, 1),
            ("a", 120, 1),
            ("b", 110, 1),
            ("c", 105, 1),
            ("c", 125, 1),
            ("d", 60, 1),
        ]);
        let r = repeat_rates(o, 100, 130).collect().unwrap();
        let get = |c: &str| r.column(c).unwrap().f64().unwrap().get(0).unwrap();
        assert_eq!(r.column("customers").unwrap().i64().unwrap().get(0), Some(3));
        assert!((get("repeat_rate") - 2.0 / 3.0).abs() < 1e-12);
        assert!((get("returning_rate") - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn repeat_trend_by_hand() {
        // Two weeks, windows of 14 days ending on each Sunday. Week W ends on day e, W+1 on e + 7 (as-of).
        let w = week_of(20773);
        let e = week_start(w) + 6;
        // a: e-20 (first), e-3, e+2 -> window W (e-13..=e): once, returning; window W+1 (e-6..=e+7): twice.
        // b: e-1 only -> new, once in both windows. c: e+5 and e+6 -> only in W+1, twice, new.
        let o = occ(&[
            ("a", e - 20, 1),
            ("a", e - 3, 1),
            ("a", e + 2, 1),
            ("b", e - 1, 1),
            ("c", e + 5, 1),
            ("c", e + 6, 1),
        ]);
        let t = repeat_trend(o.clone(), first_days(o), e + 7, 2, 14).unwrap();
        assert_eq!(
            t.column("week")
                .unwrap()
                .i32()
                .unwrap()
                .into_no_null_iter()
                .collect::<Vec<_>>(),
            vec![w, w + 1]
        );
        assert_eq!(t.column("to_day").unwrap().i32().unwrap().get(0), Some(e));
        assert_eq!(t.column("from_day").unwrap().i32().unwrap().get(1), Some(e - 6));
        let f = |c: &str, i: usize| t.column(c).unwrap().f64().unwrap().get(i).unwrap();
        // W: customers a, b; repeat none; returning a -> 0 and 1/2.
        assert_eq!(t.column("customers").unwrap().i64().unwrap().get(0), Some(2));
        assert_eq!((f("repeat_rate", 0), f("returning_rate", 0)), (0.0, 0.5));
        // W+1: a (twice, returning), b (once, returning: first e-1 < e-6? no, e-1 >= e-6 so new), c (twice, new).
        assert_eq!(t.column("customers").unwrap().i64().unwrap().get(1), Some(3));
        assert!((f("repeat_rate", 1) - 2.0 / 3.0).abs() < 1e-12);
        assert!((f("returning_rate", 1) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn cohort_triangle_leaves_unreached_cells_empty() {
        // Weeks: cohort W (a, b) and cohort W+1 (c). As of the end of week W+1.
        let w = week_of(20773); // the week of Monday 2026-11-16
        let d0 = week_start(w);
        let o = occ(&[
            ("a", d0, 1000),
            ("b", d0 + 2, 500),
            ("a", d0 + 8, 300),
            ("c", d0 + 9, 200),
        ]);
        let cells = cohorts(o, Period::Week, d0 + 13).unwrap();
        let cell = |c: i32, k: i32| cells.iter().find(|x| x.cohort == c && x.k == k).unwrap().clone();
        assert_eq!(cell(w, 0).retention, Some(1.0));
        assert_eq!(cell(w, 1).retention, Some(0.5));
        assert_eq!(cell(w, 0).cumulative_fen_per_customer, Some(750.0));
        assert_eq!(cell(w, 1).cumulative_fen_per_customer, Some(900.0));
        assert_eq!(cell(w + 1, 0).retention, Some(1.0));
        assert_eq!(
            cell(w + 1, 1).retention,
            None,
            "week W+2 is not reached yet: empty, not 0"
        );
        assert_eq!(cell(w + 1, 1).cumulative_fen_per_customer, None);
    }

    #[test]
    fn latency_per_step() {
        // a: days 0, 10, 30, 36, 50 -> gaps 10 (1->2), 20 (2->3), 6 and 14 (3->4+). b: 5, 9 -> 4 (1->2).
        let o = occ(&[
            ("a", 0, 1),
            ("a", 10, 1),
            ("a", 30, 1),
            ("a", 36, 1),
            ("a", 50, 1),
            ("b", 5, 1),
            ("b", 9, 1),
        ]);
        let l = latency(o).collect().unwrap();
        let steps: Vec<String> = strs(&l, "step");
        let med: Vec<f64> = l
            .column("median_days")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(steps, ["1->2", "2->3", "3->4+"]);
        assert_eq!(med, [7.0, 20.0, 10.0]);
    }

    #[test]
    fn new_returning_lapsed_per_week() {
        let w = week_of(20773);
        let d0 = week_start(w);
        // a: first ever long before, back in week W (returning). b: first in week W (new).
        // c: last seen d0 - 90 + 2 -> 90 days run out on d0 + 2, in week W (lapsed).
        let o = occ(&[
            ("a", d0 - 200, 1),
            ("a", d0 + 1, 1),
            ("b", d0 + 3, 1),
            ("c", d0 - 88, 1),
        ]);
        let t = weekly_customers(o, d0 + 6, 2, 90).collect().unwrap();
        let col_of = |c: &str| {
            t.column(c)
                .unwrap()
                .i64()
                .unwrap()
                .into_no_null_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(col_of("new_customers"), [0, 1]);
        assert_eq!(col_of("returning_customers"), [0, 1]);
        assert_eq!(col_of("lapsed_customers"), [0, 1]);
    }

    /// Occasions sorted by customer code and day: `customers` customers, each starting on a day in
    /// `20_000 + 0..spread` with 1 to `most` occasions `1..=gap` days apart (seeded, so reproducible).
    fn sorted_occasions(seed: u64, customers: u32, spread: u64, most: u64, gap: u64) -> DataFrame {
        let mut next = crate::analytics::testing::pseudo_random(seed);
        let (mut k, mut d) = (Vec::new(), Vec::new());
        for c in 0..customers {
            let mut day = 20_000 + next(spread) as i32;
            for _ in 0..1 + next(most) {
                k.push(c);
                d.push(day);
                day += 1 + next(gap) as i32;
            }
        }
        let n = k.len();
        df!("customer_key" => k, "day" => d, "quality" => vec!["strong"; n], "net_fen" => vec![100i64; n]).unwrap()
    }

    #[test]
    fn one_pass_weekly_customers_equal_the_window_functions() {
        // 400 customers, occasions over 40 weeks (some after as-of), against weekly_customers.
        let occ = sorted_occasions(5, 400, 200, 8, 60);
        for (as_of, weeks, lapse) in [(20_200, 13, 30), (20_150, 26, 60), (20_180, 4, 90)] {
            let got = weekly_customers_sorted(&occ, as_of, weeks, lapse).unwrap();
            let want = weekly_customers(occ.clone().lazy(), as_of, weeks, lapse)
                .collect()
                .unwrap();
            assert!(got.equals_missing(&want), "{got}\n{want}");
            for c in ["new_customers", "returning_customers", "lapsed_customers"] {
                let total: i64 = got.column(c).unwrap().i64().unwrap().into_no_null_iter().sum();
                assert!(total > 0, "{c} is never counted at {as_of}");
            }
        }
    }

    #[test]
    fn one_pass_first_days_and_latency_equal_the_group_bys() {
        let occ = sorted_occasions(9, 500, 100, 7, 40);
        let sorted = |d: DataFrame| d.sort(["customer_key"], SortMultipleOptions::default()).unwrap();
        let got = first_days_sorted(&occ).unwrap();
        let want = sorted(first_days(occ.clone().lazy()).collect().unwrap());
        assert!(got.equals_missing(&want), "{got}\n{want}");
        let got = latency_sorted(&occ).unwrap();
        let want = latency(occ.lazy()).collect().unwrap();
        assert_eq!(got.height(), 3);
        assert!(got.equals_missing(&want), "{got}\n{want}");
    }

    #[test]
    fn one_pass_cohorts_equal_the_group_bys() {
        // Varied amounts; as-of dates inside the data (later occasions skipped) and after it, by month and week.
        let occ = crate::analytics::testing::random_occasions(21, 600);
        for period in [Period::Month, Period::Week] {
            for as_of in [1100, 1200, 1400] {
                let got = cohorts_sorted(&occ, period, as_of).unwrap();
                let want = cohorts(occ.clone().lazy(), period, as_of).unwrap();
                assert!(got.len() > 10);
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn one_pass_repeat_windows_and_trend_equal_the_group_bys() {
        let occ = crate::analytics::testing::random_occasions(23, 700);
        let first = first_days(occ.clone().lazy());
        let windows = [(1100, 1106), (1080, 1107), (1000, 1300), (1290, 1400)];
        let got = repeat_windows_sorted(&occ, &windows).unwrap();
        let want = concat(
            windows
                .iter()
                .map(|&(f, t)| repeat_rates_given_first(occ.clone().lazy(), first.clone(), f, t))
                .collect::<Vec<_>>(),
            UnionArgs::default(),
        )
        .unwrap()
        .collect()
        .unwrap();
        let want = want.select(got.get_column_names().into_iter().cloned()).unwrap();
        assert!(got.column("customers").unwrap().i64().unwrap().get(2).unwrap() > 100);
        assert!(got.equals_missing(&want), "{got}\n{want}");
        for (as_of, weeks) in [(1200, 13), (1250, 4)] {
            let got = repeat_trend_sorted(&occ, as_of, weeks, 28).unwrap();
            let want = repeat_trend(occ.clone().lazy(), first.clone(), as_of, weeks, 28).unwrap();
            assert!(got.equals_missing(&want), "{got}\n{want}");
        }
    }
}
