//! `PAYLENS_TIMINGS=1`: each phase's wall time on stderr, for finding where a slow run spends it.

use std::time::Instant;

pub struct Phases {
    last: Option<(Instant, &'static str)>,
}

impl Phases {
    pub fn from_env() -> Phases {
        let on = std::env::var_os("PAYLENS_TIMINGS").is_some_and(|v| v != "0");
        Phases {
            last: on.then(|| (Instant::now(), "start")),
        }
    }

    /// Ends the running phase (printing its time) and starts `next`.
    pub fn mark(&mut self, next: &'static str) {
        if let Some((t, name)) = self.last {
            eprintln!("paylens timings: {name:<20} {:>8.2} s", t.elapsed().as_secs_f64());
            self.last = Some((Instant::now(), next));
        }
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        self.mark("end");
    }
}
