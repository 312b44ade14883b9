//! The lifecycle settings a plan recommends beside its sizes (issue 30's
//! "plans include lifecycle settings"): a lifetime whose spread keeps
//! replacements under a stated rate, an idle timeout consistent with the
//! min size, and a checkout check policy for the round trip measured by a
//! short run with `check = "always"`; each with what it costs, from the
//! plan's measurements, and in each library's own names. Pure: the
//! command measures, this decides and words it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::format::ms;

/// The lifetime recommended: 30 minutes, the default of sqlx, bb8 and
/// HikariCP (scenario::lifecycle's presets), under the usual idle cuts of
/// firewalls and load balancers.
pub const LIFETIME_S: f64 = 1800.0;
/// The replacements a pool may make in one second, at most, once its
/// lifetimes are spread: one per second per instance.
pub const MAX_REPLACEMENTS_PER_S: f64 = 1.0;
/// HikariCP's own spread (up to 2.5% taken off each connection's
/// lifetime), the least recommended.
pub const MIN_JITTER: f64 = 0.025;
/// The idle timeout recommended above min: 10 minutes, the default of
/// sqlx, bb8 and HikariCP.
pub const IDLE_TIMEOUT_S: f64 = 600.0;
/// A checkout check costing at most this share of the target p99 (its p50,
/// one round trip) may run on every checkout.
pub const CHECK_SHARE: f64 = 0.1;
/// HikariCP's aliveBypassWindowMs: a connection used within this is not
/// checked.
pub const CHECK_IF_IDLE_OVER_MS: f64 = 500.0;

/// What the plan measured that the settings depend on.
#[derive(Debug, Clone, Copy)]
pub struct Measures {
    pub max: u32,
    pub min: u32,
    pub target_p99_ms: f64,
    /// The recommended size's median p99, without a checkout check.
    pub p99_ms: f64,
    /// Connect p50 of the pool's connections.
    pub connect_p50_ms: Option<f64>,
    /// The short run with a check on every checkout.
    pub check: Option<CheckRun>,
}

/// One round of the recommended pool with `check = "always"`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CheckRun {
    /// The check phase: one round trip at this server's RTT.
    pub check_p50_ms: f64,
    pub check_p99_ms: f64,
    /// The request's p99 with the check on every checkout.
    pub p99_ms: f64,
    pub met: bool,
}

/// The recommendation, each setting with why and what it costs.
#[derive(Debug, Clone, Serialize)]
pub struct LifecyclePlan {
    pub max_lifetime_s: f64,
    /// Each connection's lifetime is max_lifetime × (1 − jitter × u).
    pub lifetime_jitter: f64,
    /// Replacements per second on average (max / lifetime), and at most
    /// in one second once spread (max / (jitter × lifetime)), per instance.
    pub replacements_per_s: f64,
    pub replacements_max_per_s: f64,
    pub lifetime: String,
    /// None: no idle timeout matters (min = max).
    pub idle_timeout_s: Option<f64>,
    pub idle: String,
    /// "always", "if_idle_over 500ms" or "never".
    pub check: String,
    pub check_run: Option<CheckRun>,
    pub check_reason: String,
    /// Library → "key=value, …".
    pub settings: BTreeMap<String, String>,
}

