//! Whose CPU a connection's setup burns. The client's: the opening
//! thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) read before and after
//! each poll of the setup's future and summed ([`Metered`]), so that other
//! tasks sharing the runtime's thread between polls are not counted; read
//! mid-poll ([`CpuMeter::now_ns`]) where a step ends (tcp, tls), and from
//! the server's first SCRAM message to the client's proof (PBKDF2). The
//! server's: the backend's pid, read from its BackendKeyData message
//! ([`Sniffer`], which watches the protocol's messages as the driver reads
//! and writes them), and its CPU time since its fork from
//! `/proc/<pid>/schedstat` (nanoseconds) at ReadyForQuery, when the server
//! runs on this machine ([`ServerView`]): poolbench's embedded server, or a
//! server at a loopback address or Unix-domain socket whose backend is
//! found to be the connection's own ([`is_backend_of`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// This thread's CPU time in nanoseconds (user and system).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CPU time a future has used so far, poll by poll. Shared by the
/// future's wrapper ([`Metered`]) and the code it runs, which reads it
/// mid-poll: every read happens on the thread polling it.
#[derive(Default)]
pub struct CpuMeter {
    /// The CPU time of the polls that ended.
    done_ns: AtomicU64,
    /// The thread's CPU clock when the current poll began.
    poll_began_ns: AtomicU64,
}

impl CpuMeter {
    /// The CPU time used so far, the current poll's included (called from
    /// within a poll of the metered future).
    pub fn now_ns(&self) -> u64 {
        self.done_ns.load(Ordering::Relaxed) + self.this_poll_ns()
    }

    /// The CPU time of the current poll so far.
    pub fn this_poll_ns(&self) -> u64 {
        thread_cpu_ns().saturating_sub(self.poll_began_ns.load(Ordering::Relaxed))
    }
}

/// A future whose polls are metered.
pub struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Arc<CpuMeter>,
}

impl<F: Future> Metered<F> {
    pub fn new(inner: F, meter: Arc<CpuMeter>) -> Metered<F> {
        Metered {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let began = thread_cpu_ns();
        self.meter.poll_began_ns.store(began, Ordering::Relaxed);
        let poll = self.inner.as_mut().poll(cx);
        let used = thread_cpu_ns().saturating_sub(began);
        self.meter.done_ns.fetch_add(used, Ordering::Relaxed);
        poll
    }
}

/// What the sniffer saw of a session's setup.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The backend's pid (BackendKeyData).
    pub backend_pid: Option<u32>,
    /// The CPU time from the server's first SCRAM message read to the
    /// client's final message written: PBKDF2 and the messages around it.
    pub scram_ns: Option<u64>,
}

/// Watches a session's protocol messages as the driver reads and writes
/// them (plaintext: over TLS, the decrypted stream), for the backend's pid
/// and the CPU that computed SCRAM's proof. Reads may split or join
/// messages: it keeps the framing across them.
pub struct Sniffer {
    meter: Arc<CpuMeter>,
    state: Mutex<SniffState>,
}

#[derive(Default)]
struct SniffState {
    /// The bytes still to skip before the next read byte counts (the
    /// answer to an SSLRequest).
    skip_first: usize,
    /// The current message's type and the header or body bytes wanted.
    header: Vec<u8>,
    /// Body bytes of the current message still to come.
    remaining: usize,
    /// The first body bytes of a message whose body is wanted ('K').
    body: Vec<u8>,
    want_body: bool,
    /// SASL responses ('p' after a SASL request) written so far.
    sasl_responses: u32,
    sasl: bool,
    /// The meter when the server's first SCRAM message arrived
    /// (AuthenticationSASLContinue).
    server_first_ns: Option<u64>,
    seen: Seen,
}

impl Sniffer {
    /// `ssl_answer`: whether the first byte read is the answer to an
    /// SSLRequest (then skipped).
    pub fn new(meter: Arc<CpuMeter>, ssl_answer: bool) -> Sniffer {
        Sniffer {
            meter,
            state: Mutex::new(SniffState {
                skip_first: usize::from(ssl_answer),
                ..SniffState::default()
            }),
        }
    }

    pub fn seen(&self) -> Seen {
        self.lock().seen
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SniffState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes the server sent, in order.
    pub fn read(&self, mut bytes: &[u8]) {
        let mut s = self.lock();
        let skip = s.skip_first.min(bytes.len());
        s.skip_first -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if s.remaining == 0 {
                // A header: type byte and length (4 bytes, itself included).
                let take = (5 - s.header.len()).min(bytes.len());
                s.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if s.header.len() == 5 {
                    let len =
                        u32::from_be_bytes([s.header[1], s.header[2], s.header[3], s.header[4]]);
                    s.remaining = (len as usize).saturating_sub(4);
                    s.want_body = matches!(s.header[0], b'K' | b'R');
                    s.body.clear();
                    if s.remaining == 0 {
                        s.header.clear();
                    }
                }
                continue;
            }
            let take = s.remaining.min(bytes.len());
            if s.want_body && s.body.len() < 4 {
                let wanted = (4 - s.body.len()).min(take);
                s.body.extend_from_slice(&bytes[..wanted]);
                if s.body.len() == 4 {
                    let value = u32::from_be_bytes([s.body[0], s.body[1], s.body[2], s.body[3]]);
                    match (s.header[0], value) {
                        (b'K', pid) => s.seen.backend_pid = Some(pid),
                        // AuthenticationSASL: the SCRAM exchange begins.
                        (_, 10) => s.sasl = true,
                        // AuthenticationSASLContinue: the server's first
                        // message, from which the proof is computed.
                        (_, 11) => s.server_first_ns = Some(self.meter.now_ns()),
                        _ => {}
                    }
                }
            }
            s.remaining -= take;
            bytes = &bytes[take..];
            if s.remaining == 0 {
                s.header.clear();
            }
        }
    }

