//! `rem`: the command-line interface of the REM database (see the library, `rem_cli`).

use std::process::ExitCode;

// glibc's allocator returns large blocks to the OS and faults them in again on the next
// use; the embedding model allocates a fresh tensor per operation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A panic is a bug; still, users get one sentence rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        // A document parser that panics fails its file only; the ingest reports it.
        if std::thread::current().name() == Some(rem_ingest::EXTRACT_THREAD) {
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        eprintln!("error: internal error ({msg}); please report it");
    }));
    // Tests pin a crash inside a multi-step operation (RELIABILITY.md, "Snapshots").
    if let Some(point) = std::env::var_os("P8_KILL_POINT") {
        rem::arm_kill_point(&point.to_string_lossy());
    }
    let mut session = rem_cli::Session::from_process();
    rem_cli::run(std::env::args_os(), &mut session)
}
