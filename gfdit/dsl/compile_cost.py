"""Closures for cost calls (`finish(k)`, `slack(2)`, ...): the hot path of a width rule.

A cost call asks the view to price the candidate at a width: `view.NAME(req, k)`.
The width is a constant (`slack(2)`), a choice variable (`finish(k)` inside
`min k in widths where ...`), or any expression; each form has its own
closure, so the common ones cost one call. A call that raises (a width the
cost model cannot price) raises `RuleError` at the call's `file:line:col`.
"""

from __future__ import annotations

from gfdit.dsl.closure import Code
from gfdit.engine.policy import RuleError

# RoundView method -> (view, req, width) -> value: one table, bound at compile time
METHODS = {
    "step": lambda v, q, k: v.step(q, k), "est": lambda v, q, k: v.est(q, k),
    "finish": lambda v, q, k: v.finish(q, k), "slack": lambda v, q, k: v.slack(q, k),
    "gpu_time": lambda v, q, k: v.gpu_time(q, k),
}


def cost_call(name: str, where: str, *, const: int | None = None, slot: int | None = None,
              arg: Code | None = None, element: int | None = None) -> Code:
    """`view.NAME(req, width)`, the width a constant, the choice variable at `slot`, or `arg(...)`;
    with `element`, of the aggregate's element at that frame slot (`r.est(1)`) instead of the candidate."""
    if element is not None:
        return _of_element(METHODS[name], where, element, const, slot, arg)
    if name == "finish" and slot is not None:  # the commonest form, one call deep
        def finish_at(v, q, e):
            try:
                return v.finish(q, e[slot])
            except RuleError:
                raise
            except Exception as exc:  # noqa: BLE001 -- the call's error, located
                raise RuleError(where, exc) from exc
        return finish_at
    method = METHODS[name]
    if const is not None:
        def at_const(v, q, e):
            try:
                return method(v, q, const)
            except RuleError:
                raise
            except Exception as exc:  # noqa: BLE001 -- the call's error, located
                raise RuleError(where, exc) from exc
        return at_const
    if slot is not None:
        def at_variable(v, q, e):
            try:
                return method(v, q, e[slot])
            except RuleError:
                raise
            except Exception as exc:  # noqa: BLE001 -- the call's error, located
                raise RuleError(where, exc) from exc
        return at_variable
    assert arg is not None

    def at_value(v, q, e):
        try:
            return method(v, q, arg(v, q, e))
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the call's error (or its argument's), located
            raise RuleError(where, exc) from exc
    return at_value



def _of_element(method, where: str, element: int, const: int | None, slot: int | None, arg: Code | None) -> Code:
    """`r.NAME(k)`: the same call, priced for the element at frame slot `element`."""
    if const is not None:
        width = lambda v, q, e: const  # noqa: E731 -- one closure per form
    elif slot is not None:
        width = lambda v, q, e: e[slot]  # noqa: E731
    else:
        width = arg

    def of_element(v, q, e):
        try:
            return method(v, e[element], width(v, q, e))
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the call's error, located
            raise RuleError(where, exc) from exc
    return of_element
