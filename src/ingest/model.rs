//! The canonical records every dialect produces (payment/refund events, POS line items, inventory rows),
//! the per-file report (counts, sums, rejects, reconciliation), and the sink that turns events into
//! compact Polars column chunks with keyed customer hashes. Parsers know nothing about Parquet or hashing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use polars::prelude::*;
use serde::Serialize;

use super::views::TextColumn;
use crate::privacy::KeyHasher;
use crate::slots::Slots;
use crate::store::id_digest;

/// Payment or refund. Refund amounts are negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Payment,
    Refund,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Payment => "payment",
            Kind::Refund => "refund",
        }
    }
}

/// How far a customer key can be trusted to mean one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyQuality {
    /// A stable platform id (WeChat openid under one appid).
    Strong,
    /// A masked account, a display name or a nickname: collisions and changes are possible.
    Weak,
}

impl KeyQuality {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyQuality::Strong => "strong",
            KeyQuality::Weak => "weak",
        }
    }
}

/// The raw buyer identifier a row carries, before hashing. Lives only in the identities table. Its text
/// is borrowed from the row being read until the identifier turns out to be new.
#[derive(Debug, Clone)]
pub struct RawIdentity<'a> {
    /// What the identifier is: `wechat_openid`, `alipay_masked_account`, `alipay_counterparty`, `wechat_nickname`.
    pub kind: &'static str,
    /// The identifier itself, namespaced where needed (`appid/openid`).
    pub id: Text<'a>,
    /// What a report may show: an already-masked account, or a masked nickname.
    pub label: Text<'a>,
    pub quality: KeyQuality,
}

impl RawIdentity<'_> {
    pub fn into_owned(self) -> RawIdentity<'static> {
        RawIdentity {
            kind: self.kind,
            id: Text::Owned(self.id.into_owned()),
            label: Text::Owned(self.label.into_owned()),
            quality: self.quality,
        }
    }
}

/// Text of an event: borrowed from the line being read where it can be (the merchant bills, millions of
/// rows), owned where a dialect builds it.
pub type Text<'a> = std::borrow::Cow<'a, str>;

/// Text a dialect builds for each row (event ids, namespaced buyer ids), kept from row to row so that
/// building it allocates nothing; the row's event borrows it.
#[derive(Default)]
pub struct RowText {
    pub event_id: String,
    pub payment_event_id: String,
    pub customer: String,
}

impl RowText {
    /// Clears the three and returns them, for a row to fill.
    pub fn fresh(&mut self) -> (&mut String, &mut String, &mut String) {
        self.event_id.clear();
        self.payment_event_id.clear();
        self.customer.clear();
        (&mut self.event_id, &mut self.payment_event_id, &mut self.customer)
    }
}

/// One payment or refund, normalised.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub event_id: Text<'a>,
    pub kind: Kind,
    pub occurred_local: NaiveDateTime,
    pub occurred_at: DateTime<Utc>,
    pub order_id: Option<Text<'a>>,
    pub merchant_order_id: Option<Text<'a>>,
    pub refund_id: Option<Text<'a>>,
    /// For a refund: the event id of the payment it refunds.
    pub payment_event_id: Option<Text<'a>>,
    pub customer: Option<RawIdentity<'a>>,
    pub product_name: Option<Text<'a>>,
    /// Order amount in fen (negative for refunds).
    pub amount_fen: i64,
    /// What the merchant is settled (after platform-funded discounts), fen.
    pub settled_fen: i64,
    /// Coupons and discounts on the order, fen.
    pub discount_fen: i64,
    /// Platform fee in 1/1000 fen; negative when a refund returns it.
    pub fee_millifen: i64,
    pub currency: Text<'a>,
    pub channel: &'static str,
    pub trade_type: Option<Text<'a>>,
    pub store: Option<Text<'a>>,
    pub terminal: Option<Text<'a>>,
    pub operator: Option<Text<'a>>,
    pub status: Option<Text<'a>>,
    pub line: u64,
}

