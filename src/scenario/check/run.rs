//! `[run]`: the measured window, the load (closed-loop `concurrency` or
//! open-loop `rate`), seed, rounds, timeouts and `[run.retry]`; and the
//! flags that replace its values (`--duration`, `--warmup`, `--seed`,
//! `--concurrency`, `--rounds`, `--rate`).

use std::time::Duration;

use crate::scenario::limits::{
    DEFAULT_MAX_IN_FLIGHT, MAX_BACKOFF, MAX_CONCURRENCY, MAX_DURATION, MAX_IN_FLIGHT, MAX_RATE,
    MAX_ROUNDS, MAX_TIMEOUT, MAX_WARMUP, MIN_RATE, MIN_TIMEOUT,
};
use crate::scenario::model::{ArrivalProcess, Arrivals, RetryPolicy, RunSettings};
use crate::scenario::raw::{Given, Node, Origin, RawRetry, RawRun, Table};

use super::checker::Checker;
use super::values::{rate_out_of_range, subject};

const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const DEFAULT_WARMUP: Duration = Duration::from_secs(2);
const DEFAULT_CONCURRENCY: u32 = 8;
const DEFAULT_SEED: u64 = 1;
/// Bounds how long one request may take, so a hung server cannot hold a run
/// past its duration by more than this.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Error classes a retry policy may name (and `query_error:<SQLSTATE>`).
const RETRYABLE: [&str; 8] = [
    "too_many_connections",
    "auth_failed",
    "pool_timeout",
    "connect_timeout",
    "connection_refused",
    "server_shutdown",
    "connection_lost",
    "request_timeout",
];

