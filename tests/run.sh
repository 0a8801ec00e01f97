#!/usr/bin/env bash
# Runs all the tests: installs what they need when it is missing (as root, from Debian's
# packages and the npm registry), then `cargo test`. Extra arguments go to cargo test.
#
#   bash tests/run.sh                 # everything
#   bash tests/run.sh servers::       # only the nginx/Apache end-to-end tests
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need=()
# sshd, ssh and rsync: the several-web-hosts tests start real sshd servers (tests/webhosts.rs).
# lintian, dpkg-shlibdeps (dpkg-dev) and curl: the package test (tests/package.rs).
for pair in git:git nginx:nginx fcgiwrap:fcgiwrap spawn-fcgi:spawn-fcgi apache2:apache2 \
    sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client rsync:rsync \
    lintian:lintian dpkg-shlibdeps:dpkg-dev curl:curl; do
  bin=${pair%%:*}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("${pair##*:}")
done
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: missing ${need[*]}; install them: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The default steps are `pnpm install` and `pnpm docs:build`; the tests run real pnpm.
command -v pnpm >/dev/null 2>&1 || npm install -g pnpm@9
# The package test builds the .deb with cargo-deb.
cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked

exec cargo test --locked --workspace -- "$@"
