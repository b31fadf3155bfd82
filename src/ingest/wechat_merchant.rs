//! WeChat Pay merchant trade bill (交易账单: API `downloadbill`/`tradebill`, merchant portal): ALL, SUCCESS and
//! REFUND, the current 27/20/29-column layouts and the legacy 24-column one, mapped by header name.
//! Detail cells carry a leading backtick; the `总交易单数` summary is parsed by name and recomputed.

use anyhow::{bail, Result};

use super::model::{Event, KeyQuality, Kind, RawIdentity, TotalCheck};
use super::normalise::{
    check_id, parse_fen, parse_fen_or_zero, parse_millifen_or_zero, split_csv_line, Header, TextEncoding,
};
use super::source::{Input, Lines};
use super::Ctx;

pub const FORMAT: &str = "wechat_merchant";

/// Other spellings (legacy layout, 企业红包 wording) -> the current names.
const ALIASES: &[(&str, &str)] = &[
    ("总金额", "应结订单金额"),
    ("代金券或立减优惠金额", "代金券金额"),
    ("企业红包金额", "代金券金额"),
    ("代金券或立减优惠退款金额", "充值券退款金额"),
    ("企业红包退款金额", "充值券退款金额"),
    ("子商户号", "特约商户号"),
];

const REQUIRED: &[&str] = &[
    "交易时间",
    "公众账号ID",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易状态",
    "应结订单金额",
];

/// Summary field -> the detail column it totals (`None`: the row count). Fees are in 1/1000 fen.
const SUMMARY: &[(&str, Option<&str>)] = &[
    ("总交易单数", None),
    ("应结订单总金额", Some("应结订单金额")),
    ("总交易额", Some("应结订单金额")),
    ("退款总金额", Some("退款金额")),
    ("总退款金额", Some("退款金额")),
    ("充值券退款总金额", Some("充值券退款金额")),
    ("总代金券或立减优惠退款金额", Some("充值券退款金额")),
    ("总企业红包退款金额", Some("充值券退款金额")),
    ("手续费总金额", Some("手续费")),
    ("订单总金额", Some("订单金额")),
    ("申请退款总金额", Some("申请退款金额")),
];

/// Does this header line start a WeChat merchant bill?
pub fn detect(first_lines: &[String]) -> bool {
    first_lines.iter().take(3).any(|l| {
        let l = l.trim_start_matches('\u{feff}');
        l.starts_with("交易时间,公众账号ID,商户号,")
            || (l.contains("公众账号ID") && l.contains("用户标识") && l.contains("微信订单号"))
    })
}

/// Running sums of the detail rows, for checking the summary.
#[derive(Default)]
struct Sums {
    rows: i64,
    by_column: std::collections::HashMap<&'static str, i64>,
}

pub fn parse(input: &Input, enc: TextEncoding, ctx: &mut Ctx) -> Result<()> {
    let mut lines = Lines::new(input, enc)?;
    let mut header: Option<Header> = None;
    let mut sums = Sums::default();
    let mut summed: Vec<&'static str> = SUMMARY.iter().filter_map(|(_, c)| *c).collect();
    summed.sort_unstable();
    summed.dedup();
    while let Some(line) = lines.next_line()? {
        let n = lines.line_no;
        if line.trim().is_empty() {
            continue;
        }
        let Some(h) = &header else {
            if line.contains("公众账号ID") && line.contains("交易时间") {
                let h = Header::new(&split_csv_line(&line), ALIASES);
                let missing = h.missing(REQUIRED);
                if !missing.is_empty() {
                    bail!("line {n}: the WeChat merchant header lacks {}", missing.join(", "));
                }
                header = Some(h);
            }
            continue;
        };
        if line.starts_with("总交易单数") {
            let summary_header = split_csv_line(&line);
            let values = next_non_empty(&mut lines)?;
            check_summary(&summary_header, values.as_deref(), &sums, ctx, lines.line_no);
            continue;
        }
        let owned;
        let cells: Vec<&str> = if line.contains('"') {
            owned = split_csv_line(&line);
            owned.iter().map(String::as_str).collect()
        } else {
            line.split(',').collect()
        };
        // Totals are recomputed over the rows read: a rejected row shows as a mismatch.
        match read_row(h, &cells, n, ctx) {
            Ok(()) => {
                sums.rows += 1;
                add_sums(h, &cells, &summed, &mut sums);
            }
            Err(reason) => ctx.report.reject(n, reason, &line),
        }
    }
    if header.is_none() {
        bail!("no WeChat merchant header line (交易时间,公众账号ID,...) found");
    }
    ctx.report.expects_totals = true;
    Ok(())
}

