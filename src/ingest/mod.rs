//! `paylens ingest`: detect each input's format by content, parse it with its dialect, stage the events
//! in the store (de-duplicated), commit once, and print one summary line per file (or `--json`).
//! Dialects live in their own files; cell rules in `normalise.rs`; the store in `crate::store`.

mod alipay_merchant;
mod generic;
mod mapped;
pub mod model;
pub mod normalise;
mod personal;
mod pieces;
pub mod source;
mod views;
mod wechat_merchant;

use std::io::Write;
use std::path::PathBuf;

use crate::tr;
use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use polars::prelude::DataFrame;
use serde::Serialize;

use crate::config::{Config, GenericMapping};
use crate::privacy::KeyHasher;
use crate::store::{FileEntry, StoreWriter};
use model::{Event, EventSink, FileReport};
use normalise::TextEncoding;
use pieces::{in_pieces, parse_in_pieces, PieceGate, PieceStaging, PIECE_BYTES, PIECE_LINES};
use source::{FileDigest, Input};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

pub use model::Kind;

/// Staged event rows that trigger a commit between files (about 150 MB of rows in memory, and as much
/// again in the commit being written). Half a million rather than a million: the 10M benchmark's ingest
/// peaks at 2.2 GB instead of 3.0 GB with fewer page faults (by hand 13.4 s against 14.4-15.4 s, though
/// bench/run's medians were the same, 13.8 s, either way; a quarter million: 1.7 GB, 13.8 s); 38 month
/// parts instead of 32, with no change to the report's time.
const COMMIT_BATCH_ROWS: usize = 1 << 19;

/// Resolved settings of one ingest.
#[derive(Debug, Clone)]
pub struct IngestParams {
    pub paths: Vec<PathBuf>,
    /// A stated total that does not match, or a rejected row, fails the run and nothing is stored.
    pub strict: bool,
    pub json: bool,
    /// Print nothing (used by `demo` and `run`, which print their own summary).
    pub quiet: bool,
}

/// The per-file outcome, as printed and as `--json` emits it.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub path: String,
    pub format: String,
    /// `ingested`, `already_ingested` or `refused`.
    pub status: String,
    pub payments: u64,
    pub refunds: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub payments_fen: i64,
    pub refunds_fen: i64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// `true`/`false` where the file states totals, `null` where it states none.
    pub reconciled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub details: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct IngestOutcome {
    pub files: Vec<FileOutcome>,
    #[serde(skip)]
    pub new_events: u64,
    #[serde(skip)]
    pub store: PathBuf,
}

impl FileOutcome {
    /// The outcome line of a file as the manifest records it.
    fn from_entry(e: &FileEntry, status: &str, details: Vec<String>) -> FileOutcome {
        FileOutcome {
            path: e.path.clone(),
            format: e.format.clone(),
            status: status.into(),
            payments: e.payments,
            refunds: e.refunds,
            skipped: e.skipped,
            rejected: e.rejected,
            duplicates: e.duplicates,
            payments_fen: e.payments_fen,
            refunds_fen: e.refunds_fen,
            first: e.first.clone(),
            last: e.last.clone(),
            reconciled: e.reconciled,
            error: None,
            details,
        }
    }
}

impl IngestOutcome {
    pub fn refused(&self) -> usize {
        self.files.iter().filter(|f| f.status == "refused").count()
    }
}

/// The parsing context a dialect writes into.
pub struct Ctx<'a> {
    pub cfg: &'a Config,
    pub tz: Tz,
    pub sink: EventSink<'a>,
    pub report: FileReport,
    /// Bill times to UTC, the zone's offset looked up once a day.
    to_utc: normalise::ToUtc,
}

impl<'a> Ctx<'a> {
    /// A context for one file (or piece of one) of `format`, whose events name `sha` as their source.
    fn new(cfg: &'a Config, hasher: &'a KeyHasher, cache: &'a mut model::KeyCache, sha: &str, format: &Format) -> Self {
        let mut sink = EventSink::new(hasher, cache, sha);
        sink.set_format(&format.name());
        Ctx {
            cfg,
            tz: cfg.timezone,
            to_utc: normalise::ToUtc::new(cfg.timezone),
            sink,
            report: FileReport {
                format: format.name(),
                ..Default::default()
            },
        }
    }

