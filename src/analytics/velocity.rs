//! Products: units sold per product per day, sales velocity over trailing windows, trend, ABC class by
//! revenue and the Syntetos-Boylan demand class (../shared/reference/analytics-methods.md).
//!
//! Units come from POS line items where an order has them (joined to its payment on the merchant order
//! number), else from the bill's product name, one unit per payment. A fully refunded order takes its
//! units back on the refund's day; a partial refund reduces revenue only. Products are keyed by sku where
//! known, else by the normalised name (`拿铁等2件` -> `拿铁`).

use std::collections::HashMap;

use anyhow::Result;
use foldhash::fast::RandomState;
use polars::prelude::*;
use polars_arrow::array::{Array, PrimitiveArray, Utf8ViewArray};
use serde::Serialize;

use super::inputs::{refunds as refunds_of, view_of, ByViews, Refunded, RefundsByPayment, Texts};

/// Receipt labels of personal collection codes: not products.
const NOT_PRODUCTS: [&str; 4] = ["收钱码收款", "二维码收款", "收款", "转账"];

/// Product key from a bill's product name: trimmed, without the `等N件` multi-item suffix.
pub fn bill_product_key(name: Expr) -> Expr {
    name.str()
        .replace(lit(r"等\d+件$"), lit(""), false)
        .str()
        .strip_chars(lit(NULL))
}

/// Rows of a frame of line items (`None` if it cannot be counted).
fn line_items_count(items: &LazyFrame) -> Option<u32> {
    let df = items.clone().select([len()]).collect().ok()?;
    df.column("len").ok()?.u32().ok()?.get(0)
}

/// The line items of a shop without POS data: the columns [`daily_units`] reads, no rows.
pub fn no_line_items() -> Result<LazyFrame> {
    Ok(df!(
        "merchant_order_id" => Vec::<String>::new(),
        "sku" => Vec::<Option<String>>::new(),
        "name" => Vec::<String>::new(),
        "quantity" => Vec::<f64>::new(),
        "unit_price_fen" => Vec::<i64>::new(),
    )?
    .lazy())
}

/// Net units and revenue per product and day up to `as_of`: product_key, product_name, day, units,
/// revenue_fen. `events` is the store's events, whole or a file a time (one lazy frame per file, in
/// store order); `line_items` may be empty.
///
/// Without POS line items (most shops) each payment is one unit of its bill label: the payments are read
/// a file at a time and folded into sums per label and day ([`BillSales`]), so the payments of the whole
/// store are never in memory at once, and neither joined to the refunds nor grouped by Polars (at 1M
/// events those were two thirds of the restock's work). With line items, every payment may meet an item
/// of any file, so the events are taken whole and joined ([`sold`]).
pub fn daily_units(events: &[LazyFrame], line_items: LazyFrame, as_of: i32) -> Result<DataFrame> {
    daily_units_given(events, line_items, as_of, || None)
}

/// [`daily_units`], with the bill sales folded already where `folded` gives them (the frame of
/// [`BillSales::into_frame`] over every payment up to `as_of`: the report's occasion pass folds them as it
/// reads the payments). `folded` is asked only for a shop without line items; where it gives nothing, the
/// payments are read and folded here.
pub fn daily_units_given(
    events: &[LazyFrame],
    line_items: LazyFrame,
    as_of: i32,
    folded: impl FnOnce() -> Option<DataFrame>,
) -> Result<DataFrame> {
    let upto = |ev: LazyFrame| {
        ev.with_column(col("local_date").cast(DataType::Int32).alias("day"))
            .filter(col("day").lt_eq(lit(as_of)))
    };
    let whole = || -> Result<LazyFrame> {
        Ok(match events {
            [one] => one.clone(),
            _ => concat(events, UnionArgs::default())?,
        })
    };
    let items = Items::new(line_items);
    if items.any {
        let ev = upto(whole()?);
        return Ok(per_product_day(sold(ev.clone(), refunds_by_payment(ev), &items)).collect()?);
    }
    let sales = match folded() {
        Some(sales) => sales,
        None => {
            let refunds = RefundsByPayment::new(&refunds_of(upto(whole()?)).collect()?)?;
            let (mut sales, mut labels) = (BillSales::default(), Texts::default());
            for part in events {
                let payments = upto(part.clone())
                    .filter(col("kind").eq(lit("payment")))
                    .select([col("event_id"), col("product_name"), col("day"), col("amount_fen")])
                    .collect()?;
                sales.add(&payments, &refunds, &mut labels)?;
            }
            sales.into_frame(&labels)?
        }
    };
    let rows = bill_labels_to_products(sales.lazy(), &items);
    Ok(per_product_day(rows.select([
        col("product_key"),
        col("product_name_out").alias("product_name"),
        col("day"),
        col("units"),
        col("revenue"),
    ]))
    .collect()?)
}

