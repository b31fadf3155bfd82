//! A large bill read on more than one thread: one thread reads the file once for its digest and cuts it
//! at line ends into pieces; it and a helper parse the pieces, which the stager takes in order as they
//! come, spilling their rows to the store as it goes. Memory stays bounded by the pieces in flight, not
//! the file. The file is still stored whole or not at all: its rows are a generation of their own, taken
//! back if any piece fails, and its summary is checked once every piece is in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use anyhow::{Context, Result};

use super::model::{self, FileReport};
use super::normalise::TextEncoding;
use super::source::{self, FileDigest, Input, Payload, Piece};
use super::{alipay_merchant, wechat_merchant, Ctx, FileOutcome, Format, Parsed, ParsedPiece, Parser, PARSER_STOPPED};
use crate::config::Config;
use crate::privacy::KeyHasher;
use crate::store::StoreWriter;
use crate::tr;

/// The lines of a piece: its rows make one ingest chunk, written as a row group of its own. (Pieces of 8
/// MiB, about 34K rows of a WeChat bill, were gathered two by two into row groups, every column copied
/// once more: a one-bill ingest of 10M rows took 7.47-7.84 s against 7.81-8.26 s, 3 runs each in turn.)
pub const PIECE_LINES: u64 = crate::ingest::model::CHUNK_ROWS as u64;

/// The largest piece, in bytes (of a bill with lines of over 512 bytes); and the size from which a file is
/// read in pieces.
pub const PIECE_BYTES: u64 = 32 << 20;

/// The `source_file` of a piece's rows as parsed: the file's digest is not known until it has been read
/// whole, and the stager names the rows then.
pub const UNNAMED: &str = "";

/// Pieces parsed and not yet staged, at most, per file (a chunk of rows each, about 16 MB of a WeChat
/// bill).
const PIECES_AHEAD: usize = 4;

/// Fewer bytes than any row of a merchant bill takes (a WeChat Pay row has 20-odd fields of which an order
/// number alone is 28 digits; 200-250 bytes in the bills seen): bounds the rows a large file is expected to
/// bring, should its first piece hold unusually short rows.
const MIN_ROW_BYTES: u64 = 64;

/// Whether an input is read in pieces, with its format and encoding: a merchant bill (a WeChat Pay trade
/// bill or an Alipay 业务明细: the exports that reach gigabytes), uncompressed on disk or in memory (read
/// whole, or a zip entry inflated), of more than `piece_bytes`.
pub fn in_pieces(input: &Input, cfg: &Config, piece_bytes: u64) -> Option<(Format, TextEncoding)> {
    let on_disk_or_in_memory = matches!(input.payload, Payload::File(_) | Payload::Bytes(_) | Payload::Mapped(_));
    if !on_disk_or_in_memory || input.size <= piece_bytes {
        return None;
    }
    if input.is_gzip().unwrap_or(true) {
        return None;
    }
    match super::detect(input, cfg) {
        Ok((format @ (Format::WechatMerchant | Format::AlipayMerchant), enc)) => Some((format, enc)),
        _ => None,
    }
}

/// How far the stager has got with a file's pieces: piece `i` is started once fewer than
/// `PIECES_AHEAD` pieces before it wait to be staged; and whether the stager wants no more.
#[derive(Default)]
pub struct PieceGate {
    staged: Mutex<usize>,
    turn: Condvar,
    stop: AtomicBool,
}

impl PieceGate {
    /// Waits until piece `index` may be parsed; `false` if the file is given up.
    fn wait_turn(&self, index: usize) -> bool {
        let mut staged = self.staged.lock().unwrap_or_else(PoisonError::into_inner);
        while !self.stopped() && index >= *staged + PIECES_AHEAD {
            staged = self.turn.wait(staged).unwrap_or_else(PoisonError::into_inner);
        }
        !self.stopped()
    }

    /// Waits (at most `limit`) until the stager has staged `n` pieces or given the file up; whether it
    /// staged them.
    fn wait_staged(&self, n: usize, limit: std::time::Duration) -> bool {
        let staged = self.staged.lock().unwrap_or_else(PoisonError::into_inner);
        let (staged, _) = self
            .turn
            .wait_timeout_while(staged, limit, |staged| !self.stopped() && *staged < n)
            .unwrap_or_else(PoisonError::into_inner);
        *staged >= n
    }

