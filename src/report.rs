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
use chrono::{Datelike, NaiveDate, Weekday};
use polars::prelude::*;

use crate::analyze::{iso_week_label, pct, AnalyzeOutcome};
use crate::config::Config;
use crate::restock::RestockOutcome;

/// `--week 2026-W47` to its Sunday.
pub fn parse_iso_week(text: &str) -> Result<NaiveDate> {
    let err = || crate::UserError(format!("week `{text}` is not like 2026-W47"));
    let (y, w) = text
        .split_once("-W")
        .or_else(|| text.split_once("-w"))
        .ok_or_else(err)?;
    let (y, w): (i32, u32) = (y.parse().map_err(|_| err())?, w.parse().map_err(|_| err())?);
    Ok(NaiveDate::from_isoywd_opt(y, w, Weekday::Sun).ok_or_else(err)?)
}

/// Whole yuan with thousands separators: 1772500 fen -> `17,725`.
pub fn yuan_int(fen: i64) -> String {
    let yuan = (fen as f64 / 100.0).round() as i64;
    let digits = yuan.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if yuan < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn signed_pct(x: Option<f64>) -> String {
    x.map_or("no earlier week to compare".into(), |v| {
        format!("{:+.1} % on last week", v * 100.0)
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
    let mut first = format!(
        "Net revenue {} yuan, {}",
        yuan_int(net),
        signed_pct(last_f64(&all, "net_fen_wow", 0))
    );
    let s = a.split;
    if let Some(before) = last_i64(&all, "net_fen", 1) {
        // Split the change into new customers, returning customers, and the rest (refunds dated this week,
        // sales without a customer key); name the largest part that moved the same way as the total.
        let total = net - before;
        let d_new = s.new_now.1 - s.new_before.1;
        let d_ret = s.returning_now.1 - s.returning_before.1;
        let parts_of = [
            (d_ret, Some(("returning", s.returning_now.0, s.returning_before.0))),
            (d_new, Some(("new", s.new_now.0, s.new_before.0))),
            (total - d_new - d_ret, None),
        ];
        let main = parts_of
            .iter()
            .filter(|p| p.0 != 0 && (p.0 > 0) == (total > 0))
            .max_by_key(|p| p.0.abs());
        if let (Some((fen, who)), true) = (main, total != 0) {
            let sign = if *fen >= 0 { "+" } else { "-" };
            let amount = yuan_int(fen.abs());
            let _ = match who {
                Some((who, now, before)) => write!(
                    first,
                    ", mostly from {who} customers: {sign}{amount} yuan ({now} against {before} last week)"
                ),
                None => write!(
                    first,
                    ", mostly from refunds and sales without a customer key: {sign}{amount} yuan"
                ),
            };
        }
    }
    parts.push(first);
    if let Some((from, to, n)) = biggest_move(&a.transitions) {
        parts.push(format!("{n} {from} customers moved to {to}"));
    }
    match r.to_order.first() {
        Some(o) => parts.push(format!(
            "order {} {}{}",
            o.qty,
            o.name,
            o.order_by.map_or(String::new(), |d| format!(" by {} {d}", d.weekday()))
        )),
        None => parts.push("nothing to order this week".into()),
    }
    Ok(parts.join("; ") + ".")
}

/// The whole summary.md.
pub fn summary_markdown(a: &AnalyzeOutcome, r: &RestockOutcome) -> Result<String> {
    let mut md = String::new();
    let start = a.as_of - chrono::Days::new(6);
    let _ = writeln!(md, "# Week {} ({start} to {})\n", iso_week_label(a.as_of), a.as_of);
    let _ = writeln!(md, "{}\n", headline(a, r)?);
    let all = all_channels(&a.kpis)?;
    let _ = writeln!(
        md,
        "## The week\n\n| | this week | last week | change |\n|---|---|---|---|"
    );
    let rows: [(&str, &str, bool); 5] = [
        ("net revenue (yuan)", "net_fen", true),
        ("orders", "orders", false),
        ("customers", "customers", false),
        ("refunds (yuan)", "refunds_fen", true),
        ("fees (yuan)", "fees_millifen", true),
    ];
    for (label, c, money) in rows {
        let show = |v: Option<i64>| {
            v.map_or("-".to_string(), |v| match (money, c) {
                (true, "fees_millifen") => yuan_int(v / 1000),
                (true, _) => yuan_int(v),
                _ => v.to_string(),
            })
        };
        // Refunds are shown as amounts returned (positive), so that a rise means more refunds.
        let flip = |v: Option<i64>| if c == "refunds_fen" { v.map(i64::abs) } else { v };
        let (now, before) = (flip(last_i64(&all, c, 0)), flip(last_i64(&all, c, 1)));
        let change = match (now, before) {
            (Some(n), Some(b)) if b != 0 => format!("{:+.1} %", (n - b) as f64 / b.abs() as f64 * 100.0),
            _ => "-".into(),
        };
        let _ = writeln!(md, "| {label} | {} | {} | {change} |", show(now), show(before));
    }
    let aov = |back| last_f64(&all, "aov_fen", back).map_or("-".into(), |v| format!("{:.2}", v / 100.0));
    let _ = writeln!(md, "| average order (yuan) | {} | {} | |", aov(0), aov(1));
    let s = a.split;
    let _ = writeln!(
        md,
        "\nNew customers {} ({} yuan), returning {} ({} yuan); last week {} and {}.",
        s.new_now.0,
        yuan_int(s.new_now.1),
        s.returning_now.0,
        yuan_int(s.returning_now.1),
        s.new_before.0,
        s.returning_before.0
    );
    let repeat = &a.repeat;
    let _ = writeln!(md, "\n## Repeat purchase\n");
    for i in 0..repeat.height() {
        let w = repeat.column("window")?.str()?.get(i).unwrap_or("");
        let cell_pct = |c: &str| -> Result<String> { Ok(pct(repeat.column(c)?.f64()?.get(i))) };
        let _ = writeln!(
            md,
            "- {w}: in-window repeat rate {}; returning-customer rate (Shopify style, reads higher) {}",
            cell_pct("in_window_repeat_rate")?,
            cell_pct("returning_customer_rate_shopify")?
        );
    }
    let cov = &a.coverage;
    let share = |c: &str| -> Result<String> { Ok(pct(cov.column(c)?.f64()?.get(0))) };
    let _ = writeln!(
        md,
        "\nSales without a customer key: {}; with a weak key (masked account, nickname): {}. Customer figures count the keyed sales only.",
        share("none_share")?,
        share("weak_share")?
    );
    let seg = &a.segments;
    let _ = writeln!(
        md,
        "\n## Segments\n\n| segment | customers | share | revenue (yuan) | share |\n|---|---|---|---|---|"
    );
    for i in 0..seg.height() {
        let cell_pct = |c: &str| -> Result<String> { Ok(pct(seg.column(c)?.f64()?.get(i))) };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            seg.column("segment")?.str()?.get(i).unwrap_or(""),
            seg.column("customers")?.i64()?.get(i).unwrap_or(0),
            cell_pct("customer_share")?,
            yuan_int(seg.column("revenue_fen")?.i64()?.get(i).unwrap_or(0)),
            cell_pct("revenue_share")?
        );
    }
    let _ = writeln!(md, "\n## Moved since last week\n");
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
        let _ = writeln!(md, "- {f} -> {t}: {n}");
    }
    let _ = writeln!(
        md,
        "\nLists to act on: targets/<segment>.csv and targets/moved_this_week.csv."
    );
    let _ = writeln!(md, "\n## To order\n");
    if r.to_order.is_empty() {
        let _ = writeln!(md, "Nothing this week.");
    }
    for o in r.to_order.iter().take(10) {
        let by = o.order_by.map_or(String::new(), |d| format!(" by {d}"));
        let _ = writeln!(md, "- {}: {}{by} ({}); {}", o.name, o.qty, o.urgency.label(), o.reason);
    }
    let _ = writeln!(
        md,
        "\nThe full list with safety stock and reorder points: restock.csv; velocity per product: velocity.csv."
    );
    Ok(md)
}

/// Net revenue per local day (yuan) for the `days` days up to `as_of`, days of the last week flagged.
fn daily_revenue(cfg: &Config, as_of: NaiveDate, days: i64) -> Result<Vec<(String, f64, bool)>> {
    let store = crate::store::StoreReader::open(&cfg.store)?;
    let end = crate::analyze::day_number(as_of);
    let df = store
        .scan_events()?
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
        .scan_events()?
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

/// Weekly lines from a frame with `iso_week`: the named columns, optionally divided (fen -> yuan).
fn weekly_series(
    df: &DataFrame,
    columns: &[(&str, &str)],
    divide: f64,
) -> Result<(Vec<String>, Vec<(String, Vec<f64>)>)> {
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

/// One self-contained page: the summary with the charts inline as SVG.
fn report_html(a: &AnalyzeOutcome, r: &RestockOutcome, md: &str, cfg: &Config) -> Result<String> {
    let daily = crate::charts::daily_revenue(
        &daily_revenue(cfg, a.as_of, 84)?,
        "Net revenue per day, last 12 weeks (this week highlighted)",
    )?;
    let seg = &a.segments;
    let mut rows = Vec::new();
    for i in 0..seg.height() {
        let n = seg.column("customers")?.i64()?.get(i).unwrap_or(0);
        if n == 0 {
            continue;
        }
        rows.push((
            seg.column("segment")?.str()?.get(i).unwrap_or("").to_string(),
            seg.column("customer_share")?.f64()?.get(i).unwrap_or(0.0),
            seg.column("revenue_share")?.f64()?.get(i).unwrap_or(0.0),
        ));
    }
    let segments = crate::charts::segment_shares(&rows, "Segments: share of customers and of revenue")?;
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
        "Monthly cohorts: share buying again, by month after the first",
    )?;
    let (weeks, series) = weekly_series(
        &a.customers_weekly,
        &[
            ("new_customers", "new"),
            ("returning_customers", "returning"),
            ("lapsed_customers", "lapsed (90 days without a purchase)"),
        ],
        1.0,
    )?;
    let customers = crate::charts::lines(
        &weeks,
        &series,
        "customers",
        "Customers per week: new, returning, lapsed",
    )?;
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
        let v = by_channel.entry(ch.to_string()).or_default();
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
        "yuan",
        "Net revenue per week by channel",
    )?;
    let hours = crate::charts::weekday_hour_heatmap(
        &weekday_hours(cfg, a.as_of)?,
        "Payments by weekday and hour, last 4 weeks",
    )?;
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
    let restock = crate::charts::hbars(
        &order_rows,
        "units to order (red: out of stock, yellow: runs out before delivery, blue: this week)",
        "To order this week",
    )?;
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
    let movers = crate::charts::hbars(
        &mover_rows,
        "% change: last 28 days against the 28 before",
        "Top movers",
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
                format!("{f} -> {t}"),
                n as f64,
                if f == crate::analytics::transitions::NEW { 2 } else { 0 },
            ));
        }
    }
    moves.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    moves.truncate(10);
    let transitions = crate::charts::hbars(&moves, "customers", "Segment moves since last week")?;
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
            format!("{ch} ({:.0} % of sales)", share * 100.0),
            rate * 100.0,
            if ch == "all" { 1 } else { 0 },
        ));
    }
    let fee_chart = crate::charts::hbars(&fees, "fees paid, % of payments", "Channel mix and fees this week")?;
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
        &[(
            "cumulative share of 90-day revenue (A: to 80 %, B: to 95 %, C: the rest)".to_string(),
            pareto,
        )],
        "%",
        "ABC: products by revenue, cumulative",
    )?;
    let body = markdown_to_html(md);
    // The headline paragraph first, then the charts, then the rest.
    let split_at = body.find("<h2>").unwrap_or(body.len());
    let (head, rest) = body.split_at(split_at);
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>paylens {week}</title>\n<style>\n\
         body {{ font-family: -apple-system, \"Segoe UI\", \"PingFang SC\", \"Microsoft YaHei\", \"Noto Sans CJK SC\", sans-serif; max-width: 960px; margin: 2em auto; color: #222; }}\n\
         h1 {{ font-size: 1.6em; }} table {{ border-collapse: collapse; margin: 0.5em 0; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }} td:first-child, th:first-child {{ text-align: left; }}\n\
         .chart {{ margin: 1em 0; }} .chart svg {{ max-width: 100%; height: auto; }}\n</style></head>\n<body>\n{head}\n\
         <div class=\"chart\">{daily}</div>\n<div class=\"chart\">{channels}</div>\n<div class=\"chart\">{hours}</div>\n\
         <div class=\"chart\">{customers}</div>\n<div class=\"chart\">{segments}</div>\n<div class=\"chart\">{heatmap}</div>\n\
         <div class=\"chart\">{transitions}</div>\n<div class=\"chart\">{fee_chart}</div>\n\
         <div class=\"chart\">{restock}</div>\n<div class=\"chart\">{movers}</div>\n<div class=\"chart\">{abc}</div>\n{rest}</body></html>\n",
        week = iso_week_label(a.as_of),
    ))
}

/// Runs the analytics and restock for the week and writes summary.md; returns the folder.
pub fn run(as_of: Option<NaiveDate>, cfg: &Config, quiet: bool) -> Result<PathBuf> {
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
    let a = crate::analyze::run(&analysis, cfg)?;
    let restock = crate::restock::RestockParams {
        simulate_weeks: None,
        backtest_days: None,
        as_of: Some(a.as_of),
        inventory: None,
        settings: cfg.restock.clone(),
        quiet: true,
    };
    let r = crate::restock::run(&restock, cfg)?;
    let md = summary_markdown(&a, &r)?;
    let path = a.folder.join("summary.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    let html = report_html(&a, &r, &md, cfg)?;
    let path = a.folder.join("report.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    if !quiet {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", headline(&a, &r)?)?;
        writeln!(
            out,
            "report: {} (summary.md and the tables beside it)",
            a.folder.join("report.html").display()
        )?;
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
        assert_eq!(yuan_int(1_772_500), "17,725");
        assert_eq!(yuan_int(-123_456_789), "-1,234,568");
        assert_eq!(yuan_int(99_900), "999");
        assert_eq!(
            parse_iso_week("2026-W47").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
        );
        assert!(parse_iso_week("2026-47").is_err());
    }
}
