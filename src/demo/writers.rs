//! Writers for the real export formats, byte for byte as ../shared/reference/bill-formats.md describes them:
//! WeChat merchant ALL bills (UTF-8, backticks, summary), Alipay merchant monthly `.csv.zip` (GBK, TAB
//! padding, trailer, (汇总) file, GBK entry names without the UTF-8 flag), WeChat personal XLSX (2025 and
//! 2026-03 layouts), Alipay personal CSV (GBK, 2023+ layout), POS line items and an inventory snapshot.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate, NaiveDateTime};

use crate::ingest::normalise::format_yuan;

/// One payment or refund as it appears in a bill.
#[derive(Debug, Clone)]
pub struct BillEntry {
    pub time: NaiveDateTime,
    pub refund: bool,
    /// Cancelled (WeChat REVOKED, Alipay 交易关闭).
    pub cancelled: bool,
    /// Platform transaction id of the payment (refunds repeat it).
    pub tx_id: String,
    pub merchant_order_id: String,
    pub refund_id: String,
    /// Identity as the platform shows it: openid, masked account, nickname.
    pub buyer: String,
    pub buyer_account: String,
    pub product: String,
    /// Order amount (payments) or refund amount (refunds), positive fen.
    pub amount_fen: i64,
    pub coupon_fen: i64,
    /// Set on a personal-bill sale whose money was later returned (fully or in part).
    pub refunded_fen: i64,
}

pub fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

/// 1/1000 fen printed as yuan with the 5 decimals of WeChat's fee columns (`4000` -> `0.04000`).
fn yuan5(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    format!("{sign}{}.{:05}", milli.abs() / 100_000, milli.abs() % 100_000)
}

pub const WECHAT_APPID: &str = "wx2421b1c4370ec43b";
pub const WECHAT_MCH: &str = "1900000109";

/// A WeChat Pay merchant ALL trade bill for one day (27 columns), rows in time order, with the summary.
pub fn wechat_merchant_day(path: &Path, entries: &[BillEntry]) -> Result<()> {
    let mut s = String::with_capacity(256 * (entries.len() + 4));
    s.push_str("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n");
    let (mut settled_sum, mut refund_sum, mut fee_milli, mut order_sum) = (0i64, 0i64, 0i64, 0i64);
    for e in entries {
        let trade_type = if e.tx_id.ends_with(['1', '3', '5']) {
            "MICROPAY"
        } else {
            "JSAPI"
        };
        let bank = if e.tx_id.ends_with('7') { "CMB_DEBIT" } else { "OTHERS" };
        let (status, settled, coupon, refund_no, mch_refund_no, refund_amt, refund_type, refund_status, fee, order_amt) =
            if e.refund {
                let fee = -e.amount_fen * 6;
                (
                    "REFUND",
                    0,
                    0,
                    e.refund_id.clone(),
                    format!("R{}", e.merchant_order_id),
                    e.amount_fen,
                    "ORIGINAL",
                    "SUCCESS",
                    fee,
                    0,
                )
            } else {
                let settled = e.amount_fen - e.coupon_fen;
                let status = if e.cancelled { "REVOKED" } else { "SUCCESS" };
                (
                    status,
                    settled,
                    e.coupon_fen,
                    "0".into(),
                    "0".into(),
                    0,
                    "",
                    "",
                    settled * 6,
                    e.amount_fen,
                )
            };
        settled_sum += settled;
        refund_sum += refund_amt;
        fee_milli += fee;
        order_sum += order_amt;
        // WeChat charges 0.6 % of the settled amount: exactly 6/1000 fen per fen.
        let fee_text = yuan5(fee);
        let _ = write!(
            s,
            "`{},`{WECHAT_APPID},`{WECHAT_MCH},`0,`,`{},`{},`{},`{trade_type},`{status},`{bank},`CNY,`{},`{},`{refund_no},`{mch_refund_no},`{},`0.00,`{refund_type},`{refund_status},`{},`,`{fee_text},`0.60%,`{},`{},`\r\n",
            ts(e.time),
            e.tx_id,
            e.merchant_order_id,
            e.buyer,
            format_yuan(settled),
            format_yuan(coupon),
            format_yuan(refund_amt),
            e.product,
            format_yuan(order_amt),
            format_yuan(refund_amt),
        );
    }
    s.push_str("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n");
    let _ = write!(
        s,
        "`{},`{},`{},`0.00,`{},`{},`{}\r\n",
        entries.len(),
        format_yuan(settled_sum),
        format_yuan(refund_sum),
        yuan5(fee_milli),
        format_yuan(order_sum),
        format_yuan(refund_sum)
    );
    write_file(path, s.as_bytes())
}

