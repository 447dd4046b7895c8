"""Active acoustics: an FIR DSP matrix between the microphones and loudspeakers of a room,
trained for a colorless feedback loop; gain before instability before and after.

Extension after De Bortoli, Dal Santo, Prawda, Lokki, Valimaki, Schlecht, "Differentiable
active acoustics: optimizing stability via gradient descent" (DAFx 2024): the paper's system
and loss on this library's modules, on the measured Otala room the paper used and on a
simulated shoebox; no published number is compared (hence "extension").

System. M microphones pick up the room; a DSP matrix D(z) (L x M FIR filters of
``fir_taps`` taps, all learnable, unconstrained) drives L loudspeakers; the room's
loudspeaker-to-microphone transfer matrix H_LM(z) (M x L FIR filters, the RIRs) closes the
loop. The open-loop matrix is F(z) B(z) = H_LM(z) g D(z) (M x M), built as
``flamo.Recursion(FIR(H_LM), Series(FIR(D), Gain(g)))``. A natural source S and an audience
position A add the paths H_SM (M x 1), H_LA (1 x L) and H_SA (1 x 1); what the audience
hears is H_SA + H_LA g D (I - H_LM g D)^-1 H_SM, built as
``Parallel(FIR(H_SA), Series(FIR(H_SM), Recursion(Series(FIR(D), Gain(g)), FIR(H_LM)),
FIR(H_LA)))`` (the same module objects).

Gain before instability (GBI). With the DSP taps scaled to Frobenius norm 1 and g = 1, the
GBI is the largest broadband gain g for which the loop stays stable:
GBI = 1 / max_w rho(H_LM(e^jw) D(e^jw)) (:func:`flamo.reverb.gain_before_instability`, on
the nfft-point grid). By the generalized Nyquist criterion every g below it keeps the loop
stable; the onset of instability itself lies at or above it, at it when the largest
eigenvalue is real and positive at its peak (not checked here for the rooms: their loops
have no pure delay to render them in the time domain; the library's tests check the
onset on loops with a closed form).

Loss (the paper's "MSE on all eigenvalues"): mean over frequencies and eigenvalues of
(|lambda_i(e^jw)| - 1)^2, the eigenvalues of the open-loop matrix at g = 1
(:func:`flamo.reverb.loop_eigenvalues`), on a random subset of ``batch`` of the nfft / 2 + 1
frequencies per step (the subsets are a function of the trial seed and the step, so a
resumed trial sees the same ones; the paper's code cycles through a permutation instead).
Adam, ``lr``, ``steps`` steps, each trial through :class:`flamo.optim.Trainer` with its
checkpoint in the task's work folder (resumable).

Measured per trial, initialized and optimized (taps at Frobenius norm 1): the GBI [dB]; the
colouration of the loop, the spread (std) of 20 log10 |lambda_i| over the frequencies in
``band_hz`` and all eigenvalues; the colouration of what the audience hears, the spread of
20 log10 |H| over ``band_hz`` with the system gain set ``margin_db`` below that system's own
GBI (so both are equally far from instability); the natural path's spread for reference.
The paper's results are on its own transducer sets and time scales; ours differ in: float32
on CPU, a random subset per step, 300 steps instead of its epochs, the RIRs truncated to
``rir_samples``, Otala's microphone levels as distributed (the paper's code corrects two
of them), our choice of source, audience and transducers (below).

Rooms: ``otala`` -- the measured Otala room (data/rirs/otala-2024-05-10, 5 microphones x 13
loudspeakers, MIT, see data/rirs/LICENSE-FLAMO.txt): system microphones mic1..mic{M},
audience mic5, source ``otala_source``, the first L other loudspeakers as the system's;
``shoebox`` -- pyroomacoustics image-source shoebox (``shoebox_dims``, wall absorption and
reflection order from Sabine's formula for ``shoebox_rt60``, capped at
``shoebox_max_order``) with transducer positions drawn once from ``shoebox_seed``. Every
room's paths are scaled by one factor, 1 / ||H_LM||_F (all taps), so the GBI is in units of
that room's level. Full run, sized to the shared 2-core machine: 2 rooms x 2 trials, M = 4,
L = 12, 15000-sample RIRs on a 2^16-point grid, 100 taps, 300 steps of 2000 frequencies
(about 0.2 s of one idle core per step: some 5 min in all).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import flamo
from experiments.tasks import Task
from flamo.optim import Trainer
from flamo.reverb import gain_before_instability, loop_eigenvalues

DESCRIPTION = ("extension (after De Bortoli et al., DAFx 2024): active acoustics, an FIR DSP matrix "
               "between microphones and loudspeakers of the measured Otala room and a shoebox, trained "
               "on the MSE of the loop eigenvalue magnitudes; gain before instability and colouration")

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "rirs" / "otala-2024-05-10"
#: Loudspeaker numbers of the Otala set (there is no speaker4).
OTALA_SPEAKERS = (1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
OTALA_MICS = 5


@dataclass
class Config:
    """Hyperparameters (defaults = full run)."""

    rooms: tuple = ("otala", "shoebox")
    trials: int = 2  # random initial DSP matrices per room
    fs: float = 48000.0  # sample rate [Hz]
    mics: int = 4  # M system microphones (Otala: at most 4, mic5 is the audience)
    loudspeakers: int = 12  # L system loudspeakers (Otala: at most 12, one is the source)
    rir_samples: int = 15000  # RIRs truncated to this length [samples]
    nfft: int = 2 ** 16  # grid of the loop (>= rir_samples + fir_taps, so it resolves the room)
    fir_taps: int = 100  # taps of each DSP filter
    steps: int = 300  # Adam steps
    steps_per_epoch: int = 50  # Trainer epochs (checkpoints) of this many steps
    batch: int = 2000  # frequencies per step
    lr: float = 1e-3
    margin_db: float = 3.0  # audience response evaluated this far below each system's GBI
    band_hz: tuple = (20.0, 20000.0)  # band of the colouration measures
    otala_source: int = 1  # Otala loudspeaker used as the natural source
    shoebox_dims: tuple = (8.0, 6.0, 3.5)  # [m]
    shoebox_rt60: float = 0.6  # [s], Sabine
    shoebox_max_order: int = 25  # cap on the image-source order
    shoebox_seed: int = 7  # transducer positions

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: 2 microphones, 3 loudspeakers, short RIRs, 8 taps, 6 steps, 1 trial."""
        return cls(trials=1, mics=2, loudspeakers=3, rir_samples=1500, nfft=2 ** 12, fir_taps=8,
                   steps=6, steps_per_epoch=3, batch=256, shoebox_dims=(4.0, 3.0, 2.5),
                   shoebox_rt60=0.15, shoebox_max_order=6)


