"""The cost model: how long each trajectory stage takes at each width.

A cost model is a directory of JSON files, one per parallel layout, in the
format of the GF-DiT research artifact (see docs/engine.md):

    {"model", "parallelism": {"tp", "sp", "ulysses", "ring", "cfg"}, "options",
     "stages": {STAGE: {"x_name", "coeffs": {"a", "b", "c"}, "r2", "samples"}}}

Each stage takes ``max(0, a*x**2 + b*x + c)`` milliseconds of its variable x.
The width of a layout is ``tp * sp * cfg`` (sp = ``ulysses * ring`` when
the file gives no ``sp``). JSON files with neither ``parallelism`` nor
``stages`` are not layouts and are skipped. Trajectory tasks are
priced from the stages like this:

    encode  = text_encode(text_seq_len)
    prepare = dit_prepare(latent_seq_len) + timestep_prepare(num_steps)
              the DiT's own set-up (latents, timesteps): it runs with the
              request's first denoise step, at that task's width and on its
              ranks (under disaggregation: the denoise pool, not encode's)
    step    = dit_step_chunk(latent_seq_len)   one denoise step; a CFG request
              uses `dit_step_chunk_cfg`, a no-CFG one `dit_step_chunk_nocfg`,
              each falling back to plain `dit_step_chunk` when absent: x1.0
              for a CFG request, x0.5 for a no-CFG one (the artifact's rule:
              plain `dit_step_chunk` is timed with CFG's two passes)
    decode  = vae_decode(height*width*frames) + finalize(1)

The artifact's rules for incomplete files: a stage without ``x_name`` uses its
variable from the table above (`gfdit.costmodel_file.STAGE_X`); an encode or
decode stage missing at a width costs what it costs at width 1.

Every public estimate is in SECONDS (the engine clock's unit); the files are in
milliseconds. A width or stage the model lacks is a `CostModelError` naming
what is missing, never a silent zero.

Migration (moving a request's state to ranks that do not hold it) costs
``fixed_s + bytes / bandwidth`` per transfer round; see `Migration`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from gfdit.costmodel_file import MIGRATION_FILE, STAGE_X, STEP
from gfdit.engine.crossnode import CROSS_NODE_FILE, CrossNode
from gfdit.shapes import Shape

ENCODE_STAGES = ("text_encode",)
PREPARE_STAGES = ("dit_prepare", "timestep_prepare")  # with the first denoise step (the DiT stage)
DECODE_STAGES = ("vae_decode", "finalize")
AUX_STAGES = ENCODE_STAGES + PREPARE_STAGES + DECODE_STAGES  # missing at a width: the width-1 curve
STEP_VARIANTS = {  # (stage, factor) in order of preference
    True: ((f"{STEP}_cfg", 1.0), (STEP, 1.0)),
    False: ((f"{STEP}_nocfg", 1.0), (STEP, 0.5)),  # plain dit_step_chunk is timed with CFG: half
}


class CostModelError(ValueError):
    """A cost model file is malformed, or lacks a width or stage asked for."""


class HasShape(Protocol):
    @property
    def shape(self) -> Shape: ...


@dataclass(frozen=True, slots=True)
class Curve:
    """One stage: max(0, a*x^2 + b*x + c) milliseconds of its variable."""

    x_name: str
    a: float
    b: float
    c: float

    def ms(self, x: float) -> float:
        return max(0.0, (self.a * x + self.b) * x + self.c)

    def scaled(self, factor: float) -> "Curve":
        """This curve times `factor` (> 0)."""
        return Curve(self.x_name, self.a * factor, self.b * factor, self.c * factor)


@dataclass(frozen=True, slots=True)
class Migration:
    """Time to move a request's state to ranks that lack it.

    The state is the latent, the prompt embeddings and a little scheduler/RNG
    state: ``bytes = fixed_bytes + bytes_per_token * tokens
    + bytes_per_text_token * text_tokens``. A move from group A to group B sends
    the state to every rank of B not in A; A's members send in parallel, so it
    takes ``ceil(|B - A| / |A|)`` transfer rounds of ``fixed_s + bytes /
    bandwidth_Bps`` each. Defaults: fp32 latents of 64 values per token,
    bf16 text embeddings of width 3584 (Qwen-Image), 25 GB/s, 1 ms.
    """

    bandwidth_Bps: float = 25e9
    fixed_s: float = 0.001
    bytes_per_token: int = 256
    bytes_per_text_token: int = 7168
    fixed_bytes: int = 4096

    def state_bytes(self, shape: Shape) -> int:
        return (self.fixed_bytes + self.bytes_per_token * shape.tokens
                + self.bytes_per_text_token * shape.text_tokens)

    def seconds(self, nbytes: int, senders: int, receivers: int) -> float:
        """Time for `receivers` new ranks to get `nbytes` from `senders` holders."""
        if receivers <= 0:
            return 0.0
        if senders <= 0:
            raise CostModelError("migration needs at least one rank holding the state")
        rounds = math.ceil(receivers / senders)
        return rounds * (self.fixed_s + nbytes / self.bandwidth_Bps)


class CostModel:
    """Stage curves per width, and the estimates the engine and policies ask for."""

    def __init__(self, layouts: dict[int, dict[str, Curve]], model: str = "",
                 migration: Migration | None = None, source: str = "", cross_node: CrossNode | None = None):
        if not layouts:
            raise CostModelError(f"cost model {source or model!r} has no layouts")
        self.layouts = dict(sorted(layouts.items()))
        self.widths: tuple[int, ...] = tuple(self.layouts)
        self.model = model
        self.migration = migration or Migration()
        self.cross_node = cross_node or CrossNode()  # a group or a move across hosts (engine/crossnode.py)
        self.cross_migration = replace(self.migration, bandwidth_Bps=self.cross_node.bandwidth_Bps,
                                       fixed_s=self.cross_node.fixed_s)
        self.source = source
        self._cache: dict[tuple[Shape, int], tuple[float, float, float]] = {}
        self._prepare: dict[tuple[Shape, int], float] = {}

    # ---- loading -------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path, migration: Migration | None = None) -> "CostModel":
        """Read every layout file of a cost-model directory.

        `migration.json` (optional, the fields of `Migration`) configures the
        migration cost; an explicit `migration` argument wins over it.
        `cross_node.json` (optional, the fields of `CrossNode`): what crossing hosts costs.
        """
        path = Path(directory)
        if not path.is_dir():
            raise CostModelError(f"cost model directory not found: {path}")
        layouts: dict[int, dict[str, Curve]] = {}
        models: set[str] = set()
        for file in sorted(path.glob("*.json")):
            if file.name in (MIGRATION_FILE, CROSS_NODE_FILE):
                continue
            layout = _read_layout(file)
            if layout is None:
                continue
            width, curves, model = layout
            if width in layouts:
                raise CostModelError(f"{file}: a second layout of width {width} in {path}")
            layouts[width] = curves
            models.add(model)
        if migration is None and (path / MIGRATION_FILE).exists():
            migration = _read_migration(path / MIGRATION_FILE)
        cross_node = None
        if (path / CROSS_NODE_FILE).exists():
            try:
                cross_node = CrossNode.read(path / CROSS_NODE_FILE)
            except ValueError as exc:
                raise CostModelError(str(exc)) from None
        return cls(layouts, model=", ".join(sorted(models)), migration=migration, source=str(path),
                   cross_node=cross_node)

    # ---- raw stages ----------------------------------------------------
    def curve(self, stage: str, width: int) -> Curve:
        layout = self.layouts.get(width)
        if layout is None:
            raise CostModelError(
                f"cost model {self.source!r} has no layout of width {width}; widths: {list(self.widths)}")
        curve = layout.get(stage)
        if curve is None and stage in AUX_STAGES:
            curve = self.layouts.get(1, {}).get(stage)
        if curve is None:
            raise CostModelError(
                f"cost model {self.source!r} width {width} has no stage {stage!r}; stages: {sorted(layout)}")
        return curve

    def step_curve(self, width: int, cfg: bool) -> Curve:
        """One denoise step's curve at `width` (see STEP_VARIANTS: the plain curve is halved for no CFG)."""
        layout = self.layouts.get(width, {})
        for name, factor in STEP_VARIANTS[cfg]:
            curve = layout.get(name)
            if curve is not None:
                return curve if factor == 1.0 else curve.scaled(factor)
        return self.curve(STEP, width)  # raises the clear error

    def stage_s(self, stage: str, x: float, width: int) -> float:
        """One stage at one width, in seconds."""
        return self.curve(stage, width).ms(x) / 1000.0

    # ---- trajectory parts ----------------------------------------------
    def parts(self, shape: Shape, width: int) -> tuple[float, float, float]:
        """(encode, one denoise step, decode) seconds of `shape` at `width`; cached."""
        key = (shape, width)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        xs = {"text_seq_len": shape.text_tokens, "latent_seq_len": shape.tokens,
              "num_steps": shape.steps, "voxels": shape.voxels, "ones": 1}
        encode = sum(self._stage_at(s, xs, width) for s in ENCODE_STAGES)
        step = self.step_curve(width, shape.cfg).ms(shape.tokens) / 1000.0
        decode = sum(self._stage_at(s, xs, width) for s in DECODE_STAGES)
        prepare = sum(self._stage_at(s, xs, width) for s in PREPARE_STAGES)
        self._prepare[key] = prepare  # both or neither: a failing stage caches nothing
        self._cache[key] = result = (encode, step, decode)
        return result

    def prepare_s(self, shape: Shape, width: int) -> float:
        """The DiT's set-up (latents, timesteps) of `shape` at `width`: paid once, by the task
        that runs the request's first denoise step."""
        key = (shape, width)
        if key not in self._prepare:
            self.parts(shape, width)
        return self._prepare[key]

    def _stage_at(self, stage: str, xs: dict[str, float], width: int) -> float:
        curve = self.curve(stage, width)
        if curve.x_name not in xs:
            raise CostModelError(f"stage {stage!r} uses unknown variable {curve.x_name!r}")
        return curve.ms(xs[curve.x_name]) / 1000.0

    def encode_s(self, shape: Shape, width: int) -> float:
        return self.parts(shape, width)[0]

    def step_s(self, shape: Shape, width: int) -> float:
        return self.parts(shape, width)[1]

    def decode_s(self, shape: Shape, width: int) -> float:
        return self.parts(shape, width)[2]

    def remaining_s(self, shape: Shape, width: int, encoded: bool, steps_left: int,
                    decoded: bool = False) -> float:
        """Time of all remaining work at one width: encode if not done, prepare if no step ran,
        the steps left, decode."""
        encode, step, decode = self.parts(shape, width)
        prepare = self.prepare_s(shape, width) if steps_left >= shape.steps else 0.0
        return (0.0 if encoded else encode) + prepare + steps_left * step + (0.0 if decoded else decode)

    def t_single(self, what: "Shape | HasShape") -> float:
        """The whole trajectory on one rank, in seconds (of a Shape or anything with `.shape`, e.g. a Request)."""
        shape = what if isinstance(what, Shape) else what.shape
        return self.remaining_s(shape, 1, encoded=False, steps_left=shape.steps)


