//! Turning the paths a user names into inputs: files, folders (recursively, sorted), `.zip` archives
//! (entry names in GBK without the UTF-8 flag included) and gzip. Also the line reader every text dialect
//! uses: it streams, decodes each line in the file's encoding and keeps line numbers.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::mapped::Mapped;
use super::normalise::{decode, decode_into, sniff_encoding, TextEncoding};

/// Entries larger than this inside a zip are refused (a zip bomb or not a bill).
const MAX_ZIP_ENTRY: u64 = 4 << 30;

/// What identifies an input in the store's manifest: the BLAKE3 of its bytes as stored (64 hex digits),
/// and, only for a store with entries written before manifest version 3 (which name files by SHA-256
/// alone), their SHA-256 too. BLAKE3 (`b3sum` gives the same) took 0.42 s for a 2.4 GB bill where SHA-256,
/// with the CPU's SHA instructions, took 1.9 s: a tenth of the whole ingest's CPU time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub blake3: String,
    pub sha256: Option<String>,
}

/// Computes a [`FileDigest`] over bytes given in order.
struct FileHasher {
    blake3: blake3::Hasher,
    sha256: Option<Sha256>,
}

impl FileHasher {
    fn new(with_sha256: bool) -> FileHasher {
        FileHasher {
            blake3: blake3::Hasher::new(),
            sha256: with_sha256.then(Sha256::new),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.blake3.update(bytes);
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
    }

    fn finish(self) -> FileDigest {
        FileDigest {
            blake3: self.blake3.finalize().to_hex().to_string(),
            sha256: self.sha256.map(|h| hex::encode(h.finalize())),
        }
    }
}

/// Where an input's bytes are.
#[derive(Debug, Clone)]
pub enum Payload {
    File(PathBuf),
    Bytes(std::sync::Arc<Vec<u8>>),
    /// A large file on disk, mapped into memory (see `mapped`).
    Mapped(std::sync::Arc<Mapped>),
    /// Entry `index` of a zip archive held in memory as it is stored (compressed): inflated when the file
    /// is read, on the thread that parses it, so a run does not hold every entry inflated at once.
    ZipEntry {
        archive: std::sync::Arc<Vec<u8>>,
        index: usize,
    },
}

impl Payload {
    /// The bytes as stored, where they are in memory (read whole, inflated or mapped).
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::Bytes(b) => Some(b.as_slice()),
            Payload::Mapped(m) => Some(m.bytes()),
            Payload::File(_) | Payload::ZipEntry { .. } => None,
        }
    }
}

/// The inflated bytes of entry `index` of a zip archive.
fn inflate_entry(archive: &[u8], index: usize) -> Result<Vec<u8>> {
    inflate_entry_into(archive, index, Vec::new())
}

/// [`inflate_entry`] into `bytes` (emptied first; its memory is reused).
fn inflate_entry_into(archive: &[u8], index: usize, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive))?;
    let mut f = zip.by_index(index)?;
    bytes.clear();
    bytes.reserve(f.size().min(MAX_ZIP_ENTRY) as usize);
    f.read_to_end(&mut bytes).context("cannot decompress zip entry")?;
    Ok(bytes)
}

/// One file to ingest, named as the user would recognise it (`bills.zip!2026-11.csv` for a zip entry).
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub payload: Payload,
    pub size: u64,
}

/// A path that could not be opened or expanded; reported per input, never fatal for the others.
#[derive(Debug)]
pub struct Unreadable {
    pub name: String,
    pub reason: String,
}

