//! The customer analytics' inputs from the events in one pass and a bucket sort: the purchase occasions
//! on dense customer codes, each customer's favourite product, net sales by day and key quality for the
//! coverage rows, and the weekly KPIs' sums. The definitions are the Polars ones in `occasions` (payments
//! netted with their refunds, occasions per customer and day), `targets::favourite_products_of` and
//! `kpis::weekly_sums`; tests check this pass against them.
//!
//! 10M payments carry about a million customer keys, too many for a hash table keyed by customer to stay in
//! the cache: each payment is bucketed by its key's leading bits instead (a counting sort that keeps input
//! order), and each bucket, a few thousand payments, is sorted by key and day on its own. The codes come
//! out in key order, so a sort by code is a sort by key. The events are taken a store file at a time
//! ([`Builder::add`]), so that the whole store is never one frame.

use std::collections::HashMap;
use std::hash::BuildHasher;

use anyhow::Result;
use foldhash::fast::RandomState;
use polars::prelude::*;
use polars_arrow::array::{Array, PrimitiveArray, Utf8ViewArray, View};

/// What [`from_events`] gives.
pub struct Inputs {
    /// One row per customer and day with a purchase, sorted by customer and day: customer_key (UInt32
    /// code), day, quality (of the day's first payment), net_fen, charges.
    pub occasions: DataFrame,
    /// customer_key (code) and favourite_product: the product bought most often (fully refunded payments
    /// count), ties alphabetical.
    pub favourites: DataFrame,
    /// Net sales of payments with something left after refunds, keyless ones too: day,
    /// customer_key_quality, net_fen, for `occasions::key_coverage_from_net`.
    pub net_by_day: DataFrame,
    /// The customer keys by code, for `occasions::restore_keys`.
    pub keys: Vec<String>,
    /// With [`Builder::count_weeks_from`]: `kpis::weekly_sums` of the events.
    pub weekly_sums: Option<DataFrame>,
    /// With [`Builder::fold_bill_sales`]: the bill sales per label and day, for
    /// `velocity::daily_units_given`.
    pub bill_sales: Option<DataFrame>,
}

/// One payment with a customer key, as bucketed.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// A store key as the number its 32 hex digits spell, or (when some key is not) the key's number in
    /// `Builder::text`.
    key: u128,
    /// Net of refunds; `i64::MIN` for a payment without an amount.
    net: i64,
    day: i32,
    /// The (quality, product label, channel) triple's number in `Builder::pairs`.
    tag: u32,
}

const BUCKET_BITS: u32 = 11;

/// Payments from which [`Builder::finish`] takes the customers on two threads (fewer in unit tests, so
/// that their random events, a few thousand payments, take both ways).
const TWO_THREADS_FROM: usize = if cfg!(test) { 1 << 10 } else { 1 << 16 };

/// Small values numbered in order of first appearance.
struct Interner<T> {
    number: HashMap<T, u32, RandomState>,
    values: Vec<T>,
}

impl<T: std::hash::Hash + Eq + Copy> Interner<T> {
    fn new() -> Self {
        Interner {
            number: HashMap::default(),
            values: Vec::new(),
        }
    }

    fn of(&mut self, v: T) -> u32 {
        *self.number.entry(v).or_insert_with(|| {
            self.values.push(v);
            self.values.len() as u32 - 1
        })
    }
}

/// Texts (or their absence) numbered in order of first appearance, kept across the parts of the events.
#[derive(Default)]
pub(super) struct Texts {
    number: HashMap<String, u32, RandomState>,
    missing: Option<u32>,
    values: Vec<Option<String>>,
}

impl Texts {
    pub(super) fn of(&mut self, v: Option<&str>) -> u32 {
        let next = self.values.len() as u32;
        let code = match v {
            Some(v) => match self.number.get(v) {
                Some(&c) => return c,
                None => *self.number.entry(v.to_string()).or_insert(next),
            },
            None => *self.missing.get_or_insert(next),
        };
        if code == next {
            self.values.push(v.map(str::to_string));
        }
        code
    }

    pub(super) fn get(&self, code: u32) -> Option<&str> {
        self.values[code as usize].as_deref()
    }
}

/// A set of hashes that may answer yes wrongly (about one in 14), never no wrongly.
struct Bits {
    words: Vec<u64>,
    mask: u64,
}

impl Bits {
    fn of<'a, S: BuildHasher>(values: impl ExactSizeIterator<Item = &'a String>, hasher: &S) -> Bits {
        let bits = (values.len() * 8).next_power_of_two().max(1 << 12);
        let mut b = Bits {
            words: vec![0; bits / 64],
            mask: bits as u64 - 1,
        };
        for v in values {
            let h = hasher.hash_one(v.as_str()) & b.mask;
            b.words[(h / 64) as usize] |= 1 << (h % 64);
        }
        b
    }

    fn has(&self, hash: u64) -> bool {
        let h = hash & self.mask;
        self.words[(h / 64) as usize] & (1 << (h % 64)) != 0
    }
}

