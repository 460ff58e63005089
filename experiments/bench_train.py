"""Benchmark: the SING training step, this tree against an older commit, side by side (issue #13).

Prints JSON. Every case runs in a fresh subprocess (its own allocator state, RSS and page-fault
counters); the cases of one repetition alternate between the trees, so both see the same machine.
For each case, over ``--steps`` training steps after one warm-up step:

- ``items_per_s``: training images per second (items of the three streams: LR, HR, synthetic LR);
- ``sys_share``: system CPU time / (user + system) of the process during those steps;
- ``faults_per_step``: minor page faults per step; ``peak_rss_mb``: the process's peak RSS;
- ``runner``: ``loop`` (a plain PyTorch loop: uint8 batch -> float, Eq. 2-5, backward, Adam step) or
  ``fit`` (Lightning ``Trainer.fit`` of SINGModule on the same net and batches).

``summary`` gives the medians over repetitions and the ratios the issue asks for: new / old SING step,
Lightning fit / plain loop, SR option / SRCNN, and the entry point ``python -m sing_lit.train``'s
system-time share and faults in both trees. On a GPU (``torch.cuda.is_available()``) the fit cases also
run with ``16-mixed``, ``bf16-mixed`` and ``channels_last``.

Run: ``python experiments/bench_train.py --old /tmp/old_main/src`` (the old tree: ``git worktree add
/tmp/old_main <commit>``); without ``--old`` only this tree is measured. ``--quick`` for small_cnn only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

HERE_SRC = str(Path(__file__).resolve().parents[1] / "src")
SIZE = (160, 72)
RATIO = 1 / 3


# ---- worker: one case in this process ------------------------------------------------------
def _imports():
    """The classes the case needs, from the new layout or the old one (before the reorganisation)."""
    from sing_lit.data.resumable import ResumableLoader
    from sing_lit.data.streams import TrainStreams
    from sing_lit.models.sing_net import build_sing_net
    try:
        from sing_lit.sing.losses import sing_losses
        from sing_lit.sing.module import SINGModule
    except ImportError:  # the old tree
        from sing_lit.sing_module import SINGModule, sing_losses
    return ResumableLoader, TrainStreams, build_sing_net, sing_losses, SINGModule


def _backbone(name: str):
    if name == "small_cnn":
        from sing_lit.models.small_cnn import SmallCNN
        return partial(SmallCNN, widths=(16, 32, 64, 128))
    if name == "resnet50":
        from sing_lit.models.resnet import ResNet50
        return partial(ResNet50, pretrained=False, last_stride=1)
    if name == "mobilenet_v2":
        from sing_lit.models.mobilenet import MobileNetV2
        return partial(MobileNetV2, pretrained=False, last_stride=1)
    raise SystemExit(f"error: unknown backbone {name!r}")


def _sr(name: str):
    if name == "none":
        return None
    if name == "srcnn":
        from sing_lit.models.sr_net import SRNet
        return partial(SRNet, channels=(64, 32), kernel_sizes=(9, 1, 5), residual=True)
    if name == "fsrcnn":
        from sing_lit.models.fsrcnn import FSRCNN
        return partial(FSRCNN, ratio=RATIO)
    raise SystemExit(f"error: unknown sr {name!r}")


def _usage() -> tuple[float, float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime, r.ru_stime, r.ru_minflt


def _report(t0: tuple, t1: tuple, steps: int, items: int) -> dict:
    wall, user, sys_, flt = (b - a for a, b in zip(t0, t1))
    return {"items_per_s": round(items * steps / wall, 2), "sec_per_step": round(wall / steps, 3),
            "sys_share": round(sys_ / max(user + sys_, 1e-9), 4), "faults_per_step": round(flt / steps),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run_case(spec: dict) -> dict:
    import torch  # before sing_lit on purpose: the allocator settings must hold when torch comes first

    ResumableLoader, TrainStreams, build_sing_net, sing_losses, SINGModule = _imports()
    import sing_lit
    try:
        from sing_lit.runtime.allocator import malloc_state
        malloc = malloc_state()
    except ImportError:
        malloc = {"applied": False, "reason": "no sing_lit.runtime.allocator in this tree"}
    torch.manual_seed(0)
    b, steps, warm = spec["batch"], spec["steps"], 1
    n = b * (steps + warm)
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (n, 3, *SIZE), dtype=torch.uint8, generator=g) for _ in range(3)]
    labels = torch.arange(n) % 50
    streams = TrainStreams(imgs[0], labels, imgs[1], imgs[2], labels.clone(), flip=True, seed=0)
    loader = ResumableLoader(streams, batch_size=b, seed=0)
    model = SINGModule(net=partial(build_sing_net, backbone=_backbone(spec["backbone"]), sr_net=_sr(spec["sr"]),
                                   feat_dim=256), num_classes=50,
                       optimizer=partial(torch.optim.Adam, weight_decay=5e-4), lr_sr=1e-3, lr_reid=1e-3)
    out = {**spec, "tree": sing_lit.__file__.rsplit("/src/", 1)[0], "malloc": malloc}
    items = 3 * b
    if spec["runner"] == "loop":
        optimizer = model.configure_optimizers()
        optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
        model.train()
        for i, batch in enumerate(loader):
            if i == warm:
                t0 = _usage()
            batch = {k: SINGModule.to_float(v) for k, v in batch.items()}
            loss = sing_losses(model.net, batch, 1.0, True)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {**out, **_report(t0, _usage(), steps, items)}
    import lightning as L

    marks: dict[str, tuple] = {}

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == warm:
                if trainer.accelerator.__class__.__name__.startswith("CUDA"):
                    torch.cuda.synchronize()
                marks["t0"] = _usage()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == warm + steps - 1:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                marks["t1"] = _usage()

    if spec.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    trainer = L.Trainer(accelerator=spec.get("accelerator", "cpu"), devices=1, precision=spec.get("precision", "32-true"),
                        max_steps=warm + steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, deterministic=spec.get("deterministic", True),
                        callbacks=[Clock()])
    trainer.fit(model, train_dataloaders=loader)
    return {**out, **_report(marks["t0"], marks["t1"], steps, items)}


# ---- parent: cases in subprocesses, alternating trees --------------------------------------
def spawn(src: str, spec: dict, env_extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": src, **(env_extra or {})}
    proc = subprocess.run([sys.executable, __file__, "--case", json.dumps(spec)], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def entry_point(src: str, cache: str, out: str) -> dict:
    """``python -m sing_lit.train`` at 160x72 for 4 steps: the whole process's system share and faults."""
    args = [sys.executable, "-m", "sing_lit.train", "data.input_size=[160,72]", "data.reader.num_ids=60",
            "trainer.max_epochs=1", "+trainer.limit_train_batches=4", "+trainer.limit_val_batches=1", "test=false",
            "logger=[]", "~callbacks.pictures", "~callbacks.rich_progress_bar", f"paths.cache_dir={cache}", f"hydra.run.dir={out}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, env={**os.environ, "PYTHONPATH": src}, capture_output=True, text=True, cwd=out)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, sys_ = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    res = {"rc": proc.returncode, "wall_s": round(wall, 1), "sys_share": round(sys_ / max(user + sys_, 1e-9), 4),
           "minor_faults": after.ru_minflt - before.ru_minflt}
    if proc.returncode:
        res["error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return res


def bench_loaders(cache: str, batch: int, batches: int = 60, reps: int = 2) -> dict:
    """Training batches/s of the DataModule at 160x72: in memory (no workers) and streaming (2 workers)."""
    import torch

    from sing_lit.data.datamodule import SINGDataModule
    from sing_lit.data.synthetic import build_synthetic_benchmark

    def module(in_memory: bool, workers: int) -> tuple[SINGDataModule, float]:
        dm = SINGDataModule(name="synthetic", root=cache, reader=partial(build_synthetic_benchmark, num_ids=200),
                            anchor_ratio=RATIO, input_size=SIZE, mlr={"lr_camera": "genuine"}, protocol={"trials": 1},
                            cache_dir=cache, batch_size=batch, num_workers=workers, in_memory=in_memory)
        t0 = time.perf_counter()
        dm.setup("fit")
        return dm, time.perf_counter() - t0

    def rate(dm: SINGDataModule) -> float:
        loader, n = dm.train_dataloader(), 0
        it = iter(loader)
        next(it)  # workers started
        t0 = time.perf_counter()
        while n < batches:
            for _ in it:
                n += 1
                if n >= batches:
                    break
            it = iter(loader)
        return n / (time.perf_counter() - t0)

    (mem, mem_s), (mapped, mapped_s) = module(True, 0), module(False, 2)
    rates: dict[str, list[float]] = {"in_memory": [], "streaming_2_workers": []}
    for _ in range(reps):
        rates["in_memory"].append(rate(mem))
        rates["streaming_2_workers"].append(rate(mapped))

    def ram(dm: SINGDataModule) -> int:
        s = dm.train_set
        return sum(x.nbytes for x in (s.lr, s.hr, s.h2l) if isinstance(x, torch.Tensor))

    return {"batch_per_stream": batch, "train_items": len(mem.train_set),
            "setup_seconds": {"in_memory": round(mem_s, 1), "streaming_first_write": round(mapped_s, 1)},
            "train_image_bytes_in_ram": {"in_memory": ram(mem), "streaming": ram(mapped)},
            "batches_per_s": {k: round(statistics.median(v), 1) for k, v in rates.items()}}


def bench_sr_nets(batch: int, reps: int = 9) -> dict:
    """F_sr alone, forward + backward on the two LR streams (2 x batch images at 160x72), per anchor ratio.

    The whole step's ratio mixes in the backbone; this is the SR sub-network's own cost, SRCNN and
    FSRCNN timed alternately in one process: medians of ``reps`` and, as other jobs on a shared machine
    only ever add time, the minima too.
    """
    import torch

    from sing_lit.models.fsrcnn import FSRCNN

    x = torch.rand(2 * batch, 3, *SIZE)
    out: dict = {}
    for label, ratio in (("1/2", 1 / 2), ("1/3", 1 / 3), ("1/4", 1 / 4)):
        nets = {"srcnn": _sr("srcnn")(), "fsrcnn": FSRCNN(ratio=ratio)}
        times: dict[str, list[float]] = {k: [] for k in nets}
        for _ in range(reps + 1):
            for name, net in nets.items():
                t0 = time.perf_counter()
                net(x).square().mean().backward()
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v[1:]) for k, v in times.items()}  # the first pass warms up
        low = {k: min(v[1:]) for k, v in times.items()}
        out[label] = {"srcnn_s": round(med["srcnn"], 3), "fsrcnn_s": round(med["fsrcnn"], 3),
                      "srcnn_over_fsrcnn": round(med["srcnn"] / med["fsrcnn"], 2),
                      "srcnn_over_fsrcnn_min": round(low["srcnn"] / low["fsrcnn"], 2)}
    return out