/// Refunds per payment: their sum, and the day of the last one (`ev` has the column day).
fn refunds_by_payment(ev: LazyFrame) -> LazyFrame {
    ev.filter(col("kind").eq(lit("refund")))
        .group_by([col("payment_event_id")])
        .agg([
            col("amount_fen").sum().alias("refunded_fen"),
            col("day").max().alias("refund_day"),
        ])
}

/// Bill sales summed per label and day as the payments come, a file at a time: each payment is a unit of
/// its bill label (`product_name`) on its day, with what it kept after its refunds as revenue; a fully
/// refunded payment gives its unit back on its last refund's day. The same sums as [`sold`]'s bills
/// grouped by Polars (a test compares the two).
/// Labels are numbers in a [`Texts`] the caller keeps (the occasion pass numbers them already).
#[derive(Default)]
pub(super) struct BillSales {
    /// (label, day) -> its place in `sums`.
    place: HashMap<(u32, i32), usize, RandomState>,
    /// (units, revenue in fen) of each (label, day).
    sums: Vec<(i64, i64)>,
    /// Per label, the day of its last payment and that day's place: a file's payments are mostly of a
    /// few days, so most payments find their place here without a hash.
    last: Vec<(i32, usize)>,
}

impl BillSales {
    /// The place in `sums` of a label and day.
    fn place_of(&mut self, label: u32, day: i32) -> usize {
        *self.place.entry((label, day)).or_insert_with(|| {
            self.sums.push((0, 0));
            self.sums.len() - 1
        })
    }

    /// One payment of the label numbered `label` on `day`: `paid` fen (if known), `back` its refunds.
    #[inline]
    pub(super) fn payment(&mut self, label: u32, day: i32, paid: Option<i64>, back: Option<Refunded>) {
        let l = label as usize;
        let place = match self.last.get(l) {
            Some(&(d, place)) if d == day && place != usize::MAX => place,
            _ => {
                let place = self.place_of(label, day);
                if l >= self.last.len() {
                    self.last.resize(l + 1, (0, usize::MAX));
                }
                self.last[l] = (day, place);
                place
            }
        };
        self.sums[place].0 += 1;
        let Some(paid) = paid else { return };
        let kept = paid + back.map_or(0, |r| r.fen);
        self.sums[place].1 += kept;
        if let Some(refund_day) = back.and_then(|r| r.last_day).filter(|_| kept <= 0) {
            let back_place = self.place_of(label, refund_day);
            self.sums[back_place].0 -= 1;
        }
    }

    /// Payments (columns event_id, product_name, day, amount_fen), every one up to the as-of day; their
    /// labels numbered in `labels`.
    pub(super) fn add(&mut self, payments: &DataFrame, refunds: &RefundsByPayment, labels: &mut Texts) -> Result<()> {
        let mut payments = payments.clone();
        payments.align_chunks_par();
        let text =
            |name: &str| -> Result<Vec<&Utf8ViewArray>> { Ok(payments.column(name)?.str()?.downcast_iter().collect()) };
        let (ids, names) = (text("event_id")?, text("product_name")?);
        let days: Vec<&PrimitiveArray<i32>> = payments.column("day")?.i32()?.downcast_iter().collect();
        let amounts: Vec<&PrimitiveArray<i64>> = payments.column("amount_fen")?.i64()?.downcast_iter().collect();
        for c in 0..ids.len() {
            let (id, name, day, amount) = (ids[c], names[c], days[c], amounts[c]);
            let mut label_of = ByViews::new();
            for i in 0..id.len() {
                if !name.is_valid(i) || !day.is_valid(i) {
                    continue;
                }
                let label = label_of.get_or(view_of(name, i), || labels.of(name.get(i)));
                let back = id.get(i).and_then(|id| refunds.of(id));
                self.payment(label, day.value(i), amount.get(i), back);
            }
        }
        Ok(())
    }

