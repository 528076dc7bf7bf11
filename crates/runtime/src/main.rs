//! `custos-run`: wiring only; the steps are in the library.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use custos_attestation::ReportData;
use custos_attestation::sim::measure_executable;
use custos_protocol::enclave::{AttestRequest, RuntimeData};
use custos_runtime::RunError;
use custos_runtime::cas::CasClient;
use custos_runtime::config::{Mode, RunConfig};
use custos_runtime::evidence::EvidenceSource;
use custos_runtime::identity::EphemeralKey;
use custos_runtime::launch;

/// Start a program inside the TEE with the secrets its policy grants — after attestation.
///
/// With CUSTOS_CONFIG_ID (or SCONE_CONFIG_ID) = <session>/<service>, custos-run attests to the
/// CAS at CUSTOS_CAS_ADDR and, once allowed, writes the policy's files, replaces the
/// environment, takes arguments and working directory from the policy, and execs PROGRAM.
/// Without a config id it execs PROGRAM unchanged, with no secrets.
///
/// Environment (each CUSTOS_X also read as SCONE_X):
///   CUSTOS_CONFIG_ID        <session name>/<service name>, e.g. my-ns/demo/rest-api
///   CUSTOS_CAS_ADDR         the CAS's enclave API, host[:18765]
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
    let error = match RunConfig::from_env() {
        Err(error) => RunError::from(error),
        Ok(config) => match config.config_id.clone() {
            None => {
                eprintln!(
                    "custos-run: no CUSTOS_CONFIG_ID: starting {} without attestation (no secrets)",
                    program.to_string_lossy()
                );
                launch::exec_unchanged(program, args)
            }
            Some(config_id) => attest_and_exec(&config, &config_id, program, args),
        },
    };
    report(&error);
    ExitCode::from(error.exit_code())
}

fn report(error: &RunError) {
    eprintln!("custos-run: {error}");
    if let RunError::Denied { detail, .. } = error {
        for reason in &detail.reasons {
            eprintln!("custos-run:   - {reason}");
        }
    }
}

/// Attests, then execs; returns only the reason it could not.
fn attest_and_exec(
    config: &RunConfig,
    config_id: &str,
    program: &OsString,
    args: &[OsString],
) -> RunError {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return RunError::Local(format!("tokio runtime: {e}")),
    };
    let path = match launch::resolve_program(program) {
        Ok(path) => path,
        Err(error) => return error,
    };
    match runtime.block_on(attest(config, config_id, &path)) {
        Ok(delivery) => {
            drop(runtime);
            if let Err(error) = launch::write_files(&delivery.files) {
                return error;
            }
            eprintln!(
                "custos-run: {config_id} attested; starting {} with {} variables and {} files from the CAS",
                path.display(),
                delivery.env.len(),
                delivery.files.len()
            );
            launch::exec_attested(&path, &delivery, args)
        }
        Err(error) => error,
    }
}

async fn attest(
    config: &RunConfig,
    config_id: &str,
    program: &std::path::Path,
) -> Result<custos_protocol::enclave::Delivery, RunError> {
    let source = match config.mode {
        Mode::Hardware => EvidenceSource::Gramine(config.attestation_dir.clone()),
        Mode::Simulation => EvidenceSource::Las(config.las.url("http")),
        Mode::Auto if config.attestation_dir.exists() => {
            EvidenceSource::Gramine(config.attestation_dir.clone())
        }
        Mode::Auto => {
            eprintln!(
                "custos-run: WARNING: no {} (not in an SGX enclave): SIMULATION, evidence from the LAS at {}",
                config.attestation_dir.display(),
                config.las
            );
            EvidenceSource::Las(config.las.url("http"))
        }
    };
    let measurement = measure_executable(program).map_err(|e| RunError::Program {
        path: program.to_path_buf(),
        reason: format!("cannot measure: {e}"),
    })?;
    let cas_addr = config
        .cas
        .as_ref()
        .expect("config requires a CAS with a config id");
    let key = EphemeralKey::generate()?;
    let cas = CasClient::new(cas_addr, &config.cas_trust, &key, source.is_simulation())?;

    let nonce = cas.challenge(config_id).await?;
    let runtime_data = serde_json::to_vec(&RuntimeData {
        nonce,
        jwk: key.jwk(),
    })
    .map_err(|e| RunError::Local(format!("runtime data: {e}")))?;
    let report_data = ReportData::binding(&runtime_data);
    let evidence = source
        .evidence(cas.http(), &report_data, &measurement)
        .await?;
    cas.attest(&AttestRequest {
        config_id: config_id.to_owned(),
        evidence,
        runtime_data,
    })
    .await
}
