//! `paylens report`: the week's customer analytics and restock list, and `summary.md`, headlines that
//! explain the week ("Net revenue 17,725 yuan, -0.9 % on last week, mostly from new customers: -186 yuan
//! (19 against 15 last week); 30 Champions customers moved to Potential Loyalist; order 48 卡布奇诺 by Mon
//! 2026-11-23") followed by the key tables
//! as text; and `report.html`, the same as one self-contained page with the charts inline as SVG. This
//! module owns the wording; `crate::charts` draws.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{NaiveDate, Weekday};
use polars::prelude::*;

use crate::analyze::{iso_week_label, pct, AnalyzeOutcome};
use crate::config::Config;
use crate::i18n::{self, money};
use crate::restock::RestockOutcome;
use crate::tr;

/// `--week 2026-W47` to its Sunday.
pub fn parse_iso_week(text: &str) -> Result<NaiveDate> {
    let err = || crate::UserError(tr!("error.bad_week", text = text));
    let (y, w) = text
        .split_once("-W")
        .or_else(|| text.split_once("-w"))
        .ok_or_else(err)?;
    let (y, w): (i32, u32) = (y.parse().map_err(|_| err())?, w.parse().map_err(|_| err())?);
    Ok(NaiveDate::from_isoywd_opt(y, w, Weekday::Sun).ok_or_else(err)?)
}

fn signed_pct(x: Option<f64>) -> String {
    x.map_or(tr!("report.no_prior_week").to_string(), |v| {
        tr!("report.on_last_week", change = format!("{:+.1} %", v * 100.0))
    })
}

fn all_channels(kpis: &DataFrame) -> Result<DataFrame> {
    Ok(kpis.clone().lazy().filter(col("channel").eq(lit("all"))).collect()?)
}

fn last_i64(df: &DataFrame, c: &str, back: usize) -> Option<i64> {
    let n = df.height();
    (n > back)
        .then(|| df.column(c).ok()?.i64().ok()?.get(n - 1 - back))
        .flatten()
}

fn last_f64(df: &DataFrame, c: &str, back: usize) -> Option<f64> {
    let n = df.height();
    (n > back)
        .then(|| df.column(c).ok()?.f64().ok()?.get(n - 1 - back))
        .flatten()
}

/// The biggest move between two different segments (new customers left out).
fn biggest_move(matrix: &DataFrame) -> Option<(String, String, i64)> {
    let from = matrix.column("from_segment").ok()?.str().ok()?;
    let to = matrix.column("to_segment").ok()?.str().ok()?;
    let n = matrix.column("customers").ok()?.i64().ok()?;
    (0..matrix.height())
        .filter_map(|i| Some((from.get(i)?.to_string(), to.get(i)?.to_string(), n.get(i)?)))
        .filter(|(f, t, _)| f != t && f != crate::analytics::transitions::NEW)
        .max_by(|a, b| a.2.cmp(&b.2).then(b.0.cmp(&a.0)))
}

/// The one-paragraph explanation of the week.
pub fn headline(a: &AnalyzeOutcome, r: &RestockOutcome) -> Result<String> {
    let all = all_channels(&a.kpis)?;
    let mut parts = Vec::new();
    let net = last_i64(&all, "net_fen", 0).unwrap_or(0);
    let mut first = tr!(
        "report.headline_net",
        money = money(net),
        change = signed_pct(last_f64(&all, "net_fen_wow", 0))
    );
    let s = a.split;
    if let Some(before) = last_i64(&all, "net_fen", 1) {
        // Split the change into new customers, returning customers, and the rest (refunds dated this week,
        // sales without a customer key); name the largest part that moved the same way as the total.
        let total = net - before;
        let d_new = s.new_now.1 - s.new_before.1;
        let d_ret = s.returning_now.1 - s.returning_before.1;
        let parts_of = [
            (
                d_ret,
                Some(("report.who_returning", s.returning_now.0, s.returning_before.0)),
            ),
            (d_new, Some(("report.who_new", s.new_now.0, s.new_before.0))),
            (total - d_new - d_ret, None),
        ];
        let main = parts_of
            .iter()
            .filter(|p| p.0 != 0 && (p.0 > 0) == (total > 0))
            .max_by_key(|p| p.0.abs());
        if let (Some((fen, who)), true) = (main, total != 0) {
            let amount = format!("{}{}", if *fen >= 0 { "+" } else { "" }, money(*fen));
            first.push_str(&match who {
                Some((who, now, before)) => tr!(
                    "report.headline_mostly_from",
                    who = tr!(who),
                    amount = amount,
                    now = now,
                    before = before
                ),
                None => tr!("report.headline_mostly_refunds", amount = amount),
            });
        }
    }
    parts.push(first);
    if let Some((from, to, n)) = biggest_move(&a.transitions) {
        parts.push(tr!(
            "report.headline_moved",
            n = n,
            from = i18n::segment(&from),
            to = i18n::segment(&to)
        ));
    }
    match r.to_order.first() {
        Some(o) => parts.push(tr!(
            "report.headline_order",
            qty = o.qty,
            name = o.name,
            by = o
                .order_by
                .map_or(String::new(), |d| tr!("report.order_by", day = i18n::day(d)))
        )),
        None if r.no_counts => parts.push(tr!("report.no_counts_headline").to_string()),
        None => parts.push(tr!("report.nothing_to_order").to_string()),
    }
    Ok(parts.join(tr!("report.headline_separator")) + tr!("report.headline_end"))
}

