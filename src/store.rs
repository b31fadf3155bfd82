//! The only code that reads or writes `data/store`. Layout:
//!
//! ```text
//! manifest.json                         the commit point: which files make up the store, what was ingested
//! secret.key                            per-store HMAC key (0600), see privacy.rs
//! events/month=YYYY-MM/part-<gen>.parquet   payments and refunds by month: each commit adds a part with
//!                                       the month's new rows (zstd); rows already stored are never rewritten
//! events/month=YYYY-MM/part-<gen>-<n>.parquet  rows of the same commit written ahead of it (`spill`: a
//!                                       large file's rows while it is being read)
//! identities/part-<gen>.parquet         customer_key -> raw buyer identifier (personal data); each commit
//!                                       adds a part with the keys first seen in it
//! line_items/month=YYYY-MM/part-<gen>.parquet  POS line items, by month sold (UTC; `unknown` without a time)
//! inventory/part-<gen>.parquet          inventory snapshots
//! rejects/<digest prefix>.csv           rows that could not be read: file, line, reason, raw text
//! ```
//!
//! A write stages everything under new generation-numbered names, fsyncs, then replaces `manifest.json`
//! by rename: a crash or error leaves the previous manifest, whose files are untouched. Files no manifest
//! names are removed by the next writer. One writer at a time holds `.lock` (an OS file lock).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::Datelike;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ingest::model::{InventoryRow, LineItem};
use crate::ingest::source::FileDigest;
use crate::privacy::KeyHasher;
use crate::UserError;

pub const MANIFEST: &str = "manifest.json";
/// 2: events and identities are lists of parts (version 1 named one file each; it is still read).
/// 3: files are named by BLAKE3 (earlier versions named them by SHA-256; those entries are still matched).
const MANIFEST_VERSION: u32 = 3;
const LOCK: &str = ".lock";
pub const SECRET: &str = "secret.key";

/// One ingested file, as the manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// BLAKE3 of the file as stored (hex): what names it from manifest version 3 on, in the events'
    /// `source_file` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// SHA-256 of the file as stored (hex): what named it in stores written before version 3; kept for
    /// the files ingested into such a store since, so a store is never left with one kind alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub path: String,
    pub format: String,
    pub rows: u64,
    pub payments: u64,
    pub refunds: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub payments_fen: i64,
    pub refunds_fen: i64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub reconciled: Option<bool>,
    pub ingested_at: String,
    pub rejects_file: Option<String>,
}

impl FileEntry {
    /// Whether this entry names the file of `digest`: by BLAKE3, or by SHA-256 for an entry written before
    /// version 3.
    fn is_file(&self, digest: &FileDigest) -> bool {
        match (&self.blake3, &self.sha256) {
            (Some(b), _) => *b == digest.blake3,
            (None, Some(s)) => digest.sha256.as_ref() == Some(s),
            (None, None) => false,
        }
    }
}

/// The store's key of a month (year * 12 + month0): `2026-11`.
fn month_key(month: i32) -> String {
    format!("{:04}-{:02}", month.div_euclid(12), month.rem_euclid(12) + 1)
}

/// The month (year * 12 + month0) of a day number (days since 1970-01-01). Rows come mostly in order of
/// time: the last month asked for, with its first day and the next month's, answers for most rows without
/// a calendar computation.
#[derive(Default)]
struct MonthOfDay {
    last: Option<(std::ops::Range<i32>, i32)>,
}

impl MonthOfDay {
    fn month(&mut self, day: i32) -> Option<i32> {
        if let Some((days, m)) = &self.last {
            if days.contains(&day) {
                return Some(*m);
            }
        }
        let date = crate::ingest::model::date_of_day(day)?;
        let first = date.with_day(1)?;
        let next = first.checked_add_months(chrono::Months::new(1))?;
        let day_of = crate::ingest::model::days_since_epoch;
        let m = date.year() * 12 + date.month0() as i32;
        self.last = Some((day_of(first)..day_of(next), m));
        Some(m)
    }
}

/// Event ids of one month, or customer keys, as digests.
type IdSet = crate::slots::DigestSet;

/// The 128-bit digest that stands for an identifier in the dedupe sets and the parsers' key caches (never
/// 0, the tables' mark of an empty slot).
pub(crate) fn id_digest(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes()).max(1)
}

/// The digests of a column of ids, 0 (no id) for a null. The ids were written by a parser a while ago:
/// their views and texts are fetched ahead of the one digested.
fn digests(ids: &StringChunked) -> Vec<u128> {
    use crate::prefetch::{prefetch_text, prefetch_views, TEXTS_AHEAD};
    let mut out = Vec::with_capacity(ids.len());
    for texts in ids.downcast_iter() {
        let views = texts.views();
        for i in 0..texts.len() {
            prefetch_views(views, i);
            prefetch_text(texts, i + TEXTS_AHEAD);
            out.push(texts.get(i).map_or(0, id_digest));
        }
    }
    out
}

/// Reads one string column of the given parts into a digest set.
fn digests_of(root: &Path, parts: &[String], column: &str, set: &mut IdSet) -> Result<()> {
    for rel in parts {
        let path = root.join(rel);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let df = anyhow::Context::with_context(
            ParquetReader::new(file)
                .with_columns(Some(vec![column.into()]))
                .finish(),
            || format!("reading {}", path.display()),
        )?;
        set.insert_all(&digests(df.column(column)?.str()?));
    }
    Ok(())
}

/// The store's table of contents. Paths are relative to the store folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub generation: u64,
    /// month (`2026-11`) -> its events files, oldest first (version 1 stores named one file per month).
    #[serde(deserialize_with = "month_parts")]
    pub events: BTreeMap<String, Vec<String>>,
    /// The identities files, oldest first (version 1 stores named one file, or none).
    #[serde(default, deserialize_with = "one_or_many")]
    pub identities: Vec<String>,
    /// month (`2026-11`, or `unknown`) -> line items file. Stores written before line items were
    /// partitioned hold one file here; it is read as the partition `all`.
    #[serde(default, deserialize_with = "line_item_parts")]
    pub line_items: BTreeMap<String, String>,
    pub inventory: Option<String>,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The entry of the file with this digest, by BLAKE3, or by SHA-256 for an entry named so alone.
    pub fn find(&self, digest: &FileDigest) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.is_file(digest))
    }

    /// Whether some file is named by its SHA-256 alone (ingested before version 3): finding a file then
    /// takes its SHA-256 too.
    pub fn needs_sha256(&self) -> bool {
        self.files.iter().any(|f| f.blake3.is_none())
    }

    fn referenced(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.events.values().flatten().map(String::as_str).collect();
        v.extend(self.identities.iter().map(String::as_str));
        v.extend(self.line_items.values().map(String::as_str));
        v.extend(self.inventory.as_deref());
        v.extend(self.files.iter().filter_map(|f| f.rejects_file.as_deref()));
        v
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Option<String>),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => one.into_iter().collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(OneOrMany::deserialize(d)?.into_vec())
}

