//! A connection held by one request, whatever source it came from, and the
//! `close` phase: giving back a connection opened for the request closes
//! it, and that is timed here; so is `reset`, a pooled connection's reset
//! on release when its pool has one. Giving it back also reads the round trips
//! the request waited for on it, when it crosses the link emulator. A
//! lease holds either engine's connection ([`AnyConnection`]); the request
//! runs its statements on it through the backend's `Connection` trait.

use std::time::Instant;

use futures_util::future::{ready, BoxFuture, Either, Ready};

use std::sync::Arc;

use super::manager::{Object, ResetPlan};
use crate::backend::{AnyConnection, Connection};
use crate::metrics::{micros, Phase, PhaseTimings};

/// A connection held by one request. Given back with [`Lease::release`];
/// a lease dropped without it belongs to an abandoned request (timed out or
/// interrupted) whose statement may still be running, so its connection is
/// closed rather than handed to the next request.
pub struct Lease {
    held: Option<Held>,
    /// When the source had it ready, if it read the clock then: the end
    /// of `acquire` is the start of `query` (one reading for both).
    got_at: Option<Instant>,
}

enum Held {
    /// Opened for this request; closed when released. Boxed, as a pooled
    /// one is (`manager::Pooled`), so that a lease is a few words.
    Owned(Box<AnyConnection>),
    /// Drawn from a pool; goes back to it when released.
    Pooled(Object),
}

impl Lease {
    pub(super) fn owned(conn: AnyConnection) -> Lease {
        Lease {
            held: Some(Held::Owned(Box::new(conn))),
            got_at: None,
        }
    }

    /// A pooled connection, got at `got_at` (where `acquire` ended).
    pub(super) fn pooled(object: Object, got_at: Instant) -> Lease {
        Lease {
            held: Some(Held::Pooled(object)),
            got_at: Some(got_at),
        }
    }

    /// When the source had the connection ready, if it read the clock
    /// then (a pool does: `acquire` ends there).
    pub fn got_at(&self) -> Option<Instant> {
        self.got_at
    }

    /// The connection, to run the request's statements on. One opened for
    /// the request has no statements prepared yet: it prepares them again,
    /// as an application's fresh connection must.
    pub fn conn(&mut self) -> &mut AnyConnection {
        // Only `release` and `drop` take the connection out, and both
        // consume the lease.
        let held = self
            .held
            .as_mut()
            .expect("a lease holds its connection until released");
        match held {
            Held::Owned(conn) => conn,
            Held::Pooled(object) => &mut object.conn,
        }
    }

    /// Gives the connection back: one opened for the request is closed
    /// (the `close` phase is how long that took); a pooled one goes back to
    /// its pool at once (nothing to close). Not an `async fn`: its future
    /// is a few words, where closing's would sit inside every request's
    /// future, to be set up and moved on every pooled request too.
    pub fn release(mut self) -> Either<Ready<Released>, BoxFuture<'static, Released>> {
        match self.held.take() {
            Some(Held::Pooled(mut object)) => {
                if let Some(plan) = object.reset.clone() {
                    return Either::Right(Box::pin(reset(object, plan)));
                }
                let round_trips = object.round_trips();
                drop(object);
                Either::Left(ready(Released {
                    round_trips,
                    ..Released::default()
                }))
            }
            Some(Held::Owned(conn)) => Either::Right(Box::pin(close(*conn))),
            None => Either::Left(ready(Released::default())),
        }
    }
}

/// Closes a connection opened for the request, timed as `close`.
async fn close(conn: AnyConnection) -> Released {
    let started = Instant::now();
    // Every round trip of the connection's life, which was the request's:
    // its setup and its statements.
    let round_trips = conn.close().await;
    Released {
        close_us: Some(micros(started.elapsed())),
        round_trips,
        ..Released::default()
    }
}

/// Resets a pooled connection before it goes back, timed as `reset`; its
/// round trips are the request's (it waits for them, as an application's
/// release does). One whose reset fails is closed, not given back.
async fn reset(mut object: Object, plan: Arc<ResetPlan>) -> Released {
    let started = Instant::now();
    let mut ok = true;
    for sql in &plan.queries {
        if object.conn.simple(sql).await.is_err() {
            ok = false;
            break;
        }
    }
    if plan.forgets_statements {
        object.conn.forget_statements();
    }
    let reset_us = Some(micros(started.elapsed()));
    let round_trips = object.round_trips();
    if ok {
        drop(object);
    } else {
        drop(Object::take(object));
    }
    Released {
        reset_us,
        round_trips,
        ..Released::default()
    }
}

/// What giving a connection back measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct Released {
    /// The `close` phase, for a connection opened for the request.
    pub close_us: Option<u64>,
    /// The `reset` phase, for a pooled connection whose pool resets.
    pub reset_us: Option<u64>,
    /// Round trips the request waited for on this connection (only across
    /// the link emulator).
    pub round_trips: Option<u32>,
}

impl Released {
    /// Adds what was measured to a request's timings.
    pub fn record(&self, t: &mut PhaseTimings) {
        if let Some(us) = self.close_us {
            t.set(Phase::Close, us);
        }
        if let Some(us) = self.reset_us {
            t.set(Phase::Reset, us);
        }
        if let Some(n) = self.round_trips {
            t.set_round_trips(n);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(Held::Pooled(object)) = self.held.take() {
            // Detached from the pool and dropped: the connection closes and
            // the pool opens a new one when it needs it.
            drop(Object::take(object));
        }
    }
}
