"""Answers that are not the student's: which of a submission's checks the grader reports as "flagged".

A student can pass a check without writing the exercise: by importing the course's own version of it (or a
library's), or by changing what the grader relies on. ``course_utils.checks.REFERENCES`` lists, per check, the
names that hand out its answer; a student copy of a chapter uses none of them (a test checks it). So a
submission is flagged:

- for a check, when its code names one of that check's answers in any form: ``from m import x as y``,
  ``import m as c; c.x``, ``getattr(c, "x")``, ``importlib.import_module``/``__import__`` with a string, code
  in a string that ``exec``/``eval``/``compile`` or a ``%magic`` runs (``code_flags``, read statically from the
  notebook's cells and the .py files of the student's folder);
- for a check, when the function it checks is, wraps (``__wrapped__``, ``functools.partial``, a bound
  method), subclasses, or, for code the student wrote, refers to such a name (``RUNTIME_CHECK``, run by the
  grader in the kernel, which catches names built from pieces of strings);
- for every check, when the code assigns to or deletes attributes or items of ``course_utils`` or ``IPython``
  (also through aliases, ``sys.modules``, ``vars``, ``setattr``), or registers IPython hooks and transformers:
  that is how a notebook could rewrite a check or the grader's report.

A flag is a reason to read the notebook, not a verdict: the notes say where. It is not a proof either way: code
that builds the name of an answer at run time inside a function it calls only then escapes both analyses.
"""

from __future__ import annotations

import ast

_WATCHED = ("course_utils", "IPython")  # packages whose state a notebook must not change
_MUTATORS = {"register", "append", "insert", "extend", "update", "setdefault", "add", "clear", "pop", "remove",
             "set_hook", "register_magic_function", "register_magics", "push", "__setitem__"}
_RUNS_STRINGS = {"exec", "eval", "compile", "run_line_magic", "run_cell_magic", "run_cell"}


def code_flags(sources: list[tuple[str, str]], checks) -> dict[str, list[str]]:
    """Why each of ``checks`` (objects with ``.check``, ``.function`` and ``.answers``) is flagged, from the code
    ``sources`` ([(where, Python or IPython source)]); checks without a reason are absent.

    Sources that are not valid Python are skipped: they cannot run either.

    >>> from types import SimpleNamespace as C
    >>> code_flags([("cell 3", "from course_utils.checks import lloyd_reference as my_lloyd")],
    ...            [C(check="check_lloyd", function="my_lloyd", answers=("lloyd_reference",))])
    {'check_lloyd': ['cell 3 uses lloyd_reference, the answer to my_lloyd']}
    """
    flags: dict[str, list[str]] = {}
    for where, source in sources:
        tree = _parse(source)
        if tree is None:
            continue
        names, tampering = _scan(tree)
        for check in checks:
            used = sorted(names & set(check.answers))
            if used:
                flags.setdefault(check.check, []).append(f"{where} uses {', '.join(used)}, the answer to "
                                                         f"{check.function}")
            flags.setdefault(check.check, []).extend(f"{where} {what}" for what in tampering)
    return {check: reasons for check, reasons in flags.items() if reasons}


def _parse(source: str):
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        source = TransformerManager().transform_cell(source)  # %magic and !shell as the kernel runs them
    except Exception:
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _aliases(tree) -> set[str]:
    """The names bound to course_utils or IPython, their modules and members, or ``get_ipython()``."""
    aliases = {"get_ipython"}
    for _ in range(5):  # to a fixpoint: ``c = course_utils.checks`` makes c one too
        before = len(aliases)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] in _WATCHED}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _WATCHED:
                aliases |= {a.asname or a.name for a in node.names}
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value and _watched(node.value, aliases):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                aliases |= {t.id for t in targets if isinstance(t, ast.Name)}
        if len(aliases) == before:
            return aliases
    return aliases