fn month_parts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    let m = BTreeMap::<String, OneOrMany>::deserialize(d)?;
    Ok(m.into_iter().map(|(k, v)| (k, v.into_vec())).collect())
}

fn line_item_parts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Parts {
        One(Option<String>),
        Months(BTreeMap<String, String>),
    }
    Ok(match Parts::deserialize(d)? {
        Parts::One(None) => BTreeMap::new(),
        Parts::One(Some(file)) => BTreeMap::from([("all".to_string(), file)]),
        Parts::Months(m) => m,
    })
}

/// Read access to a store (no lock): the manifest and its tables.
pub struct StoreReader {
    pub root: PathBuf,
    pub manifest: Manifest,
}

impl StoreReader {
    pub fn open(root: &Path) -> Result<StoreReader> {
        Ok(StoreReader {
            root: root.to_path_buf(),
            manifest: read_manifest(root)?,
        })
    }

    /// All events, or an empty frame with the event schema.
    pub fn events(&self) -> Result<DataFrame> {
        Ok(self
            .read_all(self.manifest.events.values().flatten())?
            .unwrap_or_else(crate::ingest::empty_events))
    }

    /// The identities table (customer key -> raw buyer id, label), or `None` when the store has none.
    pub fn identities(&self) -> Result<Option<DataFrame>> {
        self.read_all(&self.manifest.identities)
    }

    /// The files one after another, or `None` for no files.
    fn read_all<'a>(&self, rels: impl IntoIterator<Item = &'a String>) -> Result<Option<DataFrame>> {
        let mut out: Option<DataFrame> = None;
        for rel in rels {
            let df = read_parquet(&self.root.join(rel))?;
            match &mut out {
                Some(o) => {
                    o.vstack_mut_owned(df)?;
                }
                None => out = Some(df),
            }
        }
        Ok(out)
    }

    /// A lazy scan over every events file (projection and filters pushed down), or an empty frame.
    pub fn scan_events(&self) -> Result<LazyFrame> {
        if self.manifest.events.is_empty() {
            return Ok(crate::ingest::empty_events().lazy());
        }
        Ok(LazyFrame::scan_parquet_files(
            self.event_paths()?.into_iter().collect(),
            ScanArgsParquet::default(),
        )?)
    }

    /// The events of the months from `first_day`'s on (days since 1970-01-01): a query of recent days
    /// reads only the files of those months (events are stored by the month of their local date).
    pub fn scan_events_since(&self, first_day: i32) -> Result<LazyFrame> {
        let paths = self.event_paths_since(first_day)?;
        if paths.is_empty() {
            return Ok(crate::ingest::empty_events().lazy());
        }
        Ok(LazyFrame::scan_parquet_files(
            paths.into_iter().collect(),
            ScanArgsParquet::default(),
        )?)
    }

    /// One lazy scan per events file, month by month, for a pass that takes the events a part at a time.
    pub fn scan_event_parts(&self) -> Result<Vec<LazyFrame>> {
        self.event_paths()?
            .into_iter()
            .map(|p| {
                Ok(LazyFrame::scan_parquet_files(
                    [p].into_iter().collect(),
                    ScanArgsParquet::default(),
                )?)
            })
            .collect()
    }

    fn event_paths(&self) -> Result<Vec<PlRefPath>> {
        self.event_paths_where(|_| true)
    }

    /// The events files of the months from `first_day`'s on.
    fn event_paths_since(&self, first_day: i32) -> Result<Vec<PlRefPath>> {
        let from = MonthOfDay::default().month(first_day).map(month_key);
        // A month key that is not a month (none is written) is read.
        self.event_paths_where(|month| from.as_deref().is_none_or(|from| month.len() != 7 || month >= from))
    }

    /// The events files of the months `keep` takes, by their month key (`2026-11`).
    fn event_paths_where(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<PlRefPath>> {
        let mut paths = Vec::new();
        let months = self.manifest.events.iter().filter(|(month, _)| keep(month));
        for rel in months.flat_map(|(_, parts)| parts) {
            let p = self.root.join(rel);
            let s = p
                .to_str()
                .with_context(|| format!("store path {} is not UTF-8", p.display()))?;
            paths.push(PlRefPath::from(s));
        }
        Ok(paths)
    }

    /// All POS line items (every month partition), or `None` when the store has none.
    pub fn line_items(&self) -> Result<Option<DataFrame>> {
        self.read_all(self.manifest.line_items.values())
    }

    pub fn table(&self, rel: Option<&str>) -> Result<Option<DataFrame>> {
        rel.map(|r| read_parquet(&self.root.join(r))).transpose()
    }
}

pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let f = File::open(path).with_context(|| format!("opening store file {}", path.display()))?;
    anyhow::Context::with_context(ParquetReader::new(f).finish(), || {
        format!("reading store file {}", path.display())
    })
}

fn read_manifest(root: &Path) -> Result<Manifest> {
    let p = root.join(MANIFEST);
    if !p.exists() {
        return Ok(Manifest {
            version: MANIFEST_VERSION,
            ..Default::default()
        });
    }
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is damaged: restore it from a backup", p.display()))
}

/// What one ingest adds, before it is committed.
#[derive(Default)]
struct Staged {
    /// month -> new event rows (already de-duplicated against the store and earlier staged rows).
    events: BTreeMap<String, Vec<DataFrame>>,
    identities: crate::ingest::model::Identities,
    line_items: Vec<(String, LineItem)>,
    inventory: Vec<(String, InventoryRow)>,
    files: Vec<FileEntry>,
    rejects: Vec<(String, Vec<u8>)>,
    /// Event parts already written for this generation (month, path, rows), not yet in any manifest.
    spilled: Vec<(String, String, u64)>,
}

