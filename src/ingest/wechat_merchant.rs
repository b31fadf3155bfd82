//! WeChat Pay merchant trade bill (交易账单: API `downloadbill`/`tradebill`, merchant portal): ALL, SUCCESS and
//! REFUND, the current 27/20/29-column layouts and the legacy 24-column one, mapped by header name.
//! Detail cells carry a leading backtick; the `总交易单数` summary is parsed by name and recomputed.

use anyhow::{bail, Result};

use super::model::{Event, FileReport, KeyQuality, Kind, RawIdentity, RowText, Text, TotalCheck};
use super::normalise::{
    check_id, line_cells_into, parse_fen, parse_fen_or_zero, parse_millifen_or_zero, recycle_cells, split_csv_line,
    Header, TextEncoding,
};
use super::source::{piece_lines, Input, Lines, Piece};
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

/// The columns a detail row is read from, looked up by name once per file.
struct Cols {
    len: usize,
    time: Option<usize>,
    appid: Option<usize>,
    tx: Option<usize>,
    merchant_order: Option<usize>,
    openid: Option<usize>,
    status: Option<usize>,
    refund_no: Option<usize>,
    /// The layout has 退款申请时间 (ALL/REFUND): a refund number then marks a refund row.
    has_refund_time: bool,
    refund_success_time: Option<usize>,
    refund_apply_time: Option<usize>,
    refund_status: Option<usize>,
    merchant_refund_no: Option<usize>,
    refund_amount: Option<usize>,
    applied_refund_amount: Option<usize>,
    coupon_refund: Option<usize>,
    settled: Option<usize>,
    order_amount: Option<usize>,
    coupon: Option<usize>,
    fee: Option<usize>,
    product: Option<usize>,
    currency: Option<usize>,
    trade_type: Option<usize>,
    sub_merchant: Option<usize>,
    device: Option<usize>,
    /// The columns the summary totals, with their running sums.
    summed: Vec<(&'static str, Option<usize>)>,
}

impl Cols {
    fn new(h: &Header) -> Cols {
        Cols {
            len: h.len,
            time: h.get("交易时间"),
            appid: h.get("公众账号ID"),
            tx: h.get("微信订单号"),
            merchant_order: h.get("商户订单号"),
            openid: h.get("用户标识"),
            status: h.get("交易状态"),
            refund_no: h.get("微信退款单号"),
            has_refund_time: h.has("退款申请时间"),
            refund_success_time: h.get("退款成功时间"),
            refund_apply_time: h.get("退款申请时间"),
            refund_status: h.get("退款状态"),
            merchant_refund_no: h.get("商户退款单号"),
            refund_amount: h.get("退款金额"),
            applied_refund_amount: h.get("申请退款金额"),
            coupon_refund: h.get("充值券退款金额"),
            settled: h.get("应结订单金额"),
            order_amount: h.get("订单金额"),
            coupon: h.get("代金券金额"),
            fee: h.get("手续费"),
            product: h.get("商品名称"),
            currency: h.get("货币种类"),
            trade_type: h.get("交易类型"),
            sub_merchant: h.get("特约商户号"),
            device: h.get("设备号"),
            summed: summed_columns().into_iter().map(|c| (c, h.get(c))).collect(),
        }
    }
}

/// The detail columns the summary totals, each once, in the order of `Cols::summed` and `Sums::by_column`.
fn summed_columns() -> Vec<&'static str> {
    let mut summed: Vec<&'static str> = SUMMARY.iter().filter_map(|(_, c)| *c).collect();
    summed.sort_unstable();
    summed.dedup();
    summed
}

/// Running sums of the detail rows, for checking the summary: the row count and one sum per column of
/// `summed_columns()`, in its order.
#[derive(Debug, Clone)]
struct Sums {
    rows: i64,
    by_column: Vec<i64>,
}

impl Default for Sums {
    fn default() -> Sums {
        Sums {
            rows: 0,
            by_column: vec![0; summed_columns().len()],
        }
    }
}

impl Sums {
    fn get(&self, column: &str) -> i64 {
        summed_columns()
            .iter()
            .position(|c| *c == column)
            .map_or(0, |i| self.by_column[i])
    }

    fn add(&mut self, other: &Sums) {
        self.rows += other.rows;
        for (s, o) in self.by_column.iter_mut().zip(&other.by_column) {
            *s += o;
        }
    }
}

/// A summary met in the bill: its field names, its values line, the line it was on, and the sums of the
/// rows before it.
#[derive(Debug, Clone)]
struct Summary {
    names: Vec<String>,
    values: Option<String>,
    line: u64,
    sums: Sums,
}

/// What the rows of a bill, or of one piece of it, add up to; the summary is checked against it once
/// every piece has been read ([`finish`]).
#[derive(Debug, Clone, Default)]
pub struct Totals {
    sums: Sums,
    summaries: Vec<Summary>,
}

impl Totals {
    /// Adds the totals of the piece that follows.
    pub fn add(&mut self, later: Totals) {
        for mut s in later.summaries {
            let before = std::mem::replace(&mut s.sums, self.sums.clone());
            s.sums.add(&before);
            self.summaries.push(s);
        }
        self.sums.add(&later.sums);
    }
}

