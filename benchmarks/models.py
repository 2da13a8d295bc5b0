"""Train-step speed of our SFNO and AFNO against reference implementations.

* SFNO vs torch-harmonics' example ``SphericalFourierNeuralOperator`` at the same
  configuration (embed_dim 64, 4 layers, scale_factor 3, linear encoder/decoder, no position
  embedding, no residual / big skip, same grid, channels, batch and spectral truncation).
* AFNO vs a straightforward FourCastNet-style AFNO (``ReferenceAFNO`` below, following the
  FourCastNet repository's ``AFNO2D``/``Block``/``AFNONet``) at the same configuration.

A train step is forward + MSE loss + backward + AdamW step. Timings are interleaved
(reference, ours, reference, ...) after warm-up, synchronised on CUDA; the median is reported.

For the SFNO also: our SFNO under ``torch.compile`` (``--compile``), the transform-once
variant (``transform_once``, same width and depth), and the CRPS step of a stochastic SFNO
(4 noise channels, M = 2 members, one rollout step, almost-fair CRPS) with the members as a
repeated batch (what the trainer does) and with :meth:`SFNO.ensemble_forward` (members share
the work before the noise), each against the deterministic step of the same network.
Achieved FLOP/s count the matrix products of forward and backward
(:class:`torch.utils.flop_counter.FlopCounterMode`; FFTs and element-wise work are not
counted) over the machine's peak, cores x fp32 vector lanes x 2 (FMA) x FMA units per core x
clock (from ``/proc/cpuinfo`` and ``lscpu``; stated in the output). Results:
``docs/results/benchmarks/models.json`` (:mod:`forecast.results`).

    python benchmarks/models.py --device cpu --threads 2
    python benchmarks/models.py --device cuda --quick
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torch_harmonics.examples.models import SphericalFourierNeuralOperator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecast.losses import almost_fair_crps  # noqa: E402
from forecast.models import AFNO, SFNO  # noqa: E402
from forecast.results import table, write_results  # noqa: E402
from pipelines.grids import Grid  # noqa: E402

RESULTS = REPO / "docs" / "results" / "benchmarks" / "models.json"

# (grid, channels, batch) of the reference figures in the team notes
SFNO_CASES = [("legendre-gauss:64x128", 3, 4), ("equiangular:181x360", 5, 2)]
AFNO_CASES = [("legendre-gauss:64x128", 3, 4), ("equiangular:180x360", 5, 2)]
EMBED_DIM, NUM_LAYERS, SCALE_FACTOR = 64, 4, 3


# --- reference AFNO (FourCastNet, github.com/NVlabs/FourCastNet networks/afnonet.py) ------------
class ReferenceAFNO2D(nn.Module):
    def __init__(self, hidden_size: int, num_blocks: int = 8, sparsity_threshold: float = 0.01,
                 hard_thresholding_fraction: float = 1.0) -> None:
        super().__init__()
        self.hidden_size, self.num_blocks = hidden_size, num_blocks
        self.block_size = hidden_size // num_blocks
        self.sparsity_threshold, self.fraction = sparsity_threshold, hard_thresholding_fraction
        s = 0.02
        self.w1 = nn.Parameter(s * torch.randn(2, num_blocks, self.block_size, self.block_size))
        self.b1 = nn.Parameter(s * torch.randn(2, num_blocks, self.block_size))
        self.w2 = nn.Parameter(s * torch.randn(2, num_blocks, self.block_size, self.block_size))
        self.b2 = nn.Parameter(s * torch.randn(2, num_blocks, self.block_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = x
        dtype = x.dtype
        x = x.float()
        B, H, W, C = x.shape
        x = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
        x = x.reshape(B, H, W // 2 + 1, self.num_blocks, self.block_size)
        o1_real = torch.zeros([B, H, W // 2 + 1, self.num_blocks, self.block_size], device=x.device)
        o1_imag = torch.zeros_like(o1_real)
        o2_real = torch.zeros(x.shape, device=x.device)
        o2_imag = torch.zeros(x.shape, device=x.device)
        total_modes = H // 2 + 1
        kept = int(total_modes * self.fraction)
        sl = (slice(None), slice(total_modes - kept, total_modes + kept), slice(None, kept))
        o1_real[sl] = F.relu(torch.einsum("...bi,bio->...bo", x[sl].real, self.w1[0])
                             - torch.einsum("...bi,bio->...bo", x[sl].imag, self.w1[1]) + self.b1[0])
        o1_imag[sl] = F.relu(torch.einsum("...bi,bio->...bo", x[sl].imag, self.w1[0])
                             + torch.einsum("...bi,bio->...bo", x[sl].real, self.w1[1]) + self.b1[1])
        o2_real[sl] = (torch.einsum("...bi,bio->...bo", o1_real[sl], self.w2[0])
                       - torch.einsum("...bi,bio->...bo", o1_imag[sl], self.w2[1]) + self.b2[0])
        o2_imag[sl] = (torch.einsum("...bi,bio->...bo", o1_imag[sl], self.w2[0])
                       + torch.einsum("...bi,bio->...bo", o1_real[sl], self.w2[1]) + self.b2[1])
        x = torch.stack([o2_real, o2_imag], dim=-1)
        x = F.softshrink(x, lambd=self.sparsity_threshold)
        x = torch.view_as_complex(x).reshape(B, H, W // 2 + 1, C)
        x = torch.fft.irfft2(x, s=(H, W), dim=(1, 2), norm="ortho")
        return x.type(dtype) + bias


class ReferenceBlock(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float, num_blocks: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.filter = ReferenceAFNO2D(dim, num_blocks)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        x = self.filter(self.norm1(x)) + residual
        residual = x
        return self.mlp(self.norm2(x)) + residual


class ReferenceAFNO(nn.Module):
    def __init__(self, img_size: tuple[int, int], patch: tuple[int, int], in_chans: int, out_chans: int,
                 embed_dim: int, depth: int, mlp_ratio: float, num_blocks: int) -> None:
        super().__init__()
        self.patch, self.out_chans = patch, out_chans
        self.h, self.w = img_size[0] // patch[0], img_size[1] // patch[1]
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, kernel_size=patch, stride=patch)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, self.h * self.w, embed_dim))
        self.blocks = nn.ModuleList(ReferenceBlock(embed_dim, mlp_ratio, num_blocks) for _ in range(depth))
        self.head = nn.Linear(embed_dim, out_chans * patch[0] * patch[1], bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        x = x.reshape(B, self.h, self.w, -1)
        for blk in self.blocks:
            x = blk(x)
        x = self.head(x)
        p1, p2 = self.patch
        x = x.view(B, self.h, self.w, p1, p2, self.out_chans).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(B, self.out_chans, self.h * p1, self.w * p2)


# --- timing ---------------------------------------------------------------------------------------
def make_step(model: nn.Module, call: Callable[[], torch.Tensor], target: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(call(), target)
        loss.backward()
        opt.step()
    return step


def time_steps(steps: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds per step of each callable, interleaved so that drifts affect all alike."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def n_params(model: nn.Module) -> int:
    """Real degrees of freedom (a complex parameter counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def machine_peak(device: torch.device) -> dict[str, Any]:
    """fp32 peak of the CPU: cores x vector lanes x 2 (FMA) x FMA units x clock, with its parts."""
    if device.type != "cpu":
        return {"peak_gflops": None, "formula": "not computed for GPUs"}
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flag_line = re.search(r"^flags\s*:(.*)$", info, re.M)
    flags = set(flag_line.group(1).split()) if flag_line else set()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M)
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        max_mhz = re.search(r"CPU max MHz:\s*([\d.]+)", lscpu)
    except OSError:
        max_mhz = None
    clock = max_mhz or mhz
    ghz = float(clock.group(1)) / 1e3 if clock else float("nan")
    cores = torch.get_num_threads()
    fma_units = 2 if lanes == 16 else 1   # Xeon server cores with AVX-512: two 512-bit FMA ports (assumed)
    peak = cores * lanes * 2 * fma_units * ghz
    return {"peak_gflops": peak, "cores": cores, "fp32_lanes": lanes, "fma_units_per_core": fma_units,
            "clock_ghz": ghz, "formula": f"{cores} cores x {lanes} fp32 lanes x 2 (FMA) x {fma_units} FMA units x "
                                         f"{ghz:.2f} GHz = {peak:.0f} GFLOP/s"}