impl Input {
    /// The same input with a file's bytes in memory, so that its digest and its parse read it once: read
    /// whole when it is at most `max` bytes, mapped when it is larger (a single bill can be gigabytes).
    /// A file that cannot be mapped (not a regular file) stays streamed.
    pub fn loaded(&self, max: u64) -> Result<std::borrow::Cow<'_, Input>> {
        self.loaded_into(max, Vec::new())
    }

    /// [`Input::loaded`] into `buf` (its memory reused: a parser reads hundreds of files of megabytes, and
    /// fresh memory for each is cleared page by page by the kernel). [`Input::give_back`] returns it.
    pub fn loaded_into(&self, max: u64, mut buf: Vec<u8>) -> Result<std::borrow::Cow<'_, Input>> {
        Ok(match &self.payload {
            Payload::ZipEntry { archive, index } => {
                let bytes = inflate_entry_into(archive, *index, buf)?;
                std::borrow::Cow::Owned(Input {
                    name: self.name.clone(),
                    size: bytes.len() as u64,
                    payload: Payload::Bytes(std::sync::Arc::new(bytes)),
                })
            }
            Payload::File(p) if self.size <= max => {
                buf.clear();
                buf.reserve(self.size as usize);
                File::open(p)
                    .and_then(|mut f| f.read_to_end(&mut buf))
                    .with_context(|| format!("reading {}", p.display()))?;
                let bytes = buf;
                std::borrow::Cow::Owned(Input {
                    name: self.name.clone(),
                    size: bytes.len() as u64,
                    payload: Payload::Bytes(std::sync::Arc::new(bytes)),
                })
            }
            Payload::File(p) => match Mapped::open(p, &self.name) {
                Ok(m) => std::borrow::Cow::Owned(Input {
                    name: self.name.clone(),
                    size: m.bytes().len() as u64,
                    payload: Payload::Mapped(std::sync::Arc::new(m)),
                }),
                Err(_) => std::borrow::Cow::Borrowed(self),
            },
            _ => std::borrow::Cow::Borrowed(self),
        })
    }

    /// Bytes `start..end` as stored have been read: a mapped file's pages there leave the process's memory.
    pub fn release(&self, start: u64, end: u64) {
        if let Payload::Mapped(m) = &self.payload {
            m.release(start as usize, end as usize);
        }
    }

    /// The memory of a loaded input, for the next [`Input::loaded_into`] (empty if it is still shared).
    pub fn give_back(loaded: std::borrow::Cow<'_, Input>) -> Vec<u8> {
        match loaded {
            std::borrow::Cow::Owned(Input {
                payload: Payload::Bytes(b),
                ..
            }) => std::sync::Arc::try_unwrap(b).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// A reader over the raw (possibly gzip-compressed) bytes.
    fn raw_reader(&self) -> Result<Box<dyn Read + Send + '_>> {
        Ok(match &self.payload {
            Payload::File(p) => Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?),
            Payload::Bytes(_) | Payload::Mapped(_) => Box::new(Cursor::new(self.payload.bytes().unwrap_or_default())),
            Payload::ZipEntry { archive, index } => Box::new(Cursor::new(inflate_entry(archive, *index)?)),
        })
    }

    /// A buffered reader over the content, gzip undone.
    pub fn reader(&self) -> Result<Box<dyn BufRead + Send + '_>> {
        // Bytes in memory are read where they are: a buffer of their own would copy every byte once more.
        if let Some(b) = self.payload.bytes() {
            if !b.starts_with(&GZIP_MAGIC) {
                return Ok(Box::new(Cursor::new(b)));
            }
        }
        let mut buf = BufReader::with_capacity(READ_BLOCK, self.raw_reader()?);
        let gz = buf.fill_buf()?.starts_with(&GZIP_MAGIC);
        Ok(if gz {
            Box::new(BufReader::with_capacity(
                READ_BLOCK,
                flate2::read::MultiGzDecoder::new(buf),
            ))
        } else {
            Box::new(buf)
        })
    }

    /// Whether the bytes as stored are gzip-compressed.
    pub fn is_gzip(&self) -> Result<bool> {
        Ok(self.raw_head(GZIP_MAGIC.len())? == GZIP_MAGIC)
    }

    /// The first `n` bytes as stored (gzip not undone).
    fn raw_head(&self, n: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        self.raw_reader()?.take(n as u64).read_to_end(&mut out)?;
        Ok(out)
    }

    /// A buffered reader over bytes `start..end` of a file as stored (one piece of a large bill).
    fn range_reader(&self, start: u64, end: u64) -> Result<Box<dyn BufRead + Send + '_>> {
        let p = match &self.payload {
            Payload::File(p) => p,
            Payload::Bytes(_) | Payload::Mapped(_) => {
                let range = self
                    .payload
                    .bytes()
                    .and_then(|b| b.get(start as usize..end as usize))
                    .context("a piece past the end of the input")?;
                return Ok(Box::new(Cursor::new(range)));
            }
            Payload::ZipEntry { .. } => anyhow::bail!("{}: a zip entry is read in pieces once inflated", self.name),
        };
        let mut f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))
            .with_context(|| format!("reading {}", p.display()))?;
        Ok(Box::new(BufReader::with_capacity(READ_BLOCK, f.take(end - start))))
    }

    /// The first `n` bytes of content (gzip undone), for detection.
    pub fn head(&self, n: usize) -> Result<Vec<u8>> {
        // The first bytes as stored, read alone: `reader` would fill its buffer (READ_BLOCK), and every file
        // of a folder is looked at this way before the parsers start. Only gzip is read through its decoder.
        if !matches!(self.payload, Payload::ZipEntry { .. }) {
            let mut out = self.raw_head(n.max(GZIP_MAGIC.len()))?;
            if !out.starts_with(&GZIP_MAGIC) {
                out.truncate(n);
                return Ok(out);
            }
        }
        let mut out = Vec::with_capacity(n);
        self.reader()?.take(n as u64).read_to_end(&mut out)?;
        Ok(out)
    }

    /// The whole content (gzip undone). For the small dialects (personal bills, xlsx, generic CSV).
    pub fn read_all(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader()?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The digest of the bytes as stored (identifies the file in the manifest); with their SHA-256 too if
    /// `with_sha256`.
    pub fn digest(&self, with_sha256: bool) -> Result<FileDigest> {
        let mut h = FileHasher::new(with_sha256);
        self.each_block(|_, block| {
            h.update(block);
            true
        })?;
        Ok(h.finish())
    }

    /// Calls `f` with the offset and bytes of each block of the input as stored, in order, until it returns
    /// `false`. Bytes in memory are handed over where they are; a file on disk is read a block at a time.
    fn each_block(&self, mut f: impl FnMut(u64, &[u8]) -> bool) -> Result<()> {
        if let Some(bytes) = self.payload.bytes() {
            let mut pos = 0;
            for block in bytes.chunks(MEMORY_BLOCK) {
                if !f(pos, block) {
                    break;
                }
                pos += block.len() as u64;
            }
            return Ok(());
        }
        let mut r = self.raw_reader()?;
        let mut buf = vec![0u8; READ_BLOCK];
        let mut pos = 0;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", self.name)),
            };
            if !f(pos, &buf[..n]) {
                return Ok(());
            }
            pos += n as u64;
        }
    }
}

/// The blocks of bytes in memory that [`Input::each_block`] hands over at a time.
const MEMORY_BLOCK: usize = 4 << 20;

/// The size of each read of a file streamed from disk. The kernel copies every byte read into this
/// buffer: one that stays in the core's cache takes that copy at about twice the speed of a 1 MiB one
/// (`dd` of the 2.4 GB benchmark bill from the page cache: 0.48 s in blocks of 128 KiB, 0.90 s in 1 MiB).
const READ_BLOCK: usize = 128 << 10;

