//! `paylens status`: what the store holds, read through the manifest: ingested files, months, events,
//! money, and customers by key quality (so an owner sees how far customer counts can be trusted).

use std::io::Write;

use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;

use crate::config::Config;
use crate::store::StoreReader;

#[derive(Debug, Serialize, PartialEq)]
pub struct StoreSummary {
    pub files: usize,
    pub months: Vec<String>,
    pub events: u64,
    pub payments: u64,
    pub refunds: u64,
    pub payments_fen: i64,
    pub refunds_fen: i64,
    pub customers_strong: u64,
    pub customers_weak: u64,
    pub events_without_customer: u64,
    pub line_items: u64,
    pub inventory_rows: u64,
}

pub fn summarise(cfg: &Config) -> Result<StoreSummary> {
    let store = StoreReader::open(&cfg.store)?;
    let ev = store.events()?;
    let sums = ev
        .clone()
        .lazy()
        .select([
            col("kind")
                .eq(lit("payment"))
                .sum()
                .cast(DataType::UInt64)
                .alias("payments"),
            col("kind")
                .eq(lit("refund"))
                .sum()
                .cast(DataType::UInt64)
                .alias("refunds"),
            col("amount_fen")
                .filter(col("kind").eq(lit("payment")))
                .sum()
                .alias("payments_fen"),
            col("amount_fen")
                .filter(col("kind").eq(lit("refund")))
                .sum()
                .alias("refunds_fen"),
            col("customer_key")
                .filter(col("customer_key_quality").eq(lit("strong")))
                .n_unique()
                .cast(DataType::UInt64)
                .alias("strong"),
            col("customer_key")
                .filter(col("customer_key_quality").eq(lit("weak")))
                .n_unique()
                .cast(DataType::UInt64)
                .alias("weak"),
            col("customer_key").is_null().sum().cast(DataType::UInt64).alias("none"),
        ])
        .collect()?;
    let u = |c: &str| -> Result<u64> { Ok(sums.column(c)?.u64()?.get(0).unwrap_or(0)) };
    let i = |c: &str| -> Result<i64> { Ok(sums.column(c)?.i64()?.get(0).unwrap_or(0)) };
    let rows = |rel: Option<&str>| -> Result<u64> { Ok(store.table(rel)?.map_or(0, |d| d.height() as u64)) };
    Ok(StoreSummary {
        files: store.manifest.files.len(),
        months: store.manifest.events.keys().cloned().collect(),
        events: ev.height() as u64,
        payments: u("payments")?,
        refunds: u("refunds")?,
        payments_fen: i("payments_fen")?,
        refunds_fen: i("refunds_fen")?,
        customers_strong: u("strong")?,
        customers_weak: u("weak")?,
        events_without_customer: u("none")?,
        line_items: store.line_items()?.map_or(0, |d| d.height() as u64),
        inventory_rows: rows(store.manifest.inventory.as_deref())?,
    })
}

pub fn run(json: bool, cfg: &Config) -> Result<()> {
    let s = summarise(cfg)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln!(out)?;
        return Ok(());
    }
    use crate::tr;
    writeln!(out, "{}", tr!("status.store", store = cfg.store.display()))?;
    writeln!(out, "{}", tr!("status.files", n = s.files))?;
    let months = match (s.months.first(), s.months.last()) {
        (Some(a), Some(b)) => tr!("status.month_range", first = a, last = b, n = s.months.len()),
        _ => tr!("status.none").to_string(),
    };
    writeln!(out, "{}", tr!("status.months", months = months))?;
    writeln!(
        out,
        "{}",
        tr!(
            "status.payments",
            n = s.payments,
            money = crate::i18n::money_fen(s.payments_fen)
        )
    )?;
    writeln!(
        out,
        "{}",
        tr!(
            "status.refunds",
            n = s.refunds,
            money = crate::i18n::money_fen(s.refunds_fen)
        )
    )?;
    writeln!(
        out,
        "{}",
        tr!(
            "status.customers",
            strong = s.customers_strong,
            weak = s.customers_weak,
            without = s.events_without_customer
        )
    )?;
    writeln!(
        out,
        "{}",
        tr!(
            "status.line_items",
            line_items = s.line_items,
            inventory = s.inventory_rows
        )
    )?;
    Ok(())
}
