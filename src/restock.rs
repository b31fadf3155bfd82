//! `paylens restock`: product velocity and restock suggestions as of a date. Reads the store's events, POS
//! line items and latest inventory snapshot (or an inventory CSV given with `--inventory`), and writes
//! `reports/<ISO week>/velocity.csv` and `restock.csv` (UTF-8 with BOM for Excel) plus `inventory_gaps.csv`
//! (sold but not in the snapshot; stocked but unsold for 90 days). The maths is in `crate::analytics`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analytics::forecast::{self, Forecast};
use crate::analytics::restock::{suggest, Policy, Position, Suggestion, Urgency};
use crate::analytics::velocity::{self, AbcThresholds};
use crate::analyze::{date_of, day_number, iso_week_label, resolve_as_of};
use crate::config::Config;
use crate::csv_out::write_csv;
use crate::ingest::model::InventoryRow;
use crate::store::StoreReader;
use crate::tr;

/// Restock defaults (`[restock]` in paylens.toml); an inventory row's own values win.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestockSettings {
    /// Target cycle service level (probability of not running out in a replenishment cycle).
    pub service_level: f64,
    /// Days between orders (7 for a weekly report).
    pub review_days: f64,
    /// Lead time when the snapshot gives none.
    pub lead_time_days: f64,
    /// Pack size when the snapshot gives none.
    pub pack_size: f64,
    /// Minimum order quantity when the snapshot gives none.
    pub min_order: f64,
}