/// The whole summary.md.
pub fn summary_markdown(a: &AnalyzeOutcome, r: &RestockOutcome) -> Result<String> {
    let mut md = String::new();
    let start = a.as_of - chrono::Days::new(6);
    let _ = writeln!(
        md,
        "# {}\n",
        tr!(
            "report.title",
            week = iso_week_label(a.as_of),
            from = i18n::date(start),
            to = i18n::date(a.as_of)
        )
    );
    let _ = writeln!(md, "{}\n", headline(a, r)?);
    let all = all_channels(&a.kpis)?;
    let _ = writeln!(
        md,
        "## {}\n\n| | {} | {} | {} |\n|---|---|---|---|",
        tr!("report.the_week"),
        tr!("report.this_week"),
        tr!("report.last_week"),
        tr!("report.change")
    );
    let rows: [(&str, &str, bool); 5] = [
        ("report.row_net", "net_fen", true),
        ("report.row_orders", "orders", false),
        ("report.row_customers", "customers", false),
        ("report.row_refunds", "refunds_fen", true),
        ("report.row_fees", "fees_millifen", true),
    ];
    for (label, c, is_money) in rows {
        let show = |v: Option<i64>| {
            v.map_or("-".to_string(), |v| match (is_money, c) {
                (true, "fees_millifen") => money(v / 1000),
                (true, _) => money(v),
                _ => i18n::thousands(v),
            })
        };
        // Refunds are shown as amounts returned (positive), so that a rise means more refunds.
        let flip = |v: Option<i64>| if c == "refunds_fen" { v.map(i64::abs) } else { v };
        let (now, before) = (flip(last_i64(&all, c, 0)), flip(last_i64(&all, c, 1)));
        let change = match (now, before) {
            (Some(n), Some(b)) if b != 0 => format!("{:+.1} %", (n - b) as f64 / b.abs() as f64 * 100.0),
            _ => "-".into(),
        };
        let _ = writeln!(md, "| {} | {} | {} | {change} |", tr!(label), show(now), show(before));
    }
    let aov = |back| last_f64(&all, "aov_fen", back).map_or("-".into(), |v| i18n::money_fen(v.round() as i64));
    let _ = writeln!(md, "| {} | {} | {} | |", tr!("report.row_aov"), aov(0), aov(1));
    let s = a.split;
    let _ = writeln!(
        md,
        "\n{}",
        tr!(
            "report.new_and_returning",
            new = s.new_now.0,
            new_money = money(s.new_now.1),
            returning = s.returning_now.0,
            returning_money = money(s.returning_now.1),
            new_before = s.new_before.0,
            returning_before = s.returning_before.0
        )
    );
    let repeat = &a.repeat;
    let _ = writeln!(md, "\n## {}\n", tr!("report.repeat_purchase"));
    for i in 0..repeat.height() {
        let w = repeat.column("window")?.str()?.get(i).unwrap_or("");
        let cell_pct = |c: &str| -> Result<String> { Ok(pct(repeat.column(c)?.f64()?.get(i))) };
        let _ = writeln!(
            md,
            "- {}",
            tr!(
                "report.repeat_line",
                window = i18n::name("value", w),
                repeat = cell_pct("in_window_repeat_rate")?,
                returning = cell_pct("returning_customer_rate_shopify")?
            )
        );
    }
    let cov = &a.coverage;
    let share = |c: &str| -> Result<String> { Ok(pct(cov.column(c)?.f64()?.get(0))) };
    let _ = writeln!(
        md,
        "\n{}",
        tr!(
            "report.key_coverage",
            none = share("none_share")?,
            weak = share("weak_share")?
        )
    );
    let seg = &a.segments;
    let _ = writeln!(
        md,
        "\n## {}\n\n| {} | {} | {} | {} | {} |\n|---|---|---|---|---|",
        tr!("report.segments"),
        tr!("report.segment"),
        tr!("report.customers"),
        tr!("report.share"),
        tr!("report.revenue"),
        tr!("report.share")
    );
    for i in 0..seg.height() {
        let cell_pct = |c: &str| -> Result<String> { Ok(pct(seg.column(c)?.f64()?.get(i))) };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            i18n::segment(seg.column("segment")?.str()?.get(i).unwrap_or("")),
            i18n::thousands(seg.column("customers")?.i64()?.get(i).unwrap_or(0)),
            cell_pct("customer_share")?,
            money(seg.column("revenue_fen")?.i64()?.get(i).unwrap_or(0)),
            cell_pct("revenue_share")?
        );
    }
    let _ = writeln!(md, "\n## {}\n", tr!("report.moved_since_last_week"));
    let m = &a.transitions;
    let mut moves: Vec<(String, String, i64)> = (0..m.height())
        .filter_map(|i| {
            Some((
                m.column("from_segment").ok()?.str().ok()?.get(i)?.to_string(),
                m.column("to_segment").ok()?.str().ok()?.get(i)?.to_string(),
                m.column("customers").ok()?.i64().ok()?.get(i)?,
            ))
        })
        .filter(|(f, t, _)| f != t)
        .collect();
    moves.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    for (f, t, n) in moves.iter().take(8) {
        let _ = writeln!(
            md,
            "- {}",
            tr!(
                "report.move_line",
                from = i18n::segment(f),
                to = i18n::segment(t),
                n = n
            )
        );
    }
    let _ = writeln!(md, "\n{}", tr!("report.lists_to_act_on"));
    let _ = writeln!(md, "\n## {}\n", tr!("report.to_order"));
    if r.no_counts {
        let _ = writeln!(md, "{}", tr!("report.no_counts"));
    } else if r.to_order.is_empty() {
        let _ = writeln!(md, "{}", tr!("report.nothing_this_week"));
    }
    for o in r.to_order.iter().take(10) {
        let by = o
            .order_by
            .map_or(String::new(), |d| tr!("report.order_by", day = i18n::day(d)));
        let _ = writeln!(
            md,
            "- {}",
            tr!(
                "report.order_line",
                name = o.name,
                qty = o.qty,
                by = by,
                urgency = i18n::name("urgency", o.urgency.label()),
                reason = o.reason
            )
        );
    }
    let _ = writeln!(md, "\n{}", tr!("report.full_list"));
    Ok(md)
}

