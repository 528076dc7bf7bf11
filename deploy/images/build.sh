#!/usr/bin/env bash
# Builds Custos's container images without pulling anything: each image is a root filesystem
# made here (the binary, the shared libraries `ldd` lists, the loader, the CA bundle, /etc/passwd,
# /tmp) and loaded with `docker import`. No base image, no shell, no package manager inside.
#
#   deploy/images/build.sh [--tag TAG] [--prefix PREFIX] [--profile release|debug] [--no-cargo] [IMAGE...]
#
# IMAGE: cas, las, rest-api-sample, cli, azure-emulator, postgres (default: all). Images are
# named PREFIX/IMAGE:TAG (default custos/IMAGE:<workspace version>, the charts' default tag);
# CUSTOS_IMAGE_PREFIX and CUSTOS_IMAGE_TAG set the same. The binaries come from
# `cargo build --profile PROFILE --bins` (skipped with --no-cargo, and when only postgres is
# asked for) in $CARGO_TARGET_DIR (default target/).
#
# postgres is the replicated CAS's store for docker-compose: Debian's PostgreSQL as installed on
# this machine (apt-get install postgresql; the newest /usr/lib/postgresql/N), with dash as
# /bin/sh for initdb and postgres-entrypoint.sh, running as `postgres` (uid 65533).
#
# rest-api-sample runs `custos-run rest-api-sample`; its label io.custos.mrenclave holds the
# simulation measurement of the rest-api-sample binary inside it (`custos mrenclave`), the value a
# session's `mrenclaves` must list. The last line printed is REST_API_MRENCLAVE=<hex>.
set -euo pipefail
cd "$(dirname "$0")/../.."

all_images=(cas las rest-api-sample cli azure-emulator postgres)
prefix=${CUSTOS_IMAGE_PREFIX:-custos}
tag=${CUSTOS_IMAGE_TAG:-}
profile=release
cargo_build=1
images=()
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
    --profile) profile=${2:?--profile needs a value}; shift 2 ;;
    --no-cargo) cargo_build=0; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "build.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    *) images+=("$1"); shift ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=("${all_images[@]}")
for image in "${images[@]}"; do
  [[ " ${all_images[*]} " == *" $image "* ]] || { echo "build.sh: unknown image $image (one of: ${all_images[*]})" >&2; exit 2; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$tag" ] || tag=$version
case $profile in release|debug) ;; *) echo "build.sh: --profile must be release or debug" >&2; exit 2 ;; esac
command -v docker >/dev/null || { echo "build.sh: docker not found" >&2; exit 1; }

# Only the postgres image needs no Custos binary.
custos_images=0
for image in "${images[@]}"; do [ "$image" = postgres ] || custos_images=1; done
[ "$custos_images" = 1 ] || cargo_build=0

target=${CARGO_TARGET_DIR:-target}
bin=$target/$profile
if [ "$cargo_build" = 1 ]; then
  started=$SECONDS
  if [ "$profile" = release ]; then cargo build --release --bins; else cargo build --bins; fi
  echo "build.sh: cargo build --bins ($profile): $((SECONDS - started)) s" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# The images get copies without debug information (a debug build's is most of its size); the
# measurement is taken of the copy, as it will be in the image.
mkdir "$work/bin"
mrenclave=
if [ "$custos_images" = 1 ]; then
  for program in custos custos-cas custos-las custos-run custos-azure-emulator rest-api-sample; do
    [ -x "$bin/$program" ] || { echo "build.sh: $bin/$program is missing (build with cargo build --$profile --bins, or drop --no-cargo)" >&2; exit 1; }
    cp "$bin/$program" "$work/bin/$program"
    if command -v strip >/dev/null; then strip --strip-debug "$work/bin/$program"; fi
  done
  mrenclave=$("$work/bin/custos" mrenclave "$work/bin/rest-api-sample")
  [[ $mrenclave =~ ^[0-9a-f]{64}$ ]] || { echo "build.sh: custos mrenclave printed '$mrenclave'" >&2; exit 1; }
fi
bin=$work/bin

