# wsedge — one C core, two hosts.
#   make dev    build the wasm core and run the chat app under wrangler dev
#   make test   install what is missing, then run every test
# Conventions (add files, not rules): core sources wasm/src/*.c, native host
# library bindings/native/*.c (public header bindings/native/include/),
# wasm glue bindings/workers/*.c, C tests tests/c/test_*.c, fuzz targets
# tests/fuzz/fuzz_*.c (corpus in tests/fuzz/corpus/<name>/). Example apps
# live in examples/<name>/ and are built the way a user's app is: their
# objects, linked with libwsedge-native.a natively and with the glue in wasm.

SHELL := /bin/bash
.DEFAULT_GOAL := native
.DELETE_ON_ERROR:

CC      ?= cc
ifeq ($(origin CC),default)
CC      := clang
endif
B       := build
INC     := -Iwasm/include -Ibindings/native/include
WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS := $(WARN) $(CFLAGS) $(INC) -D_POSIX_C_SOURCE=200809L
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

CORE_SRC    := $(sort $(wildcard wasm/src/*.c))
# the chat example's app (chat.c defines wsedge_app; it serves /ws echo too)
EXAMPLE_SRC := examples/chat/chat.c examples/echo/echo.c
NATIVE_SRC  := $(sort $(wildcard bindings/native/*.c))
GLUE_SRC    := $(sort $(wildcard bindings/workers/*.c))
TEST_SRC    := $(sort $(wildcard tests/c/test_*.c examples/*/tests/test_*.c))
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
HDRS        := $(wildcard wasm/include/*.h wasm/include/wsedge/*.h wasm/src/*.h bindings/native/*.h \
                 bindings/native/include/wsedge/*.h examples/*/*.h tests/c/*.h)

CORE_OBJ    := $(CORE_SRC:%.c=$(B)/obj/%.o)
EXAMPLE_OBJ := $(EXAMPLE_SRC:%.c=$(B)/obj/%.o)
NATIVE_OBJ  := $(NATIVE_SRC:%.c=$(B)/obj/%.o)
ASAN_CORE   := $(CORE_SRC:%.c=$(B)/asan/%.o)
TEST_BIN    := $(addprefix $(B)/test/,$(notdir $(TEST_SRC:.c=)))
FUZZ_BIN    := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)

# ---- set-up ---------------------------------------------------------------
APT_PKGS := clang lld libclang-rt-14-dev binaryen wabt libuv1-dev zlib1g-dev libdeflate-dev libhiredis-dev redis-server \
            emscripten chromium python3-websockets valgrind pkg-config
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "make deps: installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; fi
	@if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  npm ci --no-audit --no-fund --loglevel=error; fi

# ---- native ---------------------------------------------------------------
.PHONY: native
native: $(B)/libwsedge.a $(B)/libwsedge-native.a $(B)/wsedge

$(B)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/asan/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -c $< -o $@

# the core (protocol + app layer): what every app links, natively
$(B)/libwsedge.a: $(CORE_OBJ)
	@mkdir -p $(B)
	rm -f $@ && ar rcs $@ $^

# the native server as a library (libuv, zlib); its main.o is linked only
# into a program that defines no main of its own
$(B)/libwsedge-native.a: $(NATIVE_OBJ)
	@mkdir -p $(B)
	rm -f $@ && ar rcs $@ $^

# The chat page (worker/chat.html, also served by the Worker) embedded in the
# chat example's program (examples/chat/main.c).
$(B)/gen/chat_page.c: worker/chat.html
	@mkdir -p $(dir $@)
	node -e 'const fs=require("fs"),b=fs.readFileSync(process.argv[1]);let s="/* generated from worker/chat.html: do not edit */\n#include <stddef.h>\nextern const unsigned char chat_page[];\nextern const size_t chat_page_len;\nconst unsigned char chat_page[]={";for(let i=0;i<b.length;i++)s+=(i%20?"":"\n")+b[i]+",";fs.writeFileSync(process.argv[2],s+"0};\nconst size_t chat_page_len="+b.length+";\n")' $< $@

$(B)/gen/chat_page.o: $(B)/gen/chat_page.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

CHAT_MAIN := examples/chat/main.c
NATIVE_LIBS := -luv -lz -ldeflate -lhiredis -lpthread

# build/wsedge: the chat example's program, linked as a user's app is
$(B)/wsedge: $(EXAMPLE_OBJ) $(B)/obj/$(CHAT_MAIN:.c=.o) $(B)/gen/chat_page.o $(B)/libwsedge-native.a $(B)/libwsedge.a
	$(CC) $(CFLAGS) -o $@ $(EXAMPLE_OBJ) $(B)/obj/$(CHAT_MAIN:.c=.o) $(B)/gen/chat_page.o \
	  $(B)/libwsedge-native.a $(B)/libwsedge.a $(NATIVE_LIBS)

# AddressSanitizer+UBSan build of the same program, for the integration tests.
NATIVE_LIB_SRC := $(filter-out bindings/native/main.c,$(NATIVE_SRC))
$(B)/wsedge-asan: $(NATIVE_LIB_SRC) $(CORE_SRC) $(EXAMPLE_SRC) $(CHAT_MAIN) $(HDRS) $(B)/gen/chat_page.c
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -o $@ $(NATIVE_LIB_SRC) $(CORE_SRC) $(EXAMPLE_SRC) $(CHAT_MAIN) $(B)/gen/chat_page.c $(NATIVE_LIBS)

# ---- example apps, built the way a user's app is ----------------------------
# examples/<name>: EX_<name> are the app's sources (wsedge_app and what it
# uses); a main.c of its own, when present, replaces the library's main().
EXAMPLES   := echo chat cursors
EX_echo    := examples/echo/echo.c examples/echo/app.c
EX_chat    := $(EXAMPLE_SRC)
EX_cursors := $(filter-out examples/cursors/main.c,$(wildcard examples/cursors/*.c))

define example_app
$(B)/examples/$(1): $$(EX_$(1):%.c=$(B)/obj/%.o) $(wildcard examples/$(1)/main.c) $(B)/libwsedge-native.a $(B)/libwsedge.a $(if $(filter chat,$(1)),$(B)/gen/chat_page.o)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) -o $$@ $$(EX_$(1):%.c=$(B)/obj/%.o) $(wildcard examples/$(1)/main.c) $(if $(filter chat,$(1)),$(B)/gen/chat_page.o) \
	  $(B)/libwsedge-native.a $(B)/libwsedge.a $$(NATIVE_LIBS)
$(B)/examples/$(1).wasm: $$(EX_$(1)) $$(CORE_SRC) $$(GLUE_SRC) $$(HDRS)
	@mkdir -p $$(dir $$@)
	$$(WASM_CC) $$(WASM_CFLAGS) $$(WASM_LDFLAGS) -o $$@ $$(CORE_SRC) $$(EX_$(1)) $$(GLUE_SRC)
	@if command -v wasm-opt >/dev/null; then wasm-opt $$(WASM_OPT) $$@ -o $$@; fi
	@node tests/tools/check-wasm.mjs $$@ $$(or $$(WASM_MAX_$(1)),$$(WASM_MAX))
endef
$(foreach e,$(EXAMPLES),$(eval $(call example_app,$(e))))

.PHONY: examples
examples: $(foreach e,$(EXAMPLES),$(if $(EX_$(e)),$(B)/examples/$(e) $(B)/examples/$(e).wasm))

# ---- wasm -----------------------------------------------------------------
ifdef WASI_SDK_PATH
WASM_CC := $(WASI_SDK_PATH)/bin/clang
else
WASM_CC := clang
endif
# -flto: one optimisation over core + app + glue (a module of one app);
# sign-ext and non-trapping float-to-int (every runtime the shim targets has
# them: V8 since 2019) shorten the glue's double <-> int conversions.
WASM_CFLAGS := --target=wasm32 -std=c11 -Wall -Wextra -Werror -Oz -flto -ffreestanding -nostdlib \
  -mbulk-memory -msign-ext -mnontrapping-fptoint -fvisibility=hidden -fno-builtin-printf $(INC) -DWSE_WASM=1
# --strip-debug, not --strip-all: clang 14 runs wasm-opt itself when it is on
# PATH and needs the target_features section to accept bulk-memory ops.
WASM_LDFLAGS := -Wl,--no-entry -Wl,--gc-sections -Wl,--strip-debug -Wl,-z,stack-size=65536 \
  -Wl,--initial-memory=1114112
# The framework's budget: core + glue + a minimal app (build/examples/echo.wasm)
# stays within 32 KiB; the chat example, with timers and history, is bigger.
WASM_MAX := 32768
WASM_CHAT_MAX := 40960
WASM_MAX_chat := $(WASM_CHAT_MAX)
# a fresh instance's memory is zeroed (zero bytes of data segments need not
# be stored) and wasm-ld places nothing below 1 KiB (--global-base=1024)
WASM_OPT := -Oz --low-memory-unused --zero-filled-memory --enable-bulk-memory --enable-sign-ext \
  --enable-nontrapping-float-to-int --strip-debug --strip-producers

.PHONY: wasm wasm-emscripten
wasm: $(B)/wsedge.wasm
$(B)/wsedge.wasm: $(CORE_SRC) $(EXAMPLE_SRC) $(GLUE_SRC) $(HDRS)
	@mkdir -p $(B)
	$(WASM_CC) $(WASM_CFLAGS) $(WASM_LDFLAGS) -o $@ $(CORE_SRC) $(EXAMPLE_SRC) $(GLUE_SRC)
	@if command -v wasm-opt >/dev/null; then wasm-opt $(WASM_OPT) $@ -o $@; fi
	@node tests/tools/check-wasm.mjs $@ $(WASM_CHAT_MAX)

# -Oz -flto, not -O2: at -O2 emcc inlines the module to ~43 KB, over the budget.
wasm-emscripten: $(B)/wsedge-emcc.wasm
$(B)/wsedge-emcc.wasm: $(CORE_SRC) $(EXAMPLE_SRC) $(GLUE_SRC) $(HDRS)
	@mkdir -p $(B)
	emcc -Oz -flto -sSTANDALONE_WASM --no-entry -std=c11 -Wall -Wextra -Werror $(INC) -DWSE_WASM=1 -DWSE_EMSCRIPTEN=1 \
	  -mbulk-memory -msign-ext -mnontrapping-fptoint -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=1179648 -sTOTAL_STACK=65536 \
	  -o $@ $(CORE_SRC) $(EXAMPLE_SRC) $(GLUE_SRC)
	@node tests/tools/check-wasm.mjs $@ $(WASM_CHAT_MAX)

# ---- tests ----------------------------------------------------------------
.PHONY: test test-c fuzz fuzz-smoke fuzz-long test-native test-workers test-e2e test-hardening

test: deps
	$(MAKE) test-c
	$(MAKE) fuzz-smoke
	$(MAKE) test-workers
	$(MAKE) test-native
	$(MAKE) test-e2e
	$(MAKE) test-hardening
	$(MAKE) test-examples
	$(MAKE) test-install
	@echo "make test: all suites passed"

$(B)/test/%: tests/c/%.c $(ASAN_CORE) $(HDRS)
	@mkdir -p $(B)/test
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -Itests/c -o $@ $< $(ASAN_CORE)
# test_cluster drives the chat example (wsedge_app) on three nodes
$(B)/test/test_cluster: tests/c/test_cluster.c $(ASAN_CORE) $(EXAMPLE_SRC:%.c=$(B)/asan/%.o) $(HDRS)
	@mkdir -p $(B)/test
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -Itests/c -o $@ $< $(ASAN_CORE) $(EXAMPLE_SRC:%.c=$(B)/asan/%.o)
# test_embed links the native server library (libuv, zlib): the server embedded in a program
$(B)/test/test_embed: tests/c/test_embed.c $(NATIVE_LIB_SRC) $(ASAN_CORE) $(HDRS)
	@mkdir -p $(B)/test
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -Itests/c -Ibindings/native -o $@ $< $(NATIVE_LIB_SRC) $(ASAN_CORE) $(NATIVE_LIBS)
# an example's own C tests (examples/<name>/tests/test_*.c): the core and
# that example's app sources (EX_<name>), nothing else
define example_test
$(B)/test/$(notdir $(1:.c=)): $(1) $(ASAN_CORE) $$(EX_$(2):%.c=$(B)/asan/%.o) $(HDRS)
	@mkdir -p $(B)/test
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -Itests/c -o $$@ $$< $(ASAN_CORE) $$(EX_$(2):%.c=$(B)/asan/%.o)
endef
$(foreach t,$(wildcard examples/*/tests/test_*.c),$(eval $(call example_test,$(t),$(word 2,$(subst /, ,$(t))))))
# test_deflate also links the native host's permessage-deflate (zlib)
$(B)/test/test_deflate: tests/c/test_deflate.c bindings/native/deflate.c $(ASAN_CORE) $(HDRS)
	@mkdir -p $(B)/test
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -Itests/c -Ibindings/native -o $@ $< bindings/native/deflate.c $(ASAN_CORE) -lz -ldeflate

test-c: $(TEST_BIN)
	@pass=0; fail=0; for t in $(TEST_BIN); do \
	  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); echo "FAILED: $$t"; fi; \
	done; echo "C test programs: $$pass passed, $$fail failed"; [ $$fail = 0 ]

FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -O1 -g
$(B)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(EXAMPLE_SRC) $(HDRS)
	@mkdir -p $(B)/fuzz
	clang $(WARN) $(INC) $(FUZZ_FLAGS) -Itests/c -o $@ $< $(CORE_SRC) $(EXAMPLE_SRC)
# fuzz_app: no coverage hooks in the handshake/SHA-1 code it only calls with
# one fixed valid request (see tests/fuzz/fuzz_app.ignorelist)
$(B)/fuzz/fuzz_app: tests/fuzz/fuzz_app.c tests/fuzz/fuzz_app.ignorelist $(CORE_SRC) $(EXAMPLE_SRC) $(HDRS)
	@mkdir -p $(B)/fuzz
	clang $(WARN) $(INC) $(FUZZ_FLAGS) -fsanitize-coverage-ignorelist=tests/fuzz/fuzz_app.ignorelist -Itests/c -o $@ $< $(CORE_SRC) $(EXAMPLE_SRC)
# fuzz_http also links the native host's HTTP head parser
$(B)/fuzz/fuzz_http: tests/fuzz/fuzz_http.c bindings/native/http.c $(CORE_SRC) $(EXAMPLE_SRC) $(HDRS)
	@mkdir -p $(B)/fuzz
	clang $(WARN) $(INC) $(FUZZ_FLAGS) -Itests/c -o $@ $< bindings/native/http.c $(CORE_SRC) $(EXAMPLE_SRC)
