//! Personal bills of owners who take payments on a personal QR code: WeChat personal (CSV until mid-2025,
//! XLSX since, header row 17 or 18) and Alipay personal (2023+ layout with drifting preamble and either
//! company name, the 2021-22 app layout, the old web `交易记录明细查询`). A personal account mixes takings
//! with private money: only collection-code receipts are sales (config lists), the rest is skipped and
//! counted. The `共N笔记录` and `收入：N笔 X元` preamble lines are recomputed.

use std::collections::HashSet;

use anyhow::{bail, Result};

use super::model::{Event, KeyQuality, Kind, RawIdentity, TotalCheck};
use super::normalise::{
    check_id, clean_cell, excel_serial_to_local, parse_fen, parse_fen_or_zero, parse_scaled, split_csv_line, used_len,
    Header, TextEncoding,
};
use super::source::{Input, Lines};
use super::Ctx;

pub const WECHAT_CSV: &str = "wechat_personal_csv";
pub const WECHAT_XLSX: &str = "wechat_personal_xlsx";
pub const ALIPAY: &str = "alipay_personal";
pub const ALIPAY_WEB: &str = "alipay_personal_web";

pub const WECHAT_MARKER: &str = "微信支付账单明细";
pub const ALIPAY_RECEIPT_MARKER: &str = "电子客户回单";
pub const ALIPAY_COMPANIES: [&str; 2] = ["支付宝（中国）网络技术有限公司", "支付宝支付科技有限公司"];
pub const ALIPAY_WEB_MARKER: &str = "支付宝交易记录明细查询";

/// A row of cells with its 1-based line (or spreadsheet row) number and raw text for rejects.
pub struct Row {
    pub line: u64,
    pub cells: Vec<String>,
    pub raw: String,
}

/// Reads a small text file into rows (cells split with the bills' quoting and TAB rules).
pub fn text_rows(input: &Input, enc: TextEncoding) -> Result<Vec<Row>> {
    let mut lines = Lines::new(input, enc)?;
    let mut rows = Vec::new();
    while let Some(l) = lines.next_line()? {
        rows.push(Row {
            line: lines.line_no,
            cells: split_csv_line(&l),
            raw: l,
        });
    }
    Ok(rows)
}

/// Reads the first sheet of a workbook into rows, cells as text: dates as `YYYY-MM-DD HH:MM:SS`, numbers in
/// their shortest exact decimal form.
pub fn xlsx_rows(input: &Input) -> Result<Vec<Row>> {
    use calamine::{Data, Reader};
    let bytes = input.read_all()?;
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("not a readable XLSX workbook: {e}"))?;
    let Some(range) = wb.worksheet_range_at(0) else {
        bail!("the workbook has no sheet")
    };
    let range = range.map_err(|e| anyhow::anyhow!("cannot read the first sheet: {e}"))?;
    let first_row = range.start().map_or(0, |(r, _)| r as u64);
    let mut rows = Vec::new();
    for (i, r) in range.rows().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .map(|c| match c {
                Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
                Data::Float(f) => format!("{f}"),
                Data::Int(i) => i.to_string(),
                Data::Bool(b) => b.to_string(),
                Data::DateTime(d) => excel_serial_to_local(d.as_f64())
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                Data::Error(e) => format!("#ERROR {e}"),
                Data::Empty => String::new(),
            })
            .collect();
        let raw = cells.join(",");
        rows.push(Row {
            line: first_row + i as u64 + 1,
            cells,
            raw,
        });
    }
    Ok(rows)
}

/// The preamble's own totals: `共N笔记录`, and `收入：N笔 X元` (`已收入:N笔,X元` in the web layout).
#[derive(Default, Debug)]
struct Stated {
    records: Option<(u64, i64)>,
    income: Option<(u64, i64, i64)>,
}