# ---- rooms --------------------------------------------------------------------------------

def _otala_files(cfg) -> dict:
    """{role: [[file, ...], ...]} of the Otala RIRs the configuration uses, and their digest."""
    if cfg.mics > OTALA_MICS - 1:
        raise ValueError(f"active_acoustics: the Otala room has {OTALA_MICS - 1} system microphones "
                         f"(mic{OTALA_MICS} is the audience), got mics={cfg.mics}")
    if cfg.otala_source not in OTALA_SPEAKERS:
        raise ValueError(f"active_acoustics: otala_source must be one of {OTALA_SPEAKERS}, got {cfg.otala_source!r}")
    speakers = [s for s in OTALA_SPEAKERS if s != cfg.otala_source]
    if cfg.loudspeakers > len(speakers):
        raise ValueError(f"active_acoustics: the Otala room has {len(speakers)} loudspeakers besides the "
                         f"source, got loudspeakers={cfg.loudspeakers}")
    speakers = speakers[:cfg.loudspeakers]
    mics = list(range(1, cfg.mics + 1))
    name = "mic{}_speaker{}.wav".format
    files = {"LM": [[name(m, s) for s in speakers] for m in mics],
             "SM": [[name(m, cfg.otala_source)] for m in mics],
             "LA": [[name(OTALA_MICS, s) for s in speakers]],
             "SA": [[name(OTALA_MICS, cfg.otala_source)]]}
    digest = hashlib.sha256()
    for role in sorted(files):
        for f in (f for row in files[role] for f in row):
            digest.update(f.encode())
            digest.update((DATA_DIR / f).read_bytes())
    return {"files": files, "sha256": digest.hexdigest()}