    /// A row per label and day: product_name (the label, by its number in `labels`), day, units, revenue
    /// (fen, as Float64 like [`sold`]'s).
    pub(super) fn into_frame(self, labels: &Texts) -> Result<DataFrame> {
        let mut rows: Vec<((u32, i32), (i64, i64))> =
            self.place.iter().map(|(&k, &place)| (k, self.sums[place])).collect();
        rows.sort_unstable_by_key(|&(k, _)| k);
        Ok(df!(
            "product_name" => rows.iter().map(|&((l, _), _)| labels.get(l)).collect::<Vec<_>>(),
            "day" => rows.iter().map(|&((_, d), _)| d).collect::<Vec<_>>(),
            "units" => rows.iter().map(|&(_, (u, _))| u as f64).collect::<Vec<_>>(),
            "revenue" => rows.iter().map(|&(_, (_, r))| r as f64).collect::<Vec<_>>(),
        )?)
    }
}

/// POS line items, when there are any, and the orders they belong to.
struct Items {
    items: LazyFrame,
    orders: LazyFrame,
    /// Whether there are any.
    any: bool,
}

impl Items {
    fn new(line_items: LazyFrame) -> Items {
        let items = line_items.select([
            col("merchant_order_id"),
            col("sku"),
            col("name"),
            col("quantity"),
            col("unit_price_fen"),
        ]);
        let orders = items
            .clone()
            .select([col("merchant_order_id")])
            .unique(None, UniqueKeepStrategy::First);
        // Most shops have no POS line items: then no payment is joined to items (two joins of every payment
        // on its order number saved). The line items are in memory, so counting them costs nothing.
        let any = line_items_count(&orders) != Some(0);
        Items { items, orders, any }
    }
}

/// What was sold, a row per sale (units and revenue; a product and day can have several rows): product_key,
/// product_name, day, units, revenue (unrounded fen). `ev` has the column day; `refunds` is
/// [`refunds_by_payment`] of all events.
fn sold(ev: LazyFrame, refunds: LazyFrame, items: &Items) -> LazyFrame {
    let payments = ev.filter(col("kind").eq(lit("payment")));
    let pay = payments
        .select([
            col("event_id"),
            col("merchant_order_id"),
            col("product_name"),
            col("day"),
            col("amount_fen"),
        ])
        .left_join(refunds, col("event_id"), col("payment_event_id"))
        .with_columns([
            col("refunded_fen").fill_null(lit(0i64)),
            // Refunded down to nothing (a payment of 0 fen without a refund sold a unit for free).
            (col("amount_fen") + col("refunded_fen").fill_null(lit(0i64)))
                .lt_eq(lit(0i64))
                .and(col("refund_day").is_not_null())
                .alias("fully_refunded"),
        ]);
    // Payments with line items: one row per item.
    let from_items = pay
        .clone()
        .inner_join(items.items.clone(), col("merchant_order_id"), col("merchant_order_id"))
        .with_columns([
            col("sku").fill_null(col("name")).alias("product_key"),
            col("name").alias("product_name_out"),
            col("quantity").cast(DataType::Float64).alias("units"),
            // Revenue: the item's share of what the order kept after partial refunds.
            (col("quantity").cast(DataType::Float64)
                * col("unit_price_fen").cast(DataType::Float64)
                * ((col("amount_fen") + col("refunded_fen")).cast(DataType::Float64)
                    / col("amount_fen").cast(DataType::Float64)))
            .alias("revenue"),
        ]);
    // Payments without: one unit of the bill's product, under the sku the POS data gives that name.
    let has_items = items.any;
    let bills = if has_items {
        pay.clone().join(
            items.orders.clone(),
            [col("merchant_order_id")],
            [col("merchant_order_id")],
            JoinArgs::new(JoinType::Anti),
        )
    } else {
        pay.clone()
    };
    let from_bills = bills
        .filter(col("product_name").is_not_null())
        // One row per bill label, day and refund outcome before the labels are folded: the regex runs per
        // distinct label and day, not per payment. Stable, so the first name of a product stays the first.
        .group_by_stable([
            col("product_name"),
            col("day"),
            col("fully_refunded"),
            col("refund_day"),
        ])
        .agg([
            len().cast(DataType::Float64).alias("units"),
            (col("amount_fen") + col("refunded_fen"))
                .sum()
                .cast(DataType::Float64)
                .alias("revenue"),
        ]);
    let from_bills = bill_labels_to_products(from_bills, items);
    let cols_out = [
        col("product_key"),
        col("product_name_out").alias("product_name"),
        col("day"),
        col("units"),
        col("revenue"),
        col("fully_refunded"),
        col("refund_day"),
    ];
    let sold = if has_items {
        concat(
            [from_items.select(cols_out.clone()), from_bills.select(cols_out)],
            UnionArgs::default(),
        )
        .expect("same columns")
    } else {
        from_bills.select(cols_out)
    };
    // A fully refunded order gives its units back on the refund's day (revenue is already net, 0).
    let returned = sold.clone().filter(col("fully_refunded")).select([
        col("product_key"),
        col("product_name"),
        col("refund_day").alias("day"),
        (-col("units")).alias("units"),
        lit(0.0).alias("revenue"),
    ]);
    let sold = sold.select([
        col("product_key"),
        col("product_name"),
        col("day"),
        col("units"),
        col("revenue"),
    ]);
    concat([sold, returned], UnionArgs::default()).expect("same columns")
}