    pub fn push(&mut self, e: Event<'_>) {
        self.sink.push(e, &mut self.report);
    }

    /// A local bill time and its UTC instant.
    pub fn time(&self, raw: &str) -> Result<(NaiveDateTime, DateTime<Utc>), String> {
        let local = normalise::parse_local_time(raw)?;
        Ok((local, self.utc(local)?))
    }

    /// The UTC instant of a local time in the configured zone (`normalise::to_utc`, a day's offset kept).
    pub fn utc(&self, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
        self.to_utc.convert(local)
    }

    pub fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.tz).date_naive()
    }
}

/// What detection found.
#[derive(Debug, Clone)]
pub enum Format {
    WechatMerchant,
    AlipayMerchant,
    AlipayMerchantSummary,
    WechatPersonalCsv,
    WechatPersonalXlsx,
    AlipayPersonal,
    AlipayPersonalWeb,
    Generic(GenericMapping),
}

impl Format {
    pub fn name(&self) -> String {
        match self {
            Format::WechatMerchant => wechat_merchant::FORMAT.into(),
            Format::AlipayMerchant => alipay_merchant::FORMAT.into(),
            Format::AlipayMerchantSummary => alipay_merchant::SUMMARY_FORMAT.into(),
            Format::WechatPersonalCsv => personal::WECHAT_CSV.into(),
            Format::WechatPersonalXlsx => personal::WECHAT_XLSX.into(),
            Format::AlipayPersonal => personal::ALIPAY.into(),
            Format::AlipayPersonalWeb => personal::ALIPAY_WEB.into(),
            Format::Generic(m) => generic::format_name(m),
        }
    }
}

/// The formats detection tries, for the refusal message.
fn formats_tried(cfg: &Config) -> String {
    let mut v: Vec<String> = [
        "WeChat Pay merchant trade bill",
        "Alipay merchant 业务明细",
        "WeChat personal bill (CSV, XLSX)",
        "Alipay personal bill (2023+, app, web layouts)",
    ]
    .map(String::from)
    .to_vec();
    v.extend(cfg.generic.iter().map(|m| format!("generic mapping `{}`", m.name)));
    v.push("POS line items CSV".into());
    v.push("inventory snapshot CSV".into());
    v.join(", ")
}

/// Detects the format by content, never by the file name.
pub fn detect(input: &Input, cfg: &Config) -> Result<(Format, TextEncoding)> {
    let head = input.head(8)?;
    if head.is_empty() {
        anyhow::bail!(tr!("error.empty_file"));
    }
    if head.starts_with(b"PK\x03\x04") {
        let rows = personal::xlsx_rows(input)?;
        let first_cells: Vec<&str> = rows
            .iter()
            .take(3)
            .flat_map(|r| r.cells.iter().map(|c| normalise::clean_cell(c)))
            .collect();
        if first_cells.iter().any(|c| c.starts_with(personal::WECHAT_MARKER)) {
            return Ok((Format::WechatPersonalXlsx, TextEncoding::Utf8));
        }
        anyhow::bail!(
            "a spreadsheet that is not a WeChat personal bill; tried: {}",
            formats_tried(cfg)
        );
    }
    let (enc, lines) = source::sniff(input, 40)?;
    let text_like = lines
        .iter()
        .take(5)
        .all(|l| !l.contains('\u{fffd}') && !l.contains('\0'));
    let first = lines.first().map(|l| l.trim_start_matches('\u{feff}')).unwrap_or("");
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    let format = if wechat_merchant::detect(&lines) {
        Format::WechatMerchant
    } else if first.starts_with(alipay_merchant::DETAILS_MARKER) {
        Format::AlipayMerchant
    } else if first.starts_with(alipay_merchant::SUMMARY_MARKER) {
        Format::AlipayMerchantSummary
    } else if first.starts_with(alipay_merchant::LEDGER_MARKER) {
        return Err(crate::UserError(alipay_merchant::LEDGER_REFUSAL.into()).into());
    } else if first.starts_with(personal::WECHAT_MARKER) {
        Format::WechatPersonalCsv
    } else if first.starts_with(personal::ALIPAY_WEB_MARKER) {
        Format::AlipayPersonalWeb
    } else if has(personal::ALIPAY_RECEIPT_MARKER) && personal::ALIPAY_COMPANIES.iter().any(|c| has(c)) {
        Format::AlipayPersonal
    } else {
        let mut mappings = cfg.generic.clone();
        mappings.extend(generic::builtin_mappings());
        match generic::detect(&lines, &mappings) {
            Some(m) => Format::Generic(m.clone()),
            None if !text_like => anyhow::bail!(tr!("error.not_text", tried = formats_tried(cfg))),
            None => anyhow::bail!(tr!("error.unknown_format", tried = formats_tried(cfg))),
        }
    };
    Ok((format, enc))
}

