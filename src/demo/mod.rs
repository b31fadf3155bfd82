//! `paylens demo`: simulate a coffee shop (shop.rs), write its exports in the real formats (writers.rs) into
//! `<out>/inbox`, with the ground truth in `<out>/truth`, then ingest them into `<out>/store` and print what
//! paylens found. The same seed and end date give byte-identical files.

pub mod shop;
pub mod writers;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};
use rand::Rng;

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::tr;
use shop::{Channel, Shop, ShopParams};
use writers::{BillEntry, PrivateEntry};

/// Resolved settings of a demo run.
#[derive(Debug, Clone)]
pub struct DemoParams {
    pub out: PathBuf,
    pub seed: u64,
    pub customers: u32,
    pub days: u32,
    pub scale: Option<u64>,
    /// Last day of the data (default: last Sunday).
    pub end: Option<NaiveDate>,
    pub ingest: bool,
}

impl DemoParams {
    pub fn from_args(a: &DemoArgs) -> Self {
        DemoParams {
            out: a.out.clone(),
            seed: a.seed,
            customers: a.customers,
            days: a.days,
            scale: a.scale,
            end: a.end,
            ingest: !a.no_ingest,
        }
    }
}

/// Transactions a customer makes on average at the default rates (measured on the default shop), used
/// to size `--scale`.
const TRANSACTIONS_PER_CUSTOMER: f64 = 10.5;

/// What generation wrote.
#[derive(Debug, Default)]
pub struct Generated {
    pub files: usize,
    pub payments: u64,
    pub refunds: u64,
    pub cancelled: u64,
    pub customers: u32,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

/// Per day and channel, what the store must end up holding.
#[derive(Debug, Default, Clone, Copy)]
struct DayTruth {
    payments: u64,
    payments_fen: i64,
    refunds: u64,
    refunds_fen: i64,
}

/// The last Sunday strictly before today (in the configured zone): a finished week.
pub fn last_sunday(cfg: &Config) -> NaiveDate {
    let today = Utc::now().with_timezone(&cfg.timezone).date_naive();
    let back = today.weekday().num_days_from_sunday().max(1) as u64;
    let back = if today.weekday() == Weekday::Sun { 7 } else { back };
    today - chrono::Days::new(back)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const SURNAMES: &[char] = &[
    '王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周', '徐', '孙', '马', '朱', '胡', '郭', '何', '林', '罗',
    '高',
];
const GIVEN: &[char] = &[
    '明', '华', '芳', '伟', '娜', '静', '磊', '洋', '艳', '勇', '军', '杰', '娟', '涛', '超', '霞',
];
const NICK_A: &[&str] = &[
    "快乐的",
    "安静的",
    "爱喝咖啡的",
    "小",
    "阿",
    "大",
    "Lucky",
    "Sunny",
    "momo",
    "橘子",
];
const NICK_B: &[&str] = &[
    "猫", "鱼", "强", "Lily", "豆豆", "小满", "Kevin", "花生", "西瓜", "阿杰", "月亮", "Coco",
];

/// The identity a customer shows in their channel's export: (buyer field, account field).
fn identity(seed: u64, c: &shop::Customer) -> (String, String) {
    let h = splitmix(seed ^ ((c.id as u64) << 20) ^ 0xC0FFEE);
    match c.channel {
        Channel::WechatMerchant => {
            const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut s = String::from("oUpF8u");
            let mut x = h;
            for i in 0..22 {
                if i == 10 {
                    x = splitmix(h ^ 0x5EED);
                }
                s.push(B64[(x & 63) as usize] as char);
                x >>= 6;
            }
            (s, String::new())
        }
        Channel::AlipayMerchant => {
            let surname = SURNAMES[(h % SURNAMES.len() as u64) as usize];
            let mobile = 130 + (h >> 8) % 60;
            (
                format!("*{surname}({mobile}****{:04})", (h >> 16) % 10_000),
                String::new(),
            )
        }
        Channel::WechatPersonal => {
            let a = NICK_A[(h % NICK_A.len() as u64) as usize];
            let b = NICK_B[((h >> 8) % NICK_B.len() as u64) as usize];
            (format!("{a}{b}{}", (h >> 16) % 100), String::new())
        }
        Channel::AlipayPersonal => {
            let g = GIVEN[(h % GIVEN.len() as u64) as usize];
            let mobile = 130 + (h >> 8) % 60;
            (format!("*{g}"), format!("{mobile}******{:02}", (h >> 16) % 100))
        }
    }
}

fn product_label(shop: &Shop, items: &[(usize, u32)]) -> String {
    let first = shop.products[items[0].0].name;
    let count: u32 = items.iter().map(|(_, q)| q).sum();
    if count > 1 {
        format!("{first}等{count}件")
    } else {
        first.to_string()
    }
}

fn at(date: NaiveDate, secs: u32) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).expect("midnight") + Duration::seconds(secs.min(86_399) as i64)
}

