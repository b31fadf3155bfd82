//! `paylens analyze`: runs the customer analytics over the store as of a date and writes the result tables
//! (Parquet, and CSV in UTF-8 with BOM for Excel) under `reports/<ISO week>/`, then prints a summary.
//! The only file I/O of the analytics lives here; the transforms are in `crate::analytics`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{Datelike, NaiveDate, Weekday};
use polars::prelude::*;

use crate::analytics::{kpis, occasions, retention, rfm, segments::SegmentMap, transitions};
use crate::config::Config;
use crate::store::StoreReader;

/// Resolved settings of one analysis.
#[derive(Debug, Clone)]
pub struct AnalyzeParams {
    /// The as-of date; default: the end (Sunday) of the last complete ISO week in the data.
    pub as_of: Option<NaiveDate>,
    /// Segment map: a preset name or a TOML file.
    pub segments: String,
    /// An inline map from the config, used when no `--segments` was given.
    pub inline_map: Option<SegmentMap>,
    /// RFM window in days (None: all history).
    pub window_days: Option<i32>,
    /// Weeks of history for KPIs, new/returning/lapsed and segment-change dates.
    pub weeks: i32,
    /// Days without a purchase after which a customer counts as lapsed.
    pub lapse_days: i32,
    /// Put raw buyer ids into the target lists.
    pub with_contact_ids: bool,
    pub quiet: bool,
}

/// What an analysis produced, for the caller's own summary.
#[derive(Debug)]
pub struct AnalyzeOutcome {
    pub as_of: NaiveDate,
    pub folder: PathBuf,
    pub customers: usize,
    pub segments: DataFrame,
    pub kpis: DataFrame,
    pub transitions: DataFrame,
    pub repeat: DataFrame,
    pub coverage: DataFrame,
    pub cohorts_monthly: DataFrame,
    pub customers_weekly: DataFrame,
    /// Per week: in-window repeat rate and returning-customer rate over the trailing 28 days.
    pub repeat_trend: DataFrame,
    /// Customers and net sales of the as-of week and the week before, new vs returning.
    pub split: WeekSplit,
}

/// The trailing window of the weekly repeat-purchase trend.
pub const REPEAT_TREND_DAYS: i32 = 28;

/// Who bought in a week: customers and net fen, new (first occasion that week) or returning.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WeekSplit {
    pub new_now: (i64, i64),
    pub returning_now: (i64, i64),
    pub new_before: (i64, i64),
    pub returning_before: (i64, i64),
}

/// Customers and net fen of days `from..=to`, split by whether their first occasion falls in the window.
fn split_window(occ: &LazyFrame, first: &LazyFrame, from: i32, to: i32) -> Result<((i64, i64), (i64, i64))> {
    let df = occ
        .clone()
        .filter(col("day").gt_eq(lit(from)).and(col("day").lt_eq(lit(to))))
        .inner_join(first.clone(), col("customer_key"), col("customer_key"))
        .with_column(col("first_day").gt_eq(lit(from)).alias("is_new"))
        .group_by([col("is_new")])
        .agg([
            col("customer_key").n_unique().cast(DataType::Int64).alias("n"),
            col("net_fen").sum().alias("fen"),
        ])
        .collect()?;
    let mut out = ((0, 0), (0, 0));
    for i in 0..df.height() {
        let v = (
            df.column("n")?.i64()?.get(i).unwrap_or(0),
            df.column("fen")?.i64()?.get(i).unwrap_or(0),
        );
        if df.column("is_new")?.bool()?.get(i) == Some(true) {
            out.0 = v;
        } else {
            out.1 = v;
        }
    }
    Ok(out)
}

pub fn day_number(d: NaiveDate) -> i32 {
    crate::ingest::model::days_since_epoch(d)
}

pub fn date_of(day: i32) -> NaiveDate {
    crate::ingest::model::date_of_day(day).expect("a day number within the calendar")
}

