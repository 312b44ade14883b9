//! Running as one of several synchronised copies of poolbench (a Kubernetes
//! Indexed Job, a CI matrix): the wall-clock start the copies share
//! (`--start-at`) and the wait for it, the slot each strategy and round
//! measures in so every copy shares every window, each copy's own seed, and
//! this machine's clock measured against the server's.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::backend::Admin;
use crate::report::Copies;

/// How long after `--start-at` a copy may still begin: a copy launched just
/// at the start time has not missed it.
pub const GRACE: Duration = Duration::from_secs(1);

/// Time between one slot's warm-up + measured window and the next slot's
/// start: room for the last requests, closing the pool and filling the next.
pub const SLOT_GAP: Duration = Duration::from_secs(3);

/// How long before its slot a round is handed to the engine, which opens
/// the pool meanwhile and begins warm-up at the slot's start exactly.
pub const PREPARE: Duration = Duration::from_secs(2);

/// What makes this process one copy among several.
#[derive(Debug, Clone, Copy, Default)]
pub struct Instance {
    pub start_at: Option<SystemTime>,
    pub index: Option<u32>,
}

impl Instance {
    /// Checks the start time against the clock: one already past by
    /// [`GRACE`] or more is an error (the copies would not share a window).
    pub fn new(start_at: Option<SystemTime>, index: Option<u32>) -> Result<Instance, String> {
        if let Some(at) = start_at {
            check_not_past(at, SystemTime::now())?;
        }
        Ok(Instance { start_at, index })
    }

    /// The seed this copy's workers draw from: the scenario's for index 0 (or
    /// none), so one copy repeats a plain run; a different stream for every
    /// other index, so copies do not send identical requests.
    pub fn seed(&self, base: u64) -> u64 {
        match self.index {
            None | Some(0) => base,
            Some(i) => splitmix64(base ^ u64::from(i).wrapping_mul(0xD1B5_4A32_D192_ED03)),
        }
    }

    /// Whether this process takes part in a synchronised run at all.
    pub fn is_copy(&self) -> bool {
        self.start_at.is_some() || self.index.is_some()
    }

    /// What the report records of this copy: its index, the start time, and
    /// (for a copy) its clock against the server's, read on the session's
    /// `admin` connection (None where the engine's clock is not read:
    /// MySQL's).
    pub async fn record(&self, admin: &impl Admin) -> Copies {
        Copies {
            instance_index: self.index,
            start_at: self.start_at.map(rfc3339),
            clock_offset_ms: if self.is_copy() {
                clock_offset_ms(admin).await
            } else {
                None
            },
            inputs: Vec::new(),
        }
    }

    /// The slots of this run, when it has a start time.
    pub fn slots(&self, warmup: Duration, duration: Duration) -> Option<Slots> {
        self.start_at.map(|start| Slots {
            start,
            every: warmup + duration + SLOT_GAP,
            next: 0,
        })
    }
}

/// "--start-at … is 12s in the past" when `at` is [`GRACE`] or more before `now`.
pub fn check_not_past(at: SystemTime, now: SystemTime) -> Result<(), String> {
    match now.duration_since(at) {
        Ok(late) if late >= GRACE => Err(format!(
            "--start-at {} is {} in the past (now {}): choose a time ahead of every copy's \
             start, e.g. $(date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ)",
            rfc3339(at),
            humantime::format_duration(Duration::from_secs(late.as_secs())),
            humantime::format_rfc3339_seconds(now)
        )),
        _ => Ok(()),
    }
}

/// The start of every strategy and round at fixed offsets from `--start-at`,
/// the same on every copy: slot k starts at start + k × (warm-up + duration
/// + [`SLOT_GAP`]), taken in the order the strategies (rounds, points) run.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    start: SystemTime,
    every: Duration,
    /// The slot the next call to [`Slots::next`] waits for.
    next: u32,
}

impl Slots {
    pub fn at(&self, slot: u32) -> SystemTime {
        self.start + self.every * slot
    }

    /// Waits until the next slot is [`PREPARE`] away (counting down to it
    /// on stderr for the first slot when `show`) and returns its start, for
    /// the engine: it fills the pool meanwhile and begins warm-up at that
    /// start exactly. Warns when the slot has already begun (the one before
    /// it overran). None if the run was cancelled meanwhile.
    pub async fn next(
        &mut self,
        label: &str,
        show: bool,
        cancel: &CancellationToken,
    ) -> Option<SystemTime> {
        let slot = self.next;
        self.next += 1;
        let at = self.at(slot);
        if let Ok(late) = SystemTime::now().duration_since(at) {
            if late >= GRACE {
                crate::errln!(
                    "poolbench: warning: {label} starts {} after its slot ({}): other copies \
                     measured it earlier, so their windows overlap less",
                    humantime::format_duration(Duration::from_millis(late.as_millis() as u64)),
                    rfc3339(at)
                );
            }
        }
        let ready = wait_until(at, PREPARE, label, show && slot == 0, cancel).await;
        ready.then_some(at)
    }
}