def _read_layout(file: Path) -> tuple[int, dict[str, Curve], str] | None:
    """(width, stage curves, model) of a layout file; None for a JSON file that is no layout at all."""
    try:
        data = json.loads(file.read_text())
        if isinstance(data, dict) and "parallelism" not in data and "stages" not in data:
            return None
        par = data["parallelism"]
        sp = int(par["sp"]) if "sp" in par else int(par.get("ulysses", 1)) * int(par.get("ring", 1))
        width = int(par.get("tp", 1)) * sp * int(par.get("cfg", 1))
        curves = {}
        for name, stage in data["stages"].items():
            co = stage["coeffs"]
            curves[name] = Curve(_x_name(file, name, stage), float(co["a"]), float(co["b"]), float(co["c"]))
    except CostModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CostModelError(f"{file}: not a cost-model layout file ({type(exc).__name__}: {exc})") from exc
    if width < 1:
        raise CostModelError(f"{file}: width {width} is not positive")
    return width, curves, str(data.get("model", ""))


def _x_name(file: Path, name: str, stage: dict) -> str:
    """The stage's `x_name`, else the artifact's variable for that stage."""
    x_name = stage.get("x_name") or STAGE_X.get(name)
    if x_name is None:
        raise CostModelError(f"{file}: stage {name!r} has no x_name, and the artifact names no variable "
                             f"for it (known stages: {', '.join(STAGE_X)})")
    return str(x_name)


def _read_migration(file: Path) -> Migration:
    try:
        fields = json.loads(file.read_text())
        return Migration(**{k: type(getattr(Migration(), k))(v) for k, v in fields.items()})
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise CostModelError(f"{file}: bad migration settings ({exc})") from exc