/// A POS line item: joins to events on the merchant order number.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    pub merchant_order_id: String,
    pub sku: Option<String>,
    pub name: String,
    pub quantity: f64,
    pub unit_price_fen: i64,
    pub sold_at: Option<DateTime<Utc>>,
    pub line: u64,
}

/// One product's row in an inventory snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryRow {
    pub snapshot_date: NaiveDate,
    pub sku: String,
    pub name: Option<String>,
    pub on_hand: f64,
    pub on_order: f64,
    pub lead_time_days: Option<f64>,
    pub pack_size: Option<f64>,
    pub min_order: Option<f64>,
    pub unit_cost_fen: Option<i64>,
    pub line: u64,
}

/// A row that could not be read, kept with its reason and raw text.
#[derive(Debug, Clone, Serialize)]
pub struct Reject {
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// One of the file's own totals, recomputed from its rows.
#[derive(Debug, Clone, Serialize)]
pub struct TotalCheck {
    /// What the file states, in its own words (`总交易单数`, `#交易合计 笔数`).
    pub what: String,
    pub stated: i64,
    pub computed: i64,
    /// `fen`, `millifen` or `rows`.
    pub unit: &'static str,
}

impl TotalCheck {
    pub fn ok(&self) -> bool {
        self.stated == self.computed
    }
}

/// What reading one file found.
#[derive(Debug, Default, Clone)]
pub struct FileReport {
    pub format: String,
    pub payments: u64,
    pub refunds: u64,
    pub payments_fen: i64,
    pub refunds_fen: i64,
    /// Rows read but not sales, by reason (`cancelled`, `not a sale: 支出`, ...).
    pub skipped: BTreeMap<String, u64>,
    pub rejects: Vec<Reject>,
    pub checks: Vec<TotalCheck>,
    pub first: Option<NaiveDateTime>,
    pub last: Option<NaiveDateTime>,
    pub line_items: u64,
    pub inventory_rows: u64,
    /// Things worth telling the user that are not errors.
    pub notes: Vec<String>,
    /// The format always states totals (a summary or trailer): their absence means a truncated file.
    pub expects_totals: bool,
}

impl FileReport {
    pub fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }
    pub fn reject(&mut self, line: u64, reason: impl Into<String>, raw: &str) {
        self.rejects.push(Reject {
            line,
            reason: reason.into(),
            raw: raw.to_string(),
        });
    }
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
    /// `None` when the file states no totals, else whether every stated total matched.
    pub fn reconciled(&self) -> Option<bool> {
        if self.checks.is_empty() {
            return self.expects_totals.then_some(false);
        }
        Some(self.checks.iter().all(TotalCheck::ok))
    }
    /// Adds what a later piece of the same file found.
    pub fn absorb(&mut self, later: FileReport) {
        self.payments += later.payments;
        self.refunds += later.refunds;
        self.payments_fen += later.payments_fen;
        self.refunds_fen += later.refunds_fen;
        for (reason, n) in later.skipped {
            *self.skipped.entry(reason).or_default() += n;
        }
        self.rejects.extend(later.rejects);
        self.checks.extend(later.checks);
        for t in [later.first, later.last].into_iter().flatten() {
            self.see_time(t);
        }
        self.line_items += later.line_items;
        self.inventory_rows += later.inventory_rows;
        self.notes.extend(later.notes);
        self.expects_totals |= later.expects_totals;
    }
    fn see_time(&mut self, t: NaiveDateTime) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }
}

/// Rows per column chunk: bounds the memory of rows not yet in Polars' compact layout.
pub const CHUNK_ROWS: usize = 64 * 1024;

/// customer_key -> raw identity.
pub type Identities = HashMap<String, RawIdentity<'static>, foldhash::fast::RandomState>;