def plan(quick: bool, with_old: bool) -> list[tuple[str, dict]]:
    cases: list[tuple[str, dict]] = []
    trees = ["old", "new"] if with_old else ["new"]
    for sr in ("srcnn", "none"):
        for runner in ("loop", "fit"):
            cases += [(t, {"backbone": "small_cnn", "sr": sr, "runner": runner}) for t in trees]
    cases += [("new", {"backbone": "small_cnn", "sr": "fsrcnn", "runner": r}) for r in ("loop", "fit")]
    if not quick:
        for sr in ("srcnn", "none"):
            cases += [(t, {"backbone": "resnet50", "sr": sr, "runner": "loop"}) for t in trees]
            cases += [("new", {"backbone": "mobilenet_v2", "sr": sr, "runner": "loop"})]
        cases += [("new", {"backbone": bb, "sr": "srcnn", "runner": "fit"}) for bb in ("resnet50", "mobilenet_v2")]
        cases += [("new", {"backbone": bb, "sr": "fsrcnn", "runner": "loop"}) for bb in ("resnet50", "mobilenet_v2")]
    return cases


def key(tree: str, s: dict) -> str:
    extra = "".join(f"/{s[k]}" for k in ("precision", "channels_last") if s.get(k))
    return f"{tree}/{s['backbone']}/{s['sr']}/{s['runner']}{extra}"


