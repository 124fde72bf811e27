"""Every shipped policy, simulated through the engine on a small hand-built scenario,
does what its header comment (and the table in docs/policy-language.md) says."""


import pytest

from gfdit.dsl import load_policy
from gfdit.engine import CostModel, DecisionLog, Request, simulate
from gfdit.engine.workload import shipped_cost_model
from gfdit.resources import data_dir

POLICIES = data_dir("policies")
COST = CostModel.load(shipped_cost_model("qwen-h20"))
SIZES = {"S": 512, "M": 1024, "L": 1536}  # 1024 / 4096 / 9216 latent tokens


def req(rid: str, at: float, size: str = "M", **kw) -> Request:
    side = SIZES[size]
    kw.setdefault("request_class", size)
    return Request(rid, at, side, side, 50, **kw)


def run(name: str, requests: list[Request], gpus: int = 4, **params: str):
    log = DecisionLog()
    result = simulate(load_policy(POLICIES / f"{name}.gfp", params).for_cluster(gpus), requests, COST, gpus,
                      decision_log=log, time_rounds=False)
    assert not result.hook_errors, result.hook_errors
    assert all(o.state == "completed" for o in result.outcomes), result.outcomes
    return log.records, result


def dispatches(records, rid=None, stage=None):
    return [r for r in records if r["event"] == "dispatch" and (rid is None or r["request"] == rid)
            and (stage is None or r["stage"] == stage)]


def line_of(name: str, text: str) -> int:
    lines = (POLICIES / f"{name}.gfp").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_every_shipped_policy_is_short_and_documented():
    names = {p.stem for p in POLICIES.glob("*.gfp")}
    assert names >= {"static_sp", "fcfs", "sjf", "srtf", "edf_greedy", "edf_best_fit", "slo_grow",
                     "preempt_demote", "preempt_pause", "disaggregate", "load_adaptive"}
    for path in POLICIES.glob("*.gfp"):
        lines = path.read_text().splitlines()
        assert len(lines) <= 40, path
        assert lines[0].startswith(f"# {path.stem} "), path
        assert any("Use it" in line for line in lines if line.startswith("#")), path


@pytest.mark.parametrize("sp", ["4", "1"])
def test_static_sp_never_changes_width_or_ranks(sp):
    requests = [req(f"r{i}", i * 2.0, size) for i, size in enumerate("SMLSM")]
    records, _ = run("static_sp", requests, **{"sp": sp})
    for r in requests:
        (only,) = dispatches(records, r.id)  # the whole trajectory is one task
        assert only["width"] == int(sp)
    starts = [dispatches(records, r.id)[0]["t"] for r in requests]
    assert starts == sorted(starts)  # strict FIFO


def test_fcfs_runs_in_arrival_order_at_width_one():
    requests = [req(f"r{i}", i * 0.01, "L") for i in range(6)]
    records, _ = run("fcfs", requests, gpus=2)
    assert {d["width"] for d in dispatches(records)} == {1}
    firsts = [dispatches(records, r.id)[0]["t"] for r in requests]
    assert firsts == sorted(firsts)


def test_sjf_runs_the_smallest_job_first():
    blocker, big, small = req("blocker", 0.0, "S"), req("big", 0.1, "L"), req("small", 0.2, "S")
    records, _ = run("sjf", [blocker, big, small], gpus=1)
    assert dispatches(records, "small")[0]["t"] < dispatches(records, "big")[0]["t"]


def test_srtf_lets_short_remaining_work_overtake():
    long_job, short_job = req("long", 0.0, "L"), req("short", 1.0, "S")
    records, result = run("srtf", [long_job, short_job], gpus=1)
    finish = {o.id: o.finish for o in result.outcomes}
    assert finish["short"] < finish["long"]
    records_fcfs, result_fcfs = run("fcfs", [long_job, short_job], gpus=1)
    assert {o.id: o.finish for o in result_fcfs.outcomes}["short"] > finish["short"]


def test_edf_greedy_takes_the_fastest_width_and_shrinks_to_fit():
    records, _ = run("edf_greedy", [req("a", 0.0, "L")], gpus=4)
    assert {d["width"] for d in dispatches(records, "a", "denoise")} == {4}
    records, _ = run("edf_greedy", [req("a", 0.0, "L")], gpus=3)
    first = dispatches(records, "a", "denoise")[0]
    assert first["wanted"] == 4 and first["width"] == 2


def test_edf_best_fit_picks_the_smallest_width_that_meets_the_deadline():
    small = req("small", 0.0, "S")  # class S: deadline 1.5 x t_single, met at width 1
    medium = req("medium", 0.0, "M", deadline=22.0)  # ~30 s at width 1, ~18 s at width 2
    large = req("large", 0.0, "L", deadline=30.0)  # ~78 s / ~44 s / ~23 s at widths 1 / 2 / 4
    records, _ = run("edf_best_fit", [small, medium, large], gpus=8)
    width_rule = f"edf_best_fit.gfp:{line_of('edf_best_fit', 'width denoise')}"
    wanted = {rid: dispatches(records, rid, "denoise")[0] for rid in ("small", "medium", "large")}
    assert [wanted[r]["wanted"] for r in ("small", "medium", "large")] == [1, 2, 4]
    assert all(d["rule"].endswith(width_rule) for d in wanted.values())
    assert "req.deadline" in wanted["medium"]["values"]