/// What the refunds gave back per payment: their sum (negative fen) and the day of the last one, looked
/// up by the payment's event id.
pub(super) struct RefundsByPayment {
    by_id: HashMap<String, Refunded, RandomState>,
    /// A bit per hash of the refunded payments' ids: most payments have no refund, and the bits (a few
    /// hundred KB) answer for them from the cache where the table (megabytes) would not.
    maybe: Bits,
}

/// A payment's refunds summed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Refunded {
    pub fen: i64,
    /// The last refund's day (none if no refund had one).
    pub last_day: Option<i32>,
}

impl RefundsByPayment {
    /// From a row per refund ([`refunds`]: payment_event_id, amount_fen, day). Rows without an id or an
    /// amount count for nothing, as in a Polars sum grouped by id.
    pub(super) fn new(refunds: &DataFrame) -> Result<RefundsByPayment> {
        let mut by_id: HashMap<String, Refunded, RandomState> = HashMap::default();
        let ids = refunds.column("payment_event_id")?.str()?;
        let amounts = refunds.column("amount_fen")?.i64()?;
        let days = refunds.column("day")?.i32()?;
        for ((p, a), day) in ids.iter().zip(amounts.iter()).zip(days.iter()) {
            let Some(p) = p else { continue };
            let r = match by_id.get_mut(p) {
                Some(r) => r,
                None => by_id
                    .entry(p.to_string())
                    .or_insert(Refunded { fen: 0, last_day: None }),
            };
            r.fen += a.unwrap_or(0);
            r.last_day = r.last_day.max(day);
        }
        let maybe = Bits::of(by_id.keys(), by_id.hasher());
        Ok(RefundsByPayment { by_id, maybe })
    }

    /// The refunds of the payment with this event id, if it has any.
    #[inline]
    pub(super) fn of(&self, id: &str) -> Option<Refunded> {
        if !self.maybe.has(self.by_id.hasher().hash_one(id)) {
            return None;
        }
        self.by_id.get(id).copied()
    }
}

/// A cell's view, u128::MAX for a missing one (no view is: its length would be 4 GiB).
#[inline]
pub(super) fn view_of(texts: &Utf8ViewArray, i: usize) -> u128 {
    if texts.is_valid(i) {
        texts.views()[i].as_u128()
    } else {
        u128::MAX
    }
}

/// What was worked out from a row's cells, kept by the cells' views for the rows after: equal views in
/// one array are equal texts, and a dictionary-encoded column gives each distinct text one view. Bounded:
/// a column written without a dictionary gives every row its own view.
pub(super) struct ByViews<K, V> {
    known: HashMap<K, V, RandomState>,
}

impl<K: std::hash::Hash + Eq, V: Copy> ByViews<K, V> {
    pub(super) fn new() -> Self {
        ByViews {
            known: HashMap::default(),
        }
    }

    pub(super) fn get_or(&mut self, views: K, work_out: impl FnOnce() -> V) -> V {
        if let Some(&v) = self.known.get(&views) {
            return v;
        }
        let v = work_out();
        if self.known.len() < 1 << 12 {
            self.known.insert(views, v);
        }
        v
    }
}

/// The refunds among `events`, as [`Builder::new`] takes them (payment_event_id, amount_fen, day).
pub fn refunds(events: LazyFrame) -> LazyFrame {
    events
        .filter(col("kind").eq(lit("refund")))
        .select([col("payment_event_id"), col("amount_fen"), col("day")])
}

/// The inputs built a part of the events at a time: [`Builder::add`] each part, then [`Builder::finish`].
pub struct Builder {
    /// The as-of day: later events are passed over.
    as_of: i32,
    refunded: RefundsByPayment,
    /// Set once a key that is not 32 hex digits is seen: from then on every key is numbered as text.
    text: Option<Texts>,
    /// The payments with a key, in input order.
    slots: Vec<Slot>,
    qualities: Texts,
    labels: Texts,
    pairs: Interner<(u32, u32, u32)>,
    net_by_day: HashMap<(i32, u32), i64, RandomState>,
    /// The first week summed for the weekly KPIs, if they are asked for.
    weeks_from: Option<i32>,
    channels: Texts,
    /// Per week and channel from `weeks_from` on.
    week_sums: HashMap<(i32, u32), WeekSums, RandomState>,
    /// With [`Builder::fold_bill_sales`]: the payments' bill sales, as restock's velocity folds them (labels
    /// by their numbers in `labels`).
    bill_sales: Option<super::velocity::BillSales>,
}

/// One week's and channel's events summed, as `kpis::weekly_sums` sums them.
#[derive(Default, Clone, Copy)]
struct WeekSums {
    orders: i64,
    payments_fen: i64,
    refunds: i64,
    refunds_fen: i64,
    fees_millifen: i64,
    customers: i64,
}

