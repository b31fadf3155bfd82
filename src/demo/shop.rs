//! The simulated coffee shop: a product catalogue with skewed popularity, a launch and a discontinuation;
//! customers who arrive through the year, buy at gamma-distributed Poisson rates thinned by weekday and
//! season, and may leave after each purchase (the BG/NBD story); orders with items, coupons, same-day
//! second charges, refunds and cancellations. Everything is drawn from one seeded ChaCha stream in a fixed
//! order, so a seed gives the same shop every time. Writers turn the orders into export files.

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma, Normal};

/// How a customer pays (and so which export the payment lands in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    WechatMerchant,
    AlipayMerchant,
    WechatPersonal,
    AlipayPersonal,
}

impl Channel {
    /// The store's `channel` value for this export.
    pub fn store_name(self) -> &'static str {
        match self {
            Channel::WechatMerchant => "wechat_pay",
            Channel::AlipayMerchant => "alipay",
            Channel::WechatPersonal => "wechat_personal",
            Channel::AlipayPersonal => "alipay_personal",
        }
    }
    pub const ALL: [Channel; 4] = [
        Channel::WechatMerchant,
        Channel::AlipayMerchant,
        Channel::WechatPersonal,
        Channel::AlipayPersonal,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Coffee,
    Tea,
    Food,
    Retail,
}

#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    pub name: &'static str,
    pub price_fen: i64,
    pub weight: f64,
    pub category: Category,
    /// Day index the product is first sold (launched mid-year) or stops (discontinued).
    pub from_day: u32,
    pub until_day: u32,
    /// Peak day-of-year of a seasonal product (autumn specials), if any.
    pub season_peak: Option<u32>,
    pub unit_cost_fen: i64,
    pub lead_time_days: u32,
    pub pack_size: u32,
    pub min_order: u32,
}

const CATALOGUE: &[(&str, i64, Category)] = &[
    ("拿铁", 2800, Category::Coffee),
    ("美式咖啡", 2200, Category::Coffee),
    ("燕麦拿铁", 3200, Category::Coffee),
    ("生椰拿铁", 3200, Category::Coffee),
    ("澳白", 3000, Category::Coffee),
    ("卡布奇诺", 2800, Category::Coffee),
    ("冷萃", 3000, Category::Coffee),
    ("可颂", 1600, Category::Food),
    ("摩卡", 3200, Category::Coffee),
    ("焦糖玛奇朵", 3200, Category::Coffee),
    ("Espresso", 1800, Category::Coffee),
    ("Flat White", 3000, Category::Coffee),
    ("抹茶拿铁", 3000, Category::Tea),
    ("三明治", 2600, Category::Food),
    ("柠檬茶", 2000, Category::Tea),
    ("肉桂卷", 1800, Category::Food),
    ("巧克力可颂", 1800, Category::Food),
    ("贝果", 1500, Category::Food),
    ("鸡肉卷", 2800, Category::Food),
    ("伯爵红茶", 2200, Category::Tea),
    ("热巧克力", 2600, Category::Tea),
    ("蓝莓玛芬", 1600, Category::Food),
    ("芝士蛋糕", 3200, Category::Food),
    ("提拉米苏", 3400, Category::Food),
    ("沙拉", 3200, Category::Food),
    ("橙C美式", 2800, Category::Coffee),
    ("海盐奶盖", 2600, Category::Tea),
    ("瓶装水", 500, Category::Retail),
    ("气泡水", 800, Category::Retail),
    ("曲奇", 1200, Category::Food),
    ("司康", 1400, Category::Food),
    ("香蕉蛋糕", 1800, Category::Food),
    ("挂耳咖啡 10包", 6800, Category::Retail),
    ("咖啡豆 250g", 9800, Category::Retail),
    ("随行杯", 12800, Category::Retail),
    ("马克杯", 8800, Category::Retail),
    ("椰青美式", 2800, Category::Coffee),
    ("桂花拿铁", 3200, Category::Coffee),
    ("南瓜拿铁", 3400, Category::Coffee),
    ("脏脏包", 1800, Category::Food),
];