def summarise(results: dict[str, list[dict]]) -> dict:
    med = {k: {m: statistics.median(r[m] for r in rs) for m in ("items_per_s", "sys_share", "faults_per_step",
                                                                 "peak_rss_mb")}
           for k, rs in results.items() if rs and all("error" not in r for r in rs)}

    def ratio(a: str, b: str) -> float | None:
        return round(med[a]["items_per_s"] / med[b]["items_per_s"], 3) if a in med and b in med else None

    out: dict = {"median": med, "ratios": {}}
    for k in med:
        tree, bb, sr, runner = k.split("/")[:4]
        if tree == "new" and "old/" + k[4:] in med:
            out["ratios"][f"new_over_old/{bb}/{sr}/{runner}"] = ratio(k, "old/" + k[4:])
        if runner == "fit" and k.count("/") == 3:
            out["ratios"][f"fit_over_loop/{tree}/{bb}/{sr}"] = ratio(k, f"{tree}/{bb}/{sr}/loop")
        if tree == "new" and sr == "fsrcnn":
            out["ratios"][f"fsrcnn_over_srcnn/{bb}/{runner}"] = ratio(k, f"new/{bb}/srcnn/{runner}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--old", help="src/ folder of the older tree to compare with (e.g. /tmp/old_main/src)")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per case (after one warm-up)")
    parser.add_argument("--batch", type=int, default=32, help="images per stream per step (data.batch_size)")
    parser.add_argument("--batch-imagenet", type=int, default=8,
                        help="images per stream for resnet50 / mobilenet_v2 (a 2-core CPU takes ~20 s a step at 32)")
    parser.add_argument("--reps", type=int, default=2, help="repetitions of the whole alternating plan")
    parser.add_argument("--quick", action="store_true", help="small_cnn only")
    parser.add_argument("--parts", default="cases,sr,loaders,entry",
                        help="comma-separated: cases (training steps), sr (F_sr alone), loaders, entry (the CLI)")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    if args.old and not (Path(args.old) / "sing_lit").is_dir():
        raise SystemExit(f"error: --old {args.old} has no sing_lit package; pass the old tree's src/ folder")
    srcs = {"new": HERE_SRC, **({"old": args.old} if args.old else {})}
    parts = set(args.parts.split(","))
    cases = plan(args.quick, bool(args.old)) if "cases" in parts else []
    import torch
    if torch.cuda.is_available():
        for prec, cl in (("32-true", False), ("16-mixed", False), ("bf16-mixed", False), ("bf16-mixed", True)):
            for bb in ("small_cnn", "resnet50"):
                cases.append(("new", {"backbone": bb, "sr": "srcnn", "runner": "fit", "accelerator": "gpu",
                                      "precision": prec, "channels_last": cl}))
    results: dict[str, list[dict]] = {}
    for _ in range(args.reps):
        for tree, spec in cases:
            batch = args.batch if spec["backbone"] == "small_cnn" else args.batch_imagenet
            spec = {**spec, "batch": batch, "steps": args.steps}
            results.setdefault(key(tree, spec), []).append(spawn(srcs[tree], spec))
    report = {"input_size": list(SIZE), "batch_per_stream": {"small_cnn": args.batch, "imagenet_backbones": args.batch_imagenet}, "steps": args.steps, "reps": args.reps,
              "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "cuda": torch.cuda.is_available(), "cases": results, "summary": summarise(results)}
    if "sr" in parts:
        report["sr_net_alone"] = bench_sr_nets(args.batch)
    if "loaders" in parts:
        with tempfile.TemporaryDirectory(prefix="sing_lit_bench_") as tmp:
            loaders = bench_loaders(tmp, args.batch)
        step = report["summary"]["median"].get("new/small_cnn/srcnn/loop", {}).get("items_per_s", 0) / (3 * args.batch)
        loaders["small_cnn_sing_steps_per_s"] = round(step, 3)
        if step:
            loaders["ratio_over_step_rate"] = {k: round(v / step, 1) for k, v in loaders["batches_per_s"].items()}
        report["data_loader"] = loaders
    if "entry" in parts:
        with tempfile.TemporaryDirectory(prefix="sing_lit_bench_") as tmp:
            report["entry_point"] = {}
            for tree in srcs:  # the first run also builds the shared synthetic cache: run once untimed
                entry_point(srcs[tree], f"{tmp}/cache", tempfile.mkdtemp(dir=tmp))
                break
            for tree in srcs:
                report["entry_point"][tree] = entry_point(srcs[tree], f"{tmp}/cache", tempfile.mkdtemp(dir=tmp))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