/// Parses a whole bill.
pub fn parse(input: &Input, enc: TextEncoding, ctx: &mut Ctx) -> Result<()> {
    let totals = parse_piece(input, enc, None, ctx)?;
    finish(totals, &mut ctx.report);
    Ok(())
}

/// Checks the bill's summary against the totals of all its rows.
pub fn finish(totals: Totals, report: &mut FileReport) {
    for s in &totals.summaries {
        check_summary(&s.names, s.values.as_deref(), &s.sums, report, s.line);
    }
    report.expects_totals = true;
}

/// The column map of a header line, `None` for a line that is not one.
fn header_cols(line: &str, n: u64) -> Result<Option<Cols>> {
    if !(line.contains("公众账号ID") && line.contains("交易时间")) {
        return Ok(None);
    }
    let h = Header::new(&split_csv_line(line), ALIASES);
    let missing = h.missing(REQUIRED);
    if !missing.is_empty() {
        bail!("line {n}: the WeChat merchant header lacks {}", missing.join(", "));
    }
    Ok(Some(Cols::new(&h)))
}

const NO_HEADER: &str = "no WeChat merchant header line (交易时间,公众账号ID,...) found";

/// Parses the rows of a bill, or of one piece of it (whole lines; any piece after the first finds the
/// header ahead of it), into `ctx`, and returns what they add up to.
pub fn parse_piece(input: &Input, enc: TextEncoding, piece: Option<Piece>, ctx: &mut Ctx) -> Result<Totals> {
    let (mut lines, mut header) = piece_lines(input, enc, piece, header_cols, NO_HEADER)?;
    let mut totals = Totals::default();
    let mut scratch = String::new();
    let mut text = RowText::default();
    let mut spare = Vec::new();
    let mut parsed = Parsed::default();
    while let Some(line) = lines.next_line_in(&mut scratch)? {
        let n = lines.line_no;
        if line.trim().is_empty() {
            continue;
        }
        let Some(cols) = &header else {
            header = header_cols(line, n)?;
            continue;
        };
        if line.starts_with("总交易单数") {
            let names = split_csv_line(line);
            let values = next_non_empty(&mut lines)?;
            totals.summaries.push(Summary {
                names,
                values,
                line: lines.line_no,
                sums: totals.sums.clone(),
            });
            continue;
        }
        let mut quoted = Vec::new();
        let mut cells = recycle_cells(std::mem::take(&mut spare));
        line_cells_into(line, &mut quoted, &mut cells);
        // Totals are recomputed over the rows read: a rejected row shows as a mismatch.
        parsed.len = 0;
        match read_row(cols, &cells, n, &mut text, &mut parsed, ctx) {
            Ok(()) => {
                totals.sums.rows += 1;
                add_sums(cols, &cells, &parsed, &mut totals.sums);
            }
            Err(reason) => ctx.report.reject(n, reason, line),
        }
        spare = recycle_cells(cells);
    }
    if header.is_none() {
        bail!(NO_HEADER);
    }
    Ok(totals)
}

