//! Input files (all but the smallest) mapped into memory read-only, so that their digest and their parse
//! read the bytes where the kernel's page cache holds them. Read with `read(2)`, every byte of a 2.4 GB
//! bill was copied out of the page cache twice (once for the digest, once for the parse): 8-10 % of the
//! 10M-row bill's ingest (`_copy_to_iter` in `perf`), and a file read whole first went into fresh memory
//! the kernel cleared page by page.
//!
//! A mapped file that another program truncates while it is read makes the reading thread fault (SIGBUS)
//! where a `read` would have returned fewer bytes. For that case a handler prints which file it was and
//! ends the process (exit code 1). Nothing half-written stays in the store: commits are atomic, and parts
//! that no manifest names are removed when a writer next opens it. A fault outside every mapped file is
//! left to the handler that was there before (Rust's, or the default action).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use anyhow::{Context, Result};

/// A file mapped read-only.
pub struct Mapped {
    map: memmap2::Mmap,
    /// Its slot in [`MAPPED`], for the SIGBUS handler.
    slot: Option<usize>,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapped({} bytes)", self.map.len())
    }
}

impl Mapped {
    /// Maps the file at `path`; `name` is how the user knows it (for the message if it is cut short).
    pub fn open(path: &Path, name: &str) -> Result<Mapped> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: the mapping is only read. Another process truncating the file while it is read would
        // fault the reader: the handler installed here reports that and ends the process (see above).
        // Changed in place, the bytes read could differ from the bytes digested, as with two `read`s.
        let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::Sequential);
        let message = crate::tr!("ingest.file_cut_short", file = name);
        let slot = register(map.as_ptr() as usize, map.len(), message);
        Ok(Mapped { map, slot })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Bytes `start..end` have been read: their pages leave this process's memory (they stay in the page
    /// cache, and a later read maps them again). Without it, a 2.4 GB bill read through once counted 2.4 GB
    /// more in the process's resident memory.
    pub fn release(&self, start: usize, end: usize) {
        #[cfg(target_os = "linux")]
        {
            let page = page_size();
            let base = self.map.as_ptr() as usize;
            // Whole pages inside the range only: the pages at its ends may hold bytes still to be read.
            let from = (base + start).next_multiple_of(page) - base;
            let to = ((base + end.min(self.map.len())) / page * page).saturating_sub(base);
            if to > from {
                // SAFETY: the mapping is read-only and shared with the file: a page dropped from it is read
                // again from the file (the page cache) when it is next touched, with the same bytes.
                let _ = unsafe {
                    self.map
                        .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
                };
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (start, end);
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            unregister(i);
        }
    }
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// The files mapped now: their address ranges and the message that names each, for the SIGBUS handler.
/// A slot is free when its `end` is 0. More files than slots are mapped without a message of their own.
struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    message: AtomicPtr<Vec<u8>>,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    message: AtomicPtr::new(std::ptr::null_mut()),
};

static MAPPED: [Slot; 16] = [FREE; 16];

fn register(start: usize, len: usize, message: String) -> Option<usize> {
    install_handler();
    let message = Box::into_raw(Box::new(
        format!("{}\n", crate::tr!("error.prefix", error = message)).into_bytes(),
    ));
    for (i, s) in MAPPED.iter().enumerate() {
        // Claimed by setting `end` from 0 to a placeholder; the range is published last.
        if s.end
            .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            s.message.store(message, Ordering::Release);
            s.start.store(start, Ordering::Release);
            s.end.store(start + len.max(1), Ordering::Release);
            return Some(i);
        }
    }
    // SAFETY: made by Box::into_raw above and not published.
    drop(unsafe { Box::from_raw(message) });
    None
}

fn unregister(i: usize) {
    let s = &MAPPED[i];
    s.start.store(0, Ordering::Release);
    let message = s.message.swap(std::ptr::null_mut(), Ordering::AcqRel);
    s.end.store(0, Ordering::Release);
    if !message.is_null() {
        // SAFETY: made by Box::into_raw in `register`, and taken out of the slot here once.
        drop(unsafe { Box::from_raw(message) });
    }
}

