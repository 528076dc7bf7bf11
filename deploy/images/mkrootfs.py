#!/usr/bin/env python3
"""Writes a minimal root filesystem as a tar stream, for `docker import`.

The image holds the given executables, the shared libraries `ldd` lists for them (with the
dynamic loader), the host's CA bundle, a few /etc files and the given directories — nothing
else: no shell, no package manager. Entries are sorted, dated 1970 and owned by numeric ids,
so the same inputs give the same bytes, and no root rights are needed to set ownership.

    mkrootfs.py --bin target/release/custos-cas --dir /var/lib/custos-cas=0700:65532 > rootfs.tar

Programs from the host's packages keep their paths (--exe, --tree): the PostgreSQL image
copies Debian's binaries, their libraries and their share directory as they are installed.
"""

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile

# The unprivileged user every image runs as (the "nonroot" id of distroless images).
USER_ID = 65532
ETC_PASSWD = f"root:x:0:0:root:/root:/sbin/nologin\ncustos:x:{USER_ID}:{USER_ID}:custos:/home/custos:/sbin/nologin\n"
ETC_GROUP = f"root:x:0:\ncustos:x:{USER_ID}:\n"
# glibc >= 2.34 has the files and dns NSS modules built in: no libnss_* to copy.
ETC_NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"
CA_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def fail(message):
    sys.exit(f"mkrootfs: {message}")


def shared_libraries(binary):
    """Absolute paths of the libraries and loader `ldd` lists for `binary`."""
    try:
        out = subprocess.run(
            ["ldd", binary], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"ldd {binary}: {e}")
    libraries = []
    for line in out.splitlines():
        if "not found" in line:
            fail(f"{binary}: missing library: {line.strip()}")
        match = LDD_LINE.match(line)
        if match:
            libraries.append(match.group(1))
    if not any("ld-linux" in path for path in libraries):
        fail(f"{binary}: ldd names no dynamic loader (a static binary needs none, but this is unexpected)")
    return libraries


class Rootfs:
    def __init__(self):
        self.entries = {}  # path in the image -> (kind, mode, uid, bytes or None)

    def directory(self, path, mode=0o755, uid=0):
        self._parents(path)
        self.entries[path] = ("dir", mode, uid, None)

    def file(self, path, data, mode=0o644, uid=0):
        self._parents(path)
        self.entries[path] = ("file", mode, uid, data)

    def copy(self, source, path, mode=None, uid=0):
        """Copies `source`'s content (following symlinks) to `path`."""
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as e:
            fail(f"{source}: {e}")
        if mode is None:
            mode = 0o755 if os.access(source, os.X_OK) else 0o644
        self.file(path, data, mode, uid)

    def _parents(self, path):
        parent = os.path.dirname(path)
        while parent not in ("", "/") and parent not in self.entries:
            self.entries[parent] = ("dir", 0o755, 0, None)
            parent = os.path.dirname(parent)

    def write(self, out):
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries):
                kind, mode, uid, data = self.entries[path]
                info = tarfile.TarInfo(path.lstrip("/"))
                info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, 0
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def parse_dir(spec):
    """`/path=MODE[:UID]` (MODE octal)."""
    path, _, rest = spec.partition("=")
    mode, _, uid = rest.partition(":")
    if not path.startswith("/") or not mode:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected /path=MODE[:UID]")
    return path, int(mode, 8), int(uid or 0)


def parse_exe(spec):
    """`SOURCE[=/path]` (default: the same path as on the host)."""
    source, _, path = spec.partition("=")
    path = path or source
    if not source.startswith("/") or not path.startswith("/"):
        raise argparse.ArgumentTypeError(f"{spec!r}: expected /SOURCE[=/path]")
    return source, path


def parse_user(spec):
    """`NAME=UID` (the group gets the same name and id)."""
    name, _, uid = spec.partition("=")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]*", name) or not uid.isdigit():
        raise argparse.ArgumentTypeError(f"{spec!r}: expected NAME=UID")
    return name, int(uid)


def parse_file(spec):
    """`SOURCE=/path`."""
    source, _, path = spec.partition("=")
    if not source or not path.startswith("/"):
        raise argparse.ArgumentTypeError(f"{spec!r}: expected SOURCE=/path")
    return source, path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", action="append", default=[], help="executable for /usr/local/bin")
    parser.add_argument("--file", action="append", default=[], type=parse_file, help="SOURCE=/path (0644)")
    parser.add_argument("--dir", action="append", default=[], type=parse_dir, help="/path=MODE[:UID]")
    parser.add_argument(
        "--exe", action="append", default=[], type=parse_exe,
        help="/SOURCE[=/path]: an executable or shared object and the libraries ldd lists for it",
    )
    parser.add_argument(
        "--tree", action="append", default=[], type=parse_file,
        help="SOURCE=/path: a directory, copied whole (symlinks followed)",
    )
    parser.add_argument("--user", action="append", default=[], type=parse_user, help="NAME=UID: an extra user")
    args = parser.parse_args()

    rootfs = Rootfs()
    libraries = set()
    for binary in args.bin:
        rootfs.copy(binary, "/usr/local/bin/" + os.path.basename(binary), 0o755)
        libraries.update(shared_libraries(binary))
    for source, path in args.exe:
        rootfs.copy(source, path, 0o755)
        libraries.update(shared_libraries(source))
    for source, path in args.tree:
        if not os.path.isdir(source):
            fail(f"{source}: not a directory")
        for directory, _, files in os.walk(source, followlinks=True):
            for name in files:
                host = os.path.join(directory, name)
                rootfs.copy(host, os.path.join(path, os.path.relpath(host, source)))
    for library in sorted(libraries):
        rootfs.copy(library, library, 0o755)

    passwd, group = ETC_PASSWD, ETC_GROUP
    for name, uid in args.user:
        passwd += f"{name}:x:{uid}:{uid}:{name}:/nonexistent:/sbin/nologin\n"
        group += f"{name}:x:{uid}:\n"
    rootfs.file("/etc/passwd", passwd.encode())
    rootfs.file("/etc/group", group.encode())
    rootfs.file("/etc/nsswitch.conf", ETC_NSSWITCH.encode())
    bundle = next((path for path in CA_BUNDLES if os.path.isfile(path)), None)
    if bundle is None:
        fail(f"no CA bundle (looked for {', '.join(CA_BUNDLES)}): install ca-certificates")
    rootfs.copy(bundle, "/etc/ssl/certs/ca-certificates.crt", 0o644)
    rootfs.directory("/tmp", 0o1777)
    rootfs.directory("/home/custos", 0o700, USER_ID)
    for source, path in args.file:
        rootfs.copy(source, path, 0o644)
    for path, mode, uid in args.dir:
        rootfs.directory(path, mode, uid)

    rootfs.write(sys.stdout.buffer)


if __name__ == "__main__":
    main()
