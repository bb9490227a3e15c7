#!/usr/bin/env bash
# tests/install/run.sh — `make test-install`: the user's path, end to end,
# outside the checkout. Installs wsedge to a temporary prefix, checks what
# landed there (headers, libs, pkg-config, the wasm objects, the npm
# package, bin/wsedge), checks `wsedge new`'s argument handling, scaffolds a
# project in a temporary directory under /tmp, builds both targets, runs the
# project's own `make test` (its scenario on the native build and under
# wrangler dev), bundles it with `wrangler deploy --dry-run`, then checks
# that `make uninstall` empties the prefix (also with DESTDIR). Everything
# temporary is removed on exit. Last line: "test-install: N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MAKE=${MAKE:-make}
STEP_TIMEOUT=${WSE_INSTALL_STEP_TIMEOUT:-300} # seconds, any one step

P=$(mktemp -d /tmp/wsedge-prefix.XXXXXX)    # the install prefix
A=$(mktemp -d /tmp/wsedge-apps.XXXXXX)      # projects live here
S=$(mktemp -d /tmp/wsedge-stage.XXXXXX)     # DESTDIR staging
LOG=$A/.log                                 # the last step's output
cleanup() { rm -rf "$P" "$A" "$S"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() {
  fail=$((fail + 1)); echo "FAIL - $*"
  if [ -s "$LOG" ]; then echo "  last output lines:"; tail -25 "$LOG" | sed 's/^/    /'; fi
}
# check DESC CMD...: run CMD (bounded), output to $LOG; ok when it exits 0
check() {
  local desc=$1; shift
  if timeout --kill-after=10 "$STEP_TIMEOUT" "$@" >"$LOG" 2>&1; then ok "$desc"; else bad "$desc (exit $?)"; fi
}
# refuses DESC CODE PATTERN CMD...: CMD exits CODE and says PATTERN on stderr
refuses() {
  local desc=$1 code=$2 pat=$3; shift 3
  "$@" >"$LOG" 2>&1; local rc=$?
  if [ "$rc" = "$code" ] && grep -q -- "$pat" "$LOG"; then ok "$desc"; else bad "$desc (exit $rc, wanted $code and '$pat')"; fi
}
is() { # is DESC GOT WANT
  if [ "$2" = "$3" ]; then ok "$1"; else : >"$LOG"; bad "$1: got '$2', wanted '$3'"; fi
}
finish() {
  echo "test-install: $pass passed, $fail failed"
  [ "$fail" = 0 ] && exit 0
  exit 1
}
# A project's make must not see this make's flags or command-line variables.
PMAKE=(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES make)

echo "test-install: prefix $P, projects in $A"

# ---- install ----------------------------------------------------------------
check "make install PREFIX=$P" "$MAKE" -C "$ROOT" --no-print-directory install PREFIX="$P"
[ -x "$P/bin/wsedge" ] || { bad "nothing usable installed"; finish; }

missing=""
for f in include/wsedge.h include/wsedge/app.h include/wsedge/json.h include/wsedge/native.h \
         lib/libwsedge.a lib/libwsedge-native.a lib/pkgconfig/wsedge.pc lib/wsedge/wasm32/wsedge_wasm.o \
         share/wsedge/wsedge.mk share/wsedge/check-wasm.mjs share/wsedge/js/wsedge.js \
         share/wsedge/js/wsedge.d.ts share/wsedge/js/testing.mjs share/wsedge/js/package.json \
         share/wsedge/template/app.c bin/wsedge; do
  [ -f "$P/$f" ] || missing="$missing $f"
done
is "the headers, libraries, pkg-config file, wasm objects, rules, npm package and template are installed" "${missing:-none}" none
for h in "$ROOT"/wasm/include/wsedge/*.h "$ROOT"/bindings/native/include/wsedge/native.h; do
  cmp -s "$h" "$P/include/wsedge/$(basename "$h")" || missing="$missing $(basename "$h")"
done
is "every public header is installed unchanged" "${missing:-none}" none

is "pkg-config --cflags --libs wsedge" \
  "$(PKG_CONFIG_PATH=$P/lib/pkgconfig pkg-config --cflags --libs wsedge 2>&1 | sed 's/ *$//')" \
  "-I$P/include -L$P/lib -lwsedge-native -lwsedge -luv -lz -ldeflate -lhiredis -lpthread"
is "pkg-config: Requires.private libuv zlib" \
  "$(PKG_CONFIG_PATH=$P/lib/pkgconfig pkg-config --print-requires-private wsedge 2>&1 | tr '\n' ' ' | sed 's/ *$//')" "libuv zlib"
is "wsedge --version" "$("$P/bin/wsedge" --version 2>&1)" \
  "wsedge $(sed -n 's/^#define WSE_VERSION_STRING "\(.*\)"/\1/p' "$ROOT/wasm/include/wsedge/common.h")"

# A program from one file and pkg-config, as wsedge/native.h promises
# (the library's main() calls the app's wsedge_app()).
check "cc examples/echo/{echo,app}.c \$(pkg-config --cflags --libs wsedge) links a server" \
  sh -c "cd '$A' && cc -std=c11 -o echo '$ROOT/examples/echo/echo.c' '$ROOT/examples/echo/app.c' \
    \$(PKG_CONFIG_PATH='$P/lib/pkgconfig' pkg-config --cflags --libs wsedge) && ./echo --version"

# ---- wsedge new: arguments ----------------------------------------------------
W=$P/bin/wsedge
refuses "wsedge new without APPDIR -> usage, exit 2" 2 "usage: wsedge new" "$W" new
refuses "wsedge new --name Bad -> exit 2" 2 "invalid name 'Bad'" "$W" new "$A/x1" --name Bad
refuses "wsedge new 9lives (name from the directory) -> exit 2" 2 "invalid name '9lives'" "$W" new "$A/9lives"
refuses "wsedge new with an unknown option -> exit 2" 2 "unknown option" "$W" new "$A/x2" --force
refuses "wsedge frob -> exit 2" 2 "unknown command" "$W" frob
mkdir -p "$A/full" && echo keep >"$A/full/notes.txt"
refuses "wsedge new into a non-empty directory -> exit 2" 2 "is not empty" "$W" new "$A/full"
is "... which is left as it was" "$(ls -A "$A/full"; cat "$A/full/notes.txt")" "notes.txt
keep"
is "no project created by a refused wsedge new" "$(ls -d "$A"/x1 "$A"/x2 "$A"/9lives 2>/dev/null)" ""
check "wsedge new my_rooms/ (name from the directory, into an existing empty one)" \
  sh -c "mkdir '$A/my_rooms' && '$W' new '$A/my_rooms/'"
is "... NAME is the directory's name, the Worker's has dashes" \
  "$(grep '^NAME' "$A/my_rooms/Makefile"; grep -m1 '^name' "$A/my_rooms/wrangler.toml")" 'NAME := my_rooms
name = "my-rooms"'

# ---- the project ------------------------------------------------------------
APP=$A/proj
check "wsedge new $APP --name roomapp" "$W" new "$APP" --name roomapp
files=$(cd "$APP" 2>/dev/null && find . -type f | sort | tr '\n' ' ')
is "the project's files" "$files" "./.gitignore ./Makefile ./README.md ./app.c ./durable/room.js ./package.json ./public/index.html ./tests/rooms.test.mjs ./worker/index.js ./wrangler.toml "
left=$(grep -rlE '@(NAME|WORKER_NAME|PREFIX|VERSION)@' "$APP" 2>/dev/null | tr '\n' ' ')
is "no placeholder left in the project" "${left:-none}" none
is "package.json depends on the installed package" \
  "$(node -e 'const p=require(process.argv[1]);console.log(p.dependencies.wsedge, p.devDependencies.wrangler, p.devDependencies.ws)' "$APP/package.json" 2>&1)" \
  "file:$P/share/wsedge/js 4.86.0 8.23.0"
is "app.c includes only wsedge.h" "$(grep '#include' "$APP/app.c")" '#include "wsedge.h"'
app_sum=$(cksum <"$APP/app.c")

check "make (in the project): build/roomapp and build/roomapp.wasm" "${PMAKE[@]}" -C "$APP"
if [ -x "$APP/build/roomapp" ] && [ -f "$APP/build/roomapp.wasm" ]; then ok "both targets built"; else bad "both targets built"; fi
is "build/roomapp --version" "$("$APP/build/roomapp" --version 2>&1)" "$("$W" --version)"
is "build/roomapp.wasm imports nothing" \
  "$(node -e 'const fs=require("fs");console.log(JSON.stringify(WebAssembly.Module.imports(new WebAssembly.Module(fs.readFileSync(process.argv[1])))))' "$APP/build/roomapp.wasm" 2>&1)" "[]"

check "make test (in the project): npm install, then its tests on both targets" "${PMAKE[@]}" -C "$APP" test
cp "$LOG" "$A/test.log"
for t in native workers; do
  n_ok=$(grep -cE "^ +ok [0-9]+ - \[$t\]" "$A/test.log")
  n_bad=$(grep -cE "^ +not ok [0-9]+ - \[$t\]" "$A/test.log")
  if [ "$n_ok" -ge 4 ] && [ "$n_bad" = 0 ]; then ok "the project's tests passed on $t ($n_ok)"; else
    LOG=$A/test.log bad "the project's tests on $t: $n_ok passed, $n_bad failed"; fi
done
is "npm install wrote package-lock.json (the template ships none)" "$([ -f "$APP/package-lock.json" ] && echo made)" made

check "npx wrangler deploy --dry-run --outdir build/worker (in the project)" \
  sh -c "cd '$APP' && CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false npx wrangler deploy --dry-run --outdir build/worker"
if grep -q "env.ROOMS (Room)" "$LOG" && [ -f "$APP/build/worker/index.js" ] && ls "$APP"/build/worker/*roomapp.wasm >/dev/null 2>&1; then
  ok "the bundle: worker/index.js, the app's wasm, the ROOMS binding"; else bad "the bundle: worker/index.js, the app's wasm, the ROOMS binding"; fi
is "app.c unchanged by building and testing both targets" "$(cksum <"$APP/app.c")" "$app_sum"

# ---- uninstall --------------------------------------------------------------
check "make uninstall PREFIX=$P" "$MAKE" -C "$ROOT" --no-print-directory uninstall PREFIX="$P"
is "the prefix is empty after uninstall" "$(cd "$P" && find . -mindepth 1 | sort | tr '\n' ' ')" ""
check "make uninstall again is harmless" "$MAKE" -C "$ROOT" --no-print-directory uninstall PREFIX="$P"

# ---- DESTDIR ----------------------------------------------------------------
check "make install PREFIX=/opt/wsedge DESTDIR=$S" "$MAKE" -C "$ROOT" --no-print-directory install PREFIX=/opt/wsedge DESTDIR="$S"
is "staged files name the final prefix" \
  "$(sed -n 's/^prefix=//p' "$S/opt/wsedge/lib/pkgconfig/wsedge.pc" 2>&1) $(grep -c "^PREFIX='/opt/wsedge'" "$S/opt/wsedge/bin/wsedge" 2>&1)" "/opt/wsedge 1"
check "make uninstall PREFIX=/opt/wsedge DESTDIR=$S" "$MAKE" -C "$ROOT" --no-print-directory uninstall PREFIX=/opt/wsedge DESTDIR="$S"
is "the staging directory holds only the empty prefix path" "$(cd "$S" && find . -mindepth 1 -not -type d | wc -l)" "0"

finish