/// Write access: holds the lock for its lifetime.
pub struct StoreWriter {
    pub root: PathBuf,
    pub manifest: Manifest,
    pub hasher: KeyHasher,
    _lock: File,
    staged: Staged,
    /// event ids known per month (store + staged), loaded on first touch and kept for the run. A set, not
    /// a frame: checking a file's ids against it costs their number, not the month's (an anti-join per file
    /// rebuilt a hash table of the whole month each time, quadratic over a month of daily bills).
    known: HashMap<String, IdSet>,
    /// customer keys with an identities row (store + staged), loaded on first use.
    known_customers: Option<IdSet>,
    /// The commit being written in the background, if any.
    pending: Option<std::thread::JoinHandle<Result<(Manifest, CommitStats)>>>,
    /// Staged events being written ahead of their commit ([`StoreWriter::spill`]), if any.
    spilling: Option<std::thread::JoinHandle<Result<()>>>,
    spills: u64,
    /// The entries of the files this run has staged, committed or not.
    this_run: Vec<FileEntry>,
}

impl StoreWriter {
    /// Opens (creating) the store and takes the writer lock, or says who holds it.
    pub fn open(root: &Path) -> Result<StoreWriter> {
        fs::create_dir_all(root).with_context(|| format!("creating store folder {}", root.display()))?;
        let lock_path = root.join(LOCK);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&lock_path).unwrap_or_default();
                return Err(UserError(crate::tr!(
                    "error.store_busy",
                    store = root.display(),
                    pid = if holder.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {})", holder.trim())
                    }
                ))
                .into());
            }
            Err(fs::TryLockError::Error(e)) => return Err(e).context(format!("locking {}", lock_path.display())),
        }
        let mut l = &lock;
        let _ = l.set_len(0);
        let _ = write!(l, "{}", std::process::id());
        let manifest = read_manifest(root)?;
        let hasher = KeyHasher::for_store(&root.join(SECRET))?;
        let w = StoreWriter {
            root: root.to_path_buf(),
            manifest,
            hasher,
            _lock: lock,
            staged: Staged::default(),
            known: HashMap::new(),
            known_customers: None,
            pending: None,
            spilling: None,
            spills: 0,
            this_run: Vec::new(),
        };
        w.remove_unreferenced()?;
        Ok(w)
    }

    /// Stages one file's rows. Returns how many events were duplicates of the store or of files staged
    /// before it (or of itself). Copies are avoided where they are not needed: a file within one month is
    /// not split, a file without repeated ids is not de-duplicated, a new month is not anti-joined.
    pub fn stage_events(&mut self, events: DataFrame) -> Result<u64> {
        self.stage_events_expecting(events, 0)
    }

    /// [`StoreWriter::stage_events`], the rows being the first of a large file expected to bring `expected`
    /// events in all (estimated from its size; 0: no estimate). The first month they open that has no
    /// stored events yet gets room for them all at once: a set that grew by doubling as a 10M-row bill was
    /// staged moved 10M ids on the way (1.5, 3 and 6M) and cleared its new memory in three steps, the
    /// stager's work while the parsers wait. A month with stored events grows as it goes (the file may well
    /// be stored already). A file that spans months leaves the first one room for rows that go to the next,
    /// which its later months then lack: at most the file's own rows counted twice.
    pub fn stage_events_expecting(&mut self, events: DataFrame, mut expected: usize) -> Result<u64> {
        if events.height() == 0 {
            return Ok(0);
        }
        let before = events.height();
        // Month of each row as year * 12 + month0, from the day numbers (no string per row).
        let days = events.column("local_date")?.to_physical_repr();
        let mut months_of = MonthOfDay::default();
        let month_of_row: Vec<Option<i32>> = days.i32()?.iter().map(|d| d.and_then(|d| months_of.month(d))).collect();
        let mut months: Vec<i32> = Vec::new();
        for m in month_of_row.iter().flatten() {
            if months.last() != Some(m) && !months.contains(m) {
                months.push(*m);
            }
        }
        let mut kept = 0;
        let single = months.len() == 1;
        let mut events = Some(events);
        for m in months {
            let month = month_key(m);
            let part = if single {
                events.take().expect("taken once")
            } else {
                let mask: BooleanChunked = month_of_row.iter().map(|r| *r == Some(m)).collect();
                events.as_ref().expect("kept while splitting").filter(&mask)?
            };
            // New ids only, each once: the set answers for the store, earlier files and this file alike.
            let digests = digests(part.column("event_id")?.str()?);
            let fresh_mask: BooleanChunked = self
                .known_ids(&month, &mut expected)?
                .insert_all(&digests)
                .into_iter()
                .collect();
            let fresh = if fresh_mask.all() {
                part
            } else {
                part.filter(&fresh_mask)?
            };
            if fresh.height() == 0 {
                continue;
            }
            kept += fresh.height();
            self.staged.events.entry(month).or_default().push(fresh);
        }
        Ok((before - kept) as u64)
    }

    /// Names the file of the staged rows whose `source_file` is `unnamed` (rows of a large file staged
    /// before its digest was known): they get `file_id`.
    pub fn name_staged_source(&mut self, unnamed: &str, file_id: &str) -> Result<()> {
        for frames in self.staged.events.values_mut() {
            for df in frames.iter_mut() {
                // A file's rows are a constant column: its first value says whose they are.
                let first = df.column("source_file")?.get(0).ok();
                if df.height() > 0 && first.as_ref().and_then(AnyValue::get_str) == Some(unnamed) {
                    *df = crate::ingest::model::set_source_file(std::mem::take(df), file_id)?;
                }
            }
        }
        Ok(())
    }

    /// The set of `month`'s event ids, loaded on first touch; a month with no stored events yet takes
    /// `expected` (leaving 0) as the ids it makes room for.
    fn known_ids(&mut self, month: &str, expected: &mut usize) -> Result<&mut IdSet> {
        if !self.known.contains_key(month) {
            let mut set = IdSet::default();
            match self.manifest.events.get(month) {
                Some(parts) => digests_of(&self.root, parts, "event_id", &mut set)?,
                None => set.reserve(std::mem::take(expected)),
            }
            self.known.insert(month.to_string(), set);
        }
        Ok(self.known.get_mut(month).expect("inserted above"))
    }

    /// Stages the identities of keys not stored or staged yet (a key already known keeps its row).
    pub fn stage_identities(&mut self, ids: crate::ingest::model::Identities) -> Result<()> {
        if self.known_customers.is_none() {
            let mut set = IdSet::default();
            digests_of(&self.root, &self.manifest.identities, "customer_key", &mut set)?;
            self.known_customers = Some(set);
        }
        let known = self.known_customers.as_mut().expect("loaded above");
        for (key, id) in ids {
            if known.insert(id_digest(&key)) {
                self.staged.identities.insert(key, id);
            }
        }
        Ok(())
    }

    pub fn stage_line_items(&mut self, sha: &str, items: Vec<LineItem>) {
        self.staged
            .line_items
            .extend(items.into_iter().map(|i| (sha.to_string(), i)));
    }

    pub fn stage_inventory(&mut self, sha: &str, rows: Vec<InventoryRow>) {
        self.staged
            .inventory
            .extend(rows.into_iter().map(|r| (sha.to_string(), r)));
    }

    pub fn stage_file(&mut self, entry: FileEntry, rejects_csv: Option<Vec<u8>>) {
        self.this_run.push(entry.clone());
        if let (Some(name), Some(bytes)) = (&entry.rejects_file, rejects_csv) {
            self.staged.rejects.push((name.clone(), bytes));
        }
        self.staged.files.push(entry);
    }

    /// The entry of a file with this digest that the store holds, or that this run has stored (staged, or
    /// being committed): the same export given twice in one run is stored once.
    pub fn find_file(&self, digest: &FileDigest) -> Option<&FileEntry> {
        self.manifest
            .find(digest)
            .or_else(|| self.this_run.iter().find(|f| f.is_file(digest)))
    }

    pub fn has_staged(&self) -> bool {
        !self.staged.files.is_empty()
    }

    /// Event rows and line items staged and not yet committed.
    pub fn staged_rows(&self) -> usize {
        self.staged
            .events
            .values()
            .flatten()
            .map(DataFrame::height)
            .sum::<usize>()
            + self.staged.line_items.len()
    }

    /// Writes the staged events into parts of the generation being built, on a thread of their own, and
    /// lets them go: a large file's rows leave memory while it is still being read. The parts are in no
    /// manifest until that generation is committed, and are removed if it never is.
    pub fn spill(&mut self) -> Result<()> {
        self.finish_spill()?;
        let gen = self.manifest.generation + 1 + u64::from(self.pending.is_some());
        let mut jobs = Vec::new();
        for (month, frames) in std::mem::take(&mut self.staged.events) {
            self.spills += 1;
            let rel = format!("events/month={month}/part-{gen:06}-{:04}.parquet", self.spills);
            let rows = frames.iter().map(DataFrame::height).sum::<usize>() as u64;
            self.staged.spilled.push((month, rel.clone(), rows));
            jobs.push((rel, frames));
        }
        let root = self.root.clone();
        self.spilling = Some(std::thread::spawn(move || {
            let mut written = Vec::new();
            for (rel, frames) in jobs {
                let mut all = vstack_all(frames)?;
                write_parquet_atomic(&root.join(rel), &mut all, &mut written)?;
            }
            Ok(())
        }));
        Ok(())
    }

    fn finish_spill(&mut self) -> Result<()> {
        match self.spilling.take() {
            Some(handle) => handle
                .join()
                .map_err(|_| anyhow::anyhow!("the store's spill thread panicked"))?,
            None => Ok(()),
        }
    }

    /// Takes back every event staged since the last commit, spilled parts included (a large file that
    /// failed part-way, whose caller committed what came before it): the ids it had marked as known are
    /// read again from the store. Identities stay staged. Returns what a background commit that had to
    /// be waited for wrote.
    pub fn abort_events(&mut self) -> Result<CommitStats> {
        let _ = self.finish_spill(); // whatever it wrote is removed below
        for (_, rel, _) in std::mem::take(&mut self.staged.spilled) {
            for path in part_and_tmp(&self.root, &rel) {
                let _ = fs::remove_file(path);
            }
        }
        self.staged.events.clear();
        let stats = self.finish_background()?;
        self.known.clear();
        Ok(stats)
    }

    /// Writes every staged change under new names, then switches the manifest (after the commit running
    /// in the background, if any, has finished). On error the store is left as the last finished commit
    /// left it (new files removed).
    pub fn commit(&mut self) -> Result<CommitStats> {
        self.finish_spill()?;
        let mut stats = self.finish_background()?;
        if self.has_staged() {
            let (manifest, s) = self.take_generation().write()?;
            self.manifest = manifest;
            self.remove_unreferenced()?;
            stats.add(s);
        }
        Ok(stats)
    }

    /// Like [`StoreWriter::commit`], but the files are written on a thread of their own while staging
    /// goes on; returns what the previous background commit wrote. One runs at a time, generations in
    /// order: each builds on the manifest the previous one switched to.
    pub fn commit_in_background(&mut self) -> Result<CommitStats> {
        self.finish_spill()?;
        let done = self.finish_background()?;
        let generation = self.take_generation();
        self.pending = Some(std::thread::spawn(move || generation.write()));
        Ok(done)
    }

    /// Waits for the background commit, if any, and takes its manifest.
    fn finish_background(&mut self) -> Result<CommitStats> {
        let Some(handle) = self.pending.take() else {
            return Ok(CommitStats::default());
        };
        let (manifest, stats) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the store's writer thread panicked"))??;
        self.manifest = manifest;
        self.remove_unreferenced()?;
        Ok(stats)
    }

    fn take_generation(&mut self) -> Generation {
        Generation {
            root: self.root.clone(),
            manifest: self.manifest.clone(),
            staged: std::mem::take(&mut self.staged),
        }
    }

    /// Removes files the manifest does not name (left by a crash or an older generation).
    fn remove_unreferenced(&self) -> Result<()> {
        let mut referenced: std::collections::HashSet<PathBuf> = self
            .manifest
            .referenced()
            .into_iter()
            .map(|r| self.root.join(r))
            .collect();
        // Parts spilled for the generation being built, and the one being written now.
        for (_, rel, _) in &self.staged.spilled {
            referenced.extend(part_and_tmp(&self.root, rel));
        }
        let _ = fs::remove_file(self.root.join(format!("{MANIFEST}.tmp")));
        for table in ["events", "identities", "line_items", "inventory", "rejects"] {
            let dir = self.root.join(table);
            if dir.exists() {
                remove_unreferenced_in(&dir, &referenced)?;
            }
        }
        Ok(())
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        // An error elsewhere ends the run: let a commit in flight finish (or clean up) before the lock goes.
        if let Some(handle) = self.pending.take() {
            let _ = handle.join();
        }
        // Parts spilled for a generation that was never committed.
        let _ = self.abort_events();
    }
}