# fuzz_inflate links the native host's permessage-deflate (zlib, libdeflate)
$(B)/fuzz/fuzz_inflate: tests/fuzz/fuzz_inflate.c bindings/native/deflate.c $(CORE_SRC) $(EXAMPLE_SRC) $(HDRS)
	@mkdir -p $(B)/fuzz
	clang $(WARN) $(INC) $(FUZZ_FLAGS) -Itests/c -Ibindings/native -o $@ $< bindings/native/deflate.c $(CORE_SRC) $(EXAMPLE_SRC) -lz -ldeflate

fuzz: $(FUZZ_BIN)

FUZZ_SMOKE_SECONDS ?= 10
fuzz-smoke: fuzz
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); c=tests/fuzz/corpus/$$n; mkdir -p $$c $(B)/fuzz/work/$$n; \
	  echo "fuzz-smoke: $$n ($(FUZZ_SMOKE_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SMOKE_SECONDS) -print_final_stats=1 $(B)/fuzz/work/$$n $$c 2>&1 | grep -E "^(stat::number_of_executed_units|Done|INFO: seed corpus)|ERROR|SUMMARY" ; \
	  test $${PIPESTATUS[0]} -eq 0; done

FUZZ_LONG_RUNS ?= 10000000
# every target >= FUZZ_LONG_RUNS executions; full logs in build/fuzz/long-<name>.log
fuzz-long: fuzz
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); c=tests/fuzz/corpus/$$n; mkdir -p $$c $(B)/fuzz/work/$$n; \
	  echo "fuzz-long: $$n ($(FUZZ_LONG_RUNS) runs)"; \
	  if ! $$f -runs=$(FUZZ_LONG_RUNS) -print_final_stats=1 -artifact_prefix=$(B)/fuzz/$$n- $(B)/fuzz/work/$$n $$c > $(B)/fuzz/long-$$n.log 2>&1; then \
	    tail -60 $(B)/fuzz/long-$$n.log; echo "fuzz-long: $$n FAILED"; exit 1; fi; \
	  grep -E "^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" $(B)/fuzz/long-$$n.log; done

