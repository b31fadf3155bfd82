//! `paylens report`: summary.md for a fixed seed and week against a reviewed snapshot (regenerate with
//! UPDATE_SNAPSHOTS=1 after an intended change, and read the diff), and its headline figures against
//! DuckDB over the store.

use crate::harness::*;

#[test]
fn summary_md_matches_its_snapshot_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    demo(&out, &["--no-ingest"]);
    let store = out.join("store");
    let o = run(&store, &["ingest", out.join("inbox").to_str().unwrap()]);
    assert!(o.status.success());
    // The demo derives its store secret from the seed; a plain ingest does not, so keys differ, and
    // summary.md shows none.
    let reports = dir.path().join("reports");
    let o = run(
        &store,
        &["report", "--week", "2026-W47", "--reports", reports.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(reports.join("2026-W47/summary.md")).unwrap();
    let snapshot = fixture("snapshots/summary_demo_seed42_2026-W47.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &summary).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot).expect("snapshot exists (UPDATE_SNAPSHOTS=1 writes it)");
    assert!(
        summary == want,
        "summary.md changed; diff against {}:\n{summary}",
        snapshot.display()
    );
    // The week's net revenue, independently: payments and refunds dated 2026-11-16..22.
    let net = python(&format!(
        "import duckdb; print(duckdb.execute(\"select round(sum(amount_fen) / 100) from read_parquet('{}') where local_date between DATE '2026-11-16' and DATE '2026-11-22'\").fetchone()[0])",
        store.join("events/*/*.parquet").display()
    ));
    let net: f64 = net.trim().parse().unwrap();
    let shown = format!("Net revenue {} yuan", paylens::report::yuan_int((net * 100.0) as i64));
    assert!(summary.contains(&shown), "{shown} not in the headline:\n{summary}");
    // report.html: one self-contained page with the headline and eleven inline SVG charts, under 2 MB.
    let html = std::fs::read_to_string(reports.join("2026-W47/report.html")).unwrap();
    assert!(html.len() < 2 << 20, "{} bytes", html.len());
    assert_eq!(html.matches("<svg").count(), 11);
    for title in [
        "Net revenue per day",
        "by channel",
        "weekday and hour",
        "new, returning, lapsed",
        "Segments",
        "Monthly cohorts",
    ] {
        assert!(html.contains(title), "chart `{title}` missing");
    }
    assert!(html.contains(&shown) && html.contains("<meta charset=\"utf-8\">"));
    for external in ["src=\"http", "href=\"http", "src=\"//", "@import", "url(http"] {
        assert!(
            !html.contains(external),
            "the page loads something from the network: {external}"
        );
    }
    assert!(
        html.contains("卡布奇诺"),
        "Chinese product names are in the page as text"
    );
}

/// Headless Chromium as the probe of this machine kind runs it (no network chatter, fresh profile).
fn chromium(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args);
    cmd.output()
        .expect("chromium runs (bash .ci/run installs Debian's chromium)")
}

#[test]
fn report_html_opens_in_headless_chromium_with_every_chart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    demo(&out, &[]);
    let page = out.join("reports/2026-W47/report.html");
    let url = format!("file://{}", page.display());
    // The DOM after loading: every chart rendered, the headline there.
    let started = std::time::Instant::now();
    let dom = chromium(&["--dump-dom", &url]);
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<svg").count(), 11, "every chart is in the rendered page");
    assert!(dom.contains("Net revenue") && dom.contains("卡布奇诺"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the page took {:?}",
        started.elapsed()
    );
    // A screenshot to look at, kept with the build's test output.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let o = chromium(&[
        "--window-size=1000,5200",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 50_000,
        "screenshot {} bytes",
        png.len()
    );
}
