"""Command line interface: ``python -m experiments {list,run,summary}``.

Examples
--------
::

    python -m experiments list
    python -m experiments run smoke --quick
    python -m experiments run all --quick --out /tmp/quick
    python -m experiments summary
"""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback
from pathlib import Path

from experiments import registry


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of workers, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list registered experiments")

    run = sub.add_parser("run", help="run one experiment, or 'all'")
    run.add_argument("name", help="experiment name, or 'all' for every experiment in registry order")
    run.add_argument("--quick", action="store_true", help="use the quick configuration")
    run.add_argument("--seed", type=int, default=0, help="seed for random, numpy and torch (default 0)")
    run.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="compute device (default cpu)")
    run.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="compute dtype")
    run.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    run.add_argument("--out", type=Path, default=None,
                     help="results root (default ./results, ./results/quick with --quick)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="run the tasks of task experiments on N local Dask worker processes")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the tasks on the Dask cluster at ADDRESS (tcp://HOST:PORT)")

    summary = sub.add_parser("summary", help="regenerate <out>/summary.md only")
    summary.add_argument("--out", type=Path, default=Path("results"), help="results root (default ./results)")
    return parser


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _cmd_list() -> int:
    width = max((len(n) for n in registry.names()), default=0)
    for name in registry.names():
        print(f"{name:<{width}}  {registry.description(name)}")
    return 0


def _cmd_summary(out: Path) -> int:
    from experiments.summary import write_summary

    print(f"wrote {write_summary(out)}")
    return 0


def _cmd_run(args: argparse.Namespace, command: str) -> int:
    names = registry.names() if args.name == "all" else [args.name]
    if args.name != "all" and args.name not in registry.names():
        _err(str(registry.UnknownExperimentError(args.name)))
        return 2

    # Heavy imports (torch, ...) only when something is actually run. Figures are only
    # written to files: Agg, in this process only (no MPLBACKEND for child processes).
    import matplotlib

    matplotlib.use("Agg")
    from experiments import runner
    from experiments.executors import make_executor
    from experiments.lock import LockHeldError
    from experiments.summary import write_summary
    from experiments.tasks import TasksFailedError

    out = args.out if args.out is not None else runner.default_out_root(args.quick)

    try:
        runner.resolve_device(args.device)
    except RuntimeError as exc:
        _err(str(exc))
        return 2

    try:
        executor = make_executor(workers=args.workers, scheduler=args.scheduler)
    except (RuntimeError, ValueError) as exc:
        _err(str(exc))
        return 2
    failures = []
    try:
        for name in names:
            print(f"== {name} ==", flush=True)
            try:
                meta = runner.run_experiment(
                    name,
                    out_root=out,
                    quick=args.quick,
                    seed=args.seed,
                    device=args.device,
                    dtype=args.dtype,
                    threads=args.threads,
                    command=command,
                    executor=executor,
                )
            except (LockHeldError, runner.RunRefusedError, TasksFailedError) as exc:
                _err(str(exc))
                failures.append(name)
                continue
            except Exception:
                traceback.print_exc()
                failures.append(name)
                continue
            print(f"== {name}: done in {meta['wall_time_s']:.2f} s ==", flush=True)
    finally:
        executor.close()
        summary = write_summary(out)  # also after a failure or an interrupt: it describes what is on disk
    print(f"{len(names) - len(failures)} of {len(names)} experiment(s) done; summary in {summary}")

    if failures:
        _err(f"{len(failures)} experiment(s) failed: {', '.join(failures)}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _cmd_list()
    if args.command == "summary":
        return _cmd_summary(args.out)
    command = shlex.join(["python", "-m", "experiments", *argv])
    return _cmd_run(args, command)