fn next_non_empty(lines: &mut Lines) -> Result<Option<String>> {
    while let Some(l) = lines.next_line()? {
        if !l.trim().is_empty() {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

/// The amounts `read_row` parsed, by column index: the running totals take them as they are instead of
/// parsing the same cells again (3 of the 6 summed cells of a payment row; a row skipped before its
/// amounts were read has none).
#[derive(Default)]
struct Parsed {
    at: [usize; 4],
    value: [i64; 4],
    len: usize,
}

impl Parsed {
    fn note(&mut self, idx: Option<usize>, value: i64) {
        if let (Some(i), true) = (idx, self.len < self.at.len()) {
            self.at[self.len] = i;
            self.value[self.len] = value;
            self.len += 1;
        }
    }

    fn get(&self, idx: Option<usize>) -> Option<i64> {
        let i = idx?;
        (0..self.len).find(|&k| self.at[k] == i).map(|k| self.value[k])
    }
}

fn add_sums(cols: &Cols, cells: &[&str], parsed: &Parsed, sums: &mut Sums) {
    for (&(col, idx), sum) in cols.summed.iter().zip(sums.by_column.iter_mut()) {
        if let Some(v) = parsed.get(idx) {
            *sum += v;
            continue;
        }
        // Cleaned once here; an empty cell counts 0, as parse_*_or_zero read it.
        let scale = if col == "手续费" { 5 } else { 2 };
        let v = Header::opt_at(cells, idx).map_or(Ok(0), |c| super::normalise::parse_scaled(c, scale));
        if let Ok(v) = v {
            *sum += v;
        }
    }
}

fn check_summary(names: &[String], values: Option<&str>, sums: &Sums, report: &mut FileReport, line: u64) {
    let Some(values) = values else {
        report
            .notes
            .push(format!("line {line}: the summary header has no values row"));
        return;
    };
    let values = split_csv_line(values);
    for (name, value) in names.iter().zip(values.iter()) {
        let name = super::normalise::clean_cell(name);
        let Some((_, column)) = SUMMARY.iter().find(|(s, _)| *s == name) else {
            report.notes.push(format!("summary field {name} is not checked"));
            continue;
        };
        let (stated, computed, unit) = match column {
            None => (super::normalise::parse_scaled(value, 0), sums.rows, "rows"),
            Some("手续费") => (super::normalise::parse_millifen(value), sums.get("手续费"), "millifen"),
            Some(c) => (parse_fen(value), sums.get(c), "fen"),
        };
        match stated {
            Ok(stated) => report.checks.push(TotalCheck {
                what: name.to_string(),
                stated,
                computed,
                unit,
            }),
            Err(e) => report.notes.push(format!("line {line}: summary {name}: {e}")),
        }
    }
}

fn read_row(
    c: &Cols,
    cells: &[&str],
    line: u64,
    text: &mut RowText,
    parsed: &mut Parsed,
    ctx: &mut Ctx,
) -> Result<(), String> {
    let at = |idx| Header::at(cells, idx);
    let opt = |idx| Header::opt_at(cells, idx);
    // Every detail cell carries a backtick, so a field too many is an unquoted comma, not padding.
    let used = super::normalise::used_len(cells);
    if cells.len() > c.len && cells[c.len..].iter().any(|c| !c.trim().is_empty()) {
        return Err(crate::tr!("reject.extra_comma", fields = cells.len(), header = c.len));
    }
    if used < c.len.saturating_sub(3) || cells.len() < c.status.unwrap_or(0) + 1 {
        return Err(crate::tr!("reject.truncated", fields = cells.len(), header = c.len));
    }
    let status = at(c.status);
    let refund_no = opt(c.refund_no).filter(|r| *r != "0");
    let is_refund = status == "REFUND" || refund_no.is_some() && c.has_refund_time;
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
    let (event_id, payment_event_id, customer_id) = text.fresh();
    // The buyer's key is looked up in a large table: its memory is fetched while the rest of the row is read.
    let openid = opt(c.openid);
    if let Some(openid) = openid {
        for part in ["wechat:", opt(c.appid).unwrap_or(""), "/", openid] {
            customer_id.push_str(part);
        }
        ctx.sink.prefetch_key(customer_id);
    }
    let tx = check_id(at(c.tx), "微信订单号")?;
    if tx.is_empty() {
        return Err(crate::tr!("reject.empty", what = "微信订单号"));
    }
    let merchant_order = check_id(at(c.merchant_order), "商户订单号")?;
    let time_raw = if is_refund {
        opt(c.refund_success_time)
            .or(opt(c.refund_apply_time))
            .unwrap_or(at(c.time))
    } else {
        at(c.time)
    };
    let (local, utc) = ctx.time(time_raw)?;
    let fee = parse_millifen_or_zero(at(c.fee))?;
    parsed.note(c.fee, fee);
    payment_event_id.push_str("wx:");
    payment_event_id.push_str(tx);
    let (kind, event_id, payment_event_id, amount, settled, discount, refund_id) = if is_refund {
        if opt(c.refund_status).is_some_and(|s| s != "SUCCESS") {
            ctx.report
                .skip(crate::tr!("skip.refund_status", status = at(c.refund_status)));
            return Ok(());
        }
        let refund_id = refund_no
            .or(opt(c.merchant_refund_no))
            .ok_or("a refund row without 微信退款单号")?;
        let refund_id = check_id(refund_id, "微信退款单号")?;
        let amount = match opt(c.refund_amount) {
            Some(a) => parse_fen(a).inspect(|&v| parsed.note(c.refund_amount, v))?,
            None => {
                parse_fen_or_zero(at(c.applied_refund_amount)).inspect(|&v| parsed.note(c.applied_refund_amount, v))?
            }
        };
        let coupon = parse_fen_or_zero(at(c.coupon_refund))?;
        parsed.note(c.coupon_refund, coupon);
        for part in [payment_event_id.as_str(), ":refund:", refund_id] {
            event_id.push_str(part);
        }
        (
            Kind::Refund,
            &*event_id,
            Some(Text::Borrowed(payment_event_id.as_str())),
            -amount,
            -amount,
            -coupon,
            Some(refund_id.into()),
        )
    } else {
        let settled = parse_fen(at(c.settled))?;
        parsed.note(c.settled, settled);
        let amount = match opt(c.order_amount) {
            Some(a) => parse_fen(a).inspect(|&v| parsed.note(c.order_amount, v))?,
            None => settled,
        };
        let discount = parse_fen_or_zero(at(c.coupon))?;
        (Kind::Payment, &*payment_event_id, None, amount, settled, discount, None)
    };
    let customer = openid.map(|_| RawIdentity {
        kind: "wechat_openid",
        id: Text::Borrowed(customer_id.as_str()),
        label: Text::Borrowed(""),
        quality: KeyQuality::Strong,
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
        currency: opt(c.currency).unwrap_or("CNY").into(),
        channel: "wechat_pay",
        trade_type: text(c.trade_type),
        store: text(c.sub_merchant),
        terminal: text(c.device),
        operator: None,
        status: Some(status.into()),
        line,
    });
    Ok(())
}
