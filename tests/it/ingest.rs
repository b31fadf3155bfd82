//! Ingest of every fixture layout: counts, fen sums and refund links worked out by hand from the rows in
//! tests/fixtures/make.py (the sums are in its comments), checked through `--json` and through the store
//! read back with arrow-rs.

use crate::harness::*;

struct Expect {
    format: &'static str,
    payments: u64,
    refunds: u64,
    skipped: u64,
    rejected: u64,
    payments_fen: i64,
    refunds_fen: i64,
    reconciled: Option<bool>,
    first: Option<&'static str>,
    last: Option<&'static str>,
}

fn check(rel: &str, e: Expect) -> (tempfile::TempDir, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (code, json) = ingest_json(&store, &[fixture(rel)], &[]);
    assert_eq!(code, 0, "{json:#}");
    let f = file(&json, rel.rsplit('/').next().unwrap());
    let ctx = format!("{rel}: {f:#}");
    assert_eq!(f["format"], e.format, "{ctx}");
    assert_eq!(f["payments"], e.payments, "{ctx}");
    assert_eq!(f["refunds"], e.refunds, "{ctx}");
    assert_eq!(f["skipped"], e.skipped, "{ctx}");
    assert_eq!(f["rejected"], e.rejected, "{ctx}");
    assert_eq!(f["duplicates"], 0, "{ctx}");
    assert_eq!(f["payments_fen"], e.payments_fen, "{ctx}");
    assert_eq!(f["refunds_fen"], e.refunds_fen, "{ctx}");
    assert_eq!(f["reconciled"], serde_json::json!(e.reconciled), "{ctx}");
    assert_eq!(f["first"], serde_json::json!(e.first), "{ctx}");
    assert_eq!(f["last"], serde_json::json!(e.last), "{ctx}");
    // The store holds the same events, read back independently.
    let ev = events(&store);
    let pay: Vec<&EventRow> = ev.iter().filter(|r| r.kind == "payment").collect();
    let refunds: Vec<&EventRow> = ev.iter().filter(|r| r.kind == "refund").collect();
    assert_eq!(pay.len() as u64, e.payments, "{ctx}");
    assert_eq!(refunds.len() as u64, e.refunds, "{ctx}");
    assert_eq!(pay.iter().map(|r| r.amount_fen).sum::<i64>(), e.payments_fen, "{ctx}");
    assert_eq!(
        refunds.iter().map(|r| r.amount_fen).sum::<i64>(),
        e.refunds_fen,
        "{ctx}"
    );
    (dir, json)
}

fn refund_links(store: &std::path::Path) -> Vec<(String, i64)> {
    let ev = events(store);
    ev.iter()
        .filter(|r| r.kind == "refund")
        .map(|r| {
            let p = r.payment_event_id.clone().expect("refund links to a payment");
            assert!(
                ev.iter().any(|x| x.event_id == p && x.kind == "payment"),
                "{p} is not a stored payment"
            );
            (p, r.amount_fen)
        })
        .collect()
}

#[test]
fn wechat_merchant_all_27_columns_bom_crlf() {
    // 3 SUCCESS payments (28.00, 30.00 with a 5.00 coupon, 16.00), a REVOKED one, two refunds (28.00 full of
    // the first, 10.00 partial of the second); the summary states 6 rows, 应结 81.00, 退款 38.00, fees 0.18600.
    let (dir, _) = check(
        "wechat_merchant/all_27col_bom_crlf.csv",
        Expect {
            format: "wechat_merchant",
            payments: 3,
            refunds: 2,
            skipped: 1,
            rejected: 0,
            payments_fen: 2800 + 3000 + 1600,
            refunds_fen: -(2800 + 1000),
            reconciled: Some(true),
            first: Some("2026-11-02 08:35:41"),
            last: Some("2026-11-02 17:30:00"),
        },
    );
    let mut links = refund_links(&dir.path().join("store"));
    links.sort();
    assert_eq!(
        links,
        vec![
            ("wx:4200002626202611025000000001".to_string(), -2800),
            ("wx:4200002626202611025000000002".to_string(), -1000)
        ]
    );
    let ev = events(&dir.path().join("store"));
    // Fees exact to 1/1000 fen: 0.16800 + 0.15000 + 0.09600 yuan paid, 0.16800 + 0.06000 returned.
    assert_eq!(
        ev.iter()
            .filter(|r| r.kind == "payment")
            .map(|r| r.fee_millifen)
            .sum::<i64>(),
        16_800 + 15_000 + 9_600
    );
    assert_eq!(
        ev.iter()
            .filter(|r| r.kind == "refund")
            .map(|r| r.fee_millifen)
            .sum::<i64>(),
        -16_800 - 6_000
    );
    // 08:35:41 in Shanghai is 00:35:41 UTC.
    let first = ev
        .iter()
        .find(|r| r.event_id == "wx:4200002626202611025000000001")
        .unwrap();
    let utc = chrono::NaiveDate::from_ymd_opt(2026, 11, 2)
        .unwrap()
        .and_hms_opt(0, 35, 41)
        .unwrap()
        .and_utc();
    assert_eq!(first.occurred_at_us, utc.timestamp_micros());
    assert_eq!(first.local_date, days("2026-11-02"));
    // oUser1 paid twice: one strong key for both.
    let keys: std::collections::BTreeSet<_> = ev
        .iter()
        .filter(|r| r.kind == "payment")
        .map(|r| r.customer_key.clone())
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(ev.iter().all(|r| r.customer_key_quality == "strong"));
}