/// Rows with a bill label (product_name) given their product: product_key (the sku the POS data gives the
/// folded label, else the label folded) and product_name_out (the label folded); labels that name no
/// product (personal codes' receipts) are left out.
fn bill_labels_to_products(rows: LazyFrame, items: &Items) -> LazyFrame {
    let name_to_sku = items
        .items
        .clone()
        .filter(col("sku").is_not_null())
        .select([col("name").alias("bill_name"), col("sku").alias("known_sku")])
        .unique(Some(cols(["bill_name"])), UniqueKeepStrategy::First);
    rows.with_column(bill_product_key(col("product_name")).alias("bill_name"))
        .filter(
            col("bill_name")
                .is_in(lit(Series::new("".into(), NOT_PRODUCTS)).implode(false), false)
                .not(),
        )
        .left_join(name_to_sku, col("bill_name"), col("bill_name"))
        .with_columns([
            col("known_sku").fill_null(col("bill_name")).alias("product_key"),
            col("bill_name").alias("product_name_out"),
        ])
}

/// Sales rows (product_key, product_name, day, units, revenue) summed per product and day, sorted:
/// product_key, product_name (the first row's), day, units, revenue_fen (rounded).
fn per_product_day(rows: LazyFrame) -> LazyFrame {
    rows.group_by([col("product_key"), col("day")])
        .agg([
            col("product_name").first(),
            col("units").sum(),
            col("revenue")
                .sum()
                .round(0, RoundMode::HalfToEven)
                .cast(DataType::Int64)
                .alias("revenue_fen"),
        ])
        .sort(["product_key", "day"], SortMultipleOptions::default())
}

/// Syntetos-Boylan class from the average inter-demand interval and the squared coefficient of variation
/// of the non-zero demand sizes (cut-offs 4/3 and 0.5, as in the M5 benchmark code).
pub fn demand_class(adi: f64, cv2: f64) -> &'static str {
    match (adi > 4.0 / 3.0, cv2 > 0.5) {
        (true, true) => "lumpy",
        (true, false) => "intermittent",
        (false, true) => "erratic",
        (false, false) => "smooth",
    }
}

/// ADI and CV² of a daily series: ADI = days in the series / days with demand (the mean interval between
/// non-zero days, counting the first from the series start); CV² over the non-zero sizes (population sd).
pub fn adi_cv2(series: &[f64]) -> Option<(f64, f64)> {
    let nz: Vec<f64> = series.iter().copied().filter(|v| *v > 0.0).collect();
    if nz.is_empty() {
        return None;
    }
    let adi = series.len() as f64 / nz.len() as f64;
    let mean = nz.iter().sum::<f64>() / nz.len() as f64;
    let var = nz.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / nz.len() as f64;
    Some((adi, var / (mean * mean)))
}

/// ABC thresholds: A = the products making the first 80 % of revenue, B the next 15 %, C the rest.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AbcThresholds {
    pub a: f64,
    pub b: f64,
}

impl Default for AbcThresholds {
    fn default() -> Self {
        AbcThresholds { a: 0.80, b: 0.95 }
    }
}

