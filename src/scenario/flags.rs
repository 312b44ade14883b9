//! The command line's values for the scenario (`--duration`, `--warmup`,
//! `--seed`, `--concurrency`, `--rounds`, `--only`, `--rate`, `--rtt`):
//! [`Overrides`], built by the commands from their flags, put into the raw
//! scenario as values that remember their flag, so that the one checker
//! (`check/`) checks them as it checks the file's and names the flag in
//! its messages. A flag replaces the file's value; nothing checks the
//! replaced one.

use std::time::Duration;

use super::diag::show;
use super::raw::{Given, Node, RawNetwork, RawRun, RawScenario, Table};

/// Values from the command line that replace the file's. They are checked
/// as the file's are, and the checked scenario holds the result: nothing
/// changes it afterwards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--warmup`.
    pub warmup: Option<Duration>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--concurrency`.
    pub concurrency: Option<u32>,
    /// `--rounds`.
    pub rounds: Option<u32>,
    /// `--only`: the strategies to keep (all when empty).
    pub only: Vec<String>,
    /// `--rate`: open loop at this many arrivals per second.
    pub rate: Option<f64>,
    /// `--rtt`: the emulated link's round-trip time (the file's jitter is
    /// kept, capped at half of it).
    pub rtt: Option<Duration>,
    /// Where the command line points poolbench (`--dsn`, `--embedded`,
    /// DATABASE_URL): with the file's `dsn`, it decides the engine.
    pub target: TargetHint,
}

/// What the command line and the environment say of the target's engine,
/// without the DSN itself (it may hold a password). The engine is the
/// first DSN's in poolbench's order (`--embedded`, `--dsn`, the file's
/// `dsn`, DATABASE_URL, else the embedded server), the same order
/// `backend::find` connects by: a `mysql://` DSN makes the scenario
/// MySQL's wherever it came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetHint {
    /// `--embedded`: the file's embedded engine, whatever else is given.
    pub embedded: bool,
    /// `--dsn`, when given: whether it is a `mysql://` one.
    pub flag_is_mysql: Option<bool>,
    /// DATABASE_URL, when set: whether it is a `mysql://` one.
    pub env_is_mysql: Option<bool>,
}

impl TargetHint {
    /// From `--dsn`, `--embedded` and the process's DATABASE_URL.
    pub fn new(flag: Option<&str>, embedded: bool) -> TargetHint {
        let is_mysql = |dsn: &str| dsn.trim_start().starts_with("mysql://");
        TargetHint {
            embedded,
            flag_is_mysql: flag.map(is_mysql),
            env_is_mysql: std::env::var("DATABASE_URL").ok().map(|d| is_mysql(&d)),
        }
    }
}

impl Overrides {
    /// These values with `later`'s in place where it has one (a sweep's
    /// point on top of the command line's).
    pub fn then(&self, later: &Overrides) -> Overrides {
        Overrides {
            duration: later.duration.or(self.duration),
            warmup: later.warmup.or(self.warmup),
            seed: later.seed.or(self.seed),
            concurrency: later.concurrency.or(self.concurrency),
            rounds: later.rounds.or(self.rounds),
            only: if later.only.is_empty() {
                self.only.clone()
            } else {
                later.only.clone()
            },
            rate: later.rate.or(self.rate),
            rtt: later.rtt.or(self.rtt),
            target: self.target,
        }
    }

