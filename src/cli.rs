//! The command line, as clap derive structs only. Doc comments are the help text. Past `lib::run` nothing
//! sees these structs: they are resolved into `Config` and per-command params first.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// paylens: weekly customer, repeat-purchase and restock answers from WeChat Pay and Alipay bill exports.
#[derive(Debug, Parser)]
#[command(name = "paylens", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (default: ./paylens.toml when present). Env: PAYLENS_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store folder (default: data/store). Env: PAYLENS_STORE.
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// IANA time zone of the bills' local times (default: Asia/Shanghai). Env: PAYLENS_TIMEZONE.
    #[arg(long, global = true, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Language of reports, lists and messages: zh-CN or en (default: `language` in paylens.toml, else
    /// from LANG, else en). Parquet files and --json keep English names either way.
    #[arg(long, global = true, value_name = "LANG")]
    pub lang: Option<String>,
    /// Print the resolved settings and exit.
    #[arg(long, global = true, hide = true)]
    pub show_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The Monday job: ingest what is new in the inbox, then write the week's analytics and restock list.
    Run(RunArgs),
    /// Read bill exports (files, folders, .zip) into the store.
    Ingest(IngestArgs),
    /// Generate a realistic demo shop's exports, ingest them and summarise the store.
    Demo(DemoArgs),
    /// The weekly report: analytics, restock and summary.md with headlines that explain the week.
    Report(ReportArgs),
    /// Customer analytics as of a date: RFM segments and transitions, repeat purchase, cohorts, weekly KPIs.
    Analyze(AnalyzeArgs),
    /// Product velocity and restock suggestions from the store and an inventory snapshot.
    Restock(RestockArgs),
    /// Summarise what the store holds: files, months, events, customers.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct RestockArgs {
    /// Inventory snapshot CSV (default: the latest snapshot in the store).
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<std::path::PathBuf>,
    /// Target cycle service level, 0.5-0.999 (default from paylens.toml, else 0.95).
    #[arg(long, value_name = "P")]
    pub service_level: Option<f64>,
    /// Days between orders (default from paylens.toml, else 7).
    #[arg(long, value_name = "DAYS")]
    pub review_days: Option<f64>,
    /// As-of date (default: the end of the last complete ISO week in the data).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<chrono::NaiveDate>,
    /// Reports folder (default: reports). Env: PAYLENS_REPORTS.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<std::path::PathBuf>,
    /// Instead of suggesting orders, score the forecasts on the last DAYS days held out (RMSSE per demand
    /// class against the weekly seasonal naive forecast).
    #[arg(long, value_name = "DAYS")]
    pub backtest: Option<usize>,
    /// Instead of suggesting orders, replay the last WEEKS weeks ordering what paylens suggests each week,
    /// and report the achieved cycle service level.
    #[arg(long, value_name = "WEEKS")]
    pub simulate: Option<i32>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// ISO week to report (e.g. 2026-W47; default: the last complete week in the data).
    #[arg(long, value_name = "YYYY-Www", conflicts_with = "as_of")]
    pub week: Option<String>,
    /// As-of date instead of a week.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<chrono::NaiveDate>,
    /// Reports folder (default: reports). Env: PAYLENS_REPORTS.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// As-of date (default: the end of the last complete ISO week in the data).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<chrono::NaiveDate>,
    /// Segment map: a preset (rfm, rf-grid, cn8) or a TOML file with [[rules]] (default from paylens.toml, else rfm).
    #[arg(long, value_name = "PRESET|FILE")]
    pub segments: Option<String>,
    /// Only the last N days count for RFM (default: all history).
    #[arg(long, value_name = "DAYS")]
    pub window_days: Option<i32>,
    /// Reports folder (default: reports). Env: PAYLENS_REPORTS.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<std::path::PathBuf>,
    /// Add raw buyer ids (openid, masked account, nickname) to the target lists, for upload to a coupon
    /// tool. Without it the lists carry only pseudonymous keys and already-masked labels.
    #[arg(long)]
    pub with_contact_ids: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Inbox folder to ingest from (default: data/inbox). Env: PAYLENS_INBOX.
    #[arg(long, value_name = "DIR")]
    pub inbox: Option<std::path::PathBuf>,
    /// Reports folder (default: reports). Env: PAYLENS_REPORTS.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<std::path::PathBuf>,
    /// As-of date (default: the end of the last complete ISO week in the data).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<chrono::NaiveDate>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files, folders (read recursively) and .zip archives. The format is detected from the content.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Fail, storing nothing, when a file's stated totals do not match its rows or a row is rejected.
    #[arg(long)]
    pub strict: bool,
    /// Print the per-file summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's inbox, store and reports.
    #[arg(long, default_value = "data/demo", value_name = "DIR")]
    pub out: PathBuf,
    /// Random seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of customers the shop has over the period.
    #[arg(long, default_value_t = 1500)]
    pub customers: u32,
    /// Days of history, ending last Sunday.
    #[arg(long, default_value_t = 364)]
    pub days: u32,
    /// Target number of transactions (for benchmarks: 1000000, 10000000); overrides --customers.
    #[arg(long, value_name = "ROWS")]
    pub scale: Option<u64>,
    /// Only write the exports; do not ingest.
    #[arg(long)]
    pub no_ingest: bool,
    /// Last day of the data (default: last Sunday). Fixes the output for tests.
    #[arg(long, value_name = "DATE")]
    pub end: Option<chrono::NaiveDate>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}