/// Parses one input into its report and sink.
fn parse_input<'a>(
    input: &Input,
    cfg: &'a Config,
    hasher: &'a KeyHasher,
    cache: &'a mut model::KeyCache,
    sha: &str,
) -> Result<(Format, Ctx<'a>)> {
    let (format, enc) = detect(input, cfg)?;
    let mut ctx = Ctx::new(cfg, hasher, cache, sha, &format);
    match &format {
        Format::WechatMerchant => wechat_merchant::parse(input, enc, &mut ctx)?,
        Format::AlipayMerchant => alipay_merchant::parse(input, enc, &mut ctx)?,
        Format::AlipayMerchantSummary => ctx.report.notes.push(
            "the per-store summary (汇总) of an Alipay 业务明细 export: its details file carries the rows".into(),
        ),
        Format::WechatPersonalCsv => personal::parse_wechat(personal::text_rows(input, enc)?, &mut ctx)?,
        Format::WechatPersonalXlsx => personal::parse_wechat(personal::xlsx_rows(input)?, &mut ctx)?,
        Format::AlipayPersonal | Format::AlipayPersonalWeb => {
            personal::parse_alipay(personal::text_rows(input, enc)?, &mut ctx)?
        }
        Format::Generic(m) => generic::parse(input, m, &mut ctx)?,
    }
    Ok((format, ctx))
}

/// Reads an inventory snapshot CSV (built-in or configured mapping) without storing it.
pub fn read_inventory(path: &std::path::Path, cfg: &Config) -> Result<Vec<model::InventoryRow>> {
    let size = std::fs::metadata(path)
        .with_context(|| tr!("ingest.reading_inventory", file = path.display()))?
        .len();
    let input = Input {
        name: path.display().to_string(),
        payload: source::Payload::File(path.to_path_buf()),
        size,
    };
    let hasher = KeyHasher::from_secret(b"inventory only");
    let mut cache = model::KeyCache::default();
    let (format, ctx) = parse_input(&input, cfg, &hasher, &mut cache, "")
        .with_context(|| tr!("ingest.reading_inventory", file = input.name))?;
    let is_inventory = matches!(&format, Format::Generic(m) if m.kind == crate::config::GenericKind::Inventory);
    if !is_inventory {
        return Err(crate::UserError(tr!("error.not_inventory", file = input.name, format = format.name())).into());
    }
    if let Some(r) = ctx.report.rejects.first() {
        return Err(crate::UserError(tr!(
            "error.file_line",
            file = input.name,
            line = r.line,
            reason = r.reason
        ))
        .into());
    }
    Ok(ctx.sink.finish().3)
}

/// An empty frame with the event schema.
pub fn empty_events() -> DataFrame {
    let hasher = KeyHasher::from_secret(b"schema");
    EventSink::new(&hasher, &mut model::KeyCache::default(), "").finish().0
}