def step_flops(step: Callable[[], None]) -> int:
    """Matrix-product FLOPs of one call of ``step`` (forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def crps_step(model: SFNO, x: torch.Tensor, y: torch.Tensor, members: int, shared: bool) -> Callable[[], None]:
    """Train step of a stochastic SFNO on the almost-fair CRPS of ``members`` members of one step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    no_forcing = x[:, :0]
    generators = [torch.Generator().manual_seed(i) for i in range(x.shape[0] * members)]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        noise = model.draw_noise(generators)
        if shared:
            out = model.ensemble_forward(x, no_forcing, noise, members)
        else:
            out = model(x.repeat_interleave(members, 0), no_forcing.repeat_interleave(members, 0), noise)
        loss = almost_fair_crps(out.unflatten(0, (-1, members)), y).mean()
        loss.backward()
        opt.step()
    return step


def bench_sfno(spec: str, channels: int, batch: int, device: torch.device, args: argparse.Namespace) -> dict:
    grid = Grid.parse(spec)
    ref = SphericalFourierNeuralOperator(img_size=grid.shape, grid=grid.kind, scale_factor=SCALE_FACTOR,
                                         in_chans=channels, out_chans=channels, embed_dim=EMBED_DIM,
                                         num_layers=NUM_LAYERS).to(device)
    size = dict(embed_dim=EMBED_DIM, num_layers=NUM_LAYERS, scale_factor=SCALE_FACTOR, residual=False,
                big_skip=False, pos_embed=None, encoder_layers=0)
    ours = SFNO(grid, channels, 0, **size).to(device)                                          # type: ignore[arg-type]
    t1 = SFNO(grid, channels, 0, transform_once=True, **size).to(device)                        # type: ignore[arg-type]
    stochastic = SFNO(grid, channels, 0, noise_channels=4, **size).to(device)                   # type: ignore[arg-type]
    stochastic_t1 = SFNO(grid, channels, 0, noise_channels=4, transform_once=True, **size).to(device)  # type: ignore[arg-type]
    x = torch.randn(batch, channels, *grid.shape, device=device)
    y = torch.randn_like(x)
    no_forcing = x[:, :0]
    steps = {"reference": make_step(ref, lambda: ref(x), y),
             "ours": make_step(ours, lambda: ours(x, no_forcing), y)}
    if args.compile:
        compiled = torch.compile(ours)
        steps["ours_compiled"] = make_step(ours, lambda: compiled(x, no_forcing), y)
    steps["t1"] = make_step(t1, lambda: t1(x, no_forcing), y)
    steps["deterministic_stochastic_net"] = make_step(stochastic, lambda: stochastic(x, no_forcing), y)
    steps["crps_m2_repeated"] = crps_step(stochastic, x, y, 2, shared=False)
    steps["crps_m2_shared"] = crps_step(stochastic, x, y, 2, shared=True)
    steps["t1_deterministic_stochastic_net"] = make_step(stochastic_t1, lambda: stochastic_t1(x, no_forcing), y)
    steps["t1_crps_m2_shared"] = crps_step(stochastic_t1, x, y, 2, shared=True)
    t = time_steps(steps, device, args.warmup, args.repeats)
    flops = {name: step_flops(step) for name, step in steps.items() if name != "ours_compiled"}
    flops.setdefault("ours_compiled", flops["ours"])
    params = {"reference": n_params(ref), "ours": n_params(ours), "t1": n_params(t1),
              "stochastic": n_params(stochastic), "stochastic_t1": n_params(stochastic_t1)}
    ratios = {name: t[name] / t["reference"] for name in ("ours", "ours_compiled", "t1") if name in t}
    crps = {"repeated": t["crps_m2_repeated"] / t["deterministic_stochastic_net"],
            "shared": t["crps_m2_shared"] / t["deterministic_stochastic_net"],
            "t1_shared": t["t1_crps_m2_shared"] / t["t1_deterministic_stochastic_net"]}
    print(f"SFNO {spec} C={channels} B={batch}: " + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in t.items()), flush=True)
    print("  train step / torch-harmonics' example: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
          + f"  [params {params}; lmax=mmax={ours.modes}]", flush=True)
    print("  CRPS step (M=2, 1 step) / deterministic step of the same net: "
          + ", ".join(f"{k} {v:.2f}x" for k, v in crps.items()), flush=True)
    print("  achieved GFLOP/s (matrix products): "
          + ", ".join(f"{k} {flops[k] / t[k] / 1e9:.1f}" for k in t), flush=True)
    return {"grid": spec, "channels": channels, "batch": batch, "step_ms": {k: 1e3 * v for k, v in t.items()},
            "ratio_to_reference": ratios, "crps_over_deterministic": crps, "parameters": params,
            "flops_per_step": flops, "gflops_achieved": {k: flops[k] / t[k] / 1e9 for k in t}, "lmax": ours.modes}