/// `2026-W47`.
pub fn iso_week_label(d: NaiveDate) -> String {
    let w = d.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// The Sunday that ends the last complete ISO week on or before `last_day`.
pub fn last_complete_week_end(last_day: NaiveDate) -> NaiveDate {
    if last_day.weekday() == Weekday::Sun {
        last_day
    } else {
        last_day - chrono::Days::new(last_day.weekday().num_days_from_sunday() as u64)
    }
}

/// The given as-of date, or the end (Sunday) of the last complete ISO week in the events.
pub fn resolve_as_of(given: Option<NaiveDate>, events: &LazyFrame) -> Result<NaiveDate> {
    if let Some(d) = given {
        return Ok(d);
    }
    let max = events
        .clone()
        .select([col("local_date").cast(DataType::Int32).max()])
        .collect()?;
    let last = max
        .column("local_date")?
        .i32()?
        .get(0)
        .context("the store has no event dates")?;
    Ok(last_complete_week_end(date_of(last)))
}

/// The as-of date a report takes by default: the end of the last complete ISO week in the store; `None`
/// when the store holds no events.
pub fn default_as_of(cfg: &Config) -> Result<Option<NaiveDate>> {
    let store = StoreReader::open(&cfg.store)?;
    if store.manifest.events.is_empty() {
        return Ok(None);
    }
    Ok(Some(resolve_as_of(None, &store.scan_events()?)?))
}

const EVENT_COLUMNS: [&str; 10] = [
    "event_id",
    "kind",
    "local_date",
    "customer_key",
    "customer_key_quality",
    "amount_fen",
    "payment_event_id",
    "channel",
    "fee_millifen",
    "product_name",
];

pub fn run(p: &AnalyzeParams, cfg: &Config) -> Result<AnalyzeOutcome> {
    run_sharing(p, cfg, None)
}

/// The bill sales of every payment up to a day (`velocity::BillSales::into_frame`), with that day.
pub type SharedSales = (i32, DataFrame);

/// [`run`], sending the bill sales its occasion pass folds to `sales_to` as soon as the pass is done (the
/// report's restock thread waits for them). The sender goes when this returns, so a receiver is never left
/// waiting.
pub fn run_sharing(
    p: &AnalyzeParams,
    cfg: &Config,
    sales_to: Option<std::sync::mpsc::SyncSender<SharedSales>>,
) -> Result<AnalyzeOutcome> {
    let mut phase = crate::timings::Phases::from_env();
    let store = StoreReader::open(&cfg.store)?;
    if store.manifest.events.is_empty() {
        bail!(crate::UserError(crate::tr!(
            "error.no_events",
            store = cfg.store.display()
        )));
    }
    let events = store.scan_events()?.select(EVENT_COLUMNS.map(col));
    let as_of = resolve_as_of(p.as_of, &events)?;
    let map = match &p.inline_map {
        Some(m) => m.clone(),
        None => SegmentMap::load(&p.segments).map_err(|e| crate::UserError(format!("{e:#}")))?,
    };
    let day = day_number(as_of);
    let folder = cfg.reports.join(iso_week_label(as_of));
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;

    // Segments now, their history and the customer list.
    // Occasions once: every customer metric and the weekly segment snapshots derive from them. They, the
    // favourite products and the coverage rows' net sales come from one pass over the events up to as-of.
    phase.mark("refunds");
    let upto = |lf: LazyFrame| {
        lf.with_column(col("local_date").cast(DataType::Int32).alias("day"))
            .filter(col("day").lt_eq(lit(day)))
    };
    let refunds = crate::analytics::inputs::refunds(upto(events.clone())).collect()?;
    let mut inputs = crate::analytics::inputs::Builder::new(&refunds, day)?;
    drop(refunds);
    if sales_to.is_some() {
        inputs.fold_bill_sales();
    }
    // Every payment the files held: about the payments with a key (duplicates and keyless ones fewer).
    inputs.reserve(store.manifest.files.iter().map(|f| f.payments as usize).sum());
    // The weekly KPIs' sums come from the same pass.
    inputs.count_weeks_from(kpis::first_week(day, p.weeks));
    phase.mark("occasions_pass");
    // A file at a time, the next one read while this one is taken in: the whole store in one frame would
    // be the largest thing the report holds (about 2 GB at 10M events).
    let parts = store.scan_event_parts()?;
    let inputs = std::thread::scope(|scope| -> Result<_> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            let cols = [
                "event_id",
                "kind",
                "day",
                "customer_key",
                "customer_key_quality",
                "amount_fen",
                "product_name",
                "channel",
                "fee_millifen",
            ];
            // The pass leaves out what is after as-of itself: a filter here would make Polars decode every
            // column through a mask, though most files hold nothing to leave out.
            let day_number = col("local_date").cast(DataType::Int32).alias("day");
            for part in parts {
                // A send fails once the receiver gave up on an error: stop reading then.
                if tx
                    .send(part.with_column(day_number.clone()).select(cols.map(col)).collect())
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut clock = crate::timings::Totals::from_env();
        for part in rx {
            clock.add("occasions: reading");
            inputs.add(&part?)?;
            clock.add("occasions: adding");
        }
        drop(clock);
        phase.mark("occasions_finish");
        inputs.finish()
    })?;
    if let (Some(to), Some(sales)) = (sales_to, inputs.bill_sales) {
        // A restock thread that has gone (on an error of its own) takes nothing.
        let _ = to.send((day, sales));
    }
    let (occ_df, favourites, net, keys) = (inputs.occasions, inputs.favourites, inputs.net_by_day, inputs.keys);
    let weekly_sums = inputs.weekly_sums.context("the occasion pass summed no weeks")?;
    let occ = occ_df.clone().lazy();
    // Each customer's first occasion: the repeat windows, the trend and the new/returning split use it.
    let first_ever = retention::first_days_sorted(&occ_df)?.lazy();
    // Two chains from here, on two threads: the customers (RFM now and back, segments, the customer table
    // and target lists) and the history tables (KPIs, repeat rates, cohorts, latency, weekly customers);
    // each is mostly one thread's work.
    let (cuts, trans, customers, writers, summary, history) = std::thread::scope(|scope| -> Result<_> {
        let history = scope.spawn(|| history_tables(&occ_df, &net, weekly_sums, day, p));
        phase.mark("transitions");
        // The RFM table now and at each weekly snapshot back, in one pass over the sorted occasions.
        let weeks_back = p.weeks.clamp(1, 13);
        let snapshot_days: Vec<i32> = (0..=weeks_back).map(|k| day - 7 * k).collect();
        let snapshots = rfm::rfm_tables(&occ_df, &snapshot_days, p.window_days)?;
        phase.mark("segment_snapshots");
        let (segmented, cuts, trans) = transitions::segment_snapshots(snapshots, &map, day)?;
        let labels = match store.identities()? {
            Some(ids) => ids.lazy().select([col("customer_key"), col("label")]),
            None => df!("customer_key" => Vec::<String>::new(), "label" => Vec::<String>::new())?.lazy(),
        };
        phase.mark("customers");
        // Joined and ordered on the customer codes, the keys restored after: strings cost more to join, and to
        // sort (the codes are in key order).
        let joined = segmented
            .clone()
            .lazy()
            .left_join(
                trans.per_customer.clone().lazy(),
                col("customer_key"),
                col("customer_key"),
            )
            .collect()?;
        let by_segment = by_segment_then_code(&joined)?;
        // Each customer's favourite product, for the target lists, found by code in the table's order.
        let favourite = favourites_in_order(&by_segment, &favourites)?;
        drop(favourites);
        let ordered = occasions::restore_keys(by_segment, &keys)?;
        let mut keep_order = JoinArgs::new(JoinType::Left);
        keep_order.maintain_order = MaintainOrderJoin::Left;
        let customers = ordered
            .lazy()
            .join(labels, [col("customer_key")], [col("customer_key")], keep_order)
            .select([
                col("customer_key"),
                col("label"),
                col("quality").alias("key_quality"),
                col("first_day").cast(DataType::Date).alias("first_purchase"),
                col("last_day").cast(DataType::Date).alias("last_purchase"),
                col("recency_days"),
                col("frequency"),
                (col("monetary_fen").cast(DataType::Float64) / lit(100.0)).alias("monetary_yuan"),
                col("monetary_fen"),
                col("r_score"),
                col("f_score"),
                col("m_score"),
                col("segment"),
                col("previous_segment"),
                col("segment_since"),
            ])
            .collect()?;
        // The largest outputs, the customer table and the target lists, are written on threads of their own
        // while the rest is computed.
        let raw_ids = if p.with_contact_ids { store.identities()? } else { None };
        let writers = {
            let (table, folder_t) = (customers.clone(), folder.clone());
            let mut customers = customers.clone();
            customers.with_column(favourite)?;
            let (folder, settings) = (folder.clone(), cfg.targets.clone());
            [
                std::thread::spawn(move || {
                    let mut phase = crate::timings::Phases::from_env();
                    phase.mark("writer: customers");
                    write_table(&folder_t, "customers", table)
                }),
                std::thread::spawn(move || -> Result<()> {
                    let mut phase = crate::timings::Phases::from_env();
                    phase.mark("writer: targets");
                    crate::targets::write(&customers, &settings, raw_ids, &folder)?;
                    Ok(())
                }),
            ]
        };
        phase.mark("summary");
        let summary = crate::analytics::segments::summary(segmented.clone().lazy(), &map).collect()?;

        let history = history
            .join()
            .map_err(|_| anyhow::anyhow!("the thread of the history tables panicked"))??;
        Ok((cuts, trans, customers, writers, summary, history))
    })?;
    let cut_table = df!(
        "measure" => ["recency_days", "frequency", "monetary_fen"],
        "levels" => [cuts.recency.len() as i64 + 1, cuts.frequency.len() as i64 + 1, cuts.monetary.len() as i64 + 1],
        "cut_points" => [join(&cuts.recency), join(&cuts.frequency), join(&cuts.monetary)],
    )?;

    phase.mark("tables");
    let tables: Vec<(&str, DataFrame)> = vec![
        ("segments", summary.clone()),
        ("rfm_cut_points", cut_table),
        ("segment_transitions", trans.matrix.clone()),
        ("repeat_purchase", history.repeat.clone()),
        ("key_coverage", history.coverage.clone()),
        ("cohorts_monthly", history.monthly.clone()),
        ("cohorts_weekly", history.weekly_cohorts),
        ("purchase_latency", history.latency),
        ("customers_weekly", history.weekly_customers.clone()),
        ("kpis_weekly", history.kpi.clone()),
        ("repeat_trend", history.trend.clone()),
    ];
    for (name, df) in tables {
        write_table(&folder, name, df)?;
    }
    phase.mark("split");
    let (new_now, returning_now) = split_window(&occ, &first_ever, day - 6, day)?;
    let (new_before, returning_before) = split_window(&occ, &first_ever, day - 13, day - 7)?;
    phase.mark("waiting_for_writer");
    for writer in writers {
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("a thread writing the customer table or the target lists panicked"))??;
    }
    let outcome = AnalyzeOutcome {
        as_of,
        folder,
        customers: customers.height(),
        segments: summary,
        kpis: history.kpi.clone(),
        transitions: trans.matrix.clone(),
        repeat: history.repeat.clone(),
        coverage: history.coverage.clone(),
        cohorts_monthly: history.monthly.clone(),
        customers_weekly: history.weekly_customers.clone(),
        repeat_trend: history.trend,
        split: WeekSplit {
            new_now,
            returning_now,
            new_before,
            returning_before,
        },
    };
    if !p.quiet {
        print_summary(&outcome, &map, &cuts, &history.repeat, &history.coverage, &history.kpi)?;
    }
    Ok(outcome)
}