/// The first bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Expands files, folders and zips into inputs, sorted by name within a folder. Hidden files, `~$` Office
/// lock files and the store itself are passed over.
pub fn collect_inputs(paths: &[PathBuf], skip_dir: Option<&Path>) -> (Vec<Input>, Vec<Unreadable>) {
    let mut inputs = Vec::new();
    let mut bad = Vec::new();
    for p in paths {
        collect_path(p, skip_dir, &mut inputs, &mut bad);
    }
    (inputs, bad)
}

fn collect_path(p: &Path, skip_dir: Option<&Path>, inputs: &mut Vec<Input>, bad: &mut Vec<Unreadable>) {
    let name = p.display().to_string();
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) => {
            return bad.push(Unreadable {
                name,
                reason: format!("cannot open: {e}"),
            })
        }
    };
    if meta.is_dir() {
        if skip_dir.is_some_and(|s| same_dir(p, s)) {
            return;
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(p) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                return bad.push(Unreadable {
                    name,
                    reason: format!("cannot list folder: {e}"),
                })
            }
        };
        entries.sort();
        for e in entries {
            let file_name = e
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            if file_name.starts_with('.') || file_name.starts_with("~$") {
                continue;
            }
            collect_path(&e, skip_dir, inputs, bad);
        }
        return;
    }
    let input = Input {
        name: name.clone(),
        payload: Payload::File(p.to_path_buf()),
        size: meta.len(),
    };
    match input.head(4) {
        Ok(h) if h.starts_with(b"PK\x03\x04") && !is_xlsx(&input) => expand_zip(&input, inputs, bad),
        Ok(_) => inputs.push(input),
        Err(e) => bad.push(Unreadable {
            name,
            reason: format!("cannot read: {e:#}"),
        }),
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// An OOXML workbook is a zip too; it is one input, not a container.
pub fn is_xlsx(input: &Input) -> bool {
    let Ok(r) = input.raw_reader() else {
        return false;
    };
    let mut bytes = Vec::new();
    if r.take(64 << 20).read_to_end(&mut bytes).is_err() {
        return false;
    }
    zip::ZipArchive::new(Cursor::new(bytes)).is_ok_and(|z| z.index_for_name("xl/workbook.xml").is_some())
}

/// The name of a zip entry: UTF-8 when it is, else GBK (Alipay's archives do not set the UTF-8 flag).
pub fn zip_entry_name(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::GB18030.decode_without_bom_handling(raw).0.into_owned(),
    }
}

fn expand_zip(zip_input: &Input, inputs: &mut Vec<Input>, bad: &mut Vec<Unreadable>) {
    let unreadable = |e: &dyn std::fmt::Display| Unreadable {
        name: zip_input.name.clone(),
        reason: format!("not a readable zip: {e:#}"),
    };
    let bytes = zip_input.raw_reader().and_then(|mut r| {
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)?;
        Ok(std::sync::Arc::new(bytes))
    });
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return bad.push(unreadable(&e)),
    };
    let mut archive = match zip::ZipArchive::new(Cursor::new(bytes.as_slice())) {
        Ok(a) => a,
        Err(e) => return bad.push(unreadable(&e)),
    };
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut f = match archive.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                bad.push(Unreadable {
                    name: format!("{}!#{i}", zip_input.name),
                    reason: format!("cannot read zip entry (password-protected zips must be unzipped first): {e}"),
                });
                continue;
            }
        };
        let entry = zip_entry_name(f.name_raw());
        let name = format!("{}!{entry}", zip_input.name);
        let base = entry.rsplit('/').next().unwrap_or(&entry);
        if f.is_dir() || base.starts_with('.') || entry.starts_with("__MACOSX") {
            continue;
        }
        if f.size() > MAX_ZIP_ENTRY {
            bad.push(Unreadable {
                name,
                reason: format!("zip entry of {} bytes is too large", f.size()),
            });
            continue;
        }
        // Only an entry's first bytes are inflated here (a zip inside the zip is expanded now); the rest
        // of it is inflated when it is parsed.
        let mut head = Vec::with_capacity(4);
        if let Err(e) = (&mut f).take(4).read_to_end(&mut head) {
            bad.push(Unreadable {
                name,
                reason: format!("cannot decompress zip entry: {e}"),
            });
            continue;
        }
        let size = f.size();
        drop(f);
        let entry = Input {
            name,
            size,
            payload: Payload::ZipEntry {
                archive: bytes.clone(),
                index: i,
            },
        };
        if head.starts_with(b"PK\x03\x04") {
            match entry.loaded(u64::MAX) {
                Ok(nested) => entries.push((nested.into_owned(), true)),
                Err(e) => bad.push(Unreadable {
                    name: entry.name.clone(),
                    reason: format!("{e:#}"),
                }),
            }
        } else {
            entries.push((entry, false));
        }
    }
    entries.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for (e, zip_like) in entries {
        if zip_like && !is_xlsx(&e) {
            expand_zip(&e, inputs, bad);
        } else {
            inputs.push(e);
        }
    }
}

/// Streams the lines of a text input, decoded, with 1-based line numbers. CR and a BOM are removed.
pub struct Lines<'a> {
    reader: Box<dyn BufRead + Send + 'a>,
    /// The bytes still to read, when they are in memory (read whole or mapped) and not compressed: lines
    /// are then found where the bytes are, and a UTF-8 line is handed out without a copy.
    in_memory: Option<&'a [u8]>,
    enc: TextEncoding,
    buf: Vec<u8>,
    pub line_no: u64,
    /// How many of the bytes still to read in memory are whole lines already checked to be UTF-8: they are
    /// checked a block of lines at a time (one call per block, not per line: about 1 % of a large bill's
    /// ingest).
    checked: usize,
}

