//! Thin entry point: parse arguments, call `paylens::run`, print the error chain, map it to an exit code
//! (0 ok, 1 bad input, usage or user error, 2 unexpected). A closed stdout pipe exits 0 quietly.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: ingest and the analytics allocate many small strings; glibc malloc spent a quarter of the
/// ingest time in allocation (perf, 1M-row benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    keep_freed_memory();
    let cli = match paylens::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; a usage mistake is the user's (exit 1).
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match paylens::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if err.chain().any(is_broken_pipe) {
                return ExitCode::SUCCESS;
            }
            eprintln!("{}", paylens::tr!("error.prefix", error = format!("{err:#}")));
            if err.chain().any(|c| c.is::<paylens::UserError>()) {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

// mimalloc's C API (mimalloc.h), for the two settings below.
extern "C" {
    fn mi_version() -> std::ffi::c_int;
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_option_is_enabled(option: std::ffi::c_int) -> bool;
}

/// mimalloc asks for transparent huge pages on its arenas: every first touch then faults in and clears 2
/// MiB, and memory handed back and taken again is cleared again. With them off for this process, 10M-row
/// ingest spent a quarter of the system time it did (perf: `clear_page_erms` was 30 % of the samples).
/// Where the kernel can (Linux 6.18 on), huge pages stay allowed for memory that asks for them with
/// `madvise`, which mimalloc is told not to do: the ingest's key cache asks, a table read at random by
/// every row (see `ingest::model::KeyCache`).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // prctl's PR_THP_DISABLE_EXCEPT_ADVISED, and `mi_option_allow_thp` of mimalloc.h's `mi_option_e`: 37
        // in the v2.3 sources the mimalloc crate builds by default, 43 in v3.3 (its default 1 is checked
        // first).
        const PR_THP_DISABLE_EXCEPT_ADVISED: libc::c_ulong = 1 << 1;
        // SAFETY: prctl with PR_SET_THP_DISABLE and mimalloc's calls take plain integers and touch no memory
        // of ours.
        unsafe {
            let allow_thp = match mi_version() {
                20300..=20399 => Some(37),
                30300..=30399 => Some(43),
                _ => None,
            };
            if let Some(allow_thp) = allow_thp.filter(|&o| mi_option_is_enabled(o)) {
                mi_option_set(allow_thp, 0);
                if libc::prctl(libc::PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) == 0 {
                    unadvise_huge_pages();
                    return;
                }
            }
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Takes the huge-page advice back from the memory that has it now: mimalloc's first arena (1 GiB),
/// reserved and advised before `main` ran (with it, the 1M-row ingest's peak grew from 0.9 to 1.7 GB).
/// Regions are found by the `hg` flag in /proc/self/smaps.
#[cfg(target_os = "linux")]
fn unadvise_huge_pages() {
    for (range, flags) in paylens::slots::mappings() {
        if flags.iter().any(|f| f == "hg") {
            // SAFETY: madvise only changes the paging advice of a mapping the kernel listed as ours.
            unsafe {
                libc::madvise(range.start as *mut libc::c_void, range.len(), libc::MADV_NOHUGEPAGE);
            }
        }
    }
}

/// Ingest frees each parsed file's columns once they are staged and allocates the next file's, and the
/// report allocates and frees frame after frame: with mimalloc's default of handing freed memory back to
/// the kernel after a second, the memory was faulted in and cleared again and again, which costs a lot on
/// this (virtual) machine. 10M-row benchmark, ingest: system time 10 s, wall 30 s; with purging off 4.4 s
/// and 23 s. Report: 1.9M page faults and 6-11 s of system time; with purging off 0.7M and 4-5 s. Peak
/// memory stays bounded by what each command holds at once (ingest: its commit batches, 2.9 GiB; report:
/// 2.8 GiB at 10M), so freed memory is kept for reuse.
fn keep_freed_memory() {
    // `mi_option_purge_delay` of mimalloc.h's `mi_option_e` (15 in both the v2 and the v3 sources).
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    // SAFETY: mimalloc's option setter takes plain integers; the default (1000 ms in v3, 10 in v2) is
    // checked first so that a different enum layout in another mimalloc version changes nothing.
    unsafe {
        if matches!(mi_option_get(MI_OPTION_PURGE_DELAY), 10 | 1000) {
            mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let pipe = std::io::ErrorKind::BrokenPipe;
    e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == pipe)
        || e.downcast_ref::<serde_json::Error>()
            .is_some_and(|e| e.io_error_kind() == Some(pipe))
}