/// The tables of the customers' history, from the sorted occasions, net sales by day and the weekly sums.
struct History {
    kpi: DataFrame,
    repeat: DataFrame,
    coverage: DataFrame,
    monthly: DataFrame,
    weekly_cohorts: DataFrame,
    latency: DataFrame,
    weekly_customers: DataFrame,
    trend: DataFrame,
}

fn history_tables(
    occ_df: &DataFrame,
    net: &DataFrame,
    weekly_sums: DataFrame,
    day: i32,
    p: &AnalyzeParams,
) -> Result<History> {
    let mut phase = crate::timings::Phases::from_env();
    phase.mark("history: kpis");
    let kpi = with_week_labels(kpis::from_sums(weekly_sums.lazy(), day, p.weeks).collect()?)?;
    phase.mark("history: repeat_windows");
    // Repeat purchase over three windows, labelled.
    let week_from = day - 6;
    let windows = [
        ("as-of week", week_from),
        ("last 28 days", day - 27),
        ("last 365 days", day - 364),
    ];
    let rates = retention::repeat_windows_sorted(occ_df, &windows.map(|(_, from)| (from, day)))?;
    let mut repeat = Vec::new();
    for (i, (label, from)) in windows.into_iter().enumerate() {
        let coverage = occasions::key_coverage_from_net(net.clone().lazy(), Some(from)).select([
            col("none_share").alias("no_key_sales_share"),
            col("weak_share").alias("weak_key_sales_share"),
        ]);
        repeat.push(
            rates
                .slice(i as i64, 1)
                .lazy()
                .with_column(lit(label).alias("window"))
                .with_column(lit(1i32).alias("__j"))
                .inner_join(coverage.with_column(lit(1i32).alias("__j")), col("__j"), col("__j")),
        );
    }
    phase.mark("history: repeat");
    let repeat = concat(repeat, UnionArgs::default())?
        .select([
            col("window"),
            col("from_day").cast(DataType::Date).alias("from"),
            col("to_day").cast(DataType::Date).alias("to"),
            col("customers"),
            col("repeat_customers"),
            col("repeat_rate").alias("in_window_repeat_rate"),
            col("returning_customers"),
            col("returning_rate").alias("returning_customer_rate_shopify"),
            col("no_key_sales_share"),
            col("weak_key_sales_share"),
        ])
        .collect()?;
    let coverage = concat(
        [
            occasions::key_coverage_from_net(net.clone().lazy(), None).with_column(lit("all history").alias("window")),
            occasions::key_coverage_from_net(net.clone().lazy(), Some(week_from))
                .with_column(lit("as-of week").alias("window")),
        ],
        UnionArgs::default(),
    )?
    .collect()?;
    phase.mark("history: cohorts_monthly");
    let monthly = cohort_frame(
        &retention::cohorts_sorted(occ_df, retention::Period::Month, day)?,
        retention::Period::Month,
    )?;
    phase.mark("history: cohorts_weekly");
    let weekly_cohorts = cohort_frame(
        &retention::cohorts_sorted(occ_df, retention::Period::Week, day)?,
        retention::Period::Week,
    )?;
    phase.mark("history: latency");
    let latency = retention::latency_sorted(occ_df)?;
    phase.mark("history: weekly_customers");
    let weekly_customers = with_week_labels(retention::weekly_customers_sorted(occ_df, day, p.weeks, p.lapse_days)?)?;
    phase.mark("history: trend");
    let trend = retention::repeat_trend_sorted(occ_df, day, p.weeks, REPEAT_TREND_DAYS)?
        .lazy()
        .select([
            col("week"),
            col("from_day").cast(DataType::Date).alias("from"),
            col("to_day").cast(DataType::Date).alias("to"),
            col("customers"),
            col("repeat_rate").alias("in_window_repeat_rate"),
            col("returning_rate").alias("returning_customer_rate_shopify"),
        ])
        .collect()?;
    let trend = with_week_labels(trend)?;
    Ok(History {
        kpi,
        repeat,
        coverage,
        monthly,
        weekly_cohorts,
        latency,
        weekly_customers,
        trend,
    })
}