/// What a sink holds when a file is done: events, identities by key, POS line items, inventory rows.
pub type SinkParts = (DataFrame, Identities, Vec<LineItem>, Vec<InventoryRow>);

/// The customer keys of the raw identifiers one parser has met in this run, kept from file to file: a
/// regular customer is in most of a year of daily bills, and the keyed hash (HMAC-SHA256), the identity and
/// the stager's dedupe of it are done once per parser and run instead of once per file.
///
/// Every row looks its identifier up here, in random order over up to millions of customers, so the table
/// is laid out for one cache miss a lookup: open addressing with linear probing over slots that hold the
/// identifier's 128-bit XXH3 digest (as the store's event ids are) and the key's own 16 bytes (its text is
/// their hex). A lookup hashes the borrowed identifier and allocates nothing.
pub struct KeyCache {
    /// A power of two in length; a slot with `id == 0` is empty (a digest of 0 is stored as 1).
    slots: Slots<KeySlot>,
    /// The slots in use, in the order they were filled.
    order: Vec<KeySlot>,
    /// Entries of `order` from here on were first met in the file being read: its identities carry them.
    file_start: usize,
    /// The identifier last prefetched and its digest: the row's lookup then digests it once, not twice.
    prefetched: (String, u128),
}

#[derive(Clone, Copy, Default)]
struct KeySlot {
    id: u128,
    key: [u8; 16],
}

// SAFETY: all-zero bytes are `KeySlot::default()`, an empty slot.
unsafe impl crate::slots::Zeroable for KeySlot {}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            slots: Slots::zeroed(1 << 12),
            order: Vec::new(),
            file_start: 0,
            prefetched: (String::new(), 0),
        }
    }
}

impl KeyCache {
    /// The key (as hex text) of `id`; an identifier not met before is hashed and its identity goes into
    /// `identities`.
    fn key(&mut self, hasher: &KeyHasher, id: RawIdentity<'_>, identities: &mut Identities) -> [u8; 32] {
        let digest = match &self.prefetched {
            (text, digest) if *digest != 0 && *text == *id.id => *digest,
            _ => id_digest(&id.id),
        };
        let i = self.probe(digest);
        if self.slots[i].id == digest {
            return KeyHasher::hex(&self.slots[i].key);
        }
        let key = hasher.digest(&id.id);
        let hex = KeyHasher::hex(&key);
        let slot = KeySlot { id: digest, key };
        self.slots[i] = slot;
        self.order.push(slot);
        identities
            .entry(String::from_utf8(hex.to_vec()).expect("hex digits are ASCII"))
            .or_insert_with(|| id.into_owned());
        // At most 5/8 full: linear probing stays short.
        if self.order.len() * 8 > self.slots.len() * 5 {
            self.rebuild(self.slots.len() * 2);
        }
        hex
    }

    /// Starts fetching the memory of the slot where `id`'s lookup begins (the table is read at random, and
    /// a lookup is a cache miss: a parser asks for it early in the row).
    fn prefetch(&mut self, id: &str) {
        let digest = id_digest(id);
        self.slots.prefetch(digest as usize & (self.slots.len() - 1));
        self.prefetched.0.clear();
        self.prefetched.0.push_str(id);
        self.prefetched.1 = digest;
    }

    /// The slot that holds `id`, or the empty slot where it would go (linear probing from its home slot).
    fn probe(&self, id: u128) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = id as usize & mask;
        while self.slots[i].id != id && self.slots[i].id != 0 {
            i = (i + 1) & mask;
        }
        i
    }

    /// Lays the slots of `order` out again in a table of `len` slots.
    fn rebuild(&mut self, len: usize) {
        self.slots = Slots::zeroed(len);
        for n in 0..self.order.len() {
            let slot = self.order[n];
            let i = self.probe(slot.id);
            self.slots[i] = slot;
        }
    }

    /// The file being read was stored or is about to be: its identities went with it.
    fn file_done(&mut self) {
        self.file_start = self.order.len();
    }

    /// The file being read failed and its identities were dropped with it: the identifiers it met first
    /// are forgotten, so that the next file that has them sends them again.
    fn file_failed(&mut self) {
        if self.order.len() > self.file_start {
            self.order.truncate(self.file_start);
            self.rebuild(self.slots.len());
        }
    }
}

