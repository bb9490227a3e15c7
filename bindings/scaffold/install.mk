# install.mk — make install / uninstall / test-install (included by the top
# Makefile, whose variables it uses: B, CORE_SRC, GLUE_SRC, HDRS, WARN, INC,
# WASM_CC, WASM_CFLAGS, WASM_LDFLAGS, WASM_MAX, EX_echo).
#
#   make install   PREFIX=DIR [DESTDIR=STAGE]   (PREFIX defaults to /usr/local)
#   make uninstall PREFIX=DIR [DESTDIR=STAGE]   removes exactly those files
#   make test-install   the user's path, outside the tree: install to a
#                       temporary prefix, `wsedge new` a project, build and
#                       test it on both targets (tests/install/run.sh)
#
# What lands in PREFIX:
#   include/wsedge.h, include/wsedge/*.h    the core's API + wsedge/native.h
#   lib/libwsedge.a, lib/libwsedge-native.a  core and native host (static)
#   lib/pkgconfig/wsedge.pc                 `pkg-config --cflags --libs wsedge`
#   lib/wsedge/wasm32/*.o                   the core + wasm glue, prebuilt for
#                                           wasm32 (an app's objects link with them)
#   share/wsedge/wsedge.mk                  the rules a project's Makefile includes
#   share/wsedge/check-wasm.mjs             the wasm size/imports check
#   share/wsedge/js/                        the npm package "wsedge" (shim,
#                                           types, wsedge/testing)
#   share/wsedge/template/                  the project `wsedge new` copies
#   bin/wsedge                              `wsedge new APPDIR [--name NAME]`

PREFIX  ?= /usr/local
DESTDIR ?=
SCAFFOLD := bindings/scaffold
WSEDGE_VERSION := $(shell sed -n 's/^[#]define WSE_VERSION_STRING "\(.*\)"/\1/p' wasm/include/wsedge/common.h)
IDIR := $(DESTDIR)$(PREFIX)

