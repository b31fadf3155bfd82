//! `paylens demo`: the generated exports look like the real ones (checked with independent readers), they
//! ingest with zero rejects and reconcile with their own totals, the store equals the generator's ground
//! truth per day and channel, and the same seed gives byte-identical files.

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::*;

fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(dir)
}

#[test]
fn demo_round_trip_matches_the_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    demo(&out, &["--customers", "400", "--days", "120"]);
    let store = out.join("store");
    // Every file ingests with zero rejects and matches its own totals.
    let m = manifest(&store);
    let files = m["files"].as_array().unwrap();
    assert!(files.len() > 120, "{} files", files.len());
    for f in files {
        assert_eq!(f["rejected"], 0, "{f:#}");
        let fmt = f["format"].as_str().unwrap();
        if fmt.starts_with("wechat") || fmt == "alipay_merchant" || fmt == "alipay_personal" {
            assert_eq!(f["reconciled"], true, "{f:#}");
        }
    }
    // Per local day and channel: counts and fen sums equal the generator's truth.
    let truth = std::fs::read_to_string(out.join("truth/daily.csv")).unwrap();
    let mut want: BTreeMap<(i32, String), (u64, i64, u64, i64)> = BTreeMap::new();
    for line in truth.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        want.insert(
            (days(c[0]), c[1].to_string()),
            (
                c[2].parse().unwrap(),
                c[3].parse().unwrap(),
                c[4].parse().unwrap(),
                c[5].parse().unwrap(),
            ),
        );
    }
    let mut got: BTreeMap<(i32, String), (u64, i64, u64, i64)> = BTreeMap::new();
    for e in events(&store) {
        let g = got.entry((e.local_date, e.channel.clone())).or_default();
        if e.kind == "payment" {
            g.0 += 1;
            g.1 += e.amount_fen;
        } else {
            g.2 += 1;
            g.3 += e.amount_fen;
        }
    }
    assert_eq!(got.len(), want.len());
    for (k, w) in &want {
        assert_eq!(got.get(k), Some(w), "day {} channel {}", k.0, k.1);
    }
    // All four channels are present, in roughly the real mix (60/30/10 by customers).
    let mut by_channel: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, ch), v) in &want {
        *by_channel.entry(ch.clone()).or_default() += v.0;
    }
    let total: u64 = by_channel.values().sum();
    let share = |ch: &str| by_channel[ch] as f64 / total as f64;
    assert!(
        share("wechat_pay") > 0.45 && share("wechat_pay") < 0.75,
        "{by_channel:?}"
    );
    assert!(share("alipay") > 0.18 && share("alipay") < 0.42, "{by_channel:?}");
    assert!(
        share("wechat_personal") + share("alipay_personal") > 0.03,
        "{by_channel:?}"
    );
    // Refunds are 1-2 % of payments.
    let refunds: u64 = want.values().map(|v| v.2).sum();
    let rate = refunds as f64 / total as f64;
    assert!((0.005..0.03).contains(&rate), "refund rate {rate}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    demo(&a, &["--customers", "150", "--days", "40", "--no-ingest"]);
    demo(&b, &["--customers", "150", "--days", "40", "--no-ingest"]);
    demo(
        &c,
        &["--customers", "150", "--days", "40", "--no-ingest", "--seed", "43"],
    );
    let (fa, fb, fc) = (
        files_under(&a.join("inbox")),
        files_under(&b.join("inbox")),
        files_under(&c.join("inbox")),
    );
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (k, v) in &fa {
        assert!(v == &fb[k], "{k} differs between two runs with the same seed");
    }
    assert!(fa != fc, "another seed gave the same files");
    assert!(files_under(&a.join("truth")) == files_under(&b.join("truth")));
}

#[test]
fn same_seed_same_store() {
    // The demo's store secret comes from the seed, so customer keys and every store file repeat.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    demo(&a, &["--customers", "120", "--days", "30"]);
    demo(&b, &["--customers", "120", "--days", "30"]);
    let (sa, sb) = (files_under(&a.join("store")), files_under(&b.join("store")));
    assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
    for (k, v) in &sa {
        if k.ends_with(".parquet") {
            // Same rows and schema. The bytes may differ: Polars orders a dictionary page by a hash with a
            // per-process random state.
            assert_eq!(
                read_batches(&a.join("store").join(k)),
                read_batches(&b.join("store").join(k)),
                "{k}"
            );
        } else if k != "manifest.json" {
            assert!(v == &sb[k], "{k} differs between two demo runs with the same seed");
        }
    }
    assert_eq!(events(&a.join("store")), events(&b.join("store")));
    // Running the demo again into the same folder starts afresh: nothing accumulates.
    demo(&a, &["--customers", "120", "--days", "30"]);
    assert_eq!(events(&a.join("store")), events(&b.join("store")));
}