def _fit_length(h, n):
    out = np.zeros(n)
    out[:min(n, len(h))] = h[:n]
    return out


def _otala_paths(p) -> dict:
    import soundfile as sf

    spec = _otala_files(SimpleNamespace(**p))
    if spec["sha256"] != p["otala_sha256"]:
        raise ValueError("active_acoustics: the Otala RIRs of this checkout differ from the client's "
                         f"(SHA-256 {spec['sha256'][:12]}... vs {p['otala_sha256'][:12]}...)")
    paths = {}
    for role, rows in spec["files"].items():
        arrays = []
        for row in rows:
            line = []
            for f in row:
                h, fs = sf.read(DATA_DIR / f, dtype="float64")
                if fs != p["fs"]:
                    raise ValueError(f"active_acoustics: {f} is at {fs} Hz, the configuration at {p['fs']} Hz")
                line.append(_fit_length(h, p["rir_samples"]))
            arrays.append(line)
        paths[role] = np.array(arrays)
    return paths


def _shoebox_paths(p) -> dict:
    import pyroomacoustics as pra

    dims = np.array(p["shoebox_dims"], dtype=float)
    absorption, order = pra.inverse_sabine(p["shoebox_rt60"], dims)
    room = pra.ShoeBox(dims, fs=int(p["fs"]), materials=pra.Material(absorption),
                       max_order=min(int(order), p["shoebox_max_order"]))
    rng = np.random.default_rng(p["shoebox_seed"])
    inside = lambda n: rng.uniform(0.5, dims - 0.5, size=(n, 3))  # noqa: E731  0.5 m from the walls
    m, l = p["mics"], p["loudspeakers"]
    mic_pos, spk_pos = inside(m + 1), inside(l + 1)  # last of each: audience, source
    for s in spk_pos:
        room.add_source(s)
    room.add_microphone_array(mic_pos.T)
    room.compute_rir()
    rir = lambda i, j: _fit_length(np.asarray(room.rir[i][j]), p["rir_samples"])  # noqa: E731
    return {"LM": np.array([[rir(i, j) for j in range(l)] for i in range(m)]),
            "SM": np.array([[rir(i, l)] for i in range(m)]),
            "LA": np.array([[rir(m, j) for j in range(l)]]),
            "SA": np.array([[rir(m, l)]])}


def room_paths(p) -> dict:
    """The room's transfer paths as (out, in, T) float64 arrays, scaled by 1 / ||H_LM||_F."""
    paths = _otala_paths(p) if p["room"] == "otala" else _shoebox_paths(p)
    scale = np.linalg.norm(paths["LM"])
    return {k: v / scale for k, v in paths.items()}


# ---- the system ---------------------------------------------------------------------------

