//! The SCONE sample's templates, with the sample README's variables, are valid sessions.

use custos_policy::{
    AttestationMode, Principal, SecretKind, SecretSource, Tolerance, parse,
    placeholder::{self, Format},
    template,
};

const SESSION: &str = include_str!("data/sample/session.template.yml");
const NAMESPACE: &str = include_str!("data/sample/namespace.template.yml");

fn readme_vars(name: &str) -> Option<String> {
    let value = match name {
        "CAS_NAMESPACE" => "azure-integration-123451234512345",
        "PYTHON_SESSION_NAME" => "demo",
        "AZURE_TENANT_ID" | "AZURE_CLIENT_ID" | "AZURE_CLIENT_SECRET" => "...",
        "AKV_VAULT" => "https://scone-sample.vault.azure.net/",
        "AKV_SECRET_NAME" => "sample-secret",
        "AKV_CERT_SECRET_NAME" => "flask",
        "MAA_PROVIDER" => "https://sharedcus.cus.attest.azure.net",
        _ => return None,
    };
    Some(value.to_owned())
}

#[test]
fn the_sample_session_is_valid() {
    let text = template::expand(SESSION, readme_vars).unwrap();
    let session = match parse("session.template.yml", &text) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        session.name.as_str(),
        "azure-integration-123451234512345/demo"
    );
    assert_eq!(session.version.to_string(), "0.3");
    custos_policy::check_create(&session).unwrap();

    let att = &session.security.attestation;
    assert_eq!(att.mode, AttestationMode::Maa);
    assert_eq!(
        att.url.as_deref(),
        Some("https://sharedcus.cus.attest.azure.net")
    );
    assert!(att.tolerate.contains(&Tolerance::DebugMode));
    assert!(att.tolerate.contains(&Tolerance::MaaManagedTcb));
    assert_eq!(att.min_rsa_signing_key_size, 2048);

    let names: Vec<_> = session.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["AAD_TOKEN", "MY_AKV_SECRET", "MY_AKV_CERT"]);
    let SecretSource::ImportAkv(akv) = &session.secret("MY_AKV_CERT").unwrap().source else {
        panic!("not imported from AKV")
    };
    assert_eq!(akv.vault, "https://scone-sample.vault.azure.net");
    assert_eq!(akv.secret_name, "flask");
    assert_eq!(akv.token.as_str(), "AAD_TOKEN");
    assert_eq!(
        session.secret("MY_AKV_CERT").unwrap().kind,
        Some(SecretKind::X509)
    );

    let svc = session.service("rest-api").unwrap();
    assert_eq!(
        svc.command.as_deref(),
        Some(&["python3".to_owned(), "/app/rest_api.py".to_owned()][..])
    );
    assert_eq!(svc.environment["AKV_SECRET"], "$$SCONE::MY_AKV_SECRET$$");
    assert_eq!(svc.pwd.as_deref(), Some("/"));
    assert_eq!(
        svc.attestation[0].mrenclaves[0].to_string(),
        "291645fc02749ef4f895da626d1ffe9bf45d34aad2177507844e1b87d220219f"
    );
    assert_eq!(
        session.config_id(&svc.name),
        "azure-integration-123451234512345/demo/rest-api"
    );

    let image = session.image("rest-api").unwrap();
    let formats: Vec<_> = image
        .injection_files
        .iter()
        .map(|f| {
            let found = placeholder::scan(&f.content);
            (f.path.as_str(), found[0].as_ref().unwrap().format)
        })
        .collect();
    assert_eq!(
        formats,
        [
            ("/tls/flask.crt", Format::Certificate),
            ("/tls/flask.key", Format::PrivateKey)
        ]
    );
}

#[test]
fn the_sample_namespace_is_valid() {
    let text = template::expand(NAMESPACE, readme_vars).unwrap();
    let ns = parse("namespace.template.yml", &text).unwrap();
    assert_eq!(ns.name.as_str(), "azure-integration-123451234512345");
    assert_eq!(ns.name.parent(), None);
    assert_eq!(ns.access_policy.read, [Principal::Creator]);
    assert_eq!(ns.access_policy.create_sessions, [Principal::Creator]);
    assert!(ns.secrets.is_empty() && ns.services.is_empty());
}

#[test]
fn the_sample_needs_every_variable() {
    let err = template::expand(SESSION, |_| None).unwrap_err();
    assert_eq!(
        err.missing(),
        [
            "CAS_NAMESPACE",
            "PYTHON_SESSION_NAME",
            "MAA_PROVIDER",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AKV_VAULT",
            "AKV_SECRET_NAME",
            "AKV_CERT_SECRET_NAME"
        ]
    );
}

#[test]
fn the_untemplated_sample_is_rejected_with_its_variables_named() {
    let err = parse("session.template.yml", SESSION).unwrap_err();
    let first = err.iter().next().unwrap();
    assert_eq!(first.path.as_str(), "name");
    assert_eq!((first.position.line, first.position.column), (1, 7));
    assert!(first.message.contains("$CAS_NAMESPACE"), "{first}");
}