    /// Puts the values into `raw` in place of the file's, each named by its
    /// flag. A duration becomes the text the file would hold ("90s"), read
    /// back by the same parser.
    pub fn apply_to(&self, raw: &mut RawScenario) {
        let duration = |flag, d: Duration| Given::flag(flag, show(d));
        let run_flags = [
            self.duration.map(|_| "--duration"),
            self.warmup.map(|_| "--warmup"),
            self.seed.map(|_| "--seed"),
            self.concurrency.map(|_| "--concurrency"),
            self.rounds.map(|_| "--rounds"),
            self.rate.map(|_| "--rate"),
        ];
        if let Some(first) = run_flags.into_iter().flatten().next() {
            let run = &mut raw
                .run
                .get_or_insert_with(|| Given::flag(first, Table(RawRun::default())))
                .value_mut()
                .0;
            if let Some(d) = self.duration {
                run.duration = Some(duration("--duration", d));
            }
            if let Some(w) = self.warmup {
                run.warmup = Some(duration("--warmup", w));
            }
            if let Some(seed) = self.seed {
                run.seed = Some(Given::flag("--seed", i128::from(seed)));
            }
            if let Some(c) = self.concurrency {
                run.concurrency = Some(Given::flag("--concurrency", i64::from(c)));
            }
            if let Some(r) = self.rounds {
                run.rounds = Some(Given::flag("--rounds", i64::from(r)));
            }
            if let Some(rate) = self.rate {
                run.rate = Some(Given::flag("--rate", Node::Float(rate)));
            }
        }
        if let Some(rtt) = self.rtt {
            let network = raw
                .network
                .get_or_insert_with(|| Given::flag("--rtt", Table(RawNetwork::default())));
            network.value_mut().0.rtt = Some(duration("--rtt", rtt));
        }
        if !self.only.is_empty() {
            raw.only = self
                .only
                .iter()
                .map(|name| Given::flag("--only", name.clone()))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::raw::Origin;

    #[test]
    fn a_later_value_wins_and_an_absent_one_keeps_the_earlier() {
        let command_line = Overrides {
            duration: Some(Duration::from_secs(5)),
            concurrency: Some(4),
            only: vec!["a".into()],
            ..Overrides::default()
        };
        let point = Overrides {
            concurrency: Some(16),
            rate: Some(2.5),
            ..Overrides::default()
        };
        let both = command_line.then(&point);
        assert_eq!(both.duration, Some(Duration::from_secs(5)));
        assert_eq!((both.concurrency, both.rate), (Some(16), Some(2.5)));
        assert_eq!(both.only, ["a"]);
        assert_eq!(point.then(&Overrides::default()), point);
    }

    #[test]
    fn flags_become_raw_values_named_by_their_flag() {
        let mut raw: RawScenario = toml::from_str("[run]\nconcurrency = 3\nseed = 9\n").unwrap();
        Overrides {
            concurrency: Some(7),
            warmup: Some(Duration::from_millis(1500)),
            rtt: Some(Duration::from_millis(20)),
            only: vec!["p".into()],
            ..Overrides::default()
        }
        .apply_to(&mut raw);
        let run = &raw.run.as_ref().unwrap().get_ref().0;
        let concurrency = run.concurrency.as_ref().unwrap();
        assert_eq!(*concurrency.get_ref(), 7);
        assert_eq!(concurrency.origin(), Origin::Flag("--concurrency"));
        // The file's value a flag does not replace keeps its span.
        assert_eq!(run.seed.as_ref().unwrap().origin(), Origin::File(29..30));
        assert_eq!(run.warmup.as_ref().unwrap().get_ref(), "1s 500ms");
        let rtt = raw
            .network
            .as_ref()
            .unwrap()
            .get_ref()
            .0
            .rtt
            .as_ref()
            .unwrap();
        assert_eq!(
            (rtt.get_ref().as_str(), rtt.origin()),
            ("20ms", Origin::Flag("--rtt"))
        );
        assert_eq!(raw.only[0].origin(), Origin::Flag("--only"));
    }

    #[test]
    fn a_flag_s_duration_reads_back_exactly() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(999),
            Duration::from_millis(1500),
            Duration::from_secs(25 * 3600),
            Duration::from_secs(1_000_000 * 31_557_600),
        ] {
            assert_eq!(
                humantime::parse_duration(&show(d)).unwrap(),
                d,
                "{}",
                show(d)
            );
        }
    }
}
