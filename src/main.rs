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

/// mimalloc asks for transparent huge pages on its arenas: every first touch then faults in and clears 2
/// MiB, and memory handed back and taken again is cleared again. With them off for this process, 10M-row
/// ingest spent a quarter of the system time it did (perf: `clear_page_erms` was 30 % of the samples).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let pipe = std::io::ErrorKind::BrokenPipe;
    e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == pipe)
        || e.downcast_ref::<serde_json::Error>()
            .is_some_and(|e| e.io_error_kind() == Some(pipe))
}