#[test]
fn wechat_merchant_success_20_columns_with_4_field_summary() {
    check(
        "wechat_merchant/success_20col.csv",
        Expect {
            format: "wechat_merchant",
            payments: 2,
            refunds: 0,
            skipped: 0,
            rejected: 0,
            payments_fen: 2800 + 2200,
            refunds_fen: 0,
            reconciled: Some(true),
            first: Some("2026-11-02 08:35:41"),
            last: Some("2026-11-03 07:59:59"),
        },
    );
}

#[test]
fn wechat_merchant_refund_29_columns_dated_by_refund_success_time() {
    check(
        "wechat_merchant/refund_29col.csv",
        Expect {
            format: "wechat_merchant",
            payments: 0,
            refunds: 1,
            skipped: 0,
            rejected: 0,
            payments_fen: 0,
            refunds_fen: -2800,
            reconciled: Some(true),
            first: Some("2026-11-02 15:20:09"),
            last: Some("2026-11-02 15:20:09"),
        },
    );
}

#[test]
fn wechat_merchant_legacy_24_columns_full_width_colons() {
    // 总金额 6.00 paid at 08：35：41 (full-width colons), refunded in full at 18：01：02.
    let (dir, _) = check(
        "wechat_merchant/legacy_24col.csv",
        Expect {
            format: "wechat_merchant",
            payments: 1,
            refunds: 1,
            skipped: 0,
            rejected: 0,
            payments_fen: 600,
            refunds_fen: -600,
            reconciled: Some(true),
            first: Some("2019-07-25 08:35:41"),
            last: Some("2019-07-25 18:01:02"),
        },
    );
    assert_eq!(
        refund_links(&dir.path().join("store")),
        vec![("wx:4200000925202101284997714292".to_string(), -600)]
    );
}

#[test]
fn wechat_merchant_unquoted_comma_is_rejected_with_its_line() {
    let (dir, json) = check(
        "wechat_merchant/comma_in_product.csv",
        Expect {
            format: "wechat_merchant",
            payments: 1,
            refunds: 0,
            skipped: 0,
            rejected: 1,
            payments_fen: 1600,
            refunds_fen: 0,
            reconciled: Some(false),
            first: Some("2026-11-05 11:00:00"),
            last: Some("2026-11-05 11:00:00"),
        },
    );
    let _ = json;
    let rejects: Vec<_> = std::fs::read_dir(dir.path().join("store/rejects")).unwrap().collect();
    assert_eq!(rejects.len(), 1);
    let text = std::fs::read_to_string(rejects[0].as_ref().unwrap().path()).unwrap();
    assert!(text.starts_with('\u{feff}'), "rejects CSV has a BOM for Excel");
    let mut r = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0][0].ends_with("comma_in_product.csv"));
    assert_eq!(&rows[0][1], "2");
    assert!(
        rows[0][2].contains("28 fields where the header has 27"),
        "{}",
        &rows[0][2]
    );
    assert!(rows[0][3].contains("`拿铁,大杯"), "raw text kept: {}", &rows[0][3]);
}

