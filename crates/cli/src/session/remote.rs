//! `custos session create|update|read|verify`: sessions in the attested CAS, with SCONE's
//! semantics. Templating and local validation are `custos session check`'s
//! ([`crate::session::load`]): nothing invalid is uploaded.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use custos_client::{CasClient, ClientError};
use custos_protocol::client::{SessionWritten, StoredSession};

use crate::cas::{error_lines, fail, pinned_client, runtime};

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// Replace `$VAR` and `${VAR}` with environment variables first (`$$` stays as is).
    #[arg(long)]
    use_env: bool,
    /// Set a template variable; wins over the environment. Enables templating.
    #[arg(short = 'e', long = "env", value_name = "VAR=VALUE", value_parser = crate::session::variable)]
    variables: Vec<(String, String)>,
    /// The CAS (host[:port]); default: the CAS last attested or set with `custos cas set-default`.
    ///
    /// A replicated CAS: its replicas separated by commas (`a:8081,b:8081`), or a name that
    /// resolves to several addresses; each must be attested with one key (`custos cas attest
    /// a,b`). A request starts at a random replica and goes to the next when it cannot connect
    /// (2 s TCP, 5 s TLS) or gets 503 — never after a denial or another 4xx, nor after a
    /// create or update was sent and its connection failed (it may have been applied: the
    /// error says so). When every replica fails, each is named with its reason.
    #[arg(long, env = "CUSTOS_CAS_ADDR")]
    cas: Option<String>,
    /// The session file, or `-` for standard input.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
    /// The CAS (host[:port]), or its replicas separated by commas; default: the default CAS.
    #[arg(long, env = "CUSTOS_CAS_ADDR")]
    cas: Option<String>,
    /// The session's name.
    name: String,
}

/// Runs `call` against the pinned CAS `cas` (or the default one); a failure is printed
/// (the CAS's error, then each of its reasons) and becomes exit code 1.
fn with_cas<T, F>(cas: Option<&str>, call: impl FnOnce(CasClient) -> F) -> Result<T, ExitCode>
where
    F: std::future::Future<Output = Result<T, ClientError>>,
{
    let client = pinned_client(cas).map_err(|(code, e)| fail(code, [e]))?;
    runtime()
        .block_on(call(client))
        .map_err(|e| fail(1, error_lines(&e)))
}

/// Prints an accepted create or update: name and hash on stdout (the hash alone when invoked
/// as `scone`, as SCONE's CLI prints it, so scripts can capture it), the CAS's warnings (an
/// expiring certificate, …) on stderr.
fn accepted(written: &SessionWritten) -> ExitCode {
    if crate::scone::invoked_as_scone() {
        println!("{}", written.hash);
    } else {
        println!("name: {}", written.name);
        println!("hash: {}", written.hash);
    }
    for warning in &written.warnings {
        eprintln!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

pub(crate) fn create(args: UploadArgs) -> ExitCode {
    let (_, text, session) = match crate::session::load(&args.file, args.use_env, &args.variables) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // SCONE's `session create`: a session with a `predecessor` updates the session it names
    // (and fails when there is none); without one, a new session is created.
    let (name, updates) = (session.name.as_str(), session.predecessor.is_some());
    let written = with_cas(args.cas.as_deref(), |cas| async move {
        if updates {
            cas.update_session(name, &text).await
        } else {
            cas.create_session(&text).await
        }
    });
    match written {
        Ok(written) => accepted(&written),
        Err(code) => code,
    }
}

pub(crate) fn update(args: UploadArgs) -> ExitCode {
    let (file_name, mut text, session) =
        match crate::session::load(&args.file, args.use_env, &args.variables) {
            Ok(loaded) => loaded,
            Err(code) => return code,
        };
    let name = session.name.as_str();
    if session.predecessor.is_none() {
        // SCONE's behaviour: the predecessor is the version the CAS holds now.
        let hash = match with_cas(args.cas.as_deref(), |cas| async move {
            cas.read_session(name).await
        }) {
            Ok(current) => current.hash,
            Err(code) => return code,
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("predecessor: {hash}\n"));
        if custos_policy::parse(&file_name, &text).is_err() {
            return fail(
                1,
                [format!(
                    "{file_name}: cannot add the predecessor to this document: add `predecessor: {hash}` to it"
                )],
            );
        }
    }
    match with_cas(args.cas.as_deref(), |cas| async move {
        cas.update_session(name, &text).await
    }) {
        Ok(written) => accepted(&written),
        Err(code) => code,
    }
}

pub(crate) fn read(args: ReadArgs) -> ExitCode {
    let name = args.name.as_str();
    match with_cas(args.cas.as_deref(), |cas| async move {
        cas.read_session(name).await
    }) {
        Ok(stored) => {
            print!("{}", stored.session);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub(crate) fn verify(args: UploadArgs) -> ExitCode {
    let (file_name, text, session) =
        match crate::session::load(&args.file, args.use_env, &args.variables) {
            Ok(loaded) => loaded,
            Err(code) => return code,
        };
    let name = session.name.as_str();
    let StoredSession {
        hash: stored,
        session: stored_text,
        ..
    } = match with_cas(args.cas.as_deref(), |cas| async move {
        cas.read_session(name).await
    }) {
        Ok(stored) => stored,
        Err(code) => return code,
    };
    // A file without `predecessor` matches what `update` made of it: the file with the
    // stored version's predecessor filled in.
    let mut local = session.hash.to_string();
    if session.predecessor.is_none()
        && let Some(predecessor) = custos_policy::parse("stored", &stored_text)
            .ok()
            .and_then(|s| s.predecessor)
    {
        let mut filled = text.to_string();
        if !filled.ends_with('\n') {
            filled.push('\n');
        }
        filled.push_str(&format!("predecessor: {predecessor}\n"));
        if let Ok(s) = custos_policy::parse(&file_name, &filled) {
            local = s.hash.to_string();
        }
    }
    if stored == local {
        println!("{stored}");
        ExitCode::SUCCESS
    } else {
        fail(
            1,
            [format!(
                "the CAS holds another version of {}: stored hash {stored}, this file's hash {local}",
                session.name
            )],
        )
    }
}