#[cfg(target_os = "linux")]
fn install_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid value to fill; the handler only reads atomics, writes to
        // stderr and exits, all async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0 {
                let _ = PREVIOUS.set(previous);
            }
        }
    });
}

/// The SIGBUS action before ours (Rust's own handler, or the default), for faults outside mapped inputs.
#[cfg(target_os = "linux")]
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

#[cfg(not(target_os = "linux"))]
fn install_handler() {}

#[cfg(target_os = "linux")]
extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; the message pointers are
    // Box<Vec<u8>>s published by `register`.
    unsafe {
        let addr = (*info).si_addr() as usize;
        for s in &MAPPED {
            let (start, end) = (s.start.load(Ordering::Acquire), s.end.load(Ordering::Acquire));
            if start != 0 && (start..end).contains(&addr) {
                if let Some(m) = s.message.load(Ordering::Acquire).as_ref() {
                    libc::write(2, m.as_ptr().cast(), m.len());
                }
                libc::_exit(1);
            }
        }
        // Not a mapped input: the action before ours takes the fault when it happens again on return.
        if let Some(previous) = PREVIOUS.get() {
            libc::sigaction(libc::SIGBUS, previous, std::ptr::null_mut());
        } else {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    const CHILD: &str = "PAYLENS_TEST_MAPPED_CHILD";

    /// The child's side of the test below: maps a file, cuts it short as another program would, and
    /// reads past the new end: through the input's mapping, or (`other`) through one that is not an input.
    fn read_after_the_file_is_cut_short(dir: &str, other: bool) {
        let path = Path::new(dir).join("bill.csv");
        let input = Mapped::open(&path, "bill.csv").expect("mapped");
        // SAFETY: the test's own file, truncated below on purpose.
        let plain = unsafe { memmap2::Mmap::map(&File::open(&path).expect("opened")) }.expect("mapped");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(0))
            .expect("truncated");
        let bytes: &[u8] = if other { &plain } else { input.bytes() };
        let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
        println!("read {sum} without a fault");
    }

    /// A mapped file cut short by another program while it is read ends the process with exit code 1
    /// and a message naming the file, not a crash. A fault in a mapping that is not an input still ends
    /// the process by the signal, as it did before the handler.
    #[test]
    fn a_file_cut_short_while_it_is_read_is_named() {
        if let Ok(child) = std::env::var(CHILD) {
            let (mode, dir) = child.split_once(':').expect("mode:dir");
            return read_after_the_file_is_cut_short(dir, mode == "other");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let run = |mode: &str| {
            std::fs::write(dir.path().join("bill.csv"), vec![b'x'; 1 << 20]).expect("write");
            std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--exact",
                    "ingest::mapped::tests::a_file_cut_short_while_it_is_read_is_named",
                ])
                .arg("--nocapture")
                .env(CHILD, format!("{mode}:{}", dir.path().display()))
                .output()
                .expect("child ran")
        };
        let out = run("input");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("bill.csv was changed or cut short"), "{stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("without a fault"));

        let out = run("other");
        let stderr = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{stderr}");
        assert!(!stderr.contains("cut short"), "{stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("without a fault"));
    }

    /// Slots are taken and given back: more files than slots are still mapped (without a message).
    #[test]
    fn slots_are_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.csv");
        std::fs::write(&path, b"a,b\n1,2\n").expect("write");
        let held: Vec<Mapped> = (0..MAPPED.len() + 3)
            .map(|_| Mapped::open(&path, "a.csv").expect("mapped"))
            .collect();
        assert!(held.iter().filter(|m| m.slot.is_none()).count() >= 3);
        assert!(held.iter().all(|m| m.bytes() == b"a,b\n1,2\n"));
        drop(held);
        let again = Mapped::open(&path, "a.csv").expect("mapped");
        assert!(again.slot.is_some());
    }
}