# PostgreSQL as Debian installs it: the newest /usr/lib/postgresql/N.
postgres_version() {
  local dir found=
  for dir in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$dir" ] || continue
    dir=${dir#/usr/lib/postgresql/}; dir=${dir%%/*}
    if [ -z "$found" ] || [ "$dir" -gt "$found" ]; then found=$dir; fi
  done
  [ -n "$found" ] || { echo "build.sh: the postgres image needs PostgreSQL's server binaries on this machine: apt-get install postgresql (no /usr/lib/postgresql/*/bin/postgres)" >&2; return 1; }
  echo "$found"
}

# import NAME [mkrootfs args...] -- [docker import --change lines...]
import() {
  local name=$1; shift
  local rootfs_args=()
  while [ "$1" != -- ]; do rootfs_args+=("$1"); shift; done
  shift
  local changes=(
    --change "ENV PATH=/usr/local/bin:/usr/bin:/bin"
    --change "USER 65532:65532"
    --change "WORKDIR /home/custos"
    --change "LABEL org.opencontainers.image.title=$name org.opencontainers.image.version=$version org.opencontainers.image.revision=$revision org.opencontainers.image.source=https://github.com/custos-cc/custos"
  )
  for change in "$@"; do changes+=(--change "$change"); done
  local ref=$prefix/$name:$tag
  # Through a file, so that a failed rootfs never becomes an (empty) image.
  python3 deploy/images/mkrootfs.py "${rootfs_args[@]}" >"$work/$name.tar"
  docker import --message "custos $name $version ($revision)" "${changes[@]}" "$work/$name.tar" "$ref" >/dev/null
  rm -f "$work/$name.tar"
  printf '%-40s %s\n' "$ref" "$(docker image inspect -f '{{.Size}}' "$ref" | awk '{printf "%.1f MB", $1 / 1e6}')"
}

for image in "${images[@]}"; do
  case $image in
    cas)
      import cas --bin "$bin/custos-cas" --dir /var/lib/custos-cas=0700:65532 -- \
        'ENTRYPOINT ["custos-cas"]' 'EXPOSE 8081 18765' ;;
    las)
      import las --bin "$bin/custos-las" --dir /var/lib/custos-las=0700:65532 -- \
        'ENTRYPOINT ["custos-las"]' 'EXPOSE 18766' ;;
    rest-api-sample)
      import rest-api-sample --bin "$bin/custos-run" --bin "$bin/rest-api-sample" --dir /tls=0700:65532 -- \
        'ENTRYPOINT ["custos-run", "rest-api-sample"]' 'WORKDIR /' 'EXPOSE 4996' \
        "LABEL io.custos.mrenclave=$mrenclave" ;;
    cli)
      import cli --bin "$bin/custos" \
        --file templates/namespace.template.yml=/templates/namespace.template.yml \
        --file templates/session.template.yml=/templates/session.template.yml -- \
        'ENTRYPOINT ["custos"]' ;;
    azure-emulator)
      import azure-emulator --bin "$bin/custos-azure-emulator" --dir /run/custos-azure=0755:65532 -- \
        'ENTRYPOINT ["custos-azure-emulator"]' ;;
    postgres)
      pg=$(postgres_version)
      pglib=/usr/lib/postgresql/$pg
      # initdb runs the server through /bin/sh (popen), and the entrypoint is a sh script.
      # Only the modules initdb loads (PL/pgSQL, snowball dictionaries); no JIT (LLVM).
      # UTC is the only time zone the image knows (TZ=UTC).
      import postgres --exe /usr/bin/dash=/bin/sh --exe "$pglib/bin/postgres" --exe "$pglib/bin/initdb" \
        --exe "$pglib/lib/plpgsql.so" --exe "$pglib/lib/dict_snowball.so" \
        --tree "/usr/share/postgresql/$pg=/usr/share/postgresql/$pg" \
        --file /usr/share/zoneinfo/UTC=/usr/share/zoneinfo/UTC --file /usr/share/zoneinfo/UTC=/usr/share/zoneinfo/Etc/UTC \
        --file deploy/images/postgres-entrypoint.sh=/usr/local/bin/custos-postgres \
        --user postgres=65533 --dir /var/lib/postgresql=0755:65533 --dir /var/lib/postgresql/data=0700:65533 \
        --dir /etc/postgresql/tls=0700:65533 -- \
        "ENV PATH=$pglib/bin:/usr/local/bin:/bin" 'ENV PGDATA=/var/lib/postgresql/data' 'ENV TZ=UTC' \
        'ENV POSTGRES_USER=custos' 'ENV POSTGRES_DB=custos' 'USER 65533:65533' 'WORKDIR /var/lib/postgresql' \
        'ENTRYPOINT ["/bin/sh", "/usr/local/bin/custos-postgres"]' 'EXPOSE 5432' \
        "LABEL io.custos.postgresql=$pg" ;;
  esac
done
[ -z "$mrenclave" ] || echo "REST_API_MRENCLAVE=$mrenclave"