/// One commit: the manifest it builds on and what it adds.
struct Generation {
    root: PathBuf,
    manifest: Manifest,
    staged: Staged,
}

impl Generation {
    /// Writes the generation and switches the manifest to it, or removes what it wrote.
    fn write(mut self) -> Result<(Manifest, CommitStats)> {
        let mut written: Vec<PathBuf> = Vec::new();
        let result = self.write_generation(&mut written);
        if result.is_err() {
            for p in &written {
                let _ = fs::remove_file(p);
            }
        }
        // What was staged (a large bill's customers: three strings each, 44 ms for 200K) is freed on a
        // thread of its own while the caller goes on: the last commit of a run prints its summary and exits.
        // (Without a thread, the closure that holds it is dropped here.)
        let staged = std::mem::take(&mut self.staged);
        let _ = std::thread::Builder::new().spawn(move || drop(staged));
        result
    }

    fn write_generation(&mut self, written: &mut Vec<PathBuf>) -> Result<(Manifest, CommitStats)> {
        let gen = self.manifest.generation + 1;
        let mut next = self.manifest.clone();
        next.generation = gen;
        next.version = MANIFEST_VERSION;
        let mut stats = CommitStats::default();
        let fail_after: Option<usize> = std::env::var("PAYLENS_TEST_FAIL_AFTER_PARTITIONS")
            .ok()
            .and_then(|v| v.parse().ok());
        // Parts spilled while the generation was staged come first in their months, and go with it if it
        // fails.
        for (month, rel, rows) in &self.staged.spilled {
            written.extend(part_and_tmp(&self.root, rel));
            next.events.entry(month.clone()).or_default().push(rel.clone());
            stats.new_events += rows;
        }
        // The generation is written once: its staged rows are taken, not copied. The new identities are
        // sorted and written on a thread of their own meanwhile (a large bill's last part and its customers
        // were written one after the other while the parsers had finished: a core idle).
        let events = std::mem::take(&mut self.staged.events);
        let this = &*self;
        let (events_done, identities) = std::thread::scope(|scope| {
            let identities = scope.spawn(|| {
                let mut written = Vec::new();
                let rel = this.write_identities(gen, &mut written);
                (rel, written)
            });
            let events_done = this.write_events(events, gen, fail_after, &mut next, &mut stats, written);
            (events_done, identities.join())
        });
        let (identities_rel, identities_written) =
            identities.map_err(|_| anyhow::anyhow!("the store's identities writer panicked"))?;
        written.extend(identities_written);
        events_done?;
        next.identities.extend(identities_rel?);
        for (month, mut df) in self.merged_line_items()? {
            let rel = format!("line_items/month={month}/part-{gen:06}.parquet");
            write_parquet_atomic(&self.root.join(&rel), &mut df, written)?;
            next.line_items.insert(month, rel);
        }
        if !self.staged.inventory.is_empty() {
            let mut df = self.merged_inventory()?;
            let rel = format!("inventory/part-{gen:06}.parquet");
            write_parquet_atomic(&self.root.join(&rel), &mut df, written)?;
            next.inventory = Some(rel);
        }
        for (name, bytes) in &self.staged.rejects {
            write_bytes_atomic(&self.root.join(name), bytes, written)?;
        }
        next.files.extend(self.staged.files.iter().cloned());
        let json = serde_json::to_vec_pretty(&next)?;
        let tmp = self.root.join(format!("{MANIFEST}.tmp"));
        write_file_synced(&tmp, &json)?;
        written.push(tmp.clone());
        fs::rename(&tmp, self.root.join(MANIFEST)).context("switching the store manifest")?;
        sync_dir(&self.root);
        Ok((next, stats))
    }