pub const ALIPAY_ACCOUNT: &str = "20880211096256330156";

fn cn_date(d: NaiveDate) -> String {
    d.format("%Y年%m月%d日").to_string()
}

/// An Alipay merchant monthly export: a zip holding the GBK 业务明细 CSV and its (汇总) file, entry names
/// in GBK without the UTF-8 flag.
pub fn alipay_merchant_month(
    path: &Path,
    from: NaiveDate,
    to_exclusive: NaiveDate,
    entries: &[BillEntry],
) -> Result<()> {
    let mut s = String::with_capacity(300 * (entries.len() + 10));
    s.push_str("#支付宝业务明细查询\r\n");
    let _ = write!(s, "#账号：[{ALIPAY_ACCOUNT}]\r\n");
    let _ = write!(
        s,
        "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]\r\n",
        cn_date(from),
        cn_date(to_exclusive)
    );
    s.push_str("#-----------------------------------------业务明细列表----------------------------------------\r\n");
    s.push_str("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r\n");
    let (mut trades, mut trade_received, mut trade_discount) = (0, 0i64, 0i64);
    let (mut refunds, mut refund_received) = (0, 0i64);
    for e in entries.iter().filter(|e| !e.cancelled) {
        // Alipay rounds its 0.6 % service fee to the fen.
        let fee = (e.amount_fen * 6 + 500) / 1000;
        let (kind, amount, received, discount, fee, refund_no, created) = if e.refund {
            refunds += 1;
            refund_received -= e.amount_fen;
            (
                "退款",
                -e.amount_fen,
                -e.amount_fen,
                0,
                fee,
                e.refund_id.as_str(),
                e.time,
            )
        } else {
            trades += 1;
            trade_received += e.amount_fen - e.coupon_fen;
            trade_discount += e.coupon_fen;
            (
                "交易",
                e.amount_fen,
                e.amount_fen - e.coupon_fen,
                e.coupon_fen,
                -fee,
                "",
                e.time - chrono::Duration::seconds(3),
            )
        };
        let _ = write!(
            s,
            "{}\t,{}\t,{kind},{},{},{},\t,旗舰店\t,\t,\t,{}\t,{},{},0.00,0.00,0.00,{},0.00,\t,0.00,0.00,{refund_no}\t,{},0.00,\t\r\n",
            e.tx_id,
            e.merchant_order_id,
            e.product,
            ts(created),
            ts(e.time),
            e.buyer,
            format_yuan(amount),
            format_yuan(received),
            format_yuan(discount),
            format_yuan(fee),
        );
    }
    s.push_str("#-----------------------------------------业务明细列表结束------------------------------------\r\n");
    let _ = write!(
        s,
        "#交易合计：{trades}笔，商家实收共{}元，商家优惠共{}元\r\n",
        format_yuan(trade_received),
        format_yuan(trade_discount)
    );
    let _ = write!(
        s,
        "#退款合计：{refunds}笔，商家实收退款共{}元，商家优惠退款共0.00元\r\n",
        format_yuan(refund_received)
    );
    let _ = write!(s, "#导出时间：[{} 05:46:49]\r\n", cn_date(to_exclusive));
    let mut summary = String::new();
    summary.push_str("#支付宝业务汇总查询\r\n");
    let _ = write!(summary, "#账号：[{ALIPAY_ACCOUNT}]\r\n");
    let _ = write!(
        summary,
        "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]\r\n",
        cn_date(from),
        cn_date(to_exclusive)
    );
    summary
        .push_str("#-----------------------------------------业务汇总列表----------------------------------------\r\n");
    summary.push_str("门店编号,门店名称,交易订单总笔数,退款订单总笔数,交易订单金额（元）,商家实收（元）,商家优惠（元）,退款金额（元）\r\n");
    let _ = write!(
        summary,
        ",旗舰店,{trades},{refunds},{},{},{},{}\r\n合计,,{trades},{refunds},{},{},{},{}\r\n",
        format_yuan(trade_received + trade_discount),
        format_yuan(trade_received),
        format_yuan(trade_discount),
        format_yuan(refund_received),
        format_yuan(trade_received + trade_discount),
        format_yuan(trade_received),
        format_yuan(trade_discount),
        format_yuan(refund_received)
    );
    summary
        .push_str("#-----------------------------------------业务汇总列表结束------------------------------------\r\n");
    let _ = write!(summary, "#导出时间：[{} 05:46:49]\r\n", cn_date(to_exclusive));
    let month = from.format("%Y%m").to_string();
    let details_name = format!("{ALIPAY_ACCOUNT}_{month}_业务明细.csv");
    let summary_name = format!("{ALIPAY_ACCOUNT}_{month}_业务明细(汇总).csv");
    let zip = gbk_named_zip(&[(details_name.as_str(), gbk(&s)), (summary_name.as_str(), gbk(&summary))])?;
    write_file(path, &zip)
}