/// The catalogue for a period of `days` days: popularity by a Zipf law (a few best sellers, a long tail),
/// 南瓜拿铁 launched two thirds in, 脏脏包 discontinued half way, 桂花拿铁 an autumn special.
pub fn products(days: u32) -> Vec<Product> {
    CATALOGUE
        .iter()
        .enumerate()
        .map(|(i, &(name, price_fen, category))| {
            let (from_day, until_day) = match name {
                "南瓜拿铁" => (days * 2 / 3, days),
                "脏脏包" => (0, days / 2),
                _ => (0, days),
            };
            let (lead_time_days, pack_size, min_order) = match category {
                Category::Coffee | Category::Tea => (3, 12, 12),
                Category::Food => (1, 6, 6),
                Category::Retail => (7, 10, 10),
            };
            Product {
                sku: format!("SKU{:03}", i + 1),
                name,
                price_fen,
                weight: 1.0 / (i as f64 + 1.0).powf(1.1),
                category,
                from_day,
                until_day,
                season_peak: (name == "桂花拿铁").then_some(270),
                unit_cost_fen: price_fen * 35 / 100,
                lead_time_days,
                pack_size,
                min_order,
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: u32,
    pub channel: Channel,
    /// Purchases per day while alive.
    pub rate: f64,
    /// Chance of leaving after each purchase.
    pub p_drop: f64,
    pub arrival_day: u32,
    /// Day of the last purchase before leaving, or `None` when still alive at the end.
    pub dropped_after_day: Option<u32>,
}

/// One visit of a customer: day index and second of the day.
#[derive(Debug, Clone, Copy)]
pub struct Visit {
    pub day: u32,
    pub secs: u32,
    pub customer: u32,
}

/// Shop-wide settings of a simulation.
#[derive(Debug, Clone)]
pub struct ShopParams {
    pub seed: u64,
    pub customers: u32,
    pub days: u32,
    pub start: NaiveDate,
}

/// Relative traffic by weekday, Monday first: weekends are busier.
const WEEKDAY: [f64; 7] = [0.9, 0.92, 0.95, 1.0, 1.08, 1.25, 1.15];

fn season(day_of_year: u32) -> f64 {
    // A gentle yearly drift: cooler months bring more hot-drink visits.
    1.0 + 0.12 * ((day_of_year as f64 - 15.0) / 365.0 * std::f64::consts::TAU).cos()
}

pub struct Shop {
    pub params: ShopParams,
    pub products: Vec<Product>,
    pub customers: Vec<Customer>,
    /// All visits, sorted by day, second, customer.
    pub visits: Vec<Visit>,
    pub rng: ChaCha8Rng,
}

impl Shop {
    pub fn simulate(params: ShopParams) -> Shop {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let products = products(params.days);
        let rate_dist = Gamma::<f64>::new(0.9, 0.11 / 0.9).expect("valid gamma");
        let drop_dist = Beta::<f64>::new(1.2, 14.0).expect("valid beta");
        let max_factor = WEEKDAY.iter().cloned().fold(0.0, f64::max) * 1.12;
        let mut customers = Vec::with_capacity(params.customers as usize);
        let mut visits = Vec::new();
        for id in 0..params.customers {
            let channel = match rng.random::<f64>() {
                x if x < 0.60 => Channel::WechatMerchant,
                x if x < 0.90 => Channel::AlipayMerchant,
                x if x < 0.96 => Channel::WechatPersonal,
                _ => Channel::AlipayPersonal,
            };
            let rate: f64 = rate_dist.sample(&mut rng).max(0.004);
            let p_drop: f64 = drop_dist.sample(&mut rng);
            let arrival_day = if rng.random::<f64>() < 0.35 {
                0
            } else {
                rng.random_range(0..params.days)
            };
            let mut c = Customer {
                id,
                channel,
                rate,
                p_drop,
                arrival_day,
                dropped_after_day: None,
            };
            let gap = Exp::new(rate * max_factor).expect("positive rate");
            let mut t = if arrival_day == 0 {
                gap.sample(&mut rng)
            } else {
                arrival_day as f64 + rng.random::<f64>() * 0.99
            };
            let mut first = true;
            while (t as u32) < params.days {
                let day = t as u32;
                let date = params.start + chrono::Days::new(day as u64);
                let factor = WEEKDAY[date.weekday().num_days_from_monday() as usize] * season(date.ordinal());
                if first || rng.random::<f64>() < factor / max_factor {
                    first = false;
                    visits.push(Visit {
                        day,
                        secs: visit_second(&mut rng),
                        customer: id,
                    });
                    if rng.random::<f64>() < p_drop {
                        c.dropped_after_day = Some(day);
                        break;
                    }
                }
                t += gap.sample(&mut rng);
            }
            customers.push(c);
        }
        visits.sort_by_key(|v| (v.day, v.secs, v.customer));
        Shop {
            params,
            products,
            customers,
            visits,
            rng,
        }
    }

    pub fn date(&self, day: u32) -> NaiveDate {
        self.params.start + chrono::Days::new(day as u64)
    }

    /// Picks an order's items for a visit at `secs` on `day`: 1-3 lines, quantities mostly 1.
    pub fn pick_items(&mut self, day: u32, secs: u32) -> Vec<(usize, u32)> {
        let hour = secs / 3600;
        let doy = self.date(day).ordinal();
        let weights: Vec<f64> = self
            .products
            .iter()
            .map(|p| {
                if day < p.from_day || day >= p.until_day {
                    return 0.0;
                }
                let hour_factor = match (p.category, hour) {
                    (Category::Food, 11..=13) => 2.2,
                    (Category::Food, 7..=9) => 1.4,
                    (Category::Coffee, 7..=10) => 1.5,
                    (Category::Tea, 14..=20) => 1.8,
                    _ => 1.0,
                };
                let season = p.season_peak.map_or(1.0, |peak| {
                    let d = (doy as f64 - peak as f64)
                        .abs()
                        .min(365.0 - (doy as f64 - peak as f64).abs());
                    (0.15 + 2.0 * (-d * d / (2.0 * 25.0 * 25.0)).exp()).min(2.5)
                });
                p.weight * hour_factor * season
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let lines = match self.rng.random::<f64>() {
            x if x < 0.62 => 1,
            x if x < 0.92 => 2,
            _ => 3,
        };
        let mut items: Vec<(usize, u32)> = Vec::with_capacity(lines);
        for _ in 0..lines {
            let mut x = self.rng.random::<f64>() * total;
            let mut pick = weights.len() - 1;
            for (i, w) in weights.iter().enumerate() {
                if x < *w {
                    pick = i;
                    break;
                }
                x -= w;
            }
            let qty = match self.rng.random::<f64>() {
                x if x < 0.9 => 1,
                x if x < 0.98 => 2,
                _ => 3,
            };
            match items.iter_mut().find(|(p, _)| *p == pick) {
                Some(line) => line.1 += qty,
                None => items.push((pick, qty)),
            }
        }
        items
    }
}

/// A second of the day with a morning and a lunch peak.
fn visit_second(rng: &mut ChaCha8Rng) -> u32 {
    let hours: f64 = match rng.random::<f64>() {
        x if x < 0.45 => Normal::new(8.9, 0.8).expect("valid").sample(rng),
        x if x < 0.80 => Normal::new(12.6, 0.8).expect("valid").sample(rng),
        _ => rng.random_range(14.0..19.5),
    };
    (hours.clamp(7.0, 21.49) * 3600.0) as u32
}