impl Builder {
    /// A builder that nets payments with `refunds` ([`refunds`] of every event up to the as-of date) and
    /// passes over events after `as_of` (a day number).
    pub fn new(refunds: &DataFrame, as_of: i32) -> Result<Builder> {
        let refunded = RefundsByPayment::new(refunds)?;
        Ok(Builder {
            as_of,
            refunded,
            text: None,
            slots: Vec::new(),
            qualities: Texts::default(),
            labels: Texts::default(),
            pairs: Interner::new(),
            net_by_day: HashMap::default(),
            weeks_from: None,
            channels: Texts::default(),
            week_sums: HashMap::default(),
            bill_sales: None,
        })
    }

    /// Folds the payments' bill sales on the way, as `velocity::daily_units` would read and fold them
    /// (`Inputs::bill_sales`): the report's restock thread takes them from here instead of reading every
    /// payment again.
    pub fn fold_bill_sales(&mut self) {
        self.bill_sales = Some(super::velocity::BillSales::default());
    }

    /// Sums the events of the weeks from `first` (`kpis::first_week`) as `kpis::weekly_sums` does: the
    /// parts then need the columns channel and fee_millifen too.
    pub fn count_weeks_from(&mut self, first: i32) {
        self.weeks_from = Some(first);
    }

    /// Room for `payments` payments with a key (a hint: more or fewer are fine), so that the payments'
    /// table is not copied as it grows.
    pub fn reserve(&mut self, payments: usize) {
        self.slots.reserve(payments.saturating_sub(self.slots.len()));
    }

    /// One part of the events (columns event_id, kind, day, customer_key, customer_key_quality,
    /// amount_fen, product_name; channel and fee_millifen when weeks are counted); rows after the as-of
    /// day are passed over, and rows other than payments but for the weekly sums.
    pub fn add(&mut self, events: &DataFrame) -> Result<()> {
        let mut events = events.clone();
        events.align_chunks_par();
        let text =
            |name: &str| -> Result<Vec<&Utf8ViewArray>> { Ok(events.column(name)?.str()?.downcast_iter().collect()) };
        let int64 = |name: &str| -> Result<Vec<&PrimitiveArray<i64>>> {
            Ok(events.column(name)?.i64()?.downcast_iter().collect())
        };
        let (kinds, ids, keys) = (text("kind")?, text("event_id")?, text("customer_key")?);
        let (qualities, names) = (text("customer_key_quality")?, text("product_name")?);
        let days: Vec<&PrimitiveArray<i32>> = events.column("day")?.i32()?.downcast_iter().collect();
        let amounts = int64("amount_fen")?;
        let (channels, fees) = match self.weeks_from {
            Some(_) => (Some(text("channel")?), Some(int64("fee_millifen")?)),
            None => (None, None),
        };
        let payment = View::new_from_bytes(b"payment", 0, 0).as_u128();
        let refund = View::new_from_bytes(b"refund", 0, 0).as_u128();
        for c in 0..kinds.len() {
            let (kind, id, key, quality, name) = (kinds[c], ids[c], keys[c], qualities[c], names[c]);
            let (day, amount) = (days[c], amounts[c]);
            let (channel, fee) = (channels.as_ref().map(|a| a[c]), fees.as_ref().map(|a| a[c]));
            // A row's (quality, product, channel) and its channel alone, by the cells' views.
            let mut triple_of_views = ByViews::new();
            let mut channel_of_view = ByViews::new();
            for i in 0..kind.len() {
                if !day.is_valid(i) {
                    continue;
                }
                let d = day.value(i);
                if d > self.as_of {
                    continue;
                }
                let kind_view = view_of(kind, i);
                if let (Some(first), Some(channel), Some(fee)) = (self.weeks_from, channel, fee) {
                    let week = super::retention::week_of(d);
                    if week >= first {
                        let ch = channel_of_view.get_or(view_of(channel, i), || self.channels.of(channel.get(i)));
                        let sums = self.week_sums.entry((week, ch)).or_default();
                        let fen = amount.get(i).unwrap_or(0);
                        if kind_view == payment {
                            sums.orders += 1;
                            sums.payments_fen += fen;
                        } else if kind_view == refund {
                            sums.refunds += 1;
                            sums.refunds_fen += fen;
                        }
                        sums.fees_millifen += fee.get(i).unwrap_or(0);
                    }
                }
                if kind_view != payment {
                    continue;
                }
                let refunded = id.is_valid(i).then(|| id.value(i)).and_then(|id| self.refunded.of(id));
                let back = refunded.map_or(0, |r| r.fen);
                // The key's text is read a few rows ahead: in a dictionary-encoded column the rows' texts
                // are all over the dictionary, and each would be a wait for memory.
                crate::prefetch::prefetch_text(key, i + crate::prefetch::TEXTS_AHEAD);
                let net = amount.is_valid(i).then(|| amount.value(i) + back);
                let views = (
                    view_of(quality, i),
                    view_of(name, i),
                    channel.map_or(u128::MAX, |ch| view_of(ch, i)),
                );
                let (q, tag) = triple_of_views.get_or(views, || {
                    let q = self.qualities.of(quality.get(i));
                    let label = self.labels.of(name.get(i));
                    let ch = self.channels.of(channel.and_then(|ch| ch.get(i)));
                    (q, self.pairs.of((q, label, ch)))
                });
                if let Some(sales) = self.bill_sales.as_mut().filter(|_| name.is_valid(i)) {
                    let label = self.pairs.values[tag as usize].1;
                    sales.payment(label, d, amount.get(i), refunded);
                }
                if let Some(n) = net.filter(|&n| n > 0) {
                    *self.net_by_day.entry((d, q)).or_default() += n;
                }
                if key.is_valid(i) {
                    let slot = Slot {
                        key: self.key_id(key.value(i)),
                        net: net.unwrap_or(i64::MIN),
                        day: d,
                        tag,
                    };
                    self.slots.push(slot);
                }
            }
        }
        Ok(())
    }

