//! `paylens analyze` on the demo data, checked against a separate implementation: DuckDB SQL over the
//! store's Parquet files recomputes occasions, RFM cut points and scores, the default segment map, the
//! repeat rates and a monthly cohort row, and compares with paylens's tables (read with DuckDB too).

use std::path::Path;

use crate::harness::*;

const AS_OF: &str = DEMO_END;

fn demo_and_analyze(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = dir.join("demo");
    demo(&out, &["--customers", "600", "--days", "200"]);
    let store = out.join("store");
    let reports = dir.join("reports");
    let o = run(
        &store,
        &["analyze", "--as-of", AS_OF, "--reports", reports.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("as of 2026-11-22 (2026-W47)"), "{text}");
    (store, reports.join("2026-W47"))
}

/// The independent implementation. Prints one JSON object of comparisons.
const DUCKDB_CHECK: &str = r#"
import duckdb, json, sys
store, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute(f"""
create table ev as select * from read_parquet('{store}/events/*/*.parquet');
create table occ as
  with pay as (select event_id, customer_key, local_date, amount_fen from ev
               where kind = 'payment' and local_date <= DATE '{as_of}'),
       ref as (select payment_event_id, sum(amount_fen) r from ev
               where kind = 'refund' and local_date <= DATE '{as_of}' group by 1),
       net as (select p.customer_key, p.local_date d, p.amount_fen + coalesce(ref.r, 0) net
               from pay p left join ref on ref.payment_event_id = p.event_id)
  select customer_key, d, sum(net) net from net where net > 0 and customer_key is not null group by 1, 2;
create table rfm as select customer_key, (DATE '{as_of}' - max(d)) recency, count(*) freq, sum(net) monetary
  from occ group by 1;
create table cuts as select
  list_distinct([round(x, 6) for x in quantile_cont(recency, [0.2, 0.4, 0.6, 0.8])]) rc,
  list_distinct([round(x, 6) for x in quantile_cont(freq, [0.2, 0.4, 0.6, 0.8])]) fc,
  list_distinct([round(x, 6) for x in quantile_cont(monetary, [0.2, 0.4, 0.6, 0.8])]) mc from rfm;
create table scored as select customer_key,
  len(rc) + 1 - len(list_filter(rc, lambda c: recency > c)) r,
  1 + len(list_filter(fc, lambda c: freq > c)) f,
  1 + len(list_filter(mc, lambda c: monetary > c)) m
  from rfm, cuts;
create table seg as select customer_key, r, f, m, case
  when r = 5 and f = 5 and m = 5 then 'Champions'
  when r between 3 and 5 and f between 3 and 5 and m between 2 and 5 then 'Potential Loyalist'
  when r between 2 and 4 and f between 2 and 4 and m between 2 and 4 then 'Loyal Customers'
  when r between 3 and 4 and f between 1 and 3 and m between 3 and 5 then 'Promising'
  when r between 4 and 5 and f between 1 and 3 and m between 1 and 5 then 'New Customers'
  when r between 1 and 2 and f between 3 and 4 and m between 4 and 5 then 'Can''t Lose Them'
  when r between 1 and 2 and f between 2 and 5 and m between 4 and 5 then 'At Risk'
  when r between 1 and 3 and f between 3 and 5 and m between 3 and 5 then 'Need Attention'
  when r between 2 and 3 and f between 1 and 3 and m between 1 and 4 then 'About To Sleep'
  when r = 1 then 'Lost'
  else 'Others' end segment from scored;
create table mine as select * from read_parquet('{out}/customers.parquet');
""")
res = {}
res["customers"] = con.execute("select count(*) from seg").fetchone()[0]
res["paylens_customers"] = con.execute("select count(*) from mine").fetchone()[0]
res["score_or_segment_mismatches"] = con.execute("""
  select count(*) from seg full join mine using (customer_key)
  where seg.r is distinct from mine.r_score or seg.f is distinct from mine.f_score
     or seg.m is distinct from mine.m_score or seg.segment is distinct from mine.segment
     or seg.customer_key is null or mine.customer_key is null""").fetchone()[0]
res["segment_count_mismatches"] = con.execute(f"""
  select count(*) from (select segment, count(*) n from seg group by 1) a
  full join read_parquet('{out}/segments.parquet') b using (segment)
  where coalesce(a.n, 0) <> b.customers""").fetchone()[0]
res["distinct_segments"] = con.execute("select count(distinct segment) from seg").fetchone()[0]
# Repeat rates over the last 28 days.
frm = con.execute(f"select DATE '{as_of}' - 27").fetchone()[0]
w = con.execute(f"""
  with win as (select customer_key, count(*) n from occ where d between DATE '{frm}' and DATE '{as_of}' group by 1),
       first as (select customer_key, min(d) f from occ group by 1)
  select count(*), count(*) filter (where n >= 2), count(*) filter (where f < DATE '{frm}')
  from win join first using (customer_key)""").fetchone()
mine = con.execute(f"""select customers, repeat_customers, returning_customers from read_parquet('{out}/repeat_purchase.parquet')
  where "window" = 'last 28 days'""").fetchone()
res["repeat_duckdb"] = list(w)
res["repeat_paylens"] = list(mine)
# The first monthly cohort's retention row.
row = con.execute(f"""
  with first as (select customer_key, min(d) f from occ group by 1),
       c as (select o.customer_key, (year(o.d) * 12 + month(o.d)) - (year(f) * 12 + month(f)) k,
                    strftime(f, '%Y-%m') cohort from occ o join first using (customer_key)),
       first_cohort as (select min(cohort) cohort from c),
       size as (select count(distinct customer_key) n from c join first_cohort using (cohort))
  select k, round(count(distinct customer_key) / any_value(size.n), 6) from c join first_cohort using (cohort), size
  group by k order by k""").fetchall()
mine = con.execute(f"""
  select period, round(retention, 6) from read_parquet('{out}/cohorts_monthly.parquet')
  where cohort = (select min(cohort) from read_parquet('{out}/cohorts_monthly.parquet')) order by period""").fetchall()
res["cohort_duckdb"] = [[int(k), float(v)] for k, v in row]
res["cohort_paylens"] = [[int(k), float(v)] for k, v in mine if v is not None]
print(json.dumps(res))
"#;

#[test]
fn analyze_agrees_with_an_independent_duckdb_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let (store, out) = demo_and_analyze(dir.path());
    let script = dir.path().join("check.py");
    std::fs::write(&script, DUCKDB_CHECK).unwrap();
    let o = std::process::Command::new("python3")
        .arg(&script)
        .arg(&store)
        .arg(&out)
        .arg(AS_OF)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "bash .ci/run installs duckdb:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["customers"].as_u64().unwrap() > 300, "{r}");
    assert_eq!(r["customers"], r["paylens_customers"], "{r}");
    assert_eq!(r["score_or_segment_mismatches"], 0, "{r}");
    assert_eq!(r["segment_count_mismatches"], 0, "{r}");
    assert!(
        r["distinct_segments"].as_u64().unwrap() >= 6,
        "a realistic shop fills most segments: {r}"
    );
    assert_eq!(r["repeat_duckdb"], r["repeat_paylens"], "{r}");
    assert!(r["repeat_duckdb"][0].as_u64().unwrap() > 50, "{r}");
    assert_eq!(r["cohort_duckdb"], r["cohort_paylens"], "{r}");
    assert!(r["cohort_duckdb"].as_array().unwrap().len() >= 6, "{r}");
}