impl<'a> Lines<'a> {
    pub fn new(input: &'a Input, enc: TextEncoding) -> Result<Self> {
        Ok(Lines {
            reader: input.reader()?,
            in_memory: input.payload.bytes().filter(|b| !b.starts_with(&GZIP_MAGIC)),
            enc,
            buf: Vec::with_capacity(4096),
            line_no: 0,
            checked: 0,
        })
    }

    /// The lines of one piece of a file, numbered as in the whole file.
    pub fn piece(input: &'a Input, enc: TextEncoding, piece: Piece) -> Result<Self> {
        Ok(Lines {
            reader: input.range_reader(piece.start, piece.end)?,
            in_memory: input
                .payload
                .bytes()
                .and_then(|b| b.get(piece.start as usize..piece.end as usize)),
            enc,
            buf: Vec::with_capacity(4096),
            line_no: piece.line0,
            checked: 0,
        })
    }

    /// The next line, or `None` at the end. A read error ends the file with an error.
    pub fn next_line(&mut self) -> Result<Option<String>> {
        let mut line = String::new();
        Ok(self.next_line_into(&mut line)?.then_some(line))
    }

    /// The next line decoded into `line` (its old content replaced, its allocation reused); `false` at the
    /// end. The large dialects read every line this way.
    pub fn next_line_into(&mut self, line: &mut String) -> Result<bool> {
        line.clear();
        if self.in_memory.is_some() {
            return Ok(self.next_in_memory().is_some_and(|bytes| {
                decode_into(bytes, self.enc, line);
                true
            }));
        }
        self.buf.clear();
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if avail.is_empty() {
                if self.buf.is_empty() {
                    return Ok(false);
                }
                break; // a last line without a newline
            }
            match memchr::memchr(b'\n', avail) {
                // The common case: the whole line is in the reader's buffer (or in memory) and is decoded
                // from there, not copied first.
                Some(i) if self.buf.is_empty() => {
                    decode_into(&avail[..i], self.enc, line);
                    self.reader.consume(i + 1);
                    self.line_no += 1;
                    return Ok(true);
                }
                Some(i) => {
                    self.buf.extend_from_slice(&avail[..i]);
                    self.reader.consume(i + 1);
                    break;
                }
                None => {
                    let n = avail.len();
                    self.buf.extend_from_slice(avail);
                    self.reader.consume(n);
                }
            }
        }
        self.line_no += 1;
        decode_into(&self.buf, self.enc, line);
        Ok(true)
    }
}

impl<'a> Lines<'a> {
    /// The next line, or `None` at the end: borrowed from the input where it is in memory and in UTF-8,
    /// else decoded into `scratch` (its old content replaced). The merchant bills, millions of lines, are
    /// read this way: a mapped bill's lines are not copied.
    pub fn next_line_in<'s>(&mut self, scratch: &'s mut String) -> Result<Option<&'s str>>
    where
        'a: 's,
    {
        if self.in_memory.is_some() && self.enc == TextEncoding::Utf8 {
            if self.checked == 0 {
                self.checked = self.in_memory.map_or(0, utf8_lines_ahead);
            }
            let Some((bytes, checked)) = self.next_in_memory_checked() else {
                return Ok(None);
            };
            // What `decode_into` takes off every line: a BOM and the CR of a CRLF (whole characters: what
            // is left of a UTF-8 line is UTF-8).
            let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(bytes);
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            if checked {
                // SAFETY: the line is among the bytes `utf8_lines_ahead` found to be UTF-8.
                return Ok(Some(unsafe { std::str::from_utf8_unchecked(bytes) }));
            }
            if let Ok(s) = simdutf8::basic::from_utf8(bytes) {
                return Ok(Some(s));
            }
            scratch.clear();
            decode_into(bytes, self.enc, scratch);
            return Ok(Some(scratch.as_str()));
        }
        Ok(self.next_line_into(scratch)?.then_some(scratch.as_str()))
    }

    /// The bytes of the next line in memory (without its `\n`), or `None` at the end.
    fn next_in_memory(&mut self) -> Option<&'a [u8]> {
        self.next_in_memory_checked().map(|(line, _)| line)
    }

    /// [`Self::next_in_memory`], and whether the line is among the bytes already checked to be UTF-8.
    fn next_in_memory_checked(&mut self) -> Option<(&'a [u8], bool)> {
        let rest = self.in_memory.filter(|r| !r.is_empty())?;
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let taken = rest.len() - next.len();
        let checked = taken <= self.checked;
        self.checked = self.checked.saturating_sub(taken);
        self.in_memory = Some(next);
        self.line_no += 1;
        Some((line, checked))
    }
}

/// Lines checked for UTF-8 at a time: [`utf8_lines_ahead`] looks at this many bytes (a few hundred lines).
const UTF8_BLOCK: usize = 64 * 1024;

/// How many bytes at the start of `rest` are whole lines of UTF-8 (up to and with a `\n`, or all of
/// `rest`), looking at most `UTF8_BLOCK` bytes ahead: 0 where the first line is not UTF-8 or is longer
/// than that (such a line is checked on its own). A valid prefix that ends just after a `\n` (ASCII) is
/// valid line by line.
fn utf8_lines_ahead(rest: &[u8]) -> usize {
    let window = if rest.len() <= UTF8_BLOCK {
        rest
    } else {
        let end = memchr::memrchr(b'\n', &rest[..UTF8_BLOCK]).map_or(0, |i| i + 1);
        &rest[..end]
    };
    match simdutf8::compat::from_utf8(window) {
        Ok(_) => window.len(),
        Err(e) => memchr::memrchr(b'\n', &window[..e.valid_up_to()]).map_or(0, |i| i + 1),
    }
}

