"""The `pad-bench` command line. Heavy libraries are imported inside the subcommands that need
them, so --help, list and datasets check stay fast."""
from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
from pathlib import Path

from .errors import UserError

DEFAULT_SYNTH_ROOT = Path(".cache") / "synth"  # where benchmarks/synth.yaml looks, from the working directory


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)  # run progress goes to run.log and stdout, warnings also here
    logging.basicConfig(format="pad-bench: %(levelname)s: %(message)s", handlers=[console])
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"pad-bench: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the disk or folder outside the atomic writers (logs, TensorBoard, Ray's temp dir)
        where = e.filename or "the output disk"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"pad-bench: error: no space left on {where}; free some space, then continue with "
                  f"{_how_to_continue(args.command)}", file=sys.stderr)
        else:
            print(f"pad-bench: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pad-bench: interrupted; continue with {_how_to_continue(args.command)}", file=sys.stderr)
        return 130


def _how_to_continue(command: str) -> str:
    """After an interruption or a full disk: `run` has --resume; `sweep` skips finished runs and resumes
    unfinished ones when run again; other commands are simply re-run."""
    ways = {"run": "the same command plus --resume",
            "sweep": "the same command (finished runs are skipped, unfinished ones resume)"}
    return ways.get(command, "the same command")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pad-bench", description="Lifelong person re-identification benchmark harness.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="train and evaluate one strategy on one benchmark")
    r.add_argument("--benchmark", "-b", required=True, help="benchmark name (see `pad-bench list`)")
    r.add_argument("--strategy", "-s", required=True, help="strategy name (see `pad-bench list`)")
    r.add_argument("--model", "-m", help="model name (overrides the strategy's default)")
    r.add_argument("--data-root", help="folder holding the datasets")
    r.add_argument("--out", default="results", help="parent folder of run directories (default: results)")
    r.add_argument("--name", help="run directory name (default: <strategy>-<benchmark>-<model>-s<seed>, "
                                  "plus a short hash of --set/--profile when given)")
    r.add_argument("--seed", type=int)
    r.add_argument("--device", help="cpu or cuda")
    r.add_argument("--profile", help="a named profile of the strategy YAML (e.g. resnet, tiny)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key with a dotted name, e.g. train.epochs=2 (repeatable)")
    r.add_argument("--resume", action="store_true", help="continue a killed run from its last experience")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--dry-run", action="store_true",
                   help="resolve the config, build the stream and the model, print what every domain would "
                        "run with (epochs, LRs, batch, KD, trainable set) and exit: no training, no run directory")
    r.add_argument("--json", action="store_true", help="with --dry-run: print a JSON list, one object per domain")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="synthetic stream, the headline strategies (--all: every one), then compare")
    d.add_argument("--out", default="results/demo")
    d.add_argument("--data-root", default=str(DEFAULT_SYNTH_ROOT))
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--strategies", help="comma-separated methods (default: the headline ones, see --all)")
    d.add_argument("--all", action="store_true", help="every method, not only the headline ones (longer)")
    d.add_argument("--jobs", type=int, help="runs at a time, each on an equal share of the CPUs "
                                            "(default: one per available CPU)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key in every run, e.g. train.epochs=5 (repeatable)")
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser("compare", help="head-to-head tables and plots from run directories or sweep directories")
    c.add_argument("runs", nargs="+", type=Path, help="run directories and/or sweep directories (their finished runs)")
    c.add_argument("--out", type=Path, help="output folder (default for one sweep directory: SWEEP_DIR/comparison)")
    c.add_argument("--force", action="store_true", help="compare runs whose protocols differ (marked)")
    c.add_argument("--skip-unfinished", action="store_true",
                   help="leave out runs that did not reach their last step (listed under the table)")
    c.add_argument("--baseline", metavar="NAME",
                   help="a row label (or a unique part of one): every other row gets its paired difference from it")
    c.add_argument("--published", action="store_true",
                   help="also list the published results of other papers (not re-run; flagged where protocols differ)")
    c.set_defaults(func=cmd_compare)

    sw = sub.add_parser("sweep", help="many runs from a spec (strategies x grid x seeds), executed on Ray")
    sw.add_argument("spec", type=Path, help="sweep spec YAML (see docs/sweeps.md)")
    sw.add_argument("--out", type=Path, help="sweep directory (default: results/sweeps/<spec name>)")
    sw.add_argument("--address", help="join a running Ray cluster: HOST:PORT or auto "
                                      "(default: a local Ray instance on 127.0.0.1)")
    sw.add_argument("--cpus", type=int, help="CPUs of the local Ray instance (default: all of this machine's)")
    sw.add_argument("--retries", type=int, default=3,
                    help="retries of a run whose worker or node died; it resumes from its checkpoint (default: 3)")
    sw.add_argument("--dry-run", action="store_true", help="check the spec and every run's config, list the runs")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar (the line per finished run stays)")
    sw.set_defaults(func=cmd_sweep)

    pl = sub.add_parser("plot", help="draw one run's plots into RUN_DIR/plots/")
    pl.add_argument("run", type=Path)
    pl.set_defaults(func=cmd_plot)

    ls = sub.add_parser("list", help="strategies, benchmarks and models")
    ls.add_argument("--params", metavar="METHOD",
                    help="print the declared hyperparameters of a method (or of a strategy YAML's method)")
    ls.set_defaults(func=cmd_list)

    ex = sub.add_parser("export", help="write an inference checkpoint (image encoder only)")
    ex.add_argument("run", type=Path)
    ex.set_defaults(func=cmd_export)

    ds = sub.add_parser("datasets", help="check, prepare or synthesise datasets")
    dsub = ds.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    chk = dsub.add_parser("check", help="report which datasets are found and their counts")
    chk.add_argument("--root", required=True, type=Path)
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=cmd_datasets_check)
    syn = dsub.add_parser("synth", help="write the synthetic person domains (replaces synth_* folders in --out)")
    syn.add_argument("--out", required=True, type=Path)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--pretrain", action="store_true",
                     help="also pretrain clip-tiny and resnet-tiny on the synthetic corpus (docs/synthetic.md)")
    syn.add_argument("--scale", choices=("demo", "paper", "tiny"), default="demo",
                     help="demo (default): the synthetic domains of the demo; paper: the 12 real datasets at their "
                          "protocol sizes in their own layouts (docs/synthetic.md#rehearsal-trees); tiny: the same, scaled down")
    syn.add_argument("--jobs", type=int, help="with paper/tiny: processes (default: one per available CPU)")
    syn.add_argument("--limit", type=int, help="with paper/tiny: write at most this many images, then stop "
                                               "(the same command resumes)")
    syn.set_defaults(func=cmd_datasets_synth)
    prep = dsub.add_parser("prepare", help="build a loadable layout from raw files (cuhk03, cuhk_sysu)")
    prep.add_argument("name")
    prep.add_argument("--root", required=True, type=Path)
    prep.set_defaults(func=cmd_datasets_prepare)
    return p