/// The rows ordered by segment name (a missing one first), then by customer code.
fn by_segment_then_code(df: &DataFrame) -> Result<DataFrame> {
    let segments = df.column("segment")?.str()?;
    let codes = df.column("customer_key")?.u32()?;
    let names: std::collections::BTreeSet<&str> = segments.iter().flatten().collect();
    let names: Vec<&str> = names.into_iter().collect();
    let rank = |s: Option<&str>| s.map_or(0, |s| names.partition_point(|n| *n < s) as u64 + 1);
    let mut order: Vec<(u64, IdxSize)> = segments
        .iter()
        .zip(codes.iter())
        .enumerate()
        .map(|(i, (s, c))| (rank(s) << 32 | u64::from(c.unwrap_or(0)), i as IdxSize))
        .collect();
    order.sort_unstable();
    let idx = IdxCa::from_vec("".into(), order.into_iter().map(|(_, i)| i).collect());
    Ok(df.take(&idx)?)
}

/// The `favourite_product` of each row of `table` (customer codes), from `favourites` (customer codes and
/// their favourite product): a lookup by code, no join.
fn favourites_in_order(table: &DataFrame, favourites: &DataFrame) -> Result<Column> {
    let (codes, products) = (
        favourites.column("customer_key")?.u32()?,
        favourites.column("favourite_product")?.str()?,
    );
    let mut by_code: Vec<Option<&str>> = Vec::new();
    for (code, product) in codes.iter().zip(products.iter()) {
        if let Some(code) = code {
            let code = code as usize;
            if by_code.len() <= code {
                by_code.resize(code + 1, None);
            }
            by_code[code] = product;
        }
    }
    let in_order: StringChunked = table
        .column("customer_key")?
        .u32()?
        .iter()
        .map(|c| c.and_then(|c| by_code.get(c as usize).copied().flatten()))
        .collect();
    Ok(in_order.with_name("favourite_product".into()).into_column())
}

