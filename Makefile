# Thin wrapper: ./dev is the single entry point (it also works where make is not installed).
.PHONY: demo test lint bench
demo: ; ./dev demo
test: ; ./dev test
lint: ; ./dev lint
bench: ; ./dev bench all --json
