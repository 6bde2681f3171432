"""YAML parse errors as `file:line` locations people can jump to."""

from __future__ import annotations


def error_location(exc: Exception, where: str) -> tuple[str, str]:
    """(file:line, problem) for a yaml.YAMLError; points at the construct left open when the
    parser only noticed at the end of the file."""
    problem = str(getattr(exc, "problem", None) or "not valid YAML")
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    if context is not None and (mark is None or "<stream end>" in problem):
        mark = context
        problem = f"{getattr(exc, 'context', None) or 'unclosed construct'}: {problem}"
    return (f"{where}:{mark.line + 1}" if mark is not None else where), problem


def field_lines(node, prefix: str = "") -> dict[str, int]:
    """Field path -> 1-based line, for every key and list item of a composed YAML node.

    Paths read like the schema errors name them: ``models[1].templates[0]``, ``sampling.hot.top_k``.
    """
    import yaml

    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}.{key.value}" if prefix else str(key.value)
            out[path] = key.start_mark.line + 1
            out.update(field_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}[{i}]"
            out[path] = item.start_mark.line + 1
            out.update(field_lines(item, path))
    return out


MAX_EXPANDED = 4_000_000  # nodes plus scalar characters of a document once aliases are expanded
MAX_YAML_CHARS = 4 * 2**20  # a YAML file past this is refused unparsed (big data belongs in JSON)
MAX_DEPTH = 100  # nesting of mappings and lists


def load_yaml(text: str):
    """(data, composed node) of a YAML document, as ``yaml.safe_load`` reads it, refusing what
    only an attack needs: a text over MAX_YAML_CHARS, an alias that refers to itself (a cyclic
    anchor), an alias bomb whose expansion exceeds MAX_EXPANDED, nesting deeper than MAX_DEPTH.
    Each is a ``yaml.YAMLError`` with the line of the culprit, like a syntax error. Tags beyond
    plain data (``!!binary``, ``!!python/...``) are refused the same way."""
    import yaml

    if len(text) > MAX_YAML_CHARS:
        raise yaml.MarkedYAMLError(problem=f"the YAML text is {len(text) / 2**20:.0f} MB, over the limit of "
                                   f"{MAX_YAML_CHARS // 2**20} MB (write data this size as JSON)")
    try:
        node = _compose(text)
        if node is None:
            return None, None
        _check_expansion(node)
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_document(node), node
        finally:
            loader.dispose()
    except RecursionError:
        raise yaml.MarkedYAMLError(problem="nested too deeply to be read") from None


def _compose(text: str):
    """The node tree, by libyaml when PyYAML has it (tens of times faster than pure Python)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            return yaml.compose(text, Loader=loader)
        except UnicodeEncodeError:  # a lone surrogate in the text: only the Python reader takes it
            pass
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            if exc.context_mark is not None and mark is not None and mark.index >= len(text.rstrip()):
                exc.problem_mark = None  # noticed at the end: point at the construct left open
            raise
    return yaml.compose(text, Loader=yaml.SafeLoader)


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map",
                                                   "timestamp", "merge")}


def _check_expansion(root) -> None:
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.MarkedYAMLError(problem="an alias refers to the node that contains it (a cycle)",
                                       problem_mark=node.start_mark)
        if depth > MAX_DEPTH:
            raise yaml.MarkedYAMLError(problem=f"nested more than {MAX_DEPTH} levels deep",
                                       problem_mark=node.start_mark)
        if node.tag not in _PLAIN_TAGS:
            raise yaml.MarkedYAMLError(problem=f"the tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not "
                                       "plain data (text, numbers, lists, mappings)", problem_mark=node.start_mark)
        open_nodes.add(key)
        if isinstance(node, yaml.ScalarNode):
            total = 1 + len(node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item, depth + 1) for item in node.value)
        else:
            total = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        open_nodes.discard(key)
        if total > MAX_EXPANDED:
            raise yaml.MarkedYAMLError(problem=f"expands to more than {MAX_EXPANDED:,} values and "
                                       "characters through aliases (*name)", problem_mark=node.start_mark)
        sizes[key] = total
        return total

    size(root, 0)