/// The lines of a whole input, or of one piece of it with the header its rows need: for a piece after the
/// first, `header` is asked of each line ahead of the piece, from the start, until it gives one.
pub fn piece_lines<'a, H>(
    input: &'a Input,
    enc: TextEncoding,
    piece: Option<Piece>,
    mut header: impl FnMut(&str, u64) -> Result<Option<H>>,
    no_header: &str,
) -> Result<(Lines<'a>, Option<H>)> {
    let p = match piece {
        None => return Ok((Lines::new(input, enc)?, None)),
        Some(p) if p.start == 0 => return Ok((Lines::piece(input, enc, p)?, None)),
        Some(p) => p,
    };
    let mut lines = Lines::new(input, enc)?;
    let mut line = String::new();
    while lines.line_no < p.line0 && lines.next_line_into(&mut line)? {
        if let Some(h) = header(&line, lines.line_no)? {
            return Ok((Lines::piece(input, enc, p)?, Some(h)));
        }
    }
    anyhow::bail!("{no_header}")
}

/// Whole lines `start..end` of a large file, after its first `line0` lines: the unit a large bill is
/// parsed in on more than one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub index: usize,
    pub start: u64,
    pub end: u64,
    pub line0: u64,
}

/// No cut leaves fewer bytes than this after it: a bill's closing summary (a few hundred bytes) stays in
/// one piece with its last rows.
const PIECE_TAIL: u64 = 64 * 1024;

/// Where a large file is cut: a piece ends at its `lines`-th line end, or at the first line end at or past
/// `bytes` bytes into it if that comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub bytes: u64,
    pub lines: u64,
}

/// The bytes hashed and cut at a time: well inside a core's L2 cache.
const CUT_PART: usize = 256 << 10;

/// The line ends (`\n` bytes) in `bytes`, counted 32 bytes at a time.
fn line_ends(bytes: &[u8]) -> u64 {
    bytecount::count(bytes, b'\n') as u64
}

/// Where the `n`-th line end (`n` >= 1) of `bytes` is, or how many there are if fewer. Line ends are
/// counted a few KiB at a time and only the few KiB that hold the `n`-th are searched one by one (one
/// search per line was 4 % of a 10M-row bill's ingest).
fn nth_line_end(bytes: &[u8], n: u64) -> Result<usize, u64> {
    const STRETCH: usize = 4096;
    let mut seen = 0;
    for (k, stretch) in bytes.chunks(STRETCH).enumerate() {
        let here = line_ends(stretch);
        if seen + here >= n {
            let nth = (n.max(seen + 1) - seen - 1) as usize;
            if let Some(i) = memchr::memchr_iter(b'\n', stretch).nth(nth) {
                return Ok(k * STRETCH + i);
            }
        }
        seen += here;
    }
    Err(seen)
}

/// Reads a file once as stored, returning its digest (with its SHA-256 if `with_sha256`) and cutting it
/// at line ends into pieces (see [`Cut`]), each handed to `on_piece` as soon as it has been read (so it
/// can be parsed while the rest is read). The pieces cover the file in order; the last ends where the file
/// does. In both encodings read here (UTF-8, GB18030) a `\n` byte is always a line end, never part of a
/// character. `on_piece` returns `false` to stop: the digest is then not needed (`None`).
pub fn digest_and_cut(
    input: &Input,
    cut: Cut,
    with_sha256: bool,
    mut on_piece: impl FnMut(Piece) -> bool,
) -> Result<Option<FileDigest>> {
    let (piece_bytes, piece_lines) = (cut.bytes.max(1), cut.lines.max(1));
    let mut h = FileHasher::new(with_sha256);
    // Line ends before `piece`'s start, and in it up to where the current block has been counted.
    let mut lines = 0u64;
    let mut piece = Piece {
        index: 0,
        start: 0,
        end: 0,
        line0: 0,
    };
    let mut end = 0;
    let mut stopped = false;
    input.each_block(|block_pos, block| {
        // Hashed and cut a part at a time, so that the cut reads what the hash has just brought into the
        // core's cache.
        for (k, part) in block.chunks(CUT_PART).enumerate() {
            let pos = block_pos + (k * CUT_PART) as u64;
            h.update(part);
            end = pos + part.len() as u64;
            let mut counted = 0; // the line ends of part[..counted] are in `lines`
            loop {
                // The piece's last line end in this part: its `piece_lines`-th, or the first at or past its
                // `piece_bytes`-th byte, whichever comes first.
                let left = piece_lines.saturating_sub(lines - piece.line0).max(1);
                let by_lines = nth_line_end(&part[counted..], left);
                let by_bytes = if piece.start + piece_bytes <= end {
                    let from = ((piece.start + piece_bytes).saturating_sub(1).max(pos) - pos) as usize;
                    memchr::memchr(b'\n', &part[from.max(counted)..]).map(|i| from.max(counted) + i)
                } else {
                    None
                };
                let by_lines_at = by_lines.ok().map(|i| counted + i);
                let cut_at = by_lines_at
                    .into_iter()
                    .chain(by_bytes)
                    .min()
                    .filter(|&i| input.size.saturating_sub(pos + i as u64 + 1) >= PIECE_TAIL);
                let Some(i) = cut_at else {
                    // The piece goes on into the next part.
                    lines += match by_lines {
                        Err(all) => all,
                        Ok(_) => line_ends(&part[counted..]),
                    };
                    break;
                };
                let at = pos + i as u64 + 1;
                // Cut by lines, the line ends up to it were just counted; by bytes, they are counted now.
                lines += if by_lines_at == Some(i) {
                    left
                } else {
                    line_ends(&part[counted..=i])
                };
                counted = i + 1;
                piece.end = at;
                if !on_piece(piece) {
                    stopped = true;
                    return false;
                }
                piece = Piece {
                    index: piece.index + 1,
                    start: at,
                    end: 0,
                    line0: lines,
                };
            }
        }
        // Done with the block: the pieces are parsed from the file again, so a mapped file's pages need not
        // stay in the process meanwhile. (A file parsed whole keeps them: its parse reads every page next.)
        input.release(block_pos, end);
        true
    })?;
    if stopped {
        return Ok(None);
    }
    piece.end = end;
    if (piece.end > piece.start || piece.index == 0) && !on_piece(piece) {
        return Ok(None);
    }
    Ok(Some(h.finish()))
}

