.PHONY: fmt clippy test check run bench

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

test:
	scripts/test

check:
	.ci/run

run:
	cargo run --release -- serve

bench:
	bench/run.sh