/// Writes the demo shop's exports and truth files. Returns what it wrote.
pub fn generate(p: &DemoParams, cfg: &Config) -> Result<Generated> {
    let end = p.end.unwrap_or_else(|| last_sunday(cfg));
    let days = p.days.max(7);
    let start = end - chrono::Days::new(days as u64 - 1);
    let customers = match p.scale {
        Some(rows) => ((rows as f64 / TRANSACTIONS_PER_CUSTOMER).ceil() as u32).max(10),
        None => p.customers.max(1),
    };
    let inbox = p.out.join("inbox");
    let truth_dir = p.out.join("truth");
    for d in [&inbox, &truth_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("clearing {}", d.display()))?;
        }
    }
    let mut shop = Shop::simulate(ShopParams {
        seed: p.seed,
        customers,
        days,
        start,
    });
    let idents: Vec<(String, String)> = shop.customers.iter().map(|c| identity(p.seed, c)).collect();
    let mut g = Generated {
        customers,
        start: Some(start),
        end: Some(end),
        ..Default::default()
    };
    let mut truth: BTreeMap<(NaiveDate, Channel), DayTruth> = BTreeMap::new();
    let mut cust_orders = vec![(0u32, 0i64); customers as usize];
    let mut pending: BTreeMap<u32, Vec<(Channel, BillEntry)>> = BTreeMap::new();
    let mut month: [Vec<BillEntry>; 4] = Default::default();
    let mut private: [Vec<PrivateEntry>; 2] = Default::default();
    let mut pos_rows = Vec::new();
    let mut units_last_28 = vec![0u64; shop.products.len()];
    let visits = std::mem::take(&mut shop.visits);
    let mut vi = 0;
    let mut seq: u64 = 0;
    let mut month_start = start;
    for day in 0..days {
        let date = shop.date(day);
        let ymd = date.format("%Y%m%d").to_string();
        let mut today: Vec<BillEntry> = Vec::new();
        for (ch, e) in pending.remove(&day).unwrap_or_default() {
            let t = truth.entry((date, ch)).or_default();
            t.refunds += 1;
            t.refunds_fen -= e.amount_fen;
            g.refunds += 1;
            match ch {
                Channel::WechatMerchant => today.push(e),
                _ => month[ch as usize].push(e),
            }
        }
        while vi < visits.len() && visits[vi].day == day {
            let v = visits[vi];
            vi += 1;
            let ch = shop.customers[v.customer as usize].channel;
            let charges = if shop.rng.random::<f64>() < 0.03 { 2 } else { 1 };
            let mut secs = v.secs;
            for _ in 0..charges {
                seq += 1;
                let items = shop.pick_items(day, secs);
                let amount: i64 = items.iter().map(|&(i, q)| shop.products[i].price_fen * q as i64).sum();
                let merchant = matches!(ch, Channel::WechatMerchant | Channel::AlipayMerchant);
                let coupon = if merchant && shop.rng.random::<f64>() < 0.04 {
                    (shop.rng.random_range(2..6) * 100).min(amount / 4)
                } else {
                    0
                };
                let cancelled = match ch {
                    Channel::WechatMerchant | Channel::AlipayPersonal => shop.rng.random::<f64>() < 0.004,
                    _ => false,
                };
                let time = at(date, secs);
                let (buyer, account) = idents[v.customer as usize].clone();
                let (tx_id, merchant_order_id) = match ch {
                    Channel::WechatMerchant => (format!("42000{ymd}{seq:015}"), format!("PL{ymd}{seq:08}")),
                    Channel::AlipayMerchant => (format!("{ymd}22001{seq:015}"), format!("PL{ymd}{seq:08}")),
                    Channel::WechatPersonal => (format!("10000500{ymd}{seq:016}"), format!("10001{ymd}{seq:012}")),
                    Channel::AlipayPersonal => (format!("{ymd}2200{seq:016}"), String::new()),
                };
                let mut entry = BillEntry {
                    time,
                    refund: false,
                    cancelled,
                    tx_id,
                    merchant_order_id,
                    refund_id: String::new(),
                    buyer,
                    buyer_account: account,
                    product: product_label(&shop, &items),
                    amount_fen: amount,
                    coupon_fen: coupon,
                    refunded_fen: 0,
                };
                if cancelled {
                    g.cancelled += 1;
                } else {
                    g.payments += 1;
                    let t = truth.entry((date, ch)).or_default();
                    t.payments += 1;
                    t.payments_fen += amount;
                    let c = &mut cust_orders[v.customer as usize];
                    c.0 += 1;
                    c.1 += amount;
                    for &(i, q) in &items {
                        if day + 28 >= days {
                            units_last_28[i] += q as u64;
                        }
                        if merchant {
                            let pr = &shop.products[i];
                            pos_rows.push((
                                entry.merchant_order_id.clone(),
                                pr.sku.clone(),
                                pr.name.to_string(),
                                q,
                                pr.price_fen,
                                time,
                            ));
                        }
                    }
                    if shop.rng.random::<f64>() < 0.015 {
                        let full = shop.rng.random::<f64>() < 0.7;
                        let part = if items.len() > 1 || items[0].1 > 1 {
                            shop.products[items[0].0].price_fen
                        } else {
                            amount / 2
                        };
                        let refund_fen = if full { amount } else { part.max(1) };
                        let personal = !merchant;
                        let delay = if personal || shop.rng.random::<f64>() < 0.7 {
                            0
                        } else {
                            shop.rng.random_range(1..4)
                        };
                        let rday = day + delay;
                        let rsecs = if delay == 0 {
                            (secs + shop.rng.random_range(300..1800)).min(86_399)
                        } else {
                            shop.rng.random_range(9 * 3600..20 * 3600)
                        };
                        if rday < days {
                            let mut r = entry.clone();
                            r.refund = true;
                            r.time = at(shop.date(rday), rsecs);
                            r.amount_fen = refund_fen;
                            r.refund_id = match ch {
                                Channel::WechatMerchant => format!("50300{ymd}{seq:016}"),
                                Channel::AlipayMerchant => format!("RF{ymd}{seq:010}"),
                                Channel::AlipayPersonal => {
                                    format!("{}_{}", entry.tx_id, seq % 1000 + 1000)
                                }
                                Channel::WechatPersonal => entry.tx_id.clone(),
                            };
                            if ch == Channel::AlipayPersonal {
                                r.tx_id = r.refund_id.clone();
                            }
                            if ch == Channel::WechatPersonal {
                                entry.refunded_fen = refund_fen;
                            }
                            pending.entry(rday).or_default().push((ch, r));
                        }
                    }
                }
                match ch {
                    Channel::WechatMerchant => today.push(entry),
                    _ => month[ch as usize].push(entry),
                }
                secs = (secs + shop.rng.random_range(60..1200)).min(86_399);
            }
        }
        // Refunds due today that were scheduled today.
        for (ch, e) in pending.remove(&day).unwrap_or_default() {
            let t = truth.entry((date, ch)).or_default();
            t.refunds += 1;
            t.refunds_fen -= e.amount_fen;
            g.refunds += 1;
            match ch {
                Channel::WechatMerchant => today.push(e),
                _ => month[ch as usize].push(e),
            }
        }
        add_private_rows(&mut shop, date, day, &mut private);
        today.sort_by(|a, b| a.time.cmp(&b.time).then(a.refund.cmp(&b.refund)));
        writers::wechat_merchant_day(
            &inbox.join(format!("wechat_merchant/ALL_{}_{}.csv", writers::WECHAT_MCH, date)),
            &today,
        )?;
        g.files += 1;
        let last_of_month = date.succ_opt().is_none_or(|n| n.month() != date.month()) || day + 1 == days;
        if last_of_month {
            g.files += write_month(&inbox, month_start, date, &mut month, &mut private, &mut pos_rows)?;
            month_start = date + chrono::Days::new(1);
        }
    }
    write_inventory(&inbox, &shop, end, &units_last_28)?;
    g.files += 1;
    write_truth(&truth_dir, &truth, &shop, &idents, &cust_orders, end)?;
    Ok(g)
}

