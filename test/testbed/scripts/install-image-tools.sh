#!/usr/bin/env bash
# Installs what the test bed needs to build and run the product's images without a daemon:
# buildah (builds from the Dockerfiles, chroot isolation) and mmdebstrap (the stand-in base
# images' Debian root filesystems), from Debian's packages. Root only; a no-op when both exist.
set -euo pipefail
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "testbed: ${missing[*]} missing and this is not a root Debian machine: install them, or set TESTBED_PODS=process" >&2
  exit 2
fi
echo "testbed: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