fn fmt_time(t: Option<NaiveDateTime>) -> Option<String> {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn rejects_csv(name: &str, rejects: &[model::Reject]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    let _ = w.write_record(["file", "line", "reason", "raw"]);
    for r in rejects {
        let _ = w.write_record([name, &r.line.to_string(), &r.reason, &r.raw]);
    }
    w.into_inner().unwrap_or_default()
}

fn refused(name: &str, err: &anyhow::Error) -> FileOutcome {
    FileOutcome {
        path: name.to_string(),
        format: "unknown".into(),
        status: "refused".into(),
        payments: 0,
        refunds: 0,
        skipped: 0,
        rejected: 0,
        duplicates: 0,
        payments_fen: 0,
        refunds_fen: 0,
        first: None,
        last: None,
        reconciled: None,
        error: Some(format!("{err:#}")),
        details: vec![],
    }
}

/// Files being parsed or parsed and not yet staged, at most (bounds memory: the largest input is a
/// month of rows).
const PARSED_AHEAD: usize = 4;

/// Threads that parse files while the main thread stages them (the machine this was tuned on has 2 cores;
/// parsing is most of the work).
const PARSER_THREADS: usize = 2;

/// Ingests the inputs into the store at `cfg.store`.
pub fn run(params: &IngestParams, cfg: &Config) -> Result<IngestOutcome> {
    let mut store = StoreWriter::open(&cfg.store)?;
    let (inputs, unreadable) = source::collect_inputs(&params.paths, Some(&cfg.store));
    let mut files: Vec<FileOutcome> = unreadable
        .iter()
        .map(|u| {
            refused(
                &u.name,
                &anyhow::anyhow!("{}: {}", tr!("ingest.reading", file = u.name), u.reason),
            )
        })
        .collect();
    let total_bytes: u64 = inputs.iter().map(|i| i.size).sum();
    let progress = progress_bar(total_bytes, params.quiet || params.json);
    let mut strict_failures = Vec::new();
    let mut new_events = 0;
    let batch_rows = std::env::var("PAYLENS_TEST_COMMIT_BATCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(COMMIT_BATCH_ROWS);
    let test_setting = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let cut = source::Cut {
        bytes: test_setting("PAYLENS_TEST_PIECE_BYTES").unwrap_or(PIECE_BYTES),
        lines: test_setting("PAYLENS_TEST_PIECE_LINES").unwrap_or(PIECE_LINES),
    };
    // Two stages: parser threads read and parse files, this thread stages each parsed file into the store
    // (dedupe, identities) in input order and commits batches.
    let hasher = store.hasher.clone();
    let known = store.manifest.clone();
    let mut files_done = Vec::new();
    let mut clock = crate::timings::Totals::from_env();
    std::thread::scope(|scope| -> Result<()> {
        // Each parser takes the next file not yet taken (files differ in size a hundredfold: a fixed share
        // gave one parser every large Alipay file) and sends it on that file's own channel; the stager
        // reads the channels in input order. A parser needs a token to take a file and the stager returns
        // one per file staged, so at most PARSED_AHEAD files are parsed and not yet staged. The files taken
        // are always the lowest not staged, so the one the stager waits for is always being parsed.
        let parsers = PARSER_THREADS.min(inputs.len()).max(1);
        let (senders, receivers): (Vec<_>, Vec<_>) = inputs.iter().map(|_| std::sync::mpsc::sync_channel(1)).unzip();
        let (token_tx, token_rx) = std::sync::mpsc::sync_channel::<()>(PARSED_AHEAD);
        for _ in 0..PARSED_AHEAD {
            token_tx.send(()).expect("the channel holds PARSED_AHEAD tokens");
        }
        let shared = std::sync::Arc::new((
            senders,
            std::sync::Mutex::new(token_rx),
            std::sync::atomic::AtomicUsize::new(0),
        ));
        for _ in 0..parsers {
            let (inputs_ref, hasher, known, shared) = (&inputs, &hasher, &known, shared.clone());
            scope.spawn(move || {
                let mut cache = model::KeyCache::default();
                let mut buf = Vec::new();
                loop {
                    let (senders, token_rx, next) = &*shared;
                    let token = token_rx.lock().map(|rx| rx.recv());
                    if !matches!(token, Ok(Ok(()))) {
                        break; // the stager stopped on an error
                    }
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(input) = inputs_ref.get(i) else { break };
                    let parser = Parser {
                        cfg,
                        hasher,
                        known,
                        cut,
                    };
                    parser.parse(input, &mut cache, &mut buf, &senders[i]);
                }
            });
        }
        drop(shared);
        let mut done_bytes = 0;
        for (input, receiver) in inputs.iter().zip(receivers) {
            progress.set_message(input.name.clone());
            clock.start();
            let parsed = receiver.recv().map_err(|_| anyhow::anyhow!(PARSER_STOPPED))?;
            let _ = token_tx.send(());
            clock.add("waiting for parsers");
            let outcome = match parsed {
                Ok(Parsed::Pieces(gate, format)) => {
                    let mut staging = PieceStaging {
                        store: &mut store,
                        strict: params.strict,
                        batch_rows,
                        new_events: &mut new_events,
                        progress: &progress,
                    };
                    staging.stage(input, cfg, &receiver, &gate, format)?
                }
                parsed => parsed.and_then(|p| stage_one(input, cfg, &mut store, p)),
            };
            clock.add("staging");
            done_bytes += input.size;
            progress.set_position(done_bytes);
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => refused(&input.name, &e),
            };
            if params.strict
                && (outcome.reconciled == Some(false) || outcome.rejected > 0 || outcome.status == "refused")
            {
                strict_failures.push(outcome.path.clone());
            }
            files_done.push(outcome);
            // Large inputs are committed in batches at file boundaries: each batch is a whole generation, so
            // memory stays bounded and a file is never half stored. --strict stores all or nothing.
            if !params.strict && store.staged_rows() >= batch_rows {
                new_events += store.commit_in_background()?.new_events;
                clock.add("commits");
            }
        }
        Ok(())
    })?;
    files.extend(files_done);
    progress.finish_and_clear();
    let outcome_files = files;
    if !strict_failures.is_empty() {
        if !params.quiet {
            print_outcome(
                &IngestOutcome {
                    files: outcome_files,
                    new_events: 0,
                    store: cfg.store.clone(),
                },
                params.json,
            )?;
        }
        return Err(crate::UserError(tr!(
            "error.strict",
            n = strict_failures.len(),
            files = strict_failures.join(", ")
        ))
        .into());
    }
    clock.start();
    new_events += store.commit()?.new_events;
    clock.add("commits");
    drop(clock);
    let outcome = IngestOutcome {
        files: outcome_files,
        new_events,
        store: cfg.store.clone(),
    };
    if !params.quiet {
        print_outcome(&outcome, params.json)?;
    }
    Ok(outcome)
}

/// A file read and parsed, ready to stage; or found in the store already. A large file comes as a
/// stream: `Pieces` first, then its `Digest` and its pieces (in any order), then `End`.
enum Parsed {
    Already(FileDigest),
    File(Box<ParsedFile>),
    Pieces(Arc<PieceGate>, Format),
    Digest(FileDigest),
    Piece(Box<ParsedPiece>),
    /// The number of pieces the file was cut into.
    End(usize),
}

/// One piece of a large file, parsed.
struct ParsedPiece {
    index: usize,
    report: FileReport,
    parts: model::SinkParts,
    totals: pieces::PieceTotals,
    /// The piece's length in bytes.
    bytes: u64,
}

const PARSER_STOPPED: &str = "a parser thread stopped";

struct ParsedFile {
    digest: FileDigest,
    format: Format,
    report: FileReport,
    parts: model::SinkParts,
}

/// Inputs up to this size are read into memory once for both their digest and their parse (into the
/// parser's buffer, reused from file to file); larger ones, the files read in pieces among them, are
/// mapped (see `mapped`). Mapping saves copying the bytes out of the page cache, which for a small file
/// costs about what mapping it does: the 10M benchmark's 364 daily bills (4.4 MB each) read whole took
/// 12.68-13.11 s to ingest, mapped 12.11-12.72 s (4 runs each, in turn).
const READ_WHOLE_MAX: u64 = 1 << 20;

/// What a parser thread reads files with (no store access beyond the manifest as it was when the run
/// began).
struct Parser<'a> {
    cfg: &'a Config,
    hasher: &'a KeyHasher,
    known: &'a crate::store::Manifest,
    /// Where a large file is cut into pieces.
    cut: source::Cut,
}

