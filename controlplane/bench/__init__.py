"""`surefoot bench`: checkpointed steps per second and run latency through real processes.

harness.py runs the modes: open_loop.py (throughput, thousands of runs in flight),
closed_loop.py (latency at N runs in flight) and restart.py (the gap a control-plane restart
leaves); processes.py starts the control plane and the workers, workload.py holds the
workflow, report.py the figures.
"""

from controlplane.bench.harness import run_bench
from controlplane.bench.processes import BenchError

__all__ = ["BenchError", "run_bench"]