test-native: native $(B)/wsedge-asan
	node --test --test-concurrency=1 tests/native/

test-workers: wasm wasm-emscripten $(B)/examples/echo.wasm
	WSE_WASM=build/wsedge.wasm npm run --silent test:workers
	WSE_WASM=build/wsedge-emcc.wasm npm run --silent test:workers

test-e2e: native wasm
	node --test --test-concurrency=1 tests/e2e/

test-hardening: native $(B)/wsedge-asan
	node --test --test-concurrency=1 tests/hardening/

# every example's own tests (examples/<name>/tests/*.test.mjs) on both targets
.PHONY: test-examples
test-examples: native wasm examples
	node --test --test-concurrency=1 $(sort $(wildcard examples/*/tests/*.test.mjs))

# make install / uninstall / test-install (the user's path: install to a
# temporary prefix, `wsedge new` a project outside the tree, build and test it)
include bindings/scaffold/install.mk

.PHONY: valgrind soak
# valgrind 3.19 cannot read clang 14's default DWARF 5: a -gdwarf-4 build for memcheck
$(B)/wsedge-vg: $(NATIVE_LIB_SRC) $(CORE_SRC) $(EXAMPLE_SRC) $(CHAT_MAIN) $(HDRS) $(B)/gen/chat_page.c
	$(CC) $(WARN) $(INC) -D_POSIX_C_SOURCE=200809L -O1 -gdwarf-4 -o $@ $(NATIVE_LIB_SRC) $(CORE_SRC) $(EXAMPLE_SRC) $(CHAT_MAIN) $(B)/gen/chat_page.c $(NATIVE_LIBS)

valgrind: native $(B)/wsedge-vg
	WSE_VALGRIND=1 WSE_NATIVE_BIN=$(B)/wsedge-vg node --test --test-concurrency=1 tests/native/

soak: native
	ulimit -n $$(ulimit -Hn) && WSE_SOAK=1 node --test tests/hardening/soak.test.mjs

# ---- run ------------------------------------------------------------------
.PHONY: dev serve
dev: deps wasm
	CLOUDFLARE_CF_FETCH_ENABLED=false npx wrangler dev --ip 127.0.0.1 --port 8787

serve: deps native
	$(B)/wsedge serve --listen 127.0.0.1:4040

# ---- benchmarks (never part of make test) --------------------------------
.PHONY: bench bench-core
bench-core: deps
	@$(MAKE) -s $(B)/bench/bench_core
	$(B)/bench/bench_core
	node bench/utf8_node.mjs

$(B)/bench/bench_core: bench/bench_core.c $(CORE_SRC) $(HDRS)
	@mkdir -p $(B)/bench
	$(CC) $(WARN) $(INC) -O3 -march=native -o $@ bench/bench_core.c $(CORE_SRC)

bench: deps native wasm
	bench/run

.PHONY: clean
clean:
	rm -rf $(B)