fn next_non_empty(lines: &mut Lines) -> Result<Option<String>> {
    while let Some(l) = lines.next_line()? {
        if !l.trim().is_empty() {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

fn add_sums(h: &Header, cells: &[&str], summed: &[&'static str], sums: &mut Sums) {
    for &col in summed {
        let raw = h.cell(cells, col);
        let v = if col == "手续费" {
            parse_millifen_or_zero(raw)
        } else {
            parse_fen_or_zero(raw)
        };
        if let Ok(v) = v {
            *sums.by_column.entry(col).or_default() += v;
        }
    }
}

fn check_summary(names: &[String], values: Option<&str>, sums: &Sums, ctx: &mut Ctx, line: u64) {
    let Some(values) = values else {
        ctx.report
            .notes
            .push(format!("line {line}: the summary header has no values row"));
        return;
    };
    let values = split_csv_line(values);
    for (name, value) in names.iter().zip(values.iter()) {
        let name = super::normalise::clean_cell(name);
        let Some((_, column)) = SUMMARY.iter().find(|(s, _)| *s == name) else {
            ctx.report.notes.push(format!("summary field {name} is not checked"));
            continue;
        };
        let (stated, computed, unit) = match column {
            None => (super::normalise::parse_scaled(value, 0), sums.rows, "rows"),
            Some("手续费") => (
                super::normalise::parse_millifen(value),
                sums.by_column.get("手续费").copied().unwrap_or(0),
                "millifen",
            ),
            Some(c) => (parse_fen(value), sums.by_column.get(c).copied().unwrap_or(0), "fen"),
        };
        match stated {
            Ok(stated) => ctx.report.checks.push(TotalCheck {
                what: name.to_string(),
                stated,
                computed,
                unit,
            }),
            Err(e) => ctx.report.notes.push(format!("line {line}: summary {name}: {e}")),
        }
    }
}

fn read_row(h: &Header, cells: &[&str], line: u64, ctx: &mut Ctx) -> Result<(), String> {
    // Every detail cell carries a backtick, so a field too many is an unquoted comma, not padding.
    let used = super::normalise::used_len(cells);
    if cells.len() > h.len && cells[h.len..].iter().any(|c| !c.trim().is_empty()) {
        return Err(crate::tr!("reject.extra_comma", fields = cells.len(), header = h.len));
    }
    if used < h.len.saturating_sub(3) || cells.len() < h.get("交易状态").unwrap_or(0) + 1 {
        return Err(crate::tr!("reject.truncated", fields = cells.len(), header = h.len));
    }
    let status = h.cell(cells, "交易状态");
    let refund_no = h.opt(cells, "微信退款单号").filter(|r| *r != "0");
    let is_refund = status == "REFUND" || refund_no.is_some() && h.has("退款申请时间");
    match status {
        "REVOKED" | "CLOSED" => {
            ctx.report.skip(crate::tr!("skip.cancelled", status = "REVOKED"));
            return Ok(());
        }
        "SUCCESS" | "REFUND" => {}
        _ if is_refund => {}
        other => {
            ctx.report.skip(crate::tr!("skip.not_completed", status = other));
            return Ok(());
        }
    }
    let tx = check_id(h.cell(cells, "微信订单号"), "微信订单号")?;
    if tx.is_empty() {
        return Err(crate::tr!("reject.empty", what = "微信订单号"));
    }
    let merchant_order = check_id(h.cell(cells, "商户订单号"), "商户订单号")?;
    let time_raw = if is_refund {
        h.opt(cells, "退款成功时间")
            .or(h.opt(cells, "退款申请时间"))
            .unwrap_or(h.cell(cells, "交易时间"))
    } else {
        h.cell(cells, "交易时间")
    };
    let (local, utc) = ctx.time(time_raw)?;
    let fee = parse_millifen_or_zero(h.cell(cells, "手续费"))?;
    let payment_event_id = format!("wx:{tx}");
    let (kind, event_id, amount, settled, discount, refund_id) = if is_refund {
        if h.opt(cells, "退款状态").is_some_and(|s| s != "SUCCESS") {
            ctx.report
                .skip(crate::tr!("skip.refund_status", status = h.cell(cells, "退款状态")));
            return Ok(());
        }
        let refund_id = refund_no
            .or(h.opt(cells, "商户退款单号"))
            .ok_or("a refund row without 微信退款单号")?;
        let refund_id = check_id(refund_id, "微信退款单号")?.to_string();
        let amount = match h.opt(cells, "退款金额") {
            Some(a) => parse_fen(a)?,
            None => parse_fen_or_zero(h.cell(cells, "申请退款金额"))?,
        };
        let coupon = parse_fen_or_zero(h.cell(cells, "充值券退款金额"))?;
        (
            Kind::Refund,
            format!("wx:{tx}:refund:{refund_id}"),
            -amount,
            -amount,
            -coupon,
            Some(refund_id),
        )
    } else {
        let settled = parse_fen(h.cell(cells, "应结订单金额"))?;
        let amount = match h.opt(cells, "订单金额") {
            Some(a) => parse_fen(a)?,
            None => settled,
        };
        let discount = parse_fen_or_zero(h.cell(cells, "代金券金额"))?;
        (Kind::Payment, payment_event_id.clone(), amount, settled, discount, None)
    };
    let customer = match (h.opt(cells, "公众账号ID"), h.opt(cells, "用户标识")) {
        (appid, Some(openid)) => Some(RawIdentity {
            kind: "wechat_openid",
            id: format!("wechat:{}/{openid}", appid.unwrap_or("")),
            label: String::new(),
            quality: KeyQuality::Strong,
        }),
        _ => None,
    };
    ctx.push(Event {
        event_id,
        kind,
        occurred_local: local,
        occurred_at: utc,
        order_id: Some(tx.to_string()),
        merchant_order_id: (!merchant_order.is_empty()).then(|| merchant_order.to_string()),
        refund_id,
        payment_event_id: (kind == Kind::Refund).then_some(payment_event_id),
        customer,
        product_name: h.owned(cells, "商品名称"),
        amount_fen: amount,
        settled_fen: settled,
        discount_fen: discount,
        fee_millifen: fee,
        currency: h.opt(cells, "货币种类").unwrap_or("CNY").to_string(),
        channel: "wechat_pay",
        trade_type: h.owned(cells, "交易类型"),
        store: h.owned(cells, "特约商户号"),
        terminal: h.owned(cells, "设备号"),
        operator: None,
        status: Some(status.to_string()),
        line,
    });
    Ok(())
}