/// Net revenue per local day (yuan) for the `days` days up to `as_of`, days of the last week flagged.
fn daily_revenue(cfg: &Config, as_of: NaiveDate, days: i64) -> Result<Vec<(String, f64, bool)>> {
    let store = crate::store::StoreReader::open(&cfg.store)?;
    let end = crate::analyze::day_number(as_of);
    let df = store
        .scan_events_since(end - days as i32 + 1)?
        .with_column(col("local_date").cast(DataType::Int32).alias("day"))
        .filter(col("day").gt(lit(end - days as i32)).and(col("day").lt_eq(lit(end))))
        .group_by([col("day")])
        .agg([col("amount_fen").sum()])
        .collect()?;
    let mut by_day = std::collections::HashMap::new();
    for i in 0..df.height() {
        if let (Some(d), Some(v)) = (df.column("day")?.i32()?.get(i), df.column("amount_fen")?.i64()?.get(i)) {
            by_day.insert(d, v);
        }
    }
    Ok((0..days)
        .rev()
        .map(|back| {
            let d = end - back as i32;
            (
                crate::analyze::date_of(d).to_string(),
                by_day.get(&d).copied().unwrap_or(0) as f64 / 100.0,
                back < 7,
            )
        })
        .collect())
}

/// Payments per local weekday (Monday first) and hour over the 28 days up to `as_of`.
fn weekday_hours(cfg: &Config, as_of: NaiveDate) -> Result<[[f64; 24]; 7]> {
    let store = crate::store::StoreReader::open(&cfg.store)?;
    let end = crate::analyze::day_number(as_of);
    let tz = TimeZone::opt_try_new(Some(cfg.timezone.name()))?.context("time zone")?;
    let df = store
        .scan_events_since(end - 27)?
        .filter(
            col("kind")
                .eq(lit("payment"))
                .and(col("local_date").cast(DataType::Int32).gt(lit(end - 28)))
                .and(col("local_date").cast(DataType::Int32).lt_eq(lit(end))),
        )
        .with_column(col("occurred_at").dt().convert_time_zone(tz).alias("local"))
        .group_by([
            col("local").dt().weekday().alias("wd"),
            col("local").dt().hour().alias("h"),
        ])
        .agg([len().alias("n")])
        .collect()?;
    let mut grid = [[0.0; 24]; 7];
    let (wd, h, n) = (
        df.column("wd")?.cast(&DataType::Int32)?,
        df.column("h")?.cast(&DataType::Int32)?,
        df.column("n")?.cast(&DataType::Float64)?,
    );
    let (wd, h, n) = (wd.i32()?, h.i32()?, n.f64()?);
    for i in 0..df.height() {
        if let (Some(w), Some(hr), Some(c)) = (wd.get(i), h.get(i), n.get(i)) {
            if (1..=7).contains(&w) && (0..24).contains(&hr) {
                grid[(w - 1) as usize][hr as usize] = c;
            }
        }
    }
    Ok(grid)
}

