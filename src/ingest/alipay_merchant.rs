//! Alipay merchant 业务明细 (`bill_type=trade`): GBK, four `#` preamble lines, 25 columns with full-width
//! `（元）`, TAB-padded cells, refunds as negative `退款` rows, and the `#交易合计`/`#退款合计` trailer, which is
//! recomputed. The (汇总) per-store summary beside it is recognised and passed over; the 账务明细 balance
//! ledger is refused with what to export instead.

use anyhow::{bail, Result};

use super::model::{Event, KeyQuality, Kind, RawIdentity, TotalCheck};
use super::normalise::{check_id, parse_fen, parse_fen_or_zero, split_csv_line, Header, TextEncoding};
use super::source::{Input, Lines};
use super::Ctx;

pub const FORMAT: &str = "alipay_merchant";
pub const SUMMARY_FORMAT: &str = "alipay_merchant_summary";

pub const DETAILS_MARKER: &str = "#支付宝业务明细查询";
pub const SUMMARY_MARKER: &str = "#支付宝业务汇总查询";
pub const LEDGER_MARKER: &str = "#支付宝账务明细查询";

pub const LEDGER_REFUSAL: &str = "this is an Alipay 账务明细 (account balance ledger, bill_type=signcustomer): it \
     lists balance movements, not sales. Export 业务明细 (bill_type=trade) from the Alipay merchant portal \
     (对账中心 > 下载业务明细) and ingest that instead";

const REQUIRED: &[&str] = &[
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "创建时间",
    "订单金额（元）",
    "商家实收（元）",
];

/// Half-width spellings some re-saved files use.
const ALIASES: &[(&str, &str)] = &[
    ("订单金额(元)", "订单金额（元）"),
    ("商家实收(元)", "商家实收（元）"),
    ("商家优惠(元)", "商家优惠（元）"),
    ("服务费(元)", "服务费（元）"),
];

#[derive(Default)]
struct Sums {
    trades: i64,
    trade_received: i64,
    trade_amount: i64,
    trade_discount: i64,
    refunds: i64,
    refund_received: i64,
    refund_amount: i64,
    refund_discount: i64,
}

pub fn parse(input: &Input, enc: TextEncoding, ctx: &mut Ctx) -> Result<()> {
    let mut lines = Lines::new(input, enc)?;
    let mut header: Option<Header> = None;
    let mut sums = Sums::default();
    let mut trailer = Vec::new();
    while let Some(line) = lines.next_line()? {
        let n = lines.line_no;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if line.starts_with("#交易合计") || line.starts_with("#退款合计") {
                trailer.push((n, line));
            }
            continue;
        }
        let cells = split_csv_line(&line);
        let Some(h) = &header else {
            let h = Header::new(&cells, ALIASES);
            if h.has("支付宝交易号") {
                let missing = h.missing(REQUIRED);
                if !missing.is_empty() {
                    bail!("line {n}: the Alipay 业务明细 header lacks {}", missing.join(", "));
                }
                header = Some(h);
            }
            continue;
        };
        match read_row(h, &cells, n, ctx) {
            Ok(()) => add_sums(h, &cells, &mut sums),
            Err(reason) => ctx.report.reject(n, reason, &line),
        }
    }
    if header.is_none() {
        bail!("no Alipay 业务明细 header line (支付宝交易号,商户订单号,...) found");
    }
    for (n, line) in trailer {
        check_trailer(&line, n, &sums, ctx);
    }
    ctx.report.expects_totals = true;
    Ok(())
}

fn add_sums(h: &Header, cells: &[String], s: &mut Sums) {
    let f = |name| parse_fen_or_zero(h.cell(cells, name)).unwrap_or(0);
    match h.cell(cells, "业务类型") {
        "交易" => {
            s.trades += 1;
            s.trade_received += f("商家实收（元）");
            s.trade_amount += f("订单金额（元）");
            s.trade_discount += f("商家优惠（元）");
        }
        "退款" => {
            s.refunds += 1;
            s.refund_received += f("商家实收（元）");
            s.refund_amount += f("订单金额（元）");
            s.refund_discount += f("商家优惠（元）");
        }
        _ => {}
    }
}