    /// Bytes the driver writes: a buffer beginning with a 'p' message
    /// (SASLInitialResponse, then SASLResponse) after a SASL request.
    pub fn write(&self, bytes: &[u8]) {
        if bytes.first() != Some(&b'p') {
            return;
        }
        let mut s = self.lock();
        if !s.sasl {
            return;
        }
        s.sasl_responses += 1;
        if s.sasl_responses == 2 && s.seen.scram_ns.is_none() {
            // From the server's first message to the proof written (within
            // one poll, unless a read was pending between them).
            let now = self.meter.now_ns();
            s.seen.scram_ns = Some(match s.server_first_ns {
                Some(from) => now.saturating_sub(from),
                None => self.meter.this_poll_ns(),
            });
        }
    }
}

/// The CPU time (ns) process `pid` has run since it began, from
/// `/proc/<pid>/schedstat`; None when it cannot be read.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Where a target's backends run, as poolbench can see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerView {
    /// poolbench's embedded server: every backend pid is one of its
    /// processes, read without a check.
    Embedded,
    /// A server given by DSN at this machine's addresses only (loopback, or
    /// a Unix-domain socket): each backend is read once it is found to be
    /// the connection's own ([`is_backend_of`]), since the server may run
    /// in a container, whose pids name other processes here, or behind a
    /// pooler or proxy.
    Local,
    /// Another host: its processes cannot be read.
    Remote,
}

/// How a connection's backend is recognised among this machine's
/// processes, from poolbench's side of the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    /// A TCP connection from this local port: the backend's process title
    /// names it, as `host(port)`.
    ClientPort(u16),
    /// A Unix-domain socket whose listener (the postmaster, by
    /// SO_PEERCRED, in this machine's pid numbering) has this pid: the
    /// backend is its child.
    Listener(u32),
    /// Neither is known.
    Unknown,
}

/// Whether process `pid` is a PostgreSQL backend (its title begins
/// "postgres: ") serving the connection `tie` describes. A pid read from
/// BackendKeyData that names no process here, or another one, is not.
pub fn is_backend_of(pid: u32, tie: Tie) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let title = String::from_utf8_lossy(&cmdline);
    if !title.starts_with("postgres: ") {
        return false;
    }
    match tie {
        Tie::ClientPort(port) => title.contains(&format!("({port})")),
        Tie::Listener(postmaster) => parent_pid(pid) == Some(postmaster),
        Tie::Unknown => false,
    }
}

/// The parent of process `pid`, from `/proc/<pid>/stat` (the field after
/// the state, which follows the parenthesised command name).
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn finds_the_backend_pid_across_split_reads() {
        let sniffer = Sniffer::new(Arc::new(CpuMeter::default()), true);
        let mut stream = b"S".to_vec();
        stream.extend(message(b'R', &0u32.to_be_bytes()));
        stream.extend(message(b'S', b"server_version\x0015.4\x00"));
        let mut key = 4242u32.to_be_bytes().to_vec();
        key.extend_from_slice(&7u32.to_be_bytes());
        stream.extend(message(b'K', &key));
        stream.extend(message(b'Z', b"I"));
        for chunk in stream.chunks(3) {
            sniffer.read(chunk);
        }
        assert_eq!(sniffer.seen().backend_pid, Some(4242));
        assert_eq!(sniffer.seen().scram_ns, None);
    }

    #[test]
    fn the_second_sasl_response_is_scrams_proof() {
        let sniffer = Sniffer::new(Arc::new(CpuMeter::default()), false);
        sniffer.write(&message(b'p', b"md5 hash"));
        sniffer.read(&message(b'R', &10u32.to_be_bytes()));
        sniffer.write(&message(b'p', b"client-first"));
        assert_eq!(sniffer.seen().scram_ns, None);
        sniffer.read(&message(b'R', &11u32.to_be_bytes()));
        sniffer.write(&message(b'p', b"client-final"));
        assert!(sniffer.seen().scram_ns.is_some());
    }

    #[test]
    fn metered_polls_add_up_to_the_work_done() {
        let meter = Arc::new(CpuMeter::default());
        let work = async {
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x)
        };
        let before = thread_cpu_ns();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(Metered::new(work, meter.clone()));
        let spent = thread_cpu_ns() - before;
        let metered = meter.done_ns.load(Ordering::Relaxed);
        assert!(metered > 0 && metered <= spent, "{metered} of {spent}");
    }

    #[test]
    fn this_process_is_no_backend() {
        let me = std::process::id();
        assert!(parent_pid(me).is_some_and(|p| p > 0));
        assert!(!is_backend_of(me, Tie::Listener(parent_pid(me).unwrap())));
        assert!(!is_backend_of(u32::MAX, Tie::ClientPort(5432)));
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_cpu_ns(std::process::id()).unwrap() > 0);
    }
}
