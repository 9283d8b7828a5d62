# berth: the two commands a newcomer needs are `make run` and `make test`.
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
MAKEFLAGS  += --no-print-directory
DATA       ?= $(CURDIR)/demo-data
LISTEN     ?= 127.0.0.1:8080
PREFIX     ?= /usr/local
FUZZ_SECONDS ?= 20

.PHONY: all deps build install install-files run test bench bench-spawn fuzz format clean

all: build

deps:
	@sh scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(if $(CI),-DBERTH_WERROR=ON) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Builds, then installs under $(PREFIX) (DESTDIR is put in front, for
# packaging): bin/berth, the sample programs in lib/berth/programs/, the
# systemd units (lib/systemd/system/berth.service, its ExecStart pointing at
# $(PREFIX)/bin/berth, berth.socket, its front door, and berth-tls.socket,
# its TLS door), the man page and
# bash completion.
install: build
	@$(MAKE) install-files

# What install copies, from $(BUILD) as it is (test/selfhost.sh installs
# the build under test this way).
install-files:
	@install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/berth/programs \
		$(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions
	@install -m 0755 $(BUILD)/berth $(DESTDIR)$(PREFIX)/bin/berth
	@install -m 0755 $(BUILD)/programs/kv $(BUILD)/programs/share $(BUILD)/programs/chat $(DESTDIR)$(PREFIX)/lib/berth/programs/
	@sed 's|@BINDIR@|$(PREFIX)/bin|g' packaging/berth.service.in > $(DESTDIR)$(PREFIX)/lib/systemd/system/berth.service
	@install -m 0644 packaging/berth.socket packaging/berth-tls.socket $(DESTDIR)$(PREFIX)/lib/systemd/system/
	@chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/berth.service
	@install -m 0644 $(BUILD)/berth.1 $(DESTDIR)$(PREFIX)/share/man/man1/berth.1
	@install -m 0644 packaging/berth.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/berth
	@echo "installed berth in $(DESTDIR)$(PREFIX): bin/berth, lib/berth/programs/, lib/systemd/system/berth.{service,socket} and berth-tls.socket, share/man/man1/berth.1, share/bash-completion/completions/berth"

# Starts a host in the foreground with demo ships; Ctrl-C stops it.
run: build
	@sh scripts/run-demo.sh $(BUILD) $(DATA) $(LISTEN)

# The whole suite: warnings are errors, ASan and UBSan are on.
test: deps format-check
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DBERTH_WERROR=ON -DBERTH_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j $(JOBS)
	@cd $(TEST_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/test/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS)

# Builds every libFuzzer target (fuzz/build.sh) and runs each for
# FUZZ_SECONDS from its seeds in fuzz/corpus/; a crash, a leak or undefined
# behaviour fails.
fuzz: deps
	@sh fuzz/build.sh -run $(FUZZ_SECONDS)

bench: build
	@sh bench/run.sh $(BUILD)

# The spawning part of make bench alone (bench/spawn.py); QUICK=1 for a
# smoke run of a few seconds.
bench-spawn: build
	@python3 bench/spawn.py $(BUILD) $(CURDIR)/bench-spawn-data $(if $(QUICK),--quick)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

# The C sources follow .clang-format; `make format` fixes them.
format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h') || \
		{ echo "make test: sources are not formatted; run make format" >&2; exit 1; }

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
