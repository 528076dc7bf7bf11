"""Microsoft's Azure SDKs for Python against the emulator, with their own validation on.

Run through run.sh, which starts the emulator and exports AZURE_AUTHORITY_HOST, AKV_VAULT,
MAA_PROVIDER, REQUESTS_CA_BUNDLE (the emulator's CA) and CONFORMANCE_WORK (the fixtures).
"""

import base64
import hashlib
import json
import os

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.keyvault.certificates import CertificateClient
from azure.keyvault.secrets import SecretClient
from azure.security.attestation import AttestationClient
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

import fixtures

WORK = os.environ["CONFORMANCE_WORK"]
AUTHORITY = os.environ["AZURE_AUTHORITY_HOST"]
VAULT = os.environ["AKV_VAULT"]
MAA = os.environ["MAA_PROVIDER"]
FIX = json.load(open(os.path.join(WORK, "fixtures.json")))
VAULT_SCOPE = "https://vault.azure.net/.default"


def secret_credential(secret=None):
    # The emulator is not a host Microsoft knows, so MSAL's instance discovery is off; the
    # SDK then reads the tenant's OpenID metadata from the emulator.
    return ClientSecretCredential(
        FIX["tenant"],
        FIX["secret_app"],
        secret or FIX["client_secret"],
        authority=AUTHORITY,
        disable_instance_discovery=True,
    )


def certificate_credential():
    return CertificateCredential(
        FIX["tenant"],
        FIX["cert_app"],
        certificate_path=os.path.join(WORK, "app-cert-and-key.pem"),
        authority=AUTHORITY,
        disable_instance_discovery=True,
    )


# Key Vault's challenge names resource https://vault.azure.net, which a loopback host cannot
# match; the SDK's check of that is turned off, everything else is as against Azure.
def secrets(credential=None):
    return SecretClient(VAULT, credential or secret_credential(), verify_challenge_resource=False)


def certificates(credential=None):
    return CertificateClient(VAULT, credential or secret_credential(), verify_challenge_resource=False)


def test_client_secret_credential_gets_a_token():
    token = secret_credential().get_token(VAULT_SCOPE)
    assert token.token.count(".") == 2
    assert token.expires_on > 0


def test_wrong_client_secret_is_refused_with_aadsts7000215():
    with pytest.raises(ClientAuthenticationError) as refused:
        secret_credential("wrong").get_token(VAULT_SCOPE)
    assert "AADSTS7000215" in str(refused.value)


def test_certificate_credential_gets_a_token():
    token = certificate_credential().get_token(VAULT_SCOPE)
    assert token.token.count(".") == 2


def test_get_secret_with_both_credentials():
    for credential in (secret_credential(), certificate_credential()):
        secret = secrets(credential).get_secret("sample-secret")
        assert secret.value == FIX["secret_value"]
        assert secret.name == "sample-secret"
        assert len(secret.properties.version) == 32


def test_set_list_and_versions():
    client = secrets()
    first = client.set_secret("rotated", "one")
    second = client.set_secret("rotated", "two")
    assert client.get_secret("rotated").value == "two"
    assert client.get_secret("rotated", first.properties.version).value == "one"
    versions = {p.version for p in client.list_properties_of_secret_versions("rotated")}
    assert versions == {first.properties.version, second.properties.version}
    names = {p.name for p in client.list_properties_of_secrets()}
    assert {"sample-secret", "rotated", "flask", "flask-pfx"} <= names


def test_missing_secret_is_not_found():
    with pytest.raises(ResourceNotFoundError) as missing:
        secrets().get_secret("missing")
    assert missing.value.error.code == "SecretNotFound"


def test_certificate_and_its_pem_secret_hold_a_matching_key():
    certificate = certificates().get_certificate("flask")
    assert certificate.policy.subject == "CN=rest-api.scone.sample"
    assert certificate.policy.san_dns_names == ["rest-api.scone.sample"]
    assert certificate.policy.content_type == "application/x-pem-file"
    leaf = x509.load_der_x509_certificate(certificate.cer)
    secret = secrets().get_secret("flask")
    assert secret.properties.content_type == "application/x-pem-file"
    key = serialization.load_pem_private_key(secret.value.encode(), password=None)
    in_secret = x509.load_pem_x509_certificate(secret.value.encode())
    assert in_secret == leaf
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    assert secret.properties.key_id == certificate.key_id


def test_certificate_and_its_pkcs12_secret_hold_a_matching_key():
    certificate = certificates().get_certificate("flask-pfx")
    secret = secrets().get_secret("flask-pfx")
    assert secret.properties.content_type == "application/x-pkcs12"
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), None)
    assert cert == x509.load_der_x509_certificate(certificate.cer)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def attestation_client():
    return AttestationClient(MAA, secret_credential())


def test_signing_certificates_and_openid_metadata():
    client = attestation_client()
    signers = client.get_signing_certificates()
    assert len(signers) == 1
    assert signers[0].key_id
    metadata = client.get_open_id_metadata()
    assert metadata["issuer"] == MAA
    assert metadata["jwks_uri"] == MAA + "/certs"


def quote(runtime):
    with open(os.path.join(WORK, "platform-key.pem"), "rb") as f:
        platform = serialization.load_pem_private_key(f.read(), password=None)
    report_data = hashlib.sha256(runtime).digest() + bytes(32)
    return fixtures.sim_quote(platform, bytes(range(32)), report_data)


def test_attest_sgx_enclave_with_the_sdks_token_validation():
    runtime = b'{"jwk": {"kty": "EC"}}'
    evidence = quote(runtime)
    # Validation on: signature against the emulator's signing certificates, expiry, issuer.
    result, token = attestation_client().attest_sgx_enclave(
        evidence, runtime_data=runtime, validate_issuer=True, issuer=MAA
    )
    assert result.mr_enclave == bytes(range(32)).hex()
    assert result.enclave_held_data == runtime
    assert result.is_debuggable is True
    assert result.product_id == 1 and result.svn == 2
    assert result.sgx_collateral["quotehash"] == hashlib.sha256(evidence).hexdigest()
    assert token.algorithm == "RS256"
    assert token.expires - token.issued == __import__("datetime").timedelta(hours=8)


def test_attest_with_json_runtime_data_and_open_enclave_report():
    runtime = b'{"nonce": "abc"}'
    evidence = quote(runtime)
    result, _ = attestation_client().attest_sgx_enclave(evidence, runtime_json=runtime)
    assert result.runtime_claims == {"nonce": "abc"}
    report = (1).to_bytes(4, "little") + (2).to_bytes(4, "little") + len(evidence).to_bytes(8, "little") + evidence
    result, _ = attestation_client().attest_open_enclave(report, runtime_data=runtime)
    assert result.enclave_held_data == runtime


def test_a_tampered_quote_is_refused():
    evidence = bytearray(quote(b"x"))
    evidence[200] ^= 1
    with pytest.raises(HttpResponseError) as refused:
        attestation_client().attest_sgx_enclave(bytes(evidence))
    assert refused.value.status_code == 400


def test_the_sdks_token_validation_is_really_on():
    from azure.security.attestation import AttestationTokenValidationException

    with pytest.raises(AttestationTokenValidationException):
        attestation_client().attest_sgx_enclave(quote(b"x"), validate_issuer=True, issuer="https://another.attest.azure.net")
