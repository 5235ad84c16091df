"""Every agent's documented defaults are its code's: each hyperparameter's ``Args`` entry in the
class docstring (or a base class's) starts with its default value."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re

import pytest

from agents import AGENTS, agent_class, unavailable


def documented(cls: type) -> dict[str, str]:
    """``name -> entry text`` of the ``Args:`` sections of ``cls`` and its bases (the class's
    own entry wins)."""
    entries: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) if "__doc__" in vars(klass) else None
        if not doc or "Args:" not in doc:
            continue
        section = doc.split("Args:", 1)[1]
        for match in re.finditer(r"^    (\w+): (.*?)(?=^    \w+: |\Z)", section, re.M | re.S):
            entries[match.group(1)] = " ".join(match.group(2).split())
    return entries


def leading_value(text: str) -> object:
    """The value an entry starts with: a literal, optionally in double backticks."""
    token = re.match(r"``([^`]+)``|([^\s,:;(]+)", text)
    assert token, text
    literal = (token.group(1) or token.group(2)).rstrip(".")
    try:
        return ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return literal


@pytest.mark.parametrize("name", list(AGENTS))
def test_every_hyperparameter_is_documented_with_its_default(name):
    if unavailable(name):
        pytest.skip(unavailable(name))
    cls = agent_class(name)
    entries = documented(cls)
    for field in dataclasses.fields(cls):
        if field.name == "seed" or not field.repr:
            continue
        assert field.name in entries, f"{name}: {field.name} is not documented"
        default = (
            field.default if field.default is not dataclasses.MISSING else field.default_factory()
        )
        stated = leading_value(entries[field.name])
        assert stated == default, (
            f"{name}.{field.name}: the docstring says {stated!r}, the code {default!r}"
        )


def test_a_budget_an_agent_cannot_honour_is_an_error_not_a_fallback(planted):
    from agents import make_agent
    from agents.runner import Budget, run_search
    from nasenv.env import RecNASEnv

    with pytest.raises(ValueError, match="evaluation budget"):
        run_search(make_agent("qlearning"), RecNASEnv(evaluator=planted), Budget(None, 100.0))
