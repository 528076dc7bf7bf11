"""Microsoft's Azure SDKs for Python against the emulator, with their own validation on.

Run through run.sh, which starts the emulator and exports AZURE_AUTHORITY_HOST, AKV_VAULT,
AZURE_MANAGEDHSM_URL, MAA_PROVIDER, REQUESTS_CA_BUNDLE (the emulator's CA) and CONFORMANCE_WORK (the fixtures).
"""

import base64
import hashlib
import json
import os

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.keyvault.certificates import CertificateClient
from azure.keyvault.keys import KeyClient, KeyExportEncryptionAlgorithm, KeyReleasePolicy
from azure.keyvault.secrets import SecretClient
from azure.security.attestation import AttestationClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from cryptography.hazmat.primitives.serialization import pkcs12

import fixtures

WORK = os.environ["CONFORMANCE_WORK"]
AUTHORITY = os.environ["AZURE_AUTHORITY_HOST"]
VAULT = os.environ["AKV_VAULT"]
HSM = os.environ["AZURE_MANAGEDHSM_URL"]
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


# Secure Key Release: an exportable RSA-HSM key with a release policy, released to an enclave
# attested by the emulator's MAA, opened here with `cryptography` alone (an implementation
# independent of the emulator's).

ENCLAVE = bytes(range(32))


def keys():
    return KeyClient(VAULT, secret_credential(), verify_challenge_resource=False)


def hsm_keys():
    return KeyClient(HSM, secret_credential(), verify_challenge_resource=False)


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def release_policy(mrenclave, debuggable=True):
    return json.dumps(
        {
            "version": "1.0.0",
            "anyOf": [
                {
                    "authority": MAA,
                    "allOf": [
                        {"claim": "x-ms-sgx-mrenclave", "equals": mrenclave.hex()},
                        {"claim": "x-ms-sgx-is-debuggable", "equals": debuggable},
                    ],
                }
            ],
        }
    ).encode()


def rsa_jwk(key, kid):
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "key_ops": ["encrypt"],
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes(3, "big")),
    }


def attested(runtime_claims):
    """An MAA token (the SDK's validation on) whose x-ms-runtime is `runtime_claims`."""
    runtime = json.dumps(runtime_claims).encode()
    result, token = attestation_client().attest_sgx_enclave(
        quote(runtime), runtime_json=runtime, validate_issuer=True, issuer=MAA
    )
    assert result.runtime_claims == runtime_claims
    return token.to_jwt_string()


def attested_wrapping_key():
    """A fresh RSA key and an MAA token carrying it in x-ms-runtime.keys."""
    wrapping = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return wrapping, attested({"keys": [rsa_jwk(wrapping, "conformance-wrapping-key")]})