def _scan(tree, depth: int = 0) -> tuple[set[str], list[str]]:
    """(every identifier that ``tree`` names, what it does to course_utils or IPython)."""
    names, tampering, aliases = set(), [], _aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names |= set((node.module or "").split(".")) | {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {part for a in node.names for part in a.name.split(".")}
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 200:
            names |= {part for part in node.value.split(".") if part.isidentifier()}  # getattr(m, "x"), "a.b.x"
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                for t in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
                    if isinstance(t, (ast.Attribute, ast.Subscript)) and _watched(t.value, aliases):
                        verb = "deletes" if isinstance(node, ast.Delete) else "assigns to"
                        tampering.append(f"line {node.lineno} {verb} {ast.unparse(t)[:80]}")
        elif isinstance(node, ast.Call):
            called = _called(node)
            if called in ("setattr", "delattr") and node.args and _watched(node.args[0], aliases):
                tampering.append(f"line {node.lineno} calls {called} on {ast.unparse(node.args[0])[:60]}")
            elif isinstance(node.func, ast.Attribute) and called in _MUTATORS and _watched(node.func.value, aliases):
                tampering.append(f"line {node.lineno} calls {ast.unparse(node.func)[:80]}")
            if called in _RUNS_STRINGS and depth < 3:  # the code in the string is read as well
                for arg in node.args:
                    inner = _parse(arg.value) if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
                    if inner is not None:
                        more, worse = _scan(inner, depth + 1)
                        names |= more
                        tampering += [f"line {node.lineno}: {w}" for w in worse]
    return names, tampering


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _watched(node, aliases: set[str]) -> bool:
    """Whether the expression ``node`` is (an attribute or item of) course_utils, IPython or get_ipython()."""
    while True:
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                    and str(node.slice.value).split(".")[0] in _WATCHED):  # sys.modules["course_utils.checks"]
                return True
            node = node.value
        elif isinstance(node, ast.Call):
            called = _called(node)
            if called == "get_ipython":
                return True
            if called in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                return str(node.args[0].value).split(".")[0] in _WATCHED
            if called not in ("getattr", "vars") or not node.args:
                return False  # what another call returns is a new object, not the package's state
            node = node.args[0]
        else:
            return isinstance(node, ast.Name) and node.id in aliases


# Defined in the kernel by the grader's cell, and called on each checked function with its check's answers.
RUNTIME_CHECK = '''\
def _course_reaches(obj, names, depth=0, seen=None):
    """The name among ``names`` that ``obj`` is, wraps, subclasses or (for code written here) uses, or None."""
    import os, sys
    seen = set() if seen is None else seen
    if depth > 4 or id(obj) in seen:
        return None
    seen.add(id(obj))
    try:
        name, module = getattr(obj, "__name__", None), getattr(obj, "__module__", None)
        if name in names and module != "__main__":
            return f"{module}.{name}"
        inner = [getattr(obj, a, None) for a in ("__wrapped__", "func", "__func__")]
        if isinstance(obj, type):
            inner += list(obj.__mro__[1:])
        # The student's own code (the notebook, or a module of their folder) is searched; a library's is not.
        mine = module == "__main__" or os.path.realpath(
            getattr(sys.modules.get(module), "__file__", None) or "/").startswith(os.getcwd() + os.sep)
        if mine and isinstance(obj, type):
            inner += list(vars(obj).values())
        code = getattr(obj, "__code__", None)
        if mine and code is not None:
            codes, used = [code], set()
            while codes:
                c = codes.pop()
                used |= set(c.co_names)
                codes += [k for k in c.co_consts if hasattr(k, "co_names")]
            if used & names:
                return f"{sorted(used & names)[0]} (in {getattr(obj, '__qualname__', name)})"
            inner += [obj.__globals__.get(n) for n in used]
            inner += [c.cell_contents for c in (getattr(obj, "__closure__", None) or ())]
        for other in inner:
            if other is not None and callable(other):
                found = _course_reaches(other, names, depth + 1, seen)
                if found:
                    return found
    except Exception:
        pass
    return None
'''