fn stated_totals(rows: &[Row]) -> Stated {
    let mut s = Stated::default();
    for r in rows {
        let text = clean_cell(r.cells.first().map_or("", String::as_str));
        if let Some(n) = text.strip_prefix('共').and_then(|t| t.strip_suffix("笔记录")) {
            if let Ok(n) = parse_scaled(n, 0) {
                s.records = Some((r.line, n));
            }
        }
        let joined = r
            .cells
            .iter()
            .map(|c| clean_cell(c))
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        if let Some(rest) = joined.strip_prefix("收入").or_else(|| joined.strip_prefix("已收入")) {
            let rest = rest.trim_start_matches([':', '：']);
            if let Some((count, amount)) = rest.split_once('笔') {
                let amount = amount.trim_start_matches([',', ' ']).trim_end_matches('元').trim();
                if let (Ok(c), Ok(a)) = (parse_scaled(count, 0), parse_fen(amount)) {
                    s.income = Some((r.line, c, a));
                }
            }
        }
    }
    s
}

fn push_checks(stated: &Stated, rows: i64, income_rows: i64, income_fen: i64, ctx: &mut Ctx) {
    if let Some((_, n)) = stated.records {
        ctx.report.checks.push(TotalCheck {
            what: "共N笔记录".into(),
            stated: n,
            computed: rows,
            unit: "rows",
        });
    }
    if let Some((_, c, a)) = stated.income {
        ctx.report.checks.push(TotalCheck {
            what: "收入 笔数".into(),
            stated: c,
            computed: income_rows,
            unit: "rows",
        });
        ctx.report.checks.push(TotalCheck {
            what: "收入 金额".into(),
            stated: a,
            computed: income_fen,
            unit: "fen",
        });
    }
}

/// Finds the header row by content: the first row holding every one of `needles`.
fn find_header(rows: &[Row], needles: &[&str], aliases: &[(&str, &str)]) -> Option<(usize, Header)> {
    rows.iter().enumerate().find_map(|(i, r)| {
        let h = Header::new(&r.cells, aliases);
        needles.iter().all(|n| h.has(n)).then_some((i, h))
    })
}

// ---------------------------------------------------------------- WeChat personal

const WECHAT_ALIASES: &[(&str, &str)] = &[("金额（元）", "金额(元)"), ("商品名称", "商品")];

pub fn parse_wechat(rows: Vec<Row>, ctx: &mut Ctx) -> Result<()> {
    let Some((hi, h)) = find_header(
        &rows,
        &["交易时间", "交易类型", "收/支", "金额(元)", "交易单号"],
        WECHAT_ALIASES,
    ) else {
        bail!("no WeChat personal header row (交易时间,交易类型,交易对方,...) found");
    };
    let stated = stated_totals(&rows[..hi]);
    let mut data: Vec<Row> = rows
        .into_iter()
        .skip(hi + 1)
        .filter(|r| used_len(&r.cells) > 0)
        .collect();
    for r in &mut data {
        merge_extra_fields(&mut r.cells, &h, "交易对方");
    }
    let sale_types = &ctx.cfg.personal.wechat_sale_types;
    let is_sale_refund = |cells: &[String]| {
        h.cell(cells, "交易类型")
            .strip_suffix("-退款")
            .is_some_and(|base| sale_types.iter().any(|t| t == base))
    };
    // Sales and their explicit refund rows, by 交易单号: an explicit row dates the refund; without one,
    // the sale's 当前状态 (已全额退款 / 已退款(￥x)) gives the amount, dated at the sale.
    let explicit: HashSet<String> = data
        .iter()
        .filter(|r| is_sale_refund(&r.cells))
        .map(|r| h.cell(&r.cells, "交易单号").to_string())
        .collect();
    let sales: HashSet<String> = data
        .iter()
        .filter(|r| h.cell(&r.cells, "收/支") == "收入" && sale_types.iter().any(|t| t == h.cell(&r.cells, "交易类型")))
        .map(|r| h.cell(&r.cells, "交易单号").to_string())
        .collect();
    let (mut read_rows, mut income_rows, mut income_fen) = (0i64, 0i64, 0i64);
    for row in &data {
        let result = if is_sale_refund(&row.cells) {
            wechat_refund_row(&h, &row.cells, row.line, &sales, ctx)
        } else {
            wechat_row(&h, &row.cells, row.line, &explicit, ctx)
        };
        match result {
            Ok(()) => {
                read_rows += 1;
                if h.cell(&row.cells, "收/支") == "收入" {
                    income_rows += 1;
                    income_fen += parse_fen_or_zero(h.cell(&row.cells, "金额(元)")).unwrap_or(0);
                }
            }
            Err(reason) => ctx.report.reject(row.line, reason, &row.raw),
        }
    }
    push_checks(&stated, read_rows, income_rows, income_fen, ctx);
    Ok(())
}