impl Default for RestockSettings {
    fn default() -> Self {
        RestockSettings {
            service_level: 0.95,
            review_days: 7.0,
            lead_time_days: 3.0,
            pack_size: 1.0,
            min_order: 1.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RestockParams {
    /// Replay the last N weeks of weekly ordering instead of suggesting orders.
    pub simulate_weeks: Option<i32>,
    /// Score the forecasts on the last N days instead of suggesting orders.
    pub backtest_days: Option<usize>,
    pub as_of: Option<NaiveDate>,
    pub inventory: Option<PathBuf>,
    pub settings: RestockSettings,
    pub quiet: bool,
}

/// One product's velocity facts.
#[derive(Debug, Clone)]
pub struct ProductFacts {
    pub key: String,
    pub name: String,
    pub first_day: i32,
    pub v7: f64,
    pub v28: f64,
    pub v90: f64,
    pub trend: Option<f64>,
    pub revenue_28_fen: i64,
    pub revenue_90_fen: i64,
    pub abc: &'static str,
    pub adi: Option<f64>,
    pub cv2: Option<f64>,
    pub demand_class: &'static str,
    pub forecast: Forecast,
    pub last_sale_day: Option<i32>,
}

/// One demand class's accuracy over a holdout: mean RMSSE of paylens's method and of seasonal naive.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestRow {
    pub demand_class: String,
    pub products: usize,
    pub method_rmsse: f64,
    pub seasonal_naive_rmsse: f64,
}

/// Holds out the last `holdout` days before `as_of`: each product's class and forecast are fitted on the
/// days before, and the flat forecast is scored against what sold, as is the weekly seasonal naive
/// forecast (RMSSE, scaled by the in-sample naive error as in M5). Products with under 56 days of
/// history or no variation are left out.
pub fn backtest(events: &[LazyFrame], line_items: LazyFrame, as_of: i32, holdout: usize) -> Result<Vec<BacktestRow>> {
    let daily = velocity::daily_units(events, line_items, as_of)?;
    let mut by_class: std::collections::BTreeMap<String, (usize, f64, f64)> = Default::default();
    for (_, _, _, s) in velocity::dense_series(&daily, as_of)? {
        if s.len() < holdout + 56 {
            continue;
        }
        let (history, actual) = s.split_at(s.len() - holdout);
        let recent = &history[history.len().saturating_sub(CLASS_DAYS)..];
        let Some((adi, cv2)) = velocity::adi_cv2(recent) else {
            continue;
        };
        let class = if forecast::is_dying(history, adi) {
            "dying"
        } else {
            velocity::demand_class(adi, cv2)
        };
        let fit = forecast::fit(&history[history.len().saturating_sub(FIT_DAYS)..], class);
        let flat = vec![fit.daily; holdout];
        let naive = forecast::seasonal_naive(history, holdout);
        let (Some(m), Some(n)) = (
            forecast::rmsse(history, actual, &flat),
            forecast::rmsse(history, actual, &naive),
        ) else {
            continue;
        };
        let e = by_class.entry(class.to_string()).or_default();
        e.0 += 1;
        e.1 += m;
        e.2 += n;
    }
    Ok(by_class
        .into_iter()
        .map(|(c, (n, m, s))| BacktestRow {
            demand_class: c,
            products: n,
            method_rmsse: m / n as f64,
            seasonal_naive_rmsse: s / n as f64,
        })
        .collect())
}

/// What a replay of weekly ordering achieved.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationResult {
    pub products: usize,
    pub cycles: usize,
    pub cycles_without_stockout: usize,
    pub cycle_service_level: f64,
    pub fill_rate: f64,
    pub target: f64,
}

/// Replays the `weeks` weeks before `end` (a day number) day by day: each product starts at its
/// order-up-to level; every `review_days` days paylens's suggestion (fitted on the data known the day
/// before) is ordered and arrives after the product's lead time; each day's demand is what actually sold.
/// A cycle (one product, one review period) is served when no day in it ran short.
pub fn simulate(
    events: &[LazyFrame],
    line_items: LazyFrame,
    inventory: &[InventoryRow],
    defaults: &RestockSettings,
    end: i32,
    weeks: i32,
) -> Result<SimulationResult> {
    let policy = Policy {
        service_level: defaults.service_level,
        review_days: defaults.review_days,
    };
    let review = defaults.review_days.max(1.0) as i32;
    let start = end - weeks * review + 1;
    let daily = velocity::daily_units(events, line_items.clone(), end)?;
    let actual: HashMap<String, (i32, Vec<f64>)> = velocity::dense_series(&daily, end)?
        .into_iter()
        .map(|(k, _, first, s)| (k, (first, s)))
        .collect();
    let terms: HashMap<&str, &InventoryRow> = inventory.iter().map(|r| (r.sku.as_str(), r)).collect();
    let position_of = |key: &str, on_hand: f64, on_order: f64| {
        let t = terms.get(key);
        Position {
            on_hand,
            on_order,
            lead_time_days: t.and_then(|t| t.lead_time_days).unwrap_or(defaults.lead_time_days),
            pack_size: t.and_then(|t| t.pack_size).unwrap_or(defaults.pack_size),
            min_order: t.and_then(|t| t.min_order).unwrap_or(defaults.min_order),
        }
    };
    // Stock and pipeline per product; products sold before the replay starts.
    let mut stock: HashMap<String, f64> = HashMap::new();
    let mut pipeline: HashMap<String, Vec<(i32, f64)>> = HashMap::new();
    let (mut cycles, mut served, mut demanded, mut filled) = (0usize, 0usize, 0.0, 0.0);
    let mut products = std::collections::HashSet::new();
    for week in 0..weeks {
        let review_day = start + week * review;
        let facts = product_facts(events, line_items.clone(), review_day - 1)?;
        for f in &facts {
            let Some((first, series)) = actual.get(&f.key) else {
                continue;
            };
            if f.first_day > start - 28 {
                continue; // too young to plan for at the start of the replay
            }
            products.insert(f.key.clone());
            let on_hand = *stock.entry(f.key.clone()).or_insert_with(|| {
                let p = position_of(&f.key, 0.0, 0.0);
                let z = crate::analytics::restock::z_for(policy.service_level);
                let (l, r) = (p.lead_time_days, policy.review_days);
                f.forecast.daily * (l + r) + z * f.forecast.sigma * (l + r).sqrt()
            });
            let on_order: f64 = pipeline.get(&f.key).map_or(0.0, |p| p.iter().map(|x| x.1).sum());
            let pos = position_of(&f.key, on_hand, on_order);
            let s = suggest(f.forecast.daily, f.forecast.sigma, pos, policy, date_of(review_day));
            if s.order_qty > 0.0 {
                let arrive = review_day + pos.lead_time_days.ceil() as i32;
                pipeline.entry(f.key.clone()).or_default().push((arrive, s.order_qty));
            }
            let mut short = false;
            for day in review_day..review_day + review {
                let arrivals = pipeline.get_mut(&f.key).map_or(0.0, |p| {
                    let due: f64 = p.iter().filter(|x| x.0 <= day).map(|x| x.1).sum();
                    p.retain(|x| x.0 > day);
                    due
                });
                let st = stock.get_mut(&f.key).expect("set above");
                *st += arrivals;
                let demand = series.get((day - first) as usize).copied().unwrap_or(0.0).max(0.0);
                let sold = demand.min(*st);
                demanded += demand;
                filled += sold;
                if demand > *st + 1e-9 {
                    short = true;
                }
                *st -= sold;
            }
            cycles += 1;
            if !short {
                served += 1;
            }
        }
    }
    Ok(SimulationResult {
        products: products.len(),
        cycles,
        cycles_without_stockout: served,
        cycle_service_level: if cycles > 0 { served as f64 / cycles as f64 } else { 0.0 },
        fill_rate: if demanded > 0.0 { filled / demanded } else { 1.0 },
        target: policy.service_level,
    })
}

/// Days of history the forecasts are fitted on.
const FIT_DAYS: usize = 365;
/// Days the demand class is judged on.
const CLASS_DAYS: usize = 90;

/// Velocity, class and forecast of every product sold up to `as_of`.
pub fn product_facts(events: &[LazyFrame], line_items: LazyFrame, as_of: i32) -> Result<Vec<ProductFacts>> {
    product_facts_given(events, line_items, as_of, || None)
}

/// [`product_facts`] with the bill sales `folded` gives, if any (`velocity::daily_units_given`).
fn product_facts_given(
    events: &[LazyFrame],
    line_items: LazyFrame,
    as_of: i32,
    folded: impl FnOnce() -> Option<DataFrame>,
) -> Result<Vec<ProductFacts>> {
    let daily = velocity::daily_units_given(events, line_items, as_of, folded)?;
    let series = velocity::dense_series(&daily, as_of)?;
    let revenue = revenue_by_window(&daily, as_of)?;
    let abc_input: Vec<(String, i64)> = series
        .iter()
        .map(|s| (s.0.clone(), revenue.get(&s.0).map_or(0, |r| r.1)))
        .collect();
    let abc: HashMap<String, &'static str> = velocity::abc_classes(&abc_input, AbcThresholds::default())
        .into_iter()
        .map(|(k, c, _)| (k, c))
        .collect();
    let mut out = Vec::with_capacity(series.len());
    for (key, name, first_day, s) in series {
        let recent = &s[s.len().saturating_sub(CLASS_DAYS)..];
        let stats = velocity::adi_cv2(recent);
        let (adi, cv2) = stats.map_or((None, None), |(a, c)| (Some(a), Some(c)));
        let mut class = stats.map_or("no demand", |(a, c)| velocity::demand_class(a, c));
        if stats.is_none_or(|(a, _)| forecast::is_dying(&s, a)) {
            class = "dying";
        }
        let fit = forecast::fit(&s[s.len().saturating_sub(FIT_DAYS)..], class);
        let last_sale = s.iter().rposition(|v| *v > 0.0).map(|i| first_day + i as i32);
        let (r28, r90) = revenue.get(&key).copied().unwrap_or((0, 0));
        out.push(ProductFacts {
            abc: abc.get(&key).copied().unwrap_or("C"),
            key,
            name,
            first_day,
            v7: velocity::velocity(&s, 7),
            v28: velocity::velocity(&s, 28),
            v90: velocity::velocity(&s, 90),
            trend: velocity::trend(&s),
            revenue_28_fen: r28,
            revenue_90_fen: r90,
            adi,
            cv2,
            demand_class: class,
            forecast: fit,
            last_sale_day: last_sale,
        });
    }
    Ok(out)
}

fn revenue_by_window(daily: &DataFrame, as_of: i32) -> Result<HashMap<String, (i64, i64)>> {
    let keys = daily.column("product_key")?.str()?;
    let days = daily.column("day")?.i32()?;
    let rev = daily.column("revenue_fen")?.i64()?;
    let mut out: HashMap<String, (i64, i64)> = HashMap::new();
    for i in 0..daily.height() {
        let (Some(k), Some(d), Some(r)) = (keys.get(i), days.get(i), rev.get(i)) else {
            continue;
        };
        let e = out.entry(k.to_string()).or_default();
        if d > as_of - 28 {
            e.0 += r;
        }
        if d > as_of - 90 {
            e.1 += r;
        }
    }
    Ok(out)
}

/// The latest snapshot row per sku, of those taken by `by` if given (the as-of date of a report for an
/// earlier week: stock counted after it was not known then). A sku counted only later has no row: if it
/// sold in the last 28 days it is listed as a gap (sold, not stocked).
fn latest_inventory(rows: Vec<InventoryRow>, by: Option<NaiveDate>) -> Vec<InventoryRow> {
    let mut by_sku: HashMap<String, InventoryRow> = HashMap::new();
    for r in rows.into_iter().filter(|r| by.is_none_or(|by| r.snapshot_date <= by)) {
        match by_sku.get(&r.sku) {
            Some(prev) if prev.snapshot_date > r.snapshot_date => {}
            _ => {
                by_sku.insert(r.sku.clone(), r);
            }
        }
    }
    let mut v: Vec<InventoryRow> = by_sku.into_values().collect();
    v.sort_by(|a, b| a.sku.cmp(&b.sku));
    v
}

fn inventory_from_store(store: &StoreReader) -> Result<Vec<InventoryRow>> {
    let Some(df) = store.table(store.manifest.inventory.as_deref())? else {
        return Ok(Vec::new());
    };
    let dates = df.column("snapshot_date")?.cast(&DataType::Int32)?;
    let dates = dates.i32()?;
    let s = |c: &str| -> Result<StringChunked> { Ok(df.column(c)?.str()?.clone()) };
    let f = |c: &str| -> Result<Float64Chunked> { Ok(df.column(c)?.f64()?.clone()) };
    let (sku, name) = (s("sku")?, s("name")?);
    let (on_hand, on_order, lead, pack, min) = (
        f("on_hand")?,
        f("on_order")?,
        f("lead_time_days")?,
        f("pack_size")?,
        f("min_order")?,
    );
    let cost = df.column("unit_cost_fen")?.i64()?.clone();
    Ok((0..df.height())
        .filter_map(|i| {
            Some(InventoryRow {
                snapshot_date: date_of(dates.get(i)?),
                sku: sku.get(i)?.to_string(),
                name: name.get(i).map(str::to_string),
                on_hand: on_hand.get(i).unwrap_or(0.0),
                on_order: on_order.get(i).unwrap_or(0.0),
                lead_time_days: lead.get(i),
                pack_size: pack.get(i),
                min_order: min.get(i),
                unit_cost_fen: cost.get(i),
                line: 0,
            })
        })
        .collect())
}

/// What a restock run produced: its folder and the items to order, most urgent first.
#[derive(Debug, Clone, Default)]
pub struct RestockOutcome {
    pub folder: PathBuf,
    pub to_order: Vec<OrderLine>,
    /// No stock count to order from (none in the store up to the as-of date, or an empty file): nothing
    /// to order means nothing known, not enough stock.
    pub no_counts: bool,
    /// (product name, 28-day trend) of every product with a trend, fastest rise first.
    pub movers: Vec<(String, f64)>,
    /// 90-day revenue per product in fen, largest first (the ABC Pareto curve).
    pub revenue_90: Vec<(String, i64)>,
}

/// One product to order.
#[derive(Debug, Clone)]
pub struct OrderLine {
    pub name: String,
    pub qty: f64,
    pub order_by: Option<NaiveDate>,
    pub urgency: Urgency,
    pub reason: String,
}

pub fn run(p: &RestockParams, cfg: &Config) -> Result<RestockOutcome> {
    run_given(p, cfg, None)
}

/// [`run`], taking the bill sales from `sales_from` where the store has no line items: the report's
/// analytics fold them in their pass over the payments (`analyze::run_sharing`). If the sender goes without
/// sending, or sends another day's, the payments are read here.
pub fn run_given(
    p: &RestockParams,
    cfg: &Config,
    sales_from: Option<std::sync::mpsc::Receiver<crate::analyze::SharedSales>>,
) -> Result<RestockOutcome> {
    let store = StoreReader::open(&cfg.store)?;
    if store.manifest.events.is_empty() {
        anyhow::bail!(crate::UserError(tr!("error.no_events", store = cfg.store.display())));
    }
    let events = store.scan_events()?;
    let as_of = resolve_as_of(p.as_of, &events)?;
    // The events a file at a time: the daily units are summed file by file (`velocity::daily_units`).
    let parts = store.scan_event_parts()?;
    let day = day_number(as_of);
    let line_items = match store.line_items()? {
        Some(df) => df.lazy(),
        None => velocity::no_line_items()?,
    };
    let folder = cfg.reports.join(iso_week_label(as_of));
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    if let Some(holdout) = p.backtest_days {
        let rows = backtest(&parts, line_items, day, holdout)?;
        let df = df!(
            "demand_class" => rows.iter().map(|r| r.demand_class.clone()).collect::<Vec<_>>(),
            "products" => rows.iter().map(|r| r.products as u32).collect::<Vec<_>>(),
            "method_rmsse" => rows.iter().map(|r| round3(r.method_rmsse)).collect::<Vec<_>>(),
            "seasonal_naive_rmsse" => rows.iter().map(|r| round3(r.seasonal_naive_rmsse)).collect::<Vec<_>>(),
        )?;
        write_csv(&df, &folder.join("forecast_backtest.csv"))?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "forecasts scored on the {holdout} days up to {as_of} (RMSSE, lower is better)"
        )?;
        writeln!(
            out,
            "  {:<14} {:>8} {:>10} {:>15}",
            "demand class", "products", "paylens", "seasonal naive"
        )?;
        for r in &rows {
            writeln!(
                out,
                "  {:<14} {:>8} {:>10.3} {:>15.3}",
                r.demand_class, r.products, r.method_rmsse, r.seasonal_naive_rmsse
            )?;
        }
        writeln!(out, "  table in {}", folder.join("forecast_backtest.csv").display())?;
        return Ok(RestockOutcome {
            folder,
            ..Default::default()
        });
    }
    // A file given with --inventory is the stock the user means, whatever its dates. The store's latest
    // count is the stock of the latest week (counted, say, on the Monday after it); for an earlier week,
    // the counts up to its as-of date.
    let inventory = match &p.inventory {
        Some(path) => latest_inventory(crate::ingest::read_inventory(path, cfg)?, None),
        None => {
            let counts = inventory_from_store(&store)?;
            // (The store's events are scanned for their latest week only if a count is later than as_of.)
            let counted_by = match p.as_of {
                Some(d) if counts.iter().any(|r| r.snapshot_date > d) && d < resolve_as_of(None, &events)? => Some(d),
                _ => None,
            };
            latest_inventory(counts, counted_by)
        }
    };
    if let Some(weeks) = p.simulate_weeks {
        let r = simulate(&parts, line_items, &inventory, &p.settings, day, weeks)?;
        let text = serde_json::to_string_pretty(&r)?;
        std::fs::write(folder.join("restock_simulation.json"), &text)?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "replayed {weeks} weeks to {as_of}: {} products, {} cycles, cycle service level {:.1} % (target {:.1} %), fill rate {:.1} %",
            r.products,
            r.cycles,
            r.cycle_service_level * 100.0,
            r.target * 100.0,
            r.fill_rate * 100.0
        )?;
        return Ok(RestockOutcome {
            folder,
            ..Default::default()
        });
    }
    let folded = || {
        let (of_day, sales) = sales_from?.recv().ok()?;
        (of_day == day).then_some(sales)
    };
    let facts = product_facts_given(&parts, line_items, day, folded)?;
    write_csv(&velocity_frame(&facts)?, &folder.join("velocity.csv"))?;
    let policy = Policy {
        service_level: p.settings.service_level,
        review_days: p.settings.review_days,
    };
    let (restock, gaps, urgent, to_order) = restock_frames(&facts, &inventory, &p.settings, policy, as_of, day)?;
    write_csv(&restock, &folder.join("restock.csv"))?;
    write_csv(&gaps, &folder.join("inventory_gaps.csv"))?;
    if !p.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            tr!(
                "restock.header",
                date = crate::i18n::date(as_of),
                week = iso_week_label(as_of),
                level = format!("{:.1} %", p.settings.service_level * 100.0),
                days = p.settings.review_days
            )
        )?;
        for line in urgent.iter().take(12) {
            writeln!(out, "  {line}")?;
        }
        if inventory.is_empty() {
            writeln!(out, "  {}", tr!("restock.no_counts", date = crate::i18n::date(as_of)))?;
        } else if urgent.is_empty() {
            writeln!(out, "  {}", tr!("restock.nothing"))?;
        }
        writeln!(
            out,
            "  {}",
            tr!(
                "restock.footer",
                products = facts.len(),
                gaps = gaps.height(),
                folder = folder.display()
            )
        )?;
    }
    let mut movers: Vec<(String, f64)> = facts.iter().filter_map(|f| Some((f.name.clone(), f.trend?))).collect();
    movers.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut revenue_90: Vec<(String, i64)> = facts.iter().map(|f| (f.name.clone(), f.revenue_90_fen)).collect();
    revenue_90.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(RestockOutcome {
        folder,
        to_order,
        no_counts: inventory.is_empty(),
        movers,
        revenue_90,
    })
}

