# The two set-up commands of README.md: `make test-cluster` (the main job) and `make test`.
SWIFT ?= swift
SEEDS ?= 10000
SOAK_FROM ?= 1

.PHONY: build test test-cluster read-proof explore explore-proof explore-proof-sim bench soak fixtures clean

# harness explore: how long `make explore` generates scenarios; how many scenarios the fixed
# slice of `make test-cluster` runs (about 10 s each on a 2-core box); the time each fault
# of `make explore-proof` has to be found.
EXPLORE_FOR ?= 15m
EXPLORE_SLICE ?= 12
FAULT_BUDGET ?= 20m
FAULTS ?= stuck-peer-connection ignore-snapshot-after-restart

# One build configuration for the tests and the harness (see Package.swift).
export RAFT_OPTIMIZE_SIMULATION = 1

build:
	$(SWIFT) build

# Unit tests and seeded simulation (at least 1,000 schedules), then a short summary.
test:
	$(SWIFT) build --build-tests
	$(SWIFT) test

# Every harness/scenarios/*.scenario and harness/scenarios/found/*.scenario in the seeded
# simulator first (it is fast), then against real node processes (a file marked
# `# world: process` or `# world: sim` runs in that world only), then a fixed slice of explore
# (seed 1; failures not shrunk here: make explore, or replay the scenario file of the run).
SCENARIOS = harness/scenarios/*.scenario $(wildcard harness/scenarios/found/*.scenario)

test-cluster: build
	@status=0; \
	.build/debug/harness run --sim $(SCENARIOS) || status=1; \
	.build/debug/harness run $(SCENARIOS) || status=1; \
	.build/debug/harness explore --seed 1 --count $(EXPLORE_SLICE) --shrink-budget 0 || status=1; \
	$(MAKE) --no-print-directory read-proof || status=1; \
	exit $$status

# Proof that check 6 bites on processes (part of test-cluster): raft-node built with the
# planted fault stale-reads (every node, follower or deposed leader, answers get from its own
# state) runs reads-across-a-partition with READ_PROOF_RUNS seeds; at least READ_PROOF_MIN
# of them must fail the linearizable check. (Without the fault test-cluster passes it above;
# in the simulator make test proves it for every seed it tries.)
READ_PROOF_RUNS ?= 5
READ_PROOF_MIN ?= 4
read-proof: build
	$(SWIFT) build --scratch-path .build-faults -Xswiftc -DRAFT_FAULTS --product raft-node
	@caught=0; \
	for seed in $$(seq 1 $(READ_PROOF_RUNS)); do \
	  dir=.build-faults/read-proof/$$seed; rm -rf $$dir; mkdir -p $$dir; \
	  RAFT_FAULT=stale-reads .build/debug/harness run --raft-node .build-faults/debug/raft-node --seed $$seed --runs $$dir \
	    harness/scenarios/reads-across-a-partition.scenario > $$dir/run.log 2>&1; \
	  if grep -q '"name":"linearizable","passed":false,"status":"fail"' $$dir/*/report.json; then \
	    caught=$$((caught + 1)); echo "read-proof: seed $$seed: stale reads caught by check 6"; \
	  else \
	    echo "read-proof: seed $$seed: NOT caught (see $$dir/run.log)"; \
	  fi; \
	done; \
	echo "read-proof: stale reads caught in $$caught of $(READ_PROOF_RUNS) runs against processes (at least $(READ_PROOF_MIN) needed)"; \
	[ $$caught -ge $(READ_PROOF_MIN) ]

# Random scenarios against the debug build for EXPLORE_FOR (a random seed; failures shrunk
# to minimal.scenario in their run directories under runs/explore/).
explore: build
	.build/debug/harness explore --for $(EXPLORE_FOR) --runs runs/explore