/// One result table as `<name>.parquet` and `<name>.csv` in the folder.
fn write_table(folder: &Path, name: &str, mut df: DataFrame) -> Result<()> {
    let mut written = Vec::new();
    crate::store::write_parquet_atomic(&folder.join(format!("{name}.parquet")), &mut df, &mut written)?;
    crate::csv_out::write_csv(&df, &folder.join(format!("{name}.csv")))
}

/// Replaces the internal `week` number with its ISO label (`2026-W47`), first column.
fn with_week_labels(mut df: DataFrame) -> Result<DataFrame> {
    let labels: Vec<Option<String>> = df
        .column("week")?
        .i32()?
        .iter()
        .map(|w| w.map(|w| iso_week_label(date_of(retention::week_start(w)))))
        .collect();
    df.drop_in_place("week")?;
    df.insert_column(0, Column::new("iso_week".into(), labels))?;
    Ok(df)
}

fn join(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(" ")
}

/// Long cohort cells as a frame: cohort label, size, k, retention, cumulative revenue per customer.
fn cohort_frame(cells: &[retention::CohortCell], period: retention::Period) -> Result<DataFrame> {
    let label = |c: i32| match period {
        retention::Period::Month => format!("{}-{:02}", c.div_euclid(12), c.rem_euclid(12) + 1),
        retention::Period::Week => iso_week_label(date_of(retention::week_start(c))),
    };
    Ok(df!(
        "cohort" => cells.iter().map(|c| label(c.cohort)).collect::<Vec<_>>(),
        "cohort_size" => cells.iter().map(|c| c.size).collect::<Vec<_>>(),
        "period" => cells.iter().map(|c| c.k).collect::<Vec<_>>(),
        "retention" => cells.iter().map(|c| c.retention).collect::<Vec<_>>(),
        "cumulative_yuan_per_customer" => cells.iter().map(|c| c.cumulative_fen_per_customer.map(|f| f / 100.0)).collect::<Vec<_>>(),
    )?)
}

