//! `custos` invoked as `scone` (through a link of that name): the SCONE CLI's command lines
//! for the commands the SCONE sample and its scripts use — `scone cas attest|list|set-default`,
//! `scone session create|update|verify|read`, `scone self show|show-key-hash|show-certificate`
//! — so they run unchanged. Other SCONE commands and options are refused, naming them.
//!
//! This module only translates SCONE's command line; the `custos` commands do the work.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cas::{CasCommand, fail};
use crate::self_identity::SelfCommand;

/// Whether this process was started under the name `scone`.
pub(crate) fn invoked_as_scone() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|argv0| Path::new(&argv0).file_name().is_some_and(|n| n == "scone"))
}

const IMPLEMENTED: &str = "as `scone`, Custos implements `self show|show-key-hash|show-certificate`, `cas attest|list|set-default` and `session create|update|verify|read`";

#[derive(Debug, Parser)]
#[command(
    name = "scone",
    version,
    about = "Custos invoked as `scone`: the SCONE CLI's commands that the SCONE sample uses",
    long_about = None
)]
struct SconeCli {
    /// SCONE's configuration file option: refused.
    #[arg(short = 'c', long = "config", hide = true)]
    config: Option<String>,
    /// SCONE's output redirection: refused.
    #[arg(short = 'o', hide = true)]
    output: Option<String>,
    #[command(subcommand)]
    command: SconeCommand,
}

#[derive(Debug, Subcommand)]
enum SconeCommand {
    /// This client's identity: its certificate and key hash.
    #[command(name = "self", subcommand)]
    SelfIdentity(SconeSelf),
    /// Attest a CAS and pin its key, list the attested ones, pick the default.
    #[command(subcommand)]
    Cas(SconeCas),
    /// Sessions in the attested CAS.
    #[command(subcommand)]
    Session(SconeSession),
    #[command(external_subcommand)]
    Other(Vec<OsString>),
}

#[derive(Debug, Subcommand)]
enum SconeSelf {
    #[command(flatten)]
    Custos(SelfCommand),
    #[command(external_subcommand)]
    Other(Vec<OsString>),
}

#[derive(Debug, Subcommand)]
enum SconeCas {
    /// Attest a CAS instance: verify its evidence, pin its key, make it the default.
    Attest(Box<crate::cas::AttestArgs>),
    /// List the attested CAS instances (the default is marked `*`).
    List,
    /// Make an attested CAS the default.
    SetDefault {
        /// The CAS address.
        cas: String,
    },
    #[command(external_subcommand)]
    Other(Vec<OsString>),
}

#[derive(Debug, Subcommand)]
enum SconeSession {
    /// Upload a new session to the CAS.
    Create(SconeUpload),
    /// Replace a session in the CAS; `predecessor` is filled in from the CAS when absent.
    Update(SconeUpload),
    /// Check that the CAS holds exactly this session; prints its hash.
    Verify(SconeUpload),
    /// Print a session stored in the CAS.
    Read(SconeRead),
    #[command(external_subcommand)]
    Other(Vec<OsString>),
}

#[derive(Debug, Args)]
struct SconeUpload {
    #[command(flatten)]
    connection: SconeConnection,
    /// Replace a template variable with this value.
    #[arg(short = 'e', value_name = "VAR=VALUE")]
    variables: Vec<String>,
    /// Replace template variables with the process's environment variables.
    #[arg(long)]
    use_env: bool,
    /// Use the file as it is, without variable replacement (also the default without -e and --use-env).
    #[arg(long, conflicts_with_all = ["variables", "use_env"])]
    verbatim: bool,
    /// SCONE's session name override: refused.
    #[arg(short = 'n', long = "name", hide = true)]
    name: Option<String>,
    /// SCONE's warnings-as-errors switch: refused.
    #[arg(long, hide = true)]
    fail_on_warning: bool,
    /// The session file.
    file: PathBuf,
}

#[derive(Debug, Args)]
struct SconeRead {
    #[command(flatten)]
    connection: SconeConnection,
    /// The session's name.
    name: String,
}

/// The options SCONE's session commands share for reaching the CAS.
#[derive(Debug, Args)]
struct SconeConnection {
    /// The CAS to use (attested before); default: the default CAS.
    #[arg(short = 'c', long = "cas", value_name = "CAS")]
    cas: Option<String>,
    #[arg(long, hide = true, value_name = "IDENTITY")]
    identity: Option<String>,
    #[arg(
        long = "only_for_testing-disable-attestation-verification",
        hide = true
    )]
    disable_attestation_verification: bool,
    #[arg(long, hide = true, value_name = "COUNT")]
    retries: Option<String>,
}

