//! Runs `paylens` as a user would (a real process in a temp folder) and reads what it wrote with
//! independent readers: arrow-rs `parquet` for the store, serde_json for `--json` output.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_paylens"));
    // English unless a test asks for another language; the machine's locale must not leak in.
    c.env_remove("PAYLENS_STORE")
        .env_remove("PAYLENS_CONFIG")
        .env_remove("PAYLENS_CHART_FONT")
        .env_remove("PAYLENS_TEST_FAIL_AFTER_PARTITIONS")
        .env_remove("PAYLENS_TEST_FAIL_PIECE")
        .env_remove("PAYLENS_TEST_PIECE_BYTES")
        .env_remove("PAYLENS_TEST_COMMIT_BATCH_ROWS")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "C.UTF-8");
    c
}

/// Runs paylens with `args` against `store`, returning the process output.
pub fn run(store: &Path, args: &[&str]) -> Output {
    let out = bin()
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("paylens runs");
    assert_ne!(
        out.status.code(),
        Some(101),
        "paylens panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ingest --json` over `paths`; returns the exit code and the parsed JSON.
pub fn ingest_json(store: &Path, paths: &[PathBuf], extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args: Vec<String> = vec!["ingest".into(), "--json".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(store, &args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// The per-file entry whose path ends with `suffix`.
pub fn file<'a>(json: &'a serde_json::Value, suffix: &str) -> &'a serde_json::Value {
    json["files"]
        .as_array()
        .expect("files array")
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
        .unwrap_or_else(|| panic!("no file ending {suffix} in {json:#}"))
}

/// The last day of every demo shop the tests generate.
pub const DEMO_END: &str = "2026-11-22";

/// `paylens demo --out OUT --end DEMO_END EXTRA...`, which must succeed.
pub fn demo(out: &Path, extra: &[&str]) {
    let mut args = vec!["demo", "--out", out.to_str().unwrap(), "--end", DEMO_END];
    args.extend_from_slice(extra);
    let o = bin().args(&args).output().unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One event row as read back by arrow-rs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventRow {
    pub event_id: String,
    pub kind: String,
    pub local_date: i32,
    pub occurred_at_us: i64,
    pub amount_fen: i64,
    pub fee_millifen: i64,
    pub payment_event_id: Option<String>,
    pub customer_key: Option<String>,
    pub customer_key_quality: String,
    pub channel: String,
    pub product_name: Option<String>,
    pub merchant_order_id: Option<String>,
    pub source_file: String,
    pub source_line: i64,
}

pub fn manifest(store: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(store.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn strings(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = batch.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
    let col = arrow::compute::cast(col, &DataType::Utf8).expect("cast to Utf8");
    let a = col.as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

fn ints(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<i64> {
    let col = batch.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
    let col = arrow::compute::cast(col, &DataType::Int64).expect("cast to Int64");
    let a = col.as_primitive::<arrow::datatypes::Int64Type>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

/// Every file of a store table, read with the arrow-rs reader.
pub fn read_batches(path: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    let f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("parquet metadata")
        .build()
        .expect("reader");
    reader.map(|b| b.expect("record batch")).collect()
}

/// Every events file the manifest names (month -> list of parts), oldest month first.
pub fn event_parts(m: &serde_json::Value) -> Vec<String> {
    let mut v = Vec::new();
    for (_, parts) in m["events"].as_object().expect("events map") {
        for p in parts.as_array().expect("a month's parts") {
            v.push(p.as_str().expect("a path").to_string());
        }
    }
    v
}

/// All events of the store, through the manifest, sorted by event id.
pub fn events(store: &Path) -> Vec<EventRow> {
    let m = manifest(store);
    let mut rows = Vec::new();
    for rel in event_parts(&m) {
        for b in read_batches(&store.join(rel)) {
            let ids = strings(&b, "event_id");
            let kind = strings(&b, "kind");
            let date = ints(&b, "local_date");
            let at = ints(&b, "occurred_at");
            let amount = ints(&b, "amount_fen");
            let fee = ints(&b, "fee_millifen");
            let pay = strings(&b, "payment_event_id");
            let key = strings(&b, "customer_key");
            let quality = strings(&b, "customer_key_quality");
            let channel = strings(&b, "channel");
            let product = strings(&b, "product_name");
            let order = strings(&b, "merchant_order_id");
            let source = strings(&b, "source_file");
            let line = ints(&b, "source_line");
            for i in 0..b.num_rows() {
                rows.push(EventRow {
                    event_id: ids[i].clone().unwrap(),
                    kind: kind[i].clone().unwrap(),
                    local_date: date[i] as i32,
                    occurred_at_us: at[i],
                    amount_fen: amount[i],
                    fee_millifen: fee[i],
                    payment_event_id: pay[i].clone(),
                    customer_key: key[i].clone(),
                    customer_key_quality: quality[i].clone().unwrap(),
                    channel: channel[i].clone().unwrap(),
                    product_name: product[i].clone(),
                    merchant_order_id: order[i].clone(),
                    source_file: source[i].clone().unwrap(),
                    source_line: line[i],
                });
            }
        }
    }
    rows.sort();
    rows
}

/// Every file under `dir` with its bytes, for comparing whole store states. `.lock` holds the last
/// writer's pid, not data, and is left out.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.file_name().is_some_and(|n| n != ".lock") {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

pub fn days(date: &str) -> i32 {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// Runs a Python snippet (DuckDB, openpyxl: independent readers); panics with its stderr on failure.
pub fn python(code: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed (bash .ci/run installs duckdb and openpyxl):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
