"""The engine: requests, trajectory tasks, the cluster, the cost model, the
scheduling round and the simulator. No torch, no I/O in the scheduler. Policy
resolution (names, `.gfp` files) lives above it, in `gfdit.policies`.

Public API (see docs/engine.md):
    CostModel, Migration, Shape          -- costmodel
    Request, State, Outcome              -- request
    Cluster                              -- cluster
    Engine                               -- engine (the state machine)
    Dispatch                             -- task (what executors run)
    Executor, SimExecutor, TaskEnd, feed -- executor (and what executors report)
    simulate, Result                     -- simulator
    compute_metrics                      -- metrics
    DecisionLog                          -- decisions
    Workload                             -- workload
"""

from .cluster import Cluster, ClusterError
from .costmodel import CostModel, CostModelError, Migration, Shape
from .decisions import DecisionLog
from .engine import Engine
from .executor import Executor, SimExecutor, Span, TaskEnd, feed
from .metrics import compute_metrics
from .policy_check import PolicyError
from .request import Outcome, Request, RequestError, State
from .simulator import Result, simulate
from .task import Dispatch
from .workload import Workload

__all__ = [
    "Cluster", "ClusterError", "CostModel", "CostModelError", "DecisionLog", "Dispatch", "Engine",
    "Executor", "Migration", "Outcome", "PolicyError", "Request", "RequestError", "Result", "Shape",
    "SimExecutor", "Span", "State", "TaskEnd", "Workload", "compute_metrics", "feed", "simulate",
]