    fn key_id(&mut self, k: &str) -> u128 {
        if self.text.is_none() {
            if let Some(id) = super::occasions::hex_key(k) {
                return id;
            }
            // The keys so far were all hex: number them as text too.
            let mut text = Texts::default();
            for s in &mut self.slots {
                s.key = u128::from(text.of(Some(&format!("{:032x}", s.key))));
            }
            self.text = Some(text);
        }
        u128::from(self.text.as_mut().expect("set above").of(Some(k)))
    }

    pub fn finish(self) -> Result<Inputs> {
        let Builder {
            text,
            mut slots,
            qualities,
            labels,
            pairs,
            net_by_day,
            weeks_from,
            channels,
            mut week_sums,
            bill_sales,
            ..
        } = self;
        // Text keys renumbered in key order; `key_text` gives a slot key's text.
        let (shift, texts) = match text {
            None => (128 - BUCKET_BITS, None),
            Some(t) => {
                let mut order: Vec<u32> = (0..t.values.len() as u32).collect();
                order.sort_unstable_by_key(|&c| t.get(c));
                let mut rank = vec![0u32; order.len()];
                for (r, &c) in order.iter().enumerate() {
                    rank[c as usize] = r as u32;
                }
                for s in &mut slots {
                    s.key = u128::from(rank[s.key as usize]);
                }
                let texts: Vec<String> = order
                    .iter()
                    .map(|&c| t.get(c).unwrap_or_default().to_string())
                    .collect();
                let bits = 128 - (texts.len() as u128).leading_zeros();
                (bits.saturating_sub(BUCKET_BITS), Some(texts))
            }
        };
        let key_text = |id: u128| match &texts {
            None => format!("{id:032x}"),
            Some(t) => t[id as usize].clone(),
        };

        let mut phase = crate::timings::Phases::from_env();
        phase.mark("finish: buckets");
        // The payments into buckets by the keys' leading bits, in input order (a counting sort).
        let bucket = |s: &Slot| (s.key >> shift) as usize;
        let mut start = vec![0usize; (1 << BUCKET_BITS) + 1];
        for s in &slots {
            start[bucket(s) + 1] += 1;
        }
        for b in 1..start.len() {
            start[b] += start[b - 1];
        }
        let mut bucketed = vec![Slot::default(); slots.len()];
        let mut next = start.clone();
        for s in &slots {
            let b = bucket(s);
            bucketed[next[b]] = *s;
            next[b] += 1;
        }
        drop(slots);

        // Each label folded into its product; products ranked alphabetically, so that the smallest rank
        // among the most bought is the alphabetical tie-break.
        let (rank, products) = product_ranks(&labels.values)?;
        let pair_rank: Vec<Option<u32>> = pairs.values.iter().map(|&(_, l, _)| rank[l as usize]).collect();

        // The customers of each bucket in turn, in key order; on two threads, each taking the buckets of
        // about half the payments, once there are enough of them to be worth a thread (the second half's
        // codes follow the first's).
        phase.mark("finish: customers");
        let work = Customers {
            key_text: &key_text,
            pair_rank: &pair_rank,
            products: &products,
            pairs: &pairs.values,
            weeks_from,
        };
        let half = bucketed.len() / 2;
        let mid = if bucketed.len() >= TWO_THREADS_FROM {
            start.partition_point(|&s| s < half)
        } else {
            start.len() - 1
        };
        let payments = bucketed.len();
        let (low, high) = bucketed.split_at_mut(start[mid]);
        let (mut all, later) = std::thread::scope(|scope| {
            let later = scope.spawn(|| work.of(high, &start[mid..], high.len()));
            // Room for the later ones too, appended to these.
            let first = work.of(low, &start[..=mid], payments);
            (first, later.join())
        });
        all.append(later.map_err(|_| anyhow::anyhow!("an occasions thread panicked"))?);
        let CustomersDone {
            occ,
            fav_keys,
            fav_products,
            by_code,
            customer_weeks,
        } = all;

        phase.mark("finish: frames");
        let mut by_day: Vec<((i32, u32), i64)> = net_by_day.into_iter().collect();
        by_day.sort_unstable();
        let net_by_day = df!(
            "day" => by_day.iter().map(|((d, _), _)| *d).collect::<Vec<_>>(),
            "customer_key_quality" => by_day.iter().map(|((_, q), _)| qualities.get(*q)).collect::<Vec<_>>(),
            "net_fen" => by_day.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        )?;
        let weekly_sums = match weeks_from {
            None => None,
            Some(_) => {
                // The all-channel rows: every channel's sums added, customers counted once a week.
                let per_channel: Vec<((i32, u32), WeekSums)> = week_sums.iter().map(|(k, v)| (*k, *v)).collect();
                for ((week, _), s) in per_channel {
                    let all = week_sums.entry((week, ALL)).or_default();
                    all.orders += s.orders;
                    all.payments_fen += s.payments_fen;
                    all.refunds += s.refunds;
                    all.refunds_fen += s.refunds_fen;
                    all.fees_millifen += s.fees_millifen;
                }
                for (k, n) in customer_weeks {
                    week_sums.entry(k).or_default().customers = n;
                }
                let mut rows: Vec<((i32, u32), WeekSums)> = week_sums.into_iter().collect();
                rows.sort_unstable_by_key(|(k, _)| *k);
                let channel = |c: u32| if c == ALL { Some("all") } else { channels.get(c) };
                let col = |f: fn(&WeekSums) -> i64| rows.iter().map(|(_, s)| f(s)).collect::<Vec<i64>>();
                Some(df!(
                    "week" => rows.iter().map(|((w, _), _)| *w).collect::<Vec<i32>>(),
                    "channel" => rows.iter().map(|((_, c), _)| channel(*c)).collect::<Vec<_>>(),
                    "orders" => col(|s| s.orders),
                    "payments_fen" => col(|s| s.payments_fen),
                    "refunds" => col(|s| s.refunds),
                    "refunds_fen" => col(|s| s.refunds_fen),
                    "fees_millifen" => col(|s| s.fees_millifen),
                    "customers" => col(|s| s.customers),
                )?)
            }
        };
        Ok(Inputs {
            occasions: occ.frame(&qualities.values)?,
            favourites: df!("customer_key" => fav_keys, "favourite_product" => fav_products)?,
            net_by_day,
            keys: by_code,
            weekly_sums,
            bill_sales: bill_sales.map(|s| s.into_frame(&labels)).transpose()?,
        })
    }
}