impl Parser<'_> {
    /// Reads and parses one input and sends what it found on `out`: one message, or a large merchant
    /// bill's stream of pieces. The parser's `cache` holds the keys it met in earlier files: their
    /// identities went with those files. `buf` is the parser's memory for a file's bytes, reused from file
    /// to file.
    fn parse(&self, input: &Input, cache: &mut model::KeyCache, buf: &mut Vec<u8>, out: &SyncSender<Result<Parsed>>) {
        let loaded = match input
            .loaded_into(READ_WHOLE_MAX, std::mem::take(buf))
            .with_context(|| tr!("ingest.reading", file = input.name))
        {
            Ok(loaded) => loaded,
            Err(e) => {
                // Each channel holds its one file: sending never waits.
                let _ = out.send(Err(e));
                return;
            }
        };
        match in_pieces(&loaded, self.cfg, self.cut.bytes) {
            Some((format, enc)) => parse_in_pieces(&loaded, format, enc, self, out),
            None => {
                let _ = out.send(self.parse_whole(&loaded, cache));
            }
        }
        *buf = Input::give_back(loaded);
    }

    fn parse_whole(&self, input: &Input, cache: &mut model::KeyCache) -> Result<Parsed> {
        let digest = input
            .digest(self.known.needs_sha256())
            .with_context(|| tr!("ingest.reading", file = input.name))?;
        if self.known.find(&digest).is_some() {
            return Ok(Parsed::Already(digest));
        }
        let (format, ctx) = parse_input(input, self.cfg, self.hasher, cache, &digest.blake3)
            .with_context(|| tr!("ingest.reading", file = input.name))?;
        Ok(Parsed::File(Box::new(ParsedFile {
            digest,
            format,
            report: ctx.report,
            parts: ctx.sink.finish(),
        })))
    }
}