# ---- run / demo ---------------------------------------------------------------------------
def resolve_run_config(args) -> dict:
    from .config import parse_set, resolve_config

    sets = parse_set(args.set)
    for key, value in (("model.name", args.model), ("benchmark.data_root", args.data_root),
                       ("seed", args.seed), ("device", args.device)):
        if value is not None:
            sets.setdefault(key, value)
    return resolve_config(benchmark=args.benchmark, strategy=args.strategy, sets=sets, profile=args.profile)


def cmd_run(args) -> int:
    from .config import parse_set
    from .results.store import check_run_name
    from .synthetic.assets import make_assets, pending_assets

    if args.json and not args.dry_run:
        raise UserError("--json only applies to --dry-run; add --dry-run or drop --json")
    name = check_run_name(args.name) if args.name is not None else None
    cfg = resolve_run_config(args)
    pending = pending_assets(cfg)
    if args.dry_run and pending:
        print("the run would first make (its asset step; --dry-run makes nothing):")
        print("\n".join(f"  {line}" for line in pending))
        print("the per-domain plan reads them: run without --dry-run, or make them with "
              f"`pad-bench datasets synth --out {cfg['benchmark']['data_root']} [--pretrain]`, then plan again")
        return 0
    if args.dry_run:
        from .run.runner import plan

        requested = cfg["train"]["precision"]
        rows = plan(cfg)
        print(json.dumps(rows, indent=2) if args.json else format_plan(rows))
        if not args.json and rows[0]["precision"] != requested:
            print(f"precision: {rows[0]['precision']} on {cfg['device']} (the method's on cuda: {requested})")
        return 0
    from .run.runner import execute, run_name

    if pending:
        print("asset step: making " + "; ".join(pending), flush=True)
        make_assets(cfg)
    overrides = dict(parse_set(args.set), **({"profile": args.profile} if args.profile else {}))
    path = execute(cfg, Path(args.out) / (name or run_name(cfg, overrides)), resume=args.resume,
                   progress=not args.no_progress)
    print(f"run directory: {path}")
    return 0