/// The settings for `m`.
pub fn recommend(m: &Measures) -> LifecyclePlan {
    let max = f64::from(m.max);
    // The spread needed for at most MAX_REPLACEMENTS_PER_S a second when
    // every connection opened at once: max / (jitter × L) ≤ rate.
    let needed = max / (MAX_REPLACEMENTS_PER_S * LIFETIME_S);
    let jitter = (needed.max(MIN_JITTER) * 1000.0).ceil() / 1000.0;
    let replacements_per_s = max / LIFETIME_S;
    let replacements_max_per_s = max / (jitter * LIFETIME_S);
    let connect = match m.connect_p50_ms {
        Some(c) => format!(
            "each a connect (p50 {} ms measured): {} ms of connecting per second per instance \
             on average",
            ms(c * 1000.0),
            ms(c * replacements_per_s * 1000.0)
        ),
        None => "each a connect (not measured: no connection was opened)".into(),
    };
    let lifetime = format!(
        "max_lifetime 30 min, jitter {jitter}: {:.3} replacements/s on average and at most \
         {:.2} in any second per instance (≤ {MAX_REPLACEMENTS_PER_S}/s), {connect}",
        replacements_per_s, replacements_max_per_s
    );
    let (idle_timeout_s, idle) = if m.min >= m.max {
        (
            None,
            format!(
                "none needed: min = max = {}, the pool never shrinks (sqlx, bb8 and HikariCP keep \
                 min; asyncpg's max_inactive_connection_lifetime closes below min_size: set it \
                 to 0)",
                m.max
            ),
        )
    } else {
        (
            Some(IDLE_TIMEOUT_S),
            format!(
                "10 min: the {} connections above min = {} close 10 min after a peak; the next \
                 peak opens them again, a connect each{}",
                m.max - m.min,
                m.min,
                m.connect_p50_ms
                    .map(|c| format!(" (p50 {} ms)", ms(c * 1000.0)))
                    .unwrap_or_default()
            ),
        )
    };
    let (check, check_reason) = match m.check {
        Some(c) if c.check_p50_ms <= CHECK_SHARE * m.target_p99_ms && c.met => (
            "always".to_string(),
            format!(
                "on every checkout: measured, it costs p50 {} ms (one round trip), p99 {} ms; \
                 with it the p99 was {} ms (without {} ms), within the target",
                ms(c.check_p50_ms * 1000.0),
                ms(c.check_p99_ms * 1000.0),
                ms(c.p99_ms * 1000.0),
                ms(m.p99_ms * 1000.0)
            ),
        ),
        Some(c) => (
            format!("if_idle_over {CHECK_IF_IDLE_OVER_MS:.0}ms"),
            format!(
                "only for a connection idle over {CHECK_IF_IDLE_OVER_MS:.0} ms (HikariCP's \
                 rule): measured, a check on every checkout costs p50 {} ms (one round trip), \
                 p99 {} ms, {}; with it the p99 was {} ms (without {} ms){}",
                ms(c.check_p50_ms * 1000.0),
                ms(c.check_p99_ms * 1000.0),
                if c.check_p50_ms > CHECK_SHARE * m.target_p99_ms {
                    format!("over {:.0}% of the target", CHECK_SHARE * 100.0)
                } else {
                    "within 10% of the target".to_string()
                },
                ms(c.p99_ms * 1000.0),
                ms(m.p99_ms * 1000.0),
                if c.met { "" } else { ": MISSED the target" }
            ),
        ),
        None => (
            format!("if_idle_over {CHECK_IF_IDLE_OVER_MS:.0}ms"),
            "only for a connection idle over 500 ms (HikariCP's rule); the check's cost was not \
             measured"
                .to_string(),
        ),
    };
    let always = check == "always";
    let settings = settings(jitter, idle_timeout_s, always);
    LifecyclePlan {
        max_lifetime_s: LIFETIME_S,
        lifetime_jitter: jitter,
        replacements_per_s,
        replacements_max_per_s,
        lifetime,
        idle_timeout_s,
        idle,
        check,
        check_run: m.check,
        check_reason,
        settings,
    }
}