def test_create_get_and_release_an_exportable_key():
    client = keys()
    policy = release_policy(ENCLAVE)
    created = client.create_rsa_key(
        "skr-conformance",
        size=2048,
        hardware_protected=True,
        exportable=True,
        release_policy=KeyReleasePolicy(policy),
    )
    key = client.get_key("skr-conformance")
    assert key.id == created.id
    assert key.key_type == "RSA-HSM"
    assert key.properties.exportable is True
    assert key.properties.release_policy.encoded_policy == policy
    assert key.properties.release_policy.content_type == "application/json; charset=utf-8"

    wrapping, token = attested_wrapping_key()
    with open(os.environ["REQUESTS_CA_BUNDLE"], "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    oaep_hash = {
        KeyExportEncryptionAlgorithm.ckm_rsa_aes_key_wrap: hashes.SHA1(),
        KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_256: hashes.SHA256(),
        KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_384: hashes.SHA384(),
    }
    for enc, digest in oaep_hash.items():
        released = client.release_key("skr-conformance", token, version=key.properties.version, algorithm=enc, nonce="abc")
        header_b64, payload_b64, signature_b64 = released.value.split(".")
        header = json.loads(b64url_decode(header_b64))
        assert header["alg"] == "RS256" and header["typ"] == "JWT"
        chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
        chain[0].public_key().verify(
            b64url_decode(signature_b64),
            f"{header_b64}.{payload_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        chain[0].verify_directly_issued_by(ca)
        assert chain[-1] == ca
        assert header["x5t#S256"] == b64url(chain[0].fingerprint(hashes.SHA256()))
        assert header["x5t"] == b64url(chain[0].fingerprint(hashes.SHA1()))
        assert header["kid"] == chain[0].fingerprint(hashes.SHA1()).hex().upper()

        payload = json.loads(b64url_decode(payload_b64))
        assert payload["request"]["enc"] == enc.value
        assert payload["request"]["nonce"] == "abc"
        released_key = payload["response"]["key"]
        assert released_key["key"]["kid"] == key.id
        assert released_key["attributes"]["exportable"] is True
        assert b64url_decode(released_key["release_policy"]["data"]) == policy
        key_hsm = json.loads(b64url_decode(released_key["key"]["key_hsm"]))
        assert key_hsm["header"] == {"kid": "conformance-wrapping-key", "alg": "dir", "enc": enc.value}
        ciphertext = b64url_decode(key_hsm["ciphertext"])
        aes_key = wrapping.decrypt(
            ciphertext[:256], padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
        )
        pkcs8 = aes_key_unwrap_with_padding(aes_key, ciphertext[256:])
        private = serialization.load_der_private_key(pkcs8, password=None)
        assert private.public_key().public_numbers().n == int.from_bytes(key.key.n, "big")


def test_release_is_refused_when_the_policy_is_not_met():
    client = keys()
    created = client.create_rsa_key(
        "skr-other-enclave",
        hardware_protected=True,
        exportable=True,
        release_policy=KeyReleasePolicy(release_policy(bytes(32))),
    )
    assert len(created.key.n) == 256, "RSA keys are 2048 bits unless key_size says otherwise"
    _, token = attested_wrapping_key()
    with pytest.raises(HttpResponseError) as refused:
        client.release_key("skr-other-enclave", token)
    assert refused.value.status_code == 403
    assert refused.value.error.code == "Forbidden"
    assert "x-ms-sgx-mrenclave" in refused.value.error.message


def test_release_refuses_keys_that_are_not_exportable_or_disabled():
    client = keys()
    _, token = attested_wrapping_key()
    client.create_rsa_key("skr-not-exportable", hardware_protected=True)
    client.create_rsa_key(
        "skr-disabled",
        hardware_protected=True,
        exportable=True,
        enabled=False,
        release_policy=KeyReleasePolicy(release_policy(ENCLAVE)),
    )
    for name in ["skr-not-exportable", "skr-disabled"]:
        with pytest.raises(HttpResponseError) as refused:
            client.release_key(name, token)
        assert refused.value.status_code == 403, name


def test_the_wrapping_key_is_taken_from_x_ms_runtime_keys():
    client = hsm_keys()
    client.create_oct_key(
        "skr-oct",
        size=256,
        hardware_protected=True,
        exportable=True,
        release_policy=KeyReleasePolicy(release_policy(ENCLAVE)),
    )
    decoy = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tpm = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # TpmEphemeralEncryptionKey wins over an earlier key, as on Azure's confidential VMs.
    token = attested({"keys": [rsa_jwk(decoy, "decoy"), rsa_jwk(tpm, "TpmEphemeralEncryptionKey")]})
    released = client.release_key("skr-oct", token, algorithm=KeyExportEncryptionAlgorithm.rsa_aes_key_wrap_256)
    payload = json.loads(b64url_decode(released.value.split(".")[1]))
    assert payload["response"]["key"]["key"]["kty"] == "oct-HSM"
    key_hsm = json.loads(b64url_decode(payload["response"]["key"]["key"]["key_hsm"]))
    assert key_hsm["header"]["kid"] == "TpmEphemeralEncryptionKey"
    ciphertext = b64url_decode(key_hsm["ciphertext"])
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert len(aes_key_unwrap_with_padding(tpm.decrypt(ciphertext[:256], oaep), ciphertext[256:])) == 32

    # A token without a key to wrap to.
    with pytest.raises(HttpResponseError) as refused:
        client.release_key("skr-oct", attested({"nonce": "x"}))
    assert refused.value.status_code == 400
    assert "x-ms-runtime.keys" in refused.value.error.message


def test_key_vaults_rules_for_exportable_keys():
    client = keys()
    policy = KeyReleasePolicy(release_policy(ENCLAVE))
    for kwargs in [
        {"exportable": True, "hardware_protected": False, "release_policy": policy},
        {"exportable": True, "hardware_protected": True},
        {"hardware_protected": True, "release_policy": policy},
    ]:
        with pytest.raises(HttpResponseError) as refused:
            client.create_rsa_key("skr-refused", **kwargs)
        assert refused.value.status_code == 400, kwargs
        assert refused.value.error.code == "BadParameter"
    with pytest.raises(ResourceNotFoundError):
        client.get_key("skr-refused")

    # A new version of an exportable key without a policy keeps the current one's.
    first = client.create_rsa_key("skr-versions", hardware_protected=True, exportable=True, release_policy=policy)
    second = client.create_rsa_key("skr-versions", hardware_protected=True, exportable=True)
    assert second.properties.version != first.properties.version
    assert second.properties.release_policy.encoded_policy == policy.encoded_policy


def test_a_managed_hsm_has_its_own_resource_and_symmetric_keys():
    # Its challenge names its own resource; the SDK asks Entra ID for a token for it.
    url = HSM + "keys/skr-hsm?api-version=7.4"
    bare = requests.get(url, verify=os.environ["REQUESTS_CA_BUNDLE"])
    assert bare.status_code == 401
    assert 'resource="https://managedhsm.azure.net"' in bare.headers["WWW-Authenticate"]
    vault_token = secret_credential().get_token(VAULT_SCOPE).token
    refused = requests.get(
        url, headers={"Authorization": "Bearer " + vault_token}, verify=os.environ["REQUESTS_CA_BUNDLE"]
    )
    assert refused.status_code == 401
    assert "Invalid audience" in refused.json()["error"]["message"]

    client = hsm_keys()
    created = client.create_rsa_key(
        "skr-hsm",
        hardware_protected=True,
        exportable=True,
        release_policy=KeyReleasePolicy(release_policy(ENCLAVE)),
    )
    assert created.id.startswith(HSM + "keys/skr-hsm/")
    wrapping, token = attested_wrapping_key()
    released = client.release_key("skr-hsm", token)
    payload = json.loads(b64url_decode(released.value.split(".")[1]))
    assert payload["response"]["key"]["key"]["kid"] == created.id

    # A vault has no symmetric keys; a Managed HSM has no secrets.
    with pytest.raises(HttpResponseError) as refused:
        keys().create_oct_key("skr-oct-in-vault", size=256, hardware_protected=True)
    assert refused.value.status_code == 400
    with pytest.raises(ResourceNotFoundError):
        SecretClient(HSM, secret_credential(), verify_challenge_resource=False).get_secret("sample-secret")