# The base strategy's keys (ReIDStrategy.experience_settings) and their headings, in table order;
# batch_p x batch_k show as one "batch" column, and the schedule's step and the sampler are not shown.
BASE_COLUMNS = (("position", "pos"), ("domain", "domain"), ("epochs", "epochs"), ("milestones", "milestones"),
                ("lr", "LR per group"), ("batch", "batch"), ("random_erasing", "RE p"), ("precision", "precision"),
                ("kd", "KD"), ("unfreeze", "unfreeze"), ("trainable_blocks", "blocks"),
                ("trainable_params", "trainable"))
BASE_HIDDEN = frozenset({"batch_p", "batch_k", "schedule_step", "sampler"})


def format_plan(rows: list[dict]) -> str:
    """The dry run's per-domain table: the base columns, then the keys a method adds to
    experience_settings, in the order it reports them; a column no row fills is left out."""
    def cell(row: dict, key: str) -> str:
        if key == "batch":
            return f"{row['batch_p']}x{row['batch_k']}"
        value = row.get(key)
        if isinstance(value, dict):
            return " ".join(f"{k}={v:g}" for k, v in value.items())
        if isinstance(value, list):
            return ",".join(map(str, value)) or "-"
        return "on" if value is True else "off" if value is False else str(value)

    base = {k for k, _ in BASE_COLUMNS} | BASE_HIDDEN
    own = [(k, k.replace("_", " ")) for k in dict.fromkeys(k for r in rows for k in r) if k not in base]
    cols = [(k, h) for k, h in BASE_COLUMNS + tuple(own) if k == "batch" or any(r.get(k) is not None for r in rows)]
    table = [[h for _, h in cols]] + [[cell(r, k) for k, _ in cols] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in table)


def cmd_demo(args) -> int:
    from .config import parse_set
    from .demo import run_demo

    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give at least 1 (runs at a time)")
    run_demo(out=Path(args.out), data_root=Path(args.data_root), seed=args.seed,
             only=args.strategies.split(",") if args.strategies else None, every=args.all, jobs=args.jobs,
             sets=parse_set(args.set))
    return 0


# ---- results ------------------------------------------------------------------------------
def cmd_compare(args) -> int:
    from .results.compare import compare_runs
    from .sweep.state import expand_compare_inputs

    runs, keys, out = expand_compare_inputs(args.runs, args.out)
    written = compare_runs(runs, out, force=args.force, published=args.published, baseline=args.baseline,
                           sweep_keys=keys, skip_unfinished=args.skip_unfinished)
    for name, path in written.items():
        print(f"{name}: {path}")
    if args.published:
        print("\n" + written["table.md"].read_text(encoding="utf-8"))
    return 0


def cmd_sweep(args) -> int:
    from .sweep.command import sweep_command

    return sweep_command(args.spec, out=args.out, address=args.address, cpus=args.cpus, retries=args.retries,
                         dry_run=args.dry_run, progress=not args.no_progress)


def cmd_plot(args) -> int:
    from .results.plots import plot_run

    if not (args.run / "metrics.csv").is_file():
        raise UserError(f"{args.run} is not a run directory (no metrics.csv)")
    for path in plot_run(args.run):
        print(path)
    return 0


