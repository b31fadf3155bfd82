//! Store guarantees: re-ingest is a no-op, overlapping exports never double count, a failed write leaves
//! the previous state exactly, one writer at a time, standard Parquet (arrow-rs and DuckDB read it),
//! raw buyer ids only in the identities table, and no input makes paylens panic or half-write the store.

use std::path::PathBuf;

use crate::harness::*;

fn fx(rels: &[&str]) -> Vec<PathBuf> {
    rels.iter().map(|r| fixture(r)).collect()
}

#[test]
fn reingesting_the_same_files_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let files = fx(&[
        "wechat_merchant/all_27col_bom_crlf.csv",
        "alipay_merchant/monthly.csv.zip",
        "wechat_personal/bill_2024.csv",
    ]);
    let (code, _) = ingest_json(&store, &files, &[]);
    assert_eq!(code, 0);
    let before = snapshot(&store);
    let (code, json) = ingest_json(&store, &files, &[]);
    assert_eq!(code, 0);
    for f in json["files"].as_array().unwrap() {
        assert_eq!(f["status"], "already_ingested", "{f:#}");
    }
    assert_eq!(file(&json, "all_27col_bom_crlf.csv")["duplicates"], 5);
    let after = snapshot(&store);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    assert!(before == after, "store bytes changed on a re-ingest");
}

