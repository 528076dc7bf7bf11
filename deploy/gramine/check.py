#!/usr/bin/env python3
"""Checks the CAS's Gramine manifest without SGX or Gramine.

Renders deploy/gramine/custos-cas.manifest.template as gramine-manifest does (Jinja2,
StrictUndefined, `gramine.libos` and `gramine.runtimedir()` as placeholder paths, -D variables
as strings), parses the result with tomllib and checks it against the CAS image's root
filesystem (a tar from deploy/images/mkrootfs.py), the libraries `ldd` lists for custos-cas and
the enclave's cas.toml:

  - entrypoint, fixed argv, DCAP remote attestation, not debug, DNS, threads and enclave size;
  - every trusted file that is in the image exists in it; the libraries are exactly ldd's;
  - every path the configuration uses is under a mount; what it reads is trusted (measured);
  - secrets (cas.key) are on an encrypted mount sealed to MRENCLAVE, or on tmpfs;
  - no host variable passed through beyond the allow-list, no host environment or argv.

    check.py --rootfs cas-rootfs.tar --binary target/debug/custos-cas [--config cas.toml]
    check.py ... --self-test      # also: broken manifests must each fail the check that names them

Prints one line per check; exits 1 naming every failed check (expected and actual).
"""

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tomllib

import jinja2

HERE = os.path.dirname(os.path.abspath(__file__))
# Placeholders for Gramine's install paths: files of Gramine's image, not of ours.
LIBOS = "/gramine-placeholder/libos/liblibos.so"
RUNTIMEDIR = "/gramine-placeholder/runtime/glibc"
ENTRYPOINT = "/usr/local/bin/custos-cas"
CONFIG = "/etc/custos-cas/cas.toml"
ENCLAVE_KEY = "_sgx_mrenclave"
# Host variables the enclave may take, per -Dstore_postgres: see the template's comments.
PASSTHROUGH_ALLOWED = {"false": set(), "true": {"CUSTOS_CAS_STORE"}}
# Host files the CAS may read or write without integrity (everything else must be trusted).
ALLOWED_FILES = {"file:/var/lib/custos-cas/", "file:/var/run/secrets/azure/tokens/"}
TOKIO_WORKERS_MAX = 16
MIN_THREADS_OVER_WORKERS = 32
LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


class Gramine:
    """What gramine-manifest offers templates as `gramine`."""

    libos = LIBOS

    @staticmethod
    def runtimedir(libc="glibc"):
        return RUNTIMEDIR


def render(template_path, store_postgres):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.dirname(template_path)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template(os.path.basename(template_path))
    return template.render(gramine=Gramine, entrypoint=ENTRYPOINT, store_postgres=store_postgres)


def ldd(binary):
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    paths = []
    for line in out.splitlines():
        if "not found" in line:
            raise SystemExit(f"check.py: {binary}: missing library: {line.strip()}")
        match = LDD_LINE.match(line)
        if match:
            paths.append(match.group(1))
    return paths


def rootfs_entries(tar_path):
    """Paths in the image (absolute) -> 'dir' or 'file'."""
    with tarfile.open(tar_path) as tar:
        return {"/" + m.name.lstrip("./"): ("dir" if m.isdir() else "file") for m in tar.getmembers()}


def uri_path(uri):
    return uri.removeprefix("file:")


def under(path, prefix):
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def mount_for(mounts, path):
    """The mount Gramine resolves `path` through: the longest mount path containing it."""
    found = [m for m in mounts if under(path, m["path"])]
    return max(found, key=lambda m: len(m["path"].rstrip("/")), default=None)


def host_path(mount, path):
    """Where `path` (under `mount`) lives on the host."""
    rest = path[len(mount["path"].rstrip("/")):]
    return uri_path(mount["uri"]).rstrip("/") + rest if "uri" in mount else None


def size_bytes(text):
    match = re.fullmatch(r"(\d+)([KMG]?)", str(text))
    if not match:
        return None
    return int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)]


