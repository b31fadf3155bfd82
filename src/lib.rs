//! paylens as a library: `run` resolves the configuration and dispatches to one module per subcommand.
//! Each command module has a `run(params, cfg)` of the same shape and owns its own output.

pub mod analytics;
pub mod analyze;
pub mod charts;
pub mod cli;
pub mod config;
pub mod csv_out;
pub mod demo;
pub mod i18n;
pub mod ingest;
pub mod monday;
pub mod parquet_file;
pub mod prefetch;
pub mod privacy;
pub mod raster;
pub mod report;
pub mod restock;
pub mod slots;
pub mod status;
pub mod store;
pub mod targets;
pub mod timings;

use std::process::ExitCode;

use anyhow::Result;

use cli::{Cli, Command};
use config::{Config, Overrides};

/// A problem with what the user gave us (input, flags, config, a busy store): exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// `f` of each item, on this thread and one more: each takes the next item of `order` (indexes into
/// `items`) not yet taken, so the first in `order` start first. The results come back in the items' order.
/// `what` names the work for the message when the other thread panics.
pub(crate) fn on_two_threads<T: Sync, R: Send>(
    items: &[T],
    order: &[usize],
    what: &str,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let taken = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> Result<Vec<(usize, R)>> {
        let mut done = Vec::new();
        while let Some(&i) = order.get(taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
            done.push((i, f(&items[i])?));
        }
        Ok(done)
    };
    let mut done = std::thread::scope(|scope| -> Result<_> {
        let other = scope.spawn(work);
        let mut done = work()?;
        done.extend(
            other
                .join()
                .map_err(|_| anyhow::anyhow!("the thread {what} panicked"))??,
        );
        Ok(done)
    })?;
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let reports = match &cli.command {
        Command::Analyze(a) => a.reports.clone(),
        Command::Restock(a) => a.reports.clone(),
        Command::Run(a) => a.reports.clone(),
        Command::Report(a) => a.reports.clone(),
        _ => None,
    };
    let overrides = Overrides {
        config: cli.global.config.clone(),
        store: cli.global.store.clone(),
        inbox: match &cli.command {
            Command::Run(a) => a.inbox.clone(),
            _ => None,
        },
        reports,
        timezone: cli.global.timezone.clone(),
        language: cli.global.lang.clone(),
    };
    // Before the config is read, errors already speak the language of --lang or LANG.
    if let Some(lang) = cli
        .global
        .lang
        .as_deref()
        .and_then(i18n::Lang::parse)
        .or_else(i18n::Lang::from_env)
    {
        i18n::set(lang);
    }
    let cfg = Config::resolve(&overrides).map_err(|e| UserError(format!("{e:#}")))?;
    i18n::set(cfg.language);
    if cli.global.show_config {
        println!("{}", serde_json::to_string_pretty(&cfg)?);
        return Ok(ExitCode::SUCCESS);
    }
    match cli.command {
        Command::Report(a) => {
            let as_of = match &a.week {
                Some(w) => Some(report::parse_iso_week(w)?),
                None => a.as_of,
            };
            report::run(as_of, &cfg, false)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(a) => {
            monday::run(a.as_of, &cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest(a) => {
            let params = ingest::IngestParams {
                paths: a.paths,
                strict: a.strict,
                json: a.json,
                quiet: false,
            };
            let outcome = ingest::run(&params, &cfg)?;
            Ok(if outcome.refused() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Demo(a) => {
            let params = demo::DemoParams::from_args(&a);
            demo::run(&params, &cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze(a) => {
            let cfg = match &a.reports {
                Some(r) => Config {
                    reports: r.clone(),
                    ..cfg
                },
                None => cfg,
            };
            let params = analyze::AnalyzeParams {
                as_of: a.as_of,
                segments: a.segments.clone().unwrap_or_else(|| cfg.analytics.segments.clone()),
                inline_map: if a.segments.is_some() {
                    None
                } else {
                    cfg.analytics.segment_map.clone()
                },
                window_days: a.window_days.or(cfg.analytics.window_days),
                weeks: cfg.analytics.weeks,
                lapse_days: cfg.analytics.lapse_days,
                with_contact_ids: a.with_contact_ids,
                quiet: false,
            };
            analyze::run(&params, &cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restock(a) => {
            let mut settings = cfg.restock.clone();
            if let Some(s) = a.service_level {
                if !(0.5..1.0).contains(&s) {
                    return Err(UserError(crate::tr!("error.service_level", level = s)).into());
                }
                settings.service_level = s;
            }
            if let Some(r) = a.review_days {
                settings.review_days = r;
            }
            let params = restock::RestockParams {
                backtest_days: a.backtest,
                simulate_weeks: a.simulate,
                as_of: a.as_of,
                inventory: a.inventory.clone(),
                settings,
                quiet: false,
            };
            restock::run(&params, &cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(a) => {
            status::run(a.json, &cfg)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_threads_give_results_in_item_order_and_pass_errors_on() {
        let items: Vec<u64> = (0..50).collect();
        let order: Vec<usize> = (0..50).rev().collect();
        let squares = super::on_two_threads(&items, &order, "squaring", |&x| Ok(x * x)).unwrap();
        assert_eq!(squares, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
        let failed = super::on_two_threads(&items, &order, "failing", |&x| {
            if x == 7 {
                anyhow::bail!("item 7")
            }
            Ok(x)
        });
        assert_eq!(failed.unwrap_err().to_string(), "item 7");
    }
}
