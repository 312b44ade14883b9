//! The levers axis (`poolbench sweep --levers`): a per-request connection
//! (the scenario's first fresh strategy) on the embedded server as the
//! scenario sets it up, then on a server of its own for each setting a
//! user controls that changes a connection's cost — the authentication
//! method, SCRAM's iteration count, channel binding, the TLS version, TLS
//! itself and PostgreSQL 17's direct TLS — at the scenario's RTT, with the
//! same seed; and what each saves against the scenario's settings in
//! time, round trips and client and server CPU, with whether it is safe to
//! change. Written as sweep.json (`kind = "levers"`).

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{worth_keeping, Axis, Column, Nothing, Percentiles, Section, Step, Sweep, Value};
use crate::error::bad_input;
use crate::metrics::Phase;
use crate::report::format::trimmed;
use crate::report::{self, StrategyReport};
use crate::scenario::{
    AuthMethod, ChannelBindingLever, EmbeddedEngine, EmbeddedSettings, Scenario,
    SslNegotiationLever, StrategyKind, TlsVersion,
};

/// Tells a levers sweep's sweep.json from the other axes'.
pub const LEVERS_KIND: &str = "levers";

/// A levers sweep's sweep.json.
pub type LeverSweep = Sweep<Levers>;

/// The scenario's server, then each lever that changes it.
#[derive(Debug, Clone)]
pub struct Levers {
    /// The fresh strategy measured.
    strategy: String,
    /// The scenario's settings first (its `lever` is empty).
    levers: Vec<Lever>,
    rtt_ms: Option<f64>,
}

/// One setting changed from the scenario's.
#[derive(Debug, Clone)]
struct Lever {
    /// As `[database.embedded]` writes it: `auth = "md5"`; empty for the
    /// scenario's own settings.
    name: String,
    server: EmbeddedSettings,
    safety: &'static str,
}

impl Levers {
    /// The levers that change `scenario`'s embedded server, for a server of
    /// major version `major` (direct TLS needs 17).
    pub fn new(scenario: &Scenario, major: Option<u32>) -> Result<Levers> {
        let base = &scenario.database.embedded;
        if base.engine != EmbeddedEngine::Postgresql {
            return Err(bad_input(
                "--levers changes the embedded PostgreSQL's settings; the scenario's embedded \
                 server is MariaDB",
            ));
        }
        let Some(fresh) = scenario
            .strategies
            .iter()
            .find(|s| matches!(s.kind, StrategyKind::Fresh))
        else {
            return Err(bad_input(format!(
                "--levers measures a connection per request; {} has no kind = \"fresh\" strategy",
                scenario.source.path.display()
            )));
        };
        let mut levers = vec![Lever {
            name: String::new(),
            server: base.clone(),
            safety: "",
        }];
        let mut add = |name: String, change: &dyn Fn(&mut EmbeddedSettings), safety| {
            let mut server = base.clone();
            change(&mut server);
            levers.push(Lever {
                name,
                server,
                safety,
            });
        };
        for (auth, safety) in [
            (AuthMethod::ScramSha256, SAFE_SCRAM),
            (AuthMethod::Md5, UNSAFE_MD5),
            (AuthMethod::Password, UNSAFE_PASSWORD),
            (AuthMethod::Trust, UNSAFE_TRUST),
        ] {
            if auth != base.auth {
                add(
                    format!("auth = \"{}\"", auth.as_str()),
                    &|s| s.auth = auth,
                    safety,
                );
            }
        }
        if base.auth == AuthMethod::ScramSha256 {
            let iterations = if base.scram_iterations.unwrap_or(4096) == 1024 {
                4096
            } else {
                1024
            };
            add(
                format!("scram_iterations = {iterations}"),
                &|s| s.scram_iterations = Some(iterations),
                SCRAM_ITERATIONS,
            );
            if base.tls && base.channel_binding != ChannelBindingLever::Disable {
                add(
                    "channel_binding = \"disable\"".into(),
                    &|s| s.channel_binding = ChannelBindingLever::Disable,
                    CHANNEL_BINDING,
                );
            }
        }
        if base.tls {
            let version = match base.tls_version {
                Some(TlsVersion::Tls12) => TlsVersion::Tls13,
                _ => TlsVersion::Tls12,
            };
            add(
                format!(
                    "tls_version = \"{}\"",
                    match version {
                        TlsVersion::Tls12 => "1.2",
                        TlsVersion::Tls13 => "1.3",
                    }
                ),
                &|s| s.tls_version = Some(version),
                TLS_VERSION,
            );
            if base.sslnegotiation != SslNegotiationLever::Direct && major.is_some_and(|m| m >= 17)
            {
                add(
                    "sslnegotiation = \"direct\"".into(),
                    &|s| s.sslnegotiation = SslNegotiationLever::Direct,
                    DIRECT_TLS,
                );
            }
            add(
                "tls = false".into(),
                &|s| {
                    s.tls = false;
                    s.sslnegotiation = SslNegotiationLever::Postgres;
                    s.tls_version = None;
                },
                UNSAFE_NO_TLS,
            );
        } else {
            add("tls = true".into(), &|s| s.tls = true, SAFE_TLS);
        }
        Ok(Levers {
            strategy: fresh.name.clone(),
            levers,
            rtt_ms: scenario
                .network
                .map(|n| report::round(n.rtt.as_secs_f64() * 1000.0, 3)),
        })
    }
}

