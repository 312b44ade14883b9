//! Builds the runtime, calls `poolbench::run`, maps its end to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything is woken: see engine::launcher.
    poolbench::engine::launcher::start();
    // A panic is a bug: say so in one line, without a backtrace. Unwinding
    // still runs the embedded server's Drop, which stops it and removes it.
    // (errln! never panics: a panic inside the hook would abort.)
    std::panic::set_hook(Box::new(|info| {
        poolbench::errln!("poolbench: internal error: {info} (this is a bug, please report it)");
    }));
    let cli = poolbench::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            poolbench::errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(poolbench::run(cli)) {
        // Its reader left: the run ended as on a signal, report written.
        Ok(_) if poolbench::output::closed() => ExitCode::from(poolbench::output::CLOSED_EXIT_CODE),
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => {
            poolbench::errln!("error: {err:#}");
            let code = poolbench::error::kind_of(&err).map_or(3, |k| k.exit_code());
            ExitCode::from(code)
        }
    }
}