def bench_afno(spec: str, channels: int, batch: int, device: torch.device, args: argparse.Namespace) -> None:
    grid = Grid.parse(spec)
    patch, mlp_ratio, num_blocks = (4, 4), 4.0, 8
    ref = ReferenceAFNO(grid.shape, patch, channels, channels, EMBED_DIM, NUM_LAYERS, mlp_ratio, num_blocks).to(device)
    ours = AFNO(grid, channels, 0, embed_dim=EMBED_DIM, num_layers=NUM_LAYERS, patch_size=patch,
                mlp_ratio=mlp_ratio, num_blocks=num_blocks, residual=False).to(device)
    x = torch.randn(batch, channels, *grid.shape, device=device)
    y = torch.randn_like(x)
    no_forcing = x[:, :0]
    steps = {"reference": make_step(ref, lambda: ref(x), y), "ours": make_step(ours, lambda: ours(x, no_forcing), y)}
    report("AFNO", spec, channels, batch, steps, device, args, f"params ref {n_params(ref):,} / ours {n_params(ours):,}")


def report(name: str, spec: str, channels: int, batch: int, steps: dict[str, Callable[[], None]],
           device: torch.device, args: argparse.Namespace, extra: str) -> None:
    t = time_steps(steps, device, args.warmup, args.repeats)
    print(f"{name} {spec} C={channels} B={batch}: reference {1e3 * t['reference']:.1f} ms "
          f"({batch / t['reference']:.1f} samples/s), ours {1e3 * t['ours']:.1f} ms "
          f"({batch / t['ours']:.1f} samples/s), ratio ours/reference {t['ours'] / t['reference']:.3f}  [{extra}]",
          flush=True)