const SAFE_SCRAM: &str = "safe: the method to use";
const UNSAFE_MD5: &str = "not safe: md5 is deprecated (PostgreSQL 18 warns of it), and its \
                          stored hash logs in as the user if stolen";
const UNSAFE_PASSWORD: &str = "not safe: the password itself travels to the server (in clear \
                               without TLS)";
const UNSAFE_TRUST: &str = "not safe: anyone who reaches the port logs in";
const SCRAM_ITERATIONS: &str = "safe for long random (generated) passwords: a stolen verifier \
                                is guessed offline 4× faster; set `scram_iterations` \
                                (PostgreSQL ≥ 16) before storing the password";
const CHANNEL_BINDING: &str = "safe only with sslmode=verify-full: binding is what protects \
                               SCRAM from a man in the middle when the certificate is not \
                               verified";
const TLS_VERSION: &str = "keep TLS 1.3: 1.2 takes a round trip more and is not safer";
const DIRECT_TLS: &str = "safe: the same encryption without the SSLRequest's round trip; needs \
                          PostgreSQL ≥ 17 servers (and poolers) and libpq ≥ 17 clients, with \
                          sslmode=require or stricter";
const UNSAFE_NO_TLS: &str = "not safe across a network you do not own: the session, and \
                             with md5 or password its login, travel in clear";
const SAFE_TLS: &str = "safe: what TLS costs";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeverSettings {
    /// The strategy measured under each lever.
    pub strategy: String,
    /// The emulated RTT of every point, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// The fresh strategy under one lever (the first point: the scenario's
/// own settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeverPoint {
    /// As `[database.embedded]` writes it; empty for the scenario's own.
    pub lever: String,
    /// Whether it is safe to change, in words (empty for the scenario's).
    pub safety: String,
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    pub connect: Option<Percentiles>,
    /// Median round trips of a connection's setup (with an emulated link).
    pub connect_round_trips: Option<u64>,
    /// Means per connection opened, µs of CPU time.
    pub client_cpu_us: Option<f64>,
    pub client_scram_us: Option<f64>,
    pub server_cpu_us: Option<f64>,
    /// Against the scenario's settings: positive saves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<Saved>,
}

/// What a lever saves against the scenario's settings (negative: costs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The connect phase's mean.
    pub connect_ms: Option<f64>,
    pub round_trips: Option<i64>,
    pub client_cpu_ms: Option<f64>,
    pub server_cpu_ms: Option<f64>,
}

impl LeverPoint {
    fn of(lever: &Lever, r: &StrategyReport, base: Option<&LeverPoint>) -> LeverPoint {
        let mean = |key: &str| r.setup_cpu.get(key).map(|s| s.mean_us);
        let mut point = LeverPoint {
            lever: lever.name.clone(),
            safety: lever.safety.to_string(),
            requests: r.requests,
            errors: r.error_count(),
            throughput_rps: r.throughput_rps,
            connect: r.phases.get(Phase::Connect.as_str()).map(Percentiles::from),
            connect_round_trips: r
                .round_trips
                .as_ref()
                .and_then(|rt| rt.connect.as_ref())
                .map(|c| c.p50),
            client_cpu_us: mean("client_us"),
            client_scram_us: mean("client_scram_us"),
            server_cpu_us: mean("server_us"),
            saved: None,
        };
        point.saved = base.map(|b| point.saved_against(b));
        point
    }

