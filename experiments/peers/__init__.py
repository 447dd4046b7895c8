"""The competitor harness: the project and its peers on the same systems, each in its own process.

Every workload case is a set of plain numbers (delays, matrices, gains, second-order
sections, command gains) drawn from a seed (:mod:`experiments.peers.systems`), with a float64
ground truth computed by numpy/scipy alone. Thin adapters build the *same* system from those
numbers in each library and expose its output, a forward + backward step and the gradient
with respect to the library's own parameters: :mod:`experiments.peers.project` (this project's
library and baselines, run in the project's environment) and :mod:`experiments.peers.rivals`
(FLAMO 0.2.20, philtorch, dasp-pytorch, torchlpc, scipy, run in the competitor environment
built by ``scripts/setup_competitors.sh``, where ``import flamo`` is the reference library).
:mod:`experiments.peers.worker` is the process each method runs in and
:mod:`experiments.peers.pool` the orchestrator's side of it; the experiment is
``experiments/competitors.py``.

Only numpy, scipy and torch are imported at module level anywhere in this package except in
``project`` (this project's ``flamo``) and ``rivals`` (the competitors), so both environments
can import the shared modules.
"""