#[test]
fn wechat_merchant_resaved_by_excel() {
    // Row 1's id became 4.20000E+27 (rejected, never invented); row 2 lost its seconds and gained quotes.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (_, json) = ingest_json(&store, &[fixture("wechat_merchant/excel_resaved.csv")], &[]);
    let f = file(&json, "excel_resaved.csv");
    assert_eq!((f["payments"].as_u64(), f["rejected"].as_u64()), (Some(1), Some(1)));
    assert_eq!(f["payments_fen"], 1600);
    assert_eq!(f["first"], "2026-11-06 09:05:00");
    assert_eq!(f["reconciled"], false);
    assert_eq!(events(&store)[0].event_id, "wx:4200002626202611065000000002");
}

#[test]
fn numeric_looking_product_names_and_order_numbers_stay_text() {
    let (dir, _) = check(
        "wechat_merchant/numeric_product_name.csv",
        Expect {
            format: "wechat_merchant",
            payments: 1,
            refunds: 0,
            skipped: 0,
            rejected: 0,
            payments_fen: 1250,
            refunds_fen: 0,
            reconciled: Some(true),
            first: Some("2026-11-04 10:00:00"),
            last: Some("2026-11-04 10:00:00"),
        },
    );
    let e = &events(&dir.path().join("store"))[0];
    assert_eq!(e.product_name.as_deref(), Some("0125"));
    assert_eq!(e.merchant_order_id.as_deref(), Some("000123"));
    assert_eq!(e.fee_millifen, 7_500);
}

