"""No import cycles among freqnoise's modules, read statically (ast), so lazy imports count too;
and no lower package reaching up (`LAYERS`): data and models never import detection, directly or
through another module (detection registers its sources and model into their registries).

Edges, for every module under freqnoise/ (a package's `__init__` is the package's module):
  * `import a.b.c` -> a.b.c;
  * `from a.b import x` (or relative, `from .b import x`) -> a.b, and a.b.x if x is a submodule;
  * `importlib.import_module("a.b")`, `import_module(...)`, `__import__(...)` with a string
    literal, a name bound to one, or a loop variable over a tuple of them -> a.b.
Imports anywhere count: module level, inside functions (a lazy import that hides a cycle is still
one), under `if TYPE_CHECKING`. A target that is not a module counts as its nearest existing
parent module. Parent packages the import system also runs are not edges.

    python tests/test_import_graph.py    # prints the cycles and chains; exit status 1 if any
"""

from __future__ import annotations

import ast
import functools
import pathlib
import sys
from collections import deque

PACKAGE = "freqnoise"
REPO = pathlib.Path(__file__).resolve().parents[1]
IMPORT_FUNCTIONS = {"import_module", "__import__"}
# {lower package: packages above it, which none of its modules may import, even through others}
LAYERS = {"freqnoise.data": ("freqnoise.detection",), "freqnoise.models": ("freqnoise.detection",)}


def module_files(root: pathlib.Path = REPO, package: str = PACKAGE) -> dict[str, pathlib.Path]:
  """{dotted module name: file} for every .py file of `package`; `pkg/__init__.py` is `pkg`."""
  files = {}
  for path in sorted((root / package).rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts.pop()
    files[".".join(parts)] = path
  return files


def _string_bindings(tree: ast.AST) -> dict[str, set[str]]:
  """Names bound to string literals anywhere in the file: `x = "a"`, `xs = ("a", "b")`,
  `for x in ("a", "b")` or `for x in xs`. Scope-blind on purpose: it only widens the edge set."""
  def strings(node) -> set[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
      return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
      return {e.value for e in node.elts}
    return None

  bound: dict[str, set[str]] = {}
  for node in ast.walk(tree):
    if (isinstance(node, ast.Assign) and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name) and (values := strings(node.value)) is not None):
      bound.setdefault(node.targets[0].id, set()).update(values)
  for node in ast.walk(tree):
    if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
      values = strings(node.iter)
      if values is None and isinstance(node.iter, ast.Name):
        values = bound.get(node.iter.id)
      if values:
        bound.setdefault(node.target.id, set()).update(values)
  return bound


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
  """The absolute name of `from <level dots><name> import ...` inside `module`."""
  parts = module.split(".") if is_package else module.split(".")[:-1]
  if level > 1:
    parts = parts[:len(parts) - (level - 1)]
  return ".".join(parts + ([name] if name else []))


def imported_names(path: pathlib.Path, module: str) -> set[str]:
  """Every dotted name `module` imports (module or `module.attribute`), before resolution."""
  tree = ast.parse(path.read_text(), filename=str(path))
  is_package = path.name == "__init__.py"
  bound = _string_bindings(tree)
  names: set[str] = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = (_resolve_relative(module, is_package, node.level, node.module) if node.level
              else node.module)
      names.add(base)
      names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    elif isinstance(node, ast.Call) and node.args:
      func = node.func
      called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
      if called not in IMPORT_FUNCTIONS:
        continue
      arg = node.args[0]
      if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        targets = {arg.value}
      elif isinstance(arg, ast.Name):
        targets = bound.get(arg.id, set())
      else:
        continue  # an f-string or expression: not knowable statically
      for target in targets:
        if target.startswith("."):  # import_module(".x", package=__package__) and the like
          level = len(target) - len(target.lstrip("."))
          target = _resolve_relative(module, is_package, level, target.lstrip(".") or None)
        names.add(target)
  return names


def import_graph(root: pathlib.Path = REPO, package: str = PACKAGE) -> dict[str, set[str]]:
  """{module: modules of `package` it imports}, every module of `package` a key."""
  files = module_files(root, package)
  graph = {}
  for module, path in files.items():
    edges = set()
    for name in imported_names(path, module):
      if name != package and not name.startswith(package + "."):
        continue
      while name not in files:  # `from pkg.mod import function` -> pkg.mod
        name = name.rpartition(".")[0]
      if name != module:
        edges.add(name)
    graph[module] = edges
  return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
  """Tarjan's strongly connected components, each sorted; iterative (no recursion limit)."""
  index, low, on_stack, stack, components = {}, {}, set(), [], []
  counter = 0
  for start in sorted(graph):
    if start in index:
      continue
    work = [(start, iter(sorted(graph.get(start, ()))))]
    index[start] = low[start] = counter
    counter += 1
    stack.append(start)
    on_stack.add(start)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = counter
          counter += 1
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph.get(child, ())))))
        elif child in on_stack:
          low[node] = min(low[node], index[child])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        component = []
        while True:
          member = stack.pop()
          on_stack.discard(member)
          component.append(member)
          if member == node:
            break
        components.append(sorted(component))
  return components


def _shortest_cycle_through(graph: dict[str, set[str]], start: str, within: set[str]):
  """The shortest path start -> ... -> start inside `within` (breadth-first), or None."""
  parent = {start: None}
  queue = deque([start])
  while queue:
    node = queue.popleft()
    for child in sorted(graph.get(node, ())):
      if child not in within:
        continue
      if child == start:
        path = [node]
        while parent[path[-1]] is not None:
          path.append(parent[path[-1]])
        return path[::-1]
      if child not in parent:
        parent[child] = node
        queue.append(child)
  return None


