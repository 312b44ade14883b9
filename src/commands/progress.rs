//! The live progress bar of a round (indicatif on stderr; hidden when not
//! asked for or not a terminal), fed by the engine's ticks.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::Tick;
use crate::report::format::thousands;

pub struct Progress(ProgressBar);

impl Progress {
    /// A bar labelled with the strategy (and the round, when there are
    /// several); hidden unless `show`.
    pub fn new(show: bool, name: &str, round: u32, rounds: u32) -> Progress {
        if !show {
            return Progress(ProgressBar::hidden());
        }
        let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>14} [{bar:32}] {percent:>3}% {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        // indicatif writes to the terminal itself, past `out!`'s escaping.
        let name = crate::output::printable(name);
        bar.set_prefix(if rounds > 1 {
            format!("{name} #{round}")
        } else {
            name.into_owned()
        });
        bar.set_message("warm-up");
        Progress(bar)
    }

    pub fn tick(&self, t: &Tick) {
        self.0.set_length(t.total.as_millis().max(1) as u64);
        self.0.set_position(t.elapsed.as_millis() as u64);
        if let Some(rps) = t.rps {
            let phase = if t.measuring { "measuring" } else { "warm-up" };
            self.0.set_message(format!(
                "{phase} · {} req/s · {} errors",
                thousands(rps as u64),
                thousands(t.errors)
            ));
        }
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
