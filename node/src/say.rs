//! Status lines: what a command did or is doing, on stderr, for a person.
//! `-q` silences them (errors still show); `-qq` silences errors too, and
//! the exit code alone tells what happened.

use std::sync::atomic::{AtomicU8, Ordering};

/// How many `-q` were given. Set once by `main`, like the log filter.
static QUIET: AtomicU8 = AtomicU8::new(0);

pub(crate) fn set_quiet(level: u8) {
    QUIET.store(level, Ordering::Relaxed);
}

/// 0: everything; 1: errors only; 2: nothing.
pub(crate) fn quiet() -> u8 {
    QUIET.load(Ordering::Relaxed)
}

/// `eprintln!` for status lines: nothing under `-q`.
macro_rules! status {
    ($($arg:tt)*) => {
        if $crate::say::quiet() == 0 {
            eprintln!($($arg)*);
        }
    };
}
pub(crate) use status;