impl Checker<'_> {
    /// `[run]`, its defaults where it (or a key of it) is absent.
    pub(super) fn run(&mut self, raw: Option<Given<Table<RawRun>>>) -> RunSettings {
        let mut run = default_run();
        let Some(raw) = raw else {
            return run;
        };
        let raw = raw.into_inner().into_inner();
        if let Some(value) = &raw.duration {
            self.duration_at = Some(value.origin());
            if let Some(d) = self.duration_in("duration", value, Duration::ZERO, MAX_DURATION, "") {
                run.duration = d;
            }
        }
        if let Some(w) = &raw.warmup {
            run.warmup = self
                .duration_in("warmup", w, Duration::ZERO, MAX_WARMUP, "")
                .unwrap_or(run.warmup);
        }
        if let Some(c) = &raw.concurrency {
            self.load_at = Some(c.origin());
            if let Some(c) = self.int_in("concurrency", c, 1, i64::from(MAX_CONCURRENCY)) {
                run.concurrency = u32::try_from(c).unwrap_or(DEFAULT_CONCURRENCY);
            }
        }
        if let Some(s) = &raw.seed {
            // Any u64: the file's integers stop at i64::MAX, `--seed` does not.
            if let Some(s) = self.int_in("seed", s, 0, i128::from(u64::MAX)) {
                run.seed = u64::try_from(s).unwrap_or(DEFAULT_SEED);
            }
        }
        if let Some(r) = &raw.rounds {
            self.rounds_at = Some(r.origin());
            if let Some(r) = self.int_in("rounds", r, 1, i64::from(MAX_ROUNDS)) {
                run.rounds = u32::try_from(r).unwrap_or(1);
            }
        }
        if let Some(t) = &raw.request_timeout {
            let why = "a shorter one abandons nearly every request before the server could answer";
            if let Some(d) = self.duration_in("request_timeout", t, MIN_TIMEOUT, MAX_TIMEOUT, why) {
                run.request_timeout = d;
            }
        }
        if let Some(r) = &raw.max_error_rate {
            let v = *r.get_ref();
            if (0.0..=1.0).contains(&v) {
                run.max_error_rate = Some(v);
            } else {
                self.error(
                    r.origin(),
                    format!("`max_error_rate` is a fraction from 0.0 to 1.0 (0.01 = 1%), not {v}"),
                );
            }
        }
        run.arrivals = self.arrivals(&raw);
        if let Some(retry) = raw.retry {
            run.retry = self.retry(retry);
        }
        run
    }

    /// Open loop: `rate`, `arrival` and `max_in_flight`.
    fn arrivals(&mut self, raw: &RawRun) -> Option<Arrivals> {
        let Some(rate) = &raw.rate else {
            for (key, at) in [
                ("arrival", raw.arrival.as_ref().map(Given::origin)),
                (
                    "max_in_flight",
                    raw.max_in_flight.as_ref().map(Given::origin),
                ),
            ] {
                if let Some(at) = at {
                    self.error(
                        at,
                        format!("`{key}` is for open loop and needs `rate` (arrivals per second)"),
                    );
                }
            }
            return None;
        };
        // What is at once in open loop is `max_in_flight` requests.
        self.load_at = Some(
            raw.max_in_flight
                .as_ref()
                .map_or_else(|| rate.origin(), Given::origin),
        );
        self.rate_at = Some(rate.origin());
        if let Some(workers) = &raw.concurrency {
            self.workers_in_open_loop(&workers.origin(), &rate.origin());
        }
        let value = match rate.get_ref() {
            Node::Int(i) => Some(*i as f64),
            Node::Float(f) => Some(*f),
            other => {
                self.error(
                    rate.origin(),
                    format!(
                        "`rate` is arrivals per second, a number such as 500 or 2.5, not {}",
                        other.type_name()
                    ),
                );
                None
            }
        };
        let rate_ok = match value {
            Some(v) if v.is_finite() && (MIN_RATE..=MAX_RATE).contains(&v) => Some(v),
            Some(v) => {
                let name = subject("rate", &rate.origin());
                self.error(rate.origin(), rate_out_of_range(&name, v));
                None
            }
            None => None,
        };
        let process = match &raw.arrival {
            None => ArrivalProcess::Poisson,
            Some(a) => match a.get_ref().as_str() {
                "poisson" => ArrivalProcess::Poisson,
                "uniform" => ArrivalProcess::Uniform,
                other => {
                    self.error(
                        a.origin(),
                        format!("`arrival` = {other:?}: expected \"poisson\" or \"uniform\""),
                    );
                    ArrivalProcess::Poisson
                }
            },
        };
        let max_in_flight = match &raw.max_in_flight {
            None => DEFAULT_MAX_IN_FLIGHT,
            Some(m) => self
                .int_in("max_in_flight", m, 1, i64::from(MAX_IN_FLIGHT))
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        };
        rate_ok.map(|rate| Arrivals {
            rate,
            process,
            max_in_flight,
            before: None,
        })
    }

    /// `concurrency` (closed loop's workers) given with `rate` (open loop,
    /// where `max_in_flight` bounds the requests served at once) would be
    /// ignored: refused, unless `--rate` turns a closed-loop file into an
    /// open-loop run (the flag replaces the file's load).
    fn workers_in_open_loop(&mut self, workers: &Origin, rate: &Origin) {
        let why = "in open loop the requests served at once are bounded by `max_in_flight`, \
                   not by workers";
        match (workers, rate) {
            (Origin::File(_), Origin::Flag(_)) => {}
            (Origin::Flag(flag), _) => {
                let rate = match rate {
                    Origin::File(_) => {
                        format!("the scenario's `rate` (line {})", self.line_of(rate))
                    }
                    Origin::Flag(flag) => (*flag).to_owned(),
                };
                self.error(
                    workers.clone(),
                    format!(
                        "{flag} sets closed-loop workers, which {rate} replaces with arrivals: \
                         {why}; drop {flag}"
                    ),
                );
            }
            (Origin::File(_), Origin::File(_)) => {
                let line = self.line_of(rate);
                self.error(
                    workers.clone(),
                    format!(
                        "`concurrency` (closed-loop workers) has no effect with `rate` (line \
                         {line}, open loop): {why}; remove one of them"
                    ),
                );
            }
        }
    }

    fn retry(&mut self, raw: Given<Table<RawRetry>>) -> Option<RetryPolicy> {
        let at = raw.origin();
        let raw = raw.into_inner();
        let mut policy = RetryPolicy {
            on: Vec::new(),
            max_attempts: 3,
            backoff: Duration::from_millis(100),
        };
        match &raw.on {
            None => self.error(
                at,
                format!(
                    "`[run.retry]` needs `on`, the error classes to retry: {}",
                    RETRYABLE.join(", ")
                ),
            ),
            Some(on) => {
                for class in on.get_ref() {
                    let name = class.get_ref();
                    let known = RETRYABLE.contains(&name.as_str())
                        || name.strip_prefix("query_error:").is_some_and(|code| {
                            code.len() == 5 && code.chars().all(|c| c.is_ascii_alphanumeric())
                        });
                    if known {
                        policy.on.push(name.clone());
                    } else {
                        self.error(
                            class.origin(),
                            format!(
                                "unknown error class `{name}`; expected one of {} or query_error:<SQLSTATE>",
                                RETRYABLE.join(", ")
                            ),
                        );
                    }
                }
                if on.get_ref().is_empty() {
                    self.error(
                        on.origin(),
                        "`on` is empty: name at least one error class to retry",
                    );
                }
            }
        }
        if let Some(n) = &raw.max_attempts {
            if let Some(n) = self.int_in("max_attempts", n, 1, 100) {
                policy.max_attempts = u32::try_from(n).unwrap_or(3);
            }
        }
        if let Some(b) = &raw.backoff {
            policy.backoff = self
                .duration_in("backoff", b, Duration::ZERO, MAX_BACKOFF, "")
                .unwrap_or(policy.backoff);
        }
        Some(policy)
    }
}

