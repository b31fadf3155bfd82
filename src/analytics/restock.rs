//! Restock suggestions from a daily forecast and an inventory position (../shared/reference/
//! analytics-methods.md): safety stock SS = z * sigma_d * sqrt(L) (fixed lead time), reorder point
//! ROP = d * L + SS, order-up-to S = d * (L + R) + z * sigma_d * sqrt(L + R); the suggestion is S minus
//! on hand and on order, rounded up to the pack size and at least the minimum order, and 0 when the
//! stock projected to the next review still stays above ROP. Plus cover, stockout date, the last day to
//! order, urgency and a sentence a person can check.

use chrono::NaiveDate;
use serde::Serialize;

use crate::tr;

/// z for a cycle service level: the standard normal quantile (Acklam's rational approximation, relative
/// error below 1.2e-9): 0.95 -> 1.6449, 0.975 -> 1.9600, 0.99 -> 2.3263.
pub fn z_for(service_level: f64) -> f64 {
    let p = service_level.clamp(1e-9, 1.0 - 1e-9);
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.38357751867269e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// One product's stock position and ordering terms.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    pub on_hand: f64,
    pub on_order: f64,
    pub lead_time_days: f64,
    pub pack_size: f64,
    pub min_order: f64,
}

/// Policy settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub service_level: f64,
    pub review_days: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Nothing on hand.
    Out,
    /// Runs out before an order placed today arrives.
    BeforeDelivery,
    /// The last day to order falls within the review period.
    OrderThisWeek,
    Fine,
}

