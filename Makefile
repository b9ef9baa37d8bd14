# The two commands of the README:
#   make run    installs what is missing, builds the release build, starts slipd with its defaults
#   make test   installs what is missing, builds release and ASan+UBSan (clang), runs every test,
#               the fuzzers for FUZZ_SECONDS each, and the ThreadSanitizer tests
# Everything else here is a convenience for developers.

FUZZ_SECONDS ?= 10
ARGS ?=

.PHONY: all deps build tools run test test-release test-asan test-tsan fuzz bench bench-micro clean

all: build

deps:
	@scripts/install-deps.sh

# Everything, the benchmark programs included (`make test` leaves those out).
build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target all benches

# Just the two programs: what `make run` needs.
tools: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target slipd slip

run: tools
	./build/release/tools/slipd/slipd $(ARGS)

test: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/test-all.sh

test-release: deps
	cmake --preset release && cmake --build --preset release && ctest --preset release

test-asan: deps
	cmake --preset asan && cmake --build --preset asan && ctest --preset asan

test-tsan: deps
	cmake --preset tsan && cmake --build --preset tsan && ctest --preset tsan -L tsan

fuzz: deps
	cmake --preset asan && cmake --build --preset asan && scripts/run-fuzzers.sh build/asan $(FUZZ_SECONDS)

bench-micro: build
	./build/release/bench/frame_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

clean:
	rm -rf build

# slipd against nats-server (Slipstream's client against libnats), medians of 3 runs; ARGS go to
# broker_bench (e.g. ARGS="--runs 5 --workloads tp16,rr16").
.PHONY: bench-broker
bench-broker: build
	@scripts/install-deps.sh --bench
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target broker_bench slipd
	scripts/bench-broker.sh build/release $(ARGS)

# End-to-end session benchmarks against sockperf and plain sockets (docs/benchmarks.md,
# "Sessions over TCP"). RUNS=5 repetitions by default.
.PHONY: bench-sessions
bench-sessions: build
	@scripts/install-deps.sh --bench
	@scripts/bench-sessions.sh

# Sessions over encrypted UDP against sessions over TCP: 64 B msgs/s, 1400 B Gbit/s, 64 B round
# trips (docs/benchmarks.md, "Sessions over UDP and TCP"). RUNS=5 by default; ARGS go to
# session_bench udp (e.g. ARGS="--small-count 500000").
.PHONY: bench-udp
bench-udp: build
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target session_bench
	scripts/bench-udp.sh $(ARGS)

# The NATS gateway against nats-server: the same libnats program drives both (medians of 3 runs;
# docs/benchmarks.md, "NATS gateway vs nats-server"). ARGS go to broker_bench.
.PHONY: bench-nats
bench-nats: build
	@scripts/install-deps.sh --bench
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target broker_bench slipd
	scripts/bench-nats.sh build/release $(ARGS)

# Slipstream RPC against gRPC C++ (Debian's libgrpc++-dev), one echo .proto for both: unary latency
# and throughput, server-streaming (docs/benchmarks.md, "RPC vs gRPC C++"). ARGS go to rpc_bench
# (e.g. ARGS="--runs 5 --workloads lat64,tp64 --slip-idle spin block").
.PHONY: bench-rpc
bench-rpc: deps
	@scripts/install-deps.sh --bench
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target rpc_bench
	scripts/bench-rpc.sh build/release $(ARGS)

# slipd's persistent streams against nats-server -js (acknowledged publishes one at a time and
# with a window, reading the stream back), both fsync modes, medians of 3 runs (docs/benchmarks.md,
# "Streams vs nats-server JetStream"). ARGS go to stream_bench (e.g. ARGS="--count 200000 --fsync interval").
.PHONY: bench-streams
bench-streams: deps
	@scripts/install-deps.sh --bench
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target stream_bench slipd
	scripts/bench-streams.sh build/release $(ARGS)

# Delivery latency at 10% random loss and 5 ms each way: udp:// with FEC, without, and TCP through
# a netfilter queue (docs/benchmarks.md, "Delivery latency over a lossy path"; the TCP row needs
# root and libnetfilter-queue-dev). ARGS go to
# udp_fec_latency_bench (e.g. ARGS="--messages 20000 --delay-ms 10").
.PHONY: bench-udp-fec
bench-udp-fec: build
	@scripts/install-deps.sh --bench
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target udp_fec_latency_bench slip-impair slip-nfq-impair
	scripts/bench-udp-fec.sh build/release $(ARGS)
