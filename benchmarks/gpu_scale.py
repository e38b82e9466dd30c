"""Sync-free steps at scale: SelfTrain and ActiveLearn at B up to 65,536 learners, the Bandit at 1M envs, one device.

    python benchmarks/gpu_scale.py                       # on a GPU: every check below, about 5 minutes on one H200
    python benchmarks/gpu_scale.py --device cpu --batch 1 256 1024 --bandit-envs 65536 --sklearn-learners 8

Runs ``sync_free=True`` envs (see ``BatchedVectorEnv``: a step reads no tensor value on the host) and reports, per
env and batch size B:

- learner-steps/s over ``--steps`` steps with no host read between them (one synchronization at the end), and the
  ratio to a scikit-learn loop over the same task measured in the same run on this machine's CPU (the loops of
  ``throughput_selftrain.py`` / ``throughput_activelearn.py``: hard pseudo-labels in a fixed random order; greedy
  smallest-margin queries);
- memory per learner: on CUDA the peak allocated during the run divided by B; on the CPU the bytes of the env's
  state and workspace tensors divided by B (the fit's temporaries come on top);
- B = 1: the time of one step (median, synchronized each step);
- the decisions of the first ``--sample`` learners against the default CPU engine run with the same seeds (the
  actions and the validation / test accuracy after every step must agree);
- one steady-state step under :func:`reciprocal_gym.utils.host_sync.no_host_sync` (on CUDA this also sets
  ``torch.cuda.set_sync_debug_mode("error")``);
- on CUDA, the step captured in a CUDA graph (``--graph``) and replayed: its time per step, and whether ``--steps``
  replays leave the same parameters as as many eager steps.

Each check that fails is reported as such in the table and the JSON (``--out``), the others still run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).parent))
import throughput_activelearn as al  # noqa: E402
import throughput_selftrain as st  # noqa: E402

import reciprocal_gym  # noqa: E402,F401
from reciprocal_gym.utils.host_sync import no_host_sync  # noqa: E402

ENVS = ("selftrain", "activelearn")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


FIT_CHUNK: int | None = None  # --fit-chunk: learners per block of a sync-free refit


def make_env(kind: str, batch: int, steps: int, device: str, sync_free: bool | str = True):
    common = dict(num_envs=batch, vectorization_mode="vector_entry_point", dataset=st.DATASET,
                  n_labeled=st.N_LABELED, n_pool=st.N_POOL, lam=st.LAM, max_steps=steps + 1, device=device,
                  dtype=torch.float64, autoreset_mode="disabled", sync_free=sync_free)
    if sync_free and FIT_CHUNK is not None:
        common["fit_chunk"] = FIT_CHUNK
    if kind == "selftrain":
        return gym.make_vec("Reciprocal-SelfTrain-v0", label_mode="hard", adaptation="add", **common)
    return gym.make_vec("Reciprocal-ActiveLearn-v0", budget=steps + 1, **common)


class Actions:
    """The task's actions as tensor ops on the env's device: the fixed random pool order (self-training) or the
    smallest margin among the points not queried yet (active learning, the margin column of the observation)."""

    def __init__(self, kind: str, batch: int, steps: int, seed: int, device: str) -> None:
        self.kind = kind
        self.orders = torch.as_tensor(st.pool_orders(batch, steps, seed), device=device) if kind == "selftrain" \
            else None

    def __call__(self, obs: dict[str, Tensor], t: int) -> Tensor:
        if self.kind == "selftrain":
            return self.orders[:, t]
        score = -obs["candidates"][..., -3]
        return score.masked_fill(obs["action_mask"] == 0, float("-inf")).argmax(1)


def _metric(kind: str) -> str:
    return "val_accuracy" if kind == "selftrain" else "test_accuracy"


def run_scale(kind: str, batch: int, steps: int, seed: int, device: str, sample: int) -> dict[str, Any]:
    """Learner-steps/s with no host reads between steps, memory per learner, and the first ``sample`` learners'
    actions and accuracies (kept on the device until the end)."""
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    env = make_env(kind, batch, steps + 2, device)
    act = Actions(kind, batch, steps + 2, seed, device)
    obs, _ = env.reset(seed=seed)
    for t in range(2):  # warm-up (kernels, caches)
        obs, *_ = env.step(act(obs, t))
    n = min(sample, batch)
    actions, metrics = [], []
    synchronize(device)
    start = time.perf_counter()
    for t in range(2, steps + 2):
        action = act(obs, t)
        obs, _, _, _, info = env.step(action)
        actions.append(action[:n])
        metrics.append(info[_metric(kind)][:n])
    synchronize(device)
    seconds = time.perf_counter() - start
    u = env.unwrapped
    if device.startswith("cuda"):
        memory = (torch.cuda.max_memory_allocated() - base) / batch
        memory_kind = "peak allocated"
    else:
        memory = sum(t.numel() * t.element_size() for t in tensors_of((u.state, u.view))) / batch
        memory_kind = "state + workspace"
    converged = float(info["fit_converged"].double().mean())
    return dict(env=kind, batch=batch, rate=batch * steps / seconds, seconds=seconds, bytes_per_learner=memory,
                memory_kind=memory_kind, converged_share=converged,
                sample_actions=torch.stack(actions).cpu().numpy(), sample_metric=torch.stack(metrics).cpu().numpy())


def reference_decisions(kind: str, sample: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The default (host-checked) CPU engine on the first ``sample`` learners with the same seeds and actions."""
    env = make_env(kind, sample, steps + 2, "cpu", sync_free=False)
    act = Actions(kind, sample, steps + 2, seed, "cpu")
    obs, _ = env.reset(seed=seed)
    actions, metrics = [], []
    for t in range(steps + 2):
        action = act(obs, t)
        obs, _, _, _, info = env.step(action)
        if t >= 2:
            actions.append(action.numpy())
            metrics.append(info[_metric(kind)].numpy())
    return np.stack(actions), np.stack(metrics)


