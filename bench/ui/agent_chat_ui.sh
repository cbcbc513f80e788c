#!/usr/bin/env bash
# Real-browser check of the official LangGraph Agent Chat UI against `rimas serve`.
#
# What it does:
#   1. gets the Agent Chat UI from the npm registry (the Next.js template embedded in the npm package
#      create-agent-chat-app), copies it to a work folder outside the repo, removes the build-time Google
#      font fetch (next/font/google) so it builds offline, installs it with pnpm and runs `next build`
#      (cached: skipped when the work folder already holds a build of the same package; REBUILD=1 forces);
#   2. installs playwright-core from npm into the work folder (no browser download: Debian's Chromium runs);
#   3. starts `rimas serve` on a free port with a temporary langgraph.json that serves only
#      bench/ui/chat_approval_graph.py as assistant `agent`, a temporary data dir and small seed data;
#   4. starts the built UI with `next start` on another free port;
#   5. runs bench/ui/drive.mjs: headless Chromium drives four flows, each on a new thread: (a) send a
#      message, wait for the streamed answer and the approval card, click Accept and wait for the
#      "approved" message; (b) change the amount to 80 in the card's edit form, submit, wait for
#      "Refund of 80.00 ... approved with edits"; (c) click Ignore and (d) click Mark as Resolved, each
#      checking the thread ends without a refund message. Screenshots and browser/API logs go to
#      bench/out/agent-chat-ui/;
#   6. stops both servers (by PID) on exit, whatever happened.
#   Exit status: 0 when every step of the four flows passes, non-zero otherwise (the failing step is printed).
#
# Needs: node >= 18 with npm/npx (pnpm comes through npx), the npm registry, Debian's chromium
#   (`apt-get install -y chromium chromium-driver`), curl, and the project venv (`make` creates .venv).
#
# Run (from anywhere):  bash bench/ui/agent_chat_ui.sh
# Knobs (environment):  WORK_DIR (default ${TMPDIR:-/tmp}/rimas-agent-chat-ui), REBUILD=1, API_PORT, UI_PORT,
#   CHROMIUM (default /usr/bin/chromium), UI_PACKAGE (default create-agent-chat-app@0.1.6), PNPM (default
#   pnpm@9), PLAYWRIGHT_CORE (default playwright-core@1.65.2), STEP_TIMEOUT_MS (default 30000),
#   KEEP_RUNNING=1 (leave both servers up after the browser steps until Ctrl-C, to look around by hand).
# shellcheck disable=SC2317  # stop_pid and cleanup run from the EXIT trap
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT_DIR="$REPO/bench/out/agent-chat-ui"
WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/rimas-agent-chat-ui}
UI_PACKAGE=${UI_PACKAGE:-create-agent-chat-app@0.1.6}
PNPM=${PNPM:-pnpm@9}
PLAYWRIGHT_CORE=${PLAYWRIGHT_CORE:-playwright-core@1.65.2}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
RIMAS="$REPO/.venv/bin/rimas"
PYTHON="$REPO/.venv/bin/python"
export NEXT_TELEMETRY_DISABLED=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_config_fund=false npm_config_audit=false

