"""The structure the README's "Layout" promises, on the built objects: no
call cycle between the C files, no PostgreSQL header in the core."""
import os

from support import layers

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def test_no_call_cycle_between_modules():
    graph = layers.call_graph(SRC)
    assert len(graph) > 20, "the objects are not built: %r" % sorted(graph)
    assert layers.cycles(graph) == []


def test_core_includes_no_postgresql_header():
    assert layers.core_violations(SRC) == []