def find_cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
  """Import cycles: for every module on a cycle, the shortest cycle through it, each written from
  its smallest module name, without repeats; sorted. [] for an acyclic graph."""
  cycles = set()
  for component in strongly_connected(graph):
    members = set(component)
    if len(component) == 1 and component[0] not in graph.get(component[0], ()):
      continue
    for node in component:
      cycle = _shortest_cycle_through(graph, node, members)
      if cycle:
        i = cycle.index(min(cycle))
        cycles.add(tuple(cycle[i:] + cycle[:i]))
  return sorted(cycles, key=lambda c: (len(c), c))


def describe(cycles: list[tuple[str, ...]]) -> str:
  return "\n".join(" -> ".join(c + (c[0],)) for c in cycles)


def _inside(module: str, package: str) -> bool:
  return module == package or module.startswith(package + ".")


def upward_imports(graph: dict[str, set[str]], layers: dict[str, tuple[str, ...]] = LAYERS
                   ) -> list[tuple[str, ...]]:
  """Import chains from a module of a lower package to a module of a package above it (`layers`):
  for every module of a lower package that reaches one, the shortest chain (breadth-first); sorted.
  [] when every layer keeps to itself."""
  chains = set()
  for lower, uppers in layers.items():
    for start in sorted(m for m in graph if _inside(m, lower)):
      parent, queue = {start: None}, deque([start])
      while queue:
        node = queue.popleft()
        if any(_inside(node, upper) for upper in uppers):
          chain = [node]
          while parent[chain[-1]] is not None:
            chain.append(parent[chain[-1]])
          chains.add(tuple(chain[::-1]))
          break
        for child in sorted(graph.get(node, ())):
          if child not in parent:
            parent[child] = node
            queue.append(child)
  return sorted(chains)


# ------------------------------------------------------------------------------------- tests
def test_cycle_finder_on_a_hand_made_graph():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f", "d"}, "f": {"e"},
           "g": {"g"}, "h": {"a"}}
  assert find_cycles(graph) == [("g",), ("e", "f"), ("a", "b", "c")]
  assert describe([("e", "f")]) == "e -> f -> e"
  assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []


def test_cycle_finder_reports_each_short_cycle_of_a_tangle():
  # two cycles sharing b: a <-> b and b <-> c, one strongly connected component
  graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}
  assert strongly_connected(graph) == [["a", "b", "c"]]
  assert find_cycles(graph) == [("a", "b"), ("b", "c")]


def test_edges_from_every_kind_of_import(tmp_path):
  pkg = tmp_path / "pkg"
  (pkg / "sub").mkdir(parents=True)
  sources = {
      "__init__.py": "",
      "a.py": "import pkg.b\nfrom pkg.sub import c, helper\n",
      "b.py": "def f():\n  from . import a  # lazy\n",
      "sub/__init__.py": "from .c import helper\n",
      "sub/c.py": ("import importlib\nfor m in ('pkg.d',):\n  importlib.import_module(m)\n"
                   "def g():\n  return importlib.import_module('..b', package=__package__)\n"),
      "d.py": "from pkg.sub.c import g\nimport os\n",
  }
  for name, text in sources.items():
    (pkg / name).write_text(text)
  assert import_graph(tmp_path, "pkg") == {
      "pkg": set(), "pkg.a": {"pkg.b", "pkg.sub", "pkg.sub.c"}, "pkg.b": {"pkg", "pkg.a"},
      "pkg.sub": {"pkg.sub.c"}, "pkg.sub.c": {"pkg.d", "pkg.b"}, "pkg.d": {"pkg.sub.c"}}
  # the shortest cycle through each module: a <-> b (lazy), c <-> d (import_module in a loop), and
  # through the package pkg.sub: a -> sub -> c -> b (relative import_module) -> a
  assert find_cycles(import_graph(tmp_path, "pkg")) == [
      ("pkg.a", "pkg.b"), ("pkg.d", "pkg.sub.c"), ("pkg.a", "pkg.sub", "pkg.sub.c", "pkg.b")]


@functools.lru_cache(maxsize=1)
def freqnoise_graph() -> dict[str, set[str]]:
  """freqnoise's import graph, read once per process (the tests below share it; do not mutate)."""
  return import_graph()


def test_freqnoise_has_no_import_cycles():
  cycles = find_cycles(freqnoise_graph())
  assert not cycles, "import cycles among freqnoise modules:\n" + describe(cycles)


def test_upward_import_finder_on_a_hand_made_graph():
  graph = {"p.low": {"p.low.b"}, "p.low.b": {"p.mid"}, "p.mid": {"p.high.x"}, "p.high.x": set(),
           "p.lower": {"p.high"}, "p.high": set(), "p.low.c": set()}
  layers = {"p.low": ("p.high",)}
  # p.low and p.low.b reach p.high.x through p.mid; "p.lower" is not inside "p.low"
  assert upward_imports(graph, layers) == [("p.low", "p.low.b", "p.mid", "p.high.x"),
                                           ("p.low.b", "p.mid", "p.high.x")]
  assert upward_imports(graph, {"p.high": ("p.low",)}) == []


def test_data_and_models_never_import_detection():
  chains = upward_imports(freqnoise_graph())
  assert not chains, "lower packages importing higher ones:\n" + "\n".join(
      " -> ".join(c) for c in chains)


if __name__ == "__main__":
  found, chains = find_cycles(freqnoise_graph()), upward_imports(freqnoise_graph())
  print(describe(found) if found else "no import cycles")
  print("\n".join(" -> ".join(c) for c in chains) if chains else "no upward imports")
  sys.exit(1 if found or chains else 0)
