# cryo: freeze a running process into one self-restoring executable.
GO       ?= go
GOFLAGS  ?=
export CGO_ENABLED = 0

BINS := bin/freeze bin/thaw

.PHONY: all build test test-arm64 test-migrate vet demo bench fuzz clean

all: build

build: $(BINS)

bin/%: FORCE
	$(GO) build $(GOFLAGS) -trimpath -o $@ ./cmd/$*

# freeze carries the restorer its images carry: cmd/restorer, thaw only,
# stripped, lz4-packed and attached to bin/freeze (image/doc.go). The
# attaching runs on the host whatever GOOS and GOARCH build for.
bin/freeze: FORCE
	$(GO) build $(GOFLAGS) -trimpath -o $@ ./cmd/freeze
	$(GO) build $(GOFLAGS) -trimpath -ldflags='-s -w' -o build/restorer ./cmd/restorer
	GOOS= GOARCH= $(GO) run ./scripts/attach-restorer build/restorer $@

FORCE:

# The whole suite: unit tests and the end-to-end tests on real processes.
test: build vet
	$(GO) test -count=1 -timeout 8m ./...

# The tests on linux/arm64: cross-compiled, run in Debian's arm64 kernel
# under qemu-system-aarch64 (see scripts/arm64/test.sh; .ci/run installs
# what it needs).
test-arm64:
	GO=$(GO) bash scripts/arm64/test.sh

# Processes moved to and from another kernel and CPU: Debian's 6.1
# x86_64 kernel under qemu-system-x86_64 -cpu Haswell-v4 (see
# scripts/migrate/test.sh).
test-migrate:
	GO=$(GO) bash scripts/migrate/test.sh

vet:
	GOARCH=amd64 $(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./...

demo: build
	bash scripts/demo.sh

# Freeze and thaw of a 256 MiB process next to the floor (process_vm_readv
# + write of the same bytes) measured in the same run; a 512 MiB process
# through freeze -o - | thaw - next to a plain freeze of it to a file.
bench: build
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 5x ./e2e/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime $${FUZZTIME:-60s} ./image/

clean:
	rm -rf bin build