impl Urgency {
    pub fn label(self) -> &'static str {
        match self {
            Urgency::Out => "out of stock",
            Urgency::BeforeDelivery => "runs out before an order placed today arrives",
            Urgency::OrderThisWeek => "order this week",
            Urgency::Fine => "fine",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub safety_stock: f64,
    pub reorder_point: f64,
    pub order_up_to: f64,
    pub order_qty: f64,
    pub days_of_cover: Option<f64>,
    pub stockout_date: Option<NaiveDate>,
    pub last_order_date: Option<NaiveDate>,
    pub urgency: Urgency,
    pub reason: String,
}

fn round_up_to_pack(qty: f64, pack: f64, min_order: f64) -> f64 {
    if qty <= 0.0 {
        return 0.0;
    }
    let pack = if pack > 0.0 { pack } else { 1.0 };
    let packs = (qty / pack - 1e-9).ceil();
    let q = packs * pack;
    if q < min_order {
        (min_order / pack - 1e-9).ceil() * pack
    } else {
        q
    }
}

fn num(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// The suggestion for one product, as of `today`, from its daily forecast `d` and one-step sigma.
pub fn suggest(d: f64, sigma: f64, pos: Position, policy: Policy, today: NaiveDate) -> Suggestion {
    let z = z_for(policy.service_level);
    let (l, r) = (pos.lead_time_days.max(0.0), policy.review_days.max(0.0));
    let safety_stock = z * sigma * l.sqrt();
    let reorder_point = d * l + safety_stock;
    let order_up_to = d * (l + r) + z * sigma * (l + r).sqrt();
    let position = pos.on_hand + pos.on_order;
    let projected = position - d * r;
    let order_qty = if projected > reorder_point {
        0.0
    } else {
        round_up_to_pack(order_up_to - position, pos.pack_size, pos.min_order)
    };
    let cover = (d > 0.0).then(|| pos.on_hand.max(0.0) / d);
    let stockout = cover.map(|c| today + chrono::Days::new(c.floor().min(3650.0) as u64));
    // The last day to order: stockout minus lead time, or today when that day has already passed.
    let last_order = stockout.map(|s| (s - chrono::Days::new(l.ceil() as u64)).max(today));
    let urgency = if pos.on_hand <= 0.0 {
        Urgency::Out
    } else if cover.is_some_and(|c| c < l) {
        Urgency::BeforeDelivery
    } else if last_order.is_some_and(|lo| lo <= today + chrono::Days::new(r.ceil() as u64)) || order_qty > 0.0 {
        Urgency::OrderThisWeek
    } else {
        Urgency::Fine
    };
    let lead = tr!("restock.lead_time", days = num(l));
    let reason = match (urgency, stockout) {
        (Urgency::Out, _) => tr!("restock.reason_out", rate = num(d), lead = lead),
        (_, Some(s)) => tr!(
            "restock.reason_runs_out",
            rate = num(d),
            on_hand = num(pos.on_hand),
            on_order = if pos.on_order > 0.0 {
                tr!("restock.reason_on_order", on_order = num(pos.on_order))
            } else {
                String::new()
            },
            lead = lead,
            day = crate::i18n::day(s)
        ),
        (_, None) => tr!("restock.reason_no_sales", on_hand = num(pos.on_hand)),
    };
    Suggestion {
        safety_stock,
        reorder_point,
        order_up_to,
        order_qty,
        days_of_cover: cover,
        stockout_date: stockout,
        last_order_date: last_order,
        urgency,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_matches_the_reference_table() {
        for (p, z) in [
            (0.90, 1.2816),
            (0.95, 1.6449),
            (0.975, 1.9600),
            (0.98, 2.0537),
            (0.99, 2.3263),
        ] {
            assert!((z_for(p) - z).abs() < 5e-5, "{p}: {}", z_for(p));
        }
        assert!((z_for(0.5)).abs() < 1e-9);
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap() // a Monday
    }

    #[test]
    fn smooth_seller_by_hand() {
        // d = 4.2, sigma = 1, L = 3, R = 7, 95 %: SS = 1.6449 * sqrt 3 = 2.849; ROP = 12.6 + 2.849 = 15.449;
        // S = 42 + 1.6449 * sqrt 10 = 47.202. On hand 6: projected 6 - 29.4 < ROP -> order 47.202 - 6 =
        // 41.2, in packs of 12 -> 48. Cover 6 / 4.2 = 1.43 days < L: runs out before delivery, on Tuesday.
        let s = suggest(
            4.2,
            1.0,
            Position {
                on_hand: 6.0,
                on_order: 0.0,
                lead_time_days: 3.0,
                pack_size: 12.0,
                min_order: 12.0,
            },
            Policy {
                service_level: 0.95,
                review_days: 7.0,
            },
            day(),
        );
        assert!((s.safety_stock - 2.8490).abs() < 1e-3);
        assert!((s.reorder_point - 15.449).abs() < 1e-3);
        assert!((s.order_up_to - 47.2016).abs() < 1e-3);
        assert_eq!(s.order_qty, 48.0);
        assert_eq!(s.urgency, Urgency::BeforeDelivery);
        assert_eq!(s.stockout_date, NaiveDate::from_ymd_opt(2026, 11, 24));
        assert_eq!(
            s.reason,
            "sells 4.2 a day, 6 on hand, 3-day lead time: runs out Tue 2026-11-24"
        );
    }

    #[test]
    fn minimum_order_and_no_order_when_stock_suffices() {
        // d = 0.5, sigma 0: S = 0.5 * 10 = 5; on hand 2: order 3 -> pack 1 but minimum 10 -> 10.
        let pos = Position {
            on_hand: 2.0,
            on_order: 0.0,
            lead_time_days: 3.0,
            pack_size: 1.0,
            min_order: 10.0,
        };
        let policy = Policy {
            service_level: 0.95,
            review_days: 7.0,
        };
        assert_eq!(suggest(0.5, 0.0, pos, policy, day()).order_qty, 10.0);
        // 40 on hand: projected 40 - 3.5 = 36.5 > ROP 1.5: nothing to order, fine, 80 days of cover.
        let s = suggest(0.5, 0.0, Position { on_hand: 40.0, ..pos }, policy, day());
        assert_eq!(
            (s.order_qty, s.urgency, s.days_of_cover),
            (0.0, Urgency::Fine, Some(80.0))
        );
        // Pack rounding: need 13, packs of 6 -> 18.
        assert_eq!(round_up_to_pack(13.0, 6.0, 6.0), 18.0);
        assert_eq!(round_up_to_pack(12.0, 6.0, 6.0), 12.0);
    }

    #[test]
    fn out_of_stock_and_no_demand() {
        let pos = Position {
            on_hand: 0.0,
            on_order: 0.0,
            lead_time_days: 2.0,
            pack_size: 6.0,
            min_order: 6.0,
        };
        let policy = Policy {
            service_level: 0.95,
            review_days: 7.0,
        };
        let s = suggest(3.0, 1.0, pos, policy, day());
        assert_eq!(s.urgency, Urgency::Out);
        assert!(s.order_qty >= 27.0 && s.order_qty % 6.0 == 0.0);
        // A product with no demand in 60 days (forecast 0): no order, no stockout date.
        let s = suggest(0.0, 0.0, Position { on_hand: 5.0, ..pos }, policy, day());
        assert_eq!((s.order_qty, s.stockout_date, s.urgency), (0.0, None, Urgency::Fine));
        assert_eq!(s.reason, "no sales expected, 5 on hand");
    }
}