def sklearn_rate(kind: str, learners: int, steps: int, seed: int) -> float:
    """Learner-steps/s of the scikit-learn loop of the throughput benchmarks on this machine's CPU."""
    warnings.simplefilter("ignore")
    idx = np.arange(learners)
    if kind == "selftrain":
        seconds, _ = st.run_sklearn(idx, steps, seed, st.pool_orders(learners, steps, seed))
    else:
        seconds, _ = al.run_sklearn(idx, steps, seed)
    return learners * steps / seconds


def step_time_b1(kind: str, device: str, steps: int, seed: int) -> float:
    """Median seconds of one B = 1 step, synchronized after each."""
    env = make_env(kind, 1, steps + 2, device)
    act = Actions(kind, 1, steps + 2, seed, device)
    obs, _ = env.reset(seed=seed)
    times = []
    for t in range(steps + 2):
        synchronize(device)
        start = time.perf_counter()
        obs, *_ = env.step(act(obs, t))
        synchronize(device)
        if t >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def sync_check(kind: str, device: str, batch: int, seed: int) -> str:
    env = make_env(kind, batch, 8, device)
    act = Actions(kind, batch, 8, seed, device)
    obs, _ = env.reset(seed=seed)
    for t in range(2):
        obs, *_ = env.step(act(obs, t))
    action = act(obs, 2)
    with no_host_sync(device):
        env.step(action)
    return "no host sync"


def tensors_of(obj: Any) -> list[Tensor]:
    """Every tensor in a nest of dataclasses, dicts, lists and tuples, in a fixed order."""
    if isinstance(obj, Tensor):
        return [obj]
    if dataclasses.is_dataclass(obj):
        return [t for f in dataclasses.fields(obj) for t in tensors_of(getattr(obj, f.name))]
    if isinstance(obj, dict):
        return [t for key in sorted(obj) for t in tensors_of(obj[key])]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in tensors_of(item)]
    return []


