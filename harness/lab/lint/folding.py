"""Constant folding over a Jinja syntax tree: which constants each expression can evaluate to.

The static pass asks of every name a template reaches for "can this be ``__class__``?", and of
every piece of text it writes "can this say *ignore previous instructions*?". A template that
spells such things in pieces (``"__cla" ~ "ss__"``, ``"%s%s" % (...)``, ``.format``, ``join``,
``replace``, slices, ``set`` and namespace assignments, loops over constant lists, macros called
with constants) is folded back here. The interpreter follows Jinja's scoping: ``set`` inside a
loop, macro or ``with`` stays there, namespace attributes persist, ``if`` branches are joined.
Loops over constant lists are unrolled; loops over data run their body with the loop variable
unknown, twice, so loop-invariant values fold and accumulations show.

Values are :class:`~harness.lab.lint.values.Values` (sets of possible constants). Work is bounded
(``MAX_STEPS`` evaluations, ``MAX_CHARS`` per string, ``MAX_FOLDED_CHARS`` in all), so a hostile
template costs time linear in its size; :attr:`Folder.exhausted` says when it stopped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import nodes

from harness.lab.lint.values import (
    BINOPS,
    EMPTY_TEXT,
    FILTERS,
    MAX_FOLDED_CHARS,
    MAX_STEPS,
    MAX_UNROLL,
    MAX_VALUES,
    STR_METHODS,
    UNKNOWN,
    Values,
    binop,
    capped,
    const,
    fits,
    jinja_str,
    refuse,
)

MAX_CALL_DEPTH = 4


def _ns_keys(env: Mapping[str, Values]) -> dict[str, Values]:
    return {k: v for k, v in env.items() if "." in k}


class Folder:
    """Runs the constant interpreter over a template; :meth:`values` then answers per node."""

    def __init__(self) -> None:
        self.steps = 0
        self.chars = 0
        self.exhausted = False
        self._seen: dict[int, Values] = {}
        self._macros: dict[str, nodes.Macro] = {}
        self._calls: dict[tuple[Any, ...], Values] = {}
        self._depth = 0

    def run(self, tree: nodes.Template) -> Folder:
        self.body(tree.body, {}, capture=False)
        return self

    def values(self, node: nodes.Node) -> Values | None:
        """The union of what `node` evaluated to (None: folding never reached it)."""
        return self._seen.get(id(node))

    def combine(self, fn: Callable[..., Any], *args: Values) -> Values:
        """`fn` over every combination of the arguments' known values; failures make it unknown.
        Every string made counts against ``MAX_FOLDED_CHARS``."""
        unknown = any(a.unknown for a in args)
        overflow = any(a.overflow for a in args)
        if any(not a.known for a in args):
            return Values(frozenset(), True, overflow)
        if math.prod(len(a.known) for a in args) > MAX_VALUES:
            return Values(frozenset(), True, True)
        out = set()
        for combo in itertools.product(*(a.known for a in args)):
            try:
                value = fn(*combo)
            except Exception:  # noqa: BLE001 - Python's own str/tuple operations on constants
                unknown = True
                continue
            if fits(value):
                out.add(value)
                self.chars += len(value) if isinstance(value, str) else 0
            else:
                unknown = True
        if self.chars > MAX_FOLDED_CHARS:
            self.exhausted = True
        return capped(out, unknown, overflow)

    # --- statements -----------------------------------------------------------------------------

    def body(self, stmts: Iterable[nodes.Node], env: dict[str, Values], capture: bool) -> Values:
        out = EMPTY_TEXT
        for stmt in stmts:
            if self.exhausted:
                return UNKNOWN
            written = self.stmt(stmt, env, capture)
            if capture:
                out = self.combine(lambda a, b: a + b, out, written)
        return out

    def stmt(self, node: nodes.Node, env: dict[str, Values], capture: bool) -> Values:
        if isinstance(node, nodes.Output):
            parts = [self.expr(child, env) for child in node.nodes]
            return self.combine(lambda *xs: "".join(map(jinja_str, xs)), *parts) if capture and parts else EMPTY_TEXT
        if isinstance(node, nodes.Assign):
            self.bind(node.target, self.expr(node.node, env), env, node.node)
        elif isinstance(node, nodes.AssignBlock):
            text = self.body(node.body, env, capture=True)
            self.bind(node.target, self.filtered(node.filter, text, env) if node.filter else text, env, None)
        elif isinstance(node, nodes.If):
            return self.branches(node, env, capture)
        elif isinstance(node, nodes.For):
            return self.loop(node, env, capture)
        elif isinstance(node, nodes.Macro):
            self._macros[node.name] = node
            self.body(node.body, self.arguments(node, [], [], env), capture=False)
        elif isinstance(node, nodes.CallBlock):
            self.expr(node.call, env)
            self.body(node.body, {**env, **{a.name: UNKNOWN for a in node.args}}, capture=False)
        elif isinstance(node, nodes.FilterBlock):
            return self.filtered(node.filter, self.body(node.body, env, capture=True), env)
        elif isinstance(node, nodes.With):
            inner = dict(env)
            for target, value in zip(node.targets, node.values, strict=False):
                self.bind(target, self.expr(value, env), inner, value)
            return self.body(node.body, inner, capture)
        elif isinstance(node, nodes.Scope | nodes.ScopedEvalContextModifier | nodes.Block):
            return self.body(node.body, dict(env), capture)
        elif isinstance(node, nodes.Import | nodes.FromImport):
            self.expr(node.template, env)
            for name in [node.target] if isinstance(node, nodes.Import) else node.names:
                env[name if isinstance(name, str) else name[-1]] = UNKNOWN
        else:
            for child in node.iter_child_nodes():
                if isinstance(child, nodes.Expr):
                    self.expr(child, env)
                else:
                    self.stmt(child, env, capture=False)
            return UNKNOWN if capture else EMPTY_TEXT
        return EMPTY_TEXT

    def branches(self, node: nodes.If, env: dict[str, Values], capture: bool) -> Values:
        arms: list[list[nodes.Node]] = []
        for current in [node, *node.elif_]:
            self.expr(current.test, env)
            arms.append(current.body)
        arms.append(node.else_)
        envs, out = [], Values()
        for arm in arms:
            inner = dict(env)
            out = out | self.body(arm, inner, capture)
            envs.append(inner)
        for key in set().union(*envs):
            arms_values = [inner.get(key) for inner in envs]
            if all(v is arms_values[0] for v in arms_values):  # no arm changed it
                continue
            joined = Values()
            for value in arms_values:
                joined = joined | (value or Values())
            env[key] = joined
        return out

    def loop(self, node: nodes.For, env: dict[str, Values], capture: bool) -> Values:
        items = self.expr(node.iter, env)
        sequences = [v for v in items.known if isinstance(v, tuple | str)]
        before, out = dict(env), EMPTY_TEXT
        if len(items.known) == 1 and sequences and not items.unknown:
            carried = _ns_keys(env)
            for item in sequences[0]:
                if self.exhausted:
                    break
                inner = {**before, **carried, "loop": UNKNOWN}
                self.bind(node.target, const(item), inner, None)
                self.visit_filter(node.test, inner)
                written = self.body(node.body, inner, capture)
                out = self.combine(lambda a, b: a + b, out, written) if capture else out
                carried = _ns_keys(inner)
        else:
            element = Values(unknown=True)
            for seq in sequences:
                element = element | capped(seq, False, False)
            carried, seen = _ns_keys(env), dict(_ns_keys(env))
            for _ in range(2):  # zero, one and two trips: what an accumulation looks like
                inner = {**before, **carried, "loop": UNKNOWN}
                self.bind(node.target, element, inner, None)
                self.visit_filter(node.test, inner)
                self.body(node.body, inner, capture=False)
                carried = _ns_keys(inner)
                for key, value in carried.items():
                    seen[key] = seen.get(key, Values()) | value
            carried, out = seen, UNKNOWN if capture else EMPTY_TEXT
        env.clear()
        env.update({**before, **carried})
        if node.else_:
            self.body(node.else_, dict(env), capture=False)
        return out

    def visit_filter(self, test: nodes.Node | None, env: dict[str, Values]) -> None:
        if test is not None:
            self.expr(test, env)

    def bind(self, target: nodes.Node, value: Values, env: dict[str, Values], source: nodes.Node | None) -> None:
        if isinstance(target, nodes.NSRef):
            env[f"{target.name}.{target.attr}"] = value
        elif isinstance(target, nodes.Name):
            env[target.name] = value
            if isinstance(source, nodes.Call) and isinstance(source.node, nodes.Name) \
                    and source.node.name == "namespace":
                env.update({f"{target.name}.{kw.key}": self.values(kw.value) or UNKNOWN for kw in source.kwargs})
        elif isinstance(target, nodes.Tuple):
            for i, item in enumerate(target.items):
                part = self.combine(lambda v, i=i: v[i] if isinstance(v, tuple) and len(v) == len(target.items) else refuse(),
                               value)
                self.bind(item, part, env, None)

    def arguments(self, macro: nodes.Macro, args: list[Values], kwargs: list[tuple[str, Values]],
                  env: dict[str, Values]) -> dict[str, Values]:
        inner = {**env, "caller": UNKNOWN, "varargs": UNKNOWN, "kwargs": UNKNOWN}
        defaults = dict(zip([a.name for a in macro.args][len(macro.args) - len(macro.defaults):],
                            macro.defaults, strict=False))
        given = dict(kwargs)
        for i, arg in enumerate(macro.args):
            if i < len(args):
                inner[arg.name] = args[i]
            elif arg.name in given:
                inner[arg.name] = given[arg.name]
            elif arg.name in defaults:
                inner[arg.name] = self.expr(defaults[arg.name], env)
            else:
                inner[arg.name] = UNKNOWN
        return inner

    # --- expressions ----------------------------------------------------------------------------

    def expr(self, node: nodes.Node, env: dict[str, Values]) -> Values:
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.exhausted = True
        if self.exhausted:
            return UNKNOWN
        value = self._expr(node, env)
        before = self._seen.get(id(node))
        self._seen[id(node)] = value if before is None else before | value
        return value

    def _expr(self, node: nodes.Node, env: dict[str, Values]) -> Values:
        if isinstance(node, nodes.Const):
            return const(tuple(node.value) if isinstance(node.value, list) else node.value)
        if isinstance(node, nodes.TemplateData):
            return const(node.data)
        if isinstance(node, nodes.Name):
            return env.get(node.name, UNKNOWN)
        if isinstance(node, nodes.Tuple | nodes.List):
            parts = [self.expr(item, env) for item in node.items]
            return self.combine(lambda *xs: tuple(xs), *parts) if parts else const(())
        if isinstance(node, nodes.Concat):
            return self.combine(lambda *xs: "".join(map(jinja_str, xs)), *[self.expr(n, env) for n in node.nodes])
        if isinstance(node, BINOPS):
            op = type(node)
            return self.combine(lambda a, b: binop(op, a, b), self.expr(node.left, env), self.expr(node.right, env))
        if isinstance(node, nodes.CondExpr):
            self.expr(node.test, env)
            other = self.expr(node.expr2, env) if node.expr2 is not None else const("")
            return self.expr(node.expr1, env) | other
        if isinstance(node, nodes.Getitem):
            return self.item(node, env)
        if isinstance(node, nodes.Getattr):
            if isinstance(node.node, nodes.Name) and f"{node.node.name}.{node.attr}" in env:
                self.expr(node.node, env)
                return env[f"{node.node.name}.{node.attr}"]
            self.expr(node.node, env)
            return UNKNOWN
        if isinstance(node, nodes.Call):
            return self.call(node, env)
        if isinstance(node, nodes.Filter):
            base = self.expr(node.node, env) if node.node is not None else UNKNOWN
            return self.filtered(node, base, env)
        if isinstance(node, nodes.Neg | nodes.Pos):
            sign = -1 if isinstance(node, nodes.Neg) else 1
            return self.combine(lambda v: sign * v if isinstance(v, int | float) and not isinstance(v, bool) else refuse(),
                           self.expr(node.node, env))
        if isinstance(node, nodes.MarkSafe | nodes.MarkSafeIfAutoescape):
            return self.expr(node.expr, env)
        for child in node.iter_child_nodes():
            self.expr(child, env)
        return UNKNOWN

    def item(self, node: nodes.Getitem, env: dict[str, Values]) -> Values:
        base = self.expr(node.node, env)
        if isinstance(node.arg, nodes.Slice):
            bounds = [self.expr(b, env) if b is not None else const(None)
                      for b in (node.arg.start, node.arg.stop, node.arg.step)]
            return self.combine(lambda v, a, b, c: v[a:b:c] if isinstance(v, str | tuple) else refuse(), base, *bounds)
        key = self.expr(node.arg, env)
        return self.combine(lambda v, k: v[k] if isinstance(v, str | tuple) and isinstance(k, int) else refuse(), base, key)

    def call(self, node: nodes.Call, env: dict[str, Values]) -> Values:
        args = [self.expr(a, env) for a in node.args]
        kwargs = [(kw.key, self.expr(kw.value, env)) for kw in node.kwargs]
        for extra in (node.dyn_args, node.dyn_kwargs):
            if extra is not None:
                self.expr(extra, env)
        callee = node.node
        if isinstance(callee, nodes.Getattr) and callee.attr in STR_METHODS and not kwargs:
            target = self.expr(callee.node, env)
            method = STR_METHODS[callee.attr]
            return self.combine(lambda s, *a: method(s, *a) if isinstance(s, str) else refuse(), target, *args)
        if isinstance(callee, nodes.Name) and callee.name in self._macros:
            return self.inline(self._macros[callee.name], args, kwargs, env)
        if isinstance(callee, nodes.Name) and callee.name == "range" and not kwargs:
            return self.combine(lambda *a: tuple(range(*a)) if len(range(*a)) <= MAX_UNROLL else refuse(), *args)
        self.expr(callee, env)
        return UNKNOWN

    def inline(self, macro: nodes.Macro, args: list[Values], kwargs: list[tuple[str, Values]],
               env: dict[str, Values]) -> Values:
        """A macro called with some constant argument, run with them (once per distinct call); with
        none, its body was already folded where it was defined."""
        if not any(v.known for v in [*args, *(v for _, v in kwargs)]) or self._depth >= MAX_CALL_DEPTH:
            return UNKNOWN
        key = (macro.name, tuple(args), tuple(kwargs))
        if key not in self._calls:
            self._calls[key] = UNKNOWN  # a recursive call with the same arguments stops here
            self._depth += 1
            try:
                self._calls[key] = self.body(macro.body, self.arguments(macro, args, kwargs, env), capture=True)
            finally:
                self._depth -= 1
        return self._calls[key]

    def filtered(self, node: nodes.Filter, base: Values, env: dict[str, Values]) -> Values:
        args = [self.expr(a, env) for a in node.args]
        kwargs = {kw.key: self.expr(kw.value, env) for kw in node.kwargs}
        for extra in (node.dyn_args, node.dyn_kwargs):
            if extra is not None:
                self.expr(extra, env)
        if node.name == "map" and args and not kwargs:
            names = args[0]
            if len(names.known) == 1 and next(iter(names.known)) in FILTERS and not names.unknown:
                fn = FILTERS[next(iter(names.known))]
                return self.combine(lambda seq, *a: tuple(fn(v, *a) for v in seq), base, *args[1:])
            return UNKNOWN
        fn = FILTERS.get(node.name)
        if fn is None or kwargs and node.name != "join":
            return UNKNOWN
        keys = list(kwargs)
        return self.combine(lambda v, *a: fn(v, *a[:len(args)], **dict(zip(keys, a[len(args):], strict=True))),
                       base, *args, *kwargs.values())
