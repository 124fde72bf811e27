"""Loading and compiling: configuration fields, params, revisions, explanations, errors."""

import ast
import math
import re
from pathlib import Path

import pytest
from dsl_views import Req, Round

from gfdit.dsl import PolicyError, compile_policy, load_policy, revision_of
from gfdit.engine.policy_check import PolicyError as EnginePolicyError
from gfdit.engine.policy import ClassSpec
from gfdit.policies import resolve_policy
from gfdit.resources import data_dir

ROOT = Path(__file__).resolve().parents[2]
EVERY_FORM = Path(__file__).with_name("cases") / "ok_every_form.gfp"


def test_configuration_fields_follow_the_declarations():
    p = load_policy(EVERY_FORM)
    assert (p.name, p.chunk, p.widths, p.tick, p.on_short) == ("t", 4, (1, 2, 4), 0.25, "shrink")
    assert p.placement == ("sticky", "compact", "lowest")
    assert dict(p.pools) == {"aux": frozenset({0})}
    assert dict(p.stage_pools) == {"encode": "aux", "decode": "aux"}
    assert p.classes["S"] == ClassSpec("S", slo_factor=1.5, priority=100)
    assert p.classes["batch"] == ClassSpec("batch", slo_seconds=600.0, preemptible=True)
    assert p.classes["default"] == ClassSpec("default")


def test_defaults_and_chunk_all():
    p = compile_policy("policy d\norder by req.arrival\nwidth * = 1\n")
    assert (p.chunk, p.widths, p.tick, p.on_short) == (5, (1, 2, 4), None, "skip")
    assert compile_policy("policy d\nparam chunk = all\norder by req.arrival\nwidth * = 1\n").chunk is None


def test_params_override_at_load():
    static = data_dir("policies") / "static_sp.gfp"
    view, req = Round(), Req(stage="encode")
    assert load_policy(static).width(view, req)[0] == 4
    assert load_policy(static, {"sp": "2"}).width(view, req)[0] == 2
    assert load_policy(data_dir("policies") / "fcfs.gfp", {"chunk": "all"}).chunk is None
    with pytest.raises(PolicyError) as error:
        load_policy(static, {"spp": "2"})
    assert error.value.diagnostics[0].code == "E113" and "did you mean 'sp'" in str(error.value)
    assert load_policy(static, {"sp": "3"}).width(view, req)[0] == 2  # rounds down to an allowed width
    assert load_policy(static, {"widths": "1,2"}).width(view, req)[0] == 2  # capped to the widest
    with pytest.raises(PolicyError) as error:
        load_policy(data_dir("policies") / "fcfs.gfp", {"widths": "2,4"})  # `width * = 1`
    assert error.value.diagnostics[0].code == "E302"


def test_revision_is_a_hash_of_text_and_overrides():
    text = (data_dir("policies") / "fcfs.gfp").read_text()
    assert re.fullmatch(r"[0-9a-f]{12}", revision_of(text))
    assert compile_policy(text).revision == revision_of(text)
    assert revision_of(text) != revision_of(text + "\n") != revision_of(text, {"chunk": "2"})


def test_why_names_the_rule_line_and_the_values_it_saw():
    p = load_policy(data_dir("policies") / "edf_best_fit.gfp")
    req = Req(tokens=4096, deadline=20.0)
    width, why = p.width(Round(), req)
    line = next(i for i, l in enumerate(p.source.splitlines(), 1) if l.startswith("width denoise"))
    assert why.rule == f"{data_dir('policies') / 'edf_best_fit.gfp'}:{line}"
    assert why.values["width"] == width and why.values["req.deadline"] == 20.0
    assert why.values["free"] == 4


def test_hold_and_admit_explanations():
    p = compile_policy('policy h\nparam cap = 1\nadmit when count(waiting) < cap else "full"\n'
                       "hold * when req.paused < 3s\norder by req.arrival\nwidth * = 1\n", "h.gfp")
    view = Round(waiting=[Req(id="a")])
    reason, why = p.admit(view, Req(id="b"))
    assert reason == "full" and why.rule == "h.gfp:3" and why.values == {"count(waiting)": 1}
    assert p.hold(view, Req(paused=1.0)).rule == "h.gfp:4"
    assert p.hold(view, Req(paused=5.0)) is None


def test_arithmetic_is_total_and_widths_round_down():
    p = compile_policy("policy z\norder by req.width / 0\nwidth * = req.width + 1\n")
    assert p.order_key(Round(), Req(width=2)) == (math.inf,)
    assert p.order_key(Round(), Req(width=0)) == (0.0,)
    assert p.width(Round(), Req(width=2))[0] == 2  # 3 is not allowed: rounds down to 2
    width, why = p.width(Round(), Req(width=0))
    assert width == 1 and "computed" not in why.values


def test_errors_are_policy_errors_carrying_every_diagnostic(tmp_path):
    with pytest.raises(PolicyError) as error:
        compile_policy("order by req.dedline\nwidth * = 3\n", "bad.gfp")
    assert isinstance(error.value, EnginePolicyError)  # one class: the engine's, carrying diagnostics
    assert [d.code for d in error.value.errors] == ["E101", "E104", "E302"]
    assert "bad.gfp:1:14" in str(error.value) and "^" in str(error.value)
    with pytest.raises(PolicyError) as error:
        load_policy(tmp_path / "missing.gfp")
    assert error.value.diagnostics[0].code == "E005"


def test_resolve_policy_compiles_shipped_names():
    policy = resolve_policy("slo_grow", {"margin": "3s"})
    assert type(policy).__name__ == "CompiledPolicy" and policy.name == "slo_grow"


def test_no_user_text_reaches_eval_or_exec():
    """No call of the builtins eval/exec/compile anywhere in the language package."""
    sources = sorted((ROOT / "gfdit" / "dsl").glob("*.py"))
    assert len(sources) > 10, ROOT
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile", "__import__"), path


def test_param_overrides_accept_command_line_and_python_forms():
    static = data_dir("policies") / "static_sp.gfp"
    assert load_policy(static, {"widths": "1,2", "sp": "2"}).widths == (1, 2)
    assert load_policy(static, {"widths": "2", "sp": "2"}).widths == (2,)
    assert load_policy(static, {"widths": (4, 1), "sp": 4, "chunk": 5}).widths == (1, 4)
    assert load_policy(static, {"chunk": None}).chunk is None
    with pytest.raises(PolicyError) as error:
        load_policy(static, {"sp": "2s"})
    assert error.value.diagnostics[0].code == "E114"


def test_an_undeclared_class_name_gets_a_hint():
    with pytest.raises(PolicyError) as error:
        compile_policy("policy c\nhold * when req.class == L\norder by req.arrival\nwidth * = 1\n")
    assert 'class L' in str(error.value) and '"L"' in str(error.value)
    ok = compile_policy('policy c\nhold * when req.class == "L"\norder by req.arrival\nwidth * = 1\n')
    assert ok.hold(Round(), Req(request_class="L")) is not None
    assert ok.hold(Round(), Req(request_class="S")) is None