def config_paths(config):
    """(what, path, kind) for every path in cas.toml: kind read (an input), write (the CAS
    writes it), secret (the CAS writes a secret), device (Gramine's attestation files)."""
    data_dir = config.get("data_dir", "/var/lib/custos-cas")
    paths = [("config file", CONFIG, "read"), ("data_dir", data_dir, "write"),
             ("data_dir/cas.redb", f"{data_dir}/cas.redb", "write"),
             ("data_dir/cas.crt", f"{data_dir}/cas.crt", "write"),
             ("data_dir/master-key.envelope.json", f"{data_dir}/master-key.envelope.json", "write"),
             ("data_dir/cas.key (TLS private key)", f"{data_dir}/cas.key", "secret")]
    if config.get("evidence") == "gramine":
        paths.append(("gramine_dir", config.get("gramine_dir", "/dev/attestation"), "device"))
    dcap = config.get("dcap", {})
    paths.append(("dcap.cache_dir", dcap.get("cache_dir", f"{data_dir}/dcap-collateral"), "write"))
    for key in ("root_ca", "collateral", "pccs_ca"):
        if key in dcap:
            paths.append((f"dcap.{key}", dcap[key], "read"))
    for i, path in enumerate(config.get("azure", {}).get("ca_files", [])):
        paths.append((f"azure.ca_files[{i}]", path, "read"))
    master = config.get("master_key", {})
    skr = master.get("azure_skr", {})
    for i, path in enumerate(skr.get("signer_ca_files", [])):
        paths.append((f"master_key.azure_skr.signer_ca_files[{i}]", path, "read"))
    # The identity's credential is the host's anyway (it holds the Secret or the token).
    for key in ("client_secret_file", "federated_token_file"):
        if key in skr:
            paths.append((f"master_key.azure_skr.{key}", skr[key], "host"))
    for i, path in enumerate(master.get("recovery", {}).get("keys", [])):
        paths.append((f"master_key.recovery.keys[{i}]", path, "read"))
    tls = config.get("tls", {})
    if "certificate" in tls:
        paths.append(("tls.certificate", tls["certificate"], "read"))
    if "private_key" in tls:
        paths.append(("tls.private_key", tls["private_key"], "secret-read"))
    for i, path in enumerate(config.get("store", {}).get("postgres", {}).get("ca_files", [])):
        paths.append((f"store.postgres.ca_files[{i}]", path, "read"))
    return paths


class Checks:
    def __init__(self, label):
        self.label, self.failures, self.passed = label, [], 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{self.label}: {what}" + (f": {detail}" if detail else ""))


