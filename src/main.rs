//! Builds the runtime, calls `poolbench::run`, maps its end to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A panic is a bug: say so in one line, without a backtrace. Unwinding
    // still runs the embedded server's Drop, which stops it and removes it.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("poolbench: internal error: {info} (this is a bug, please report it)");
    }));
    let cli = poolbench::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(poolbench::run(cli)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => {
            eprintln!("error: {err:#}");
            let code = poolbench::error::kind_of(&err).map_or(3, |k| k.exit_code());
            ExitCode::from(code)
        }
    }
}
