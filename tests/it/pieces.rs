//! A large WeChat Pay merchant bill is read in pieces on two threads and its rows spilled to the store as
//! it is read. Small pieces and batches (test settings) make a bill of a few thousand rows take that path:
//! what it stores must be what a whole read stores, its totals must be those worked out here as the bill
//! is written, and a failure part-way must take back that file alone.

use std::path::{Path, PathBuf};

use crate::harness::*;

/// A WeChat Pay ALL bill as the merchant platform exports it (BOM, the 27-column header of the fixture,
/// a backtick before every cell, CRLF, the closing summary), with what its rows add up to.
struct Bill {
    bytes: Vec<u8>,
    payments: u64,
    refunds: u64,
    revoked: u64,
    payments_fen: i64,
    refunds_fen: i64,
    /// The line of the one row with an unquoted comma (left out of the stated totals).
    bad_line: u64,
    first: String,
    last: String,
}

fn yuan(fen: i64) -> String {
    format!(
        "{}{}.{:02}",
        if fen < 0 { "-" } else { "" },
        fen.abs() / 100,
        fen.abs() % 100
    )
}

fn yuan5(millifen: i64) -> String {
    let sign = if millifen < 0 { "-" } else { "" };
    format!("{sign}{}.{:05}", millifen.abs() / 100_000, millifen.abs() % 100_000)
}

/// `n` detail rows over October and November 2026: every 40th a full refund of the payment five
/// payments back, every 70th a REVOKED payment, row `bad` with an unquoted comma. Transaction ids start
/// with `tx`; the buyers are the same 97 in every bill.
fn wechat_bill(n: usize, bad: usize, tx: &str) -> Bill {
    let fixture = std::fs::read_to_string(fixture("wechat_merchant/all_27col_bom_crlf.csv")).unwrap();
    let lines: Vec<&str> = fixture.split("\r\n").filter(|l| !l.is_empty()).collect();
    let (header, summary_header) = (lines[0], lines[lines.len() - 2]);
    assert!(header.starts_with('\u{feff}') && summary_header.starts_with("总交易单数"));
    let mut bill = Bill {
        bytes: format!("{header}\r\n").into_bytes(),
        payments: 0,
        refunds: 0,
        revoked: 0,
        payments_fen: 0,
        refunds_fen: 0,
        bad_line: bad as u64 + 2,
        first: String::new(),
        last: String::new(),
    };
    // The stated totals: 总交易单数, 应结订单总金额, 退款总金额, 手续费总金额, 订单总金额, 申请退款总金额.
    let (mut rows, mut settled, mut refunded, mut fees, mut ordered) = (0i64, 0i64, 0i64, 0i64, 0i64);
    let mut paid: Vec<(String, i64)> = Vec::new();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 10, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    for i in 0..n {
        let t = start + chrono::Duration::minutes((i * 61 * 24 * 60 / n) as i64);
        let t = t.format("%Y-%m-%d %H:%M:%S").to_string();
        let openid = format!("oUser{:022}", i % 97);
        let product = ["拿铁", "美式咖啡", "可颂"][i % 3];
        let cells: Vec<String> = if i % 40 == 39 {
            let (tx, amount) = paid[paid.len() - 5].clone();
            let refund_no = format!("503{i:026}");
            let fee = -amount * 6;
            if i != bad {
                bill.refunds += 1;
                bill.refunds_fen -= amount;
                rows += 1;
                refunded += amount;
                fees += fee;
            }
            #[rustfmt::skip]
            let v = vec![t.clone(), "wx8888888888888888".into(), "1900000109".into(), "0".into(), "".into(),
                tx.clone(), format!("P{tx}"), openid, "JSAPI".into(), "REFUND".into(), "OTHERS".into(), "CNY".into(),
                "0.00".into(), "0.00".into(), refund_no, format!("R{tx}"), yuan(amount), "0.00".into(),
                "ORIGINAL".into(), "SUCCESS".into(), product.into(), "".into(), yuan5(fee), "0.60%".into(),
                "0.00".into(), yuan(amount), "".into()];
            v
        } else {
            let tx = format!("{tx}{i:014}");
            let amount = 500 + (i as i64 * 37) % 3000;
            let revoked = i % 70 == 69;
            let fee = if revoked { 0 } else { amount * 6 };
            if i != bad {
                rows += 1;
                settled += amount;
                ordered += amount;
                fees += fee;
                if revoked {
                    bill.revoked += 1;
                } else {
                    bill.payments += 1;
                    bill.payments_fen += amount;
                    paid.push((tx.clone(), amount));
                }
            }
            let status = if revoked { "REVOKED" } else { "SUCCESS" };
            #[rustfmt::skip]
            let v = vec![t.clone(), "wx8888888888888888".into(), "1900000109".into(), "0".into(), "".into(),
                tx.clone(), format!("P{tx}"), openid, "JSAPI".into(), status.into(), "OTHERS".into(), "CNY".into(),
                yuan(amount), "0.00".into(), "0".into(), "0".into(), "0.00".into(), "0.00".into(), "".into(), "".into(),
                product.into(), "".into(), yuan5(fee), "0.60%".into(), yuan(amount), "0.00".into(), "".into()];
            v
        };
        let mut row: Vec<String> = cells.iter().map(|c| format!("`{c}")).collect();
        if i == bad {
            row[20] = format!("`{product},大杯"); // an unquoted comma: one field too many
        } else {
            if bill.first.is_empty() {
                bill.first = t.clone();
            }
            bill.last = t.clone();
        }
        bill.bytes
            .extend_from_slice(format!("{}\r\n", row.join(",")).as_bytes());
    }
    bill.bytes.extend_from_slice(
        format!(
            "{summary_header}\r\n`{rows},`{},`{},`0.00,`{},`{},`{}\r\n",
            yuan(settled),
            yuan(refunded),
            yuan5(fees),
            yuan(ordered),
            yuan(refunded)
        )
        .as_bytes(),
    );
    bill
}