/// Collects events into Polars chunks, hashing customer ids on the way in.
pub struct EventSink<'a> {
    hasher: &'a KeyHasher,
    cache: &'a mut KeyCache,
    source_format: String,
    source_file: String,
    cols: EventColumns,
    chunks: Vec<DataFrame>,
    /// customer_key -> identity, for the separate identities table: the identifiers the cache met first
    /// in this file.
    pub identities: Identities,
    pub line_items: Vec<LineItem>,
    pub inventory: Vec<InventoryRow>,
}

/// The columns of the rows not yet in a chunk. Text goes straight into Arrow string views: an event's
/// owned strings are freed as soon as it is pushed, so their memory is reused for the next row.
struct EventColumns {
    rows: usize,
    event_id: TextColumn,
    kind: TextColumn,
    occurred_at: Vec<i64>,
    local_date: Vec<i32>,
    order_id: TextColumn,
    merchant_order_id: TextColumn,
    refund_id: TextColumn,
    payment_event_id: TextColumn,
    customer_key: TextColumn,
    customer_key_quality: TextColumn,
    product_name: TextColumn,
    amount_fen: Vec<i64>,
    settled_fen: Vec<i64>,
    discount_fen: Vec<i64>,
    fee_millifen: Vec<i64>,
    currency: TextColumn,
    channel: TextColumn,
    trade_type: TextColumn,
    store: TextColumn,
    terminal: TextColumn,
    operator: TextColumn,
    status: TextColumn,
    source_line: Vec<u64>,
}

impl EventColumns {
    fn new() -> EventColumns {
        // Sized for a whole chunk: growing by doubling copied the columns and touched fresh pages again.
        let text = || TextColumn::with_capacity(CHUNK_ROWS);
        fn v<T>() -> Vec<T> {
            Vec::with_capacity(CHUNK_ROWS)
        }
        EventColumns {
            rows: 0,
            event_id: text(),
            kind: text(),
            occurred_at: v(),
            local_date: v(),
            order_id: text(),
            merchant_order_id: text(),
            refund_id: text(),
            payment_event_id: text(),
            customer_key: text(),
            customer_key_quality: text(),
            product_name: text(),
            amount_fen: v(),
            settled_fen: v(),
            discount_fen: v(),
            fee_millifen: v(),
            currency: text(),
            channel: text(),
            trade_type: text(),
            store: text(),
            terminal: text(),
            operator: text(),
            status: text(),
            source_line: v(),
        }
    }
}

impl<'a> EventSink<'a> {
    pub fn new(hasher: &'a KeyHasher, cache: &'a mut KeyCache, source_file_sha: &str) -> Self {
        cache.file_failed(); // a file before this one that stopped without finishing
        EventSink {
            hasher,
            cache,
            source_format: String::new(),
            source_file: source_file_sha.to_string(),
            cols: EventColumns::new(),
            chunks: Vec::new(),
            identities: Identities::default(),
            line_items: Vec::new(),
            inventory: Vec::new(),
        }
    }

    /// A hint that the row being read has this raw buyer id: its key's memory is fetched meanwhile.
    pub fn prefetch_key(&mut self, raw_id: &str) {
        self.cache.prefetch(raw_id);
    }

    pub fn set_format(&mut self, format: &str) {
        self.source_format = format.to_string();
    }

