//! `custos`: the command-line tool of Custos — sessions (policies), evidence tools, and later
//! the CAS client and the demo.
//!
//! Exit codes for every command: 0 ok/verified, 1 rejected (reasons on stderr, one line each),
//! 2 bad usage or unreadable input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod session;

#[derive(Debug, Parser)]
#[command(name = "custos", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sessions (policies): check them before uploading.
    #[command(subcommand)]
    Session(session::SessionCommand),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Session(command) => session::run(command),
    }
}