/// `#交易合计：6笔，商家实收共0.06元，商家优惠共0.00元` (or the older `交易金额共…，优惠金额共…`).
fn check_trailer(line: &str, n: u64, s: &Sums, ctx: &mut Ctx) {
    let refund = line.starts_with("#退款合计");
    let body = line
        .split_once('：')
        .or_else(|| line.split_once(':'))
        .map_or("", |(_, b)| b);
    for part in body.split(['，', ',']) {
        let part = part.trim();
        let (what, stated, computed, unit) = if let Some(count) = part.strip_suffix('笔') {
            let what = if refund {
                "#退款合计 笔数"
            } else {
                "#交易合计 笔数"
            };
            (
                what.to_string(),
                super::normalise::parse_scaled(count, 0),
                if refund { s.refunds } else { s.trades },
                "rows",
            )
        } else if let Some((label, amount)) = part.strip_suffix('元').and_then(|p| p.split_once('共')) {
            let computed = match (refund, label) {
                (false, "商家实收") => s.trade_received,
                (false, "交易金额") => s.trade_amount,
                (false, "商家优惠" | "优惠金额") => s.trade_discount,
                (true, "商家实收退款") => s.refund_received,
                (true, "退款金额" | "交易金额") => s.refund_amount,
                (true, "商家优惠退款" | "优惠金额") => s.refund_discount,
                _ => {
                    ctx.report
                        .notes
                        .push(format!("line {n}: trailer item {label} is not checked"));
                    continue;
                }
            };
            let tag = if refund { "#退款合计" } else { "#交易合计" };
            (format!("{tag} {label}"), parse_fen(amount), computed, "fen")
        } else {
            continue;
        };
        match stated {
            Ok(stated) => ctx.report.checks.push(TotalCheck {
                what,
                stated,
                computed,
                unit,
            }),
            Err(e) => ctx.report.notes.push(format!("line {n}: {what}: {e}")),
        }
    }
}

fn read_row(h: &Header, cells: &[String], line: u64, ctx: &mut Ctx) -> Result<(), String> {
    if super::normalise::used_len(cells) > h.len {
        return Err(crate::tr!(
            "reject.too_many_fields",
            fields = super::normalise::used_len(cells),
            header = h.len
        ));
    }
    let kind = match h.cell(cells, "业务类型") {
        "交易" => Kind::Payment,
        "退款" => Kind::Refund,
        "" => return Err(crate::tr!("reject.alipay_kind_empty").to_string()),
        other => {
            ctx.report
                .skip(crate::tr!("skip.not_a_sale", what = format!("业务类型 {other}")));
            return Ok(());
        }
    };
    let tx = check_id(h.cell(cells, "支付宝交易号"), "支付宝交易号")?;
    if tx.is_empty() {
        return Err(crate::tr!("reject.empty", what = "支付宝交易号"));
    }
    let merchant_order = check_id(h.cell(cells, "商户订单号"), "商户订单号")?;
    let time_raw = match kind {
        Kind::Payment => h.opt(cells, "完成时间").unwrap_or(h.cell(cells, "创建时间")),
        Kind::Refund => h.opt(cells, "完成时间").ok_or("a refund row without 完成时间")?,
    };
    let (local, utc) = ctx.time(time_raw)?;
    let mut amount = parse_fen(h.cell(cells, "订单金额（元）"))?;
    let mut settled = parse_fen_or_zero(h.cell(cells, "商家实收（元）"))?;
    let discount = parse_fen_or_zero(h.cell(cells, "商家优惠（元）"))?;
    if kind == Kind::Refund && amount > 0 {
        amount = -amount;
        settled = -settled.abs();
    }
    // 服务费 is zero or negative on trades (charged): store the fee paid as positive 1/1000 fen.
    let fee = -parse_fen_or_zero(h.cell(cells, "服务费（元）"))? * super::normalise::MILLIFEN_PER_FEN;
    let payment_event_id = format!("alipay:{tx}");
    let (event_id, refund_id) = match kind {
        Kind::Payment => (payment_event_id.clone(), None),
        Kind::Refund => {
            let r = h
                .opt(cells, "退款批次号/请求号")
                .map(str::to_string)
                .unwrap_or_else(|| local.format("%Y%m%d%H%M%S").to_string());
            let r = check_id(&r, "退款批次号")?.to_string();
            (format!("alipay:{tx}:refund:{r}"), Some(r))
        }
    };
    let customer = h.opt(cells, "对方账户").map(|acct| RawIdentity {
        kind: "alipay_masked_account",
        id: format!("alipay_masked:{acct}"),
        label: acct.to_string(),
        quality: KeyQuality::Weak,
    });
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
        currency: "CNY".into(),
        channel: "alipay",
        trade_type: None,
        store: h.owned(cells, "门店名称").or_else(|| h.owned(cells, "门店编号")),
        terminal: h.owned(cells, "终端号"),
        operator: h.owned(cells, "操作员"),
        status: Some(h.cell(cells, "业务类型").to_string()),
        line,
    });
    Ok(())
}
