//! `PAYLENS_TIMINGS=1`: each phase's wall time on stderr, for finding where a slow run spends it.

use std::time::Instant;

/// Whether `PAYLENS_TIMINGS` asks for timings.
fn enabled() -> bool {
    since_start();
    std::env::var_os("PAYLENS_TIMINGS").is_some_and(|v| v != "0")
}

/// Seconds since timings were first asked about (early in the run): with it, the phases of threads that
/// run side by side can be laid out on one time line.
fn since_start() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The end of a line: when the phase ended and on which thread.
fn when() -> String {
    let thread = std::thread::current();
    format!(
        "(to {:.2} s, {})",
        since_start(),
        thread.name().unwrap_or("a worker thread")
    )
}

pub struct Phases {
    last: Option<(Instant, &'static str)>,
}

impl Phases {
    pub fn from_env() -> Phases {
        Phases {
            last: enabled().then(|| (Instant::now(), "start")),
        }
    }

    /// Ends the running phase (printing its time) and starts `next`.
    pub fn mark(&mut self, next: &'static str) {
        if let Some((t, name)) = self.last {
            eprintln!(
                "paylens timings: {name:<20} {:>8.2} s {}",
                t.elapsed().as_secs_f64(),
                when()
            );
            self.last = Some((Instant::now(), next));
        }
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        self.mark("end");
    }
}

/// Wall time summed per named part of a loop, printed when dropped (`PAYLENS_TIMINGS=1`).
pub struct Totals {
    on: bool,
    since: Instant,
    parts: Vec<(&'static str, std::time::Duration)>,
}

impl Totals {
    pub fn from_env() -> Totals {
        Totals {
            on: enabled(),
            since: Instant::now(),
            parts: Vec::new(),
        }
    }

    /// Restarts the clock without counting the time since the last mark.
    pub fn start(&mut self) {
        self.since = Instant::now();
    }

    /// Adds the time since the last mark to `part`.
    pub fn add(&mut self, part: &'static str) {
        if !self.on {
            return;
        }
        let d = self.since.elapsed();
        match self.parts.iter_mut().find(|(p, _)| *p == part) {
            Some((_, t)) => *t += d,
            None => self.parts.push((part, d)),
        }
        self.since = Instant::now();
    }
}

impl Drop for Totals {
    fn drop(&mut self) {
        for (part, t) in &self.parts {
            eprintln!("paylens timings: {part:<20} {:>8.2} s {}", t.as_secs_f64(), when());
        }
    }
}
