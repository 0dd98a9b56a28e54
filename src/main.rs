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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            // One line: the message up to the usage block, then a pointer to --help.
            let text = e.render().to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let msg = msg.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            eprintln!("kaswatch: {msg} (see kaswatch --help)");
            std::process::exit(2);
        }
    };
    let r = match &cli.command {
        Command::Read(a) => kaswatch::run::cmd_read(a),
        Command::Live(a) => kaswatch::live::cmd_live(a),
        Command::CheckSignatures(a) => kaswatch::run::cmd_check(a),
        Command::Man(a) => kaswatch::cli::cmd_man(a),
        Command::Completions(a) => kaswatch::cli::cmd_completions(a),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("kaswatch: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
