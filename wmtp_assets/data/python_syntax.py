"""Whether a solution labelled Python is Python: upstream labels are not always right
(CodeContests holds C++ solutions labelled Python 3), and such a record would teach the model
that C++ is a Python answer.

Python 3: ``ast.parse``, the language's own parser (the grammar CPython compiles with, so
"parses" means exactly "CPython would accept this source"); it only builds the tree, nothing is
executed. Python 2 has no parser in Python 3's standard library except ``lib2to3``'s Python 2
grammar (deprecated, ~20x slower than ``ast``), so a solution labelled Python 2 is tried with
``ast.parse`` first (most Python 2 solutions are also valid Python 3) and only on failure with
``lib2to3`` (``print x``, ``exec s``, backticks, ``except E, e``).
"""

from __future__ import annotations

import ast
import warnings
from functools import lru_cache
from typing import Literal

with warnings.catch_warnings():  # lib2to3 announces its removal (Python 3.13) on import
    warnings.simplefilter("ignore")
    from lib2to3 import pygram, pytree
    from lib2to3.pgen2 import driver, parse, tokenize

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
def _python2_driver() -> driver.Driver:
    return driver.Driver(pygram.python_grammar, convert=pytree.convert)


def _parses_as_python2(source: str) -> bool:
    text = source if source.endswith("\n") else source + "\n"
    try:
        _python2_driver().parse_string(text)
        return True
    except (parse.ParseError, tokenize.TokenError, SyntaxError, RecursionError):
        return False