    fn set_staged(&self, n: usize) {
        *self.staged.lock().unwrap_or_else(PoisonError::into_inner) = n;
        self.turn.notify_all();
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _held = self.staged.lock().unwrap_or_else(PoisonError::into_inner);
        self.turn.notify_all();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Reads a large file in pieces and sends, on `out`: `Pieces`, then its digest and its pieces as they are
/// done, then `End`. This thread reads the file for the digest and the cuts, then parses pieces too; a
/// helper parses from the first cut on. Both start with empty key caches, not the parser's: a piece
/// parsed but never staged (its file given up) must not leave keys counted as given to a later file.
pub fn parse_in_pieces(
    input: &Input,
    format: Format,
    enc: TextEncoding,
    parser: &Parser,
    out: &SyncSender<Result<Parsed>>,
) {
    let Parser {
        cfg,
        hasher,
        known,
        cut,
    } = *parser;
    let gate = Arc::new(PieceGate::default());
    if out.send(Ok(Parsed::Pieces(gate.clone(), format.clone()))).is_err() {
        return;
    }
    let send = |msg: Result<Parsed>| {
        if out.send(msg).is_err() {
            gate.stop(); // the stager has stopped
        }
    };
    let (piece_tx, piece_rx) = std::sync::mpsc::channel::<Piece>();
    let piece_rx = Mutex::new(piece_rx);
    let parse_pieces = |cache: &mut model::KeyCache| loop {
        let next = piece_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(piece) = next else { break };
        if !gate.wait_turn(piece.index) {
            continue;
        }
        let parsed = parse_piece(input, &format, enc, piece, cfg, hasher, cache)
            .with_context(|| tr!("ingest.reading", file = input.name));
        input.release(piece.start, piece.end);
        if parsed.is_err() {
            gate.stop();
        }
        send(parsed.map(|p| Parsed::Piece(Box::new(p))));
    };
    let mut pieces = 0;
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| parse_pieces(&mut model::KeyCache::default()));
        let digest = source::digest_and_cut(input, cut, known.needs_sha256(), |p| {
            pieces += 1;
            piece_tx.send(p).is_ok() && !gate.stopped()
        });
        drop(piece_tx);
        // Tests hold the digest back until pieces were staged without it (a large file's digest comes a
        // second or more after its first pieces; a small test file's before them).
        let late = std::env::var("PAYLENS_TEST_DIGEST_AFTER_STAGED")
            .ok()
            .and_then(|v| v.parse().ok());
        let digest = match late {
            Some(n) if !gate.wait_staged(n, std::time::Duration::from_secs(10)) => Err(anyhow::anyhow!(
                "{n} pieces were not staged before the digest (PAYLENS_TEST_DIGEST_AFTER_STAGED)"
            )),
            _ => digest,
        };
        match digest {
            Ok(Some(digest)) => {
                if known.find(&digest).is_some() {
                    gate.stop(); // stored already: the stager says so without its rows
                }
                send(Ok(Parsed::Digest(digest)));
            }
            Ok(None) => {} // given up
            Err(e) => {
                gate.stop();
                send(Err(e.context(tr!("ingest.reading", file = input.name))));
            }
        }
        parse_pieces(&mut model::KeyCache::default());
        if helper.join().is_err() {
            gate.stop();
            send(Err(anyhow::anyhow!("a parser thread panicked reading {}", input.name)));
        }
    });
    send(Ok(Parsed::End(pieces)));
}

