"""Whether a solution labelled Python is Python: upstream labels are not always right
(CodeContests holds C++ solutions labelled Python 3), and such a record would teach the model
that C++ is a Python answer.

Python 3: ``ast.parse``, the language's own parser (the grammar CPython compiles with, so
"parses" means exactly "CPython would accept this source"); it only builds the tree, nothing is
executed. Python 2 has no parser in Python 3's standard library but ``lib2to3``'s (deprecated,
gone in Python 3.13, and ~15x slower than the one used here), so a solution labelled Python 2
is tried with ``ast.parse`` first (most Python 2 solutions are also valid Python 3) and only on
failure with tree-sitter's Python grammar, which includes Python 2's statements (``print x``,
``exec s``, backticks, ``except E, e``). That grammar is more lenient than CPython's in
details (it accepts a body that is not indented); what it is for, telling other languages
labelled Python apart, it refuses.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from typing import Literal

import tree_sitter_python
from tree_sitter import Language, Parser

Dialect = Literal["python2", "python3"]


def parses_as(source: str, dialect: Dialect) -> bool:
    """Whether ``source`` is a syntactically valid ``dialect`` program."""
    try:
        ast.parse(source)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    return dialect == "python2" and _parses_as_python2(source)


@lru_cache(maxsize=1)
def _python2_parser() -> Parser:
    return Parser(Language(tree_sitter_python.language()))


def _parses_as_python2(source: str) -> bool:
    tree = _python2_parser().parse(source.encode("utf-8", "surrogatepass"))
    return not tree.root_node.has_error