# headers
INST_TOP_HDR := wasm/include/wsedge.h
INST_SUB_HDRS := $(sort $(wildcard wasm/include/wsedge/*.h)) bindings/native/include/wsedge/native.h
# the core and the glue compiled for wasm32, one object per source
WASM32_SRC := $(CORE_SRC) $(GLUE_SRC)
WASM32_OBJ := $(WASM32_SRC:%.c=$(B)/wasm32/%.o)
WASM32_NAMES := $(notdir $(WASM32_OBJ))
# the npm package (bindings/workers)
JS_PKG_FILES := wsedge.js $(notdir $(wildcard bindings/workers/*.d.ts)) testing.mjs package.json \
                $(if $(wildcard bindings/workers/README.md),README.md)
# the project template (gitignore becomes the project's .gitignore)
TEMPLATE_FILES := $(sort $(patsubst $(SCAFFOLD)/template/%,%,$(shell find $(SCAFFOLD)/template -type f 2>/dev/null)))
TEMPLATE_DIRS  := $(sort $(patsubst $(SCAFFOLD)/template/%,%,$(shell find $(SCAFFOLD)/template -mindepth 1 -type d 2>/dev/null)))

# Everything install writes, relative to PREFIX (uninstall removes these).
INSTALLED := include/wsedge.h $(addprefix include/wsedge/,$(notdir $(INST_SUB_HDRS))) \
  lib/libwsedge.a lib/libwsedge-native.a lib/pkgconfig/wsedge.pc \
  $(addprefix lib/wsedge/wasm32/,$(WASM32_NAMES)) \
  share/wsedge/wsedge.mk share/wsedge/check-wasm.mjs \
  $(addprefix share/wsedge/js/,$(JS_PKG_FILES)) \
  $(addprefix share/wsedge/template/,$(TEMPLATE_FILES)) \
  bin/wsedge
# Directories install may create, deepest first: the wsedge ones are
# removed by uninstall, the shared ones (include, lib, share, bin,
# lib/pkgconfig) only when left empty.
INSTALL_DIRS := include/wsedge lib/wsedge/wasm32 lib/wsedge \
  $(addprefix share/wsedge/template/,$(shell printf '%s\n' $(TEMPLATE_DIRS) | awk '{print length, $$0}' | sort -rn | cut -d' ' -f2-)) \
  share/wsedge/template share/wsedge/js share/wsedge \
  lib/pkgconfig include lib share bin

# The wasm32 objects: the top Makefile's WASM_CFLAGS, one file at a time.
$(B)/wasm32/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(WASM_CC) $(WASM_CFLAGS) -c $< -o $@

# Proof that the prebuilt objects make a module as an app's build does
# (examples/echo + the objects), within budget and importing nothing.
$(B)/wasm32/check.wasm: $(EX_echo) $(WASM32_OBJ)
	$(WASM_CC) $(WASM_CFLAGS) $(WASM_LDFLAGS) -o $@ $(EX_echo) $(WASM32_OBJ)
	@if command -v wasm-opt >/dev/null; then wasm-opt -Oz --enable-bulk-memory --strip-debug --strip-producers $@ -o $@; fi
	@node tests/tools/check-wasm.mjs $@ $(WASM_MAX)

.PHONY: install uninstall test-install install-check-prefix

install-check-prefix:
	@case "$(PREFIX)" in /*) ;; *) echo "install: PREFIX must be an absolute path (got '$(PREFIX)')" >&2; exit 2 ;; esac
	@case "$(PREFIX)" in *[!A-Za-z0-9_./+,=@:-]*) echo "install: PREFIX '$(PREFIX)' has characters the generated files cannot carry" >&2; exit 2 ;; esac
	@test -f bindings/workers/package.json || { echo "install: bindings/workers/package.json is missing (the npm package)" >&2; exit 1; }

# the substitutions every generated file gets
INSTALL_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(WSEDGE_VERSION)|g'

install: install-check-prefix native $(B)/libwsedge.a $(B)/libwsedge-native.a $(WASM32_OBJ) $(B)/wasm32/check.wasm
	@set -e; d='$(IDIR)'; \
	mkdir -p "$$d/include/wsedge" "$$d/lib/pkgconfig" "$$d/lib/wsedge/wasm32" "$$d/share/wsedge/js" \
	  "$$d/share/wsedge/template" "$$d/bin"; \
	install -m 644 $(INST_TOP_HDR) "$$d/include/"; \
	install -m 644 $(INST_SUB_HDRS) "$$d/include/wsedge/"; \
	install -m 644 $(B)/libwsedge.a $(B)/libwsedge-native.a "$$d/lib/"; \
	install -m 644 $(WASM32_OBJ) "$$d/lib/wsedge/wasm32/"; \
	$(INSTALL_SED) $(SCAFFOLD)/wsedge.pc.in > "$$d/lib/pkgconfig/wsedge.pc"; \
	$(INSTALL_SED) -e 's|@WARN@|$(WARN)|g' -e 's|@WASM_CFLAGS@|$(filter-out $(INC),$(WASM_CFLAGS))|g' \
	  -e 's|@WASM_LDFLAGS@|$(WASM_LDFLAGS)|g' -e 's|@WASM_OBJS@|$(WASM32_NAMES)|g' -e 's|@WASM_MAX@|$(WASM_MAX)|g' \
	  $(SCAFFOLD)/wsedge.mk.in > "$$d/share/wsedge/wsedge.mk"; \
	install -m 644 tests/tools/check-wasm.mjs "$$d/share/wsedge/check-wasm.mjs"; \
	install -m 644 $(addprefix bindings/workers/,$(JS_PKG_FILES)) "$$d/share/wsedge/js/"; \
	for f in $(TEMPLATE_FILES); do mkdir -p "$$d/share/wsedge/template/$$(dirname $$f)"; \
	  install -m 644 "$(SCAFFOLD)/template/$$f" "$$d/share/wsedge/template/$$f"; done; \
	$(INSTALL_SED) $(SCAFFOLD)/wsedge.in > "$$d/bin/wsedge"; chmod 755 "$$d/bin/wsedge"; \
	echo "install: wsedge $(WSEDGE_VERSION) in $$d ($(words $(INSTALLED)) files)"

uninstall: install-check-prefix
	@d='$(IDIR)'; n=0; \
	for f in $(INSTALLED); do if [ -e "$$d/$$f" ] || [ -L "$$d/$$f" ]; then rm -f "$$d/$$f"; n=$$((n+1)); fi; done; \
	for x in $(INSTALL_DIRS); do [ -d "$$d/$$x" ] && rmdir "$$d/$$x" 2>/dev/null || true; done; \
	echo "uninstall: removed $$n files from $$d"

# The user's path end to end (< 3 min): see tests/install/run.sh.
test-install:
	MAKE='$(MAKE)' bash tests/install/run.sh