impl SconeConnection {
    fn refusal(&self) -> Option<&'static str> {
        if self.identity.is_some() {
            Some(
                "--identity: not supported by Custos: the identity is the one in its configuration ($CUSTOS_CLI_CONFIG)",
            )
        } else if self.disable_attestation_verification {
            Some(
                "--only_for_testing-disable-attestation-verification: not supported by Custos: it talks only to a CAS it has attested",
            )
        } else if self.retries.is_some() {
            Some("--retries: not supported by Custos: it does not retry on network errors")
        } else {
            None
        }
    }

    /// The `custos` options for the same CAS.
    fn custos_args(&self) -> Vec<OsString> {
        match &self.cas {
            Some(cas) => vec!["--cas".into(), cas.into()],
            None => Vec::new(),
        }
    }
}

/// Runs `custos` invoked as `scone`.
pub(crate) fn main() -> ExitCode {
    let cli = SconeCli::parse();
    if cli.config.is_some() || cli.output.is_some() {
        return fail(
            2,
            ["-c/--config, -o: not supported by Custos: its configuration is $CUSTOS_CLI_CONFIG (default ~/.config/custos/config.json), and it prints to stdout".to_owned()],
        );
    }
    match cli.command {
        SconeCommand::SelfIdentity(SconeSelf::Custos(command)) => {
            crate::self_identity::run(command)
        }
        SconeCommand::Cas(SconeCas::Attest(args)) => crate::cas::run(CasCommand::Attest(args)),
        SconeCommand::Cas(SconeCas::List) => crate::cas::run(CasCommand::List),
        SconeCommand::Cas(SconeCas::SetDefault { cas }) => {
            crate::cas::run(CasCommand::SetDefault { addr: cas })
        }
        SconeCommand::Session(SconeSession::Create(upload)) => session("create", upload),
        SconeCommand::Session(SconeSession::Update(upload)) => session("update", upload),
        SconeCommand::Session(SconeSession::Verify(upload)) => session("verify", upload),
        SconeCommand::Session(SconeSession::Read(read)) => {
            if let Some(refusal) = read.connection.refusal() {
                return fail(2, [refusal.to_owned()]);
            }
            let mut argv = custos_argv("read");
            argv.extend(read.connection.custos_args());
            argv.extend(["--".into(), read.name.into()]);
            run_custos(argv)
        }
        SconeCommand::Other(words) => unsupported("", &words),
        SconeCommand::SelfIdentity(SconeSelf::Other(words)) => unsupported("self ", &words),
        SconeCommand::Cas(SconeCas::Other(words)) => unsupported("cas ", &words),
        SconeCommand::Session(SconeSession::Other(words)) => unsupported("session ", &words),
    }
}

/// `scone session create|update|verify` as `custos session …`.
fn session(command: &str, upload: SconeUpload) -> ExitCode {
    let refusal = upload.connection.refusal().or(if upload.name.is_some() {
        Some("-n/--name: not supported by Custos: set `name:` in the session file")
    } else if upload.fail_on_warning {
        Some("--fail-on-warning: not supported by Custos")
    } else {
        None
    });
    if let Some(refusal) = refusal {
        return fail(2, [refusal.to_owned()]);
    }
    let mut argv = custos_argv(command);
    argv.extend(upload.connection.custos_args());
    for variable in upload.variables {
        argv.extend(["-e".into(), variable.into()]);
    }
    if upload.use_env {
        argv.push("--use-env".into());
    }
    argv.extend(["--".into(), upload.file.into()]);
    run_custos(argv)
}

fn custos_argv(session_command: &str) -> Vec<OsString> {
    vec!["custos".into(), "session".into(), session_command.into()]
}

fn run_custos(argv: Vec<OsString>) -> ExitCode {
    match crate::Cli::try_parse_from(argv) {
        Ok(cli) => crate::run(cli.command),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(2)
        }
    }
}

fn unsupported(context: &str, words: &[OsString]) -> ExitCode {
    let command = words
        .first()
        .map(|w| w.to_string_lossy().into_owned())
        .unwrap_or_default();
    fail(
        2,
        [format!(
            "scone {context}{command}: not supported by Custos ({IMPLEMENTED}; `custos --help` lists the rest)"
        )],
    )
}