    /// Writes the staged events of each month into a part of generation `gen`, naming them in `next`.
    fn write_events(
        &self,
        events: BTreeMap<String, Vec<DataFrame>>,
        gen: u64,
        fail_after: Option<usize>,
        next: &mut Manifest,
        stats: &mut CommitStats,
        written: &mut Vec<PathBuf>,
    ) -> Result<()> {
        for (i, (month, frames)) in events.into_iter().enumerate() {
            if fail_after == Some(i) {
                bail!("injected failure after {i} partitions (PAYLENS_TEST_FAIL_AFTER_PARTITIONS)");
            }
            // The month's new rows, in file order, go into a part of their own: what is stored is not read
            // or rewritten.
            if frames.is_empty() {
                continue;
            }
            let mut all = vstack_all(frames)?;
            stats.new_events += all.height() as u64;
            let rel = format!("events/month={month}/part-{gen:06}.parquet");
            write_parquet_atomic(&self.root.join(&rel), &mut all, written)?;
            next.events.entry(month).or_default().push(rel);
        }
        Ok(())
    }

    /// Writes the staged identities, if any, as the identities part of generation `gen`; its name.
    fn write_identities(&self, gen: u64, written: &mut Vec<PathBuf>) -> Result<Option<String>> {
        if self.staged.identities.is_empty() {
            return Ok(None);
        }
        let mut df = self.new_identities()?;
        let rel = format!("identities/part-{gen:06}.parquet");
        write_parquet_atomic(&self.root.join(&rel), &mut df, written)?;
        Ok(Some(rel))
    }