/// Stages a parsed input into the store and says what happened to it.
fn stage_one(input: &Input, cfg: &Config, store: &mut StoreWriter, parsed: Parsed) -> Result<FileOutcome> {
    let digest = match &parsed {
        Parsed::Already(d) => d.clone(),
        Parsed::File(f) => f.digest.clone(),
        _ => anyhow::bail!("{}: a piece of a large file out of turn", input.name),
    };
    if let Some(outcome) = already_ingested(input, store, &digest) {
        return Ok(outcome);
    }
    let Parsed::File(file) = parsed else {
        anyhow::bail!(
            "{}: listed in the store's manifest when the run began, but not now",
            input.name
        );
    };
    let ParsedFile {
        format, report, parts, ..
    } = *file;
    let (events, identities, line_items, inventory) = parts;
    // Identities first: a later file of the same parser leaves out the keys this one carries, so they are
    // kept even if its events fail.
    store.stage_identities(identities)?;
    let duplicates = store.stage_events(events)?;
    store.stage_line_items(&digest.blake3, line_items);
    store.stage_inventory(&digest.blake3, inventory);
    Ok(record_file(input, cfg, store, &digest, &format, report, duplicates))
}

/// The outcome of a file the store has already (nothing is read again: every event of it is stored).
fn already_ingested(input: &Input, store: &StoreWriter, digest: &FileDigest) -> Option<FileOutcome> {
    store.find_file(digest).map(|prev| {
        let again = FileEntry {
            path: input.name.clone(),
            payments: 0,
            refunds: 0,
            skipped: 0,
            rejected: 0,
            duplicates: prev.payments + prev.refunds,
            payments_fen: 0,
            refunds_fen: 0,
            ..prev.clone()
        };
        let note = format!(
            "already ingested on {} as {}: nothing to do",
            prev.ingested_at, prev.path
        );
        FileOutcome::from_entry(&again, "already_ingested", vec![note])
    })
}

/// Stages the manifest entry (and rejects) of a file whose rows are staged, and says what happened to it.
fn record_file(
    input: &Input,
    cfg: &Config,
    store: &mut StoreWriter,
    digest: &FileDigest,
    format: &Format,
    report: FileReport,
    duplicates: u64,
) -> FileOutcome {
    let rejects_file = (!report.rejects.is_empty()).then(|| format!("rejects/{}.csv", &digest.blake3[..16]));
    let entry = FileEntry {
        blake3: Some(digest.blake3.clone()),
        sha256: digest.sha256.clone(),
        path: input.name.clone(),
        format: format.name(),
        rows: report.payments + report.refunds + report.skipped_total() + report.rejects.len() as u64,
        payments: report.payments,
        refunds: report.refunds,
        skipped: report.skipped_total(),
        rejected: report.rejects.len() as u64,
        duplicates,
        payments_fen: report.payments_fen,
        refunds_fen: report.refunds_fen,
        first: fmt_time(report.first),
        last: fmt_time(report.last),
        reconciled: report.reconciled(),
        ingested_at: Utc::now()
            .with_timezone(&cfg.timezone)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        rejects_file: rejects_file.clone(),
    };
    let outcome = FileOutcome::from_entry(
        &entry,
        "ingested",
        details(&report, rejects_file.as_deref(), &cfg.store),
    );
    store.stage_file(
        entry,
        rejects_file.as_ref().map(|_| rejects_csv(&input.name, &report.rejects)),
    );
    outcome
}

