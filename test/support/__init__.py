"""What the tests stand on, none of it a test: the harness (test certificates,
throwaway clusters, the mock registry's process), the mock registry, the shared
Env and helpers, the deps script, the Valgrind run and `make run`'s demo."""
