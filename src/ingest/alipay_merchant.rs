//! Alipay merchant 业务明细 (`bill_type=trade`): GBK, four `#` preamble lines, 25 columns with full-width
//! `（元）`, TAB-padded cells, refunds as negative `退款` rows, and the `#交易合计`/`#退款合计` trailer, which is
//! recomputed. The (汇总) per-store summary beside it is recognised and passed over; the 账务明细 balance
//! ledger is refused with what to export instead.

use anyhow::{bail, Result};

use super::model::{Event, FileReport, KeyQuality, Kind, RawIdentity, RowText, Text, TotalCheck};
use super::normalise::{
    check_id, line_cells, line_cells_into, parse_fen, parse_fen_or_zero, recycle_cells, Header, TextEncoding,
};
use super::source::{piece_lines, Input, Piece};
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

#[derive(Debug, Clone, Default)]
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

/// The columns a detail row is read from, looked up by name once per file.
struct Cols {
    len: usize,
    kind: Option<usize>,
    tx: Option<usize>,
    merchant_order: Option<usize>,
    created: Option<usize>,
    completed: Option<usize>,
    amount: Option<usize>,
    received: Option<usize>,
    discount: Option<usize>,
    fee: Option<usize>,
    refund_batch: Option<usize>,
    account: Option<usize>,
    product: Option<usize>,
    store_name: Option<usize>,
    store_no: Option<usize>,
    terminal: Option<usize>,
    operator: Option<usize>,
}

impl Cols {
    fn new(h: &Header) -> Cols {
        Cols {
            len: h.len,
            kind: h.get("业务类型"),
            tx: h.get("支付宝交易号"),
            merchant_order: h.get("商户订单号"),
            created: h.get("创建时间"),
            completed: h.get("完成时间"),
            amount: h.get("订单金额（元）"),
            received: h.get("商家实收（元）"),
            discount: h.get("商家优惠（元）"),
            fee: h.get("服务费（元）"),
            refund_batch: h.get("退款批次号/请求号"),
            account: h.get("对方账户"),
            product: h.get("商品名称"),
            store_name: h.get("门店名称"),
            store_no: h.get("门店编号"),
            terminal: h.get("终端号"),
            operator: h.get("操作员"),
        }
    }
}

/// What the rows of a bill, or of one piece of it, add up to, and the trailer lines met; the trailer is
/// checked once every piece has been read ([`finish`]).
#[derive(Debug, Clone, Default)]
pub struct Totals {
    sums: Sums,
    trailer: Vec<(u64, String)>,
}

impl Totals {
    /// Adds the totals of the piece that follows.
    pub fn add(&mut self, later: Totals) {
        let (s, o) = (&mut self.sums, later.sums);
        s.trades += o.trades;
        s.trade_received += o.trade_received;
        s.trade_amount += o.trade_amount;
        s.trade_discount += o.trade_discount;
        s.refunds += o.refunds;
        s.refund_received += o.refund_received;
        s.refund_amount += o.refund_amount;
        s.refund_discount += o.refund_discount;
        self.trailer.extend(later.trailer);
    }
}

/// Parses a whole bill.
pub fn parse(input: &Input, enc: TextEncoding, ctx: &mut Ctx) -> Result<()> {
    let totals = parse_piece(input, enc, None, ctx)?;
    finish(totals, &mut ctx.report);
    Ok(())
}

/// Checks the bill's trailer against the totals of all its rows.
pub fn finish(totals: Totals, report: &mut FileReport) {
    for (n, line) in &totals.trailer {
        check_trailer(line, *n, &totals.sums, report);
    }
    report.expects_totals = true;
}

const NO_HEADER: &str = "no Alipay 业务明细 header line (支付宝交易号,商户订单号,...) found";

/// The column map of a header line (the first that is not `#` and names 支付宝交易号), `None` for another.
fn header_cols(cells: &[&str], n: u64) -> Result<Option<Cols>> {
    let h = Header::new(cells, ALIASES);
    if !h.has("支付宝交易号") {
        return Ok(None);
    }
    let missing = h.missing(REQUIRED);
    if !missing.is_empty() {
        bail!("line {n}: the Alipay 业务明细 header lacks {}", missing.join(", "));
    }
    Ok(Some(Cols::new(&h)))
}

/// Parses the rows of a bill, or of one piece of it (whole lines; any piece after the first finds the
/// header ahead of it), into `ctx`, and returns what they add up to.
pub fn parse_piece(input: &Input, enc: TextEncoding, piece: Option<Piece>, ctx: &mut Ctx) -> Result<Totals> {
    // A piece after the first looks for the header among the lines ahead of it that are not `#` lines.
    let header_line = |line: &str, n| {
        if line.trim().is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        header_cols(&line_cells(line, &mut Vec::new()), n)
    };
    let (mut lines, mut header) = piece_lines(input, enc, piece, header_line, NO_HEADER)?;
    let mut totals = Totals::default();
    let (sums, trailer) = (&mut totals.sums, &mut totals.trailer);
    let mut scratch = String::new();
    let mut text = RowText::default();
    let mut spare = Vec::new();
    while let Some(line) = lines.next_line_in(&mut scratch)? {
        let n = lines.line_no;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if line.starts_with("#交易合计") || line.starts_with("#退款合计") {
                trailer.push((n, line.to_string()));
            }
            continue;
        }
        let mut quoted = Vec::new();
        let mut cells = recycle_cells(std::mem::take(&mut spare));
        line_cells_into(line, &mut quoted, &mut cells);
        match &header {
            None => header = header_cols(&cells, n)?,
            Some(cols) => match read_row(cols, &cells, n, &mut text, ctx) {
                Ok(()) => add_sums(cols, &cells, sums),
                Err(reason) => ctx.report.reject(n, reason, line),
            },
        }
        spare = recycle_cells(cells);
    }
    if header.is_none() {
        bail!(NO_HEADER);
    }
    Ok(totals)
}

