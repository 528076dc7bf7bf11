"""Seeds the certificate_secret corpus from the recorded Key Vault certificate secrets."""

import base64
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(here, "corpus", "certificate_secret")
os.makedirs(corpus, exist_ok=True)
for name, selector in (("DownloadImportPem", 0), ("DownloadImportPkcs", 1)):
    recording = json.load(open(os.path.join(here, "..", "tests", "data", f"KeyVaultCertificateClientTest.{name}.json")))
    for call in recording["networkCallRecords"]:
        if "/secrets/" in call["Url"]:
            value = json.loads(call["Response"]["BODY"])["value"]
            raw = value.encode() if selector == 0 else base64.b64decode(value)
            with open(os.path.join(corpus, name), "wb") as f:
                f.write(bytes([selector]) + raw)