/// Named lines of a chart.
type Series = Vec<(String, Vec<f64>)>;

/// Weekly lines from a frame with `iso_week`: the named columns, optionally divided (fen -> yuan).
fn weekly_series(df: &DataFrame, columns: &[(&str, &str)], divide: f64) -> Result<(Vec<String>, Series)> {
    let weeks: Vec<String> = df
        .column("iso_week")?
        .str()?
        .iter()
        .map(|w| w.unwrap_or("").to_string())
        .collect();
    let mut series = Vec::new();
    for (c, label) in columns {
        let v = df.column(c)?.cast(&DataType::Float64)?;
        series.push((
            label.to_string(),
            v.f64()?.iter().map(|x| x.unwrap_or(0.0) / divide).collect(),
        ));
    }
    Ok((weeks, series))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Renders the restricted Markdown of summary.md (headings, tables, lists, paragraphs) as HTML.
pub fn markdown_to_html(md: &str) -> String {
    let mut html = String::new();
    let mut in_table = false;
    let mut in_list = false;
    for line in md.lines() {
        let close = |html: &mut String, in_table: &mut bool, in_list: &mut bool| {
            if *in_table {
                html.push_str("</table>\n");
                *in_table = false;
            }
            if *in_list {
                html.push_str("</ul>\n");
                *in_list = false;
            }
        };
        if let Some(row) = line.strip_prefix('|') {
            let cells: Vec<&str> = row.trim_end_matches('|').split('|').map(str::trim).collect();
            if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
                continue;
            }
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                close(&mut html, &mut in_table, &mut in_list);
                html.push_str("<table>\n");
                in_table = true;
            }
            let _ = writeln!(
                html,
                "<tr>{}</tr>",
                cells
                    .iter()
                    .map(|c| format!("<{tag}>{}</{tag}>", escape(c)))
                    .collect::<String>()
            );
        } else if let Some(item) = line.strip_prefix("- ") {
            if !in_list {
                close(&mut html, &mut in_table, &mut in_list);
                html.push_str("<ul>\n");
                in_list = true;
            }
            let _ = writeln!(html, "<li>{}</li>", escape(item));
        } else {
            close(&mut html, &mut in_table, &mut in_list);
            if let Some(h) = line.strip_prefix("## ") {
                let _ = writeln!(html, "<h2>{}</h2>", escape(h));
            } else if let Some(h) = line.strip_prefix("# ") {
                let _ = writeln!(html, "<h1>{}</h1>", escape(h));
            } else if !line.trim().is_empty() {
                let _ = writeln!(html, "<p>{}</p>", escape(line));
            }
        }
    }
    if in_table {
        html.push_str("</table>\n");
    }
    if in_list {
        html.push_str("</ul>\n");
    }
    html
}