class GraphedStep:
    """A sync-free env's step captured in a CUDA graph: ``step()`` replays it and copies the new state into the
    captured input buffers, so the next replay advances from it. The actions are a fixed tensor (refilled in place
    by ``actions_for``, itself captured)."""

    def __init__(self, env: Any, actions_for: Callable[[dict[str, Tensor]], Tensor], obs: dict[str, Tensor]) -> None:
        u = env.unwrapped
        self.u = u
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up on a side stream, as torch's CUDA graph notes ask
            for _ in range(3):
                obs, *_ = env.step(actions_for(obs))
        torch.cuda.current_stream().wait_stream(stream)
        self.obs_in = {key: value.clone() for key, value in obs.items()}
        u.state, u.view = _clone(u.state), _clone(u.view)
        u._needs_reset = u._needs_reset.clone()
        self.inputs = (u.state, u.view, u._needs_reset)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            obs_out, *_ = env.step(actions_for(self.obs_in))
        self.outputs = (u.state, u.view, u._needs_reset)
        self.obs_out = obs_out
        u.state, u.view, u._needs_reset = self.inputs
        self.pairs = [(o, i) for o, i in zip(tensors_of(self.outputs), tensors_of(self.inputs), strict=True)
                      if o.data_ptr() != i.data_ptr()]

    def step(self) -> None:
        self.graph.replay()
        for out, buffer in self.pairs:
            buffer.copy_(out)
        for key, value in self.obs_out.items():
            self.obs_in[key].copy_(value)