/// The owner's own spending and private receipts on the personal accounts: not sales.
fn add_private_rows(shop: &mut Shop, date: NaiveDate, day: u32, private: &mut [Vec<PrivateEntry>; 2]) {
    let ymd = date.format("%Y%m%d").to_string();
    let mut add = |shop: &mut Shop, which: usize, kind, counterparty, item, income, lo: i64, hi: i64| {
        let secs = shop.rng.random_range(8 * 3600..22 * 3600);
        let amount = shop.rng.random_range(lo..hi);
        let tx = if which == 0 {
            format!("4200009{ymd}{:015}", day * 10 + private[which].len() as u32)
        } else {
            format!("{ymd}2000{:016}", day * 10 + private[which].len() as u32)
        };
        private[which].push(PrivateEntry {
            time: at(date, secs),
            kind,
            counterparty,
            item,
            income,
            amount_fen: amount,
            tx_id: tx,
        });
    };
    if shop.rng.random::<f64>() < 0.4 {
        add(shop, 0, "商户消费", "美团外卖", "外卖订单", false, 1500, 6000);
    }
    if shop.rng.random::<f64>() < 0.05 {
        add(shop, 0, "微信红包", "妈妈", "/", true, 2000, 20000);
    }
    if shop.rng.random::<f64>() < 0.02 {
        add(shop, 0, "转账", "供应商老陈", "/", false, 50000, 300000);
    }
    if shop.rng.random::<f64>() < 0.3 {
        add(shop, 1, "日用百货", "盒马鲜生", "牛奶 鸡蛋", false, 2000, 15000);
    }
    if shop.rng.random::<f64>() < 0.03 {
        add(shop, 1, "转账红包", "张伟", "转账", true, 10000, 50000);
    }
}

