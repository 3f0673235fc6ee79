# The two set-up commands of README.md: `make test-cluster` (the main job) and `make test`.
SWIFT ?= swift
SEEDS ?= 10000
SOAK_FROM ?= 1

.PHONY: build test test-cluster bench soak fixtures clean

build:
	$(SWIFT) build

# Unit tests and seeded simulation (at least 1,000 schedules), then a short summary.
test:
	RAFT_OPTIMIZE_SIMULATION=1 $(SWIFT) build --build-tests
	RAFT_OPTIMIZE_SIMULATION=1 $(SWIFT) test

# Every harness/scenarios/*.scenario against real node processes.
test-cluster: build
	@if [ -x .build/debug/harness ]; then .build/debug/harness run harness/scenarios/*.scenario; \
	else echo "test-cluster: the harness (issue 5) is not built yet; nothing to run" >&2; exit 1; fi

# Seeded simulation schedules beyond the test suite: make soak SEEDS=100000 SOAK_FROM=5000
soak:
	$(SWIFT) run -c release raft-sim --from $(SOAK_FROM) --count $(SEEDS)

# Storage figures, then the node's (a 3-node cluster of the release raft-node, found beside raft-bench).
bench:
	$(SWIFT) build -c release --product raft-node
	$(SWIFT) run -c release raft-bench storage
	$(SWIFT) run -c release raft-bench node

fixtures:
	$(SWIFT) run raft-fixtures fixtures

clean:
	rm -rf .build runs