    /// Adds an event and counts it in the report.
    pub fn push(&mut self, e: Event<'_>, report: &mut FileReport) {
        match e.kind {
            Kind::Payment => {
                report.payments += 1;
                report.payments_fen += e.amount_fen;
            }
            Kind::Refund => {
                report.refunds += 1;
                report.refunds_fen += e.amount_fen;
            }
        }
        report.see_time(e.occurred_local);
        let c = &mut self.cols;
        match e.customer {
            Some(id) => {
                c.customer_key_quality.push(id.quality.as_str());
                let key = self.cache.key(self.hasher, id, &mut self.identities);
                c.customer_key
                    .push(std::str::from_utf8(&key).expect("hex digits are ASCII"));
            }
            None => {
                c.customer_key.push_null();
                c.customer_key_quality.push("none");
            }
        }
        c.event_id.push(&e.event_id);
        c.kind.push(e.kind.as_str());
        c.occurred_at.push(e.occurred_at.timestamp_micros());
        c.local_date.push(days_since_epoch(e.occurred_local.date()));
        c.order_id.push_option(e.order_id.as_deref());
        c.merchant_order_id.push_option(e.merchant_order_id.as_deref());
        c.refund_id.push_option(e.refund_id.as_deref());
        c.payment_event_id.push_option(e.payment_event_id.as_deref());
        c.product_name.push_option(e.product_name.as_deref());
        c.amount_fen.push(e.amount_fen);
        c.settled_fen.push(e.settled_fen);
        c.discount_fen.push(e.discount_fen);
        c.fee_millifen.push(e.fee_millifen);
        c.currency.push(&e.currency);
        c.channel.push(e.channel);
        c.trade_type.push_option(e.trade_type.as_deref());
        c.store.push_option(e.store.as_deref());
        c.terminal.push_option(e.terminal.as_deref());
        c.operator.push_option(e.operator.as_deref());
        c.status.push_option(e.status.as_deref());
        c.source_line.push(e.line);
        c.rows += 1;
        if c.rows >= CHUNK_ROWS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.cols.rows == 0 {
            return;
        }
        let cols = std::mem::replace(&mut self.cols, EventColumns::new());
        let df = columns_to_frame(cols, &self.source_format, &self.source_file);
        self.chunks.push(df);
    }

    /// All events as one frame with the store's event schema.
    pub fn finish(mut self) -> SinkParts {
        self.flush();
        self.cache.file_done();
        let df = if self.chunks.is_empty() {
            columns_to_frame(EventColumns::new(), "", "")
        } else {
            let mut chunks = self.chunks.into_iter();
            let mut df = chunks.next().expect("non-empty");
            // Chunks stay separate: a rechunk would copy every column once more.
            for c in chunks {
                df.vstack_mut_owned(c).expect("chunks share the event schema");
            }
            df
        };
        (df, self.identities, self.line_items, self.inventory)
    }
}