fn write_month(
    inbox: &Path,
    from: NaiveDate,
    to: NaiveDate,
    month: &mut [Vec<BillEntry>; 4],
    private: &mut [Vec<PrivateEntry>; 2],
    pos_rows: &mut Vec<(String, String, String, u32, i64, NaiveDateTime)>,
) -> Result<usize> {
    let ym = from.format("%Y%m").to_string();
    let next = to + chrono::Days::new(1);
    let mut files = 0;
    let alipay = std::mem::take(&mut month[Channel::AlipayMerchant as usize]);
    writers::alipay_merchant_month(
        &inbox.join(format!("alipay_merchant/{}_{ym}.csv.zip", writers::ALIPAY_ACCOUNT)),
        from,
        next,
        &alipay,
    )?;
    files += 1;
    let wp = std::mem::take(&mut month[Channel::WechatPersonal as usize]);
    let wp_private = std::mem::take(&mut private[0]);
    let numeric = from >= NaiveDate::from_ymd_opt(2026, 3, 1).expect("valid");
    writers::wechat_personal_month(
        &inbox.join(format!("wechat_personal/微信支付账单流水文件({ym}).xlsx")),
        from,
        to,
        &wp,
        &wp_private,
        numeric,
    )?;
    files += 1;
    let ap = std::mem::take(&mut month[Channel::AlipayPersonal as usize]);
    let ap_private = std::mem::take(&mut private[1]);
    let name = format!(
        "alipay_personal/支付宝交易明细({}-{}).csv",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    writers::alipay_personal_month(&inbox.join(name), from, to, &ap, &ap_private)?;
    files += 1;
    writers::pos_month(&inbox.join(format!("pos/line_items_{ym}.csv")), pos_rows)?;
    pos_rows.clear();
    files += 1;
    Ok(files)
}

fn write_inventory(inbox: &Path, shop: &Shop, end: NaiveDate, units_last_28: &[u64]) -> Result<()> {
    let rows: Vec<writers::InventoryLine> = shop
        .products
        .iter()
        .enumerate()
        .filter(|(_, p)| p.until_day >= shop.params.days)
        .map(|(i, p)| {
            let daily = units_last_28[i] as f64 / 28.0;
            // A few best sellers close to running out, a few slow items overstocked, the rest in between.
            let cover_days = match i {
                0 | 2 => 0.5,
                5 => 0.0,
                i if i % 7 == 3 => 75.0,
                i => 4.0 + (i % 5) as f64 * 3.0,
            };
            writers::InventoryLine {
                sku: p.sku.clone(),
                name: p.name,
                on_hand: (daily * cover_days).round() as u32,
                on_order: if i == 2 { p.pack_size } else { 0 },
                lead_time_days: p.lead_time_days,
                pack_size: p.pack_size,
                min_order: p.min_order,
                unit_cost_fen: p.unit_cost_fen,
                date: end,
            }
        })
        .collect();
    writers::inventory(&inbox.join(format!("inventory/inventory_{end}.csv")), &rows)
}

fn write_truth(
    dir: &Path,
    truth: &BTreeMap<(NaiveDate, Channel), DayTruth>,
    shop: &Shop,
    idents: &[(String, String)],
    orders: &[(u32, i64)],
    end: NaiveDate,
) -> Result<()> {
    let mut s = String::from("date,channel,payments,payments_fen,refunds,refunds_fen\n");
    for ((d, ch), t) in truth {
        let _ = writeln!(
            s,
            "{d},{},{},{},{},{}",
            ch.store_name(),
            t.payments,
            t.payments_fen,
            t.refunds,
            t.refunds_fen
        );
    }
    writers::write_text(&dir.join("daily.csv"), &s)?;
    let mut s = String::from(
        "customer_id,channel,identity,account,rate_per_day,p_drop,arrival_date,alive_at_end,payments,spend_fen\n",
    );
    for (c, (id, acct)) in shop.customers.iter().zip(idents) {
        let _ = writeln!(
            s,
            "{},{},{id},{acct},{:.5},{:.4},{},{},{},{}",
            c.id,
            c.channel.store_name(),
            c.rate,
            c.p_drop,
            shop.date(c.arrival_day),
            c.dropped_after_day.is_none(),
            orders[c.id as usize].0,
            orders[c.id as usize].1
        );
    }
    writers::write_text(&dir.join("customers.csv"), &s)?;
    writers::write_text(&dir.join("README.txt"), &format!(
        "Ground truth of the demo shop ending {end}.\ndaily.csv: per local day and store channel, the payments and refunds (refunds_fen negative) the store must hold.\ncustomers.csv: every simulated customer, their channel, identity as exported, purchase rate, drop-out chance, arrival and whether still alive at the end.\n"
    ))
}

/// Starts the demo store afresh, with a secret derived from the seed: the demo's data is synthetic, and a
/// seed then gives the same customer keys and the same store files every time.
fn prepare_demo_store(store: &Path, seed: u64) -> Result<()> {
    if store.exists() {
        std::fs::remove_dir_all(store).with_context(|| format!("clearing the demo store {}", store.display()))?;
    }
    std::fs::create_dir_all(store)?;
    let secret: Vec<u8> = (0..4u64)
        .flat_map(|i| splitmix(seed ^ 0xDE30_5EC2 ^ (i << 56)).to_le_bytes())
        .collect();
    crate::privacy::create_secret(&store.join(crate::store::SECRET), &secret)
}

/// Generates, ingests and summarises.
pub fn run(p: &DemoParams, cfg: &Config) -> Result<()> {
    let t0 = Instant::now();
    let g = generate(p, cfg)?;
    let gen_secs = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        tr!(
            "demo.shop",
            customers = g.customers,
            from = g.start.map_or(String::new(), crate::i18n::date),
            to = g.end.map_or(String::new(), crate::i18n::date),
            seed = p.seed
        )
    );
    println!(
        "  {}",
        tr!(
            "demo.wrote",
            files = g.files,
            payments = g.payments,
            refunds = g.refunds,
            cancelled = g.cancelled,
            folder = p.out.join("inbox").display(),
            secs = format!("{gen_secs:.1}")
        )
    );
    if !p.ingest {
        return Ok(());
    }
    let store_cfg = cfg.with_store(p.out.join("store"));
    prepare_demo_store(&store_cfg.store, p.seed)?;
    let t1 = Instant::now();
    let params = crate::ingest::IngestParams {
        paths: vec![p.out.join("inbox")],
        strict: false,
        json: false,
        quiet: true,
    };
    let outcome = crate::ingest::run(&params, &store_cfg)?;
    let rejected: u64 = outcome.files.iter().map(|f| f.rejected).sum();
    let mismatched = outcome.files.iter().filter(|f| f.reconciled == Some(false)).count();
    let refused = outcome.refused();
    println!(
        "  {}",
        tr!(
            "demo.ingested",
            files = outcome.files.len(),
            store = store_cfg.store.display(),
            secs = format!("{:.1}", t1.elapsed().as_secs_f64()),
            events = outcome.new_events,
            rejected = rejected,
            mismatched = mismatched,
            refused = refused
        )
    );
    let s = crate::status::summarise(&store_cfg)?;
    println!(
        "  {}",
        tr!(
            "demo.store",
            payments = s.payments,
            payments_money = crate::i18n::money_fen(s.payments_fen),
            refunds = s.refunds,
            refunds_money = crate::i18n::money_fen(s.refunds_fen.abs()),
            strong = s.customers_strong,
            weak = s.customers_weak
        )
    );
    let t2 = Instant::now();
    let analysis_cfg = Config {
        reports: p.out.join("reports"),
        ..store_cfg.clone()
    };
    let folder = crate::report::run(None, &analysis_cfg, true)?;
    println!(
        "  {}",
        tr!(
            "demo.analysed",
            secs = format!("{:.1}", t2.elapsed().as_secs_f64()),
            folder = folder.display()
        )
    );
    println!("  {}", tr!("demo.truth", folder = p.out.join("truth").display()));
    println!(
        "  {}",
        tr!(
            "demo.done",
            secs = format!("{:.1}", t0.elapsed().as_secs_f64()),
            path = folder.join("report.html").display()
        )
    );
    Ok(())
}