#[test]
fn analyze_writes_every_table_as_parquet_and_excel_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = demo_and_analyze(dir.path());
    for t in [
        "customers",
        "segments",
        "rfm_cut_points",
        "segment_transitions",
        "repeat_purchase",
        "key_coverage",
        "cohorts_monthly",
        "cohorts_weekly",
        "purchase_latency",
        "customers_weekly",
        "kpis_weekly",
    ] {
        let csv = std::fs::read(out.join(format!("{t}.csv"))).unwrap();
        assert!(csv.starts_with(&[0xEF, 0xBB, 0xBF]), "{t}.csv has a BOM for Excel");
        assert!(
            !read_batches(&out.join(format!("{t}.parquet"))).is_empty(),
            "{t}.parquet"
        );
    }
    // Unreached cohort cells are empty, not 0: the last monthly cohort has empty later periods.
    let text = std::fs::read_to_string(out.join("cohorts_monthly.csv")).unwrap();
    let last_cohort = text.lines().last().unwrap().split(',').next().unwrap().to_string();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&last_cohort)).collect();
    assert!(rows.iter().any(|l| l.ends_with(",,")), "{rows:?}");
    // The raw buyer ids stay out: only keys and already-masked labels.
    let customers = std::fs::read_to_string(out.join("customers.csv")).unwrap();
    assert!(!customers.contains("oUpF8u"), "an openid leaked into customers.csv");
}

#[test]
fn the_eleven_segment_table_is_refused_naming_its_shadowed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    demo(&out, &["--customers", "50", "--days", "30"]);
    let table = fixture("segments/eleven_segments.toml");
    let o = run(
        &out.join("store"),
        &[
            "analyze",
            "--segments",
            table.to_str().unwrap(),
            "--reports",
            dir.path().join("r").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("never be assigned"), "{err}");
    for s in ["Recent Customers", "Promising", "Can't Lose Them", "Lost"] {
        assert!(err.contains(s), "{s} not named: {err}");
    }
}

#[test]
fn target_lists_per_segment_with_contact_ids_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (store, out) = demo_and_analyze(dir.path());
    let targets = out.join("targets");
    let files: Vec<String> = std::fs::read_dir(&targets)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        files.contains(&"at_risk.csv".to_string()) && files.contains(&"moved_this_week.csv".to_string()),
        "{files:?}"
    );
    let text = std::fs::read_to_string(targets.join("champions.csv")).unwrap();
    assert!(text.starts_with('\u{feff}'), "BOM for Excel");
    let header = text.lines().next().unwrap().trim_start_matches('\u{feff}');
    assert_eq!(
        header,
        "customer_key,label,segment,previous_segment,segment_since,last_purchase,occasions,spend_yuan,favourite_product,suggested_action"
    );
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(&r[2], "Champions");
        assert_eq!(&r[9], "reward: early access to new drinks, a members' gift");
    }
    assert!(!text.contains("oUpF8u"), "no raw openid without --with-contact-ids");
    // Everyone in moved_this_week changed segment since last week.
    let moved = std::fs::read_to_string(targets.join("moved_this_week.csv")).unwrap();
    for line in moved.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        assert_ne!(c[2], c[3], "{line}");
    }
    let reports = dir.path().join("with_ids");
    let o = run(
        &store,
        &[
            "analyze",
            "--as-of",
            AS_OF,
            "--reports",
            reports.to_str().unwrap(),
            "--with-contact-ids",
        ],
    );
    assert!(o.status.success());
    let text = std::fs::read_to_string(reports.join("2026-W47/targets/champions.csv")).unwrap();
    assert!(text.lines().next().unwrap().ends_with(",contact_id"));
    assert!(
        text.contains("wechat:wx2421b1c4370ec43b/oUpF8u") || text.contains("alipay_masked:"),
        "{text}"
    );
}