#[cfg(test)]
/// The inputs from events up to the as-of date in one frame (columns event_id, kind, day, customer_key,
/// customer_key_quality, amount_fen, payment_event_id, product_name).
pub fn from_events(events: &DataFrame) -> Result<Inputs> {
    let refunds = refunds(events.clone().lazy()).collect()?;
    let mut b = Builder::new(&refunds, i32::MAX)?;
    b.add(events)?;
    b.finish()
}

/// What [`Builder::finish`] needs to turn bucketed payments into customers.
struct Customers<'a, F: Fn(u128) -> String + Sync> {
    key_text: &'a F,
    /// A (quality, label, channel) triple's product rank.
    pair_rank: &'a [Option<u32>],
    products: &'a [String],
    pairs: &'a [(u32, u32, u32)],
    weeks_from: Option<i32>,
}

/// The customers of a run of buckets, coded from 0 in key order.
struct CustomersDone<'a> {
    occ: OccasionColumns,
    fav_keys: Vec<u32>,
    fav_products: Vec<&'a str>,
    by_code: Vec<String>,
    /// Customers with a payment per (week, channel), `ALL` for any channel.
    customer_weeks: HashMap<(i32, u32), i64, RandomState>,
}

/// The channel of the weekly customer counts that stands for any channel.
const ALL: u32 = u32::MAX;

impl<'a, F: Fn(u128) -> String + Sync> Customers<'a, F> {
    /// The customers of the buckets whose payments are `bucketed`, bucket b being
    /// `bucketed[start[b] - start[0]..start[b + 1] - start[0]]`, with room for the occasions of `room`
    /// payments (at most an occasion a payment: room for all, and the columns are not copied as they grow).
    fn of(&self, bucketed: &mut [Slot], start: &[usize], room: usize) -> CustomersDone<'a> {
        let mut occ = OccasionColumns::with_capacity(room);
        let (mut fav_keys, mut fav_products) = (Vec::new(), Vec::new());
        let mut by_code: Vec<String> = Vec::new();
        let mut bought: Vec<u32> = Vec::new();
        // Each customer's weeks and channels with a payment, for the weekly customer counts.
        let mut customer_weeks: HashMap<(i32, u32), i64, RandomState> = HashMap::default();
        let mut seen: Vec<(i32, u32)> = Vec::new();
        let base = start[0];
        for w in start.windows(2) {
            let run = &mut bucketed[w[0] - base..w[1] - base];
            run.sort_by_key(|s| (s.key, s.day));
            let mut a = 0;
            while a < run.len() {
                let b = a + run[a..].partition_point(|s| s.key == run[a].key);
                let code = by_code.len() as u32;
                by_code.push((self.key_text)(run[a].key));
                let customer = &run[a..b];
                bought.clear();
                bought.extend(customer.iter().filter_map(|s| self.pair_rank[s.tag as usize]));
                if let Some(best) = most_common_smallest(&mut bought) {
                    fav_keys.push(code);
                    fav_products.push(self.products[best as usize].as_str());
                }
                occ.push_customer(code, customer, |tag| self.pairs[tag as usize].0);
                if let Some(first) = self.weeks_from {
                    seen.clear();
                    for s in customer {
                        let week = super::retention::week_of(s.day);
                        if week >= first {
                            seen.extend([(week, self.pairs[s.tag as usize].2), (week, ALL)]);
                        }
                    }
                    seen.sort_unstable();
                    seen.dedup();
                    for wc in &seen {
                        *customer_weeks.entry(*wc).or_default() += 1;
                    }
                }
                a = b;
            }
        }
        CustomersDone {
            occ,
            fav_keys,
            fav_products,
            by_code,
            customer_weeks,
        }
    }
}