def check_manifest(manifest, store_postgres, rootfs, libraries, config, label):
    c = Checks(label)
    libos, loader, sgx, fs, sys_ = (manifest.get(k, {}) for k in ("libos", "loader", "sgx", "fs", "sys"))
    trusted = sgx.get("trusted_files", [])
    trusted = [t if isinstance(t, str) else t.get("uri", "") for t in trusted]
    allowed = sgx.get("allowed_files", [])
    mounts = fs.get("mounts", [])

    c.check(libos.get("entrypoint") == ENTRYPOINT, "libos.entrypoint",
            f"expected {ENTRYPOINT}, actual {libos.get('entrypoint')}")
    argv = ["custos-cas", "--config", CONFIG]
    c.check(loader.get("argv") == argv, "loader.argv", f"expected {argv}, actual {loader.get('argv')}")
    for key in ("insecure__use_cmdline_argv", "insecure__use_host_env", "insecure__disable_aslr"):
        c.check(key not in loader, f"loader.{key}", "expected absent, actual present")
    c.check(sgx.get("remote_attestation") == "dcap", "sgx.remote_attestation",
            f"expected \"dcap\", actual {sgx.get('remote_attestation')!r}")
    c.check(sgx.get("debug") is False, "sgx.debug", f"expected false, actual {sgx.get('debug')!r}")
    c.check(sys_.get("enable_extra_runtime_domain_names_conf") is True,
            "sys.enable_extra_runtime_domain_names_conf", f"expected true, actual {sys_.get('enable_extra_runtime_domain_names_conf')!r}")
    c.check("file_check_policy" not in sgx or sgx["file_check_policy"] == "strict", "sgx.file_check_policy",
            f"expected strict (the default), actual {sgx.get('file_check_policy')!r}")

    # Threads and memory for a Tokio multi-thread runtime.
    env = loader.get("env", {})
    workers = env.get("TOKIO_WORKER_THREADS")
    ok_workers = isinstance(workers, str) and workers.isdigit() and 1 <= int(workers) <= TOKIO_WORKERS_MAX
    c.check(ok_workers, "loader.env.TOKIO_WORKER_THREADS",
            f"expected a fixed number 1..{TOKIO_WORKERS_MAX} (else one per host CPU), actual {workers!r}")
    threads = sgx.get("max_threads")
    need = (int(workers) if ok_workers else TOKIO_WORKERS_MAX) + MIN_THREADS_OVER_WORKERS
    c.check(isinstance(threads, int) and threads >= need, "sgx.max_threads",
            f"expected >= {need} (workers + blocking pool, store writer, Gramine's helpers), actual {threads!r}")
    size = size_bytes(sgx.get("enclave_size", ""))
    c.check(size is not None and size >= 512 << 20 and size & (size - 1) == 0, "sgx.enclave_size",
            f"expected a power of two >= 512M, actual {sgx.get('enclave_size')!r}")

    # Environment: fixed values, and passthrough only from the allow-list.
    passed_through = {k for k, v in env.items() if isinstance(v, dict) and v.get("passthrough")}
    allowed_env = PASSTHROUGH_ALLOWED[store_postgres]
    c.check(passed_through <= allowed_env, "host environment passthrough",
            f"expected at most {sorted(allowed_env)}, actual {sorted(passed_through)}")
    for name, value in env.items():
        if not (isinstance(value, dict) and value.get("passthrough")):
            c.check(isinstance(value, str), f"loader.env.{name}", f"expected a string, actual {value!r}")

    # Trusted files: those of the image must be in it (Gramine's are its image's).
    for entry in trusted:
        path = uri_path(entry)
        if path.startswith((LIBOS, RUNTIMEDIR)):
            continue
        kind = "dir" if path.endswith("/") else "file"
        actual = rootfs.get(path.rstrip("/"))
        c.check(actual == kind, f"trusted file {entry} is in the image",
                f"expected a {kind} at {path} in the CAS image's root filesystem, actual {actual or 'nothing'}")
    c.check(f"file:{LIBOS}" in trusted, "trusted file gramine.libos", "missing")
    c.check(f"file:{RUNTIMEDIR}/" in trusted, "trusted directory gramine.runtimedir()/", "missing")
    c.check(f"file:{ENTRYPOINT}" in trusted, f"trusted file {ENTRYPOINT}", "missing")
    c.check(not set(trusted) & set(allowed), "no file both trusted and allowed",
            f"actual {sorted(set(trusted) & set(allowed))}")
    c.check(set(allowed) <= ALLOWED_FILES, "sgx.allowed_files",
            f"expected at most {sorted(ALLOWED_FILES)}, actual {sorted(allowed)}")

    # Libraries: exactly ldd's; the loader is Gramine's runtime's.
    expected_libs = {p for p in libraries if "ld-linux" not in os.path.basename(p)}
    trusted_libs = {uri_path(t) for t in trusted if re.search(r"\.so(\.\d+)*$", t)
                    and not uri_path(t).startswith((LIBOS, RUNTIMEDIR))}
    c.check(expected_libs == trusted_libs, "trusted libraries are exactly what ldd lists",
            f"expected {sorted(expected_libs)}, actual {sorted(trusted_libs)}")
    for lib in sorted(expected_libs):
        mount = mount_for(mounts, lib)
        c.check(mount is not None and mount.get("type", "chroot") == "chroot" and host_path(mount, lib) == lib,
                f"library {lib} is mounted from the image", f"mount {mount}")
        c.check(rootfs.get(lib) == "file", f"library {lib} is in the image", f"actual {rootfs.get(lib) or 'nothing'}")
    loader_libs = [p for p in libraries if "ld-linux" in os.path.basename(p)]
    c.check(mount_for(mounts, "/lib") is not None and mount_for(mounts, "/lib")["uri"] == f"file:{RUNTIMEDIR}",
            "the loader comes from Gramine's runtime directory (/lib)",
            f"ldd's loader {loader_libs}; /lib mount {mount_for(mounts, '/lib')}")
    c.check(env.get("LD_LIBRARY_PATH") == "/lib:/lib/x86_64-linux-gnu", "loader.env.LD_LIBRARY_PATH",
            f"expected \"/lib:/lib/x86_64-linux-gnu\", actual {env.get('LD_LIBRARY_PATH')!r}")

    # The CA bundle: trusted and named by SSL_CERT_FILE.
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    c.check(f"file:{bundle}" in trusted, f"trusted file {bundle}", "missing")
    c.check(env.get("SSL_CERT_FILE") == bundle, "loader.env.SSL_CERT_FILE",
            f"expected {bundle!r}, actual {env.get('SSL_CERT_FILE')!r}")
    if store_postgres == "true":
        ca = env.get("CUSTOS_CAS_STORE_CA")
        c.check(ca is not None and f"file:{ca}" in trusted, "the store's CA (CUSTOS_CAS_STORE_CA) is a trusted file",
                f"CUSTOS_CAS_STORE_CA={ca!r}")
        if ca:
            c.check(rootfs.get(ca) == "file", f"store CA {ca} is in the image", f"actual {rootfs.get(ca) or 'nothing'}")

    # The configuration: evidence from Gramine, the master key not from the host.
    c.check(config.get("evidence") == "gramine", "cas.toml evidence", f"expected \"gramine\", actual {config.get('evidence')!r}")
    provider = config.get("master_key", {}).get("provider", "file")
    c.check(provider == "azure-skr", "cas.toml master_key.provider",
            f"expected \"azure-skr\" (an enclave CAS must not take its master key from the host), actual {provider!r}")
    c.check("master_key_file" not in config, "cas.toml master_key_file", "expected absent, actual present")
    c.check("url" not in config.get("store", {}).get("postgres", {}), "cas.toml store.postgres.url",
            "expected absent (the password would be in a measured, readable file), actual present")
    image_config = rootfs.get(CONFIG)
    c.check(image_config == "file", f"{CONFIG} is in the image", f"actual {image_config or 'nothing'}")

    # Every path the configuration uses: under a mount, and protected as its kind needs.
    for what, path, kind in config_paths(config):
        mount = mount_for(mounts, path)
        if kind == "device":
            c.check(path == "/dev/attestation" and sgx.get("remote_attestation") == "dcap",
                    f"{what} {path}", "expected /dev/attestation, which Gramine provides with remote attestation")
            continue
        if mount is None:
            c.check(False, f"{what} {path} is under a mount", f"mounts: {[m['path'] for m in mounts]}")
            continue
        mtype = mount.get("type", "chroot")
        if kind in ("secret", "secret-read"):
            ok = mtype == "tmpfs" or (mtype == "encrypted" and mount.get("key_name") == ENCLAVE_KEY)
            c.check(ok, f"{what} {path} is sealed to the enclave",
                    f"expected an encrypted mount with key_name = \"{ENCLAVE_KEY}\" or tmpfs, actual {mount}")
        elif kind == "read":
            c.check(f"file:{path}" in trusted and mtype == "chroot", f"{what} {path} is a trusted file",
                    f"expected in sgx.trusted_files (measured), actual not ({mount})")
        elif kind in ("write", "host"):
            host = host_path(mount, path)
            ok = mtype == "tmpfs" or mtype == "encrypted" or any(
                under(host, uri_path(a)) for a in allowed if host)
            c.check(ok, f"{what} {path} is writable/readable from the host",
                    f"expected under sgx.allowed_files, an encrypted mount or tmpfs, actual {mount}")
    tmp = mount_for(mounts, "/tmp")
    c.check(tmp is not None and tmp.get("type") == "tmpfs" and tmp["path"] == "/tmp", "/tmp is tmpfs", f"actual {tmp}")
    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default=os.path.join(HERE, "custos-cas.manifest.template"))
    parser.add_argument("--config", default=os.path.join(HERE, "cas.toml"), help="the enclave's cas.toml")
    parser.add_argument("--rootfs", required=True, help="the CAS image's root filesystem (tar)")
    parser.add_argument("--binary", required=True, help="custos-cas as in the image, for ldd")
    parser.add_argument("--self-test", action="store_true", help="also check that broken manifests fail")
    args = parser.parse_args()

    rootfs = rootfs_entries(args.rootfs)
    libraries = ldd(args.binary)
    with open(args.config, "rb") as f:
        config_text = f.read()
    config = tomllib.loads(config_text.decode())

    failures, passed = [], 0
    rendered = {}
    for store_postgres in ("false", "true"):
        label = f"store_postgres={store_postgres}"
        text = render(args.template, store_postgres)
        rendered[store_postgres] = text
        try:
            manifest = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            failures.append(f"{label}: the rendered manifest is not TOML: {e}")
            continue
        c = check_manifest(manifest, store_postgres, rootfs, libraries, config, label)
        print(f"{label}: {c.passed} checks passed, {len(c.failures)} failed")
        failures += c.failures
        passed += c.passed

    if args.self_test:
        failures += self_test(rendered["false"], rootfs, libraries, config, config_text)

    for failure in failures:
        print(f"FAIL {failure}")
    if failures:
        sys.exit(1)
    print(f"check.py: the manifest passes ({passed} checks, libraries {', '.join(libraries)})")


