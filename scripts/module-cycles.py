#!/usr/bin/env python3
"""Prints each crate's module dependency graph (top-level modules, from the `crate::` paths in
code, not in comments) and fails if two modules depend on each other, directly or through
others. Usage: scripts/module-cycles.py CRATE_SRC_DIR..."""
import pathlib
import re
import sys


def modules(src: pathlib.Path) -> dict:
    """Top-level module name -> the files that make it up."""
    found = {}
    for path in src.rglob("*.rs"):
        relative = path.relative_to(src)
        if relative.parts[0] == "bin" or relative.name in ("lib.rs", "main.rs"):
            continue
        name = relative.parts[0].removesuffix(".rs")
        found.setdefault(name, []).append(path)
    return found


def edges(files: list, names: set, me: str) -> set:
    used = set()
    for path in files:
        code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
        for name in re.findall(r"\bcrate::([a-z_]+)", code):
            if name in names and name != me:
                used.add(name)
        # `use crate::{a, b::c}` groups.
        for group in re.findall(r"\bcrate::\{([^}]*)\}", code):
            for name in re.findall(r"(?:^|,)\s*([a-z_]+)", group):
                if name in names and name != me:
                    used.add(name)
    return used


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    failed = False
    for src in map(pathlib.Path, sys.argv[1:]):
        found = modules(src)
        graph = {name: edges(files, set(found), name) for name, files in found.items()}
        print(f"{src}:")
        for name in sorted(graph):
            print(f"  {name} -> {', '.join(sorted(graph[name])) or '(nothing)'}")
        for component in cycles(graph):
            print(f"  CYCLE: {' <-> '.join(component)}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