class ActiveAcoustics:
    """The modules of one active-acoustics system and the two systems built from them.

    ``loop``: the microphone loop (I - H_LM g D)^-1 H_LM, whose open-loop matrix
    F B = H_LM g D (M x M) the GBI and the loss read; ``audience``: what the audience hears.
    """

    def __init__(self, paths, dsp_taps, dtype):
        fir = lambda h: flamo.FIR(torch.as_tensor(h, dtype=dtype), learnable=False)  # noqa: E731
        self.room = fir(paths["LM"])
        self.dsp = flamo.FIR(torch.as_tensor(dsp_taps, dtype=dtype))
        self.gain = flamo.Gain(torch.ones(paths["LM"].shape[1], dtype=dtype), learnable=False)
        processor = flamo.Series(self.dsp, self.gain)
        self.loop = flamo.Recursion(self.room, processor)
        self.audience = flamo.Parallel(
            fir(paths["SA"]), flamo.Series(fir(paths["SM"]), flamo.Recursion(processor, self.room), fir(paths["LA"])))

    def set_gain(self, g: float):
        with torch.no_grad():
            self.gain.raw.fill_(g)

    def normalize_dsp(self):
        """Scale the DSP taps to Frobenius norm 1 (the GBI is measured at this norm)."""
        with torch.no_grad():
            self.dsp.raw /= self.dsp.raw.norm()


def _spread_db(values) -> float:
    return float(np.std(20 * np.log10(np.maximum(values, 1e-300))))


def measure(system: ActiveAcoustics, grid, band, margin_db) -> dict:
    """GBI, loop and audience colouration of the system with its taps at Frobenius norm 1."""
    system.normalize_dsp()
    system.set_gain(1.0)
    with torch.no_grad():
        lam = loop_eigenvalues(system.loop, grid).abs().double().cpu().numpy()  # (K, M)
    gbi = gain_before_instability(system.loop, grid)
    system.set_gain(gbi * 10 ** (-margin_db / 20))
    with torch.no_grad():
        h = system.audience.response(grid)[:, 0, 0].abs().double().cpu().numpy()
    system.set_gain(1.0)
    return {"gbi_db": 20 * math.log10(gbi), "eig_spread_db": _spread_db(lam[band]),
            "response_spread_db": _spread_db(h[band]), "max_eig_db": 20 * np.log10(lam.max(-1)),
            "eig_db": 20 * np.log10(lam[band]), "response_db": 20 * np.log10(h)}


# ---- tasks --------------------------------------------------------------------------------

#: Config fields that choose which trials run (not the protocol of one trial).
_SELECTION = ("rooms", "trials")


def tasks(cfg: Config) -> list[Task]:
    """One task per (room, trial); each holds the protocol and, for Otala, the RIRs' digest."""
    for room in cfg.rooms:
        if room not in ("otala", "shoebox"):
            raise ValueError(f"active_acoustics: rooms must be 'otala' or 'shoebox', got {room!r}")
    if cfg.nfft < cfg.rir_samples + cfg.fir_taps:
        raise ValueError(f"active_acoustics: nfft must be >= rir_samples + fir_taps = "
                         f"{cfg.rir_samples + cfg.fir_taps} to resolve the loop, got {cfg.nfft}")
    protocol = {k: v for k, v in asdict(cfg).items() if k not in _SELECTION}
    out = []
    for room in cfg.rooms:
        extra = {"otala_sha256": _otala_files(cfg)["sha256"]} if room == "otala" else {}
        out += [Task(f"{room}/trial{t}", {"room": room, "trial": t, **protocol, **extra})
                for t in range(cfg.trials)]
    return out


