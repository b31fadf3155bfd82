//! The canonical records every dialect produces (payment/refund events, POS line items, inventory rows),
//! the per-file report (counts, sums, rejects, reconciliation), and the sink that turns events into
//! compact Polars column chunks with keyed customer hashes. Parsers know nothing about Parquet or hashing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::privacy::KeyHasher;

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

/// The raw buyer identifier a row carries, before hashing. Lives only in the identities table.
#[derive(Debug, Clone)]
pub struct RawIdentity {
    /// What the identifier is: `wechat_openid`, `alipay_masked_account`, `alipay_counterparty`, `wechat_nickname`.
    pub kind: &'static str,
    /// The identifier itself, namespaced where needed (`appid/openid`).
    pub id: String,
    /// What a report may show: an already-masked account, or a masked nickname.
    pub label: String,
    pub quality: KeyQuality,
}

/// Text of an event: borrowed from the line being read where it can be (the merchant bills, millions of
/// rows), owned where a dialect builds it.
pub type Text<'a> = std::borrow::Cow<'a, str>;

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
    pub customer: Option<RawIdentity>,
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
    fn see_time(&mut self, t: NaiveDateTime) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }
}

/// Rows per column chunk: bounds the memory of rows not yet in Polars' compact layout.
pub const CHUNK_ROWS: usize = 64 * 1024;

/// customer_key -> raw identity.
pub type Identities = HashMap<String, RawIdentity, foldhash::fast::RandomState>;

/// What a sink holds when a file is done: events, identities by key, POS line items, inventory rows.
pub type SinkParts = (DataFrame, Identities, Vec<LineItem>, Vec<InventoryRow>);

/// Collects events into Polars chunks, hashing customer ids on the way in.
pub struct EventSink<'a> {
    hasher: &'a KeyHasher,
    source_format: String,
    source_file: String,
    cols: EventColumns,
    chunks: Vec<DataFrame>,
    /// customer_key -> identity, for the separate identities table.
    pub identities: Identities,
    /// raw identifier -> customer_key, so that each identifier is hashed once.
    key_of: HashMap<String, String, foldhash::fast::RandomState>,
    pub line_items: Vec<LineItem>,
    pub inventory: Vec<InventoryRow>,
}

/// The columns of the rows not yet in a chunk. Text goes straight into Arrow string views: an event's
/// owned strings are freed as soon as it is pushed, so their memory is reused for the next row.
struct EventColumns {
    rows: usize,
    event_id: StringChunkedBuilder,
    kind: Vec<&'static str>,
    occurred_at: Vec<i64>,
    local_date: Vec<i32>,
    order_id: StringChunkedBuilder,
    merchant_order_id: StringChunkedBuilder,
    refund_id: StringChunkedBuilder,
    payment_event_id: StringChunkedBuilder,
    customer_key: StringChunkedBuilder,
    customer_key_quality: Vec<&'static str>,
    product_name: StringChunkedBuilder,
    amount_fen: Vec<i64>,
    settled_fen: Vec<i64>,
    discount_fen: Vec<i64>,
    fee_millifen: Vec<i64>,
    currency: StringChunkedBuilder,
    channel: Vec<&'static str>,
    trade_type: StringChunkedBuilder,
    store: StringChunkedBuilder,
    terminal: StringChunkedBuilder,
    operator: StringChunkedBuilder,
    status: StringChunkedBuilder,
    source_line: Vec<u64>,
}

impl EventColumns {
    fn new() -> EventColumns {
        // Sized for a whole chunk: growing by doubling copied the columns and touched fresh pages again.
        let text = |name: &str| StringChunkedBuilder::new(name.into(), CHUNK_ROWS);
        fn v<T>() -> Vec<T> {
            Vec::with_capacity(CHUNK_ROWS)
        }
        EventColumns {
            rows: 0,
            event_id: text("event_id"),
            kind: v(),
            occurred_at: v(),
            local_date: v(),
            order_id: text("order_id"),
            merchant_order_id: text("merchant_order_id"),
            refund_id: text("refund_id"),
            payment_event_id: text("payment_event_id"),
            customer_key: text("customer_key"),
            customer_key_quality: v(),
            product_name: text("product_name"),
            amount_fen: v(),
            settled_fen: v(),
            discount_fen: v(),
            fee_millifen: v(),
            currency: text("currency"),
            channel: v(),
            trade_type: text("trade_type"),
            store: text("store"),
            terminal: text("terminal"),
            operator: text("operator"),
            status: text("status"),
            source_line: v(),
        }
    }
}