/// The first lines of an input, decoded, for detection; with the encoding found.
pub fn sniff(input: &Input, max_lines: usize) -> Result<(TextEncoding, Vec<String>)> {
    let head = input.head(64 * 1024)?;
    let enc = sniff_encoding(&head);
    let text = decode(&head, enc);
    let lines = text
        .lines()
        .take(max_lines)
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    Ok((enc, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest of `bytes` by each crate's one-call function, with its SHA-256.
    fn digest_of(bytes: &[u8]) -> FileDigest {
        FileDigest {
            blake3: blake3::hash(bytes).to_hex().to_string(),
            sha256: Some(hex::encode(Sha256::digest(bytes))),
        }
    }

    /// The digests of nothing and of `abc` are the published ones (BLAKE3's test vectors, FIPS 180-2).
    #[test]
    fn digests_are_blake3_and_sha256() {
        let nothing = Input {
            name: "empty".into(),
            payload: Payload::Bytes(std::sync::Arc::new(Vec::new())),
            size: 0,
        };
        let d = nothing.digest(true).expect("digest");
        assert_eq!(
            d.blake3,
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(
            d.sha256.as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        let abc = Input {
            name: "abc".into(),
            payload: Payload::Bytes(std::sync::Arc::new(b"abc".to_vec())),
            size: 3,
        };
        let d = abc.digest(false).expect("digest");
        assert_eq!(
            d.blake3,
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(d.sha256, None);
    }

    fn zip_of(entries: &[(&str, &[u8], zip::CompressionMethod)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes, method) in entries {
            let options = zip::write::SimpleFileOptions::default().compression_method(*method);
            w.start_file(*name, options).expect("entry");
            std::io::Write::write_all(&mut w, bytes).expect("written");
        }
        w.finish().expect("zip").into_inner()
    }

    /// Zip entries are listed with their sizes but inflated only when read (the parser's thread does it),
    /// a zip inside the zip is expanded at once, and every way of reading an entry gives its bytes.
    #[test]
    fn zip_entries_are_inflated_when_read() {
        let (a, b): (Vec<u8>, Vec<u8>) = (
            (0..200_000u32).flat_map(|i| format!("a,{i}\n").into_bytes()).collect(),
            "交易时间,金额\nb,1\n".as_bytes().to_vec(),
        );
        let inner = zip_of(&[("a.csv", &a, zip::CompressionMethod::Deflated)]);
        let outer = zip_of(&[
            ("b.csv", &b, zip::CompressionMethod::Deflated),
            ("inner.zip", &inner, zip::CompressionMethod::Stored),
            ("__MACOSX/._b.csv", b"junk", zip::CompressionMethod::Stored),
        ]);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outer.zip");
        std::fs::write(&path, &outer).expect("write");
        let (inputs, bad) = collect_inputs(std::slice::from_ref(&path), None);
        assert!(bad.is_empty(), "{bad:?}");
        let names: Vec<String> = inputs
            .iter()
            .map(|i| i.name.rsplit('/').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(names, ["outer.zip!b.csv", "outer.zip!inner.zip!a.csv"]);
        for (input, want) in inputs.iter().zip([&b, &a]) {
            assert!(matches!(input.payload, Payload::ZipEntry { .. }), "{}", input.name);
            assert_eq!(input.size, want.len() as u64);
            assert_eq!(&input.read_all().expect("read"), want);
            assert_eq!(input.head(4).expect("head"), want[..4]);
            let loaded = input.loaded(0).expect("inflated");
            assert!(matches!(loaded.payload, Payload::Bytes(_)));
            assert_eq!(&loaded.read_all().expect("read"), want);
            assert_eq!(input.digest(true).expect("digest"), digest_of(want));
            assert_eq!(loaded.digest(true).expect("digest"), digest_of(want));
        }
    }

    /// The head of a file is its first bytes, of a gzip file the first bytes inflated, for any length
    /// asked (shorter than the magic number, longer than the file).
    #[test]
    fn the_head_of_a_file_is_its_content_gzip_undone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let content: Vec<u8> = (0..100_000u32).flat_map(|i| format!("{i},x\n").into_bytes()).collect();
        let plain = dir.path().join("bill.csv");
        std::fs::write(&plain, &content).expect("write");
        let gz = dir.path().join("bill.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &content).expect("gzip");
        std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
        for path in [&plain, &gz] {
            let input = Input {
                name: path.display().to_string(),
                payload: Payload::File(path.clone()),
                size: std::fs::metadata(path).expect("meta").len(),
            };
            for n in [0, 1, 2, 4, 8, 65_536, 10 << 20] {
                assert_eq!(
                    input.head(n).expect("head"),
                    content[..n.min(content.len())],
                    "{path:?} {n}"
                );
            }
        }
    }

    /// Pieces cover the file in order, end at line ends, carry the lines before them, leave the last
    /// PIECE_TAIL bytes whole, and the digest is the file's; for pieces smaller and larger than a block
    /// and lines longer than a piece; for the file read from disk and mapped (past a block in memory).
    #[test]
    fn a_file_is_cut_at_line_ends_into_numbered_pieces() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bill.csv");
        let mut content = Vec::new();
        for i in 0..60_000u32 {
            let len = if i % 5000 == 7 { 200_000 } else { (i % 97) as usize };
            content.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
            content.extend_from_slice(if i % 2 == 0 { b"\r\n" } else { b"\n" });
        }
        content.extend_from_slice(b"last line without an end");
        std::fs::write(&path, &content).expect("write");
        assert!(content.len() > MEMORY_BLOCK);
        let on_disk = Input {
            name: "bill.csv".into(),
            payload: Payload::File(path),
            size: content.len() as u64,
        };
        let mapped = on_disk.loaded(0).expect("mapped").into_owned();
        assert!(matches!(mapped.payload, Payload::Mapped(_)));
        let by_bytes = [1, 4096, 100_000, 3 << 20, 1 << 40].map(|b| (b, u64::MAX));
        let by_lines = [
            (1 << 40, 1),
            (1 << 40, 1000),
            (1 << 40, 25_000),
            (100_000, 1000),
            (4096, 40),
        ];
        for (input, (piece_bytes, piece_lines)) in [&on_disk, &mapped]
            .into_iter()
            .flat_map(|i| by_bytes.into_iter().chain(by_lines).map(move |c| (i, c)))
        {
            let mut pieces = Vec::new();
            // The SHA-256 is asked for on every other size of piece.
            let with_sha256 = piece_bytes % 2 == 0;
            let cut = Cut {
                bytes: piece_bytes,
                lines: piece_lines,
            };
            let digest = digest_and_cut(input, cut, with_sha256, |p| {
                pieces.push(p);
                true
            })
            .expect("read");
            let mut want = digest_of(&content);
            if !with_sha256 {
                want.sha256 = None;
            }
            assert_eq!(digest, Some(want));
            assert_eq!(pieces[0].start, 0);
            assert_eq!(pieces.last().map(|p| p.end), Some(content.len() as u64));
            for (i, p) in pieces.iter().enumerate() {
                assert_eq!(p.index, i);
                let (start, end) = (p.start as usize, p.end as usize);
                assert!(end > start, "{p:?}");
                let newlines = memchr::memchr_iter(b'\n', &content[..start]).count() as u64;
                assert_eq!(p.line0, newlines, "{p:?}");
                if i + 1 < pieces.len() {
                    assert_eq!(pieces[i + 1].start, p.end);
                    assert_eq!(content[end - 1], b'\n');
                    assert!(content.len() - end >= PIECE_TAIL as usize);
                    // Cut at its `piece_lines`-th line end, or at the first one past `piece_bytes` bytes,
                    // whichever came first.
                    let lines = memchr::memchr_iter(b'\n', &content[start..end]).count() as u64;
                    assert!(lines <= piece_lines, "{p:?}: {lines} lines");
                    if lines < piece_lines {
                        assert!(end - start >= piece_bytes as usize, "{p:?}");
                    }
                    let first_by_bytes = (start + piece_bytes as usize - 1).min(end - 1);
                    assert!(!content[first_by_bytes..end - 1].contains(&b'\n'), "{p:?}");
                }
            }
            let expected = match (piece_bytes, piece_lines) {
                (1, _) | (_, 1) => 55_000, // about one a line, but for the lines in the tail (64 KiB of ~50 bytes)
                (4096, _) => content.len() / 4096 / 2,
                (_, 1000) => 50,
                _ => 1,
            };
            assert!(pieces.len() >= expected, "{cut:?}: {} pieces", pieces.len());
        }
        // Stopped part-way: no digest.
        for input in [&on_disk, &mapped] {
            let mut n = 0;
            assert_eq!(
                digest_and_cut(
                    input,
                    Cut {
                        bytes: 4096,
                        lines: u64::MAX
                    },
                    false,
                    |_| {
                        n += 1;
                        n < 3
                    }
                )
                .expect("read"),
                None
            );
        }
    }

    /// Cutting a mapped file into pieces leaves none of its pages in the process (they stay in the page
    /// cache): a 2.4 GB bill would otherwise add its size to the resident memory.
    #[cfg(target_os = "linux")]
    #[test]
    fn cutting_a_mapped_file_leaves_its_pages_out_of_the_process() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bill.csv");
        let content: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("{i:>39}\n").into_bytes())
            .collect();
        std::fs::write(&path, &content).expect("write");
        let input = Input {
            name: "bill.csv".into(),
            payload: Payload::File(path),
            size: content.len() as u64,
        };
        let mapped = input.loaded(0).expect("mapped");
        let Payload::Mapped(m) = &mapped.payload else {
            panic!("not mapped")
        };
        // Resident KiB of the mapping, from its entry in /proc/self/smaps.
        let rss = || {
            let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
            let head = format!("{:x}-", m.bytes().as_ptr() as usize);
            let entry = smaps.split_once(&format!("\n{head}")).expect("the mapping is listed").1;
            let line = entry.lines().find(|l| l.starts_with("Rss:")).expect("Rss line");
            line.split_whitespace()
                .nth(1)
                .expect("a number")
                .parse::<u64>()
                .expect("KiB")
        };
        assert_eq!(mapped.digest(false).expect("digest").blake3, digest_of(&content).blake3);
        assert!(rss() > 8 << 10, "a whole read keeps the pages: {} KiB", rss());
        let mut pieces = 0;
        digest_and_cut(
            &mapped,
            Cut {
                bytes: 1 << 20,
                lines: u64::MAX,
            },
            false,
            |_| {
                pieces += 1;
                true
            },
        )
        .expect("read");
        assert!(pieces > 10);
        assert!(rss() <= 8, "{} KiB still resident", rss());
    }

    /// Lines read where the bytes are in memory (borrowed, or decoded into a scratch line) are the lines
    /// a streamed read decodes: with a BOM, CRLF, empty lines, bytes that are not UTF-8, a last line
    /// without its newline, in UTF-8 and in GB18030, whole and in a piece.
    #[test]
    fn lines_in_memory_are_the_streamed_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut content = b"\xEF\xBB\xBFh1,h2\r\n`a,\xE6\x8B\xBF\r\n\r\n\n`b,\xFF\xFEx\r\n".to_vec();
        content.extend(b"\xC4\xC3,last");
        let streamed = bill_file(&dir, &content);
        let loaded = streamed.loaded(u64::MAX).expect("read");
        assert!(matches!(loaded.payload, Payload::Bytes(_)));
        let piece = Piece {
            index: 1,
            start: 10, // after the BOM and the header line
            end: content.len() as u64,
            line0: 1,
        };
        for enc in [TextEncoding::Utf8, TextEncoding::Gb18030] {
            let read = |input: &Input, piece: Option<Piece>, borrowed: bool| {
                let mut lines = match piece {
                    Some(p) => Lines::piece(input, enc, p).expect("lines"),
                    None => Lines::new(input, enc).expect("lines"),
                };
                let mut out = Vec::new();
                let mut scratch = String::new();
                loop {
                    let line = if borrowed {
                        lines.next_line_in(&mut scratch).expect("read").map(str::to_string)
                    } else {
                        lines.next_line().expect("read")
                    };
                    let Some(line) = line else { break };
                    out.push((lines.line_no, line));
                }
                out
            };
            for piece in [None, Some(piece)] {
                let want = read(&streamed, piece, false);
                assert_eq!(want.len(), if piece.is_some() { 5 } else { 6 }, "{want:?}");
                assert_eq!(read(&loaded, piece, true), want, "{enc:?} {piece:?}");
                assert_eq!(read(&loaded, piece, false), want, "{enc:?} {piece:?}");
                assert_eq!(read(&streamed, piece, true), want, "{enc:?} {piece:?}");
            }
        }
    }

    /// `content` written as `bill.csv` in `dir`, as an input read from its file.
    fn bill_file(dir: &tempfile::TempDir, content: &[u8]) -> Input {
        let path = dir.path().join("bill.csv");
        std::fs::write(&path, content).expect("write");
        Input {
            name: "bill.csv".into(),
            payload: Payload::File(path),
            size: content.len() as u64,
        }
    }

    /// Lines checked for UTF-8 a block at a time are the lines a streamed read decodes: over many blocks,
    /// with bytes that are not UTF-8 here and there (a character cut at a block's end among them), a line
    /// longer than a block, and borrowed reads mixed with owned ones on the same lines.
    #[test]
    fn lines_checked_by_blocks_are_the_streamed_lines() {
        let mut next = crate::analytics::testing::pseudo_random(5);
        let mut content = Vec::new();
        for n in 0..12000u32 {
            content.extend(format!("`{n},拿铁,`0.{}", n % 100).as_bytes());
            if n == 1000 {
                content.extend("燕麦".repeat(UTF8_BLOCK / 3).as_bytes());
            }
            match next(40) {
                0 => content.push(0xFF),
                1 => content.extend(&"铁".as_bytes()[..2]),
                _ => {}
            }
            content.extend(if n % 7 == 0 { &b"\r\n"[..] } else { &b"\n"[..] });
        }
        assert!(content.len() > 4 * UTF8_BLOCK);
        let dir = tempfile::tempdir().expect("temp dir");
        let streamed = bill_file(&dir, &content);
        let loaded = streamed.loaded(u64::MAX).expect("read");
        let mut want = Vec::new();
        let mut lines = Lines::new(&streamed, TextEncoding::Utf8).expect("lines");
        while let Some(line) = lines.next_line().expect("read") {
            want.push(line);
        }
        assert_eq!(want.len(), 12000);
        assert!(want.iter().any(|l| l.contains('\u{FFFD}')));
        let mut got = Vec::new();
        let mut lines = Lines::new(&loaded, TextEncoding::Utf8).expect("lines");
        let mut scratch = String::new();
        loop {
            let line = if next(5) == 0 {
                lines.next_line().expect("read")
            } else {
                lines.next_line_in(&mut scratch).expect("read").map(str::to_string)
            };
            let Some(line) = line else { break };
            got.push(line);
        }
        assert_eq!(got, want);
    }

    /// A file read whole, a file mapped and a file streamed have the same digest and the same content.
    #[test]
    fn loaded_file_is_the_streamed_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bill.csv");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).expect("write");
        let streamed = Input {
            name: "bill.csv".into(),
            payload: Payload::File(path.clone()),
            size: content.len() as u64,
        };
        let loaded = streamed.loaded(u64::MAX).expect("read");
        assert!(matches!(loaded.payload, Payload::Bytes(_)));
        let mapped = streamed.loaded(10).expect("mapped");
        assert!(matches!(mapped.payload, Payload::Mapped(_)));
        let sha = digest_of(&content);
        for input in [&streamed, &*loaded, &*mapped] {
            assert_eq!(input.digest(true).expect("digest"), sha);
            assert_eq!(input.read_all().expect("bytes"), content);
        }
        // Released pages are read again from the file: the same bytes, twice over.
        mapped.release(0, content.len() as u64);
        mapped.release(4095, 1_000_001);
        assert_eq!(mapped.read_all().expect("bytes"), content);
        assert_eq!(mapped.digest(true).expect("digest"), sha);
        // What cannot be mapped (here a folder) stays as it is, to be streamed.
        let folder = Input {
            name: "folder".into(),
            payload: Payload::File(dir.path().to_path_buf()),
            size: 10,
        };
        assert!(matches!(folder.loaded(0).expect("kept").payload, Payload::File(_)));
    }
}
