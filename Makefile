# Thin wrappers over `cargo xtask`; nothing else lives here.
# DOCKER_REGISTRY, BUILD_PLATFORMS and DOCKER_TAGS pass through from the environment or the
# command line (make exports both); they are deliberately not `export`ed here, because an
# exported unset variable reaches the tool as an empty one.

STACK := scripts/stack.sh
STACK_ENV = $${SLIPWAY_STACK_DIR:-/tmp/slipway-stack}/env
XTASK := cargo xtask

.PHONY: demo test lint stack-up stack-down stack-status list build push

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

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

list:
	$(XTASK) list

## build / push: every service against the local stack
build: stack-up
	. $(STACK_ENV) && $(XTASK) build --all

push: stack-up
	. $(STACK_ENV) && $(XTASK) build --all --push

## container-build-NAME / container-push-NAME: one service
container-build-%: stack-up
	. $(STACK_ENV) && $(XTASK) build $*

container-push-%: stack-up
	. $(STACK_ENV) && $(XTASK) build --push $*
