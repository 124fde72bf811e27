"""Generate workload traces from a profile: piecewise-Poisson phases of request classes.

A profile (gfdit/data/profiles/NAME.json) names request classes (shape, steps,
SLO factor alpha, priority) and phases (time span, relative arrival weight,
class mix). Arrivals in each phase are Poisson with rate `base * weight`;
each arrival's class is drawn from the phase's mix. `base` is chosen so the
offered load is the requested L:

    offered load = sum over arrivals of t_single / (gpus * active seconds)

where active seconds are the phases with a non-zero weight, and the expected
sum uses each phase's mean t_single under its mix. t_single comes from the
cost model (the whole trajectory on one rank); each request's deadline is
`arrival + alpha * t_single`. The output is the GF-DiT trace format, with
the same metadata fields as the public trace (plus `cost_model`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from gfdit.shapes import latent_tokens

from .costmodel import CostModel, Shape
from .request import RequestError
from gfdit.resources import data_dir, shipped_names

PROFILE_DIR = data_dir("profiles")


def known_profiles() -> list[str]:
    return shipped_names("profiles", ".json")


def load_profile(name: str) -> dict[str, Any]:
    """A shipped profile by name, or a profile JSON file by path."""
    path = Path(name) if name.endswith(".json") else PROFILE_DIR / f"{name}.json"
    if not path.is_file():
        raise RequestError(f"unknown workload profile {name!r}; known: {', '.join(known_profiles())}")
    try:
        profile = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RequestError(f"cannot read profile {name!r}: {exc}") from exc
    problems = _profile_problems(profile)
    if problems:
        raise RequestError(f"profile {name!r}: " + "; ".join(problems))
    return profile


CLASS_KEYS = ("height", "width", "num_steps", "alpha")
PHASE_KEYS = ("start_s", "end_s", "weight", "mix")


def _profile_problems(profile: Any) -> list[str]:
    """Every problem of a profile, checked before it is used (so none surfaces as a KeyError)."""
    if not isinstance(profile, dict):
        return ["not a JSON object"]
    problems = [f"has no {key!r}" for key in ("classes", "phases") if not profile.get(key)]
    if problems:
        return problems
    classes, phases = profile["classes"], profile["phases"]
    if not isinstance(classes, dict) or not isinstance(phases, list):
        return ["'classes' must be an object and 'phases' a list"]
    for cname, cls in classes.items():
        missing = [k for k in CLASS_KEYS if not isinstance(cls, dict) or not _number(cls.get(k))]
        if missing:
            problems.append(f"class {cname!r} needs numbers {missing}")
    for i, phase in enumerate(phases):
        label = phase.get("name", i) if isinstance(phase, dict) else i
        missing = [k for k in PHASE_KEYS if not isinstance(phase, dict) or k not in phase]
        if missing:
            problems.append(f"phase {label!r} lacks {missing}")
            continue
        mix = phase["mix"]
        if not isinstance(mix, dict) or not all(_number(v) and v >= 0 for v in mix.values()):
            problems.append(f"phase {label!r}: 'mix' must map classes to shares >= 0")
            continue
        if not all(_number(phase[k]) for k in ("start_s", "end_s", "weight")):
            problems.append(f"phase {label!r}: start_s, end_s and weight must be numbers")
            continue
        unknown = set(mix) - set(classes)
        if unknown:
            problems.append(f"phase {label!r} mixes unknown classes {sorted(unknown)}")
        if phase["weight"] > 0 and phase["end_s"] > phase["start_s"] and not sum(mix.values()) > 0:
            problems.append(f"phase {label!r} has arrivals (weight > 0) but no class share > 0")
    return problems


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def generate(profile: dict[str, Any], cost_model: CostModel, gpus: int, load: float, seed: int,
             duration_scale: float = 1.0) -> dict[str, Any]:
    """A trace (as JSON data) for `profile` at offered `load` on `gpus` ranks."""
    if gpus < 1 or load <= 0 or duration_scale <= 0:
        raise RequestError(f"need gpus >= 1, load > 0, duration_scale > 0 (got {gpus}, {load}, {duration_scale})")
    text_len = int(profile.get("text_seq_len", 512))
    t_single = {name: _t_single(c, text_len, cost_model) for name, c in profile["classes"].items()}
    phases = [dict(p, start_s=p["start_s"] * duration_scale, end_s=p["end_s"] * duration_scale)
              for p in profile["phases"]]
    active_s = sum(p["end_s"] - p["start_s"] for p in phases if p["weight"] > 0)
    work = sum(p["weight"] * (p["end_s"] - p["start_s"]) * _mean(p["mix"], t_single) for p in phases)
    if work <= 0:
        raise RequestError(f"profile {profile.get('name')!r} offers no work")
    base = load * gpus * active_s / work  # arrivals per second at weight 1
    rng = random.Random(seed)
    records, counts = [], {name: 0 for name in profile["classes"]}
    for phase in phases:
        rate = base * phase["weight"]
        t = phase["start_s"]
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= phase["end_s"]:
                break
            name = _draw(rng, phase["mix"])
            records.append(_record(name, counts[name], t, profile["classes"][name], text_len, t_single[name]))
            counts[name] += 1
    for phase in phases:
        phase["arrival_rate_per_min"] = base * phase.pop("weight") * 60.0
    return {"description": _description(profile, gpus, load, duration_scale),
            "metadata": _metadata(profile, gpus, load, seed, phases, counts, records, cost_model),
            "requests": records}


def _t_single(cls: dict[str, Any], text_len: int, cost_model: CostModel) -> float:
    h, w, f = int(cls["height"]), int(cls["width"]), int(cls.get("num_frames", 1))
    shape = Shape(latent_tokens(h, w, f), text_len, int(cls["num_steps"]), h * w * f)
    return cost_model.t_single(shape)


def _mean(mix: dict[str, float], t_single: dict[str, float]) -> float:
    total = sum(mix.values())
    return sum(share * t_single[name] for name, share in mix.items()) / total if total > 0 else 0.0


def _draw(rng: random.Random, mix: dict[str, float]) -> str:
    names = sorted(mix)
    return rng.choices(names, weights=[mix[n] for n in names])[0]


def _record(name: str, index: int, arrival_s: float, cls: dict[str, Any], text_len: int,
            t_single_s: float) -> dict[str, Any]:
    h, w, f = int(cls["height"]), int(cls["width"]), int(cls.get("num_frames", 1))
    arrival_ms = round(arrival_s * 1000.0, 3)
    deadline_ms = round(arrival_ms + float(cls["alpha"]) * t_single_s * 1000.0, 3)
    return {"arrival_ms": arrival_ms, "client_deadline_ms": deadline_ms, "deadline_ms": deadline_ms,
            "denoise_chunk_size": 1, "do_true_cfg": False, "height": h,
            "latent_seq_len": latent_tokens(h, w, f), "num_frames": f, "num_steps": int(cls["num_steps"]),
            "preemptible": bool(cls.get("preemptible", False)), "priority": int(cls.get("priority", 0)),
            "profiled_optimal_latency_ms": round(t_single_s * 1000.0, 3), "request_class": name,
            "request_id": f"{name}_{index:06d}", "text_seq_len": text_len, "width": w}


def _description(profile: dict[str, Any], gpus: int, load: float, scale: float) -> str:
    return (f"{profile.get('description', 'Generated workload')} (profile={profile.get('name')}, "
            f"num_gpus={gpus}, target_load={load}, duration_scale={scale}).")


def _metadata(profile, gpus, load, seed, phases, counts, records, cost_model) -> dict[str, Any]:
    classes = profile["classes"]
    arrivals = [r["arrival_ms"] for r in records]
    realized = None
    if len(arrivals) > 1 and arrivals[-1] > arrivals[0]:
        work_s = sum(r["profiled_optimal_latency_ms"] for r in records) / 1000.0
        realized = round(work_s / (gpus * (arrivals[-1] - arrivals[0]) / 1000.0), 4)
    return {
        "adapter": profile.get("adapter", ""), "model": profile.get("model", ""),
        "alphas": {n: float(c["alpha"]) for n, c in sorted(classes.items())},
        "class_counts": dict(sorted(counts.items())),
        "class_shapes": {n: {"height": c["height"], "width": c["width"], "num_frames": c.get("num_frames", 1),
                             "num_steps": c["num_steps"]} for n, c in sorted(classes.items())},
        "cost_model": Path(cost_model.source).name or cost_model.model, "deadline_constant_ms": 0.0, "do_true_cfg": False,
        "duration_s": max(p["end_s"] for p in phases), "num_gpus": gpus,
        "offered_load_expected": load, "offered_load_realized": realized,
        "phases": phases, "profile": profile.get("name"), "seed": seed, "target_load": load,
    }
