.PHONY: build test unit unit-docker fuzz e2e e2e-bench images example

# build installs devloop into $GOPATH/bin (or $GOBIN), with the process
# supervisor it adds to dev images (built first, static, and embedded).
build:
	go generate ./internal/supervisor/embedded
	go install ./cmd/devloop

# test is what CI runs: the unit tests with the harness's Docker engine up
# (so the Docker-backed ones run, and must), every fuzz target for a short
# time, then the e2e suite on both engine legs against a real kind cluster
# (it installs and starts what it needs).
test: unit-docker fuzz e2e

# unit runs the fast tests: no cluster, no Docker needed (Docker tests skip).
unit:
	go vet ./...
	go test -race ./...

# unit-docker is unit with the harness's engine started (e2e/setup.sh) and
# DEVLOOP_REQUIRE_DOCKER=1: a Docker-backed test that cannot reach it fails.
unit-docker:
	bash -c 'set -e; eval "$$(bash e2e/setup.sh)"; export DEVLOOP_REQUIRE_DOCKER=1; $(MAKE) unit'


# fuzz runs every fuzz target (each func FuzzXxx) for FUZZTIME, on one
# worker; longer runs: make fuzz FUZZTIME=10m.
FUZZTIME ?= 10s
fuzz:
	bash .ci/fuzz $(FUZZTIME)

# images builds (or refreshes) every image the e2e tests need, offline and cached; see e2e/images/README.md.
images:
	bash e2e/setup.sh >/dev/null

# e2e runs the e2e suite once per engine leg (Docker 28 with the containerd image store, then with the
# classic store; DEVLOOP_E2E_LEGS picks), each on a freshly started dockerd with the images built or loaded
# (cached), driving the devloop binary against a real kind cluster. A failing leg fails it.
e2e:
	bash e2e/legs.sh

# example runs devloop on the bundled example on this machine (no registry:
# the node and ingress images are built offline first, cached).
example:
	go generate ./internal/supervisor/embedded
	bash -c 'set -e; eval "$$(bash e2e/setup.sh)"; export DEVLOOP_NODE_IMAGE=$$DEVLOOP_E2E_NODE_IMAGE; cd examples/hello && go run ../../cmd/devloop up'

# e2e-bench measures save-to-serving latency on a real cluster (see BENCHMARKS.md).
e2e-bench:
	bash -c 'set -e; eval "$$(bash e2e/setup.sh)"; go test -tags e2e -count=1 -run "^$$" -bench SaveToServing -benchtime 1x -timeout 60m -v ./e2e/'
