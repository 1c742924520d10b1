#!/usr/bin/env bash
# Installs the system packages berth's tests and demo need. Idempotent: packages
# already present are skipped, and the private CRIU prefix is reused.
#
#   scripts/install-deps.sh          everything the test suite needs
#   scripts/install-deps.sh --demo   only what the demo (README command 1) needs
#
# CRIU: the distro criu is used when `criu check` passes on this kernel. When it
# does not (Debian 12's criu 3.17 trips over the vDSO on kernel 6.x), criu from
# Debian trixie is unpacked into a private prefix with its own loader and
# libraries, and /usr/local/sbin/criu runs it through that loader. The system
# libc is never touched.
set -euo pipefail

CRIU_PREFIX=${BERTH_CRIU_PREFIX:-/opt/berth/criu}
CRIU_WRAPPER=/usr/local/sbin/criu

log() { echo "install-deps: $*" >&2; }
die() { echo "install-deps: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages with apt-get)"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12"

demo_pkgs="busybox-static"
test_pkgs="busybox-static containerd runc crun criu umoci skopeo docker-registry
  protobuf-compiler hyperfine golang-go libc6-dev gcc iproute2 procps util-linux"

pkgs=$test_pkgs
[ "${1:-}" = "--demo" ] && pkgs=$demo_pkgs

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

apt_install() {
  # Never let package scripts start daemons (containerd, docker-registry): the
  # tests start their own instances with private sockets.
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o DPkg::Lock::Timeout=300 "$@" >&2 || {
    apt-get update -o DPkg::Lock::Timeout=300 >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "$@" >&2
  } || rc=$?
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

if [ -n "$missing" ]; then
  log "installing:$missing"
  # shellcheck disable=SC2086
  apt_install $missing || die "apt-get install failed for:$missing"
fi

# Stop anything a package started anyway: tests own their daemons.
for svc in containerd docker-registry; do
  if pgrep -x "$svc" >/dev/null 2>&1 && [ -x "/etc/init.d/$svc" ]; then
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done

[ "${1:-}" = "--demo" ] && exit 0

# ---------------------------------------------------------------- CRIU ----
criu_works() { "$1" check >/dev/null 2>&1; }

if [ -x "$CRIU_WRAPPER" ] && criu_works "$CRIU_WRAPPER"; then
  log "criu: $CRIU_WRAPPER ($("$CRIU_WRAPPER" --version | head -1)) passes criu check"
  exit 0
fi
if criu_works /usr/sbin/criu; then
  log "criu: distro criu passes criu check"
  exit 0
fi

log "criu: distro criu fails 'criu check'; installing criu from Debian trixie into $CRIU_PREFIX"
work=$(mktemp -d /tmp/berth-criu.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/debs"
cat > "$work/sources.list" <<'EOF'
deb http://deb.debian.org/debian trixie main
EOF
# A private apt configuration: the system's sources, preferences and state are
# left as they are. Only .debs are downloaded; nothing is installed with dpkg.
apt_o=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
       -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
       -o "Dir::State::Status=/dev/null" -o "APT::Default-Release=trixie")
apt-get "${apt_o[@]}" update >&2 || die "apt-get update for trixie failed"

# criu plus the shared libraries it and they link against (recursively), and
# libc6 for the loader. Packages that ship no libraries are skipped.
want="criu"
seen=""
while [ -n "$want" ]; do
  next=""
  for p in $want; do
    case " $seen " in *" $p "*) continue ;; esac
    seen="$seen $p"
    deps=$(apt-cache "${apt_o[@]}" depends --no-recommends --no-suggests --no-conflicts \
             --no-breaks --no-replaces --no-enhances "$p" 2>/dev/null |
           awk '/Depends:/ {print $2}' | tr -d '<>' | sort -u)
    for d in $deps; do
      case "$d" in
        lib*|libc6) next="$next $d" ;;
      esac
    done
  done
  want=$next
done
log "criu: downloading$seen"
# shellcheck disable=SC2086
(cd "$work/debs" && apt-get "${apt_o[@]}" download $seen >&2) || die "apt-get download failed"

rm -rf "$CRIU_PREFIX.new"
mkdir -p "$CRIU_PREFIX.new"
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$CRIU_PREFIX.new"; done
rm -rf "$CRIU_PREFIX"
mv "$CRIU_PREFIX.new" "$CRIU_PREFIX"

libdir=$CRIU_PREFIX/usr/lib/x86_64-linux-gnu
[ -x "$libdir/ld-linux-x86-64.so.2" ] || die "trixie libc6 did not provide the loader"
[ -x "$CRIU_PREFIX/usr/sbin/criu" ] || die "trixie criu package did not provide usr/sbin/criu"
mkdir -p "$(dirname "$CRIU_WRAPPER")"
cat > "$CRIU_WRAPPER.tmp" <<EOF
#!/bin/sh
# Installed by berth scripts/install-deps.sh: criu from Debian trixie, run
# through its own loader and libraries in $CRIU_PREFIX.
exec $libdir/ld-linux-x86-64.so.2 --library-path $libdir $CRIU_PREFIX/usr/sbin/criu "\$@"
EOF
chmod 755 "$CRIU_WRAPPER.tmp"
mv "$CRIU_WRAPPER.tmp" "$CRIU_WRAPPER"
criu_works "$CRIU_WRAPPER" || die "private criu fails 'criu check': $("$CRIU_WRAPPER" check 2>&1 | tail -3)"
log "criu: $CRIU_WRAPPER ($("$CRIU_WRAPPER" --version | head -1)) passes criu check"