fn details(r: &FileReport, rejects_file: Option<&str>, store: &std::path::Path) -> Vec<String> {
    let mut d = Vec::new();
    if !r.skipped.is_empty() {
        let parts: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        d.push(tr!("ingest.skipped", parts = parts.join("; ")));
    }
    if let Some(f) = rejects_file {
        let first = &r.rejects[0];
        d.push(tr!(
            "ingest.rejected",
            n = r.rejects.len(),
            file = store.join(f).display(),
            line = first.line,
            reason = first.reason
        ));
    }
    for c in r.checks.iter().filter(|c| !c.ok()) {
        let (s, v) = match c.unit {
            "fen" => (normalise::format_yuan(c.stated), normalise::format_yuan(c.computed)),
            "millifen" => (
                format!("{:.5}", c.stated as f64 / 100_000.0),
                format!("{:.5}", c.computed as f64 / 100_000.0),
            ),
            _ => (c.stated.to_string(), c.computed.to_string()),
        };
        d.push(tr!("ingest.totals_differ", what = c.what, stated = s, computed = v));
    }
    if r.expects_totals && r.checks.is_empty() {
        d.push(tr!("ingest.totals_missing").to_string());
    }
    if r.line_items > 0 {
        d.push(tr!("ingest.line_items", n = r.line_items));
    }
    if r.inventory_rows > 0 {
        d.push(tr!("ingest.inventory_rows", n = r.inventory_rows));
    }
    d.extend(r.notes.iter().cloned());
    d
}

fn progress_bar(total: u64, hidden: bool) -> indicatif::ProgressBar {
    if hidden || total < 16 << 20 {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {wide_bar} {eta} {msg}")
            .expect("static template"),
    );
    pb
}

fn print_outcome(o: &IngestOutcome, json: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        serde_json::to_writer_pretty(&mut out, o)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>9} {:>8} {:>8} {:>8} {:>10}  {:<23}  {:<10} {}",
        tr!("ingest.col_format"),
        tr!("ingest.col_payments"),
        tr!("ingest.col_refunds"),
        tr!("ingest.col_skipped"),
        tr!("ingest.col_rejected"),
        tr!("ingest.col_duplicates"),
        tr!("ingest.col_dates"),
        tr!("ingest.col_totals"),
        tr!("ingest.col_file")
    )?;
    for f in &o.files {
        let dates = match (&f.first, &f.last) {
            (Some(a), Some(b)) => format!("{}..{}", &a[..10], &b[..10]),
            _ => "-".into(),
        };
        let totals = match (f.status.as_str(), f.reconciled) {
            ("refused", _) => tr!("ingest.totals_refused"),
            ("already_ingested", _) => tr!("ingest.totals_unchanged"),
            (_, Some(true)) => tr!("ingest.totals_match"),
            (_, Some(false)) => tr!("ingest.totals_mismatch"),
            (_, None) => tr!("ingest.totals_none"),
        };
        writeln!(
            out,
            "{:<24} {:>9} {:>8} {:>8} {:>8} {:>10}  {:<23}  {:<10} {}",
            f.format, f.payments, f.refunds, f.skipped, f.rejected, f.duplicates, dates, totals, f.path
        )?;
        if let Some(e) = &f.error {
            writeln!(out, "    {}", tr!("ingest.error", error = e))?;
        }
        for d in &f.details {
            writeln!(out, "    {d}")?;
        }
    }
    writeln!(
        out,
        "{}",
        tr!("ingest.stored", n = o.new_events, store = o.store.display())
    )?;
    Ok(())
}
