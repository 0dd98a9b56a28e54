//! The `kaswatch` binary: parse the command line, run the subcommand from the
//! library, print one line per error and map it to the exit code (0 ok,
//! 1 input/runtime error, 2 usage error). Never a panic or a backtrace.

use clap::Parser;
use kaswatch::cli::{Cli, Command};

fn main() {
    // A panic would be a bug: report it in one line, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("kaswatch: internal error: {info}");
    }));
    let cli = Cli::parse();
    let r = match &cli.command {
        Command::Read(a) => kaswatch::run::cmd_read(a),
        Command::Live(a) => kaswatch::live::cmd_live(a),
        Command::CheckSignatures(a) => kaswatch::run::cmd_check(a),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("kaswatch: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
