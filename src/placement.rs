//! Keeping a server poolbench started on the CPU of the client thread that
//! sends it its queries: each backend pinned to its thread's CPU.
//!
//! Why: on a machine where client and server share the CPUs, a pooled
//! run's throughput has two modes ~10% apart, set by where the kernel forks
//! each backend (docs/performance.md, "Where the kernel runs the
//! backends"): a backend on another CPU than its client thread costs an
//! interrupt per query and stays there for the whole run. When the worker
//! threads are pinned one per CPU (`engine::shard`), a measured
//! connection's backend is pinned to its opening thread's CPU as soon as
//! the connection is set up ([`pin_backend`]: its pid is the one the
//! server's BackendKeyData gave, checked to be the connection's own), so
//! that no part of a round runs with a backend on the other CPU. The
//! connections the driver opens without that check are caught by the
//! session's once-a-second monitor: each connection's local port is noted
//! with its thread's CPU as it is opened ([`note_connection`]), and the
//! monitor reads the server's backends (pid, client port) and pins each new
//! one to the CPU noted for its port ([`place`]); a MariaDB server's
//! connection threads the same way (their thread ids and ports from its
//! PROCESSLIST), given their server's CPUs back when the session ends
//! ([`release`]): MariaDB keeps a closed connection's thread for the next
//! client. Only for a throwaway server of
//! poolbench's on this machine (the embedded one, or `poolbench server` on
//! a loopback address, [`enable`]): another server's processes are its
//! own, and a pid from a remote server names nothing here.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

static ENABLED: AtomicBool = AtomicBool::new(false);
static PINNED: AtomicU64 = AtomicU64::new(0);

/// Local port of each connection opened on a pinned thread → that CPU; the
/// backends already pinned (pid, port), so each is pinned once. Ports are
/// at most 65,536, so the map stays bounded however many fresh connections
/// a run opens.
#[derive(Default)]
struct Registry {
    cpu_of_port: HashMap<u16, usize>,
    pinned: HashSet<(i32, u16)>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// How many CPUs this process may run on (its affinity mask, and a
/// cgroup's CPU quota when lower).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Places the backends of this process's connections from now on.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether backends are placed (a throwaway server on this machine).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Backends pinned so far by this process.
pub fn pinned() -> u64 {
    PINNED.load(Ordering::Relaxed)
}

/// Called on the thread that opened a TCP connection from `local_port`:
/// notes the thread's CPU when the thread is pinned to one.
pub fn note_connection(local_port: u16) {
    if !enabled() {
        return;
    }
    let Some(cpu) = only_cpu() else {
        return;
    };
    if let Ok(mut r) = REGISTRY.lock() {
        r.get_or_insert_with(Registry::default)
            .cpu_of_port
            .insert(local_port, cpu);
    }
}

/// Pins `pid`, the backend of a connection this thread just set up from
/// `local_port` (None over a Unix-domain socket), to this thread's CPU when
/// the thread is pinned to one. The caller has checked that `pid` is the
/// connection's backend on this machine (`connect.rs`: BackendKeyData from
/// poolbench's own server, or a local backend found to serve this port).
/// The monitor then leaves it alone. Returns whether it was pinned.
pub fn pin_backend(pid: u32, local_port: Option<u16>) -> bool {
    if !enabled() {
        return false;
    }
    let (Some(cpu), Ok(pid)) = (only_cpu(), i32::try_from(pid)) else {
        return false;
    };
    if pid <= 0 || !pin(pid, cpu) {
        return false;
    }
    if let (Some(port), Ok(mut r)) = (local_port, REGISTRY.lock()) {
        r.get_or_insert_with(Registry::default)
            .pinned
            .insert((pid, port));
    }
    PINNED.fetch_add(1, Ordering::Relaxed);
    true
}

/// Pins each backend `(pid, client_port)` whose port was noted, once.
/// Best effort: a backend that cannot be pinned (gone, or not ours to
/// move) is left where it is. Returns how many were pinned now.
pub fn place(backends: &[(i32, u16)]) -> usize {
    if !enabled() {
        return 0;
    }
    let Ok(mut guard) = REGISTRY.lock() else {
        return 0;
    };
    let Some(r) = guard.as_mut() else {
        return 0;
    };
    let mut placed = 0;
    for &(pid, port) in backends {
        if pid <= 0 || r.pinned.contains(&(pid, port)) {
            continue;
        }
        let Some(&cpu) = r.cpu_of_port.get(&port) else {
            continue;
        };
        if is_server(pid) && pin(pid, cpu) {
            r.pinned.insert((pid, port));
            placed += 1;
        }
    }
    PINNED.fetch_add(placed as u64, Ordering::Relaxed);
    placed
}

/// The one CPU the calling thread may run on, if it is pinned.
fn only_cpu() -> Option<usize> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set,
    // and the kernel writes at most the size it is given.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    // SAFETY: every index is below the set's capacity.
    let mut cpus = (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    match (cpus.next(), cpus.next()) {
        (Some(cpu), None) => Some(cpu),
        _ => None,
    }
}

/// Whether `pid` is a PostgreSQL process or a MariaDB thread here (a last
/// check that the id the server gave names its backend on this machine).
fn is_server(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| matches!(c.trim(), "postgres" | "mariadbd"))
}