    /// The staged identities (keys the store did not have), sorted by key.
    fn new_identities(&self) -> Result<DataFrame> {
        let mut ids: Vec<(&String, &crate::ingest::model::RawIdentity)> = self.staged.identities.iter().collect();
        // Keys are 32 lowercase hex digits, whose text order is the order of the numbers they spell: sorted
        // as numbers, not compared as text (a sort of a million keys was 4 % of a 1M-row bill's ingest).
        let numbers: Option<Vec<u128>> = ids.iter().map(|(k, _)| hex_number(k)).collect();
        match numbers {
            Some(numbers) => {
                let mut order: Vec<(u128, u32)> = numbers.into_iter().zip(0..).collect();
                order.sort_unstable();
                ids = order.iter().map(|&(_, i)| ids[i as usize]).collect();
            }
            None => ids.sort_unstable_by(|a, b| a.0.cmp(b.0)),
        }
        Ok(df!(
            "customer_key" => ids.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            "quality" => ids.iter().map(|(_, v)| v.quality.as_str()).collect::<Vec<_>>(),
            "id_kind" => ids.iter().map(|(_, v)| v.kind).collect::<Vec<_>>(),
            "raw_id" => ids.iter().map(|(_, v)| v.id.as_ref()).collect::<Vec<_>>(),
            "label" => ids.iter().map(|(_, v)| v.label.as_ref()).collect::<Vec<_>>(),
        )?)
    }

    /// Staged line items merged into their month partitions: (month, all of that month's items).
    fn merged_line_items(&self) -> Result<Vec<(String, DataFrame)>> {
        let mut seen: HashMap<String, u32> = HashMap::new();
        let mut by_month: BTreeMap<String, Vec<(String, &str, &LineItem)>> = BTreeMap::new();
        for (sha, li) in &self.staged.line_items {
            let k = seen.entry(format!("{sha}\u{1}{}", li.merchant_order_id)).or_default();
            *k += 1;
            let month = li
                .sold_at
                .map_or_else(|| "unknown".to_string(), |t| t.format("%Y-%m").to_string());
            by_month
                .entry(month)
                .or_default()
                .push((format!("{}#{}", li.merchant_order_id, k), sha, li));
        }
        let mut out = Vec::with_capacity(by_month.len());
        for (month, new) in by_month {
            let n = new.len();
            let df = DataFrame::new(
                n,
                vec![
                    Column::new(
                        "item_id".into(),
                        new.iter().map(|(id, _, _)| id.clone()).collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "merchant_order_id".into(),
                        new.iter()
                            .map(|(_, _, l)| l.merchant_order_id.clone())
                            .collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "sku".into(),
                        new.iter().map(|(_, _, l)| l.sku.clone()).collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "name".into(),
                        new.iter().map(|(_, _, l)| l.name.clone()).collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "quantity".into(),
                        new.iter().map(|(_, _, l)| l.quantity).collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "unit_price_fen".into(),
                        new.iter().map(|(_, _, l)| l.unit_price_fen).collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "sold_at".into(),
                        new.iter()
                            .map(|(_, _, l)| l.sold_at.map(|t| t.timestamp_micros()))
                            .collect::<Vec<_>>(),
                    )
                    .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))?,
                    Column::new(
                        "source_file".into(),
                        new.iter().map(|(_, s, _)| s.to_string()).collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "source_line".into(),
                        new.iter().map(|(_, _, l)| l.line).collect::<Vec<_>>(),
                    ),
                ],
            )?;
            let merged = self.merge_keyed(
                self.manifest.line_items.get(&month).map(String::as_str),
                df,
                &["item_id"],
                UniqueKeepStrategy::First,
            )?;
            out.push((month, merged));
        }
        Ok(out)
    }

    fn merged_inventory(&self) -> Result<DataFrame> {
        let rows: Vec<&InventoryRow> = self.staged.inventory.iter().map(|(_, r)| r).collect();
        let n = rows.len();
        let df = DataFrame::new(
            n,
            vec![
                Column::new(
                    "snapshot_date".into(),
                    rows.iter()
                        .map(|r| crate::ingest::model::days_since_epoch(r.snapshot_date))
                        .collect::<Vec<_>>(),
                )
                .cast(&DataType::Date)?,
                Column::new("sku".into(), rows.iter().map(|r| r.sku.clone()).collect::<Vec<_>>()),
                Column::new("name".into(), rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>()),
                Column::new("on_hand".into(), rows.iter().map(|r| r.on_hand).collect::<Vec<_>>()),
                Column::new("on_order".into(), rows.iter().map(|r| r.on_order).collect::<Vec<_>>()),
                Column::new(
                    "lead_time_days".into(),
                    rows.iter().map(|r| r.lead_time_days).collect::<Vec<_>>(),
                ),
                Column::new("pack_size".into(), rows.iter().map(|r| r.pack_size).collect::<Vec<_>>()),
                Column::new("min_order".into(), rows.iter().map(|r| r.min_order).collect::<Vec<_>>()),
                Column::new(
                    "unit_cost_fen".into(),
                    rows.iter().map(|r| r.unit_cost_fen).collect::<Vec<_>>(),
                ),
                Column::new(
                    "source_file".into(),
                    self.staged.inventory.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
                ),
            ],
        )?;
        // A later snapshot row for the same date and sku replaces the earlier one.
        self.merge_keyed(
            self.manifest.inventory.as_deref(),
            df,
            &["snapshot_date", "sku"],
            UniqueKeepStrategy::Last,
        )
    }

    /// Existing rows first, new rows after; per key the first (`UniqueKeepStrategy::First`: what is
    /// stored wins) or the last (`Last`: the newest file wins) row is kept, in key order.
    fn merge_keyed(
        &self,
        existing: Option<&str>,
        new: DataFrame,
        key: &[&str],
        keep: UniqueKeepStrategy,
    ) -> Result<DataFrame> {
        let all = match existing {
            Some(f) => {
                let mut old = read_parquet(&self.root.join(f))?;
                old.vstack_mut_owned(new)?;
                old
            }
            None => new,
        };
        Ok(all
            .lazy()
            .unique_stable_generic(Some(key.iter().map(|k| col(*k)).collect()), keep)
            .sort(
                key.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                SortMultipleOptions::default(),
            )
            .collect()?)
    }
}

