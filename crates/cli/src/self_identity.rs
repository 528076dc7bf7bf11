//! `custos self show|show-key-hash|show-certificate`: this client's identity, the key and
//! certificate kept in the CLI configuration ([`crate::config`]), made on first use.

use std::process::ExitCode;

use custos_ids::KeyHash;

use crate::config::CliConfig;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SelfCommand {
    /// Print this client's certificate (PEM) and its key hash (created on first use).
    ///
    /// The key hash, SHA-256 of the certificate's public key, is the identity the CAS sees
    /// and access policies name.
    Show,
    /// Print only the key hash (64 hex digits).
    ShowKeyHash,
    /// Print only the certificate (PEM).
    ShowCertificate,
}

pub(crate) fn run(command: SelfCommand) -> ExitCode {
    let (certificate, key_hash) = match own_identity() {
        Ok(identity) => identity,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match command {
        SelfCommand::Show => {
            print!("{certificate}");
            println!("key hash: {key_hash}");
        }
        SelfCommand::ShowKeyHash => println!("{key_hash}"),
        SelfCommand::ShowCertificate => print!("{certificate}"),
    }
    ExitCode::SUCCESS
}

/// The identity's certificate (PEM) and key hash, creating the identity on first use.
fn own_identity() -> Result<(String, KeyHash), String> {
    let identity = CliConfig::load()?.identity()?;
    let key_hash = identity.id().map_err(|e| e.to_string())?;
    let certificate = identity.certificate_pem();
    Ok((certificate, key_hash))
}