impl<'a> EventSink<'a> {
    pub fn new(hasher: &'a KeyHasher, source_file_sha: &str) -> Self {
        EventSink {
            hasher,
            source_format: String::new(),
            source_file: source_file_sha.to_string(),
            cols: EventColumns::new(),
            chunks: Vec::new(),
            identities: Identities::default(),
            key_of: HashMap::default(),
            line_items: Vec::new(),
            inventory: Vec::new(),
        }
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
                // A customer pays many times: the keyed hash is computed once per identifier and file.
                if let Some(key) = self.key_of.get(&id.id) {
                    c.customer_key.append_value(key);
                } else {
                    let key = self.hasher.key(&id.id);
                    c.customer_key.append_value(&key);
                    self.key_of.insert(id.id.clone(), key.clone());
                    self.identities.entry(key).or_insert(id);
                }
            }
            None => {
                c.customer_key.append_null();
                c.customer_key_quality.push("none");
            }
        }
        c.event_id.append_value(e.event_id);
        c.kind.push(e.kind.as_str());
        c.occurred_at.push(e.occurred_at.timestamp_micros());
        c.local_date.push(days_since_epoch(e.occurred_local.date()));
        c.order_id.append_option(e.order_id);
        c.merchant_order_id.append_option(e.merchant_order_id);
        c.refund_id.append_option(e.refund_id);
        c.payment_event_id.append_option(e.payment_event_id);
        c.product_name.append_option(e.product_name);
        c.amount_fen.push(e.amount_fen);
        c.settled_fen.push(e.settled_fen);
        c.discount_fen.push(e.discount_fen);
        c.fee_millifen.push(e.fee_millifen);
        c.currency.append_value(e.currency);
        c.channel.push(e.channel);
        c.trade_type.append_option(e.trade_type);
        c.store.append_option(e.store);
        c.terminal.append_option(e.terminal);
        c.operator.append_option(e.operator);
        c.status.append_option(e.status);
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

pub fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

fn columns_to_frame(c: EventColumns, format: &str, file: &str) -> DataFrame {
    let n = c.rows;
    let s = |b: StringChunkedBuilder| b.finish().into_column();
    let columns = vec![
        s(c.event_id),
        // Constant per file: a scalar column, not n copies of the string.
        Column::new_scalar(
            "source_format".into(),
            Scalar::new(DataType::String, AnyValue::StringOwned(format.into())),
            n,
        ),
        Column::new("kind".into(), c.kind),
        Column::new("occurred_at".into(), c.occurred_at)
            .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
            .expect("i64 to datetime"),
        Column::new("local_date".into(), c.local_date)
            .cast(&DataType::Date)
            .expect("i32 to date"),
        s(c.order_id),
        s(c.merchant_order_id),
        s(c.refund_id),
        s(c.payment_event_id),
        s(c.customer_key),
        Column::new("customer_key_quality".into(), c.customer_key_quality),
        s(c.product_name),
        Column::new("amount_fen".into(), c.amount_fen),
        Column::new("settled_fen".into(), c.settled_fen),
        Column::new("discount_fen".into(), c.discount_fen),
        Column::new("fee_millifen".into(), c.fee_millifen),
        s(c.currency),
        Column::new("channel".into(), c.channel),
        s(c.trade_type),
        s(c.store),
        s(c.terminal),
        s(c.operator),
        s(c.status),
        Column::new_scalar(
            "source_file".into(),
            Scalar::new(DataType::String, AnyValue::StringOwned(file.into())),
            n,
        ),
        Column::new("source_line".into(), c.source_line),
    ];
    DataFrame::new(n, columns).expect("columns have equal length")
}
