#!/usr/bin/env python3
"""The folders of lib/ and swtpm-bridge/ form layers: a folder may include
another only if that one never includes it back, directly or through others.
Reads every #include "folder/..." line and fails, naming the cycle, when the
folder graph has one. Also fails when a file includes a folder that does not
exist (a stale path after a move)."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/', re.M)
# Folders that are includes of their own, not layers: the public headers.
EXTERNAL = {"vtpm"}

edges = {}
missing = []
for top in ("lib", "swtpm-bridge"):
    base = root / top
    for path in sorted(base.rglob("*")):
        if path.suffix not in (".cpp", ".hpp", ".h") or path.parent == base:
            continue
        folder = f"{top}/{path.relative_to(base).parts[0]}"
        for dep in INCLUDE.findall(path.read_text()):
            if dep in EXTERNAL:
                continue
            target = f"lib/{dep}" if (root / "lib" / dep).is_dir() else f"swtpm-bridge/{dep}"
            if not (root / target).is_dir():
                missing.append(f"{path.relative_to(root)}: includes {dep}/, which is no folder")
                continue
            if target != folder:
                edges.setdefault(folder, set()).add(target)

# Tarjan's strongly connected components: any component of more than one
# folder is a cycle.
index, low, on_stack, stack, comps = {}, {}, set(), [], []
counter = [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            comp.append(w)
            if w == v:
                break
        comps.append(sorted(comp))


for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
    if v not in index:
        visit(v)

cycles = [c for c in comps if len(c) > 1]
checks = 0
for m in missing:
    print(f"not ok - {m}")
for c in cycles:
    print("not ok - folders include each other: " + " <-> ".join(c))
    for a in c:
        for b in sorted(edges.get(a, ())):
            if b in c:
                print(f"#   {a} -> {b}")
nodes = sorted(set(edges) | {w for ws in edges.values() for w in ws})
print(f"# {len(nodes)} folders, {sum(len(v) for v in edges.values())} include edges")
if missing or cycles:
    sys.exit(1)
print(f"ok 1 - no folder includes a folder that includes it back ({len(nodes)} folders)")
print("1 passed, 0 failed")
