//! Where a command's output goes: this process's stdout, stderr and stdin — or, when
//! the command runs inside a server on behalf of another `rem` process (`Execute`),
//! buffers returned to that process.

use std::cell::RefCell;
use std::io::{BufRead, Cursor, Write};

struct Capture {
    out: Vec<u8>,
    err: Vec<u8>,
    stdin: Option<Cursor<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// True while output is captured (never a terminal then).
pub(crate) fn captured() -> bool {
    CAPTURE.with(|c| c.borrow().is_some())
}

/// Runs `f` with stdout and stderr captured and `stdin` as its input; returns what
/// `f` returned and the two outputs.
pub(crate) fn capture<R>(stdin: Vec<u8>, f: impl FnOnce() -> R) -> (R, Vec<u8>, Vec<u8>) {
    CAPTURE.with(|c| {
        *c.borrow_mut() = Some(Capture {
            out: Vec::new(),
            err: Vec::new(),
            stdin: Some(Cursor::new(stdin)),
        })
    });
    let r = f();
    let cap = CAPTURE.with(|c| c.borrow_mut().take());
    let (out, err) = cap.map(|c| (c.out, c.err)).unwrap_or_default();
    (r, out, err)
}

/// Runs `f` with the command's stdout.
pub(crate) fn with_out<R>(f: impl FnOnce(&mut dyn Write) -> R) -> R {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(cap) => f(&mut cap.out),
        None => f(&mut std::io::stdout().lock()),
    })
}

/// Runs `f` with the command's stderr.
pub(crate) fn with_err<R>(f: impl FnOnce(&mut dyn Write) -> R) -> R {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(cap) => f(&mut cap.err),
        None => f(&mut std::io::stderr().lock()),
    })
}

/// The command's stdin.
pub(crate) fn stdin() -> Box<dyn BufRead> {
    let captured = CAPTURE.with(|c| c.borrow_mut().as_mut().map(|cap| cap.stdin.take()));
    match captured {
        Some(Some(cursor)) => Box::new(cursor),
        Some(None) => Box::new(Cursor::new(Vec::new())),
        None => Box::new(std::io::stdin().lock()),
    }
}

/// `println!` to the command's stdout (a closed pipe is not an error worth a panic).
macro_rules! outln {
    ($($t:tt)*) => {
        {
            let line = format!($($t)*);
            $crate::io::with_out(|w| { let _ = writeln!(w, "{line}"); })
        }
    };
}

/// `eprintln!` to the command's stderr.
macro_rules! errln {
    ($($t:tt)*) => {
        {
            let line = format!($($t)*);
            $crate::io::with_err(|w| { let _ = writeln!(w, "{line}"); })
        }
    };
}

pub(crate) use {errln, outln};