def run_task(p: dict, tctx) -> dict:
    """One trial: measure, train the DSP on the eigenvalue MSE, measure again."""
    dtype, device = tctx.dtype, tctx.device
    paths = room_paths(p)
    m, l = paths["LM"].shape[:2]
    taps = torch.randn(l, m, p["fir_taps"], generator=torch.Generator().manual_seed(tctx.seed),
                       dtype=torch.float64)
    system = ActiveAcoustics(paths, taps, dtype)
    grid = flamo.Grid(p["nfft"], fs=p["fs"], dtype=dtype)
    freqs = grid.freqs.double().cpu().numpy()
    band = (freqs >= p["band_hz"][0]) & (freqs <= p["band_hz"][1])
    init = measure(system, grid, band, p["margin_db"])

    seed = tctx.seed

    def eigenvalues_of_step(model, _):
        step = trainer.step
        index = torch.randperm(grid.M, generator=torch.Generator().manual_seed(seed * 7919 + step))[:p["batch"]]
        char = model.characteristic(grid)[index.to(device)]
        eye = torch.eye(char.shape[-1], dtype=char.dtype, device=char.device)
        return torch.linalg.eigvals(eye - char)

    def eigenvalue_mse(lam, _):
        return ((lam.abs() - 1) ** 2).mean()

    folder = Path(tctx.work_dir)
    trainer = Trainer(system.loop, {"eigenvalue_mse": (eigenvalue_mse, 1.0)},
                      data=(torch.zeros(()), torch.zeros(())), forward=eigenvalues_of_step, lr=p["lr"],
                      steps_per_epoch=p["steps_per_epoch"], seed=seed, progress=False, log_dir=folder,
                      checkpoint_dir=folder, device=device)
    trainer.resume()  # from the task's last checkpoint, if a killed run left one
    if trainer.step < p["steps"]:
        trainer.fit(max_steps=p["steps"])
    final = measure(system, grid, band, p["margin_db"])
    log = pd.read_csv(folder / "steps.csv")
    tctx.log(f"GBI {init['gbi_db']:.2f} -> {final['gbi_db']:.2f} dB, eigenvalue spread "
             f"{init['eig_spread_db']:.2f} -> {final['eig_spread_db']:.2f} dB")
    return {"room": p["room"], "trial": p["trial"], "seed": seed, "init": init, "final": final,
            "loss": log["eigenvalue_mse"].to_numpy(), "freqs": freqs,
            "natural_spread_db": _spread_db(np.abs(np.fft.rfft(paths["SA"][0, 0], p["nfft"]))[band])}


# ---- outputs ------------------------------------------------------------------------------