/// A store written before files were named by BLAKE3 (manifest version 2: each file by its SHA-256
/// alone) still knows its files: they are found again, nothing is rewritten, and a file new to it gets
/// both digests. The digests are computed here from the files' bytes by the crates' one-call functions.
#[test]
fn a_store_that_names_files_by_sha256_still_knows_them() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let files = fx(&[
        "wechat_merchant/all_27col_bom_crlf.csv",
        "wechat_personal/bill_2024.csv",
    ]);
    let (code, _) = ingest_json(&store, &files, &[]);
    assert_eq!(code, 0);
    let mut m = manifest(&store);
    assert_eq!(m["version"], 3);
    for entry in m["files"].as_array_mut().unwrap() {
        let path = files
            .iter()
            .find(|f| f.display().to_string() == entry["path"].as_str().unwrap())
            .expect("a file of the run");
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(entry["blake3"], blake3::hash(&bytes).to_hex().as_str());
        assert!(entry.get("sha256").is_none(), "{entry:#}");
        let e = entry.as_object_mut().unwrap();
        e.remove("blake3");
        e.insert("sha256".into(), hex::encode(sha2::Sha256::digest(&bytes)).into());
    }
    m["version"] = 2.into();
    std::fs::write(store.join("manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let before = snapshot(&store);
    let (code, json) = ingest_json(&store, &files, &[]);
    assert_eq!(code, 0);
    for f in json["files"].as_array().unwrap() {
        assert_eq!(f["status"], "already_ingested", "{f:#}");
    }
    assert!(snapshot(&store) == before, "a re-ingest into an old store changed it");

    let new = fx(&["wechat_merchant/success_20col.csv"]);
    let (code, _) = ingest_json(&store, &new, &[]);
    assert_eq!(code, 0);
    let m = manifest(&store);
    assert_eq!(m["version"], 3);
    let bytes = std::fs::read(&new[0]).unwrap();
    let entry = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("success_20col.csv"))
        .expect("the new file's entry");
    assert_eq!(entry["blake3"], blake3::hash(&bytes).to_hex().as_str());
    assert_eq!(entry["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    let old = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("blake3").is_none())
        .count();
    assert_eq!(old, 2, "the old entries are kept as they were");
}

#[test]
fn overlapping_exports_never_double_count_in_any_order() {
    // ALL holds tx1..tx3 and two refunds; SUCCESS repeats tx1 and adds tx5; REFUND repeats tx1's refund.
    let order_a = fx(&[
        "wechat_merchant/all_27col_bom_crlf.csv",
        "wechat_merchant/success_20col.csv",
        "wechat_merchant/refund_29col.csv",
    ]);
    let order_b: Vec<PathBuf> = order_a.iter().rev().cloned().collect();
    let dir = tempfile::tempdir().unwrap();
    let (sa, sb) = (dir.path().join("a"), dir.path().join("b"));
    let (_, ja) = ingest_json(&sa, &order_a, &[]);
    assert_eq!(file(&ja, "success_20col.csv")["duplicates"], 1);
    assert_eq!(file(&ja, "refund_29col.csv")["duplicates"], 1);
    // The same files one at a time, newest first, in separate runs.
    for p in &order_b {
        ingest_json(&sb, std::slice::from_ref(p), &[]);
    }
    let (ea, eb) = (events(&sa), events(&sb));
    let ids = |e: &[EventRow]| e.iter().map(|r| (r.event_id.clone(), r.amount_fen)).collect::<Vec<_>>();
    assert_eq!(ids(&ea), ids(&eb));
    assert_eq!(ea.iter().filter(|r| r.kind == "payment").count(), 4);
    assert_eq!(ea.iter().filter(|r| r.kind == "refund").count(), 2);
    assert_eq!(
        ea.iter().map(|r| r.amount_fen).sum::<i64>(),
        2800 + 3000 + 1600 + 2200 - 2800 - 1000
    );
}

/// Ingests three files (three months: 2024-06, 2026-10, 2026-11) over a store holding one legacy bill
/// with an injected failure (`env`): the run must fail with the store exactly as it was, and a rerun
/// without the failure must complete.
fn a_failed_ingest_leaves_the_store_and_a_rerun_completes(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ingest_json(&store, &fx(&["wechat_merchant/legacy_24col.csv"]), &[]);
    let before = snapshot(&store);
    let files = fx(&[
        "wechat_personal/bill_2024.csv",
        "alipay_personal/bill_2023_layout.csv",
        "wechat_merchant/all_27col_bom_crlf.csv",
    ]);
    let mut cmd = bin();
    cmd.arg("--store").arg(&store).arg("ingest").args(&files);
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("injected failure"));
    let during = snapshot(&store);
    assert!(
        before == during,
        "store changed by a failed ingest: {:?} vs {:?}",
        before.keys(),
        during.keys()
    );
    let (code, json) = ingest_json(&store, &files, &[]);
    assert_eq!(code, 0, "{json:#}");
    let ev = events(&store);
    assert_eq!(ev.iter().filter(|r| r.kind == "payment").count(), 1 + 4 + 2 + 3);
    assert_eq!(manifest(&store)["events"].as_object().unwrap().len(), 4);
}

#[test]
fn a_failure_part_way_through_leaves_the_previous_state_and_a_rerun_completes() {
    // One commit, failing after writing one of its three partitions.
    a_failed_ingest_leaves_the_store_and_a_rerun_completes(&[("PAYLENS_TEST_FAIL_AFTER_PARTITIONS", "1")]);
}

#[test]
fn a_commit_failing_in_the_background_leaves_the_previous_state() {
    // A batch of 2 rows: the first file's commit is written in the background while the next is staged;
    // it fails at its first partition.
    a_failed_ingest_leaves_the_store_and_a_rerun_completes(&[
        ("PAYLENS_TEST_COMMIT_BATCH_ROWS", "2"),
        ("PAYLENS_TEST_FAIL_AFTER_PARTITIONS", "0"),
    ]);
}

#[test]
fn batched_commits_give_the_same_store_as_one_commit() {
    let files = fx(&[
        "wechat_merchant/all_27col_bom_crlf.csv",
        "wechat_merchant/success_20col.csv",
        "alipay_merchant/details_gbk.csv",
        "wechat_personal/bill_2024.csv",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (one, batched) = (dir.path().join("one"), dir.path().join("batched"));
    ingest_json(&one, &files, &[]);
    // The same secret, so that customer keys are comparable.
    std::fs::create_dir_all(&batched).unwrap();
    std::fs::copy(one.join("secret.key"), batched.join("secret.key")).unwrap();
    let mut cmd = bin();
    cmd.arg("--store")
        .arg(&batched)
        .arg("ingest")
        .args(&files)
        .env("PAYLENS_TEST_COMMIT_BATCH_ROWS", "2");
    assert!(cmd.output().unwrap().status.success());
    assert_eq!(manifest(&one)["generation"], 1);
    // At a batch of 2 rows: ALL (5 new events) commits; SUCCESS (1 new, 1 duplicate) waits and commits with
    // the Alipay bill (4 new); the WeChat personal bill (6) commits last: 3 generations.
    assert_eq!(manifest(&batched)["generation"], 3);
    assert_eq!(events(&one), events(&batched));
    assert_eq!(manifest(&batched)["files"].as_array().unwrap().len(), 4);
}

#[test]
fn a_second_writer_is_kept_out_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(store.join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let out = run(
        &store,
        &["ingest", fixture("wechat_merchant/success_20col.csv").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("being written by another paylens process"), "{err}");
    drop(lock);
    let out = run(
        &store,
        &["ingest", fixture("wechat_merchant/success_20col.csv").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn store_files_are_standard_parquet_for_arrow_rs_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ingest_json(
        &store,
        &fx(&[
            "wechat_merchant/all_27col_bom_crlf.csv",
            "alipay_merchant/details_gbk.csv",
            "generic/pos_line_items.csv",
        ]),
        &[],
    );
    let m = manifest(&store);
    // arrow-rs: every file the manifest names opens, zstd-compressed, with the documented columns.
    for rel in event_parts(&m) {
        let path = store.join(rel);
        let f = std::fs::File::open(&path).unwrap();
        let meta = parquet::file::reader::SerializedFileReader::new(f).unwrap();
        let md = parquet::file::reader::FileReader::metadata(&meta);
        let col = md.row_group(0).column(0);
        assert!(
            matches!(col.compression(), parquet::basic::Compression::ZSTD(_)),
            "{:?}",
            col.compression()
        );
        let b = read_batches(&path);
        let names: Vec<String> = b[0].schema().fields().iter().map(|f| f.name().clone()).collect();
        for c in [
            "event_id",
            "kind",
            "occurred_at",
            "local_date",
            "customer_key",
            "amount_fen",
            "fee_millifen",
            "source_file",
            "source_line",
        ] {
            assert!(names.contains(&c.to_string()), "{c} missing from {names:?}");
        }
    }
    // DuckDB, reading the folder as a user would.
    let glob = store.join("events/*/*.parquet");
    let out = python(&format!(
        "import duckdb; print(duckdb.sql(\"select count(*), sum(amount_fen), count(distinct customer_key) from read_parquet('{}')\").fetchall())",
        glob.display()
    ));
    // WeChat: 7400 - 3800 over 5 events and 2 customers; Alipay: 7600 - 2800 over 4 events and 2 customers.
    assert_eq!(out.trim(), format!("[(9, {}, 4)]", 7400 - 3800 + 7600 - 2800));
    let out = python(&format!(
        "import duckdb; print(duckdb.sql(\"select typeof(occurred_at), typeof(local_date) from read_parquet('{}') limit 1\").fetchall())",
        glob.display()
    ));
    assert_eq!(out.trim(), "[('TIMESTAMP WITH TIME ZONE', 'DATE')]");
}

#[test]
fn raw_buyer_ids_live_only_in_the_identities_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ingest_json(
        &store,
        &fx(&[
            "wechat_merchant/all_27col_bom_crlf.csv",
            "alipay_merchant/details_gbk.csv",
        ]),
        &[],
    );
    let m = manifest(&store);
    let contains = |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for rel in event_parts(&m) {
        let bytes = std::fs::read(store.join(rel)).unwrap();
        assert!(!contains(&bytes, "oUser1AAAA"), "an openid is in the events table");
        assert!(
            !contains(&bytes, "137****2600"),
            "a masked phone is in the events table"
        );
    }
    let ids = read_batches(&store.join(m["identities"][0].as_str().unwrap()));
    assert_eq!(ids.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Another store has another secret: keys are not comparable across stores.
    let other = dir.path().join("other");
    ingest_json(&other, &fx(&["wechat_merchant/all_27col_bom_crlf.csv"]), &[]);
    let a: Vec<_> = events(&store)
        .into_iter()
        .filter(|r| r.channel == "wechat_pay")
        .map(|r| r.customer_key)
        .collect();
    let b: Vec<_> = events(&other).into_iter().map(|r| r.customer_key).collect();
    assert_ne!(a, b);
}

#[test]
fn hostile_inputs_never_panic_or_half_write() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // Every fixture truncated at several points, and with bytes overwritten.
    let mut n = 0;
    for rel in [
        "wechat_merchant/all_27col_bom_crlf.csv",
        "alipay_merchant/details_gbk.csv",
        "alipay_merchant/monthly.csv.zip",
        "wechat_personal/bill_2024.csv",
        "wechat_personal/bill_2026_03_row18.xlsx",
        "alipay_personal/bill_2023_layout.csv",
        "alipay_personal/web_old_layout.csv",
        "generic/inventory_cn.csv",
    ] {
        let bytes = std::fs::read(fixture(rel)).unwrap();
        for cut in [1, 3, 17, bytes.len() / 3, bytes.len() / 2, bytes.len() - 7] {
            std::fs::write(inbox.join(format!("cut{n}_{cut}")), &bytes[..cut.min(bytes.len())]).unwrap();
            n += 1;
        }
        let mut x: u32 = 7;
        for k in 0..6 {
            let mut b = bytes.clone();
            for _ in 0..(1 + k * 3) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let i = (x as usize >> 3) % b.len();
                b[i] = (x >> 16) as u8;
            }
            std::fs::write(inbox.join(format!("flip{n}_{k}")), &b).unwrap();
            n += 1;
        }
    }
    for bad in ["bad/empty.csv", "bad/random.bin", "bad/unknown_table.csv"] {
        std::fs::copy(fixture(bad), inbox.join(bad.replace('/', "_"))).unwrap();
    }
    let store = dir.path().join("store");
    let (code, json) = ingest_json(&store, std::slice::from_ref(&inbox), &[]);
    assert!(code == 0 || code == 1, "exit {code}");
    let files = json["files"].as_array().unwrap();
    // A damaged zip may still list its entries: at least one line per file.
    assert!(files.len() >= n + 3, "{} < {}", files.len(), n + 3);
    for f in files {
        if f["status"] == "refused" {
            assert!(
                f["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(f["path"].as_str().unwrap().rsplit('/').next().unwrap())),
                "{f:#}"
            );
        }
    }
    // Whatever was stored is whole: every manifest file reads, and the counts match the JSON.
    let stored: u64 = files
        .iter()
        .map(|f| f["payments"].as_u64().unwrap() + f["refunds"].as_u64().unwrap())
        .sum();
    let dups: u64 = files.iter().map(|f| f["duplicates"].as_u64().unwrap()).sum();
    assert_eq!(events(&store).len() as u64, stored - dups);
    // A run of only unreadable inputs writes no store at all.
    let only_bad = dir.path().join("only_bad");
    let (code, _) = ingest_json(&only_bad, &fx(&["bad/empty.csv", "bad/random.bin"]), &[]);
    assert_eq!(code, 1);
    assert!(!only_bad.join("manifest.json").exists());
    // No input at all is a usage error, not a panic.
    let out = bin().args(["ingest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = run(&only_bad, &["ingest", "/nonexistent/bill.csv"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_later_ingest_adds_parts_and_never_rewrites_stored_files_even_in_a_version_1_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ingest_json(&store, &fx(&["wechat_merchant/all_27col_bom_crlf.csv"]), &[]);
    let before = events(&store);
    // Rewrite the manifest as version 1 wrote it: one file per month, one identities file.
    let mut m = manifest(&store);
    let first_parts = event_parts(&m);
    for (_, parts) in m["events"].as_object_mut().unwrap() {
        *parts = parts[0].clone();
    }
    m["identities"] = m["identities"][0].clone();
    m["version"] = 1.into();
    std::fs::write(store.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let stored: Vec<Vec<u8>> = first_parts
        .iter()
        .map(|p| std::fs::read(store.join(p)).unwrap())
        .collect();
    // SUCCESS repeats tx1 (a duplicate) and adds tx5 in the same month; the Alipay bill adds 4 events.
    let (code, json) = ingest_json(
        &store,
        &fx(&["wechat_merchant/success_20col.csv", "alipay_merchant/details_gbk.csv"]),
        &[],
    );
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(file(&json, "success_20col.csv")["duplicates"], 1);
    let m = manifest(&store);
    assert_eq!(m["version"], 3);
    let parts = event_parts(&m);
    for (p, bytes) in first_parts.iter().zip(&stored) {
        assert!(parts.contains(p), "{p} is no longer in the store: {parts:?}");
        assert_eq!(&std::fs::read(store.join(p)).unwrap(), bytes, "{p} was rewritten");
    }
    let after = events(&store);
    assert_eq!(after.len(), before.len() + 1 + 4);
    let mut ids: Vec<&str> = after.iter().map(|r| r.event_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), after.len(), "an event is stored twice");
    // Identities: the second part holds only keys the first did not have: oUser1 (in both WeChat bills) is
    // not repeated; oUser4 (SUCCESS's tx5) and the 2 Alipay buyers are new.
    let id_parts = m["identities"].as_array().unwrap();
    assert_eq!(id_parts.len(), 2);
    let rows: Vec<usize> = id_parts
        .iter()
        .map(|p| {
            read_batches(&store.join(p.as_str().unwrap()))
                .iter()
                .map(|b| b.num_rows())
                .sum()
        })
        .collect();
    assert_eq!(rows, vec![2, 3]);
}
