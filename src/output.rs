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
//! Every line also passes through [`printable`] on its way out: a
//! control character in a name from a report or in a server's error
//! message (ESC, BEL, a carriage return) is shown as its escape (`\u{1b}`)
//! instead of retitling, clearing or rewriting the user's terminal.
//!
//! [`out!`]: crate::out
//! [`outln!`]: crate::outln
//! [`err!`]: crate::err
//! [`errln!`]: crate::errln

use std::borrow::Cow;
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
    let text: Cow<str> = match args.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(args.to_string()),
    };
    if stream
        .write_all(printable(&text).as_bytes())
        .and_then(|()| stream.flush())
        .is_err()
    {
        closed.store(true, Ordering::Relaxed);
        for token in tokens().iter() {
            token.cancel();
        }
    }
}

/// `text` as a terminal may show it: every control character but a line
/// feed and a tab (C0, DEL, C1: ESC starts a terminal command, BEL rings,
/// CR overwrites the line, U+009B is a one-byte ESC [), and the bidi
/// overrides that reorder what follows them, written as its escape,
/// `\u{1b}`. The one escaping of terminal output: [`out!`] and
/// [`err!`] apply it to everything they print.
///
/// [`out!`]: crate::out
/// [`err!`]: crate::err
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
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

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("pool-8\tok\n"), "pool-8\tok\n");
        assert_eq!(
            printable("x\u{1b}]0;owned\u{7}\r\u{9b}2J\u{7f}"),
            "x\\u{1b}]0;owned\\u{7}\\u{d}\\u{9b}2J\\u{7f}"
        );
        assert_eq!(printable("µs ≤ 5 ◀ knee"), "µs ≤ 5 ◀ knee");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
    }
}