    fn saved_against(&self, base: &LeverPoint) -> Saved {
        let ms = |a: Option<f64>, b: Option<f64>| Some(report::round((b? - a?) / 1000.0, 3));
        Saved {
            connect_ms: ms(
                self.connect.map(|c| c.mean_us),
                base.connect.map(|c| c.mean_us),
            ),
            round_trips: base
                .connect_round_trips
                .zip(self.connect_round_trips)
                .map(|(b, a)| b as i64 - a as i64),
            client_cpu_ms: ms(self.client_cpu_us, base.client_cpu_us),
            server_cpu_ms: ms(self.server_cpu_us, base.server_cpu_us),
        }
    }

    /// The lever's name, or what the first point is.
    fn label(&self) -> &str {
        if self.lever.is_empty() {
            "the scenario's settings"
        } else {
            &self.lever
        }
    }
}

impl Axis for Levers {
    const KIND: &'static str = LEVERS_KIND;
    const TITLE: &'static str = "levers sweep";
    type Scenario = Nothing;
    type Settings = LeverSettings;
    type Point = LeverPoint;
    type Analysis = Nothing;
    /// The lever's index.
    type At = usize;

    fn scenario(&self) -> Nothing {
        Nothing {}
    }

    fn settings(&self) -> LeverSettings {
        LeverSettings {
            strategy: self.strategy.clone(),
            rtt_ms: self.rtt_ms,
        }
    }

    fn steps(&self, scenario: &Scenario) -> Vec<Step<usize>> {
        let Some(strategy) = scenario.strategies.iter().find(|s| s.name == self.strategy) else {
            return Vec::new();
        };
        self.levers
            .iter()
            .enumerate()
            .map(|(i, lever)| Step {
                at: i,
                strategy: strategy.clone(),
                run: scenario.run.clone(),
                network: scenario.network,
                label: format!(
                    "{} {}",
                    strategy.name,
                    if lever.name.is_empty() {
                        "as set"
                    } else {
                        &lever.name
                    }
                ),
                // The scenario's own server for the first point.
                server: (i > 0).then(|| lever.server.clone()),
            })
            .collect()
    }

    fn record(&self, sweep: &mut LeverSweep, at: &usize, r: &StrategyReport, interrupted: bool) {
        if !worth_keeping(r, interrupted) {
            return;
        }
        let base = sweep.points.iter().find(|p| p.lever.is_empty());
        let point = LeverPoint::of(&self.levers[*at], r, base);
        sweep.points.push(point);
    }

    fn analyse(_sweep: &LeverSweep) -> Nothing {
        Nothing {}
    }

    fn grid(sweep: &LeverSweep) -> String {
        let s = &sweep.settings;
        format!(
            "{} under each lever of [database.embedded]{}",
            s.strategy,
            s.rtt_ms
                .map(|r| format!(" · RTT {} ms emulated", trimmed(r, 3)))
                .unwrap_or_default()
        )
    }

