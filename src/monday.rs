//! `paylens run`: the Monday job. Ingests whatever is new in the inbox (files already in the store are
//! recognised by their SHA-256 and skipped), then writes the week's customer analytics and restock list.
//! Running it twice changes nothing: the second ingest stores nothing and the tables come out the same.

use std::io::Write;

use anyhow::{Context, Result};
use chrono::NaiveDate;

use crate::config::Config;

pub fn run(as_of: Option<NaiveDate>, cfg: &Config) -> Result<()> {
    std::fs::create_dir_all(&cfg.inbox).with_context(|| format!("creating the inbox {}", cfg.inbox.display()))?;
    let params = crate::ingest::IngestParams {
        paths: vec![cfg.inbox.clone()],
        strict: false,
        json: false,
        quiet: true,
    };
    let ingest = crate::ingest::run(&params, cfg)?;
    let mut out = std::io::stdout().lock();
    let new: Vec<_> = ingest.files.iter().filter(|f| f.status == "ingested").collect();
    writeln!(
        out,
        "{}",
        crate::tr!(
            "run.inbox",
            inbox = cfg.inbox.display(),
            files = new.len(),
            events = ingest.new_events
        )
    )?;
    for f in ingest
        .files
        .iter()
        .filter(|f| f.status == "refused" || f.rejected > 0 || f.reconciled == Some(false))
    {
        let what = f.error.clone().unwrap_or_else(|| {
            crate::tr!(
                "run.rejected",
                n = f.rejected,
                totals = match f.reconciled {
                    Some(true) => crate::tr!("ingest.totals_match"),
                    Some(false) => crate::tr!("ingest.totals_mismatch"),
                    None => crate::tr!("ingest.totals_none"),
                }
            )
        });
        writeln!(out, "  {}", crate::tr!("run.needs_a_look", file = f.path, what = what))?;
    }
    if crate::store::StoreReader::open(&cfg.store)?.manifest.events.is_empty() {
        return Err(crate::UserError(crate::tr!("error.no_bills", inbox = cfg.inbox.display())).into());
    }
    drop(out);
    crate::report::run(as_of, cfg, false)?;
    Ok(())
}
