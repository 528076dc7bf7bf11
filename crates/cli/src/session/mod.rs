//! `custos session …`: checking session files (policies) locally, and the commands that keep
//! them in a CAS ([`remote`]).

mod remote;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use custos_policy::template;

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// Check a session file: templating, YAML, keys, references, attestation rules.
    ///
    /// Prints the session's name and hash and exits 0, or prints every problem
    /// (`FILE:LINE:COLUMN: FIELD: message`, one per line) and exits 1.
    Check(CheckArgs),
    /// Upload a new session to the attested CAS; fails if the name exists.
    Create(remote::UploadArgs),
    /// Replace a session in the CAS; `predecessor` is filled from the current hash when absent.
    Update(remote::UploadArgs),
    /// Print a session stored in the CAS (as submitted).
    Read(remote::ReadArgs),
    /// Check that the CAS holds exactly this session; prints its hash.
    Verify(remote::UploadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Replace `$VAR` and `${VAR}` with environment variables first (`$$` stays as is).
    #[arg(long)]
    use_env: bool,

    /// Set a template variable; wins over the environment. Enables templating.
    #[arg(short = 'e', long = "env", value_name = "VAR=VALUE", value_parser = variable)]
    variables: Vec<(String, String)>,

    /// Print the canonical form (whose SHA-256 is the session hash) instead of name and hash.
    #[arg(long)]
    canonical: bool,

    /// The session file, or `-` for standard input.
    file: PathBuf,
}

/// `VAR=VALUE` with `VAR` a template variable name.
pub(crate) fn variable(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg.split_once('=').ok_or_else(|| {
        format!(
            "expected VAR=VALUE, found `{}`",
            arg.split('=').next().unwrap_or("")
        )
    })?;
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

pub(crate) fn run(command: SessionCommand) -> ExitCode {
    match command {
        SessionCommand::Check(args) => check(args),
        SessionCommand::Create(args) => remote::create(args),
        SessionCommand::Update(args) => remote::update(args),
        SessionCommand::Read(args) => remote::read(args),
        SessionCommand::Verify(args) => remote::verify(args),
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let (file_name, text, session) = match load(&args.file, args.use_env, &args.variables) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };

    if args.canonical {
        match custos_policy::canonical_form(&file_name, &text) {
            Ok(canonical) => print!("{canonical}"),
            Err(diagnostics) => {
                // Unreachable for a session that parsed; reported rather than assumed.
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                return ExitCode::from(1);
            }
        }
    } else {
        println!("name: {}", session.name);
        println!("hash: {}", session.hash);
    }
    for warning in custos_policy::warnings(&session) {
        eprintln!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

/// Reads a session file, templates it (`--use-env`, `-e`) and parses it. On failure the
/// problems are on stderr and the exit code is returned (2 unreadable, 1 invalid).
pub(crate) fn load(
    file: &PathBuf,
    use_env: bool,
    variables: &[(String, String)],
) -> Result<(String, Zeroizing<String>, custos_policy::Session), ExitCode> {
    let file_name = file.display().to_string();
    let text = match read(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{file_name}: {e}");
            return Err(ExitCode::from(2));
        }
    };

    let text = if use_env || !variables.is_empty() {
        let lookup = |name: &str| {
            variables
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| use_env.then(|| std::env::var(name).ok()).flatten())
        };
        match template::expand(&text, lookup) {
            Ok(expanded) => expanded,
            Err(e) => {
                for problem in &e.problems {
                    eprintln!("{file_name}:{problem}");
                }
                return Err(ExitCode::from(1));
            }
        }
    } else {
        text
    };

    match custos_policy::parse(&file_name, &text) {
        Ok(session) => Ok((file_name, text, session)),
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            Err(ExitCode::from(1))
        }
    }
}

fn read(path: &PathBuf) -> Result<Zeroizing<String>, String> {
    let mut bytes = Zeroizing::new(Vec::new());
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    result.map_err(|e| format!("cannot read: {e}"))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(e) => Err(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )),
    }
}