/// ABC class of each product by its share of revenue, largest first. A product whose cumulative share
/// *before* it is under the threshold belongs to the class (so the top product is always A).
pub fn abc_classes(revenue: &[(String, i64)], t: AbcThresholds) -> Vec<(String, &'static str, f64)> {
    let mut sorted: Vec<&(String, i64)> = revenue.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: i64 = sorted.iter().map(|r| r.1.max(0)).sum();
    let mut before = 0.0;
    sorted
        .into_iter()
        .map(|(k, rev)| {
            let class = if total <= 0 || before < t.a {
                "A"
            } else if before < t.b {
                "B"
            } else {
                "C"
            };
            let share = if total > 0 {
                (*rev).max(0) as f64 / total as f64
            } else {
                0.0
            };
            before += share;
            (k.clone(), class, share)
        })
        .collect()
}

/// Dense daily series per product from its first sale to `as_of`: (product_key, name, first_day, units).
/// A product's daily units from its first sale: (product_key, name, first_day, units per day).
pub type ProductSeries = (String, String, i32, Vec<f64>);

pub fn dense_series(daily: &DataFrame, as_of: i32) -> Result<Vec<ProductSeries>> {
    let keys = daily.column("product_key")?.str()?;
    let names = daily.column("product_name")?.str()?;
    let days = daily.column("day")?.i32()?;
    let units = daily.column("units")?.f64()?;
    let mut out: Vec<ProductSeries> = Vec::new();
    for i in 0..daily.height() {
        let (Some(k), Some(d)) = (keys.get(i), days.get(i)) else {
            continue;
        };
        if out.last().is_none_or(|l| l.0 != k) {
            out.push((k.to_string(), names.get(i).unwrap_or(k).to_string(), d, Vec::new()));
        }
        let last = out.last_mut().expect("pushed above");
        let idx = (d - last.2) as usize;
        if d > as_of {
            continue;
        }
        if last.3.len() <= idx {
            last.3.resize(idx + 1, 0.0);
        }
        last.3[idx] += units.get(i).unwrap_or(0.0);
    }
    for s in &mut out {
        let len = (as_of - s.2 + 1).max(0) as usize;
        s.3.resize(len, 0.0);
    }
    Ok(out)
}

/// Mean units per day over the last `window` days of a series (fewer when the product is younger).
pub fn velocity(series: &[f64], window: usize) -> f64 {
    let n = series.len().min(window);
    if n == 0 {
        return 0.0;
    }
    series[series.len() - n..].iter().sum::<f64>() / n as f64
}