_VARIANTS = {"reference": "torch-harmonics' example SFNO", "ours": "our SFNO", "ours_compiled": "our SFNO, torch.compile",
             "t1": "our SFNO, transform once (T1)", "deterministic_stochastic_net": "stochastic SFNO, one member",
             "crps_m2_repeated": "stochastic SFNO, CRPS M=2, members as a batch",
             "crps_m2_shared": "stochastic SFNO, CRPS M=2, ensemble_forward",
             "t1_deterministic_stochastic_net": "stochastic T1, one member",
             "t1_crps_m2_shared": "stochastic T1, CRPS M=2, ensemble_forward"}


def sfno_tables(result: dict[str, Any], peak: dict[str, Any], device: str, threads: int) -> list[dict[str, Any]]:
    """The docs' tables of one :func:`bench_sfno` result (:func:`forecast.results.table`)."""
    step, ratio = result["step_ms"], result["ratio_to_reference"]
    crps_base = {"crps_m2_repeated": "deterministic_stochastic_net", "crps_m2_shared": "deterministic_stochastic_net",
                 "t1_crps_m2_shared": "t1_deterministic_stochastic_net"}
    rows = []
    for name, label in _VARIANTS.items():
        if name not in step:
            continue
        if name in crps_base:
            over_text = f"{step[name] / step[crps_base[name]]:.2f}x its one-member step"
        elif name == "reference":
            over_text = f"{1.0:.3f}"
        else:
            over_text = f"{ratio[name]:.3f}" if name in ratio else ""
        rows.append([label, step[name], over_text, result["gflops_achieved"][name],
                     result.get("fraction_of_peak", {}).get(name, float("nan"))])
    return [table(f"SFNO train step on {result['grid']}, {result['channels']} channels, batch {result['batch']} "
                  f"({device}, {threads} threads; lmax {result['lmax']})",
                  ["variant", "step (ms)", "/ reference", "GFLOP/s (matmul)", "fraction of peak"], rows,
                  note=f"median of interleaved steps after warm-up; peak {peak['formula']}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="the small size only, few repeats")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile our SFNO")
    parser.add_argument("--models", nargs="+", choices=["sfno", "afno"], default=["sfno", "afno"])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.repeats is None:
        args.repeats = 3 if args.quick else (7 if args.device == "cpu" else 20)
    device = torch.device(args.device)
    torch.manual_seed(0)
    peak = machine_peak(device)
    print(f"machine peak (fp32): {peak['formula']}", flush=True)
    sfno_results = []
    for index in range(1 if args.quick else len(SFNO_CASES)):
        if "sfno" in args.models:
            sfno_results.append(bench_sfno(*SFNO_CASES[index], device, args))
            gflops = sfno_results[-1]["gflops_achieved"]
            if peak["peak_gflops"]:
                sfno_results[-1]["fraction_of_peak"] = {k: v / peak["peak_gflops"] for k, v in gflops.items()}
        if "afno" in args.models:
            bench_afno(*AFNO_CASES[index], device, args)
    if sfno_results:
        figures = {"device": args.device, "threads": torch.get_num_threads(), "compile": args.compile,
                   "load_average": os.getloadavg(), "peak": peak, "sfno": sfno_results,
                   "tables": [t for r in sfno_results for t in sfno_tables(r, peak, args.device, torch.get_num_threads())]}
        print(f"results: {write_results(args.results, 'models', figures)}")


if __name__ == "__main__":
    main()