/// A row with more fields than the header had an unquoted comma in `column` (`WALMART HONG KONG CO.,LIMITED`):
/// the extra fields are merged back into it.
fn merge_extra_fields(cells: &mut Vec<String>, h: &Header, column: &str) {
    let extra = used_len(cells).saturating_sub(h.len);
    if extra == 0 {
        return;
    }
    let Some(i) = h.get(column) else { return };
    let merged: Vec<String> = cells.drain(i..=i + extra).collect();
    cells.insert(i, merged.join(","));
}

fn wechat_customer(h: &Header, cells: &[String]) -> Option<RawIdentity<'static>> {
    h.opt(cells, "交易对方").map(|name| RawIdentity {
        kind: "wechat_nickname",
        id: format!("wechat_nick:{name}").into(),
        label: crate::privacy::mask_label(name).into(),
        quality: KeyQuality::Weak,
    })
}

fn wechat_event(h: &Header, cells: &[String], line: u64, ctx: &Ctx) -> Result<Event<'static>, String> {
    let tx = check_id(h.cell(cells, "交易单号"), "交易单号")?;
    if tx.is_empty() {
        return Err(crate::tr!("reject.empty", what = "交易单号"));
    }
    let (local, utc) = ctx.time(h.cell(cells, "交易时间"))?;
    let amount = parse_fen(h.cell(cells, "金额(元)"))?.abs();
    Ok(Event {
        event_id: format!("wxp:{tx}").into(),
        kind: Kind::Payment,
        occurred_local: local,
        occurred_at: utc,
        order_id: Some(tx.to_string().into()),
        merchant_order_id: h.owned(cells, "商户单号").map(Into::into),
        refund_id: None,
        payment_event_id: None,
        customer: wechat_customer(h, cells),
        product_name: h.owned(cells, "商品").map(Into::into),
        amount_fen: amount,
        settled_fen: amount,
        discount_fen: 0,
        fee_millifen: 0,
        currency: "CNY".into(),
        channel: "wechat_personal",
        trade_type: Some(h.cell(cells, "交易类型").to_string().into()),
        store: None,
        terminal: None,
        operator: None,
        status: Some(h.cell(cells, "当前状态").to_string().into()),
        line,
    })
}

/// An explicit refund row of a sale (`二维码收款-退款`): a refund dated when it happened.
fn wechat_refund_row(
    h: &Header,
    cells: &[String],
    line: u64,
    sales: &HashSet<String>,
    ctx: &mut Ctx,
) -> Result<(), String> {
    let tx = h.cell(cells, "交易单号");
    if !sales.contains(tx) {
        ctx.report.skip(crate::tr!("skip.refund_elsewhere"));
        return Ok(());
    }
    let e = wechat_event(h, cells, line, ctx)?;
    let payment_id = e.event_id.clone();
    ctx.push(Event {
        event_id: format!("{payment_id}:refund").into(),
        kind: Kind::Refund,
        refund_id: Some(format!("{tx}:refund").into()),
        payment_event_id: Some(payment_id),
        amount_fen: -e.amount_fen,
        settled_fen: -e.amount_fen,
        ..e
    });
    Ok(())
}

fn wechat_row(
    h: &Header,
    cells: &[String],
    line: u64,
    explicit_refunds: &HashSet<String>,
    ctx: &mut Ctx,
) -> Result<(), String> {
    if used_len(cells) < h.len.saturating_sub(2) {
        return Err(crate::tr!("reject.truncated", fields = used_len(cells), header = h.len));
    }
    let kind = h.cell(cells, "交易类型");
    let dir = h.cell(cells, "收/支");
    let status = h.cell(cells, "当前状态");
    if status.contains("关闭") {
        ctx.report.skip(crate::tr!("skip.cancelled", status = "交易关闭"));
        return Ok(());
    }
    if dir != "收入" || !ctx.cfg.personal.wechat_sale_types.iter().any(|t| t == kind) {
        ctx.report.skip(crate::tr!(
            "skip.not_a_sale",
            what = format!("{} {kind}", if dir.is_empty() { "/" } else { dir })
        ));
        return Ok(());
    }
    let e = wechat_event(h, cells, line, ctx)?;
    let refunded = if explicit_refunds.contains(h.cell(cells, "交易单号")) {
        0
    } else {
        refunded_fen(status, e.amount_fen)?
    };
    ctx.push(e.clone());
    if refunded > 0 {
        let payment_id = e.event_id.clone();
        ctx.push(Event {
            event_id: format!("{payment_id}:refund").into(),
            kind: Kind::Refund,
            refund_id: e.order_id.as_ref().map(|t| format!("{t}:refund")).map(Into::into),
            payment_event_id: Some(payment_id),
            amount_fen: -refunded,
            settled_fen: -refunded,
            ..e
        });
    }
    Ok(())
}