/// Writes a zip whose entry names are GBK bytes without the UTF-8 flag, as Alipay's are. The zip crate
/// writes ASCII placeholder names of the same byte length, which are then replaced in the local headers
/// and the central directory (names are not covered by the CRC).
pub fn gbk_named_zip(entries: &[(&str, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut placeholders = Vec::new();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::from_date_and_time(2026, 1, 1, 0, 0, 0).expect("valid date"));
    for (i, (name, bytes)) in entries.iter().enumerate() {
        let raw = gbk(name);
        // One distinct letter per entry: no placeholder is a substring of another.
        let placeholder = vec![b'a' + (i % 26) as u8; raw.len()];
        w.start_file(String::from_utf8(placeholder.clone()).expect("ascii"), opts)?;
        w.write_all(bytes)?;
        placeholders.push((placeholder, raw));
    }
    let mut out = w.finish()?.into_inner();
    for (placeholder, raw) in placeholders {
        let mut i = 0;
        while let Some(pos) = find(&out[i..], &placeholder) {
            let at = i + pos;
            out[at..at + raw.len()].copy_from_slice(&raw);
            i = at + raw.len();
        }
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A personal-bill row that is not a sale (the owner's own spending, red packets, transfers).
#[derive(Debug, Clone)]
pub struct PrivateEntry {
    pub time: NaiveDateTime,
    pub kind: &'static str,
    pub counterparty: &'static str,
    pub item: &'static str,
    pub income: bool,
    pub amount_fen: i64,
    pub tx_id: String,
}

/// A WeChat personal XLSX bill for a month. `numeric_layout` is the 2026-03 layout (header on row 18,
/// numeric amounts); otherwise the 2025 layout (header on row 17, `¥` text amounts).
pub fn wechat_personal_month(
    path: &Path,
    from: NaiveDate,
    to: NaiveDate,
    sales: &[BillEntry],
    private: &[PrivateEntry],
    numeric_layout: bool,
) -> Result<()> {
    use rust_xlsxwriter::Workbook;
    struct Line {
        time: NaiveDateTime,
        kind: String,
        counterparty: String,
        item: String,
        dir: &'static str,
        amount: i64,
        status: String,
        tx: String,
        merchant_no: String,
    }
    let mut lines: Vec<Line> = Vec::new();
    for e in sales {
        let status = match e.refunded_fen {
            0 => "已收钱".to_string(),
            r if r == e.amount_fen => "已全额退款".to_string(),
            r => format!("已退款(￥{})", format_yuan(r)),
        };
        if e.refund {
            lines.push(Line {
                time: e.time,
                kind: "二维码收款-退款".into(),
                counterparty: e.buyer.clone(),
                item: "/".into(),
                dir: "支出",
                amount: e.amount_fen,
                status: "已退款".into(),
                tx: e.tx_id.clone(),
                merchant_no: e.merchant_order_id.clone(),
            });
        } else {
            lines.push(Line {
                time: e.time,
                kind: "二维码收款".into(),
                counterparty: e.buyer.clone(),
                item: "/".into(),
                dir: "收入",
                amount: e.amount_fen,
                status,
                tx: e.tx_id.clone(),
                merchant_no: e.merchant_order_id.clone(),
            });
        }
    }
    for p in private {
        lines.push(Line {
            time: p.time,
            kind: p.kind.into(),
            counterparty: p.counterparty.into(),
            item: p.item.into(),
            dir: if p.income { "收入" } else { "支出" },
            amount: p.amount_fen,
            status: if p.income {
                "已存入零钱".into()
            } else {
                "支付成功".into()
            },
            tx: p.tx_id.clone(),
            merchant_no: "/".into(),
        });
    }
    lines.sort_by(|a, b| b.time.cmp(&a.time).then(a.tx.cmp(&b.tx)));
    let income: Vec<&Line> = lines.iter().filter(|l| l.dir == "收入").collect();
    let spend: Vec<&Line> = lines.iter().filter(|l| l.dir == "支出").collect();
    let mut wb = Workbook::new();
    // The export time, not the wall clock: the same seed gives the same bytes.
    let created = rust_xlsxwriter::ExcelDateTime::from_ymd(to.year() as u16, to.month() as u8, to.day() as u8)?
        .and_hms(10, 12, 44)?;
    wb.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
    let ws = wb.add_worksheet();
    let mut preamble = vec![
        "微信支付账单明细".to_string(),
        "微信昵称：[小店老板]".to_string(),
        format!("起始时间：[{} 00:00:00] 终止时间：[{} 23:59:59]", from, to),
        "导出类型：[全部]".to_string(),
        format!("导出时间：[{} 10:12:44]", to + chrono::Days::new(1)),
        String::new(),
        format!("共{}笔记录", lines.len()),
        format!(
            "收入：{}笔 {}元",
            income.len(),
            format_yuan(income.iter().map(|l| l.amount).sum())
        ),
        format!(
            "支出：{}笔 {}元",
            spend.len(),
            format_yuan(spend.iter().map(|l| l.amount).sum())
        ),
        "中性交易：0笔 0.00元".to_string(),
        "注：".to_string(),
        "1. 充值/提现/理财通购买/零钱通存取/信用卡还款等交易，将计入中性交易".to_string(),
        "2. 本明细仅展示当前账单中的交易，不包括已删除的记录".to_string(),
        "3. 本明细仅供个人对账使用".to_string(),
    ];
    if numeric_layout {
        preamble.push("4. 本账单中所有时间均为UTC+08:00时间".to_string());
    }
    preamble.push(String::new());
    preamble.push("----------------------微信支付账单明细列表--------------------".to_string());
    for (r, text) in preamble.iter().enumerate() {
        if !text.is_empty() {
            ws.write_string(r as u32, 0, text)?;
        }
    }
    let header_row = preamble.len() as u32;
    let header = [
        "交易时间",
        "交易类型",
        "交易对方",
        "商品",
        "收/支",
        "金额(元)",
        "支付方式",
        "当前状态",
        "交易单号",
        "商户单号",
        "备注",
    ];
    for (c, h) in header.iter().enumerate() {
        ws.write_string(header_row, c as u16, *h)?;
    }
    for (i, l) in lines.iter().enumerate() {
        let r = header_row + 1 + i as u32;
        ws.write_string(r, 0, ts(l.time))?;
        ws.write_string(r, 1, &l.kind)?;
        ws.write_string(r, 2, &l.counterparty)?;
        ws.write_string(r, 3, &l.item)?;
        ws.write_string(r, 4, l.dir)?;
        if numeric_layout {
            ws.write_number(r, 5, l.amount as f64 / 100.0)?;
        } else {
            ws.write_string(r, 5, format!("¥{}", format_yuan(l.amount)))?;
        }
        ws.write_string(r, 6, if l.dir == "收入" { "/" } else { "零钱" })?;
        ws.write_string(r, 7, &l.status)?;
        ws.write_string(r, 8, &l.tx)?;
        ws.write_string(r, 9, &l.merchant_no)?;
        ws.write_string(r, 10, "/")?;
    }
    let bytes = wb.save_to_buffer()?;
    write_file(path, &bytes)
}

/// An Alipay personal CSV bill for a month, 2023+ layout, GBK.
pub fn alipay_personal_month(
    path: &Path,
    from: NaiveDate,
    to: NaiveDate,
    sales: &[BillEntry],
    private: &[PrivateEntry],
) -> Result<()> {
    struct Line {
        time: NaiveDateTime,
        category: &'static str,
        counterparty: String,
        account: String,
        item: String,
        dir: &'static str,
        amount: i64,
        method: &'static str,
        status: &'static str,
        tx: String,
        merchant_no: String,
    }
    let mut lines = Vec::new();
    for e in sales {
        lines.push(Line {
            time: e.time,
            category: if e.refund { "退款" } else { "收入" },
            counterparty: e.buyer.clone(),
            account: e.buyer_account.clone(),
            item: if e.refund {
                "退款-收钱码收款".into()
            } else {
                "收钱码收款".into()
            },
            dir: if e.refund { "支出" } else { "收入" },
            amount: e.amount_fen,
            method: "余额",
            status: if e.refund {
                "退款成功"
            } else if e.cancelled {
                "交易关闭"
            } else {
                "交易成功"
            },
            tx: e.tx_id.clone(),
            merchant_no: String::new(),
        });
    }
    for p in private {
        lines.push(Line {
            time: p.time,
            category: p.kind,
            counterparty: p.counterparty.into(),
            account: "/".into(),
            item: p.item.into(),
            dir: if p.income { "收入" } else { "支出" },
            amount: p.amount_fen,
            method: "花呗",
            status: "交易成功",
            tx: p.tx_id.clone(),
            merchant_no: String::new(),
        });
    }
    lines.sort_by(|a, b| b.time.cmp(&a.time).then(a.tx.cmp(&b.tx)));
    let sum = |dir: &str| -> (usize, i64) {
        let v: Vec<&Line> = lines.iter().filter(|l| l.dir == dir).collect();
        (v.len(), v.iter().map(|l| l.amount).sum())
    };
    let (ni, si) = sum("收入");
    let (ns, ss) = sum("支出");
    let mut s = String::new();
    s.push_str(&"-".repeat(84));
    s.push_str("\r\n导出信息：\r\n姓名：李小明\r\n支付宝账户：138****0000\r\n");
    let _ = write!(s, "起始时间：[{} 00:00:00]    终止时间：[{} 23:59:59]\r\n", from, to);
    s.push_str("导出交易类型：[全部]\r\n");
    let _ = write!(s, "导出时间：[{} 09:30:12]\r\n", to + chrono::Days::new(1));
    let _ = write!(s, "共{}笔记录\r\n", lines.len());
    let _ = write!(s, "收入：{ni}笔 {}元\r\n", format_yuan(si));
    let _ = write!(s, "支出：{ns}笔 {}元\r\n", format_yuan(ss));
    s.push_str("不计收支：0笔 0.00元\r\n\r\n特别提示：\r\n");
    s.push_str("1.本回单内容可表明支付宝受理了用户的支付申请，不代表实际到账情况；\r\n");
    s.push_str("2.本回单仅供对账使用，如需证明请联系客服；\r\n");
    s.push_str("3.支付宝不保证本回单的真实性与准确性，请以支付宝实际交易记录为准；\r\n");
    s.push_str("4.本回单内容为用户导出时的交易记录，其后的变更不在本回单中体现；\r\n");
    s.push_str("5.请妥善保管本回单，因泄露造成的损失由用户自行承担；\r\n");
    s.push_str("6.本回单自导出之日起有效期为30天。\r\n\r\n");
    s.push_str("------------------------支付宝（中国）网络技术有限公司  电子客户回单------------------------\r\n");
    s.push_str(
        "交易时间,交易分类,交易对方,对方账号,商品说明,收/支,金额,收/付款方式,交易状态,交易订单号,商家订单号,备注,\r\n",
    );
    for l in &lines {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{}\t,{}\t,,\r\n",
            ts(l.time),
            l.category,
            l.counterparty,
            l.account,
            l.item,
            l.dir,
            format_yuan(l.amount),
            l.method,
            l.status,
            l.tx,
            l.merchant_no
        );
    }
    write_file(path, &gbk(&s))
}

/// A POS line-item export (UTF-8 with BOM, as POS systems write for Excel).
pub fn pos_month(path: &Path, rows: &[(String, String, String, u32, i64, NaiveDateTime)]) -> Result<()> {
    let mut w = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    w.write_record(["merchant_order_no", "sku", "name", "quantity", "unit_price", "time"])?;
    for (order, sku, name, qty, price, time) in rows {
        w.write_record([
            order.as_str(),
            sku,
            name,
            &qty.to_string(),
            &format_yuan(*price),
            &ts(*time),
        ])?;
    }
    write_file(path, &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)
}

/// An inventory snapshot with Chinese headers, as a small shop's spreadsheet would have them.
pub fn inventory(path: &Path, rows: &[InventoryLine]) -> Result<()> {
    let mut w = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    w.write_record([
        "商品编码",
        "商品名称",
        "库存",
        "在途",
        "交货期(天)",
        "箱规",
        "最小起订量",
        "成本价",
        "盘点日期",
    ])?;
    for r in rows {
        w.write_record([
            r.sku.as_str(),
            r.name,
            &r.on_hand.to_string(),
            &r.on_order.to_string(),
            &r.lead_time_days.to_string(),
            &r.pack_size.to_string(),
            &r.min_order.to_string(),
            &format_yuan(r.unit_cost_fen),
            &r.date.to_string(),
        ])?;
    }
    write_file(path, &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)
}

pub struct InventoryLine {
    pub sku: String,
    pub name: &'static str,
    pub on_hand: u32,
    pub on_order: u32,
    pub lead_time_days: u32,
    pub pack_size: u32,
    pub min_order: u32,
    pub unit_cost_fen: i64,
    pub date: NaiveDate,
}

pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_file(path, text.as_bytes())
}