/// Gives every server thread this process pinned that outlives its
/// connection its server's CPUs back (a MariaDB connection thread, kept by
/// the server for its next client: a server of `poolbench server` serves
/// others after this session). A PostgreSQL backend is a process of its
/// own and ends with its connection: left as it is. Called when the
/// session ends.
pub fn release() {
    let pinned: Vec<i32> = match REGISTRY.lock() {
        Ok(mut r) => r
            .as_mut()
            .map(|r| r.pinned.drain().map(|(pid, _)| pid).collect())
            .unwrap_or_default(),
        Err(_) => return,
    };
    release_threads(&pinned);
}

/// Each of `tids` that is a thread of another process's (not its own
/// thread group's leader) gets that process's CPUs. Returns how many.
fn release_threads(tids: &[i32]) -> usize {
    tids.iter()
        .filter(|&&tid| {
            thread_group(tid)
                .filter(|&leader| leader != tid)
                .is_some_and(|leader| same_cpus(tid, leader))
        })
        .count()
}

/// The process (thread group) that thread `tid` belongs to.
fn thread_group(tid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Lets `tid` run where `leader` may.
fn same_cpus(tid: i32, leader: i32) -> bool {
    // SAFETY: as in `only_cpu`: a plain bit array, written by the kernel at
    // most to the size it is given, then read by it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        libc::sched_getaffinity(leader, size, &mut set) == 0
            && libc::sched_setaffinity(tid, size, &set) == 0
    }
}

/// Keeps process `pid` on `cpu`.
fn pin(pid: i32, cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: as in `only_cpu`; `cpu` is below the set's capacity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_notes_its_cpu_and_an_unknown_port_is_left_alone() {
        // Not enabled: nothing is noted or placed.
        note_connection(1);
        assert_eq!(place(&[(std::process::id() as i32, 1)]), 0);
        enable();
        let cpu = std::thread::spawn(|| {
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            unsafe {
                libc::CPU_SET(0, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            note_connection(2);
            only_cpu()
        })
        .join()
        .unwrap();
        assert_eq!(cpu, Some(0));
        let r = REGISTRY.lock().unwrap();
        assert_eq!(r.as_ref().unwrap().cpu_of_port.get(&2), Some(&0));
        drop(r);
        // This test process is not a postgres backend, and port 3 was never
        // noted: neither is pinned.
        let me = std::process::id() as i32;
        assert_eq!(place(&[(me, 2), (me, 3)]), 0);

        // A process handed to `pin_backend` from a pinned thread goes to
        // that thread's CPU, and is then left alone by `place`.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let before = pinned();
        let cpu = std::thread::spawn(move || {
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            unsafe {
                libc::CPU_SET(0, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            pin_backend(pid, Some(4))
        })
        .join()
        .unwrap();
        assert!(cpu);
        assert_eq!(pinned(), before + 1);
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::sched_getaffinity(pid as i32, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
        };
        assert_eq!(rc, 0);
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        assert_eq!(cpus, vec![0]);
        assert!(REGISTRY
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .pinned
            .contains(&(pid as i32, 4)));
        // From an unpinned thread (this one may run anywhere): not pinned.
        let anywhere = std::thread::spawn(move || {
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            unsafe {
                libc::CPU_SET(0, &mut set);
                libc::CPU_SET(1, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            pin_backend(pid, None)
        })
        .join()
        .unwrap();
        assert!(!anywhere || super::cpus() < 2);
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_released_thread_runs_where_its_process_may_and_a_process_is_left_alone() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tx.send(unsafe { libc::gettid() }).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        assert!(pin(tid, 0));
        let cpus_of = |pid: i32| {
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            let rc = unsafe {
                libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
            };
            assert_eq!(rc, 0);
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
                .collect::<Vec<_>>()
        };
        assert_eq!(cpus_of(tid), vec![0]);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let child_pid = child.id() as i32;
        assert!(pin(child_pid, 0));
        // The thread gets this process's CPUs; the child, a process of its
        // own (a backend), stays where it was put.
        assert_eq!(release_threads(&[tid, child_pid, -1]), 1);
        assert_eq!(cpus_of(tid), cpus_of(std::process::id() as i32));
        assert_eq!(cpus_of(child_pid), vec![0]);
        let _ = child.kill();
        let _ = child.wait();
        done_tx.send(()).unwrap();
        thread.join().unwrap();
    }
}