# Proof that explore bites (outside CI): raft-node built with its fault switches, then for
# each fault explore until the first failure, shrunk; each must be found and its
# minimal.scenario must have at most 12 steps before its liveness phase.
explore-proof: build
	$(SWIFT) build --scratch-path .build-faults -Xswiftc -DRAFT_FAULTS --product raft-node
	@status=0; \
	for fault in $(FAULTS); do \
	  dir=.build-faults/proof/$$fault; rm -rf $$dir; mkdir -p $$dir; \
	  RAFT_FAULT=$$fault .build/debug/harness explore --raft-node .build-faults/debug/raft-node --seed 1 \
	    --for $(FAULT_BUDGET) --stop-after-failures 1 --runs $$dir > $$dir/explore.log 2>&1; \
	  minimal=$$(ls $$dir/*/minimal.scenario 2>/dev/null | head -n 1); \
	  if [ -z "$$minimal" ]; then \
	    echo "explore-proof: $$fault: NOT FOUND within $(FAULT_BUDGET) (see $$dir/explore.log)"; status=1; continue; \
	  fi; \
	  steps=$$(awk '/^# liveness$$/ { exit } !/^[[:space:]]*(#|$$)/ { n++ } END { print n + 0 }' $$minimal); \
	  if [ $$steps -le 12 ]; then \
	    echo "explore-proof: $$fault: found, shrunk to $$steps steps before the liveness phase: $$minimal"; \
	  else \
	    echo "explore-proof: $$fault: found, but its minimal scenario has $$steps steps before the liveness phase (more than 12): $$minimal"; status=1; \
	  fi; \
	done; \
	exit $$status

# The same proof in the simulator (outside CI): harness and raft-node built with the fault
# switches; for each fault, explore --sim until the first failure, shrunk exactly, then its
# minimal scenario run against the faulty processes; prints the time to find it, the steps
# of the minimal scenario and both verdicts.
SIM_COUNT ?= 3000

explore-proof-sim: build
	$(SWIFT) build --scratch-path .build-faults -Xswiftc -DRAFT_FAULTS --product raft-node
	$(SWIFT) build --scratch-path .build-faults -Xswiftc -DRAFT_FAULTS --product harness
	@status=0; \
	for fault in $(FAULTS); do \
	  dir=.build-faults/proof-sim/$$fault; rm -rf $$dir; mkdir -p $$dir; \
	  start=$$(date +%s); \
	  RAFT_FAULT=$$fault .build-faults/debug/harness explore --sim --raft-node .build-faults/debug/raft-node --seed 1 \
	    --count $(SIM_COUNT) --stop-after-failures 1 --shrink-budget 5m --runs $$dir > $$dir/explore.log 2>&1; \
	  took=$$(( $$(date +%s) - start )); \
	  minimal=$$(ls $$dir/*/minimal.scenario 2>/dev/null | head -n 1); \
	  if [ -z "$$minimal" ]; then \
	    echo "explore-proof-sim: $$fault: NOT FOUND in $(SIM_COUNT) scenarios (see $$dir/explore.log)"; status=1; continue; \
	  fi; \
	  steps=$$(awk '/^# liveness$$/ { exit } !/^[[:space:]]*(#|$$)/ { n++ } END { print n + 0 }' $$minimal); \
	  found=$$(grep -m1 " FAIL " $$dir/explore.log | awk '{ print $$1 }'); \
	  echo "explore-proof-sim: $$fault: found at $$found, shrunk to $$steps steps before the liveness phase, $$took s in all: $$minimal"; \
	  grep -m1 "confirm " $$dir/explore.log | sed 's/^ */    /'; \
	done; \
	exit $$status

# Seeded simulation schedules beyond the test suite: make soak SEEDS=100000 SOAK_FROM=5000
# Then a node's memory under a sustained load on a fixed key set: 3 release raft-node,
# SOAK_MINUTES of puts; fails unless each node's RSS over the second half stays within 5 %.
SOAK_MINUTES ?= 10
soak:
	$(SWIFT) run -c release raft-sim --from $(SOAK_FROM) --count $(SEEDS)
	$(SWIFT) run -c release raft-sim --machines --from $(SOAK_FROM) --count $(SEEDS)
	$(SWIFT) build -c release --product raft-node
	$(SWIFT) run -c release raft-bench soak --minutes $(SOAK_MINUTES)

# Storage figures, the checker's, then the node's (a 3-node cluster of the release raft-node,
# found beside raft-bench), then the same cluster beside etcd 3.4 in one run (issue 12: needs
# the `etcd` of Debian's etcd-server on PATH), at etcd's default snapshot-count and at 1000, and a
# new member's catch-up of 256 MiB beside etcd's (loopback, and through a 1 Gbit/s proxy).
bench:
	$(SWIFT) build -c release --product raft-node
	$(SWIFT) run -c release raft-bench storage
	$(SWIFT) run -c release raft-bench checker
	$(SWIFT) run -c release raft-bench node
	$(SWIFT) run -c release raft-bench etcd
	$(SWIFT) run -c release raft-bench etcd --etcd-snapshot-count 1000
	$(SWIFT) run -c release raft-bench catchup

fixtures:
	$(SWIFT) run raft-fixtures fixtures

clean:
	rm -rf .build runs