impl CustomersDone<'_> {
    /// Adds the customers of the buckets after these, their codes following these codes.
    fn append(&mut self, later: Self) {
        let offset = self.by_code.len() as u32;
        self.occ.key.extend(later.occ.key.iter().map(|k| k + offset));
        self.occ.day.extend_from_slice(&later.occ.day);
        self.occ.quality.extend_from_slice(&later.occ.quality);
        self.occ.net.extend_from_slice(&later.occ.net);
        self.occ.charges.extend_from_slice(&later.occ.charges);
        self.fav_keys.extend(later.fav_keys.iter().map(|k| k + offset));
        self.fav_products.extend(later.fav_products);
        self.by_code.extend(later.by_code);
        for (k, n) in later.customer_weeks {
            *self.customer_weeks.entry(k).or_default() += n;
        }
    }
}

/// Occasions as they are built, customer by customer.
struct OccasionColumns {
    key: Vec<u32>,
    day: Vec<i32>,
    /// The quality's number in `Builder::qualities`.
    quality: Vec<IdxSize>,
    net: Vec<i64>,
    charges: Vec<u32>,
}

impl OccasionColumns {
    fn with_capacity(n: usize) -> OccasionColumns {
        OccasionColumns {
            key: Vec::with_capacity(n),
            day: Vec::with_capacity(n),
            quality: Vec::with_capacity(n),
            net: Vec::with_capacity(n),
            charges: Vec::with_capacity(n),
        }
    }

    /// One customer's payments, sorted by day (input order within a day): those with something left after
    /// refunds, merged per day.
    fn push_customer(&mut self, code: u32, payments: &[Slot], quality: impl Fn(u32) -> u32) {
        let mut paid = payments.iter().filter(|s| s.net > 0).peekable();
        while let Some(first) = paid.next() {
            let (mut net, mut n) = (first.net, 1u32);
            while let Some(s) = paid.next_if(|s| s.day == first.day) {
                net += s.net;
                n += 1;
            }
            self.key.push(code);
            self.day.push(first.day);
            self.quality.push(quality(first.tag) as IdxSize);
            self.net.push(net);
            self.charges.push(n);
        }
    }

    /// The frame, with the qualities' texts (by number) gathered into place.
    fn frame(self, qualities: &[Option<String>]) -> Result<DataFrame> {
        let quality = Series::new("quality".into(), qualities).take_slice(&self.quality)?;
        // The vectors moved in (`Column::new` copies a slice).
        Ok(DataFrame::new(
            self.key.len(),
            vec![
                Series::from_vec("customer_key".into(), self.key).into(),
                Series::from_vec("day".into(), self.day).into(),
                quality.into(),
                Series::from_vec("net_fen".into(), self.net).into(),
                Series::from_vec("charges".into(), self.charges).into(),
            ],
        )?)
    }
}

/// Each label's product rank (None for a missing label or one that folds to nothing) and the products in
/// rank order.
fn product_ranks(labels: &[Option<String>]) -> Result<(Vec<Option<u32>>, Vec<String>)> {
    let folded = df!("product_name" => labels)?
        .lazy()
        .select([super::velocity::bill_product_key(col("product_name"))])
        .collect()?;
    let folded: Vec<Option<&str>> = folded.column("product_name")?.str()?.iter().collect();
    let mut products: Vec<&str> = folded.iter().flatten().copied().collect();
    products.sort_unstable();
    products.dedup();
    let rank = folded
        .iter()
        .map(|f| f.and_then(|f| products.binary_search(&f).ok()).map(|i| i as u32))
        .collect();
    Ok((rank, products.into_iter().map(str::to_string).collect()))
}