/// The events of a file parsed before its digest was known, given it as their `source_file`.
pub fn set_source_file(mut events: DataFrame, sha: &str) -> PolarsResult<DataFrame> {
    let n = events.height();
    events.with_column(Column::new_scalar(
        "source_file".into(),
        Scalar::new(DataType::String, AnyValue::StringOwned(sha.into())),
        n,
    ))?;
    Ok(events)
}

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01, day 0 of the store's Date columns.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Days since 1970-01-01: integer arithmetic, as every row's local date goes through here.
pub fn days_since_epoch(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

/// The date of a day number (days since 1970-01-01), the inverse of [`days_since_epoch`]; `None` past
/// the calendar's range.
pub fn date_of_day(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(day.checked_add(EPOCH_DAYS_FROM_CE)?)
}

fn columns_to_frame(c: EventColumns, format: &str, file: &str) -> DataFrame {
    let n = c.rows;
    let columns = vec![
        c.event_id.into_column("event_id"),
        // Constant per file: a scalar column, not n copies of the string.
        Column::new_scalar(
            "source_format".into(),
            Scalar::new(DataType::String, AnyValue::StringOwned(format.into())),
            n,
        ),
        c.kind.into_column("kind"),
        // The number columns take the parser's vectors as they are (`Column::new` would copy them).
        Int64Chunked::from_vec("occurred_at".into(), c.occurred_at)
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column(),
        Int32Chunked::from_vec("local_date".into(), c.local_date)
            .into_date()
            .into_column(),
        c.order_id.into_column("order_id"),
        c.merchant_order_id.into_column("merchant_order_id"),
        c.refund_id.into_column("refund_id"),
        c.payment_event_id.into_column("payment_event_id"),
        c.customer_key.into_column("customer_key"),
        c.customer_key_quality.into_column("customer_key_quality"),
        c.product_name.into_column("product_name"),
        Int64Chunked::from_vec("amount_fen".into(), c.amount_fen).into_column(),
        Int64Chunked::from_vec("settled_fen".into(), c.settled_fen).into_column(),
        Int64Chunked::from_vec("discount_fen".into(), c.discount_fen).into_column(),
        Int64Chunked::from_vec("fee_millifen".into(), c.fee_millifen).into_column(),
        c.currency.into_column("currency"),
        c.channel.into_column("channel"),
        c.trade_type.into_column("trade_type"),
        c.store.into_column("store"),
        c.terminal.into_column("terminal"),
        c.operator.into_column("operator"),
        c.status.into_column("status"),
        Column::new_scalar(
            "source_file".into(),
            Scalar::new(DataType::String, AnyValue::StringOwned(file.into())),
            n,
        ),
        UInt64Chunked::from_vec("source_line".into(), c.source_line).into_column(),
    ];
    DataFrame::new(n, columns).expect("columns have equal length")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Day numbers as chrono counts the days between dates, and at points known by hand; and back.
    #[test]
    fn days_since_epoch_counts_from_1970() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
        let mut d = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a date");
        while chrono::Datelike::year(&d) < 2100 {
            assert_eq!(days_since_epoch(d), (d - epoch).num_days() as i32, "{d}");
            assert_eq!(date_of_day(days_since_epoch(d)), Some(d));
            d = d + chrono::Days::new(1);
        }
        // 2024-02-29: 54 years of 365 days and 13 leap days, then 31 + 28 days.
        assert_eq!(
            days_since_epoch(NaiveDate::from_ymd_opt(2024, 2, 29).expect("a date")),
            19_782
        );
        assert_eq!(
            days_since_epoch(NaiveDate::from_ymd_opt(1969, 12, 31).expect("a date")),
            -1
        );
    }

    fn payment<'a>(id: &str, customer: &'a str) -> Event<'a> {
        let t = NaiveDate::from_ymd_opt(2026, 11, 2)
            .and_then(|d| d.and_hms_opt(9, 30, 0))
            .expect("a valid time");
        Event {
            event_id: Text::Owned(id.to_string()),
            kind: Kind::Payment,
            occurred_local: t,
            occurred_at: t.and_utc(),
            order_id: None,
            merchant_order_id: None,
            refund_id: None,
            payment_event_id: None,
            customer: Some(RawIdentity {
                kind: "wechat_openid",
                id: customer.into(),
                label: Text::Borrowed(""),
                quality: KeyQuality::Strong,
            }),
            product_name: None,
            amount_fen: 100,
            settled_fen: 100,
            discount_fen: 0,
            fee_millifen: 0,
            currency: Text::Borrowed("CNY"),
            channel: "wechat_pay",
            trade_type: None,
            store: None,
            terminal: None,
            operator: None,
            status: None,
            line: 1,
        }
    }

    fn keys_of(df: &DataFrame) -> Vec<String> {
        let keys = df.column("customer_key").expect("column").str().expect("text");
        keys.iter().map(|k| k.expect("a key").to_string()).collect()
    }

    fn ids_of(identities: &Identities) -> Vec<String> {
        let mut ids: Vec<String> = identities.values().map(|i| i.id.to_string()).collect();
        ids.sort();
        ids
    }

    /// The key cache's table grows past its first size and past the size where it is mapped on its own
    /// (2 MiB): every identifier still gets the keyed hash of itself (checked against the hasher directly),
    /// once, and a failed file's identifiers are forgotten after the table was laid out again.
    #[test]
    fn the_key_cache_grows_and_forgets() {
        let hasher = KeyHasher::from_secret(b"test secret");
        let mut cache = KeyCache::default();
        let mut report = FileReport::default();
        let ids: Vec<String> = (0..120_000).map(|i| format!("wechat:app/o{i}")).collect();
        let mut sink = EventSink::new(&hasher, &mut cache, "a");
        for (i, id) in ids.iter().enumerate() {
            sink.push(payment(&format!("e{i}"), id), &mut report);
            sink.push(payment(&format!("f{i}"), &ids[i / 2]), &mut report);
        }
        let (df, identities, ..) = sink.finish();
        assert_eq!(identities.len(), ids.len());
        assert!(cache.slots.len() * std::mem::size_of::<KeySlot>() > 2 << 20);
        let keys = keys_of(&df);
        for i in (0..ids.len()).step_by(997) {
            assert_eq!(keys[2 * i], hasher.key(&ids[i]));
            assert_eq!(keys[2 * i + 1], hasher.key(&ids[i / 2]));
        }
        // A file that fails after meeting new identifiers (enough to grow the table again).
        let more: Vec<String> = (0..100_000).map(|i| format!("wechat:app/p{i}")).collect();
        let mut sink = EventSink::new(&hasher, &mut cache, "b");
        for id in &more {
            sink.push(payment("x", id), &mut report);
        }
        drop(sink);
        let mut sink = EventSink::new(&hasher, &mut cache, "c");
        sink.push(payment("y", &more[7]), &mut report);
        sink.push(payment("z", &ids[7]), &mut report);
        let (df, identities, ..) = sink.finish();
        assert_eq!(ids_of(&identities), [more[7].clone()]);
        assert_eq!(keys_of(&df), [hasher.key(&more[7]), hasher.key(&ids[7])]);
    }

    /// A parser's files share its cache: each identity goes with the first file that met it, the keys are
    /// the keyed hashes all the same, and a file that fails gives its new identities back.
    #[test]
    fn identities_go_with_the_first_finished_file() {
        let hasher = KeyHasher::from_secret(b"test secret");
        let mut cache = KeyCache::default();
        let mut report = FileReport::default();

        let mut sink = EventSink::new(&hasher, &mut cache, "a");
        sink.push(payment("e1", "wechat:app/alice"), &mut report);
        sink.push(payment("e2", "wechat:app/bob"), &mut report);
        sink.push(payment("e3", "wechat:app/alice"), &mut report);
        let (df, identities, ..) = sink.finish();
        assert_eq!(ids_of(&identities), ["wechat:app/alice", "wechat:app/bob"]);
        let (alice, bob) = (hasher.key("wechat:app/alice"), hasher.key("wechat:app/bob"));
        assert_eq!(keys_of(&df), [alice.clone(), bob.clone(), alice.clone()]);

        // A file that stops part-way (its sink dropped unfinished): carol was met there first.
        let mut sink = EventSink::new(&hasher, &mut cache, "b");
        sink.push(payment("e4", "wechat:app/carol"), &mut report);
        drop(sink);

        let mut sink = EventSink::new(&hasher, &mut cache, "c");
        sink.push(payment("e5", "wechat:app/bob"), &mut report);
        sink.push(payment("e6", "wechat:app/carol"), &mut report);
        let (df, identities, ..) = sink.finish();
        assert_eq!(ids_of(&identities), ["wechat:app/carol"]);
        assert_eq!(keys_of(&df), [bob, hasher.key("wechat:app/carol")]);
    }
}