/// Parses one piece of a large file.
fn parse_piece(
    input: &Input,
    format: &Format,
    enc: TextEncoding,
    piece: Piece,
    cfg: &Config,
    hasher: &KeyHasher,
    cache: &mut model::KeyCache,
) -> Result<ParsedPiece> {
    let fail = std::env::var("PAYLENS_TEST_FAIL_PIECE").ok();
    if fail.and_then(|f| f.parse().ok()) == Some(piece.index) {
        anyhow::bail!("injected failure in piece {} (PAYLENS_TEST_FAIL_PIECE)", piece.index);
    }
    // The digest is not known yet: the stager names the source file (see `UNNAMED`).
    let mut ctx = Ctx::new(cfg, hasher, cache, UNNAMED, format);
    let totals = match format {
        Format::WechatMerchant => PieceTotals::Wechat(wechat_merchant::parse_piece(input, enc, Some(piece), &mut ctx)?),
        Format::AlipayMerchant => PieceTotals::Alipay(alipay_merchant::parse_piece(input, enc, Some(piece), &mut ctx)?),
        other => anyhow::bail!("{} is not read in pieces", other.name()),
    };
    Ok(ParsedPiece {
        index: piece.index,
        report: ctx.report,
        parts: ctx.sink.finish(),
        totals,
        bytes: piece.end - piece.start,
    })
}

/// The stager's side of a file read in pieces.
pub struct PieceStaging<'a> {
    pub store: &'a mut StoreWriter,
    pub strict: bool,
    pub batch_rows: usize,
    /// Events committed so far in the run (a commit this file waits for adds to it).
    pub new_events: &'a mut u64,
    /// Moved on as each piece is staged.
    pub progress: &'a indicatif::ProgressBar,
}