/// The most common value, the smallest among equally common ones; sorts `v`.
fn most_common_smallest(v: &mut [u32]) -> Option<u32> {
    v.sort_unstable();
    let (mut best, mut best_n, mut i) = (None, 0, 0);
    while i < v.len() {
        let j = i + v[i..].partition_point(|&x| x == v[i]);
        if j - i > best_n {
            (best, best_n) = (Some(v[i]), j - i);
        }
        i = j;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::occasions::{key_coverage_from_net, occasions_from_net, payments_with_refunds, restore_keys};

    /// Pseudo-random events: payments and refunds (partial, full, several per payment, of unknown
    /// payments), several charges a day, keyless payments, labels that fold together, missing labels.
    fn random_events(hex: bool) -> DataFrame {
        random_events_with(hex, |_| None)
    }

    /// [`random_events`] with some keys replaced (`other(i)` for the i-th payment).
    fn random_events_with(hex: bool, other: impl Fn(usize) -> Option<String>) -> DataFrame {
        let labels = [
            "拿铁",
            "拿铁等2件",
            "美式",
            "可颂",
            "可颂等3件",
            "Bagel",
            "美式等2件",
            " 等2件",
        ];
        let mut next = crate::analytics::testing::pseudo_random(if hex { 5 } else { 6 });
        let key = |c: u64| {
            if hex {
                format!("{:032x}", (c as u128).wrapping_mul(0x9e3779b97f4a7c15f39cc0605cedc835))
            } else {
                format!("c{c}")
            }
        };
        let (mut id, mut kind, mut day, mut cust, mut q, mut amount, mut pay, mut name) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for i in 0..6000 {
            let c = next(700);
            id.push(format!("p{i}"));
            kind.push("payment");
            day.push(next(90) as i32 - 10);
            cust.push((next(15) > 0).then(|| other(i as usize).unwrap_or_else(|| key(c))));
            q.push(["strong", "weak", "none"][next(3) as usize]);
            let a = 100 + next(5000) as i64;
            amount.push(a);
            pay.push(None);
            name.push((next(8) > 0).then(|| labels[next(labels.len() as u64) as usize]));
            if next(6) == 0 {
                let p = if next(10) == 0 {
                    format!("p{}", 90_000 + i)
                } else {
                    format!("p{}", next(i + 1))
                };
                id.push(format!("r{i}"));
                kind.push("refund");
                day.push(next(90) as i32 - 10);
                cust.push(Some(key(c)));
                q.push("strong");
                amount.push(-(if next(3) == 0 { a } else { 1 + next(a as u64) as i64 }));
                pay.push(Some(p));
                name.push(None);
            }
        }
        df!(
            "event_id" => id, "kind" => kind, "day" => day, "customer_key" => cust,
            "customer_key_quality" => q, "amount_fen" => amount, "payment_event_id" => pay, "product_name" => name,
        )
        .unwrap()
        .lazy()
        .with_column(lit("wechat_pay").alias("channel"))
        .collect()
        .unwrap()
    }

    fn check(events: DataFrame) {
        let got = from_events(&events).unwrap();
        // The same events as the store gives them: read back from Parquet, a chunk per row group and the
        // texts dictionary-encoded (a text's rows then share one view).
        let mut file = Vec::new();
        ParquetWriter::new(&mut file)
            .with_row_group_size(Some(700))
            .finish(&mut events.clone())
            .unwrap();
        let read = ParquetReader::new(std::io::Cursor::new(file)).finish().unwrap();
        assert!(read.column("product_name").unwrap().as_materialized_series().n_chunks() > 1);
        let again = from_events(&read).unwrap();
        assert!(again.occasions.equals_missing(&got.occasions));
        assert!(again.favourites.equals_missing(&got.favourites));
        assert!(again.net_by_day.equals_missing(&got.net_by_day));
        assert_eq!(again.keys, got.keys);
        // The general way: the Polars definitions over the same events.
        let lazy = events
            .clone()
            .lazy()
            .with_column(col("day").cast(DataType::Date).alias("local_date"));
        let payments = payments_with_refunds(lazy.clone(), i32::MAX, ["product_name"])
            .collect()
            .unwrap();
        let net = payments.clone().lazy().filter(col("net_fen").gt(lit(0i64)));
        let want_occ = occasions_from_net(net.clone())
            .sort(["customer_key", "day"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let occ = restore_keys(got.occasions.clone(), &got.keys).unwrap();
        assert!(occ.height() > 1000);
        assert!(occ.equals_missing(&want_occ), "{occ}\n{want_occ}");
        // Codes in key order.
        assert!(got.keys.windows(2).all(|w| w[0] < w[1]));
        let sorted = |d: DataFrame| d.sort(["customer_key"], SortMultipleOptions::default()).unwrap();
        let fav = sorted(restore_keys(got.favourites.clone(), &got.keys).unwrap());
        let want_fav = sorted(
            crate::targets::favourite_products_of(
                payments
                    .clone()
                    .lazy()
                    .select([col("customer_key"), col("product_name")]),
            )
            .collect()
            .unwrap(),
        );
        assert!(fav.height() > 500);
        assert!(fav.equals_missing(&want_fav), "{fav}\n{want_fav}");
        for from in [None, Some(0), Some(60)] {
            let cov = key_coverage_from_net(got.net_by_day.clone().lazy(), from)
                .collect()
                .unwrap();
            let want = key_coverage_from_net(net.clone(), from).collect().unwrap();
            assert!(cov.equals_missing(&want), "{cov}\n{want}");
        }
    }

    #[test]
    fn events_after_as_of_are_passed_over() {
        let events = random_events(true);
        let as_of = 40;
        let upto = events
            .clone()
            .lazy()
            .filter(col("day").lt_eq(lit(as_of)))
            .collect()
            .unwrap();
        let want = from_events(&upto).unwrap();
        let refunds = refunds(upto.lazy()).collect().unwrap();
        let mut b = Builder::new(&refunds, as_of).unwrap();
        b.add(&events).unwrap();
        let got = b.finish().unwrap();
        assert!(want.occasions.height() > 500);
        assert!(got.occasions.equals_missing(&want.occasions));
        assert!(got.favourites.equals_missing(&want.favourites));
        assert!(got.net_by_day.equals_missing(&want.net_by_day));
        assert_eq!(got.keys, want.keys);
    }

    #[test]
    fn bill_sales_folded_in_the_pass_are_restocks_own() {
        // Split in three parts as store files would be, the as-of day cutting off some events.
        let events = random_events(true);
        let as_of = 40;
        let upto = |ev: LazyFrame| ev.filter(col("day").lt_eq(lit(as_of)));
        let refunds = refunds(upto(events.clone().lazy())).collect().unwrap();
        let mut b = Builder::new(&refunds, as_of).unwrap();
        b.fold_bill_sales();
        let n = events.height() as i64;
        let parts: Vec<DataFrame> = (0..3).map(|k| events.slice(k * n / 3, (n / 3 + 1) as usize)).collect();
        for part in &parts {
            b.add(part).unwrap();
        }
        let folded = b.finish().unwrap().bill_sales.unwrap();
        // What restock reads and folds itself, from the store's columns.
        let stored: Vec<LazyFrame> = parts
            .iter()
            .map(|p| {
                p.clone()
                    .lazy()
                    .with_column(col("day").cast(DataType::Date).alias("local_date"))
            })
            .collect();
        let own = crate::analytics::velocity::daily_units(
            &stored,
            crate::analytics::velocity::no_line_items().unwrap(),
            as_of,
        )
        .unwrap();
        let given = crate::analytics::velocity::daily_units_given(
            &stored,
            crate::analytics::velocity::no_line_items().unwrap(),
            as_of,
            || Some(folded.clone()),
        )
        .unwrap();
        assert!(folded.height() > 100, "{} rows", folded.height());
        assert!(own.height() > 100, "{} rows", own.height());
        assert!(given.equals_missing(&own));
    }

    #[test]
    fn one_pass_equals_the_polars_definitions_on_store_keys() {
        check(random_events(true));
    }

    #[test]
    fn one_pass_equals_the_polars_definitions_on_other_keys() {
        check(random_events(false));
        // Store keys first, then some that are not 32 hex digits: the keys seen so far are renumbered.
        check(random_events_with(true, |i| {
            (i > 4000 && i % 7 == 0).then(|| format!("k{}", i % 50))
        }));
    }

    #[test]
    fn weekly_sums_equal_the_polars_definition() {
        // Two channels, fees on most events (refunds' negative), some missing; weeks cut by as-of.
        let events = random_events(true);
        let n = events.height();
        let mut next = crate::analytics::testing::pseudo_random(11);
        let channel: Vec<&str> = (0..n).map(|_| ["wechat_pay", "alipay"][next(2) as usize]).collect();
        let fee: Vec<Option<i64>> = (0..n).map(|_| (next(9) > 0).then(|| next(400) as i64 - 50)).collect();
        let mut events = events;
        events.with_column(Column::new("channel".into(), channel)).unwrap();
        events.with_column(Column::new("fee_millifen".into(), fee)).unwrap();
        let (as_of, weeks) = (60, 4);
        let first = crate::analytics::kpis::first_week(as_of, weeks);
        let refunds = refunds(events.clone().lazy().filter(col("day").lt_eq(lit(as_of))))
            .collect()
            .unwrap();
        let mut b = Builder::new(&refunds, as_of).unwrap();
        b.count_weeks_from(first);
        // In two parts, as the store gives them.
        b.add(&events.slice(0, n / 3)).unwrap();
        b.add(&events.slice((n / 3) as i64, n)).unwrap();
        let got = b.finish().unwrap().weekly_sums.unwrap();
        let sorted = |d: DataFrame| d.sort(["week", "channel"], SortMultipleOptions::default()).unwrap();
        let want = crate::analytics::kpis::weekly_sums(
            events
                .lazy()
                .with_column(col("day").cast(DataType::Date).alias("local_date")),
            as_of,
            weeks,
        )
        .collect()
        .unwrap();
        assert_eq!(want.height(), 3 * 5, "five weeks, two channels and all");
        assert!(
            sorted(got.clone()).equals_missing(&sorted(want.clone())),
            "{got}\n{want}"
        );
    }
}