say() { printf '[agent-chat-ui %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }
elapsed() { echo $(($(date +%s) - $1))s; }

# --- prerequisites -----------------------------------------------------------------------------------
command -v node >/dev/null || die "node is missing (apt-get install -y nodejs npm)"
command -v npx >/dev/null || die "npx is missing (apt-get install -y npm)"
command -v curl >/dev/null || die "curl is missing (apt-get install -y curl)"
[[ -x $CHROMIUM ]] || die "$CHROMIUM is missing (apt-get install -y chromium chromium-driver)"
[[ -x $RIMAS ]] || die "$RIMAS is missing (run make in the repo root to create .venv)"
mkdir -p "$WORK_DIR" "$OUT_DIR"
rm -f "$OUT_DIR"/*.png "$OUT_DIR"/*.log "$OUT_DIR"/*.jsonl

# --- 1. the Agent Chat UI from npm, built offline -----------------------------------------------------
APP="$WORK_DIR/app"
STAMP="$APP/.rimas-built"
if [[ ${REBUILD:-0} != 1 && -f $STAMP && $(cat "$STAMP") == "$UI_PACKAGE" && -d $APP/.next ]]; then
    say "reusing the UI built from $UI_PACKAGE in $APP (REBUILD=1 to rebuild)"
else
    t0=$(date +%s)
    rm -rf "$WORK_DIR/pack" "$APP"
    mkdir -p "$WORK_DIR/pack"
    say "fetching $UI_PACKAGE from the npm registry"
    tarball=$(cd "$WORK_DIR/pack" && npm pack --silent "$UI_PACKAGE" | tail -n 1)
    tar -xzf "$WORK_DIR/pack/$tarball" -C "$WORK_DIR/pack"
    template="$WORK_DIR/pack/package/templates/nextjs"
    [[ -f $template/package.json && -f $template/src/app/layout.tsx ]] ||
        die "$UI_PACKAGE has no templates/nextjs (the Agent Chat UI template); see $WORK_DIR/pack/package"
    cp -r "$template" "$APP"
    # Offline build: next/font/google downloads the Inter font at build time. Drop the import, the font
    # object and its className; the page falls back to the default sans-serif font.
    sed -i -e '/from "next\/font\/google"/d' -e '/^const inter = Inter({/,/^});/d' \
        -e 's/ className={inter\.className}//' "$APP/src/app/layout.tsx"
    if grep -rq 'next/font/google' "$APP/src"; then die "next/font/google is still imported in $APP/src"; fi
    say "installing the UI's dependencies with $PNPM (no lockfile in the template: newest matching versions)"
    t1=$(date +%s)
    (cd "$APP" && npx --yes "$PNPM" install --no-frozen-lockfile --reporter=append-only) >"$WORK_DIR/install.log" 2>&1 ||
        { tail -n 30 "$WORK_DIR/install.log"; die "pnpm install failed (log: $WORK_DIR/install.log)"; }
    say "installed in $(elapsed "$t1"); building with next build"
    t1=$(date +%s)
    (cd "$APP" && ./node_modules/.bin/next build) >"$WORK_DIR/build.log" 2>&1 ||
        { tail -n 40 "$WORK_DIR/build.log"; die "next build failed (log: $WORK_DIR/build.log)"; }
    printf '%s' "$UI_PACKAGE" >"$STAMP"
    say "built in $(elapsed "$t1") (fetch + install + build: $(elapsed "$t0"))"
fi
say "UI: @langchain/langgraph-sdk $(node -p "require('$APP/node_modules/@langchain/langgraph-sdk/package.json').version"), next $(node -p "require('$APP/node_modules/next/package.json').version")"

# --- 2. playwright-core (driver only; the browser is Debian's Chromium) --------------------------------
PW="$WORK_DIR/driver"
if [[ ! -f $PW/node_modules/playwright-core/package.json ||
      $(node -p "require('$PW/node_modules/playwright-core/package.json').version") != "${PLAYWRIGHT_CORE##*@}" ]]; then
    say "installing $PLAYWRIGHT_CORE into $PW"
    mkdir -p "$PW"
    [[ -f $PW/package.json ]] || echo '{"private": true}' >"$PW/package.json"
    (cd "$PW" && npm install --silent --no-save "$PLAYWRIGHT_CORE") || die "npm install $PLAYWRIGHT_CORE failed"
fi

# --- 3./4. the two servers -------------------------------------------------------------------------------
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API_PORT=${API_PORT:-$(free_port)}
UI_PORT=${UI_PORT:-$(free_port)}
[[ $API_PORT != "$UI_PORT" ]] || die "API_PORT and UI_PORT must differ"
API_URL="http://127.0.0.1:$API_PORT"
UI_BASE="http://127.0.0.1:$UI_PORT"

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rimas-ui-run.XXXXXX")
# mktemp makes it 700; run as root, the embedded PostgreSQL runs as another user that must reach data/.
chmod 755 "$RUN_DIR"
RIMAS_PID=""
UI_PID=""
stop_pid() {  # stop_pid PID NAME: SIGTERM, wait up to 30 s, then SIGKILL
    local pid=$1 name=$2
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    say "$name did not stop in 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_pid "$UI_PID" "next start"
    stop_pid "$RIMAS_PID" "rimas serve"
    [[ -f $RUN_DIR/rimas.log ]] && cp "$RUN_DIR/rimas.log" "$OUT_DIR/rimas-serve.log"
    [[ -f $RUN_DIR/next.log ]] && cp "$RUN_DIR/next.log" "$OUT_DIR/next-start.log"
    rm -rf "$RUN_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat >"$RUN_DIR/langgraph.json" <<EOF
{"dependencies": ["."], "graphs": {"agent": "$HERE/chat_approval_graph.py:graph"}}
EOF
say "starting rimas serve on $API_URL (data in $RUN_DIR/data; the first start seeds data and trains models)"
# Run from the temp dir so a developer's .env in the repo does not change the settings under test.
(cd "$RUN_DIR" && exec env RIMAS_LANGGRAPH_CONFIG="$RUN_DIR/langgraph.json" RIMAS_DATA_DIR="$RUN_DIR/data" \
    RIMAS_SEED_SCALE=small RIMAS_LOG_JSON=false \
    RIMAS_CORS_ORIGINS="http://127.0.0.1:$UI_PORT,http://localhost:$UI_PORT" \
    "$RIMAS" serve --port "$API_PORT") >"$RUN_DIR/rimas.log" 2>&1 &
RIMAS_PID=$!

say "starting the UI (next start) on $UI_BASE"
(cd "$APP" && exec ./node_modules/.bin/next start -p "$UI_PORT" -H 127.0.0.1) >"$RUN_DIR/next.log" 2>&1 &
UI_PID=$!

wait_http() {  # wait_http URL PID NAME SECONDS LOG: until URL answers 2xx; fail if PID exits or time runs out
    local url=$1 pid=$2 name=$3 seconds=$4 log=$RUN_DIR/$5 t0
    t0=$(date +%s)
    while ! curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "$name exited early (log above)"; }
        (($(date +%s) - t0 < seconds)) || { tail -n 30 "$log" >&2; die "$name did not answer $url within ${seconds}s"; }
        sleep 1
    done
    say "$name is up ($url answered after $(elapsed "$t0"))"
}
wait_http "$UI_BASE/" "$UI_PID" "next start" 60 next.log
wait_http "$API_URL/info" "$RIMAS_PID" "rimas serve" 300 rimas.log

# --- 5. the browser ----------------------------------------------------------------------------------------
# The UI reads apiUrl/assistantId from the URL (NEXT_PUBLIC_* would be baked in at build time, and the
# thread list reads only the URL parameters).
UI_URL="$UI_BASE/?apiUrl=$API_URL&assistantId=agent"
say "driving Chromium: $UI_URL"
status=0
UI_URL="$UI_URL" API_URL="$API_URL" OUT_DIR="$OUT_DIR" PW_MODULES="$PW" CHROMIUM="$CHROMIUM" \
    STEP_TIMEOUT_MS="${STEP_TIMEOUT_MS:-30000}" node "$HERE/drive.mjs" || status=$?
if [[ ${KEEP_RUNNING:-0} == 1 ]]; then
    say "KEEP_RUNNING=1: open $UI_URL (API $API_URL); Ctrl-C stops both servers"
    wait "$RIMAS_PID" || true
fi
if ((status == 0)); then
    say "PASS: screenshots and logs in $OUT_DIR"
else
    say "FAIL (drive.mjs exit $status): screenshots and logs in $OUT_DIR (server log: rimas-serve.log)"
fi
exit "$status"