def _clone(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.clone()
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: _clone(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    if isinstance(obj, dict):
        return {key: _clone(value) for key, value in obj.items()}
    return obj


def graph_check(kind: str, batch: int, steps: int, seed: int) -> dict[str, Any]:
    """Replay time per step, and the parameters after ``steps`` replays against as many eager steps."""
    def learner_actions():
        if kind == "activelearn":
            return lambda obs: Actions(kind, batch, 1, seed, "cuda")(obs, 0)
        orders = torch.as_tensor(st.pool_orders(batch, steps + 8, seed), device="cuda")
        # the step counter from the observation picks the point: no host read, so the graph replays it
        return lambda obs: orders.gather(1, obs["scalars"][:, :1].long()).squeeze(1)

    eager = make_env(kind, batch, steps + 8, "cuda", sync_free="graph")
    obs, _ = eager.reset(seed=seed)
    act = learner_actions()
    for _ in range(3 + steps):
        obs, *_ = eager.step(act(obs))
    graphed = make_env(kind, batch, steps + 8, "cuda", sync_free="graph")
    obs, _ = graphed.reset(seed=seed)
    g = GraphedStep(graphed, learner_actions(), obs)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        g.step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    gap = float((graphed.unwrapped.state.theta - eager.unwrapped.state.theta).abs().max())
    return dict(env=kind, batch=batch, seconds_per_step=seconds, rate=batch / seconds, theta_gap=gap)


def bandit_rate(num_envs: int, steps: int, device: str) -> dict[str, Any]:
    env = gym.make_vec("Reciprocal-Bandit-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                       n_arms=10, max_steps=steps + 8, device=device, autoreset_mode="disabled", sync_free=True)
    env.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    arms = torch.randint(0, 10, (steps + 2, num_envs), generator=gen, device=device)
    for t in range(2):
        env.step(arms[t])
    synchronize(device)
    start = time.perf_counter()
    for t in range(2, steps + 2):
        env.step(arms[t])
    synchronize(device)
    seconds = time.perf_counter() - start
    return dict(num_envs=num_envs, steps_per_second=num_envs * steps / seconds)


def attempt(what: str, failures: dict[str, str], fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # a failed check is reported, the others still run
        failures[what] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        print(f"  {what}: FAILED ({failures[what][:200]})", flush=True)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--env", nargs="+", default=list(ENVS), choices=ENVS)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 1024, 16384, 65536])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=64, help="learners compared with the default CPU engine")
    parser.add_argument("--sklearn-learners", type=int, default=32, help="learners of the scikit-learn loop")
    parser.add_argument("--bandit-envs", type=int, nargs="*", default=[1 << 20])
    parser.add_argument("--graph", type=int, nargs="*", default=[1, 65536],
                        help="batch sizes whose step is captured in a CUDA graph (CUDA only)")
    parser.add_argument("--fit-chunk", type=int, default=None,
                        help="learners per block of a sync-free refit (bounds its memory; default: all at once)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    global FIT_CHUNK
    FIT_CHUNK = args.fit_chunk
    device = args.device
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"
    print(f"sync-free scale: {device} ({name}), torch {torch.__version__}, {args.steps} steps, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    failures: dict[str, str] = {}
    results: dict[str, Any] = {"device": device, "device_name": name, "rows": [], "graph": [], "bandit": []}
    for kind in args.env:
        base = attempt(f"{kind} sklearn", failures, lambda k=kind: sklearn_rate(k, args.sklearn_learners,
                                                                                args.steps, args.seed))
        results[f"{kind}_sklearn_rate"] = base
        print(f"{kind}: scikit-learn loop {base or float('nan'):.0f} learner-steps/s on this CPU", flush=True)
        reference = attempt(f"{kind} reference", failures,
                            lambda k=kind: reference_decisions(k, args.sample, args.steps, args.seed))
        print(f"{'B':>7}{'learner-steps/s':>17}{'x sklearn':>11}{'bytes/learner':>15}{'converged':>11}"
              f"{'decisions':>11}", flush=True)
        for batch in args.batch:
            row = attempt(f"{kind} B={batch}", failures,
                          lambda k=kind, b=batch: run_scale(k, b, args.steps, args.seed, device, args.sample))
            if row is None:
                continue
            same = "n/a"
            if reference is not None:
                n = row["sample_actions"].shape[1]
                same_actions = np.array_equal(row["sample_actions"], reference[0][:, :n])
                same_metric = float(np.abs(row["sample_metric"] - reference[1][:, :n]).max()) <= 1e-9
                same = "identical" if same_actions and same_metric else "DIFFER"
            row["decisions"] = same
            ratio = row["rate"] / base if base else float("nan")
            row["x_sklearn"] = ratio
            print(f"{batch:>7}{row['rate']:>17.0f}{ratio:>11.1f}{row['bytes_per_learner']:>15.0f}"
                  f"{row['converged_share']:>11.3f}{same:>11}", flush=True)
            results["rows"].append({k: v for k, v in row.items() if not k.startswith("sample_")})
        b1 = attempt(f"{kind} B=1 step", failures, lambda k=kind: step_time_b1(k, device, 50, args.seed))
        results[f"{kind}_b1_ms"] = None if b1 is None else b1 * 1e3
        if b1 is not None:
            print(f"{kind}: one B = 1 step {b1 * 1e3:.2f} ms (median of 50)", flush=True)
        check = attempt(f"{kind} sync check", failures, lambda k=kind: sync_check(k, device, 256, args.seed))
        results[f"{kind}_sync_check"] = check
        print(f"{kind}: steady-state step under no_host_sync: {check or 'FAILED'}", flush=True)
        if device.startswith("cuda"):
            for batch in args.graph:
                g = attempt(f"{kind} graph B={batch}", failures,
                            lambda k=kind, b=batch: graph_check(k, b, args.steps, args.seed))
                if g is not None:
                    results["graph"].append(g)
                    print(f"{kind}: CUDA graph B={batch}: {g['seconds_per_step'] * 1e3:.2f} ms/step, "
                          f"{g['rate']:.0f} learner-steps/s, theta vs eager {g['theta_gap']:.1e}", flush=True)
    for num_envs in args.bandit_envs:
        b = attempt(f"bandit {num_envs}", failures, lambda n=num_envs: bandit_rate(n, 50, device))
        if b is not None:
            results["bandit"].append(b)
            print(f"bandit: {num_envs} envs, {b['steps_per_second'] / 1e6:.1f} M steps/s", flush=True)
    if not device.startswith("cuda"):
        import resource

        results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"peak resident memory of this process: {results['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
    results["failures"] = failures
    if failures:
        print(f"{len(failures)} checks failed: {sorted(failures)}", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
