//! Writing to stdout and stderr without ever panicking. `println!` panics
//! when the reader has gone (`poolbench run … | head -1`: Rust ignores
//! SIGPIPE, so the write fails with EPIPE), and a panic while printing the
//! panic aborts. Every line poolbench prints goes through [`out!`],
//! [`outln!`], [`err!`] and [`errln!`] instead: a write that fails marks
//! that stream closed (nothing more is written to it) and ends the run the
//! way a signal does, by cancelling the tokens registered with
//! [`cancel_on_close`]: the partial report is written, the embedded server
//! stopped and its directory removed, and poolbench exits
//! [`CLOSED_EXIT_CODE`], as a program killed by SIGPIPE would.
//!
//! [`out!`]: crate::out
//! [`outln!`]: crate::outln
//! [`err!`]: crate::err
//! [`errln!`]: crate::errln

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

/// The exit code after stdout or stderr was closed under poolbench: 128 +
/// SIGPIPE, what a shell shows for a program its pipe's reader left.
pub const CLOSED_EXIT_CODE: u8 = 141;

static OUT_CLOSED: AtomicBool = AtomicBool::new(false);
static ERR_CLOSED: AtomicBool = AtomicBool::new(false);
static ON_CLOSE: Mutex<Vec<CancellationToken>> = Mutex::new(Vec::new());

/// Whether a write to stdout or stderr has failed.
pub fn closed() -> bool {
    OUT_CLOSED.load(Ordering::Relaxed) || ERR_CLOSED.load(Ordering::Relaxed)
}

/// Cancels `token` when an output closes (at once if one already has).
pub fn cancel_on_close(token: CancellationToken) {
    if closed() {
        token.cancel();
    }
    tokens().push(token);
}

fn tokens() -> std::sync::MutexGuard<'static, Vec<CancellationToken>> {
    // A token list is still valid after a panic elsewhere.
    ON_CLOSE.lock().unwrap_or_else(|e| e.into_inner())
}

#[doc(hidden)]
pub fn write_out(args: fmt::Arguments) {
    write(&mut io::stdout().lock(), &OUT_CLOSED, args);
}

#[doc(hidden)]
pub fn write_err(args: fmt::Arguments) {
    write(&mut io::stderr().lock(), &ERR_CLOSED, args);
}

fn write(stream: &mut dyn Write, closed: &AtomicBool, args: fmt::Arguments) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if stream
        .write_fmt(args)
        .and_then(|()| stream.flush())
        .is_err()
    {
        closed.store(true, Ordering::Relaxed);
        for token in tokens().iter() {
            token.cancel();
        }
    }
}

/// `print!` that never panics (see the module).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}

/// `println!` that never panics (see the module).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics (see the module).
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics (see the module).
#[macro_export]
macro_rules! errln {
    () => {
        $crate::output::write_err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}
