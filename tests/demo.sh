#!/usr/bin/env bash
# The try-it demo: a real signed Gitee delivery through the real binary to a real build of
# a throwaway site, with real git and real pnpm. Everything lives in one temp folder.
#
#   bash tests/demo.sh            (KEEP=1 keeps the folder afterwards)
set -euo pipefail
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -z "${DEMO_BIN:-}" ]; then
  cd "$(dirname "$0")/.."
  say "building deploy-hook (release)"
  cargo build --release --locked --quiet
  command -v pnpm >/dev/null 2>&1 || { say "installing pnpm"; npm install -g pnpm@9 >/dev/null; }
  if [ "$(id -u)" = 0 ]; then
    # As root, deploy-hook's commands become the state folder's owner, and `check` holds
    # root-owned state to be a mistake (the web server could not write it). So the demo
    # plays the web server's user for the rest, as a real setup would.
    say "running the rest as www-data, the web server's user (runuser -u www-data --)"
    STAGE=$(mktemp -d /tmp/deploy-hook-demo-bin.XXXXXX)
    trap 'rm -rf "$STAGE"' EXIT
    cp target/release/deploy-hook tests/demo.sh tests/fixtures/gitee-push.json "$STAGE"/
    chmod -R a+rX "$STAGE"
    runuser -u www-data -- env HOME=/tmp KEEP="${KEEP:-0}" PATH="$PATH" \
      DEMO_BIN="$STAGE/deploy-hook" DEMO_BODY="$STAGE/gitee-push.json" bash "$STAGE/demo.sh"
    exit
  fi
  DEMO_BIN=$PWD/target/release/deploy-hook
  DEMO_BODY=$PWD/tests/fixtures/gitee-push.json
fi
BIN=$DEMO_BIN

# Waits for `deploy-hook status docs --json` to show what a grep -E pattern says, polling
# with a deadline (never a guessed sleep); gives up loudly after two minutes.
await_status() {  # $1: what is awaited, for the message; $2: the pattern
  for _ in $(seq 1200); do
    "$BIN" status docs --json | grep -Eq "$2" && return
    sleep 0.1
  done
  echo "demo: gave up waiting for $1" >&2
  "$BIN" status docs >&2
  exit 1
}
# No build running, none waiting.
await_idle() {
  for _ in $(seq 1200); do
    "$BIN" status docs --json | grep -q '"state": "idle"' && [ ! -e state/docs/pending ] && return
    sleep 0.1
  done
  echo "demo: gave up waiting for the builds to finish" >&2
  "$BIN" status docs >&2
  exit 1
}
# The steps' PATH: where pnpm and node are, then the usual folders (duplicates dropped).
STEP_PATH=$(printf '%s\n' "$(dirname "$(command -v pnpm)")" "$(dirname "$(command -v node)")" /usr/local/bin /usr/bin /bin | awk '!seen[$0]++' | paste -sd:)

DEMO=$(mktemp -d /tmp/deploy-hook-demo.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$DEMO"' EXIT
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.invalid
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.invalid
cd "$DEMO"

say "a docs site in a git repository (the 'forge' is a bare repo here), and its server checkout"
git init -q --bare -b release site.git
git init -q -b release author && cd author
cat > package.json <<'JSON'
{ "name": "demo-docs", "private": true, "scripts": { "docs:build": "node build.js" } }
JSON
cat > build.js <<'JS'
// A stand-in for `vuepress build docs`: renders docs/README.md into docs/.vuepress/dist.
const fs = require('fs');
const out = 'docs/.vuepress/dist';
fs.mkdirSync(out, { recursive: true });
const md = fs.readFileSync('docs/README.md', 'utf8').trim();
fs.writeFileSync(out + '/index.html', `<h1>${md}</h1>\n<p>commit ${process.env.DEPLOY_HOOK_COMMIT}</p>\n`);
JS
mkdir -p docs && echo "Hello from the first push" > docs/README.md
git add -A && git commit -qm "first docs" && git remote add origin ../site.git && git push -q origin release
cd .. && git clone -q site.git checkout

say "the config: Gitee signing-key mode, the default pnpm steps, atomic publish to ./www"
openssl rand -hex 16 2>/dev/null > hook.secret || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > hook.secret
chmod 600 hook.secret
cat > config.toml <<TOML
state_dir = "$DEMO/state"
[log]
syslog = ""          # no syslog daemon here: log lines go to stderr
[hooks.docs]
provider = "gitee"
secret_file = "$DEMO/hook.secret"
gitee_mode = "sign"
repo = "$DEMO/checkout"
branch = "release"   # the real Gitee payload below pushes to refs/heads/release
clean = ["docs/.vuepress/dist"]
path = "$STEP_PATH"
step_timeout_secs = 300
[hooks.docs.publish]
from = "docs/.vuepress/dist"
to = "$DEMO/www"
keep = 5
TOML
cat config.toml
export DEPLOY_HOOK_CONFIG=$DEMO/config.toml

say "deploy-hook check"
"$BIN" check

# The body: a real Gitee push delivery (tests/fixtures/gitee-push.json), byte for byte.
BODY=$DEMO_BODY
deliver() {
  # Sign exactly as Gitee does (a fresh timestamp each time) and run the CGI as fcgiwrap would.
  # sign first, on its own: when it fails, nothing unsigned is sent.
  ( h=$("$BIN" sign docs --body "$BODY" --format env) && eval "$h" && exec "$BIN" < "$BODY" )
}

say "a signed delivery, as the web server would run it (deploy-hook sign prints the headers)"
"$BIN" sign docs --body "$BODY" | sed 's/^/    /'
start=$(date +%s%N)
deliver
echo
echo "    (answered in $(( ($(date +%s%N) - start) / 1000000 )) ms; the build goes on in a detached worker)"

say "deploy-hook status, while it builds"
await_status "the build to start" '"state": "building"|"result": '
"$BIN" status docs
await_idle

say "the live site"
ls -l www | sed 's/^/    /'
cat www/index.html

say "two more pushes and a burst of 5 deliveries while the next build runs: they collapse"
cd author && echo "Hello from the second push" > docs/README.md && git commit -qam second && git push -q origin release
cd .. && deliver >/dev/null 2>&1
second=$(git -C author rev-parse HEAD)
await_status "the second push's build to start" "\"commit\": \"$second\""
cd author && echo "Hello from the newest push" > docs/README.md && git commit -qam newest && git push -q origin release
newest=$(git rev-parse HEAD); cd ..
for _ in 1 2 3 4 5; do deliver 2>/dev/null | tail -1; echo; done
await_idle
"$BIN" status docs
cat www/index.html
grep -q "$newest" www/index.html
say "done: the site shows the newest commit ($newest), built by one follow-up build"
if [ "${KEEP:-0}" = 1 ]; then echo "everything is in $DEMO"; fi
