//! `custos session create|update|read|verify`: sessions in the attested CAS, with SCONE's
//! semantics. Templating and local validation are `custos session check`'s
//! ([`crate::session::load`]): nothing invalid is uploaded.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hyper::{Method, StatusCode};

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
    #[arg(long, env = "CUSTOS_CAS_ADDR")]
    cas: Option<String>,
    /// The session file, or `-` for standard input.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
    /// The CAS (host[:port]); default: the default CAS.
    #[arg(long, env = "CUSTOS_CAS_ADDR")]
    cas: Option<String>,
    /// The session's name.
    name: String,
}

fn send(
    cas: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<custos_cas::client::Response, ExitCode> {
    let client = pinned_client(cas).map_err(|(code, e)| fail(code, [e]))?;
    runtime()
        .block_on(client.request(method, path, body))
        .map_err(|e| fail(1, [e.to_string()]))
}

fn rejected(response: &custos_cas::client::Response) -> ExitCode {
    fail(1, error_lines(response))
}

/// Prints an accepted create or update: name and hash on stdout (the hash alone when invoked
/// as `scone`, as SCONE's CLI prints it, so scripts can capture it), the CAS's warnings (an
/// expiring certificate, …) on stderr.
fn accepted(name: &str, response: &custos_cas::client::Response) -> ExitCode {
    let json = response.json();
    let hash = json["hash"].as_str().unwrap_or_default();
    if crate::scone::invoked_as_scone() {
        println!("{hash}");
    } else {
        println!("name: {name}");
        println!("hash: {hash}");
    }
    for warning in json["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or_default());
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
    let (method, path, expected) = match session.predecessor {
        Some(_) => (
            Method::PUT,
            format!("/v1/sessions/{}", session.name),
            StatusCode::OK,
        ),
        None => (Method::POST, "/v1/sessions".to_owned(), StatusCode::CREATED),
    };
    let response = match send(
        args.cas.as_deref(),
        method,
        &path,
        Some(text.as_bytes().to_vec()),
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if response.status != expected {
        return rejected(&response);
    }
    accepted(session.name.as_str(), &response)
}

pub(crate) fn update(args: UploadArgs) -> ExitCode {
    let (file_name, mut text, session) =
        match crate::session::load(&args.file, args.use_env, &args.variables) {
            Ok(loaded) => loaded,
            Err(code) => return code,
        };
    let path = format!("/v1/sessions/{}", session.name);
    if session.predecessor.is_none() {
        // SCONE's behaviour: the predecessor is the version the CAS holds now.
        let current = match send(args.cas.as_deref(), Method::GET, &path, None) {
            Ok(r) if r.status == StatusCode::OK => r,
            Ok(r) => return rejected(&r),
            Err(code) => return code,
        };
        let hash = current.json()["hash"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
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
    let response = match send(
        args.cas.as_deref(),
        Method::PUT,
        &path,
        Some(text.as_bytes().to_vec()),
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if response.status != StatusCode::OK {
        return rejected(&response);
    }
    accepted(session.name.as_str(), &response)
}

pub(crate) fn read(args: ReadArgs) -> ExitCode {
    let response = match send(
        args.cas.as_deref(),
        Method::GET,
        &format!("/v1/sessions/{}", args.name),
        None,
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if response.status != StatusCode::OK {
        return rejected(&response);
    }
    print!(
        "{}",
        response.json()["session"].as_str().unwrap_or_default()
    );
    ExitCode::SUCCESS
}

pub(crate) fn verify(args: UploadArgs) -> ExitCode {
    let (file_name, text, session) =
        match crate::session::load(&args.file, args.use_env, &args.variables) {
            Ok(loaded) => loaded,
            Err(code) => return code,
        };
    let response = match send(
        args.cas.as_deref(),
        Method::GET,
        &format!("/v1/sessions/{}", session.name),
        None,
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if response.status != StatusCode::OK {
        return rejected(&response);
    }
    let stored = response.json()["hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // A file without `predecessor` matches what `update` made of it: the file with the
    // stored version's predecessor filled in.
    let stored_text = response.json()["session"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
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