/// `已全额退款` refunds everything; `已退款(￥12.00)` / `已退款￥12.00` a part.
fn refunded_fen(status: &str, amount: i64) -> Result<i64, String> {
    if status.contains("全额退款") {
        return Ok(amount);
    }
    if let Some(rest) = status.split_once("已退款").map(|(_, r)| r) {
        let rest = rest.trim_matches(|c: char| c == '(' || c == ')' || c == '（' || c == '）' || c.is_whitespace());
        if rest.is_empty() {
            return Ok(amount);
        }
        return parse_fen(rest).map_err(|e| format!("当前状态 `{status}`: {e}"));
    }
    Ok(0)
}

// ---------------------------------------------------------------- Alipay personal

/// The old web layout's names -> the 2023+ names.
const ALIPAY_ALIASES: &[(&str, &str)] = &[
    ("交易号", "交易订单号"),
    ("商品名称", "商品说明"),
    ("金额（元）", "金额"),
    ("金额(元)", "金额"),
    ("交易创建时间", "交易时间"),
];

pub fn parse_alipay(rows: Vec<Row>, ctx: &mut Ctx) -> Result<()> {
    let Some((hi, h)) = find_header(
        &rows,
        &["交易时间", "交易对方", "收/支", "金额", "交易状态", "交易订单号"],
        ALIPAY_ALIASES,
    ) else {
        bail!("no Alipay personal header row (交易时间,交易分类,交易对方,...) found");
    };
    let stated = stated_totals(&rows);
    let data: Vec<Row> = rows
        .into_iter()
        .skip(hi + 1)
        .filter(|r| used_len(&r.cells) >= 3 && !clean_cell(&r.cells[0]).starts_with('-'))
        .collect();
    let sales: HashSet<String> = data
        .iter()
        .filter(|r| alipay_is_sale(&h, &r.cells, ctx))
        .map(|r| h.cell(&r.cells, "交易订单号").to_string())
        .collect();
    let (mut read_rows, mut income_rows, mut income_fen) = (0i64, 0i64, 0i64);
    for r in &data {
        match alipay_row(&h, &r.cells, r.line, &sales, ctx) {
            Ok(()) => {
                read_rows += 1;
                if h.cell(&r.cells, "收/支") == "收入" {
                    income_rows += 1;
                    income_fen += parse_fen_or_zero(h.cell(&r.cells, "金额")).unwrap_or(0);
                }
            }
            Err(reason) => ctx.report.reject(r.line, reason, &r.raw),
        }
    }
    push_checks(&stated, read_rows, income_rows, income_fen, ctx);
    Ok(())
}

fn alipay_is_sale(h: &Header, cells: &[String], ctx: &Ctx) -> bool {
    let category = h.cell(cells, "交易分类");
    let status = h.cell(cells, "交易状态");
    h.cell(cells, "收/支") == "收入"
        && !h.cell(cells, "商品说明").starts_with("退款-")
        && !ctx
            .cfg
            .personal
            .alipay_excluded_categories
            .iter()
            .any(|c| c == category)
        && (status.contains("成功") && !status.contains("退款") || status == "已收钱")
}

