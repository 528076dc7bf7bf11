//! `custos`: the command-line tool of Custos — sessions (policies), evidence tools, the CAS
//! client, and the demo of the whole flow.
//!
//! Exit codes for every command: 0 ok/verified, 1 rejected (reasons on stderr, one line each),
//! 2 bad usage or unreadable input.
//!
//! Invoked as `scone` (a link named `scone`), it speaks the SCONE CLI's spellings for the
//! commands the SCONE sample uses ([`scone`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod attest_flags;
mod cas;
mod config;
mod demo;
mod evidence;
mod recover;
mod release_policy;
mod scone;
mod self_identity;
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
    /// Evidence tools: parse and verify SGX quotes, MAA tokens, MAA signing keys.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// The CAS: attest it and pin its key, list the attested ones, pick the default.
    #[command(subcommand)]
    Cas(cas::CasCommand),
    /// This client's identity: its certificate and key hash (the identity the CAS sees).
    #[command(name = "self", subcommand)]
    SelfIdentity(self_identity::SelfCommand),
    /// Print the simulation measurement (mrenclave) of an executable: SHA-256 of its bytes, hex.
    Mrenclave(evidence::MrenclaveArgs),
    /// Run the SCONE sample's whole flow on this machine (simulation, local Azure emulator).
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    if scone::invoked_as_scone() {
        return scone::main();
    }
    run(Cli::parse().command)
}

fn run(command: Command) -> ExitCode {
    match command {
        Command::Session(command) => session::run(command),
        Command::Evidence(command) => evidence::run(command),
        Command::Mrenclave(args) => evidence::mrenclave(args),
        Command::Cas(command) => cas::run(command),
        Command::SelfIdentity(command) => self_identity::run(command),
        Command::Demo(args) => demo::run(args),
    }
}