/// 28-day velocity against the 28 days before it (`None` when the product is younger than 29 days or
/// sold nothing before).
pub fn trend(series: &[f64]) -> Option<f64> {
    if series.len() < 29 {
        return None;
    }
    let recent: f64 = series[series.len() - 28..].iter().sum();
    let start = series.len().saturating_sub(56);
    let prev_slice = &series[start..series.len() - 28];
    let prev = prev_slice.iter().sum::<f64>() / prev_slice.len() as f64 * 28.0;
    (prev > 0.0).then(|| recent / prev - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntetos_boylan_by_hand() {
        // Every day 4 or 6 units: ADI 1, mean 5, sd 1, CV² 0.04 -> smooth.
        let smooth: Vec<f64> = (0..10).map(|i| if i % 2 == 0 { 4.0 } else { 6.0 }).collect();
        let (adi, cv2) = adi_cv2(&smooth).unwrap();
        assert_eq!((adi, (cv2 * 1e6).round() / 1e6), (1.0, 0.04));
        assert_eq!(demand_class(adi, cv2), "smooth");
        // Demand of 2 every 3rd day: ADI 3, CV² 0 -> intermittent.
        let inter = [0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.0, 2.0];
        assert_eq!(adi_cv2(&inter), Some((3.0, 0.0)));
        assert_eq!(demand_class(3.0, 0.0), "intermittent");
        // Sizes 1 and 9 every other day: ADI 2, mean 5, sd 4, CV² 0.64 -> lumpy; daily 1 and 9 -> erratic.
        let (adi, cv2) = adi_cv2(&[0.0, 1.0, 0.0, 9.0]).unwrap();
        assert_eq!((adi, cv2), (2.0, 0.64));
        assert_eq!(demand_class(adi, cv2), "lumpy");
        assert_eq!(demand_class(1.0, 0.64), "erratic");
        assert_eq!(adi_cv2(&[0.0, 0.0]), None);
    }

    #[test]
    fn abc_by_hand() {
        // Revenue 50, 30, 10, 6, 4 (total 100): shares before each: 0, .5, .8, .9, .96 -> A A B B C.
        let rev: Vec<(String, i64)> = [("a", 50), ("b", 30), ("c", 10), ("d", 6), ("e", 4)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let classes: Vec<&str> = abc_classes(&rev, AbcThresholds::default())
            .iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(classes, ["A", "A", "B", "B", "C"]);
    }

    #[test]
    fn velocity_excludes_days_before_the_first_sale() {
        // A product 5 days old that sold 10 units: 2 a day over 7, 28 and 90 days alike.
        let s = [2.0, 3.0, 1.0, 2.0, 2.0];
        assert_eq!(velocity(&s, 7), 2.0);
        assert_eq!(velocity(&s, 90), 2.0);
        assert_eq!(trend(&s), None);
        // 56 days: 1 a day, then 2 a day: trend +100 %.
        let s: Vec<f64> = (0..56).map(|i| if i < 28 { 1.0 } else { 2.0 }).collect();
        assert_eq!(trend(&s), Some(1.0));
    }

    /// The rows of `daily_units` as (product_key, day, units, revenue_fen).
    fn daily_rows(d: &DataFrame) -> Vec<(String, i32, f64, i64)> {
        let keys = d.column("product_key").unwrap().str().unwrap();
        let days = d.column("day").unwrap().i32().unwrap();
        let units = d.column("units").unwrap().f64().unwrap();
        let revenue = d.column("revenue_fen").unwrap().i64().unwrap();
        (0..d.height())
            .map(|i| {
                (
                    keys.get(i).unwrap().to_string(),
                    days.get(i).unwrap(),
                    units.get(i).unwrap(),
                    revenue.get(i).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn units_from_line_items_else_bills_with_full_refunds_returned() {
        let events = df!(
            "event_id" => ["p1", "p2", "p3", "r3", "p4"],
            "kind" => ["payment", "payment", "payment", "refund", "payment"],
            "local_date" => [100i32, 100, 101, 102, 101],
            "merchant_order_id" => [Some("O1"), Some("O2"), None, None, Some("O4")],
            "product_name" => [Some("拿铁等2件"), Some("可颂"), Some("拿铁"), Some("拿铁"), Some("燕麦拿铁")],
            "amount_fen" => [4400i64, 1600, 2800, -2800, 3200],
            "payment_event_id" => [None, None, None, Some("p3"), None],
        )
        .unwrap()
        .lazy()
        .with_column(col("local_date").cast(DataType::Date));
        // O1 has line items: 1 latte (SKU1, 28.00) + 1 croissant (SKU8, 16.00). O4 has one line too.
        let items = df!(
            "merchant_order_id" => ["O1", "O1", "O4"],
            "sku" => [Some("SKU1"), Some("SKU8"), Some("SKU3")],
            "name" => ["拿铁", "可颂", "燕麦拿铁"],
            "quantity" => [1.0, 1.0, 1.0],
            "unit_price_fen" => [2800i64, 1600, 3200],
        )
        .unwrap()
        .lazy();
        let d = daily_units(&[events], items, 110).unwrap();
        let rows = daily_rows(&d);
        // O2 (no items) counts one 可颂 from the bill, under the sku the POS gives 可颂; p3 (拿铁 by bill,
        // SKU1) is fully refunded on day 102: its unit comes back that day.
        assert_eq!(
            rows,
            vec![
                ("SKU1".into(), 100, 1.0, 2800),
                ("SKU1".into(), 101, 1.0, 0),
                ("SKU1".into(), 102, -1.0, 0),
                ("SKU3".into(), 101, 1.0, 3200),
                ("SKU8".into(), 100, 2.0, 3200),
            ]
        );
    }

    #[test]
    fn units_summed_a_file_at_a_time_match_the_hand_count() {
        // Two store files and no line items; p3 and p5 are paid in the first file and refunded in the
        // second (p3 fully on day 102, p5 by 8.00 on day 103).
        let part = |ids: &[&str], kinds: &[&str], days: &[i32], names: &[&str], fen: &[i64], of: &[Option<&str>]| {
            df!(
                "event_id" => ids,
                "kind" => kinds,
                "local_date" => days,
                "merchant_order_id" => ids.iter().map(|_| None::<&str>).collect::<Vec<_>>(),
                "product_name" => names,
                "amount_fen" => fen,
                "payment_event_id" => of,
            )
            .unwrap()
            .lazy()
            .with_column(col("local_date").cast(DataType::Date))
        };
        let first = part(
            &["p1", "p2", "p3", "p5"],
            &["payment"; 4],
            &[100, 100, 101, 101],
            &["拿铁等2件", "可颂", "拿铁", "拿铁"],
            &[4400, 1600, 2800, 2800],
            &[None; 4],
        );
        let second = part(
            &["r3", "p4", "r5", "p6"],
            &["refund", "payment", "refund", "payment"],
            &[102, 101, 103, 120],
            &["拿铁", "燕麦拿铁", "拿铁", "可颂"],
            &[-2800, 3200, -800, 1600],
            &[Some("p3"), None, Some("p5"), None],
        );
        let d = daily_units(&[first, second], no_line_items().unwrap(), 110).unwrap();
        let rows = daily_rows(&d);
        // Day 101's lattes: p3 (1 unit, nothing kept) and p5 (1 unit, 28.00 - 8.00); p3's unit comes back on
        // day 102; p6 is after as-of.
        assert_eq!(
            rows,
            vec![
                ("可颂".into(), 100, 1.0, 1600),
                ("拿铁".into(), 100, 1.0, 4400),
                ("拿铁".into(), 101, 2.0, 2000),
                ("拿铁".into(), 102, -1.0, 0),
                ("燕麦拿铁".into(), 101, 1.0, 3200),
            ]
        );
    }

    #[test]
    fn bill_sales_folded_a_file_at_a_time_match_the_polars_join() {
        use rand::{Rng, SeedableRng};
        // Three files of random payments over labels that fold together (等N件, blanks), one that names no
        // product, a long one (past a view's 12 inline bytes) and none; amounts of 0 and none; a third of
        // the payments refunded once or twice, in part or whole, some after the as-of day, in any file.
        let labels = [
            Some("拿铁"),
            Some("拿铁等2件"),
            Some("可颂"),
            Some(" 燕麦拿铁 "),
            Some("收款"),
            Some("季节限定桂花酒酿拿铁"),
            None,
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut files: Vec<Vec<(String, &str, i32, Option<&str>, Option<i64>, Option<String>)>> = vec![vec![]; 3];
        // Sparse enough (600 payments over 90 days) that some refunds fall on days without a sale.
        for p in 0..600 {
            let day = rng.random_range(30..=120);
            let amount = [None, Some(0), Some(1600), Some(2800), Some(5600)][rng.random_range(0..5)];
            let label = labels[rng.random_range(0..labels.len())];
            let id = format!("p{p}");
            files[rng.random_range(0..3)].push((id.clone(), "payment", day, label, amount, None));
            if rng.random_bool(1.0 / 3.0) {
                for r in 0..rng.random_range(1..=2) {
                    let back = match amount {
                        Some(a) if rng.random_bool(0.5) => -a,
                        _ => -rng.random_range(1..=800),
                    };
                    let at = day + rng.random_range(0..8);
                    let row = (format!("r{p}_{r}"), "refund", at, label, Some(back), Some(id.clone()));
                    files[rng.random_range(0..3)].push(row);
                }
            }
        }
        let parts: Vec<LazyFrame> = files
            .iter()
            .map(|rows| {
                df!(
                    "event_id" => rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
                    "kind" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    "local_date" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    "merchant_order_id" => rows.iter().map(|_| None::<&str>).collect::<Vec<_>>(),
                    "product_name" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                    "amount_fen" => rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                    "payment_event_id" => rows.iter().map(|r| r.5.as_deref()).collect::<Vec<_>>(),
                )
                .unwrap()
                .lazy()
                .with_column(col("local_date").cast(DataType::Date))
            })
            .collect();
        let as_of = 110;
        let folded = daily_rows(&daily_units(&parts, no_line_items().unwrap(), as_of).unwrap());
        // The same through Polars' join and group-by (the path of shops with line items).
        let ev = concat(&parts, UnionArgs::default())
            .unwrap()
            .with_column(col("local_date").cast(DataType::Int32).alias("day"))
            .filter(col("day").lt_eq(lit(as_of)));
        let items = Items::new(no_line_items().unwrap());
        let joined = per_product_day(sold(ev.clone(), refunds_by_payment(ev), &items))
            .collect()
            .unwrap();
        let joined = daily_rows(&joined);
        assert!(folded.len() > 200, "{} rows", folded.len());
        assert!(
            folded.iter().any(|r| r.2 < 0.0),
            "some day has more units back than sold"
        );
        assert!(folded.iter().all(|r| r.0 != "收款"));
        assert_eq!(folded, joined);
    }
}
