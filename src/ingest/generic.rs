//! Generic CSV through a column mapping: user mappings from `paylens.toml` (other platforms, POS exports)
//! and two built-in ones with common English and Chinese header names: POS line items and an inventory
//! snapshot. A file matches the first mapping whose required columns all appear in one of its first 30
//! lines. Parsing uses the `csv` crate (RFC 4180, quoted newlines), not the bills' line rules.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;

use super::model::{Event, InventoryRow, KeyQuality, Kind, LineItem, RawIdentity};
use super::normalise::{
    clean_cell, decode, opt_cell, parse_fen, parse_scaled, sniff_encoding, split_csv_line, TextEncoding,
};
use super::source::Input;
use super::Ctx;
use crate::config::{GenericKind, GenericMapping, HeaderNames};

pub const POS_FORMAT: &str = "pos_line_items";
pub const INVENTORY_FORMAT: &str = "inventory_snapshot";

fn names(v: &[&str]) -> HeaderNames {
    HeaderNames::Many(v.iter().map(|s| s.to_string()).collect())
}

/// The built-in mappings, tried after the user's.
pub fn builtin_mappings() -> Vec<GenericMapping> {
    let pos: BTreeMap<String, HeaderNames> = [
        (
            "merchant_order_id",
            names(&[
                "merchant_order_no",
                "merchant_order_id",
                "商户订单号",
                "订单号",
                "order_no",
            ]),
        ),
        ("sku", names(&["sku", "SKU", "商品编码", "条码"])),
        ("name", names(&["name", "product", "product_name", "商品名称", "品名"])),
        ("quantity", names(&["quantity", "qty", "数量"])),
        (
            "unit_price",
            names(&["unit_price", "price", "单价", "单价(元)", "单价（元）"]),
        ),
        ("time", names(&["time", "sold_at", "下单时间", "时间"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let inventory: BTreeMap<String, HeaderNames> = [
        ("sku", names(&["sku", "SKU", "商品编码"])),
        ("name", names(&["name", "product", "商品名称", "品名"])),
        ("on_hand", names(&["on_hand", "库存", "现有库存", "在库数量"])),
        ("on_order", names(&["on_order", "在途", "在途数量"])),
        (
            "lead_time_days",
            names(&["lead_time_days", "lead_time", "交货期(天)", "交货期（天）"]),
        ),
        ("pack_size", names(&["pack_size", "箱规", "包装规格"])),
        ("min_order", names(&["min_order", "min_order_qty", "最小起订量"])),
        ("unit_cost", names(&["unit_cost", "进价", "成本价", "单位成本"])),
        ("snapshot_date", names(&["snapshot_date", "盘点日期"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let base = |name: &str, kind, columns| GenericMapping {
        name: name.into(),
        kind,
        encoding: None,
        time_format: None,
        money_unit: None,
        refund_values: vec![],
        cancelled_values: vec![],
        columns,
    };
    vec![
        base(POS_FORMAT, GenericKind::LineItems, pos),
        base(INVENTORY_FORMAT, GenericKind::Inventory, inventory),
    ]
}

/// field -> column position, when every required field is found in this header row.
fn match_header(m: &GenericMapping, cells: &[String]) -> Option<HashMap<String, usize>> {
    let cleaned: Vec<&str> = cells.iter().map(|c| clean_cell(c)).collect();
    let mut found = HashMap::new();
    for (field, header) in &m.columns {
        if let Some(i) = header.names().iter().find_map(|n| cleaned.iter().position(|c| c == n)) {
            found.insert(field.clone(), i);
        }
    }
    GenericMapping::required_fields(m.kind)
        .iter()
        .all(|f| found.contains_key(*f))
        .then_some(found)
}

/// The first mapping (user mappings first) whose header appears in the first lines.
pub fn detect<'m>(lines: &[String], mappings: &'m [GenericMapping]) -> Option<&'m GenericMapping> {
    mappings.iter().find(|m| {
        lines
            .iter()
            .take(30)
            .any(|l| match_header(m, &split_csv_line(l)).is_some())
    })
}

fn encoding_of(m: &GenericMapping, bytes: &[u8]) -> TextEncoding {
    match m.encoding.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("gbk" | "gb18030" | "gb2312") => TextEncoding::Gb18030,
        Some(_) => TextEncoding::Utf8,
        None => sniff_encoding(&bytes[..bytes.len().min(64 * 1024)]),
    }
}

pub fn parse(input: &Input, m: &GenericMapping, ctx: &mut Ctx) -> Result<()> {
    let bytes = input.read_all()?;
    let text = decode(&bytes, encoding_of(m, &bytes));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut cols: Option<HashMap<String, usize>> = None;
    let mut order_lines: HashMap<String, u32> = HashMap::new();
    for rec in reader.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                ctx.report.reject(line, crate::tr!("reject.not_csv", error = e), "");
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        let cells: Vec<String> = rec.iter().map(str::to_string).collect();
        let Some(c) = &cols else {
            cols = match_header(m, &cells);
            continue;
        };
        if cells.iter().all(|c| clean_cell(c).is_empty()) {
            continue;
        }
        let get = |f: &str| c.get(f).and_then(|&i| cells.get(i)).and_then(|s| opt_cell(s));
        let result = match m.kind {
            GenericKind::Payments => payment_row(m, &get, line, ctx),
            GenericKind::LineItems => line_item_row(m, &get, line, &mut order_lines, ctx),
            GenericKind::Inventory => inventory_row(m, &get, line, ctx),
        };
        if let Err(reason) = result {
            ctx.report.reject(line, reason, &cells.join(","));
        }
    }
    if cols.is_none() {
        anyhow::bail!("no header row for mapping `{}` found", m.name);
    }
    Ok(())
}

fn money(m: &GenericMapping, raw: &str) -> Result<i64, String> {
    if m.money_unit.as_deref() == Some("fen") {
        parse_scaled(raw, 0)
    } else {
        parse_fen(raw)
    }
}

fn number(raw: Option<&str>, what: &str) -> Result<Option<f64>, String> {
    raw.map(|r| {
        let r = r.replace(',', "");
        r.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{what} `{r}` is not a non-negative number"))
    })
    .transpose()
}

fn payment_row<'a>(
    m: &GenericMapping,
    get: &dyn Fn(&str) -> Option<&'a str>,
    line: u64,
    ctx: &mut Ctx,
) -> Result<(), String> {
    if get("status").is_some_and(|s| m.cancelled_values.iter().any(|v| v == s)) {
        ctx.report.skip(crate::tr!("skip.cancelled_plain"));
        return Ok(());
    }
    let order = get("order_id").ok_or("order_id is empty")?;
    let order = super::normalise::check_id(order, "order_id")?;
    let local = super::normalise::parse_local_time_with(get("time").unwrap_or(""), m.time_format.as_deref())?;
    let utc = ctx.utc(local)?;
    let amount = money(m, get("amount").ok_or("amount is empty")?)?;
    let refund = amount < 0 || get("kind").is_some_and(|k| m.refund_values.iter().any(|v| v == k));
    let amount = if refund { -amount.abs() } else { amount };
    let fee = get("fee").map(|f| money(m, f)).transpose()?.unwrap_or(0) * super::normalise::MILLIFEN_PER_FEN;
    let payment_id = format!("gen:{}:{order}", m.name);
    let event_id = if refund {
        format!("{payment_id}:refund:{}:{}", local.format("%Y%m%d%H%M%S"), -amount)
    } else {
        payment_id.clone()
    };
    let customer = get("customer").map(|c| RawIdentity {
        kind: "generic_customer",
        id: format!("generic:{}:{c}", m.name).into(),
        label: crate::privacy::mask_label(c).into(),
        quality: KeyQuality::Weak,
    });
    ctx.push(Event {
        event_id: event_id.into(),
        kind: if refund { Kind::Refund } else { Kind::Payment },
        occurred_local: local,
        occurred_at: utc,
        order_id: Some(order.to_string().into()),
        merchant_order_id: get("merchant_order_id").map(Into::into),
        refund_id: None,
        payment_event_id: refund.then_some(payment_id).map(Into::into),
        customer,
        product_name: get("product").map(Into::into),
        amount_fen: amount,
        settled_fen: amount,
        discount_fen: 0,
        fee_millifen: fee,
        currency: "CNY".into(),
        channel: "other",
        trade_type: Some(m.name.clone().into()),
        store: get("store").map(Into::into),
        terminal: None,
        operator: None,
        status: get("status").map(Into::into),
        line,
    });
    Ok(())
}

fn line_item_row<'a>(
    m: &GenericMapping,
    get: &dyn Fn(&str) -> Option<&'a str>,
    line: u64,
    order_lines: &mut HashMap<String, u32>,
    ctx: &mut Ctx,
) -> Result<(), String> {
    let order = get("merchant_order_id")
        .ok_or("merchant_order_id is empty")?
        .to_string();
    let name = get("name").ok_or("name is empty")?.to_string();
    let quantity = number(get("quantity"), "quantity")?.ok_or("quantity is empty")?;
    let unit_price_fen = money(m, get("unit_price").ok_or("unit_price is empty")?)?;
    let sold_at = match get("time") {
        Some(t) => {
            let local = super::normalise::parse_local_time_with(t, m.time_format.as_deref())?;
            Some(ctx.utc(local)?)
        }
        None => None,
    };
    *order_lines.entry(order.clone()).or_default() += 1;
    ctx.sink.line_items.push(LineItem {
        merchant_order_id: order,
        sku: get("sku").map(str::to_string),
        name,
        quantity,
        unit_price_fen,
        sold_at,
        line,
    });
    ctx.report.line_items += 1;
    Ok(())
}

fn inventory_row<'a>(
    m: &GenericMapping,
    get: &dyn Fn(&str) -> Option<&'a str>,
    line: u64,
    ctx: &mut Ctx,
) -> Result<(), String> {
    let sku = get("sku").ok_or("sku is empty")?.to_string();
    let snapshot_date = match get("snapshot_date") {
        Some(d) => super::normalise::parse_local_time_with(d, m.time_format.as_deref())?.date(),
        None => ctx.today(),
    };
    let unit_cost_fen = get("unit_cost").map(|c| money(m, c)).transpose()?;
    ctx.sink.inventory.push(InventoryRow {
        snapshot_date,
        sku,
        name: get("name").map(str::to_string),
        on_hand: number(get("on_hand"), "on_hand")?.ok_or("on_hand is empty")?,
        on_order: number(get("on_order"), "on_order")?.unwrap_or(0.0),
        lead_time_days: number(get("lead_time_days"), "lead_time_days")?,
        pack_size: number(get("pack_size"), "pack_size")?,
        min_order: number(get("min_order"), "min_order")?,
        unit_cost_fen,
        line,
    });
    ctx.report.inventory_rows += 1;
    Ok(())
}

/// The format name a mapping gives the files it reads.
pub fn format_name(m: &GenericMapping) -> String {
    if m.name == POS_FORMAT || m.name == INVENTORY_FORMAT {
        m.name.clone()
    } else {
        format!("generic:{}", m.name)
    }
}
