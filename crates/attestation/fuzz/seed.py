#!/usr/bin/env python3
"""Fills fuzz/corpus/<target>/ with seeds from the recorded test data (standard library + openssl CLI)."""
import base64, glob, hashlib, json, os, struct, subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
KEY = os.path.join(HERE, "platform-key.pem")


def put(target, name, content):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(content)


def read(path):
    with open(os.path.join(DATA, path), "rb") as f:
        return f.read()


def der_ints(sig):
    """r and s of a DER ECDSA signature, 32 bytes each."""
    assert sig[0] == 0x30
    i, out = 2 if sig[1] < 0x80 else 3, []
    for _ in range(2):
        assert sig[i] == 0x02
        n = sig[i + 1]
        out.append(int.from_bytes(sig[i + 2:i + 2 + n], "big").to_bytes(32, "big"))
        i += 2 + n
    return out[0] + out[1]


def sim_quote():
    """A simulated quote (docs/attestation.md) signed by the fuzz platform key."""
    header = struct.pack("<HHIHH", 3, 0x8002, 0, 0, 0) + b"CUSTOS-SIMULATED" + bytes(20)
    body = bytearray(384)
    body[48:56] = struct.pack("<Q", 7)
    body[56:64] = struct.pack("<Q", 3)
    body[64:96] = hashlib.sha256(b"app").digest()
    body[320:352] = hashlib.sha256(b"runtime data").digest()
    signed = header + bytes(body)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY], input=signed, capture_output=True, check=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-in", KEY, "-pubout", "-outform", "DER"], capture_output=True, check=True).stdout
    return signed + struct.pack("<I", 128) + der_ints(sig) + spki[-64:], spki


sim, spki = sim_quote()
for name in ["maa/sgx_quote_debug.bin", "maa/openenclave_report_debug.bin", "maa/openenclave_report_nondebug.bin",
             "dcap/sgx_quote", "dcap-intel-test-pki/quote.dat", "dcap-intel-test-pki/tdx/quote.dat"]:
    put("evidence", name.replace("/", "_"), read(name))
put("evidence", "sim_quote", sim)
for name in ["dcap/sgx_quote", "maa/sgx_quote_debug.bin", "dcap-intel-test-pki/quote.dat"]:
    put("dcap_quote", name.replace("/", "_"), read(name))
put("dcap_quote", "sim_quote", sim)
put("collateral", "sgx_quote_collateral.json", read("dcap/sgx_quote_collateral.json"))

jwks_seen = set()
for path in sorted(glob.glob(os.path.join(DATA, "maa", "recordings", "*.json"))):
    with open(path, "rb") as f:
        calls = json.load(f)["networkCallRecords"]
    for i, call in enumerate(calls):
        body = call["Response"].get("BODY", "")
        try:
            value = json.loads(body)
        except ValueError:
            continue
        stem = os.path.basename(path)[:-5].split(".")[-1]
        if isinstance(value, dict) and "token" in value:
            put("maa_token", f"{stem}-{i}", value["token"].encode())
        if isinstance(value, dict) and "keys" in value and body not in jwks_seen:
            jwks_seen.add(body)
            put("jwks", f"{stem}-{i}", body.encode())
            for k in value["keys"]:
                put("keys", "x5c-" + hashlib.sha256(k["x5c"][0].encode()).hexdigest()[:16], base64.b64decode(k["x5c"][0]))

with open(KEY, "rb") as f:
    put("keys", "platform-key.pem", f.read())
put("keys", "platform-public.der", spki)
put("keys", "platform-public.pem", subprocess.run(["openssl", "pkey", "-in", KEY, "-pubout"], capture_output=True, check=True).stdout)
put("keys", "intel-root.der", read("dcap/TrustedRootCA.der"))
put("keys", "test-root.pem", read("dcap-intel-test-pki/trustedRootCaCert.pem"))
put("keys", "maa-2020.pem", read("maa-signing-certs/maa.prod.uks.signing.cert.pem"))
print("seeded", sorted(os.listdir(os.path.join(HERE, "corpus"))))