/// Stops the parsers of a file however its staging ends.
struct StopOnDrop<'a>(&'a PieceGate);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl PieceStaging<'_> {
    /// Stages the pieces of a file in order as they arrive on `rx`, and the file once they are all in.
    /// The outer error ends the run (the store's commits, a parser thread gone); the inner one refuses
    /// the file.
    pub fn stage(
        &mut self,
        input: &Input,
        cfg: &Config,
        rx: &Receiver<Result<Parsed>>,
        gate: &PieceGate,
        format: Format,
    ) -> Result<Result<FileOutcome>> {
        let _stop = StopOnDrop(gate);
        // The file's rows make a generation of their own, so that a failure part-way takes back its rows
        // alone (under --strict nothing is committed unless every file is good, so nothing is taken back).
        if !self.strict && (self.store.has_staged() || self.store.staged_rows() > 0) {
            *self.new_events += self.store.commit_in_background()?.new_events;
        }
        let mut file = FileState {
            report: FileReport {
                format: format.name(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut digest: Option<FileDigest> = None;
        let mut waiting = BTreeMap::new();
        let mut failure: Option<anyhow::Error> = None;
        let mut already = false;
        let pieces = loop {
            match rx.recv().map_err(|_| anyhow::anyhow!(PARSER_STOPPED))? {
                Err(e) => {
                    failure.get_or_insert(e);
                }
                Ok(Parsed::Digest(d)) => {
                    already = self.store.find_file(&d).is_some();
                    // Pieces staged unnamed (never under --strict: the store stages this file's rows alone).
                    if file.pieces > 0 {
                        if !already {
                            self.store.name_staged_source(UNNAMED, &d.blake3)?;
                        } else if self.store.staged_rows() > 0 {
                            // New rows of a file stored already (its parts changed by hand since): taken
                            // back, as the file is not stored again.
                            *self.new_events += self.store.abort_events()?.new_events;
                        }
                    }
                    digest = Some(d);
                }
                Ok(Parsed::Piece(p)) => {
                    waiting.insert(p.index, p);
                }
                Ok(Parsed::End(n)) => break n,
                Ok(_) => {
                    failure.get_or_insert(anyhow::anyhow!("{}: a parser's message out of turn", input.name));
                }
            }
            if failure.is_some() || already {
                gate.stop();
                waiting.clear();
                continue;
            }
            // Each piece is staged after the one before. The rows name their file by its digest, which is
            // known once the whole file has been read (about a second for 2 GB): until then a spill's worth
            // of rows at most is staged unnamed and nothing is spilled, so that parsing and staging start
            // with the reading (not under --strict, where a file stored already must not have taken back
            // the rows of the files before it).
            while digest.is_some() || !self.strict && self.store.staged_rows() < self.spill_rows() {
                let Some(piece) = waiting.remove(&file.pieces) else {
                    break;
                };
                let file_id = digest.as_ref().map(|d| d.blake3.as_str());
                if let Err(e) = self.stage_piece(&mut file, *piece, file_id, input.size) {
                    failure = Some(e);
                    break;
                }
                gate.set_staged(file.pieces);
            }
        };
        if failure.is_none() && !already && file.pieces != pieces {
            failure = Some(anyhow::anyhow!(
                "{}: {} of {pieces} pieces read",
                input.name,
                file.pieces
            ));
        }
        if let Some(e) = failure {
            if !self.strict {
                *self.new_events += self.store.abort_events()?.new_events;
            }
            return Ok(Err(e));
        }
        let Some(digest) = digest else {
            if !self.strict {
                *self.new_events += self.store.abort_events()?.new_events;
            }
            return Ok(Err(anyhow::anyhow!(
                "{}: read in pieces without its digest",
                input.name
            )));
        };
        if let Some(outcome) = super::already_ingested(input, self.store, &digest) {
            return Ok(Ok(outcome));
        }
        let FileState {
            mut report,
            totals,
            duplicates,
            ..
        } = file;
        match totals {
            Some(PieceTotals::Wechat(t)) => wechat_merchant::finish(t, &mut report),
            Some(PieceTotals::Alipay(t)) => alipay_merchant::finish(t, &mut report),
            None => report.expects_totals = true,
        }
        Ok(Ok(super::record_file(
            input, cfg, self.store, &digest, &format, report, duplicates,
        )))
    }

    /// The staged rows of a large file that are spilled together: half a commit batch (4 pieces of 65,536
    /// rows), so that the rows staged and the rows being written hold half the memory. A 10M-row bill
    /// peaked at 0.94-0.97 GB against 1.26 GB, in the same time; its month is stored in 38 parts instead of
    /// 19 (each of 4 row groups).
    fn spill_rows(&self) -> usize {
        (self.batch_rows / 2).max(1)
    }

    /// Stages a piece's rows, named by the file's digest if it is known (`file_id`; the parser did not know
    /// it), else unnamed until it is; spills a full batch of named rows.
    /// The first piece's rows per byte give the file's expected rows (`file_bytes` of it), which the store
    /// makes room for at once (see [`StoreWriter::stage_events_expecting`]).
    fn stage_piece(
        &mut self,
        file: &mut FileState,
        piece: ParsedPiece,
        file_id: Option<&str>,
        file_bytes: u64,
    ) -> Result<()> {
        let (events, identities, ..) = piece.parts;
        self.store.stage_identities(identities)?;
        let events = match file_id {
            Some(id) => model::set_source_file(events, id)?,
            None => events,
        };
        let expected = if file.pieces == 0 && piece.bytes > 0 {
            let rows = u128::from(file_bytes) * events.height() as u128 / u128::from(piece.bytes);
            let most = file_bytes / MIN_ROW_BYTES;
            usize::try_from(rows.min(u128::from(most))).unwrap_or(usize::MAX)
        } else {
            0
        };
        file.duplicates += self.store.stage_events_expecting(events, expected)?;
        file.report.absorb(piece.report);
        match &mut file.totals {
            Some(t) => t.add(piece.totals),
            None => file.totals = Some(piece.totals),
        }
        file.pieces += 1;
        self.progress.inc(piece.bytes);
        if file_id.is_some() && self.store.staged_rows() >= self.spill_rows() {
            self.store.spill()?;
        }
        Ok(())
    }
}

/// A file's pieces staged so far, and what they add up to.
#[derive(Default)]
struct FileState {
    pieces: usize,
    report: FileReport,
    /// What the pieces staged add up to (`None` before the first).
    totals: Option<PieceTotals>,
    duplicates: u64,
}

/// What the rows of a piece add up to, in its format's terms.
pub enum PieceTotals {
    Wechat(wechat_merchant::Totals),
    Alipay(alipay_merchant::Totals),
}

impl PieceTotals {
    /// Adds the totals of the piece that follows (of the same file, so of the same format).
    fn add(&mut self, later: PieceTotals) {
        match (self, later) {
            (PieceTotals::Wechat(a), PieceTotals::Wechat(b)) => a.add(b),
            (PieceTotals::Alipay(a), PieceTotals::Alipay(b)) => a.add(b),
            _ => unreachable!("the pieces of one file are of one format"),
        }
    }
}
