"""Writes the emulator configuration and the keys the conformance suite uses.

An app registration with a client secret and a certificate, a vault with secrets and
certificates (PEM and PKCS#12), and an MAA trusting one simulation platform key. The
simulation quote format is the one documented in crates/attestation/src/sim.rs.
"""

import json
import os
import struct
import sys
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

TENANT = "3a1b2c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
SECRET_APP = "11111111-2222-4333-8444-555555555555"
CERT_APP = "66666666-7777-4888-9999-aaaaaaaaaaaa"
CLIENT_SECRET = "conformance~secret"
SECRET_VALUE = "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95"


def self_signed(common_name, key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def sim_quote(platform_key, mrenclave, report_data):
    """A simulation quote: SGX quote v3 layout, signed by the platform key (564 bytes)."""
    header = struct.pack("<HHIHH", 3, 0x8002, 0, 0, 0) + b"CUSTOS-SIMULATED" + bytes(20)
    body = (
        bytes(16)  # cpu_svn
        + struct.pack("<I", 0)  # misc_select
        + bytes(12)
        + bytes(16)  # isv_ext_prod_id
        + struct.pack("<QQ", 0x07, 0x03)  # attributes: INIT | DEBUG | MODE64BIT, xfrm
        + mrenclave
        + bytes(32)
        + bytes(32)  # mr_signer
        + bytes(32)
        + bytes(64)  # config_id
        + struct.pack("<HHH", 1, 2, 0)  # isv_prod_id, isv_svn, config_svn
        + bytes(42)
        + bytes(16)  # isv_family_id
        + report_data
    )
    assert len(header) == 48 and len(body) == 384
    signed = header + body
    r, s = decode_dss_signature(platform_key.sign(signed, ec.ECDSA(hashes.SHA256())))
    numbers = platform_key.public_key().public_numbers()
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    key = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    return signed + struct.pack("<I", 128) + signature + key


def main(work):
    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app_cert = self_signed("conformance-client", app_key)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()
    with open(os.path.join(work, "app-cert.pem"), "w") as f:
        f.write(pem(app_cert))
    with open(os.path.join(work, "app-cert-and-key.pem"), "wb") as f:
        f.write(
            app_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        f.write(app_cert.public_bytes(serialization.Encoding.PEM))

    platform = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(work, "platform-key.pem"), "wb") as f:
        f.write(
            platform.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    platform_public = platform.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

    # The configuration is YAML; JSON is YAML, and needs no YAML writer here.
    config = {
        "listen": "127.0.0.1",
        "entra": {
            "tenants": [
                {
                    "id": TENANT,
                    "applications": [
                        {"client_id": SECRET_APP, "client_secrets": [CLIENT_SECRET]},
                        {"client_id": CERT_APP, "certificates": [{"file": "app-cert.pem"}]},
                    ],
                }
            ]
        },
        "keyvault": {
            "secrets": [{"name": "sample-secret", "value": SECRET_VALUE}],
            "certificates": [
                {"name": "flask", "common_name": "rest-api.scone.sample", "dns_names": ["rest-api.scone.sample"]},
                {"name": "flask-pfx", "common_name": "pfx.scone.sample", "content_type": "application/x-pkcs12"},
            ],
        },
        "maa": {"trusted_platform_keys": [platform_public]},
    }
    with open(os.path.join(work, "config.yaml"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(work, "fixtures.json"), "w") as f:
        json.dump(
            {
                "tenant": TENANT,
                "secret_app": SECRET_APP,
                "cert_app": CERT_APP,
                "client_secret": CLIENT_SECRET,
                "secret_value": SECRET_VALUE,
            },
            f,
        )


if __name__ == "__main__":
    main(sys.argv[1])