fn velocity_frame(facts: &[ProductFacts]) -> Result<DataFrame> {
    Ok(df!(
        "product" => facts.iter().map(|f| f.key.clone()).collect::<Vec<_>>(),
        "name" => facts.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "first_sale" => facts.iter().map(|f| date_of(f.first_day).to_string()).collect::<Vec<_>>(),
        "last_sale" => facts.iter().map(|f| f.last_sale_day.map(|d| date_of(d).to_string())).collect::<Vec<_>>(),
        "units_per_day_7" => facts.iter().map(|f| round3(f.v7)).collect::<Vec<_>>(),
        "units_per_day_28" => facts.iter().map(|f| round3(f.v28)).collect::<Vec<_>>(),
        "units_per_day_90" => facts.iter().map(|f| round3(f.v90)).collect::<Vec<_>>(),
        "trend_28_vs_prev_28" => facts.iter().map(|f| f.trend.map(round3)).collect::<Vec<_>>(),
        "revenue_28_yuan" => facts.iter().map(|f| f.revenue_28_fen as f64 / 100.0).collect::<Vec<_>>(),
        "revenue_90_yuan" => facts.iter().map(|f| f.revenue_90_fen as f64 / 100.0).collect::<Vec<_>>(),
        "abc_class_90_days" => facts.iter().map(|f| f.abc).collect::<Vec<_>>(),
        "demand_class" => facts.iter().map(|f| f.demand_class).collect::<Vec<_>>(),
        "adi" => facts.iter().map(|f| f.adi.map(round3)).collect::<Vec<_>>(),
        "cv2" => facts.iter().map(|f| f.cv2.map(round3)).collect::<Vec<_>>(),
        "forecast_method" => facts.iter().map(|f| f.forecast.method).collect::<Vec<_>>(),
        "forecast_alpha" => facts.iter().map(|f| f.forecast.alpha).collect::<Vec<_>>(),
        "forecast_per_day" => facts.iter().map(|f| round3(f.forecast.daily)).collect::<Vec<_>>(),
        "forecast_sigma" => facts.iter().map(|f| round3(f.forecast.sigma)).collect::<Vec<_>>(),
    )?)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

type RestockTables = (DataFrame, DataFrame, Vec<String>, Vec<OrderLine>);

fn restock_frames(
    facts: &[ProductFacts],
    inventory: &[InventoryRow],
    defaults: &RestockSettings,
    policy: Policy,
    as_of: NaiveDate,
    day: i32,
) -> Result<RestockTables> {
    let by_key: HashMap<&str, &ProductFacts> = facts.iter().map(|f| (f.key.as_str(), f)).collect();
    let by_name: HashMap<&str, &ProductFacts> = facts.iter().map(|f| (f.name.as_str(), f)).collect();
    let today = as_of + chrono::Days::new(1);
    let mut rows: Vec<(&InventoryRow, Option<&ProductFacts>, Suggestion)> = Vec::new();
    let mut matched: std::collections::HashSet<&str> = Default::default();
    let (mut gap_kind, mut gap_sku, mut gap_name, mut gap_detail) = (vec![], vec![], vec![], vec![]);
    for inv in inventory {
        let f = by_key
            .get(inv.sku.as_str())
            .or_else(|| inv.name.as_deref().and_then(|n| by_name.get(n)))
            .copied();
        if let Some(f) = f {
            matched.insert(f.key.as_str());
        }
        let (d, sigma) = f.map_or((0.0, 0.0), |f| (f.forecast.daily, f.forecast.sigma));
        let pos = Position {
            on_hand: inv.on_hand,
            on_order: inv.on_order,
            lead_time_days: inv.lead_time_days.unwrap_or(defaults.lead_time_days),
            pack_size: inv.pack_size.unwrap_or(defaults.pack_size),
            min_order: inv.min_order.unwrap_or(defaults.min_order),
        };
        let unsold = f.is_none_or(|f| f.last_sale_day.is_none_or(|d| d <= day - 90));
        if unsold {
            gap_kind.push(tr!("restock.gap_unsold"));
            gap_sku.push(inv.sku.clone());
            gap_name.push(inv.name.clone().unwrap_or_default());
            gap_detail.push(tr!("restock.gap_on_hand", on_hand = inv.on_hand));
        }
        rows.push((inv, f, suggest(d, sigma, pos, policy, today)));
    }
    for f in facts
        .iter()
        .filter(|f| !matched.contains(f.key.as_str()) && f.last_sale_day.is_some_and(|d| d > day - 28))
    {
        gap_kind.push(tr!("restock.gap_unstocked"));
        gap_sku.push(f.key.clone());
        gap_name.push(f.name.clone());
        gap_detail.push(tr!("restock.gap_rate", rate = format!("{:.1}", f.v28)));
    }
    let rank = |u: Urgency| match u {
        Urgency::Out => 0,
        Urgency::BeforeDelivery => 1,
        Urgency::OrderThisWeek => 2,
        Urgency::Fine => 3,
    };
    rows.sort_by(|a, b| rank(a.2.urgency).cmp(&rank(b.2.urgency)).then(a.0.sku.cmp(&b.0.sku)));
    let urgent: Vec<String> = rows
        .iter()
        .filter(|r| r.2.order_qty > 0.0)
        .map(|(inv, f, s)| {
            let name = inv
                .name
                .clone()
                .or_else(|| f.map(|f| f.name.clone()))
                .unwrap_or_else(|| inv.sku.clone());
            let by = s
                .last_order_date
                .map_or(String::new(), |d| tr!("report.order_by", day = crate::i18n::day(d)));
            tr!(
                "restock.order_line",
                name = name,
                qty = s.order_qty,
                by = by,
                urgency = crate::i18n::name("urgency", s.urgency.label()),
                reason = s.reason
            )
        })
        .collect();
    let to_order: Vec<OrderLine> = rows
        .iter()
        .filter(|r| r.2.order_qty > 0.0)
        .map(|(inv, f, s)| OrderLine {
            name: inv
                .name
                .clone()
                .or_else(|| f.map(|f| f.name.clone()))
                .unwrap_or_else(|| inv.sku.clone()),
            qty: s.order_qty,
            order_by: s.last_order_date,
            urgency: s.urgency,
            reason: s.reason.clone(),
        })
        .collect();
    let name = |inv: &InventoryRow, f: Option<&ProductFacts>| {
        inv.name
            .clone()
            .or_else(|| f.map(|f| f.name.clone()))
            .unwrap_or_default()
    };
    let restock = df!(
        "sku" => rows.iter().map(|r| r.0.sku.clone()).collect::<Vec<_>>(),
        "name" => rows.iter().map(|r| name(r.0, r.1)).collect::<Vec<_>>(),
        "urgency" => rows.iter().map(|r| r.2.urgency.label()).collect::<Vec<_>>(),
        "suggested_order" => rows.iter().map(|r| r.2.order_qty).collect::<Vec<_>>(),
        "order_by" => rows.iter().map(|r| r.2.last_order_date.map(|d| d.to_string())).collect::<Vec<_>>(),
        "reason" => rows.iter().map(|r| r.2.reason.clone()).collect::<Vec<_>>(),
        "forecast_per_day" => rows.iter().map(|r| r.1.map(|f| round3(f.forecast.daily))).collect::<Vec<_>>(),
        "forecast_method" => rows.iter().map(|r| r.1.map(|f| f.forecast.method)).collect::<Vec<_>>(),
        "sigma_per_day" => rows.iter().map(|r| r.1.map(|f| round3(f.forecast.sigma))).collect::<Vec<_>>(),
        "abc_class" => rows.iter().map(|r| r.1.map(|f| f.abc)).collect::<Vec<_>>(),
        "demand_class" => rows.iter().map(|r| r.1.map(|f| f.demand_class)).collect::<Vec<_>>(),
        "on_hand" => rows.iter().map(|r| r.0.on_hand).collect::<Vec<_>>(),
        "on_order" => rows.iter().map(|r| r.0.on_order).collect::<Vec<_>>(),
        "lead_time_days" => rows.iter().map(|r| r.0.lead_time_days.unwrap_or(defaults.lead_time_days)).collect::<Vec<_>>(),
        "pack_size" => rows.iter().map(|r| r.0.pack_size.unwrap_or(defaults.pack_size)).collect::<Vec<_>>(),
        "min_order" => rows.iter().map(|r| r.0.min_order.unwrap_or(defaults.min_order)).collect::<Vec<_>>(),
        "safety_stock" => rows.iter().map(|r| round3(r.2.safety_stock)).collect::<Vec<_>>(),
        "reorder_point" => rows.iter().map(|r| round3(r.2.reorder_point)).collect::<Vec<_>>(),
        "order_up_to" => rows.iter().map(|r| round3(r.2.order_up_to)).collect::<Vec<_>>(),
        "days_of_cover" => rows.iter().map(|r| r.2.days_of_cover.map(round3)).collect::<Vec<_>>(),
        "stockout_date" => rows.iter().map(|r| r.2.stockout_date.map(|d| d.to_string())).collect::<Vec<_>>(),
        "order_cost_yuan" => rows.iter().map(|r| r.0.unit_cost_fen.map(|c| c as f64 * r.2.order_qty / 100.0)).collect::<Vec<_>>(),
    )?;
    let gaps = df!("kind" => gap_kind, "sku" => gap_sku, "name" => gap_name, "detail" => gap_detail)?;
    Ok((restock, gaps, urgent, to_order))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sku: &str, date: (i32, u32, u32), on_hand: f64) -> InventoryRow {
        InventoryRow {
            snapshot_date: NaiveDate::from_ymd_opt(date.0, date.1, date.2).expect("a date"),
            sku: sku.into(),
            name: None,
            on_hand,
            on_order: 0.0,
            lead_time_days: None,
            pack_size: None,
            min_order: None,
            unit_cost_fen: None,
            line: 0,
        }
    }

    /// A report for an earlier week takes each sku's last count up to its as-of date; a sku first counted
    /// later has none; without a date the latest count is taken.
    #[test]
    fn inventory_is_the_last_count_by_the_as_of_date() {
        let rows = || {
            vec![
                row("beans", (2026, 11, 1), 10.0),
                row("beans", (2026, 11, 15), 4.0),
                row("beans", (2026, 11, 22), 30.0),
                row("milk", (2026, 11, 22), 12.0),
                row("cups", (2026, 11, 8), 500.0),
            ]
        };
        let counts = |v: Vec<InventoryRow>| v.into_iter().map(|r| (r.sku, r.on_hand)).collect::<Vec<_>>();
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d);
        assert_eq!(
            counts(latest_inventory(rows(), day(16))),
            [("beans".to_string(), 4.0), ("cups".to_string(), 500.0)]
        );
        // A count taken on the as-of date counts.
        assert_eq!(
            counts(latest_inventory(rows(), day(15))),
            [("beans".to_string(), 4.0), ("cups".to_string(), 500.0)]
        );
        assert_eq!(counts(latest_inventory(rows(), day(7))), [("beans".to_string(), 10.0)]);
        assert_eq!(
            counts(latest_inventory(rows(), None)),
            [
                ("beans".to_string(), 30.0),
                ("cups".to_string(), 500.0),
                ("milk".to_string(), 12.0)
            ]
        );
    }
}