/// The settings in each library's names. Where a library has no such
/// setting it says so (scenario::lifecycle's presets and docs/pools.md
/// give the versions and sources).
fn settings(jitter: f64, idle_s: Option<f64>, always: bool) -> BTreeMap<String, String> {
    let idle = |unit: f64, off: &str| match idle_s {
        Some(s) => format!("{}", s * unit),
        None => off.to_string(),
    };
    let lifetime_ms = LIFETIME_S * 1000.0;
    let spread = if jitter <= MIN_JITTER {
        String::new()
    } else {
        format!(
            " (HikariCP spreads by 2.5% only: more than {:.0} connections per instance can replace \
             over 1 a second)",
            MAX_REPLACEMENTS_PER_S * LIFETIME_S * MIN_JITTER
        )
    };
    let mut s = BTreeMap::new();
    s.insert(
        "sqlx (Rust)".to_string(),
        format!(
            "max_lifetime=Some(1800s), idle_timeout={}, test_before_acquire={always} (no jitter \
             setting: stagger instances' start)",
            idle_s.map_or("None".into(), |s| format!("Some({s}s)"))
        ),
    );
    s.insert(
        "bb8 (Rust)".to_string(),
        format!(
            "max_lifetime=Some(1800s), idle_timeout={}, test_on_check_out={always}",
            idle_s.map_or("None".into(), |s| format!("Some({s}s)"))
        ),
    );
    s.insert(
        "HikariCP (Java)".to_string(),
        format!(
            "maxLifetime={lifetime_ms:.0}, idleTimeout={}, keepaliveTime=120000 (its check: a \
             connection idle over 500 ms, always){spread}",
            idle(1000.0, "0")
        ),
    );
    s.insert(
        "asyncpg (Python)".to_string(),
        format!(
            "max_inactive_connection_lifetime={} (no lifetime setting: max_queries; no checkout \
             check)",
            idle(1.0, "0")
        ),
    );
    s.insert(
        "SQLAlchemy (Python)".to_string(),
        format!(
            "pool_recycle=1800, pool_pre_ping={} (no idle timeout: max_overflow connections close \
             on checkin)",
            if always { "True" } else { "False" }
        ),
    );
    s.insert(
        "deadpool-postgres (Rust)".to_string(),
        format!(
            "recycling_method={} (no lifetime or idle timeout settings)",
            if always { "Verified" } else { "Fast" }
        ),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measures(max: u32, min: u32, check: Option<CheckRun>) -> Measures {
        Measures {
            max,
            min,
            target_p99_ms: 10.0,
            p99_ms: 4.0,
            connect_p50_ms: Some(3.0),
            check,
        }
    }

    #[test]
    fn the_spread_keeps_replacements_under_one_a_second() {
        // 10 connections: HikariCP's 2.5% spreads them over 45 s.
        let p = recommend(&measures(10, 10, None));
        assert_eq!(p.lifetime_jitter, 0.025);
        assert!(p.replacements_max_per_s <= 1.0, "{p:?}");
        assert!((p.replacements_per_s - 10.0 / 1800.0).abs() < 1e-12);
        // 90 connections need 5%.
        let p = recommend(&measures(90, 90, None));
        assert_eq!(p.lifetime_jitter, 0.05);
        assert!(p.replacements_max_per_s <= 1.0, "{p:?}");
        assert!(p.settings["HikariCP (Java)"].contains("spreads by 2.5% only"));
        assert!(
            p.lifetime.contains("connect (p50 3.000 ms measured)"),
            "{}",
            p.lifetime
        );
    }

    #[test]
    fn the_idle_timeout_follows_min() {
        let full = recommend(&measures(8, 8, None));
        assert_eq!(full.idle_timeout_s, None);
        assert!(full.settings["asyncpg (Python)"].starts_with("max_inactive_connection_lifetime=0"));
        let growing = recommend(&measures(8, 3, None));
        assert_eq!(growing.idle_timeout_s, Some(600.0));
        assert!(
            growing.idle.contains("5 connections above min = 3"),
            "{}",
            growing.idle
        );
        assert!(growing.settings["sqlx (Rust)"].contains("idle_timeout=Some(600s)"));
    }

    #[test]
    fn the_check_policy_follows_its_measured_cost() {
        let run = |p50: f64, p99: f64| CheckRun {
            check_p50_ms: p50,
            check_p99_ms: p50 * 2.0,
            p99_ms: p99,
            met: p99 <= 10.0,
        };
        // A local round trip (0.05 ms) against 10 ms: on every checkout.
        let p = recommend(&measures(4, 4, Some(run(0.05, 4.2))));
        assert_eq!(p.check, "always");
        assert!(p.settings["sqlx (Rust)"].contains("test_before_acquire=true"));
        // 5 ms (a remote RTT): only after idleness.
        let p = recommend(&measures(4, 4, Some(run(5.0, 9.0))));
        assert_eq!(p.check, "if_idle_over 500ms");
        assert!(
            p.check_reason.contains("over 10% of the target"),
            "{}",
            p.check_reason
        );
        assert!(p.settings["sqlx (Rust)"].contains("test_before_acquire=false"));
        // Cheap but the target missed with it: not on every checkout.
        let p = recommend(&measures(4, 4, Some(run(0.5, 12.0))));
        assert_eq!(p.check, "if_idle_over 500ms");
        assert!(p.check_reason.contains("MISSED"), "{}", p.check_reason);
    }
}