/// A fraction as a percentage with one decimal, `-` when missing.
pub fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1} %", v * 100.0))
}

fn print_summary(
    o: &AnalyzeOutcome,
    map: &SegmentMap,
    cuts: &crate::analytics::rfm::CutPoints,
    repeat: &DataFrame,
    coverage: &DataFrame,
    kpi: &DataFrame,
) -> Result<()> {
    use crate::i18n::{self, money_fen};
    use crate::tr;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        tr!(
            "analyze.header",
            date = i18n::date(o.as_of),
            week = iso_week_label(o.as_of),
            map = map.name,
            customers = o.customers
        )
    )?;
    let (r, f, m) = cuts.levels();
    if (r, f, m) != (5, 5, 5) {
        writeln!(out, "  {}", tr!("analyze.ties", r = r, f = f, m = m))?;
    }
    writeln!(
        out,
        "  {:<24} {:>9} {:>7} {:>14} {:>7}",
        tr!("report.segment"),
        tr!("report.customers"),
        tr!("report.share"),
        tr!("report.revenue"),
        tr!("report.share")
    )?;
    let s = &o.segments;
    for i in 0..s.height() {
        let seg = s.column("segment")?.str()?.get(i).unwrap_or("");
        let n = s.column("customers")?.i64()?.get(i).unwrap_or(0);
        let rev = s.column("revenue_fen")?.i64()?.get(i).unwrap_or(0);
        writeln!(
            out,
            "  {:<24} {:>9} {:>7} {:>14} {:>7}",
            i18n::segment(seg),
            n,
            pct(s.column("customer_share")?.f64()?.get(i)),
            money_fen(rev),
            pct(s.column("revenue_share")?.f64()?.get(i))
        )?;
    }
    for i in 0..repeat.height() {
        writeln!(
            out,
            "  {}",
            tr!(
                "report.repeat_line",
                window = i18n::name("value", repeat.column("window")?.str()?.get(i).unwrap_or("")),
                repeat = pct(repeat.column("in_window_repeat_rate")?.f64()?.get(i)),
                returning = pct(repeat.column("returning_customer_rate_shopify")?.f64()?.get(i))
            )
        )?;
    }
    writeln!(
        out,
        "  {}",
        tr!(
            "report.key_coverage",
            none = pct(coverage.column("none_share")?.f64()?.get(0)),
            weak = pct(coverage.column("weak_share")?.f64()?.get(0))
        )
    )?;
    let all = kpi.clone().lazy().filter(col("channel").eq(lit("all"))).collect()?;
    if let Some(last) = all.height().checked_sub(1) {
        writeln!(
            out,
            "  {}",
            tr!(
                "analyze.week",
                money = money_fen(all.column("net_fen")?.i64()?.get(last).unwrap_or(0)),
                change = all
                    .column("net_fen_wow")?
                    .f64()?
                    .get(last)
                    .map_or("-".into(), |v| format!("{:+.1} %", v * 100.0)),
                orders = all.column("orders")?.i64()?.get(last).unwrap_or(0),
                customers = all.column("customers")?.i64()?.get(last).unwrap_or(0)
            )
        )?;
    }
    writeln!(out, "  {}", tr!("analyze.tables", folder = o.folder.display()))?;
    Ok(())
}