/// Sleeps until `early` before the wall-clock time `at`, showing a
/// countdown to `at` on stderr when `show` (a live line on a terminal, a
/// line every 10 s in a log). The clock is read again at least every second,
/// so a clock stepped meanwhile (NTP) still ends the wait on time. False if
/// cancelled.
pub async fn wait_until(
    at: SystemTime,
    early: Duration,
    label: &str,
    show: bool,
    cancel: &CancellationToken,
) -> bool {
    let terminal = std::io::stderr().is_terminal();
    let mut last_logged: Option<u64> = None;
    while let Ok(left) = at.duration_since(SystemTime::now()) {
        let Some(wait) = left.checked_sub(early).filter(|w| !w.is_zero()) else {
            break;
        };
        if show {
            let secs = left.as_secs_f64().ceil() as u64;
            if terminal {
                crate::err!(
                    "\rpoolbench: {label} starts at {} — in {secs} s   ",
                    rfc3339(at)
                );
            } else if last_logged.is_none_or(|l| secs / 10 < l / 10) {
                crate::errln!("poolbench: {label} starts at {} — in {secs} s", rfc3339(at));
                last_logged = Some(secs);
            }
        }
        let step = wait.min(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = cancel.cancelled() => break,
        }
    }
    if show && terminal {
        crate::errln!();
    }
    !cancel.is_cancelled()
}

/// RFC 3339 UTC with milliseconds when there are any.
pub fn rfc3339(t: SystemTime) -> String {
    let millis = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    if millis == 0 {
        humantime::format_rfc3339_seconds(t).to_string()
    } else {
        humantime::format_rfc3339_millis(t).to_string()
    }
}

/// The server's clock minus this machine's, in milliseconds: the best of a
/// few round trips (the one with the shortest round trip bounds the error
/// best, by half of it). None if the server does not answer.
pub async fn clock_offset_ms(admin: &impl Admin) -> Option<f64> {
    let mut best: Option<(Duration, f64)> = None;
    for _ in 0..5 {
        let before = SystemTime::now();
        let server_ms = admin.clock_ms().await?;
        let after = SystemTime::now();
        let rtt = after.duration_since(before).unwrap_or_default();
        let local_ms = unix_ms_f64(before) + rtt.as_secs_f64() * 500.0;
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, server_ms - local_ms));
        }
    }
    best.map(|(_, offset)| (offset * 10.0).round() / 10.0)
}

fn unix_ms_f64(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// splitmix64's finaliser: a well-mixed 64-bit value from any input.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn a_start_less_than_a_second_ago_is_accepted() {
        let at = t("2026-11-22T10:00:00Z");
        assert!(check_not_past(at, at + Duration::from_millis(999)).is_ok());
        assert!(check_not_past(at, at - Duration::from_secs(60)).is_ok());
        let err = check_not_past(at, at + Duration::from_secs(12)).unwrap_err();
        assert!(
            err.contains("2026-11-22T10:00:00Z is 12s in the past"),
            "{err}"
        );
    }

    #[test]
    fn slots_follow_one_another_at_fixed_offsets() {
        let at = t("2026-11-22T10:00:00Z");
        let instance = Instance {
            start_at: Some(at),
            index: Some(1),
        };
        let slots = instance
            .slots(Duration::from_secs(2), Duration::from_secs(10))
            .unwrap();
        assert_eq!(slots.at(0), at);
        assert_eq!(slots.at(2), at + Duration::from_secs(2 * 15));
        assert!(Instance::default()
            .slots(Duration::ZERO, Duration::ZERO)
            .is_none());
    }

    #[test]
    fn index_zero_keeps_the_seed_and_others_differ() {
        let seed = |index| {
            Instance {
                start_at: None,
                index,
            }
            .seed(42)
        };
        assert_eq!(seed(None), 42);
        assert_eq!(seed(Some(0)), 42);
        let others: std::collections::BTreeSet<u64> = (1..100).map(|i| seed(Some(i))).collect();
        assert_eq!(others.len(), 99);
        assert!(!others.contains(&42));
    }

    #[tokio::test]
    async fn waiting_ends_at_the_time_or_on_cancel() {
        let cancel = CancellationToken::new();
        let at = SystemTime::now() + Duration::from_millis(150);
        assert!(wait_until(at, Duration::ZERO, "test", false, &cancel).await);
        assert!(SystemTime::now() >= at);
        let at = SystemTime::now() + Duration::from_millis(1200);
        assert!(wait_until(at, Duration::from_secs(1), "test", false, &cancel).await);
        let left = at.duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_millis(900), "{left:?}");
        let far = SystemTime::now() + Duration::from_secs(3600);
        cancel.cancel();
        assert!(!wait_until(far, Duration::ZERO, "test", false, &cancel).await);
    }
}
