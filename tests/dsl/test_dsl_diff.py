"""`gfdit policy diff A B --workload W`: metrics side by side, the first requests decided differently,
with the rules that decided them."""

from gfdit.cli import main
from gfdit.cli.diff import first_differences
from gfdit.engine import Request, Workload

A = "policy a\norder by req.arrival\nwidth * = 1\n"
B = "policy b\norder by req.arrival\nwidth encode, decode = 1\nwidth denoise = if req.class == \"L\" then 2 else 1\n"


def trace(tmp_path):
    """Requests far apart (each alone on the cluster), every third of class L."""
    reqs = [Request(f"r{i}", 200.0 * i, 512, 512, 20, request_class="L" if i % 3 == 0 else "S")
            for i in range(7)]
    path = tmp_path / "w.json"
    Workload(reqs).save(path)
    return path


def test_the_requests_decided_differently_and_the_rules(tmp_path, capsys):
    (tmp_path / "a.gfp").write_text(A)
    (tmp_path / "b.gfp").write_text(B)
    code = main(["policy", "diff", str(tmp_path / "a.gfp"), str(tmp_path / "b.gfp"),
                 "--workload", str(trace(tmp_path)), "--gpus", "2", "--first", "10"])
    out = capsys.readouterr().out
    assert code == 0
    assert "3 of 7 requests decided differently" in out  # r0, r3, r6: the L ones
    assert "r0: first difference at t=" in out and "width 1 vs 2" in out
    assert "a.gfp:3: width * = 1" in out and "b.gfp:4: width denoise = if req.class" in out
    assert "r1:" not in out
    assert out.splitlines()[1].split()[:2] == ["SLO", "attainment"]


def test_the_same_policy_differs_nowhere(tmp_path, capsys):
    (tmp_path / "a.gfp").write_text(A)
    code = main(["policy", "diff", str(tmp_path / "a.gfp"), str(tmp_path / "a.gfp"),
                 "--workload", str(trace(tmp_path)), "--gpus", "2"])
    assert code == 0 and "0 of 7 requests decided differently" in capsys.readouterr().out


def test_first_differences_orders_by_time_and_counts_a_missing_dispatch():
    def d(rid, t, width, steps=(0, 5)):
        return {"event": "dispatch", "request": rid, "t": t, "stage": "denoise", "steps": list(steps),
                "width": width, "ranks": list(range(width))}
    a = [d("x", 1.0, 1), d("y", 0.5, 1), d("y", 2.0, 1, (5, 10))]
    b = [d("x", 1.0, 1), d("y", 0.5, 1)]
    assert [(rid, t) for rid, t, _, _ in first_differences(a, b)] == [("y", 2.0)]
    b.append(d("x", 0.2, 2, (5, 10)))
    assert [rid for rid, *_ in first_differences(a, b)] == ["x", "y"]


def test_a_policy_that_does_not_compile(tmp_path, capsys):
    (tmp_path / "bad.gfp").write_text("policy bad\norder by req.dedline\nwidth * = 1\n")
    code = main(["policy", "diff", str(tmp_path / "bad.gfp"), "fcfs", "--workload", str(trace(tmp_path))])
    assert code == 1 and "dedline" in capsys.readouterr().err


def test_shipped_names_work_as_in_simulate(capsys):
    """A shipped trace named with .json and a shipped cost model named `synthetic`, as simulate takes them."""
    code = main(["policy", "diff", "edf_best_fit", "fcfs", "--workload", "short-8gpu-synthetic.json",
                 "--gpus", "8", "--cost-model", "synthetic"])
    assert code == 0, capsys.readouterr().err