#[test]
fn generated_files_have_the_real_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    // 2026-02-01 .. 2026-04-11: a February XLSX (2025 layout) and a March one (2026-03 layout).
    let o = bin()
        .args([
            "demo",
            "--out",
            out.to_str().unwrap(),
            "--end",
            "2026-04-11",
            "--days",
            "70",
            "--customers",
            "300",
            "--no-ingest",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let inbox = out.join("inbox");
    // WeChat merchant: the 27-column header, backtick cells, CRLF, the summary.
    let wx = std::fs::read_to_string(inbox.join("wechat_merchant/ALL_1900000109_2026-03-02.csv")).unwrap();
    let lines: Vec<&str> = wx.split("\r\n").collect();
    assert_eq!(lines[0].split(',').count(), 27);
    assert!(lines[0].starts_with("交易时间,公众账号ID,商户号,特约商户号"));
    assert!(lines[1].split(',').all(|c| c.starts_with('`')), "{}", lines[1]);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("总交易单数,应结订单总金额,退款总金额")));
    // Alipay merchant zip: GBK entry names without the UTF-8 flag, GBK content, the 4 # lines, the trailer.
    let zip = inbox.join("alipay_merchant/20880211096256330156_202603.csv.zip");
    let py = python(&format!(
        r#"
import zipfile
z = zipfile.ZipFile(r"{}")
for i in z.infolist():
    name = i.filename.encode("cp437").decode("gbk")
    text = z.read(i).decode("gbk")
    print(i.flag_bits & 0x800, name, text.splitlines()[0], text.splitlines()[4][:6] if len(text.splitlines()) > 4 else "")
"#,
        zip.display()
    ));
    let mut rows: Vec<&str> = py.lines().collect();
    rows.sort();
    assert_eq!(rows.len(), 2, "{py}");
    assert!(
        rows[0].starts_with("0 20880211096256330156_202603_业务明细(汇总).csv #支付宝业务汇总查询"),
        "{py}"
    );
    assert!(
        rows[1].starts_with("0 20880211096256330156_202603_业务明细.csv #支付宝业务明细查询 支付宝交易号"),
        "{py}"
    );
    // WeChat personal XLSX: header on row 17 (2025 layout, text amounts) and row 18 (2026-03, numbers).
    let py = python(&format!(
        r#"
import openpyxl
for f in [r"{}", r"{}"]:
    ws = openpyxl.load_workbook(f).active
    row = next(r for r in range(1, 40) if ws.cell(r, 1).value == "交易时间")
    print(ws.cell(1, 1).value, ws.cell(row - 1, 1).value.strip("-"), row, "number" if isinstance(ws.cell(row + 1, 6).value, (int, float)) else "text")
"#,
        inbox
            .join("wechat_personal/微信支付账单流水文件(202602).xlsx")
            .display(),
        inbox
            .join("wechat_personal/微信支付账单流水文件(202603).xlsx")
            .display()
    ));
    assert_eq!(
        py.trim(),
        "微信支付账单明细 微信支付账单明细列表 17 text\n微信支付账单明细 微信支付账单明细列表 18 number"
    );
    // Alipay personal: GBK, a line of 84 dashes, the receipt marker, the header with a trailing comma.
    let ap = std::fs::read(inbox.join("alipay_personal/支付宝交易明细(20260301-20260331).csv")).unwrap();
    assert!(std::str::from_utf8(&ap).is_err(), "Alipay personal bills are GBK");
    let (text, _, bad) = encoding_rs::GBK.decode(&ap);
    assert!(!bad);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "-".repeat(84));
    let marker = lines
        .iter()
        .position(|l| l.contains("支付宝（中国）网络技术有限公司  电子客户回单"))
        .unwrap();
    assert!(
        lines[marker + 1].starts_with("交易时间,交易分类,交易对方,对方账号,商品说明,收/支,金额")
            && lines[marker + 1].ends_with(',')
    );
    assert!(
        lines[marker + 2].contains("\t,"),
        "ids end in a TAB: {}",
        lines[marker + 2]
    );
}