fn remove_unreferenced_in(dir: &Path, keep: &std::collections::HashSet<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            remove_unreferenced_in(&p, keep)?;
            let _ = fs::remove_dir(&p); // only succeeds when empty
        } else if !keep.contains(&p) {
            fs::remove_file(&p).with_context(|| format!("removing stale store file {}", p.display()))?;
        }
    }
    Ok(())
}

/// What a commit wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommitStats {
    pub new_events: u64,
}

impl CommitStats {
    fn add(&mut self, other: CommitStats) {
        self.new_events += other.new_events;
    }
}

/// The number a customer key spells, if it is 32 lowercase hex digits (as every key paylens makes is).
fn hex_number(key: &str) -> Option<u128> {
    let b = key.as_bytes();
    if b.len() != 32 {
        return None;
    }
    b.iter().try_fold(0u128, |n, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(d))
    })
}

/// The frames one after another (the first frame's chunks extended, nothing copied).
fn vstack_all(frames: Vec<DataFrame>) -> Result<DataFrame> {
    let mut frames = frames.into_iter();
    let mut all = frames.next().unwrap_or_default();
    for f in frames {
        all.vstack_mut_owned(f)?;
    }
    Ok(all)
}

fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The name a Parquet file of the store is written under before the rename that completes it.
fn tmp_of(path: &Path) -> PathBuf {
    path.with_extension("parquet.tmp")
}

/// A Parquet file of the store, under its temporary name and its own.
fn part_and_tmp(root: &Path, rel: &str) -> [PathBuf; 2] {
    let path = root.join(rel);
    [tmp_of(&path), path]
}

/// Writes `df` as zstd Parquet to `path` via a temp file, fsync and rename; records what it created.
pub fn write_parquet_atomic(path: &Path, df: &mut DataFrame, written: &mut Vec<PathBuf>) -> Result<()> {
    let dir = path.parent().expect("store paths have a parent");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tmp_of(path);
    written.push(tmp.clone());
    let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let written_df = crate::parquet_file::write_row_groups(&f, df);
    anyhow::Context::with_context(written_df, || format!("writing {}", tmp.display()))?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    written.push(path.to_path_buf());
    sync_dir(dir);
    Ok(())
}