    fn columns() -> Vec<Column<Levers>> {
        let ms = |v: Option<f64>| Value::or_missing(v, |v| Value::Ms3(report::round(v, 3)));
        vec![
            Column::new("lever", "lever", |_, p: &LeverPoint| {
                Value::Text(p.label().to_string())
            }),
            Column::file("requests", |_, p: &LeverPoint| Value::Count(p.requests)),
            Column::new("errors", "errors", |_, p: &LeverPoint| {
                Value::Count(p.errors)
            }),
            Column::new("connect_mean_ms", "connect mean", |_, p: &LeverPoint| {
                Value::or_missing(p.connect, |c| Value::MeanUs(c.mean_us))
            }),
            Column::new("connect_round_trips", "round trips", |_, p: &LeverPoint| {
                Value::or_missing(p.connect_round_trips, Value::Int)
            }),
            Column::new(
                "client_cpu_ms",
                "client CPU ms",
                move |_, p: &LeverPoint| ms(p.client_cpu_us.map(|u| u / 1000.0)),
            ),
            Column::file("client_scram_ms", move |_, p: &LeverPoint| {
                ms(p.client_scram_us.map(|u| u / 1000.0))
            }),
            Column::new(
                "server_cpu_ms",
                "server CPU ms",
                move |_, p: &LeverPoint| ms(p.server_cpu_us.map(|u| u / 1000.0)),
            ),
            Column::new("saved_connect_ms", "saves: ms", move |_, p: &LeverPoint| {
                ms(p.saved.as_ref().and_then(|s| s.connect_ms))
            }),
            Column::new("saved_round_trips", "round trips", |_, p: &LeverPoint| {
                Value::or_missing(p.saved.as_ref().and_then(|s| s.round_trips), |n| {
                    Value::Text(n.to_string())
                })
            }),
            Column::new(
                "saved_client_cpu_ms",
                "client CPU",
                move |_, p: &LeverPoint| ms(p.saved.as_ref().and_then(|s| s.client_cpu_ms)),
            ),
            Column::new(
                "saved_server_cpu_ms",
                "server CPU",
                move |_, p: &LeverPoint| ms(p.saved.as_ref().and_then(|s| s.server_cpu_ms)),
            ),
        ]
    }

    fn keys(p: &LeverPoint) -> Vec<(&'static str, String)> {
        vec![("lever", p.label().to_string())]
    }

    fn sections(sweep: &LeverSweep) -> Vec<Section> {
        let rtt = sweep.settings.rtt_ms;
        let mut notes = Vec::new();
        for p in sweep.points.iter().filter(|p| !p.lever.is_empty()) {
            let Some(saved) = &p.saved else { continue };
            notes.push(vec![
                format!("{}: {}", p.lever, in_words(saved, rtt)),
                format!("  {}", p.safety),
            ]);
        }
        vec![Section {
            id: "levers".into(),
            title: Some("What each lever saves, and whether to pull it".into()),
            plots: Vec::new(),
            notes,
        }]
    }
}

/// "−1 round trip (−20.1 ms at 20 ms), −1.1 ms client CPU": what a lever
/// changes, a saving written as a minus.
fn in_words(saved: &Saved, rtt_ms: Option<f64>) -> String {
    let signed = |v: f64| {
        let v = -v;
        let text = trimmed(v.abs(), if v.abs() >= 10.0 { 1 } else { 2 });
        if v < 0.0 {
            format!("−{text}")
        } else {
            format!("+{text}")
        }
    };
    let mut parts = Vec::new();
    if let Some(n) = saved.round_trips.filter(|n| *n != 0) {
        let count = report::format::plural(n.unsigned_abs() as usize, "round trip", "round trips");
        let sign = if n > 0 { "−" } else { "+" };
        parts.push(match rtt_ms {
            Some(rtt) => format!(
                "{sign}{count} ({} ms at {} ms)",
                signed(n as f64 * rtt),
                trimmed(rtt, 3)
            ),
            None => format!("{sign}{count}"),
        });
    }
    if let Some(ms) = saved.connect_ms {
        parts.push(format!("{} ms connect", signed(ms)));
    }
    if let Some(ms) = saved.client_cpu_ms {
        parts.push(format!("{} ms client CPU", signed(ms)));
    }
    if let Some(ms) = saved.server_cpu_ms {
        parts.push(format!("{} ms server CPU", signed(ms)));
    }
    if parts.is_empty() {
        "nothing measured to compare".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savings_are_written_as_minus_and_costs_as_plus() {
        let saved = Saved {
            connect_ms: Some(20.4),
            round_trips: Some(1),
            client_cpu_ms: Some(1.1),
            server_cpu_ms: Some(-0.25),
        };
        assert_eq!(
            in_words(&saved, Some(20.0)),
            "−1 round trip (−20 ms at 20 ms), −20.4 ms connect, −1.1 ms client CPU, +0.25 ms server CPU"
        );
        assert_eq!(
            in_words(
                &Saved {
                    round_trips: Some(-2),
                    ..Saved::default()
                },
                None
            ),
            "+2 round trips"
        );
    }
}