def test_slo_grow_grows_only_requests_at_risk():
    at_risk, relaxed = req("risky", 0.0, "M", deadline=15.0), req("relaxed", 0.0, "S")
    records, _ = run("slo_grow", [at_risk, relaxed], gpus=4)
    risky = dispatches(records, "risky", "denoise")
    assert all(d["wanted"] == 1 for d in risky)
    assert max(d["width"] for d in risky) > 1 and risky[0]["grown"]
    assert {d["width"] for d in dispatches(records, "relaxed")} == {1}


def test_preempt_demote_shrinks_batch_while_interactive_waits():
    batch = req("batch", 0.0, "L", deadline=30.0, preemptible=True, request_class="L")
    interactive = [req(f"i{n}", 5.0 + n * 0.5, "M") for n in range(3)]
    records, _ = run("preempt_demote", [batch, *interactive], gpus=4)
    demote_rule = f"preempt_demote.gfp:{line_of('preempt_demote', 'req.preemptible and')}"
    before = [d for d in dispatches(records, "batch", "denoise") if d["t"] < 5.0]
    assert before and all(d["width"] == 4 for d in before)
    demoted = [d for d in dispatches(records, "batch", "denoise") if d["rule"].endswith(demote_rule)]
    assert demoted and all(d["width"] == 1 for d in demoted)


def test_preempt_pause_holds_batch_but_only_up_to_the_aging_bound():
    batch = req("batch", 0.0, "M", preemptible=True, request_class="L")
    stream = [req(f"i{n}", 1.0 + n * 2.0, "S") for n in range(40)]  # interactive work keeps waiting
    records, result = run("preempt_pause", [batch, *stream], gpus=1, max_pause="6s")
    holds = [r for r in records if r["event"] == "hold" and r["request"] == "batch"]
    assert holds, "batch is held while interactive work waits"
    assert all(h["rule"].endswith(f"preempt_pause.gfp:{line_of('preempt_pause', 'hold *')}")
               for h in holds)
    resumed = [d for d in dispatches(records, "batch") if d["t"] > holds[0]["t"]]
    last_interactive = max(o.finish for o in result.outcomes if o.id != "batch")
    assert resumed and resumed[0]["t"] < last_interactive  # aging: it does not starve
    assert holds[-1]["t"] - holds[0]["t"] <= 6.0 + 5.0  # bound plus at most one interactive task


def test_disaggregate_keeps_encode_decode_on_the_aux_pool():
    requests = [req(f"r{i}", i * 0.5, size) for i, size in enumerate("SMLSMS")]
    records, _ = run("disaggregate", requests, gpus=4)
    assert {d["stage"] for d in dispatches(records)} >= {"encode", "denoise", "decode"}
    for d in dispatches(records):
        allowed = {0} if d["stage"] in ("encode", "decode") else {1, 2, 3}
        assert set(d["ranks"]) <= allowed, d


def test_load_adaptive_is_wide_when_quiet_and_narrow_when_busy():
    records, _ = run("load_adaptive", [req("alone", 0.0, "M")], gpus=4)
    assert dispatches(records, "alone", "denoise")[0]["width"] == 4
    crowd = [req(f"c{i}", 0.0, "M") for i in range(10)]
    records, _ = run("load_adaptive", crowd, gpus=4)
    first_round = [d for d in dispatches(records, stage="denoise") if d["t"] < 1.0]
    assert first_round and all(d["wanted"] == 1 for d in first_round)


def test_every_builtin_name_reads_the_engines_real_view(tmp_path):
    """A policy reading every request field, cluster name and cost function runs without hook errors."""
    path = tmp_path / "all_names.gfp"
    path.write_text(
        "policy all_names\n"
        "let t = req.arrival + req.deadline + req.age + req.waited + req.paused + req.t_single\n"
        "let n = req.priority + req.tokens + req.steps + req.steps_done + req.steps_left + req.width\n"
        'let b = req.preemptible or req.id == "x" or req.class == "S" or req.stage == denoise\n'
        "let c = now + step(1) + est(1) + finish(1) + slack(1) + gpu_time(1)\n"
        "let d = gpus + free + busy + count(waiting) + count(running) + sum(waiting, r.tokens)\n"
        "hold * when (t + c) * (n + d + (if b then 1 else 0)) < 0s\n"
        "order by req.arrival\nwidth * = 1\n")
    log = DecisionLog()
    result = simulate(load_policy(path), [req("a", 0.0, "S"), req("b", 0.5, "M", deadline=9.0)], COST, 2,
                      decision_log=log, time_rounds=False)
    assert not result.hook_errors and all(o.state == "completed" for o in result.outcomes)
