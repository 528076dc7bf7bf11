//! `custos-run`: wiring only; the steps are in the library.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use custos_runtime::RunError;
use custos_runtime::config::RunConfig;
use custos_runtime::refresh::{self, Service};
use custos_runtime::{files, launch};

/// Start a program inside the TEE with the secrets its policy grants — after attestation.
///
/// With CUSTOS_CONFIG_ID (or SCONE_CONFIG_ID) = <session>/<service>, custos-run attests to the
/// CAS at CUSTOS_CAS_ADDR and, once allowed, writes the policy's files, replaces the
/// environment, takes arguments and working directory from the policy, and execs PROGRAM.
/// Without a config id it execs PROGRAM unchanged, with no secrets. When the session asks for
/// fresh secrets (`services[].refresh`), custos-run stays as PROGRAM's parent instead: it
/// forwards signals, reaps children, re-attests every interval and on SIGHUP, rewrites changed
/// files and tells PROGRAM as the session says, and exits with PROGRAM's status.
///
/// Environment (each CUSTOS_X also read as SCONE_X):
///   CUSTOS_CONFIG_ID        <session name>/<service name>, e.g. my-ns/demo/rest-api
///   CUSTOS_CAS_ADDR         the CAS's enclave API, host[:18765]; for a replicated CAS,
///                           its replicas separated by commas (cas-0,cas-1:18765), or a
///                           name resolving to each. An attestation starts at a random
///                           replica and moves to the next on a connection failure
///                           (5 s to connect) or a 503 — never on a denial, another
///                           refusal, an untrusted certificate, or an attest whose
///                           connection failed after it was sent
///   CUSTOS_LAS_ADDR         the node's LAS, host[:18766] (default 127.0.0.1:18766)
///   CUSTOS_MODE             hw (Gramine /dev/attestation), sim (LAS), auto (default)
///   CUSTOS_CAS_CA           PEM CA file that issued the CAS certificate, or
///   CUSTOS_CAS_KEY_HASH     SHA-256 of the CAS certificate's public key (`custos cas list`)
///
/// Exit status: 1 attestation denied or failed, 2 configuration error, otherwise the program's.
#[derive(Debug, Parser)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Args {
    /// The program to start, and its arguments (with a config id, the session's command
    /// provides the arguments).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM [ARGS]..."
    )]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    let Args { command } = Args::parse();
    let (program, args) = command.split_first().expect("clap requires PROGRAM");
    let outcome = match RunConfig::from_env() {
        Err(error) => Err(RunError::from(error)),
        Ok(config) => match config.config_id.clone() {
            None => {
                eprintln!(
                    "custos-run: no CUSTOS_CONFIG_ID: starting {} without attestation (no secrets)",
                    program.to_string_lossy()
                );
                Err(launch::exec_unchanged(program, args))
            }
            Some(config_id) => attest_and_start(&config, &config_id, program, args),
        },
    };
    match outcome {
        Ok(program_status) => ExitCode::from(program_status),
        Err(error) => {
            report(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

fn report(error: &RunError) {
    eprintln!("custos-run: {error}");
    match error {
        RunError::Denied { detail, .. } => {
            for reason in &detail.reasons {
                eprintln!("custos-run:   - {reason}");
            }
        }
        RunError::CasReplicas { attempts, .. } => {
            for attempt in attempts {
                eprintln!("custos-run:   - {attempt}");
            }
        }
        _ => {}
    }
}

/// Attests, then execs the program — or, for a supervised service, runs it as a child and
/// returns its exit status. Returns an error only when the program could not be started or
/// supervision had to stop it.
fn attest_and_start(
    config: &RunConfig,
    config_id: &str,
    program: &OsString,
    args: &[OsString],
) -> Result<u8, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Local(format!("tokio runtime: {e}")))?;
    let path = launch::resolve_program(program)?;
    let delivery = runtime.block_on(custos_runtime::attest::attest(config, config_id, &path))?;
    files::write_files(&delivery.files, &config.private_dirs)?;
    eprintln!(
        "custos-run: {config_id} attested; starting {} with {} variables and {} files from the CAS{}",
        path.display(),
        delivery.env.len(),
        delivery.files.len(),
        match &delivery.refresh {
            Some(refresh) => format!(
                ", supervised (re-attesting every {} s, on change: {})",
                refresh.interval_secs,
                format!("{:?}", refresh.on_change).to_lowercase()
            ),
            None => String::new(),
        }
    );
    if delivery.refresh.is_none() {
        drop(runtime);
        return Err(launch::exec_attested(&path, &delivery, args));
    }
    let service = Service {
        config,
        config_id,
        program: &path,
        given_args: args,
    };
    runtime.block_on(refresh::supervise(&service, delivery))
}
