//! A timer precise to tens of microseconds that sleeps in the kernel rather
//! than spinning: a timerfd woken through tokio's reactor. tokio's own timer
//! has a millisecond grain, which would add up to a millisecond of false
//! queueing to open loop's arrivals and of false delay to every flight of
//! bytes the link emulator holds back.
//!
//! timerfd is Linux's: so is poolbench (`lib.rs` refuses to build
//! elsewhere).

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Sleeps until an instant on the kernel's high-resolution timer, woken
/// through tokio's reactor (of the runtime it was created on): no thread
/// blocks, no core spins.
pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
    /// The instant the timer is armed for, if any.
    armed: Option<Instant>,
}

/// Closer than this, an instant counts as reached rather than slept for (a
/// timer's own wake-up costs about as much).
pub const TOO_CLOSE: Duration = Duration::from_micros(20);

impl PreciseTimer {
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: timerfd_create has no memory preconditions; its result is
        // checked before use and owned by the OwnedFd from then on.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a valid descriptor we just created and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `fd` is open, owned by the AsyncFd from here on, and
        // always returns the same descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(PreciseTimer { fd, armed: None })
    }

    /// Waits until `at` (at once when it is no more than [`TOO_CLOSE`] away).
    pub async fn sleep_until(&mut self, at: impl Into<Instant>) -> io::Result<()> {
        let at = at.into();
        poll_fn(|cx| self.poll_until(cx, at)).await
    }

    /// Ready once `at` is reached; otherwise arms the timer for `at` (unless
    /// it already is) and registers the task to be woken then. Asking for
    /// another instant re-arms it, so a caller may change its mind.
    pub fn poll_until(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<io::Result<()>> {
        loop {
            let now = Instant::now();
            if at <= now + TOO_CLOSE {
                self.armed = None;
                return Poll::Ready(Ok(()));
            }
            if self.armed != Some(at) {
                self.arm(at - now)?;
                self.armed = Some(at);
            }
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer we own.
            let n = unsafe {
                libc::read(
                    guard.get_inner().as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    expirations.len(),
                )
            };
            if n == 8 {
                self.armed = None;
                return Poll::Ready(Ok(()));
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock {
                return Poll::Ready(Err(err));
            }
            // Not expired yet (or expired for an earlier instant and re-armed
            // since): wait for the next readiness.
            guard.clear_ready();
        }
    }

    fn arm(&mut self, wait: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
            },
        };
        // SAFETY: the descriptor is ours and open; `spec` outlives the call;
        // a null old_value is allowed.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.get_ref().as_raw_fd(),
                0,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_timer_wakes_close_to_its_instant() {
        let mut timer = PreciseTimer::new().unwrap();
        let mut late = Vec::new();
        for _ in 0..20 {
            let at = Instant::now() + Duration::from_micros(700);
            timer.sleep_until(at).await.unwrap();
            let now = Instant::now();
            assert!(now >= at, "woke early");
            late.push(now - at);
        }
        late.sort();
        // Never early; how late depends on the machine's load (on a quiet
        // one the median is tens of microseconds), so only a hang fails.
        assert!(late[10] < Duration::from_millis(50), "{late:?}");
    }

    #[tokio::test]
    async fn a_timer_can_be_re_armed_for_an_earlier_instant() {
        let mut timer = PreciseTimer::new().unwrap();
        let start = Instant::now();
        let far = start + Duration::from_secs(5);
        let near = start + Duration::from_millis(2);
        // Armed for the far instant, then asked for the near one.
        let pending = poll_fn(|cx| Poll::Ready(timer.poll_until(cx, far).is_pending())).await;
        assert!(pending);
        timer.sleep_until(near).await.unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