_MEASURES = ("gbi_db", "eig_spread_db", "response_spread_db")


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Tables, figures and headline from every trial."""
    results = list(results.values())
    rows, loss_rows = [], []
    for r in results:
        for stage, label in (("init", "initialized"), ("final", "optimized")):
            rows.append({"room": r["room"], "trial": r["trial"], "seed": r["seed"], "stage": label,
                         **{k: r[stage][k] for k in _MEASURES}, "natural_spread_db": r["natural_spread_db"]})
        loss_rows += [{"room": r["room"], "trial": r["trial"], "step": i + 1, "eigenvalue_mse": float(v)}
                      for i, v in enumerate(r["loss"])]
    trials = pd.DataFrame(rows)
    ctx.write_csv(trials, "trials.csv")
    ctx.write_csv(pd.DataFrame(loss_rows), "loss.csv")

    head, summary_rows = {}, []
    for room in cfg.rooms:
        rs = [r for r in results if r["room"] == room]
        row = {"room": room, "trials": len(rs), "natural_spread_db": float(rs[0]["natural_spread_db"])}
        for k in _MEASURES:
            for stage, label in (("init", "init"), ("final", "optim")):
                row[f"{k.removesuffix('_db')}_{label}_db"] = float(np.mean([r[stage][k] for r in rs]))
        row["gbi_improvement_db"] = float(np.mean([r["final"]["gbi_db"] - r["init"]["gbi_db"] for r in rs]))
        row["gbi_improvement_min_db"] = float(min(r["final"]["gbi_db"] - r["init"]["gbi_db"] for r in rs))
        summary_rows.append(row)
        head.update({f"{room}.{k}": v for k, v in row.items() if k != "room"})
    ctx.write_csv(pd.DataFrame(summary_rows), "summary.csv")
    ctx.headline(**head)
    ctx.save_figure(_eigenvalue_figure(cfg, results), "loop_eigenvalues.png")
    ctx.save_figure(_response_figure(cfg, results), "responses.png")
    ctx.save_figure(_loss_figure(cfg, results), "loss.png")


def _first(results, room):
    return next(r for r in results if r["room"] == room and r["trial"] == 0)


def _eigenvalue_figure(cfg, results):
    """Largest loop eigenvalue magnitude over frequency (trial 0) and the distribution of all
    eigenvalue magnitudes in the band (all trials), initialized vs optimized."""
    fig, axes = plt.subplots(len(cfg.rooms), 2, figsize=(13, 3.6 * len(cfg.rooms)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]})
    for i, room in enumerate(cfg.rooms):
        r = _first(results, room)
        f = np.asarray(r["freqs"])
        sel = f > 0
        ax = axes[i, 0]
        for stage, color, label in (("init", "0.55", "initialized"), ("final", "tab:blue", "optimized")):
            ax.semilogx(f[sel], np.asarray(r[stage]["max_eig_db"])[sel], color=color, lw=0.4,
                        label=f"{label}: GBI {r[stage]['gbi_db']:.1f} dB")
            ax.axhline(-r[stage]["gbi_db"], color=color, ls="--", lw=1)
        ax.set(xlim=(cfg.band_hz[0], cfg.fs / 2), ylabel=f"{room}\nmax |eigenvalue| [dB]",
               xlabel="frequency [Hz]")
        ax.legend(fontsize=8, loc="lower left")
        ax.grid(alpha=0.3, which="both")
        rs = [q for q in results if q["room"] == room]
        data = [np.concatenate([np.ravel(q[stage]["eig_db"]) for q in rs]) for stage in ("init", "final")]
        axes[i, 1].boxplot(data, showfliers=False, patch_artist=True, tick_labels=["initialized", "optimized"],
                           boxprops=dict(facecolor="0.85"), medianprops=dict(color="k"))
        axes[i, 1].scatter([1, 2], [d.max() for d in data], color="tab:red", s=15, zorder=3, label="maximum")
        axes[i, 1].set_ylabel("|eigenvalue| [dB]")
        axes[i, 1].legend(fontsize=8)
        axes[i, 1].grid(alpha=0.3, axis="y")
    axes[0, 0].set_title("Open-loop eigenvalues H_LM D (DSP at Frobenius norm 1, g = 1), trial 0; "
                         "dashed: -GBI")
    axes[0, 1].set_title(f"all eigenvalues, {cfg.band_hz[0]:g}-{cfg.band_hz[1]:g} Hz, {cfg.trials} trials")
    fig.tight_layout()
    return fig


def _response_figure(cfg, results):
    fig, axes = plt.subplots(len(cfg.rooms), 1, figsize=(12, 3.4 * len(cfg.rooms)), squeeze=False)
    for i, room in enumerate(cfg.rooms):
        r = _first(results, room)
        f = np.asarray(r["freqs"])
        sel = f > 0
        ax = axes[i, 0]
        for stage, color, label, offset in (("init", "0.55", "initialized", 0.0),
                                            ("final", "tab:blue", "optimized", -30.0)):
            ax.semilogx(f[sel], np.asarray(r[stage]["response_db"])[sel] + offset, color=color, lw=0.4,
                        label=f"{label} ({offset:+g} dB): spread {r[stage]['response_spread_db']:.2f} dB")
        ax.set(xlim=(cfg.band_hz[0], cfg.fs / 2), xlabel="frequency [Hz]", ylabel=f"{room}\n|H| [dB]")
        ax.legend(fontsize=8, loc="lower left")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_title(f"Source to audience with the system {cfg.margin_db:g} dB below its GBI, trial 0")
    fig.tight_layout()
    return fig


def _loss_figure(cfg, results):
    fig, ax = plt.subplots(figsize=(8, 4))
    for room, color in zip(cfg.rooms, ("tab:blue", "tab:orange")):
        for r in (q for q in results if q["room"] == room):
            ax.plot(np.arange(1, len(r["loss"]) + 1), r["loss"], color=color, lw=0.8,
                    label=room if r["trial"] == 0 else None)
    ax.set(xlabel="step", ylabel="MSE of |eigenvalue| vs 1", yscale="log",
           title="Training loss per step, every trial")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