#[test]
fn wechat_merchant_empty_day_and_gzip() {
    check(
        "wechat_merchant/empty_day.csv",
        Expect {
            format: "wechat_merchant",
            payments: 0,
            refunds: 0,
            skipped: 0,
            rejected: 0,
            payments_fen: 0,
            refunds_fen: 0,
            reconciled: Some(true),
            first: None,
            last: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("bill.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut enc,
        &std::fs::read(fixture("wechat_merchant/all_27col_bom_crlf.csv")).unwrap(),
    )
    .unwrap();
    enc.finish().unwrap();
    let (code, json) = ingest_json(&dir.path().join("store"), &[gz], &[]);
    assert_eq!(code, 0);
    let f = file(&json, "bill.csv.gz");
    assert_eq!(
        (f["payments"].as_u64(), f["refunds"].as_u64(), f["reconciled"].as_bool()),
        (Some(3), Some(2), Some(true))
    );
}

#[test]
fn alipay_merchant_gbk_tabs_negative_refunds() {
    // Trades 28.00, 32.00 (3.00 merchant discount), 16.00; a refund of the first (-28.00); trailer 3笔 73.00.
    let (dir, _) = check(
        "alipay_merchant/details_gbk.csv",
        Expect {
            format: "alipay_merchant",
            payments: 3,
            refunds: 1,
            skipped: 0,
            rejected: 0,
            payments_fen: 2800 + 3200 + 1600,
            refunds_fen: -2800,
            reconciled: Some(true),
            first: Some("2026-11-02 08:00:03"),
            last: Some("2026-11-02 12:30:02"),
        },
    );
    let store = dir.path().join("store");
    assert_eq!(
        refund_links(&store),
        vec![("alipay:2026110222001458860500000001".to_string(), -2800)]
    );
    let ev = events(&store);
    // Two buyers (one paid twice) by a weak, masked key; service fee 0.17 = 17,000 millifen paid.
    let keys: std::collections::BTreeSet<_> = ev.iter().map(|r| r.customer_key.clone().unwrap()).collect();
    assert_eq!(keys.len(), 2);
    assert!(ev.iter().all(|r| r.customer_key_quality == "weak"));
    assert_eq!(
        ev.iter()
            .find(|r| r.event_id == "alipay:2026110222001458860500000001")
            .unwrap()
            .fee_millifen,
        17_000
    );
}

#[test]
fn alipay_merchant_old_trailer_wording() {
    check(
        "alipay_merchant/old_trailer.csv",
        Expect {
            format: "alipay_merchant",
            payments: 2,
            refunds: 0,
            skipped: 0,
            rejected: 0,
            payments_fen: 8,
            refunds_fen: 0,
            reconciled: Some(true),
            first: Some("2019-09-16 10:00:01"),
            last: Some("2019-09-16 11:00:01"),
        },
    );
}

#[test]
fn alipay_merchant_zip_with_gbk_entry_names_and_summary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, json) = ingest_json(
        &dir.path().join("store"),
        &[fixture("alipay_merchant/monthly.csv.zip")],
        &[],
    );
    assert_eq!(code, 0, "{json:#}");
    let details = file(&json, "monthly.csv.zip!20880211096256330156_20261102_业务明细.csv");
    assert_eq!(
        (details["payments"].as_u64(), details["refunds"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(details["reconciled"], true);
    let summary = file(&json, "业务明细(汇总).csv");
    assert_eq!(summary["format"], "alipay_merchant_summary");
    assert_eq!(summary["status"], "ingested");
}

#[test]
fn alipay_ledger_is_refused_with_what_to_export() {
    let dir = tempfile::tempdir().unwrap();
    let (code, json) = ingest_json(
        &dir.path().join("store"),
        &[fixture("alipay_merchant/ledger_not_sales.csv")],
        &[],
    );
    assert_eq!(code, 1);
    let f = file(&json, "ledger_not_sales.csv");
    assert_eq!(f["status"], "refused");
    let err = f["error"].as_str().unwrap();
    assert!(err.contains("账务明细") && err.contains("业务明细"), "{err}");
}

#[test]
fn wechat_personal_csv_bom_comma_in_counterparty_and_refund_statuses() {
    // Sales: 28.00, 30.00 (已全额退款), 50.00 (已退款(￥20.00)), 15.00; a red packet, a purchase at
    // "WALMART HONG KONG CO.,LIMITED" (12 fields) and a transfer are skipped. 共7笔记录, 收入：5笔 323.00元.
    let (dir, _) = check(
        "wechat_personal/bill_2024.csv",
        Expect {
            format: "wechat_personal_csv",
            payments: 4,
            refunds: 2,
            skipped: 3,
            rejected: 0,
            payments_fen: 2800 + 3000 + 5000 + 1500,
            refunds_fen: -(3000 + 2000),
            reconciled: Some(true),
            first: Some("2024-06-01 12:00:00"),
            last: Some("2024-06-03 12:01:00"),
        },
    );
    let store = dir.path().join("store");
    let mut links = refund_links(&store);
    links.sort();
    assert_eq!(
        links,
        vec![
            ("wxp:10000500202406020003".to_string(), -2000),
            ("wxp:10000500202406030002".to_string(), -3000)
        ]
    );
    // 阿强 paid twice: three weak keys in all.
    let keys: std::collections::BTreeSet<_> = events(&store).iter().map(|r| r.customer_key.clone().unwrap()).collect();
    assert_eq!(keys.len(), 3);
}

#[test]
fn wechat_personal_csv_2025_quotes_with_tab_after_closing_quote() {
    check(
        "wechat_personal/bill_2025_quoted_tabs.csv",
        Expect {
            format: "wechat_personal_csv",
            payments: 1,
            refunds: 0,
            skipped: 1,
            rejected: 0,
            payments_fen: 123_456,
            refunds_fen: 0,
            reconciled: Some(true),
            first: Some("2025-05-01 10:00:00"),
            last: Some("2025-05-01 10:00:00"),
        },
    );
}

#[test]
fn wechat_personal_xlsx_2025_row_17_and_2026_row_18() {
    for rel in [
        "wechat_personal/bill_2025_row17.xlsx",
        "wechat_personal/bill_2026_03_row18.xlsx",
    ] {
        check(
            rel,
            Expect {
                format: "wechat_personal_xlsx",
                payments: 2,
                refunds: 0,
                skipped: 1,
                rejected: 0,
                payments_fen: 3600 + 3000,
                refunds_fen: 0,
                reconciled: Some(true),
                first: Some("2026-03-01 12:30:00"),
                last: Some("2026-03-02 08:15:00"),
            },
        );
    }
}

#[test]
fn alipay_personal_2023_layout() {
    // Sales 28.50 and 16.00; the first refunded (退款-收钱码收款, trade no + _1001); skipped: 交易关闭,
    // a KFC purchase, a 转账红包, an 等待确认收货. 共7笔记录, 收入：5笔 166.40元.
    let (dir, _) = check(
        "alipay_personal/bill_2023_layout.csv",
        Expect {
            format: "alipay_personal",
            payments: 2,
            refunds: 1,
            skipped: 4,
            rejected: 0,
            payments_fen: 2850 + 1600,
            refunds_fen: -2850,
            reconciled: Some(true),
            first: Some("2026-10-04 09:00:00"),
            last: Some("2026-10-05 12:10:00"),
        },
    );
    assert_eq!(
        refund_links(&dir.path().join("store")),
        vec![("alp:2026100522001400000001".to_string(), -2850)]
    );
}

#[test]
fn alipay_personal_new_company_name_shorter_preamble_and_app_layout() {
    for (rel, fen, day) in [
        (
            "alipay_personal/bill_2025_10_new_company.csv",
            2200,
            "2026-10-20 08:30:00",
        ),
        ("alipay_personal/bill_2022_app_layout.csv", 1800, "2022-03-01 10:00:00"),
    ] {
        check(
            rel,
            Expect {
                format: "alipay_personal",
                payments: 1,
                refunds: 0,
                skipped: 1,
                rejected: 0,
                payments_fen: fen,
                refunds_fen: 0,
                reconciled: Some(true),
                first: Some(day),
                last: Some(day),
            },
        );
    }
}

#[test]
fn alipay_personal_old_web_layout() {
    // 20.00 received, 5.00 of it refunded (成功退款), the refund dated by 最近修改时间.
    check(
        "alipay_personal/web_old_layout.csv",
        Expect {
            format: "alipay_personal_web",
            payments: 1,
            refunds: 1,
            skipped: 1,
            rejected: 0,
            payments_fen: 2000,
            refunds_fen: -500,
            reconciled: Some(true),
            first: Some("2019-09-01 10:00:05"),
            last: Some("2019-09-02 11:00:00"),
        },
    );
}

#[test]
fn generic_mapping_from_config_pos_line_items_and_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (code, json) = ingest_json(
        &store,
        &[
            fixture("generic/meituan_gbk.csv"),
            fixture("generic/pos_line_items.csv"),
            fixture("generic/inventory_cn.csv"),
        ],
        &["--config", fixture("generic/paylens.toml").to_str().unwrap()],
    );
    assert_eq!(code, 0, "{json:#}");
    let m = file(&json, "meituan_gbk.csv");
    // 25.00 + 18.50 completed, 16.00 cancelled, -18.50 refunded.
    assert_eq!(m["format"], "generic:meituan");
    assert_eq!(
        (m["payments"].as_u64(), m["refunds"].as_u64(), m["skipped"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(
        (m["payments_fen"].as_i64(), m["refunds_fen"].as_i64()),
        (Some(4350), Some(-1850))
    );
    assert_eq!(file(&json, "pos_line_items.csv")["format"], "pos_line_items");
    assert_eq!(file(&json, "inventory_cn.csv")["format"], "inventory_snapshot");
    let mf = manifest(&store);
    let items: usize = mf["line_items"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|rel| read_batches(&store.join(rel.as_str().unwrap())))
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(items, 3);
    let inv = read_batches(&store.join(mf["inventory"].as_str().unwrap()));
    assert_eq!(inv.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    // Without the mapping the Meituan export is refused, naming what was tried.
    let (code, json) = ingest_json(&dir.path().join("other"), &[fixture("generic/meituan_gbk.csv")], &[]);
    assert_eq!(code, 1);
    assert!(file(&json, "meituan_gbk.csv")["error"]
        .as_str()
        .unwrap()
        .contains("tried: WeChat Pay merchant trade bill"));
}

#[test]
fn strict_fails_on_a_mismatch_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = run(
        &store,
        &[
            "ingest",
            "--strict",
            fixture("wechat_merchant/comma_in_product.csv").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--strict"));
    assert!(!store.join("manifest.json").exists());
    let out = run(
        &store,
        &[
            "ingest",
            "--strict",
            fixture("wechat_merchant/all_27col_bom_crlf.csv").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn summary_table_names_each_file_and_its_problems() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &dir.path().join("store"),
        &[
            "ingest",
            fixture("wechat_merchant/comma_in_product.csv").to_str().unwrap(),
            fixture("bad/empty.csv").to_str().unwrap(),
        ],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("MISMATCH") && text.contains("comma_in_product.csv"),
        "{text}"
    );
    assert!(text.contains("line 2: 28 fields"), "{text}");
    assert!(
        text.contains("总交易单数 states 2, the rows read add up to 1"),
        "{text}"
    );
    assert!(text.contains("REFUSED") && text.contains("the file is empty"), "{text}");
    assert_eq!(out.status.code(), Some(1));
}
