#!/bin/sh
# install.sh — `make install`: copy a built Sluice into DESTDIR/PREFIX.
#
#   PREFIX/bin/                 sluiced, sluicectl, sluice-worker
#   PREFIX/lib/                 libsluice.a, libsluice.so.0 (+ libsluice.so)
#   PREFIX/lib/pkgconfig/       sluice.pc
#   PREFIX/include/             sluice.h
#   PREFIX/share/sluice/        scripts/, ui/, policies/ (the shipped defaults),
#                               redis/users.acl (the least-privilege Redis users)
#   SYSCONFDIR/sluice/policies  what operators edit; never overwritten
#   PREFIX/lib/systemd/system/  sluiced.service
#   PREFIX/share/doc/sluice/    the operator docs
#
# SYSCONFDIR is PREFIX/etc, or /etc when PREFIX is /usr. An installed sluiced
# finds share/ and etc/ relative to its own location, so DESTDIR trees and
# relocated prefixes work without flags.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)
case $PREFIX in /*) ;; *) echo "install: PREFIX must be absolute, got '$PREFIX'" >&2; exit 2 ;; esac
if [ "$PREFIX" = /usr ]; then SYSCONFDIR=/etc; else SYSCONFDIR=$PREFIX/etc; fi

root=$DESTDIR$PREFIX
etc=$DESTDIR$SYSCONFDIR
share=$root/share/sluice

install -d "$root/bin" "$root/lib/pkgconfig" "$root/include" "$share/scripts" \
           "$share/ui/vendor" "$share/policies" "$root/lib/systemd/system" \
           "$root/share/doc/sluice"
install -m 0755 "$BUILD/sluiced" "$BUILD/sluicectl" "$BUILD/sluice-worker" "$root/bin/"
install -m 0644 "$BUILD/libsluice.a" "$root/lib/"
install -m 0755 "$BUILD/libsluice.so" "$root/lib/libsluice.so.0"
ln -sf libsluice.so.0 "$root/lib/libsluice.so"
install -m 0644 agents/c/sluice.h "$root/include/"
install -m 0644 scripts/*.lua "$share/scripts/"
# The UI is its page, styles, icon, modules (ui/js/) and its vendored chart
# library; never node_modules or the npm manifests.
install -d "$share/ui/js"
install -m 0644 ui/index.html ui/app.js ui/style.css ui/favicon.svg "$share/ui/"
install -m 0644 ui/js/*.js "$share/ui/js/"
install -m 0644 ui/vendor/* "$share/ui/vendor/"
install -m 0644 policies/*.lua "$share/policies/"
install -d "$share/redis"
install -m 0644 deploy/redis/users.acl "$share/redis/"
install -m 0644 README.md docs/*.md "$root/share/doc/sluice/"

# Operators' policies: seeded from the defaults once, never overwritten.
if [ ! -d "$etc/sluice/policies" ]; then
  install -d "$etc/sluice/policies"
  install -m 0644 policies/*.lua "$etc/sluice/policies/"
else
  echo "install: keeping $SYSCONFDIR/sluice/policies (defaults are in $PREFIX/share/sluice/policies)"
fi

sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@VERSION@|$VERSION|g" > "$root/lib/pkgconfig/sluice.pc" <<PC
prefix=@PREFIX@
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: sluice
Description: libsluice, the C agent that lets a queue worker follow Sluice
Version: @VERSION@
Requires.private: hiredis jansson openssl libcurl
Libs: -L\${libdir} -lsluice
Libs.private: -lpthread
Cflags: -I\${includedir}
PC
chmod 0644 "$root/lib/pkgconfig/sluice.pc"

sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" deploy/sluiced.service \
  > "$root/lib/systemd/system/sluiced.service"
chmod 0644 "$root/lib/systemd/system/sluiced.service"

echo "installed Sluice $VERSION into $DESTDIR$PREFIX (configuration: $DESTDIR$SYSCONFDIR/sluice)"