def cmd_export(args) -> int:
    from .run.export import export_run

    path, size, step, total = export_run(args.run)
    unfinished = f" (the run is unfinished: step {step} of {total})" if step < total else ""
    print(f"wrote {path} ({size / 2**20:.2f} MiB) from step {step}{unfinished}")
    return 0


# ---- listing ------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from .config import benchmark_layer, list_benchmarks, list_strategies, strategy_description
    from .models import list_models

    if args.params:
        return print_params(args.params)
    print("strategies:")
    for name in list_strategies():
        print(f"  {name:<14} {strategy_description(name)}")
    print("benchmarks:")
    for name in list_benchmarks():
        domains = benchmark_layer(name).values.get("benchmark.domains", [])
        print(f"  {name:<14} {' -> '.join(domains)}")
    print("models:")
    for name in list_models():
        print(f"  {name}")
    return 0


def print_params(name: str) -> int:
    """A Markdown table of the declared hyperparameters of method `name` (a method folder or strategy YAML)."""
    from .config import hparams_of, strategy_layers
    from .registry import METHODS, STRATEGY_FILES

    method = name if name in METHODS or name not in STRATEGY_FILES else strategy_layers(name)[-1].values["strategy.method"]
    rows = hparams_of(method).table()
    print(f"hyperparameters of method '{method}' (strategy.<name>; per-domain: a list by position or a "
          f"per-dataset table also works)\n")
    cols = ("name", "type", "default", "range", "per_domain", "doc")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(row[c].replace("|", "\\|") for c in cols) + " |")
    return 0


# ---- datasets -----------------------------------------------------------------------------
def cmd_datasets_check(args) -> int:
    from .data.check import check_datasets, format_report

    report = check_datasets(args.root)
    print(json.dumps(report, indent=2) if args.json else format_report(report, args.root))
    return 0


def cmd_datasets_synth(args) -> int:
    if args.scale != "demo":
        return rehearsal_synth(args)
    if args.jobs is not None or args.limit is not None:
        raise UserError("--jobs and --limit apply to --scale paper or tiny; drop them for the demo domains")
    from .synthetic.domains import SynthConfig, generate, is_complete

    cfg = SynthConfig(seed=args.seed)
    if is_complete(args.out, cfg):
        print(f"{args.out} already holds these synthetic domains (seed {args.seed}); nothing to do")
    else:
        info = generate(args.out, cfg)
        print(f"wrote synthetic domains to {args.out}: {', '.join(info.get('domains', {}))}")
    if args.pretrain:
        from .synthetic.pretrain import PRETRAINABLE, ensure_pretrained

        for model in PRETRAINABLE:
            print(f"{model}: {ensure_pretrained(args.out, model)}")
    return 0


def rehearsal_synth(args) -> int:
    import os

    from .synthetic.rehearsal import generate_rehearsal

    if args.pretrain:
        raise UserError(f"--pretrain applies to the demo domains; drop it with --scale {args.scale}")
    if args.limit is not None and args.limit < 0:
        raise UserError(f"--limit {args.limit}: give a number of images >= 0")
    jobs = args.jobs if args.jobs is not None else len(os.sched_getaffinity(0))
    res = generate_rehearsal(args.out, args.scale, seed=args.seed, jobs=jobs, limit=args.limit)
    rate = res["written"] / res["seconds"] if res["seconds"] > 0 else 0.0
    print(f"wrote {res['written']} images in {res['seconds']:.1f} s ({rate:.1f} img/s, {jobs} processes) to {args.out}")
    print(f"complete: {', '.join(res['complete']) or 'none new'}")
    if res["unfinished"]:
        print(f"unfinished (run the same command again): {', '.join(res['unfinished'])}")
    return 0


def cmd_datasets_prepare(args) -> int:
    from .data.prepare import PREPARERS
    from .registry import unknown_name_error

    if args.name not in PREPARERS:
        raise unknown_name_error("preparable dataset", args.name, PREPARERS)
    out = PREPARERS[args.name](args.root)
    print(f"prepared {args.name} at {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