# Broken manifests and configurations, and the check each must fail: the checker is not vacuous.
MUTATIONS = [
    ("cas.key on the plain volume", lambda m, c: m.replace('type = "encrypted", path = "/var/lib/custos-cas/cas.key"', 'path = "/var/lib/custos-cas/cas.key"'), "cas.key (TLS private key)"),
    ("cas.key sealed to the signer", lambda m, c: m.replace('key_name = "_sgx_mrenclave"', 'key_name = "_sgx_mrsigner"'), "is sealed to the enclave"),
    ("a passed-through AZURE_CLIENT_ID", lambda m, c: m.replace('loader.env.SSL_CERT_FILE', 'loader.env.AZURE_CLIENT_ID = { passthrough = true }\nloader.env.SSL_CERT_FILE'), "host environment passthrough"),
    ("the host's environment", lambda m, c: m.replace('loader.log_level', 'loader.insecure__use_host_env = true\nloader.log_level'), "loader.insecure__use_host_env"),
    ("a debug enclave", lambda m, c: m.replace("sgx.debug = false", "sgx.debug = true"), "sgx.debug"),
    ("no remote attestation", lambda m, c: m.replace('sgx.remote_attestation = "dcap"', 'sgx.remote_attestation = "none"'), "sgx.remote_attestation"),
    ("libm not trusted", lambda m, c: m.replace('  "file:/lib/x86_64-linux-gnu/libm.so.6",\n', ""), "exactly what ldd lists"),
    ("a library ldd does not list", lambda m, c: m.replace('"file:/lib/x86_64-linux-gnu/libc.so.6",', '"file:/lib/x86_64-linux-gnu/libc.so.6",\n  "file:/lib/x86_64-linux-gnu/libz.so.1",'), "is in the image"),
    ("cas.toml not trusted", lambda m, c: m.replace('  "file:/etc/custos-cas/cas.toml",\n', ""), "config file /etc/custos-cas/cas.toml is a trusted file"),
    ("no data directory mount", lambda m, c: m.replace('{ path = "/var/lib/custos-cas", uri = "file:/var/lib/custos-cas" },', ""), "data_dir /var/lib/custos-cas is under a mount"),
    ("/tmp on the host", lambda m, c: m.replace('{ type = "tmpfs", path = "/tmp" }', '{ path = "/tmp", uri = "file:/tmp" }'), "/tmp is tmpfs"),
    ("one worker per host CPU", lambda m, c: m.replace('loader.env.TOKIO_WORKER_THREADS = "4"\n', ""), "TOKIO_WORKER_THREADS"),
    ("too few threads", lambda m, c: m.replace("sgx.max_threads = 64", "sgx.max_threads = 8"), "sgx.max_threads"),
    ("the config file allowed, not trusted", lambda m, c: m.replace('"file:/var/run/secrets/azure/tokens/",', '"file:/var/run/secrets/azure/tokens/",\n  "file:/etc/custos-cas/",'), "sgx.allowed_files"),
    ("the master key from a file", lambda m, c: (m, c.replace('provider = "azure-skr"', 'provider = "file"')), "master_key.provider"),
    ("simulated evidence", lambda m, c: (m, c.replace('evidence = "gramine"', 'evidence = "simulation"')), "cas.toml evidence"),
    ("a CA file outside the measurement", lambda m, c: (m, c + '\n[azure]\nca_files = ["/etc/custos-cas/azure-ca.pem"]\n'), "azure.ca_files[0]"),
]


def self_test(manifest_text, rootfs, libraries, config, config_text):
    failures = []
    for name, mutate, expected in MUTATIONS:
        result = mutate(manifest_text, config_text.decode())
        text, conf_text = result if isinstance(result, tuple) else (result, config_text.decode())
        if text == manifest_text and conf_text == config_text.decode():
            failures.append(f"self-test {name}: the mutation changed nothing (the template changed?)")
            continue
        c = check_manifest(tomllib.loads(text), "false", rootfs, libraries, tomllib.loads(conf_text), "mutant")
        hits = [f for f in c.failures if expected in f]
        if hits:
            print(f"self-test ok: {name} -> {hits[0]}")
        else:
            failures.append(f"self-test {name}: expected a failure naming {expected!r}, actual {c.failures or 'none'}")
    return failures


if __name__ == "__main__":
    main()