fn written(dir: &Path, name: &str, bill: &Bill) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, &bill.bytes).unwrap();
    path
}

/// `ingest --json` with settings from the environment.
fn ingest_env(store: &Path, paths: &[PathBuf], env: &[(&str, &str)], extra: &[&str]) -> (i32, serde_json::Value) {
    let out = bin()
        .arg("--store")
        .arg(store)
        .args(["ingest", "--json"])
        .args(extra)
        .args(paths)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(101), "{}", String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

/// Pieces of 30 lines or 8 KiB, whichever ends first (a file over 8 KiB is read in pieces), and batches
/// of 300 rows.
const IN_PIECES: &[(&str, &str)] = &[
    ("PAYLENS_TEST_PIECE_BYTES", "8192"),
    ("PAYLENS_TEST_PIECE_LINES", "30"),
    ("PAYLENS_TEST_COMMIT_BATCH_ROWS", "300"),
];

/// `IN_PIECES`, with the file's digest held back until 4 pieces (120 rows, under the 150 spilled
/// together) were staged (or 10 s passed).
fn digest_late() -> Vec<(&'static str, &'static str)> {
    [IN_PIECES, &[("PAYLENS_TEST_DIGEST_AFTER_STAGED", "4")]].concat()
}

fn check_outcome(f: &serde_json::Value, bill: &Bill) {
    assert_eq!(f["status"], "ingested", "{f:#}");
    assert_eq!(f["payments"], bill.payments, "{f:#}");
    assert_eq!(f["refunds"], bill.refunds);
    assert_eq!(f["skipped"], bill.revoked);
    assert_eq!(f["rejected"], 1);
    assert_eq!(f["payments_fen"], bill.payments_fen);
    assert_eq!(f["refunds_fen"], bill.refunds_fen);
    assert_eq!(f["first"], bill.first.as_str());
    assert_eq!(f["last"], bill.last.as_str());
    // The summary is checked once every piece is in: it matches the rows it states.
    assert_eq!(f["reconciled"], true, "{f:#}");
}

#[test]
fn a_bill_read_in_pieces_is_stored_as_a_whole_read_stores_it() {
    let dir = tempfile::tempdir().unwrap();
    let bill = wechat_bill(6000, 1234, "42000026262026");
    let path = written(dir.path(), "bill.csv", &bill);
    // Over 1 MiB: mapped, not read whole (the next test's bill is read whole).
    assert!(std::fs::metadata(&path).unwrap().len() > 1 << 20);
    let (whole, pieces, late) = (
        dir.path().join("whole"),
        dir.path().join("pieces"),
        dir.path().join("late"),
    );
    for store in [&whole, &pieces, &late] {
        std::fs::create_dir_all(store).unwrap();
        std::fs::write(store.join("secret.key"), "0123456789abcdef0123456789abcdef").unwrap();
    }
    let (code, a) = ingest_env(&whole, std::slice::from_ref(&path), &[], &[]);
    assert_eq!(code, 0, "{a:#}");
    let (code, b) = ingest_env(&pieces, std::slice::from_ref(&path), IN_PIECES, &[]);
    assert_eq!(code, 0, "{b:#}");
    check_outcome(&a["files"][0], &bill);
    check_outcome(&b["files"][0], &bill);
    // Rows, keys, line numbers and source file alike.
    let ev = events(&pieces);
    assert_eq!(ev.len() as u64, bill.payments + bill.refunds);
    assert_eq!(events(&whole), ev);
    // The same when the digest comes after 4 pieces (120 rows) were staged without it, as a large bill's
    // does: they are named by it like the rest.
    let (code, c) = ingest_env(&late, std::slice::from_ref(&path), &digest_late(), &[]);
    assert_eq!(code, 0, "{c:#}");
    check_outcome(&c["files"][0], &bill);
    assert_eq!(events(&late), ev);
    // Given again, with its digest as late: stored already, and the store is as it was.
    let before = snapshot(&late);
    let (code, c) = ingest_env(&late, std::slice::from_ref(&path), &digest_late(), &[]);
    assert_eq!(
        (code, &c["files"][0]["status"]),
        (0, &serde_json::json!("already_ingested")),
        "{c:#}"
    );
    assert!(snapshot(&late) == before, "a re-ingest changed the store");
    // Spilled as it was read (parts beyond the one a month a single commit writes), in one generation.
    let m = manifest(&pieces);
    assert_eq!(m["generation"], 1);
    assert!(event_parts(&m).len() > 4, "{m:#}");
    assert_eq!(event_parts(&manifest(&whole)).len(), 2);
    // The rejected row, with its line, in the same rejects file.
    let rejects = m["files"][0]["rejects_file"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(pieces.join(&rejects)).unwrap();
    assert!(text.contains(&format!(",{},", bill.bad_line)), "{text}");
    assert_eq!(text, std::fs::read_to_string(whole.join(&rejects)).unwrap());
}

#[test]
fn a_piece_that_fails_takes_back_its_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let bill = wechat_bill(3000, 10, "42000026262026");
    let big = written(dir.path(), "big.csv", &bill);
    assert!(std::fs::metadata(&big).unwrap().len() < 1 << 20);
    let small = fixture("wechat_merchant/all_27col_bom_crlf.csv");
    let store = dir.path().join("store");
    // Piece 60 of about 120 fails, after several batches of the file's rows were spilled.
    let failing = [IN_PIECES, &[("PAYLENS_TEST_FAIL_PIECE", "60")]].concat();
    let (code, json) = ingest_env(&store, &[small.clone(), big.clone()], &failing, &[]);
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(file(&json, "all_27col_bom_crlf.csv")["status"], "ingested");
    let f = file(&json, "big.csv");
    assert_eq!(f["status"], "refused");
    assert!(
        f["error"].as_str().unwrap().contains("injected failure in piece 60"),
        "{f:#}"
    );
    assert_eq!(events(&store).len(), 5);
    // A second bill of the same buyers, read after the failed one: every buyer has an identity.
    let other_bill = wechat_bill(400, 399, "42000026262099");
    let other = written(dir.path(), "other.csv", &other_bill);
    let (code, json) = ingest_env(&store, &[big.clone(), other.clone()], &failing, &[]);
    assert_eq!(
        (code, &file(&json, "other.csv")["status"]),
        (1, &serde_json::json!("ingested"))
    );
    let keys: std::collections::BTreeSet<String> = events(&store).into_iter().filter_map(|e| e.customer_key).collect();
    let m = manifest(&store);
    let mut with_identity = std::collections::BTreeSet::new();
    for rel in m["identities"].as_array().unwrap() {
        for b in read_batches(&store.join(rel.as_str().unwrap())) {
            let col = b.column_by_name("customer_key").unwrap();
            let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
            let a = arrow::array::AsArray::as_string::<i32>(&col);
            use arrow::array::Array;
            with_identity.extend((0..a.len()).map(|i| a.value(i).to_string()));
        }
    }
    assert_eq!(keys.len(), 97 + 2); // the small fixture's third buyer only has a REVOKED row
    assert!(keys.is_subset(&with_identity), "buyers without an identity");
    // Nothing of the failed file is left: every events file is one the manifest names.
    let named = event_parts(&manifest(&store));
    let on_disk: Vec<String> = snapshot(&store)
        .into_keys()
        .filter(|k| k.starts_with("events/"))
        .collect();
    assert_eq!(on_disk, named);

    // Under --strict the same failure fails the run and leaves the store as it was.
    let before = snapshot(&store);
    let (code, json) = ingest_env(&store, std::slice::from_ref(&big), &failing, &["--strict"]);
    assert_eq!(code, 1);
    let f = file(&json, "big.csv");
    assert!(
        f["error"].as_str().unwrap().contains("injected failure in piece 60"),
        "{f:#}"
    );
    assert!(snapshot(&store) == before, "a failed --strict ingest changed the store");

    // Without the failure the whole file is stored, once.
    let (code, json) = ingest_env(&store, std::slice::from_ref(&big), IN_PIECES, &[]);
    assert_eq!(code, 0, "{json:#}");
    check_outcome(&json["files"][0], &bill);
    assert_eq!(
        events(&store).len() as u64,
        5 + other_bill.payments + other_bill.refunds + bill.payments + bill.refunds
    );
    let before = snapshot(&store);
    let (code, json) = ingest_env(&store, std::slice::from_ref(&big), IN_PIECES, &[]);
    assert_eq!(code, 0);
    assert_eq!(json["files"][0]["status"], "already_ingested");
    assert_eq!(json["files"][0]["duplicates"], bill.payments + bill.refunds);
    assert!(snapshot(&store) == before, "a re-ingest changed the store");
}

/// An Alipay 业务明细 export in GBK (the fixture's preamble, header, end marker and trailer wording) of
/// `copies` times the fixture's four rows (3 trades of 73.00 received with 3.00 of discount, 1 refund of
/// -28.00), each copy with ids of its own, and a trailer stating their totals.
fn alipay_bill(copies: i64) -> Vec<u8> {
    let fixture = std::fs::read(fixture("alipay_merchant/details_gbk.csv")).unwrap();
    let (text, _, bad) = encoding_rs::GB18030.decode(&fixture);
    assert!(!bad);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert!(lines[4].starts_with("支付宝交易号") && lines[9].contains("业务明细列表结束"));
    let mut out = lines[..5].join("\r\n") + "\r\n";
    for k in 0..copies {
        for row in &lines[5..9] {
            let row = row
                .replace("58860500000", &format!("{k:011}"))
                .replace(",A00", &format!(",A{k}-"))
                .replace("RF0001", &format!("RF{k}"));
            out += &format!("{row}\r\n");
        }
    }
    out += &format!(
        "{}\r\n#交易合计：{}笔，商家实收共{}元，商家优惠共{}元\r\n#退款合计：{}笔，商家实收退款共{}元，商家优惠退款共0.00元\r\n{}\r\n",
        lines[9],
        3 * copies,
        yuan(7300 * copies),
        yuan(300 * copies),
        copies,
        yuan(-2800 * copies),
        lines[12]
    );
    encoding_rs::GB18030.encode(&out).0.into_owned()
}

#[test]
fn an_alipay_export_read_in_pieces_from_disk_or_a_zip_is_stored_as_a_whole_read_stores_it() {
    let dir = tempfile::tempdir().unwrap();
    let copies = 1500;
    let bytes = alipay_bill(copies);
    let csv = dir.path().join("20880211096256330156_202611.csv");
    std::fs::write(&csv, &bytes).unwrap();
    let zip = dir.path().join("20880211096256330156_202611.csv.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
    w.start_file(
        "20880211096256330156_202611_业务明细.csv",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    std::io::Write::write_all(&mut w, &bytes).unwrap();
    w.finish().unwrap();
    let stores: Vec<PathBuf> = ["whole", "pieces", "zip"].iter().map(|s| dir.path().join(s)).collect();
    let runs: [(&PathBuf, &[(&str, &str)]); 3] = [(&csv, &[]), (&csv, IN_PIECES), (&zip, IN_PIECES)];
    for (store, (path, env)) in stores.iter().zip(runs) {
        std::fs::create_dir_all(store).unwrap();
        std::fs::write(store.join("secret.key"), "0123456789abcdef0123456789abcdef").unwrap();
        let (code, json) = ingest_env(store, std::slice::from_ref(path), env, &[]);
        assert_eq!(code, 0, "{json:#}");
        let f = &json["files"][0];
        assert_eq!(f["format"], "alipay_merchant", "{f:#}");
        assert_eq!(f["payments"], 3 * copies);
        assert_eq!(f["refunds"], copies);
        assert_eq!(f["payments_fen"], (2800 + 3200 + 1600) * copies);
        assert_eq!(f["refunds_fen"], -2800 * copies);
        // The trailer, checked once every piece is in, matches the rows it states.
        assert_eq!(f["reconciled"], true, "{f:#}");
    }
    let whole = events(&stores[0]);
    assert_eq!(whole.len() as i64, 4 * copies);
    assert_eq!(events(&stores[1]), whole);
    assert_eq!(events(&stores[2]), whole);
    assert!(
        event_parts(&manifest(&stores[2])).len() > 4,
        "the zip entry was not read in pieces"
    );
}

/// The same export given twice in one run (a download saved twice, a copy in another folder) is stored
/// once and the copy is reported as already ingested, both for a file read whole and for one read in
/// pieces, and whether or not a commit fell between them.
#[test]
fn the_same_export_twice_in_one_run_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let bill = wechat_bill(3000, 10, "42000026262026");
    let big = written(dir.path(), "big.csv", &bill);
    let big_copy = written(dir.path(), "big (1).csv", &bill);
    let small = fixture("wechat_merchant/all_27col_bom_crlf.csv");
    let small_copy = dir.path().join("small copy.csv");
    std::fs::copy(&small, &small_copy).unwrap();
    // Read whole in one commit; then in pieces, in batches of 300 rows (a commit falls between a file and
    // its copy); then with the digest held back until 4 pieces were staged without it.
    let late = digest_late();
    for env in [&[][..], IN_PIECES, &late] {
        let store = dir.path().join(format!("store-{}", env.len()));
        let inputs = [small.clone(), big.clone(), small_copy.clone(), big_copy.clone()];
        let (code, json) = ingest_env(&store, &inputs, env, &[]);
        assert_eq!(code, 0, "{json:#}");
        check_outcome(file(&json, "big.csv"), &bill);
        assert_eq!(file(&json, "all_27col_bom_crlf.csv")["status"], "ingested");
        let copy = file(&json, "big (1).csv");
        assert_eq!(copy["status"], "already_ingested", "{copy:#}");
        assert_eq!(copy["duplicates"], bill.payments + bill.refunds, "{copy:#}");
        assert_eq!(copy["payments"], 0);
        let copy = file(&json, "small copy.csv");
        assert_eq!(copy["status"], "already_ingested", "{copy:#}");
        assert_eq!(copy["duplicates"], 5, "{copy:#}");
        assert_eq!(events(&store).len() as u64, 5 + bill.payments + bill.refunds);
        // The manifest names each export once.
        let m = manifest(&store);
        assert_eq!(m["files"].as_array().unwrap().len(), 2, "{m:#}");
    }
}