fn default_run() -> RunSettings {
    RunSettings {
        duration: DEFAULT_DURATION,
        warmup: DEFAULT_WARMUP,
        concurrency: DEFAULT_CONCURRENCY,
        seed: DEFAULT_SEED,
        rounds: 1,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
        max_error_rate: None,
        retry: None,
        arrivals: None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::{errors, flags, ok, BASE};
    use crate::scenario::model::ArrivalProcess;
    use crate::scenario::Overrides;

    fn with_run(keys: &str) -> String {
        format!("[run]\n{keys}\n{BASE}")
    }

    #[test]
    fn defaults_hold_without_run() {
        let run = ok(BASE, &flags()).run;
        assert_eq!(run.duration, Duration::from_secs(10));
        assert_eq!(run.warmup, Duration::from_secs(2));
        assert_eq!((run.concurrency, run.seed, run.rounds), (8, 1, 1));
        assert_eq!(run.request_timeout, Duration::from_secs(30));
        assert!(run.arrivals.is_none() && run.retry.is_none() && run.max_error_rate.is_none());
    }

    #[test]
    fn the_file_s_values_are_read_at_their_limits() {
        let run = ok(
            &with_run(
                "duration = \"24h\"\nwarmup = \"1h\"\nconcurrency = 10000\nseed = 0\n\
                 request_timeout = \"1ms\"\nmax_error_rate = 1.0",
            ),
            &flags(),
        )
        .run;
        assert_eq!(run.duration, Duration::from_secs(24 * 3600));
        assert_eq!(run.warmup, Duration::from_secs(3600));
        assert_eq!((run.concurrency, run.seed), (10_000, 0));
        assert_eq!(run.request_timeout, Duration::from_millis(1));
        assert_eq!(run.max_error_rate, Some(1.0));
    }

    #[test]
    fn the_file_s_values_are_refused_at_their_place() {
        let cases = [
            (
                "duration = \"0s\"",
                "t.toml:2:12: `duration` must be longer than 0",
            ),
            (
                "duration = \"24h 1s\"",
                "t.toml:2:12: `duration` must be at most 24h, found 24h 1s",
            ),
            (
                "warmup = \"61m\"",
                "t.toml:2:10: `warmup` must be at most 1h, found 61m",
            ),
            (
                "duration = \"soon\"",
                "t.toml:2:12: `duration` = \"soon\" is not a duration (expected number at 0): \
                 expected e.g. \"20s\", \"1m\", \"500ms\"",
            ),
            (
                "concurrency = 0",
                "t.toml:2:15: `concurrency` must be at least 1, found 0",
            ),
            (
                "concurrency = 10001",
                "t.toml:2:15: `concurrency` must be at most 10000, found 10001",
            ),
            (
                "seed = -1",
                "t.toml:2:8: `seed` must be at least 0, found -1",
            ),
            (
                "rounds = 1001",
                "t.toml:2:10: `rounds` must be at most 1000, found 1001",
            ),
            (
                "request_timeout = \"999us\"",
                "t.toml:2:19: `request_timeout` must be at least 1ms: a shorter one abandons \
                 nearly every request before the server could answer",
            ),
            (
                "max_error_rate = 1.5",
                "t.toml:2:18: `max_error_rate` is a fraction from 0.0 to 1.0 (0.01 = 1%), not 1.5",
            ),
        ];
        for (keys, expected) in cases {
            let e = errors(&with_run(keys), &flags());
            assert_eq!(e.lines().next(), Some(expected), "{keys}");
        }
    }

    #[test]
    fn flags_replace_the_file_s_values_and_are_checked_alike() {
        let o = Overrides {
            duration: Some(Duration::from_millis(1500)),
            warmup: Some(Duration::ZERO),
            seed: Some(u64::MAX),
            concurrency: Some(3),
            rounds: Some(1000),
            ..flags()
        };
        let run = ok(
            &with_run("duration = \"20s\"\nconcurrency = 9\nseed = 4"),
            &o,
        )
        .run;
        assert_eq!(run.duration, Duration::from_millis(1500));
        assert_eq!(run.warmup, Duration::ZERO);
        assert_eq!((run.concurrency, run.seed, run.rounds), (3, u64::MAX, 1000));

        let refused = [
            (
                Overrides {
                    duration: Some(Duration::ZERO),
                    ..flags()
                },
                "--duration must be longer than 0",
            ),
            (
                Overrides {
                    duration: Some(Duration::from_secs(25 * 3600)),
                    ..flags()
                },
                "--duration must be at most 24h, not 25h",
            ),
            (
                Overrides {
                    warmup: Some(Duration::from_secs(3601)),
                    ..flags()
                },
                "--warmup must be at most 1h, not 1h 1s",
            ),
            (
                Overrides {
                    concurrency: Some(10_001),
                    ..flags()
                },
                "--concurrency must be from 1 to 10000, not 10001",
            ),
            (
                Overrides {
                    rounds: Some(0),
                    ..flags()
                },
                "--rounds must be from 1 to 1000, not 0",
            ),
        ];
        for (o, expected) in refused {
            // The file's valid value is replaced, and the flag's refused.
            assert_eq!(errors(&with_run("duration = \"1s\""), &o), expected);
        }
    }

    #[test]
    fn workers_given_with_a_rate_are_refused_not_ignored() {
        // Both in the file.
        let e = errors(&with_run("concurrency = 16\nrate = 250"), &flags());
        assert!(
            e.starts_with("t.toml:2:15: `concurrency` (closed-loop workers) has no effect with `rate` (line 3, open loop)"),
            "{e}"
        );
        // --concurrency over a file's rate, or with --rate.
        let workers = Overrides {
            concurrency: Some(4),
            ..flags()
        };
        let e = errors(&with_run("rate = 250"), &workers);
        assert!(
            e.starts_with("--concurrency sets closed-loop workers, which the scenario's `rate` (line 2) replaces"),
            "{e}"
        );
        let both = Overrides {
            rate: Some(5.0),
            ..workers
        };
        assert!(errors(BASE, &both).contains("which --rate replaces"));
        // --rate over a closed-loop file: the flag replaces its load.
        let rate = Overrides {
            rate: Some(5.0),
            ..flags()
        };
        let run = ok(&with_run("concurrency = 16"), &rate).run;
        assert_eq!(run.arrivals.map(|a| a.rate), Some(5.0));
    }

    #[test]
    fn open_loop_from_the_file_and_from_rate() {
        let run = ok(
            &with_run("rate = 250\narrival = \"uniform\"\nmax_in_flight = 7"),
            &flags(),
        )
        .run;
        let a = run.arrivals.unwrap();
        assert_eq!(
            (a.rate, a.process, a.max_in_flight),
            (250.0, ArrivalProcess::Uniform, 7)
        );
        // --rate keeps the file's arrival process and max_in_flight.
        let o = Overrides {
            rate: Some(0.5),
            ..flags()
        };
        let a = ok(&with_run("rate = 250\narrival = \"uniform\""), &o)
            .run
            .arrivals
            .unwrap();
        assert_eq!(
            (a.rate, a.process, a.max_in_flight),
            (0.5, ArrivalProcess::Uniform, 1000)
        );
        // Without the file's: Poisson, 1000 in flight.
        let a = ok(BASE, &o).run.arrivals.unwrap();
        assert_eq!(
            (a.process, a.max_in_flight),
            (ArrivalProcess::Poisson, 1000)
        );

        assert_eq!(
            errors(&with_run("rate = 0.001"), &flags()).lines().next(),
            Some("t.toml:2:8: `rate` must be from 0.01 to 1000000 arrivals per second, not 0.001")
        );
        assert_eq!(
            errors(
                BASE,
                &Overrides {
                    rate: Some(f64::INFINITY),
                    ..flags()
                }
            ),
            "--rate must be from 0.01 to 1000000 arrivals per second, not inf"
        );
        assert_eq!(
            errors(&with_run("rate = \"fast\""), &flags()).lines().next(),
            Some("t.toml:2:8: `rate` is arrivals per second, a number such as 500 or 2.5, not a string")
        );
        assert_eq!(
            errors(&with_run("max_in_flight = 5"), &flags()).lines().next(),
            Some("t.toml:2:17: `max_in_flight` is for open loop and needs `rate` (arrivals per second)")
        );
        assert_eq!(
            errors(&with_run("rate = 5\narrival = \"bursty\""), &flags())
                .lines()
                .next(),
            Some("t.toml:3:11: `arrival` = \"bursty\": expected \"poisson\" or \"uniform\"")
        );
    }

    #[test]
    fn retry_policy() {
        let retry = ok(
            &with_run(
                "[run.retry]\non = [\"pool_timeout\", \"query_error:40001\"]\nbackoff = \"1m\"",
            ),
            &flags(),
        )
        .run
        .retry
        .unwrap();
        assert_eq!(retry.on, ["pool_timeout", "query_error:40001"]);
        assert_eq!(
            (retry.max_attempts, retry.backoff),
            (3, Duration::from_secs(60))
        );
        let e = errors(&with_run("[run.retry]\nmax_attempts = 2"), &flags());
        assert!(
            e.starts_with("t.toml:2:1: `[run.retry]` needs `on`, the error classes to retry: too_many_connections, "),
            "{e}"
        );
        let e = errors(&with_run("[run.retry]\non = [\"oops\"]"), &flags());
        assert!(
            e.starts_with("t.toml:3:7: unknown error class `oops`"),
            "{e}"
        );
        let e = errors(&with_run("[run.retry]\non = []"), &flags());
        assert!(e.starts_with("t.toml:3:6: `on` is empty"), "{e}");
        let e = errors(
            &with_run("[run.retry]\non = [\"pool_timeout\"]\nmax_attempts = 101"),
            &flags(),
        );
        assert!(
            e.starts_with("t.toml:4:16: `max_attempts` must be at most 100, found 101"),
            "{e}"
        );
    }
}
