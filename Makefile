# voxnav: the two commands a new machine needs are `make run` and `make test` (see README).
# Every target installs what is missing first and is quick when all is in place.

CARGO ?= cargo
BIN := target/release/voxnav

.PHONY: run test deps test-deps build models lint portable fuzz bench cluster

## Set up and run the main job: the SIP server answering the demo hotline by voice, with the
## demo order service, on SIP_LISTEN (default 127.0.0.1:5060). Ctrl-C stops it.
SIP_LISTEN ?= 127.0.0.1:5060
## The admin token of the demo server: made once, random, readable only by you.
ADMIN_TOKEN_FILE := records/admin-token
run: models
	@echo "voxnav: call sip:hotline@$(SIP_LISTEN) with a softphone (e.g. baresip: /dial sip:hotline@$(SIP_LISTEN)),"
	@echo "voxnav: or with the scripted test caller from another terminal:"
	@echo "voxnav:   $(BIN) call sip:hotline@$(SIP_LISTEN) --script sip-test/calls/order-status.yaml"
	@echo "voxnav: try order numbers 472198, 123456, 555123; 'voxnav simulate dialplans/hotline.yaml --demo-orders' talks in text."
	@mkdir -p records && chmod 700 records
	@[ -s $(ADMIN_TOKEN_FILE) ] || (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > $(ADMIN_TOKEN_FILE))
	@echo "voxnav: dashboard at http://127.0.0.1:8081/dashboard#token=$$(cat $(ADMIN_TOKEN_FILE)) (token in $(ADMIN_TOKEN_FILE)),"
	@echo "voxnav: metrics at http://127.0.0.1:8081/metrics, API description at /api/openapi.json"
	@echo "voxnav: the Mandarin demo answers sip:zh@$(SIP_LISTEN) on the same server."
	VOXNAV_ADMIN_TOKEN=$$(cat $(ADMIN_TOKEN_FILE)) $(BIN) serve --sip-listen $(SIP_LISTEN) --dialplan dialplans/hotline.yaml --hotline zh=dialplans/hotline-zh.yaml --demo-orders --admin-listen 127.0.0.1:8081

## The multi-node demo on one machine: three nodes behind Kamailio on 127.0.0.1:5060.
cluster: models
	scripts/install-deps.sh --cluster
	deploy/cluster.sh

## Set up and run every check CI runs: format, lint, portable build, all tests, fuzzing.
test: test-deps models lint portable
	scripts/fuzz.sh 20
	$(CARGO) test --release

deps:
	scripts/install-deps.sh

test-deps:
	scripts/install-deps.sh --test

build: deps
	$(CARGO) build --release

## Fuzz the SIP, SDP and RTP parsers (seconds per target; crashes land in fuzz/artifacts/).
fuzz: deps
	scripts/fuzz.sh 60

## Fetch, verify and convert the speech models (idempotent; seconds when done).
models: build
	$(BIN) models install

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

portable: build
	scripts/check-portable.sh $(BIN)

## Benchmarks: ASR latency/RTF/WER per model and decoding, TTS first audio and RTF, SIP
## parse/serialise throughput, record writes (SQLite, PostgreSQL), SRTP and TLS cost;
## sip-test/load.sh RATE CALLS HOLD_MS for call-rate load.
bench: models
	$(CARGO) bench --bench asr
	$(CARGO) bench --bench tts
	$(CARGO) bench --bench sip
	$(CARGO) bench --bench deploy
