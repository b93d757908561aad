# Thin wrappers over `cargo xtask`; nothing else lives here. Bare `make` prints this help.
#
# The container-* targets work against your own Docker and registries: they never start or
# source the local stack. DOCKER_REGISTRY, BUILD_PLATFORMS and DOCKER_TAGS pass through from
# the environment or the command line (`make BUILD_PLATFORMS=linux/amd64,linux/arm64
# container-build`); they are deliberately not `export`ed here, because an exported unset
# variable reaches the tool as an empty one. Only demo, test and stack-* use the local stack.

# No built-in rules: `container-build-` must not become a C compile of `container-build-.o`.
MAKEFLAGS += -r
.SUFFIXES:

STACK := scripts/stack.sh
STACK_ENV = $${SLIPWAY_STACK_DIR:-/tmp/slipway-stack}/env
XTASK := cargo xtask

.DEFAULT_GOAL := help
.PHONY: help demo test lint stack-up stack-down stack-status list plan changed \
	container-build container-push container-scan check promote status

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /'

## container-build: build every service into your local Docker
container-build:
	$(XTASK) build --all

## container-build-NAME: build one service (e.g. make container-build-api)
container-build-%:
	$(XTASK) build -- '$*'

container-build- container-push-:
	@echo "name a service: make $@NAME (make list shows them)" >&2; exit 2

## container-push: build and push every service to the configured registries
container-push:
	$(XTASK) push --all

## container-push-NAME: build and push one service
container-push-%:
	$(XTASK) push -- '$*'

## container-scan: build every service locally and run the scan gate (never pushes)
container-scan:
	$(XTASK) scan --all

## check: the pre-build checks (VERSION, Cargo.lock, git pins, base image pins, source scan)
check:
	$(XTASK) check

## status: what the registries hold for this commit, per service
status:
	$(XTASK) status

## promote: SERVICE=api FROM=staging TO=prod, by digest (signed, scan passed)
promote:
	@test -n "$(SERVICE)" -a -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make promote SERVICE=api FROM=staging TO=prod" >&2; exit 2; }
	$(XTASK) promote $(SERVICE) --from '$(FROM)' --to '$(TO)'

## plan: what a build would do, and why
plan:
	$(XTASK) plan

## changed: which services the current change selects
changed:
	$(XTASK) changed

## list: the services and their images
list:
	$(XTASK) list

## demo: start the local stack, build every example and push it to the local registry
demo: stack-up
	. $(STACK_ENV) && $(XTASK) build --all --push

## test: start the local stack and run every test (unit, tidy, end-to-end)
test: stack-up
	. $(STACK_ENV) && cargo test --workspace

## lint: formatting and clippy, as CI checks them
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## stack-up / stack-down / stack-status: the local Docker, registry and ECR API (loopback)
stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status
