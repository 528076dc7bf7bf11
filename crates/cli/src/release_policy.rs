//! `custos cas release-policy`: the Secure Key Release policy of the Key Vault key that wraps
//! the CAS's master key — the key is released only against an MAA token, from the MAA named,
//! for a CAS enclave the policy admits.
//!
//! The policy follows Key Vault's release-policy grammar (version 1.0.0): an `anyOf` of
//! authorities (the MAA instance's URL, the token's issuer), each with an `allOf` of claim
//! conditions on the MAA token's SGX claims (`x-ms-attestation-type`, `x-ms-sgx-mrenclave`,
//! `x-ms-sgx-mrsigner`, `x-ms-sgx-product-id`, `x-ms-sgx-svn`, `x-ms-sgx-is-debuggable`).

use std::fmt::Display;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Args;
use custos_ids::{MrEnclave, MrSigner};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub(crate) struct ReleasePolicyArgs {
    /// The MAA instance whose tokens Key Vault accepts (its URL, the tokens' issuer), e.g.
    /// https://myattestation.eus.attest.azure.net.
    #[arg(long, value_name = "URL")]
    maa: String,
    /// An admitted CAS enclave measurement (64 hex digits). Repeat it to admit the running
    /// and the next release during an upgrade; the key is released to either.
    #[arg(long, value_name = "H", required_unless_present = "mrsigner")]
    mrenclave: Vec<String>,
    /// Admit any enclave of this signer (64 hex digits) instead of fixed measurements; needs
    /// --isvprodid and --min-svn, so that upgrades need no new policy and downgrades stay out.
    #[arg(long, value_name = "S", conflicts_with = "mrenclave", requires_all = ["isvprodid", "min_svn"])]
    mrsigner: Option<String>,
    /// The product id the signer gave the CAS enclave (with --mrsigner).
    #[arg(long, value_name = "N", requires = "mrsigner")]
    isvprodid: Option<u16>,
    /// The lowest security version admitted (with --mrsigner).
    #[arg(long, value_name = "N", requires = "mrsigner")]
    min_svn: Option<u16>,
    /// ONLY FOR TESTING: admit debug enclaves too (a simulated CAS is one). A debug enclave's
    /// memory can be read by its host: never for a key that protects real secrets.
    #[arg(long)]
    only_for_testing_debug: bool,
}

pub(crate) fn run(args: &ReleasePolicyArgs) -> ExitCode {
    match policy(args) {
        Ok(policy) => {
            if args.only_for_testing_debug {
                eprintln!(
                    "warning: this policy releases the key to debug enclaves, whose memory their host can read: for testing only"
                );
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&policy).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `value` as the identifier `T` (custos-ids' parsing: either case), in lower-case hex.
fn hex64<T: FromStr + Display>(flag: &str, value: &str) -> Result<String, String> {
    value.parse::<T>().map(|id| id.to_string()).map_err(|_| {
        format!(
            "{flag}: expected 64 hex digits, actual {value:?} ({} characters)",
            value.len()
        )
    })
}

fn equals(claim: &str, value: impl Into<Value>) -> Value {
    json!({ "claim": claim, "equals": value.into() })
}

/// The release policy `args` describe.
fn policy(args: &ReleasePolicyArgs) -> Result<Value, String> {
    let maa = args.maa.trim_end_matches('/');
    let host = maa
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .filter(|host| !host.is_empty() && !host.contains(char::is_whitespace));
    if host.is_none() {
        return Err(format!("--maa: expected an https:// URL, actual {maa:?}"));
    }
    let mut conditions = vec![equals("x-ms-attestation-type", "sgx")];
    match &args.mrsigner {
        Some(signer) => {
            conditions.push(equals(
                "x-ms-sgx-mrsigner",
                hex64::<MrSigner>("--mrsigner", signer)?,
            ));
            conditions.push(equals(
                "x-ms-sgx-product-id",
                args.isvprodid.unwrap_or_default(),
            ));
            conditions.push(json!({
                "claim": "x-ms-sgx-svn",
                "greaterOrEquals": args.min_svn.unwrap_or_default(),
            }));
        }
        None => {
            let measurements: Vec<Value> = args
                .mrenclave
                .iter()
                .map(|m| {
                    hex64::<MrEnclave>("--mrenclave", m).map(|m| equals("x-ms-sgx-mrenclave", m))
                })
                .collect::<Result<_, _>>()?;
            conditions.push(match <[Value; 1]>::try_from(measurements) {
                Ok([one]) => one,
                Err(several) => json!({ "anyOf": several }),
            });
        }
    }
    if !args.only_for_testing_debug {
        conditions.push(equals("x-ms-sgx-is-debuggable", false));
    }
    Ok(json!({
        "version": "1.0.0",
        "anyOf": [{ "authority": maa, "allOf": conditions }],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn args(mrenclave: &[&str]) -> ReleasePolicyArgs {
        ReleasePolicyArgs {
            maa: "https://custos.eus.attest.azure.net/".into(),
            mrenclave: mrenclave.iter().map(|m| (*m).to_owned()).collect(),
            mrsigner: None,
            isvprodid: None,
            min_svn: None,
            only_for_testing_debug: false,
        }
    }

    #[test]
    fn a_measurement_policy_admits_those_measurements_not_debuggable() {
        assert_eq!(
            policy(&args(&[H1])).unwrap(),
            json!({
                "version": "1.0.0",
                "anyOf": [{
                    "authority": "https://custos.eus.attest.azure.net",
                    "allOf": [
                        { "claim": "x-ms-attestation-type", "equals": "sgx" },
                        { "claim": "x-ms-sgx-mrenclave", "equals": H1 },
                        { "claim": "x-ms-sgx-is-debuggable", "equals": false },
                    ]
                }]
            })
        );
        // Two measurements (an upgrade): either one.
        let upgrade = policy(&args(&[H1, &H2.to_uppercase()])).unwrap();
        assert_eq!(
            upgrade["anyOf"][0]["allOf"][1],
            json!({ "anyOf": [
                { "claim": "x-ms-sgx-mrenclave", "equals": H1 },
                { "claim": "x-ms-sgx-mrenclave", "equals": H2 },
            ]})
        );
    }

    #[test]
    fn a_signer_policy_admits_a_product_from_a_version_on() {
        let mut signer = args(&[]);
        signer.mrsigner = Some(H2.into());
        signer.isvprodid = Some(7);
        signer.min_svn = Some(3);
        signer.only_for_testing_debug = true;
        let conditions = policy(&signer).unwrap()["anyOf"][0]["allOf"].clone();
        assert_eq!(
            conditions,
            json!([
                { "claim": "x-ms-attestation-type", "equals": "sgx" },
                { "claim": "x-ms-sgx-mrsigner", "equals": H2 },
                { "claim": "x-ms-sgx-product-id", "equals": 7 },
                { "claim": "x-ms-sgx-svn", "greaterOrEquals": 3 },
            ]),
            "debug admitted: no is-debuggable condition"
        );
    }

    #[test]
    fn bad_measurements_and_urls_are_refused_naming_them() {
        assert_eq!(
            policy(&args(&["abc"])).unwrap_err(),
            "--mrenclave: expected 64 hex digits, actual \"abc\" (3 characters)"
        );
        let mut http = args(&[H1]);
        http.maa = "http://maa.example".into();
        assert_eq!(
            policy(&http).unwrap_err(),
            "--maa: expected an https:// URL, actual \"http://maa.example\""
        );
    }
}