fn write_bytes_atomic(path: &Path, bytes: &[u8], written: &mut Vec<PathBuf>) -> Result<()> {
    let dir = path.parent().expect("store paths have a parent");
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    written.push(tmp.clone());
    write_file_synced(&tmp, bytes)?;
    fs::rename(&tmp, path)?;
    written.push(path.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_file::MIN_ROW_GROUP_ROWS;

    /// A column's digests, read with the views and texts fetched ahead, are those of its values one by one
    /// (XXH3-128 by the crate's own call, 0 for a null), across chunks, inline and stored values, and the
    /// rows near a chunk's end where the fetch ahead runs past it.
    #[test]
    fn digests_are_each_values_digest() {
        let value = |i: usize| match i % 5 {
            0 => None,
            1 => Some(format!("wx:42000{i:024}")),
            2 => Some(format!("s{i}")),
            _ => Some(format!("alipay:2026112222001{i:012}")),
        };
        let chunk =
            |from: usize, n: usize| Series::new("event_id".into(), (from..from + n).map(value).collect::<Vec<_>>());
        let mut ids = chunk(0, 1000);
        ids.append(&chunk(1000, 3)).expect("same type");
        ids.append(&chunk(1003, 70)).expect("same type");
        let ids = ids.str().expect("text");
        assert_eq!(ids.chunks().len(), 3);
        let want: Vec<u128> = (0..1073)
            .map(|i| value(i).map_or(0, |v| xxhash_rust::xxh3::xxh3_128(v.as_bytes()).max(1)))
            .collect();
        assert_eq!(digests(ids), want);
    }

    /// A large file's expected events size the set of the first new month its rows open, once: months
    /// opened later, and a month with stored events, grow as they go; every id is still checked.
    #[test]
    fn expected_events_size_the_first_new_month() {
        let day =
            |y, m, d| crate::ingest::model::days_since_epoch(chrono::NaiveDate::from_ymd_opt(y, m, d).expect("a date"));
        let events = |ids: &[&str], d: i32| {
            let n = ids.len();
            DataFrame::new(
                n,
                vec![
                    Column::new("event_id".into(), ids.to_vec()),
                    Column::new("local_date".into(), vec![d; n])
                        .cast(&DataType::Date)
                        .expect("dates"),
                ],
            )
            .expect("a frame")
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = StoreWriter::open(dir.path()).expect("store");
        let dups = store
            .stage_events_expecting(events(&["a", "b", "a"], day(2026, 10, 31)), 100_000)
            .expect("staged");
        assert_eq!(dups, 1);
        let october = &store.known["2026-10"];
        assert!(october.capacity() >= 100_000, "{}", october.capacity());
        assert_eq!(october.len(), 2);
        // A month opened after the first piece: as small as a set starts.
        store.stage_events(events(&["c"], day(2026, 11, 1))).expect("staged");
        assert_eq!(store.known["2026-11"].capacity(), IdSet::default().capacity());
        assert_eq!(
            store
                .stage_events(events(&["b", "c", "d"], day(2026, 10, 30)))
                .expect("staged"),
            1
        );
    }

    #[test]
    fn recent_days_read_the_files_of_their_months() {
        let months = ["2025-12", "2026-09", "2026-10", "2026-11", "other"];
        let mut manifest = Manifest::default();
        for m in months {
            manifest.events.insert(
                m.into(),
                vec![format!("events/month={m}/a"), format!("events/month={m}/b")],
            );
        }
        let store = StoreReader {
            root: PathBuf::from("/s"),
            manifest,
        };
        let day =
            |y, m, d| crate::ingest::model::days_since_epoch(chrono::NaiveDate::from_ymd_opt(y, m, d).expect("a date"));
        let since = |d: i32| -> Vec<String> {
            let paths = store.event_paths_since(d).expect("paths");
            paths
                .iter()
                .map(|p| p.as_str().trim_start_matches("/s/").to_string())
                .collect()
        };
        let files = |ms: &[&str]| -> Vec<String> {
            ms.iter()
                .flat_map(|m| [format!("events/month={m}/a"), format!("events/month={m}/b")])
                .collect()
        };
        assert_eq!(since(day(2026, 10, 31)), files(&["2026-10", "2026-11", "other"]));
        assert_eq!(since(day(2026, 10, 1)), files(&["2026-10", "2026-11", "other"]));
        assert_eq!(
            since(day(2026, 9, 30)),
            files(&["2026-09", "2026-10", "2026-11", "other"])
        );
        assert_eq!(since(day(2025, 1, 1)), files(&months));
        assert_eq!(since(day(2027, 1, 1)), files(&["other"]));
    }

    /// The remembered month answers as the calendar does: days in order, across month and year ends and
    /// leap days, days out of order, and days the calendar cannot place.
    #[test]
    fn month_of_day_is_the_calendar_month() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
        let calendar = |d: i32| {
            epoch
                .checked_add_signed(chrono::TimeDelta::days(d.into()))
                .map(|x| x.year() * 12 + x.month0() as i32)
        };
        let mut months = MonthOfDay::default();
        // 1968-06 to 2031: a leap year's February, year ends.
        for d in -600..22_000 {
            assert_eq!(months.month(d), calendar(d), "day {d}");
        }
        let mut next = crate::analytics::testing::pseudo_random(7);
        for _ in 0..20_000 {
            let d = next(30_000) as i32 - 5_000;
            assert_eq!(months.month(d), calendar(d), "day {d}");
        }
        // 2024-02-29 is day 19782; 2024-03-01 day 19783 (1970-01-01 is day 0).
        assert_eq!(months.month(19_782), Some(2024 * 12 + 1));
        assert_eq!(months.month(19_783), Some(2024 * 12 + 2));
        assert_eq!(months.month(i32::MAX), None);
        assert_eq!(months.month(i32::MIN), None);
    }

    /// Staged identities are written in the text order of their keys, whether every key is 32 hex digits
    /// (sorted as numbers) or not (sorted as text).
    #[test]
    fn new_identities_are_in_key_order() {
        let mut next = crate::analytics::testing::pseudo_random(19);
        let mut hex = |digits: usize| -> String {
            (0..digits)
                .map(|_| char::from_digit(next(16) as u32, 16).expect("a hex digit"))
                .collect()
        };
        let hex_keys: Vec<String> = (0..5000)
            .map(|i| match i % 5 {
                // Keys that share long prefixes, and keys at the ends of the range.
                0 => format!("{:016x}{}", i / 5, hex(16)),
                1 => format!("{:032x}", u128::MAX - i as u128),
                _ => hex(32),
            })
            .collect();
        let mut other_keys = hex_keys.clone();
        other_keys.extend(["ABC".to_string(), "0".repeat(31), format!("{}G", "f".repeat(31))]);
        for keys in [hex_keys, other_keys] {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut store = StoreWriter::open(dir.path()).expect("store");
            let ids: crate::ingest::model::Identities = keys
                .iter()
                .map(|k| {
                    let id = crate::ingest::model::RawIdentity {
                        kind: "wechat_openid",
                        id: format!("raw-{k}").into(),
                        label: "".into(),
                        quality: crate::ingest::model::KeyQuality::Strong,
                    };
                    (k.clone(), id)
                })
                .collect();
            store.stage_identities(ids).expect("staged");
            let df = store.take_generation().new_identities().expect("identities");
            let got: Vec<&str> = df
                .column("customer_key")
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .flatten()
                .collect();
            let raw: Vec<&str> = df.column("raw_id").unwrap().str().unwrap().iter().flatten().collect();
            let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
            want.sort();
            assert_eq!(got, want);
            assert!(got.iter().zip(&raw).all(|(k, r)| *r == format!("raw-{k}")));
        }
        assert_eq!(hex_number(&"f".repeat(32)), Some(u128::MAX));
        assert_eq!(hex_number(&"F".repeat(32)), None);
        assert_eq!(hex_number("0f"), None);
    }

    /// A frame of one chunk per "file" (small and large), with a constant column per file and one
    /// constant over all: what is read back is the frame, row for row, and only the small chunks were
    /// gathered into a row group (checked with the `parquet` crate, not Polars' own reader).
    #[test]
    fn row_groups_follow_the_chunks_and_keep_every_row() {
        let part = |file: &str, start: i64, n: usize| {
            let ids: Vec<String> = (0..n as i64).map(|i| format!("order-{}", start + i)).collect();
            DataFrame::new(
                n,
                vec![
                    Column::new("event_id".into(), ids),
                    Column::new(
                        "amount_fen".into(),
                        (0..n as i64).map(|i| start + i).collect::<Vec<_>>(),
                    ),
                    Column::new_scalar(
                        "source_file".into(),
                        Scalar::new(DataType::String, AnyValue::StringOwned(file.into())),
                        n,
                    ),
                    Column::new_scalar(
                        "source_format".into(),
                        Scalar::new(DataType::String, AnyValue::StringOwned("wechat_merchant".into())),
                        n,
                    ),
                ],
            )
            .expect("a frame")
        };
        // Two large files, then three small ones (gathered into one row group), then a large one.
        let sizes = [
            MIN_ROW_GROUP_ROWS + 5,
            MIN_ROW_GROUP_ROWS,
            10,
            20,
            MIN_ROW_GROUP_ROWS - 1,
            MIN_ROW_GROUP_ROWS * 2,
        ];
        let mut df: Option<DataFrame> = None;
        let mut start = 0;
        for (i, n) in sizes.iter().enumerate() {
            let p = part(&format!("file-{i}-{}", "f".repeat(60)), start, *n);
            start += *n as i64;
            match &mut df {
                Some(d) => {
                    d.vstack_mut_owned(p).expect("same schema");
                }
                None => df = Some(p),
            }
        }
        let mut df = df.expect("parts");
        let expected = df.clone();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("part.parquet");
        write_parquet_atomic(&path, &mut df, &mut Vec::new()).expect("written");
        let back = read_parquet(&path).expect("read back");
        assert!(back.equals(&expected), "{back:?}\n{expected:?}");
        let meta = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(File::open(&path).expect("open"))
                .expect("a parquet file"),
        )
        .clone();
        let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        let small = (10 + 20 + MIN_ROW_GROUP_ROWS - 1) as i64;
        assert_eq!(groups, [sizes[0] as i64, sizes[1] as i64, small, sizes[5] as i64]);
    }
}