fn alipay_row(h: &Header, cells: &[String], line: u64, sales: &HashSet<String>, ctx: &mut Ctx) -> Result<(), String> {
    if used_len(cells) < h.len.saturating_sub(2) {
        return Err(crate::tr!("reject.truncated", fields = used_len(cells), header = h.len));
    }
    let status = h.cell(cells, "交易状态");
    let tx = check_id(h.cell(cells, "交易订单号"), "交易订单号")?;
    let is_refund = h.cell(cells, "交易分类") == "退款" || h.cell(cells, "商品说明").starts_with("退款-");
    if status.contains("交易关闭") {
        ctx.report.skip(crate::tr!("skip.cancelled", status = "交易关闭"));
        return Ok(());
    }
    let original = tx.split('_').next().unwrap_or(tx);
    if is_refund {
        if !sales.contains(original) {
            ctx.report.skip(crate::tr!("skip.refund_of_purchase"));
            return Ok(());
        }
    } else if !sales.contains(tx) {
        let dir = h.cell(cells, "收/支");
        if dir == "收入" && !status.contains("成功") {
            ctx.report.skip(crate::tr!("skip.not_completed", status = status));
        } else {
            let what = [if dir.is_empty() { "/" } else { dir }, h.cell(cells, "交易分类")].join(" ");
            ctx.report.skip(crate::tr!("skip.not_a_sale", what = what.trim()));
        }
        return Ok(());
    }
    if tx.is_empty() {
        return Err(crate::tr!("reject.empty", what = "交易订单号"));
    }
    let time_raw = h.opt(cells, "付款时间").unwrap_or(h.cell(cells, "交易时间"));
    let (local, utc) = ctx.time(time_raw)?;
    let amount = parse_fen(h.cell(cells, "金额"))?.abs();
    let fee = parse_fen_or_zero(h.cell(cells, "服务费（元）"))?.abs() * super::normalise::MILLIFEN_PER_FEN;
    let counterparty = h.opt(cells, "交易对方");
    let account = h.opt(cells, "对方账号");
    let customer = (counterparty.is_some() || account.is_some()).then(|| RawIdentity {
        kind: "alipay_counterparty",
        id: format!(
            "alipay_personal:{}|{}",
            counterparty.unwrap_or(""),
            account.unwrap_or("")
        )
        .into(),
        label: format!(
            "{} {}",
            crate::privacy::mask_label(counterparty.unwrap_or("")),
            account.unwrap_or("")
        )
        .trim()
        .to_string()
        .into(),
        quality: KeyQuality::Weak,
    });
    let event = Event {
        event_id: format!("alp:{tx}").into(),
        kind: if is_refund { Kind::Refund } else { Kind::Payment },
        occurred_local: local,
        occurred_at: utc,
        order_id: Some(tx.to_string().into()),
        merchant_order_id: h.owned(cells, "商家订单号").map(Into::into),
        refund_id: is_refund.then(|| tx.to_string()).map(Into::into),
        payment_event_id: is_refund.then(|| format!("alp:{original}")).map(Into::into),
        customer,
        product_name: h.owned(cells, "商品说明").map(Into::into),
        amount_fen: if is_refund { -amount } else { amount },
        settled_fen: if is_refund { -amount } else { amount },
        discount_fen: 0,
        fee_millifen: if is_refund { 0 } else { fee },
        currency: "CNY".into(),
        channel: "alipay_personal",
        trade_type: h
            .owned(cells, "交易分类")
            .or_else(|| h.owned(cells, "类型"))
            .map(Into::into),
        store: None,
        terminal: None,
        operator: None,
        status: Some(status.to_string().into()),
        line,
    };
    // The web layout states refunds in a column of the sale row.
    let refunded = parse_fen_or_zero(h.cell(cells, "成功退款（元）"))?.abs();
    let refund = (refunded > 0 && !is_refund).then(|| {
        let refund_time = h.opt(cells, "最近修改时间").and_then(|t| ctx.time(t).ok());
        let (rl, ru) = refund_time.unwrap_or((local, utc));
        Event {
            event_id: format!("alp:{tx}:refund").into(),
            kind: Kind::Refund,
            occurred_local: rl,
            occurred_at: ru,
            refund_id: Some(format!("{tx}:refund").into()),
            payment_event_id: Some(format!("alp:{tx}").into()),
            amount_fen: -refunded,
            settled_fen: -refunded,
            fee_millifen: 0,
            ..event.clone()
        }
    });
    ctx.push(event);
    if let Some(r) = refund {
        ctx.push(r);
    }
    Ok(())
}
