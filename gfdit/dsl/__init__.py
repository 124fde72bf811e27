"""The `.gfp` policy language: grammar, checks with located diagnostics, compiler, probe.

Public API:
    load_policy(path, params=None) -> CompiledPolicy     (raises PolicyError)
    compile_policy(text, filename="<text>", params=None) -> CompiledPolicy
    check(text, filename="<text>", params=None) -> Checked (diagnostics, never raises)
    probe.probe(policy, cost_model, gpus) -> [Diagnostic] (rules that would fail on a cost model)
Hot reload is the server's (gfdit/server/reload.py, swap.py; docs/policy-language.md).
"""

from gfdit.dsl.check import Checked, check
from gfdit.dsl.diagnostics import Diagnostic, PolicyError
from gfdit.dsl.load import compile_policy, load_policy, revision_of
from gfdit.dsl.policy import CompiledPolicy

__all__ = ["Checked", "CompiledPolicy", "Diagnostic", "PolicyError", "check", "compile_policy",
           "load_policy", "revision_of"]