fn add_sums(c: &Cols, cells: &[&str], s: &mut Sums) {
    let f = |idx| parse_fen_or_zero(Header::at(cells, idx)).unwrap_or(0);
    match Header::at(cells, c.kind) {
        "交易" => {
            s.trades += 1;
            s.trade_received += f(c.received);
            s.trade_amount += f(c.amount);
            s.trade_discount += f(c.discount);
        }
        "退款" => {
            s.refunds += 1;
            s.refund_received += f(c.received);
            s.refund_amount += f(c.amount);
            s.refund_discount += f(c.discount);
        }
        _ => {}
    }
}

/// `#交易合计：6笔，商家实收共0.06元，商家优惠共0.00元` (or the older `交易金额共…，优惠金额共…`).
fn check_trailer(line: &str, n: u64, s: &Sums, report: &mut FileReport) {
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
                    report
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
            Ok(stated) => report.checks.push(TotalCheck {
                what,
                stated,
                computed,
                unit,
            }),
            Err(e) => report.notes.push(format!("line {n}: {what}: {e}")),
        }
    }
}

fn read_row(c: &Cols, cells: &[&str], line: u64, text: &mut RowText, ctx: &mut Ctx) -> Result<(), String> {
    let at = |idx| Header::at(cells, idx);
    let opt = |idx| Header::opt_at(cells, idx);
    if super::normalise::used_len(cells) > c.len {
        return Err(crate::tr!(
            "reject.too_many_fields",
            fields = super::normalise::used_len(cells),
            header = c.len
        ));
    }
    let kind = match at(c.kind) {
        "交易" => Kind::Payment,
        "退款" => Kind::Refund,
        "" => return Err(crate::tr!("reject.alipay_kind_empty").to_string()),
        other => {
            ctx.report
                .skip(crate::tr!("skip.not_a_sale", what = format!("业务类型 {other}")));
            return Ok(());
        }
    };
    let (event_id, payment_event_id, customer_id) = text.fresh();
    // The buyer's key is looked up in a large table: its memory is fetched while the rest of the row is read.
    let account = opt(c.account);
    if let Some(acct) = account {
        customer_id.push_str("alipay_masked:");
        customer_id.push_str(acct);
        ctx.sink.prefetch_key(customer_id);
    }
    let tx = check_id(at(c.tx), "支付宝交易号")?;
    if tx.is_empty() {
        return Err(crate::tr!("reject.empty", what = "支付宝交易号"));
    }
    let merchant_order = check_id(at(c.merchant_order), "商户订单号")?;
    let time_raw = match kind {
        Kind::Payment => opt(c.completed).unwrap_or(at(c.created)),
        Kind::Refund => opt(c.completed).ok_or("a refund row without 完成时间")?,
    };
    let (local, utc) = ctx.time(time_raw)?;
    let mut amount = parse_fen(at(c.amount))?;
    let mut settled = parse_fen_or_zero(at(c.received))?;
    let discount = parse_fen_or_zero(at(c.discount))?;
    if kind == Kind::Refund && amount > 0 {
        amount = -amount;
        settled = -settled.abs();
    }
    // 服务费 is zero or negative on trades (charged): store the fee paid as positive 1/1000 fen.
    let fee = -parse_fen_or_zero(at(c.fee))? * super::normalise::MILLIFEN_PER_FEN;
    payment_event_id.push_str("alipay:");
    payment_event_id.push_str(tx);
    let (event_id, payment_event_id, refund_id): (&str, _, _) = match kind {
        Kind::Payment => (payment_event_id, None, None),
        Kind::Refund => {
            let r = opt(c.refund_batch)
                .map(str::to_string)
                .unwrap_or_else(|| local.format("%Y%m%d%H%M%S").to_string());
            let r = check_id(&r, "退款批次号")?.to_string();
            for part in [payment_event_id.as_str(), ":refund:", &r] {
                event_id.push_str(part);
            }
            (
                &*event_id,
                Some(Text::Borrowed(payment_event_id.as_str())),
                Some(r.into()),
            )
        }
    };
    let customer = account.map(|acct| RawIdentity {
        kind: "alipay_masked_account",
        id: Text::Borrowed(customer_id.as_str()),
        label: Text::Borrowed(acct),
        quality: KeyQuality::Weak,
    });
    let text = |idx| opt(idx).map(Text::from);
    ctx.push(Event {
        event_id: Text::Borrowed(event_id),
        kind,
        occurred_local: local,
        occurred_at: utc,
        order_id: Some(tx.into()),
        merchant_order_id: (!merchant_order.is_empty()).then_some(merchant_order.into()),
        refund_id,
        payment_event_id,
        customer,
        product_name: text(c.product),
        amount_fen: amount,
        settled_fen: settled,
        discount_fen: discount,
        fee_millifen: fee,
        currency: "CNY".into(),
        channel: "alipay",
        trade_type: None,
        store: text(c.store_name).or_else(|| text(c.store_no)),
        terminal: text(c.terminal),
        operator: text(c.operator),
        status: Some(at(c.kind).into()),
        line,
    });
    Ok(())
}