/// The report's charts in the order the page shows them.
const CHART_ORDER: [&str; 12] = [
    "daily_revenue",
    "channel_revenue",
    "weekday_hour",
    "customers_weekly",
    "repeat_trend",
    "segments",
    "cohorts_monthly",
    "segment_moves",
    "channel_fees",
    "restock_urgency",
    "top_movers",
    "abc_pareto",
];

/// Charts as (name, SVG).
type Charts = Vec<(&'static str, String)>;

/// The charts drawn from the store and the restock list alone, with their PNG copies: the report draws
/// them on the restock thread, which is done well before the customer analytics.
struct Drawn {
    raster: crate::raster::Rasteriser,
    charts: Charts,
    pngs: Vec<Vec<u8>>,
}

impl Drawn {
    fn new(r: &RestockOutcome, cfg: &Config, as_of: NaiveDate) -> Result<Drawn> {
        let mut phase = crate::timings::Phases::from_env();
        phase.mark("charts: fonts");
        let raster = crate::raster::Rasteriser::new(cfg.chart_font.as_deref())?;
        phase.mark("charts: restock");
        let charts = restock_charts(r, cfg, as_of)?;
        phase.mark("charts: restock pngs");
        let pngs = rasterise(&raster, &charts)?;
        Ok(Drawn { raster, charts, pngs })
    }
}

/// Daily revenue and the weekday-hour heatmap (from the store), what to order, the top movers and the ABC
/// curve (from the restock list).
fn restock_charts(r: &RestockOutcome, cfg: &Config, as_of: NaiveDate) -> Result<Charts> {
    let daily = crate::charts::daily_revenue(
        &daily_revenue(cfg, as_of, 84)?,
        tr!("chart.daily_revenue"),
        tr!("chart.yuan"),
    )?;
    let hours = crate::charts::weekday_hour_heatmap(&weekday_hours(cfg, as_of)?, tr!("chart.weekday_hour"))?;
    let urgency_colour = |u: crate::analytics::restock::Urgency| match u {
        crate::analytics::restock::Urgency::Out => 1,
        crate::analytics::restock::Urgency::BeforeDelivery => 4,
        crate::analytics::restock::Urgency::OrderThisWeek => 0,
        crate::analytics::restock::Urgency::Fine => 2,
    };
    let order_rows: Vec<(String, f64, usize)> = r
        .to_order
        .iter()
        .take(15)
        .map(|o| (o.name.clone(), o.qty, urgency_colour(o.urgency)))
        .collect();
    let restock = crate::charts::hbars(&order_rows, tr!("chart.units_to_order"), tr!("chart.to_order"))?;
    let mut mover_rows: Vec<(String, f64, usize)> =
        r.movers.iter().take(5).map(|m| (m.0.clone(), m.1 * 100.0, 2)).collect();
    let falling: Vec<(String, f64, usize)> = r
        .movers
        .iter()
        .rev()
        .take(5)
        .filter(|m| m.1 < 0.0)
        .map(|m| (m.0.clone(), m.1 * 100.0, 1))
        .collect();
    mover_rows.retain(|m| m.1 > 0.0);
    mover_rows.extend(falling.into_iter().rev());
    let movers = crate::charts::hbars(&mover_rows, tr!("chart.movers_axis"), tr!("chart.top_movers"))?;
    // ABC: cumulative share of 90-day revenue by product rank.
    let total: i64 = r.revenue_90.iter().map(|x| x.1.max(0)).sum();
    let mut running = 0i64;
    let pareto: Vec<f64> = r
        .revenue_90
        .iter()
        .map(|x| {
            running += x.1.max(0);
            if total > 0 {
                running as f64 / total as f64 * 100.0
            } else {
                0.0
            }
        })
        .collect();
    let ranks: Vec<String> = (1..=pareto.len()).map(|i| i.to_string()).collect();
    let abc = crate::charts::lines(
        &ranks,
        &[(tr!("chart.abc_legend").to_string(), pareto)],
        "%",
        tr!("chart.abc"),
    )?;
    Ok(vec![
        ("daily_revenue", daily),
        ("weekday_hour", hours),
        ("restock_urgency", restock),
        ("top_movers", movers),
        ("abc_pareto", abc),
    ])
}

/// The charts of the customer analytics: segments, cohorts, weekly customers, channels, segment moves,
/// fees and the repeat trend.
fn customer_charts(a: &AnalyzeOutcome) -> Result<Charts> {
    let seg = &a.segments;
    let mut rows = Vec::new();
    for i in 0..seg.height() {
        let n = seg.column("customers")?.i64()?.get(i).unwrap_or(0);
        if n == 0 {
            continue;
        }
        rows.push((
            i18n::segment(seg.column("segment")?.str()?.get(i).unwrap_or("")),
            seg.column("customer_share")?.f64()?.get(i).unwrap_or(0.0),
            seg.column("revenue_share")?.f64()?.get(i).unwrap_or(0.0),
        ));
    }
    let segments = crate::charts::segment_shares(
        &rows,
        [tr!("chart.share_of_customers"), tr!("chart.share_of_revenue")],
        tr!("chart.segments"),
    )?;
    let c = &a.cohorts_monthly;
    let mut cohorts: Vec<String> = Vec::new();
    let mut cells = Vec::new();
    for i in 0..c.height() {
        let name = c.column("cohort")?.str()?.get(i).unwrap_or("").to_string();
        if cohorts.last() != Some(&name) {
            cohorts.push(name);
        }
        let k = c.column("period")?.i32()?.get(i).unwrap_or(0).max(0) as usize;
        cells.push((cohorts.len() - 1, k, c.column("retention")?.f64()?.get(i)));
    }
    let heatmap = crate::charts::retention_heatmap(
        &cohorts,
        &cells,
        tr!("chart.periods_after_first"),
        tr!("chart.cohorts_monthly"),
    )?;
    let (weeks, series) = weekly_series(
        &a.customers_weekly,
        &[
            ("new_customers", tr!("chart.new")),
            ("returning_customers", tr!("chart.returning")),
            ("lapsed_customers", tr!("chart.lapsed")),
        ],
        1.0,
    )?;
    let customers = crate::charts::lines(&weeks, &series, tr!("chart.customers"), tr!("chart.customers_weekly"))?;
    let mut channel_weeks: Vec<String> = Vec::new();
    let mut by_channel: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let k = &a.kpis;
    for i in 0..k.height() {
        let (Some(w), Some(ch)) = (k.column("iso_week")?.str()?.get(i), k.column("channel")?.str()?.get(i)) else {
            continue;
        };
        if channel_weeks.last().map(String::as_str) != Some(w) {
            channel_weeks.push(w.to_string());
        }
        if ch == "all" {
            continue;
        }
        let v = by_channel.entry(i18n::name("value", ch)).or_default();
        v.resize(channel_weeks.len() - 1, 0.0);
        v.push(k.column("net_fen")?.i64()?.get(i).unwrap_or(0) as f64 / 100.0);
    }
    let channel_series: Vec<(String, Vec<f64>)> = by_channel
        .into_iter()
        .map(|(c, mut v)| {
            v.resize(channel_weeks.len(), 0.0);
            (c, v)
        })
        .collect();
    let channels = crate::charts::lines(
        &channel_weeks,
        &channel_series,
        tr!("chart.yuan"),
        tr!("chart.channel_revenue"),
    )?;
    // Segment moves since last week, the largest first.
    let m = &a.transitions;
    let mut moves: Vec<(String, f64, usize)> = Vec::new();
    for i in 0..m.height() {
        let (Some(f), Some(t), Some(n)) = (
            m.column("from_segment")?.str()?.get(i),
            m.column("to_segment")?.str()?.get(i),
            m.column("customers")?.i64()?.get(i),
        ) else {
            continue;
        };
        if f != t {
            moves.push((
                format!("{} → {}", i18n::segment(f), i18n::segment(t)),
                n as f64,
                if f == crate::analytics::transitions::NEW { 2 } else { 0 },
            ));
        }
    }
    moves.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    moves.truncate(10);
    let transitions = crate::charts::hbars(&moves, tr!("chart.customers"), tr!("chart.segment_moves"))?;
    // Fees: the effective rate per channel this week.
    let mut fees: Vec<(String, f64, usize)> = Vec::new();
    let last_week = k
        .column("iso_week")?
        .str()?
        .iter()
        .flatten()
        .last()
        .map(str::to_string)
        .unwrap_or_default();
    for i in 0..k.height() {
        if k.column("iso_week")?.str()?.get(i) != Some(last_week.as_str()) {
            continue;
        }
        let ch = k.column("channel")?.str()?.get(i).unwrap_or("");
        let rate = k.column("effective_fee_rate")?.f64()?.get(i).unwrap_or(0.0);
        let share = k.column("channel_share")?.f64()?.get(i).unwrap_or(0.0);
        fees.push((
            tr!(
                "chart.channel_share",
                channel = i18n::name("value", ch),
                share = format!("{:.0} %", share * 100.0)
            ),
            rate * 100.0,
            if ch == "all" { 1 } else { 0 },
        ));
    }
    let fee_chart = crate::charts::hbars(&fees, tr!("chart.fees_axis"), tr!("chart.channel_fees"))?;
    let (trend_weeks, trend) = weekly_series(
        &a.repeat_trend,
        &[
            ("in_window_repeat_rate", tr!("chart.repeat_rate")),
            ("returning_customer_rate_shopify", tr!("chart.returning_rate")),
        ],
        0.01,
    )?;
    let repeat = crate::charts::lines(
        &trend_weeks,
        &trend,
        tr!("chart.repeat_axis"),
        tr!("chart.repeat_trend"),
    )?;
    Ok(vec![
        ("channel_revenue", channels),
        ("customers_weekly", customers),
        ("repeat_trend", repeat),
        ("segments", segments),
        ("cohorts_monthly", heatmap),
        ("segment_moves", transitions),
        ("channel_fees", fee_chart),
    ])
}

/// One self-contained page: the summary's headline, every chart inline as SVG (in `CHART_ORDER`), then
/// the rest of the summary.
fn report_html(a: &AnalyzeOutcome, md: &str, charts: &[(&str, String)]) -> String {
    let body = markdown_to_html(md);
    // The headline paragraph first, then the charts, then the rest.
    let split_at = body.find("<h2>").unwrap_or(body.len());
    let (head, rest) = body.split_at(split_at);
    let figures: String = CHART_ORDER
        .iter()
        .filter_map(|want| charts.iter().find(|(name, _)| name == want))
        .map(|(name, svg)| format!("<div class=\"chart\" id=\"{name}\">{svg}</div>\n"))
        .collect();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>paylens {week}</title>\n<style>\n\
         body {{ font-family: -apple-system, \"Segoe UI\", \"PingFang SC\", \"Microsoft YaHei\", \"Noto Sans CJK SC\", sans-serif; max-width: 960px; margin: 2em auto; color: #222; }}\n\
         h1 {{ font-size: 1.6em; }} table {{ border-collapse: collapse; margin: 0.5em 0; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }} td:first-child, th:first-child {{ text-align: left; }}\n\
         .chart {{ margin: 1em 0; }} .chart svg {{ max-width: 100%; height: auto; }}\n</style></head>\n<body>\n{head}\n\
         {figures}{rest}</body></html>\n",
        week = iso_week_label(a.as_of),
        lang = i18n::current().tag(),
    );
    html
}

/// Each chart as PNG bytes, drawn on two threads.
fn rasterise(raster: &crate::raster::Rasteriser, charts: &[(&str, String)]) -> Result<Vec<Vec<u8>>> {
    let order: Vec<usize> = (0..charts.len()).collect();
    crate::on_two_threads(charts, &order, "drawing charts", |(_, svg)| raster.png(svg))
}

/// Writes each chart as `charts/<name>.png` (replacing the folder's PNGs); returns a note when there was
/// no font to draw text with.
fn write_pngs(
    folder: &std::path::Path,
    charts: &[(&str, String)],
    pngs: &[Vec<u8>],
    raster: &crate::raster::Rasteriser,
) -> Result<Option<String>> {
    let dir = folder.join("charts");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for ((name, _), png) in charts.iter().zip(pngs) {
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if !raster.has_fonts() {
        Some(tr!("report.no_fonts").to_string())
    } else if raster.cjk_family.is_none() {
        Some(tr!("report.no_cjk_font").to_string())
    } else {
        None
    })
}

/// Runs the analytics and restock for the week and writes summary.md; returns the folder.
pub fn run(as_of: Option<NaiveDate>, cfg: &Config, quiet: bool) -> Result<PathBuf> {
    // The customer analytics and the restock list read the store independently: with the as-of date known
    // first, restock runs on a thread of its own meanwhile (the one-pass parts of the analytics keep one
    // core busy, so the second one is free for it much of the time).
    let as_of = match as_of {
        Some(d) => Some(d),
        None => crate::analyze::default_as_of(cfg)?,
    };
    let analysis = crate::analyze::AnalyzeParams {
        as_of,
        segments: cfg.analytics.segments.clone(),
        inline_map: cfg.analytics.segment_map.clone(),
        window_days: cfg.analytics.window_days,
        weeks: cfg.analytics.weeks,
        lapse_days: cfg.analytics.lapse_days,
        with_contact_ids: false,
        quiet: true,
    };
    let restock = |as_of: NaiveDate| crate::restock::RestockParams {
        simulate_weeks: None,
        backtest_days: None,
        as_of: Some(as_of),
        inventory: None,
        settings: cfg.restock.clone(),
        quiet: true,
    };
    // The restock thread also draws the charts that need only the store and the restock list.
    let restock_and_draw = |as_of: NaiveDate, sales_from| -> Result<(RestockOutcome, Drawn)> {
        let mut phase = crate::timings::Phases::from_env();
        phase.mark("restock");
        let r = crate::restock::run_given(&restock(as_of), cfg, sales_from)?;
        drop(phase);
        let drawn = Drawn::new(&r, cfg, as_of)?;
        Ok((r, drawn))
    };
    let (a, (r, drawn)) = std::thread::scope(|scope| -> Result<_> {
        // The analytics' pass over the payments folds restock's bill sales too, and hands them over: the
        // restock thread reads the rest of what it needs meanwhile, then waits for them.
        let (sales_to, sales_from) = std::sync::mpsc::sync_channel(1);
        let background = as_of.map(|d| scope.spawn(move || restock_and_draw(d, Some(sales_from))));
        // An empty store fails here, with analyze's message (and the sender gone, restock's wait ends).
        let a = crate::analyze::run_sharing(&analysis, cfg, background.is_some().then_some(sales_to))?;
        let r = match background {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("the restock thread panicked"))??,
            None => restock_and_draw(a.as_of, None)?,
        };
        Ok((a, r))
    })?;
    let mut phase = crate::timings::Phases::from_env();
    phase.mark("report_html");
    let md = summary_markdown(&a, &r)?;
    let path = a.folder.join("summary.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    let Drawn {
        raster,
        mut charts,
        mut pngs,
    } = drawn;
    let drawn_already = charts.len();
    charts.extend(customer_charts(&a)?);
    let html = report_html(&a, &md, &charts);
    let path = a.folder.join("report.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    phase.mark("pngs");
    pngs.extend(rasterise(&raster, &charts[drawn_already..])?);
    let font_note = write_pngs(&a.folder, &charts, &pngs, &raster)?;
    drop(phase);
    if !quiet {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", headline(&a, &r)?)?;
        writeln!(
            out,
            "{}",
            tr!("report.written", path = a.folder.join("report.html").display())
        )?;
    }
    if let Some(note) = font_note {
        eprintln!("paylens: {note}");
    }
    Ok(a.folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_subset_to_html() {
        let html = markdown_to_html("# T\n\nHead <b>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- x\n- y\n");
        assert_eq!(
            html,
            "<h1>T</h1>\n<p>Head &lt;b&gt;</p>\n<table>\n<tr><th>a</th><th>b</th></tr>\n<tr><td>1</td><td>2</td></tr>\n</table>\n<ul>\n<li>x</li>\n<li>y</li>\n</ul>\n"
        );
    }

    #[test]
    fn money_and_weeks() {
        assert_eq!(
            parse_iso_week("2026-W47").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
        );
        assert!(parse_iso_week("2026-47").is_err());
    }
}
