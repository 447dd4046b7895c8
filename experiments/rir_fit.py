"""Fit an FDN with frequency-dependent attenuation and tone correction to room impulse responses.

Targets, one task each (:mod:`experiments.tasks`): (a) shoebox rooms simulated by the image
source method (pyroomacoustics ``ShoeBox``, frequency-independent wall absorption plus air
absorption): the fixed room at ``absorptions`` and ``random_rooms`` rooms with random
dimensions, absorption, source and microphone drawn from ``seed``, each with the image order
at which a reflection is 60 dB down (at most ``max_order_cap``); (b) every measured RIR in
``data/rirs/`` (``measured``: the full Otala set of 5 microphones x 13 loudspeakers and one
Arni room, from the FLAMO repository's example data; MIT license in
``data/rirs/LICENSE-FLAMO.txt``; files with the same content counted once), resampled to
``fs``. Every target starts at its onset (:func:`flamo.optim.datasets.onset_index`) and ends
where its energy envelope reaches the noise floor (``_noise_onset``) or after ``max_seconds``.

Model (:func:`flamo.reverb.build_fdn`): N co-prime delay lines
(:func:`flamo.reverb.coprime_delays`), a random orthogonal feedback matrix, per-line octave
GEQ attenuation from one T60 per band (:class:`flamo.GEQAttenuation`: loop gain < 1 for any
parameter value), an octave graphic EQ after the output as tone correction
(:class:`flamo.GEQ`) and a direct path. Initial values: the broadband T60 of the target in
every band, a flat tone filter, direct gain = the target's first sample, energy matched to
the target (:func:`flamo.reverb.normalize_energy`). Everything is learned with Adam (a larger
learning rate for the EQ gains in dB) through :class:`flamo.optim.Trainer` on the impulse
response by frequency sampling (alias_decay_db from :func:`flamo.recommend_alias_decay_db`)
over the target's length: EDC per octave band in dB (:class:`flamo.optim.EDCLoss`, weight
``edc_weight``) + multi-resolution STFT (:class:`flamo.optim.MultiResolutionSTFTLoss`).

The fit optimizes the EDC and STFT losses above, not the T60: the per-band T60 is measured
afterwards and can get worse in bands where matching the EDC over its whole length (down to
the noise floor or the window's end) asks for another slope than the -5 .. -35 dB line fit.

Reported per target, before (initial values) and after the fit: per-band T60 of target and
model, measured twice by Schroeder integration on the band-filtered IRs
(:func:`flamo.optim.octave_filterbank`): :func:`flamo.optim.t60_from_edc` (line fit from -5
to -35 dB) and ``pyroomacoustics.experimental.measure_rt60`` (decay_db = 30); the relative
T60 error per band; the mean absolute EDC difference per band in dB over the part where the
target EDC is above ``edc_floor_db`` (the fit time is in the headline and, per task, in
``meta.json``: the tidy CSVs hold no timings, so that they do not depend on where a task
ran). ``outcome.csv`` and the headline give
each target's outcome (mean |T60 error| and EDC error before and after, and the bands whose
|T60 error| grew), not only the means over targets; ``distributions.png`` shows the spread of
the per-band T60 and EDC errors over the dataset, simulated and measured apart. For the
``featured`` targets (the fixed shoeboxes and ``featured_measured``) the fitted systems are
saved as JSON presets (:func:`flamo.save_preset`), the target and fitted IRs as 16-bit WAV
files (``wav_seconds`` long) so they can be compared by ear, and their T60, EDC and training
curves are drawn and written.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.signal
import soundfile as sf
import torch

import flamo
from flamo.optim import EDCLoss, MultiResolutionSTFTLoss, Trainer, octave_filterbank, schroeder_edc
from flamo.optim import noise_floor_cut, t60_from_edc
from flamo.optim.datasets import onset_index
from flamo.reverb import build_fdn, coprime_delays, normalize_energy
from experiments.tasks import Task

DESCRIPTION = ("extension: fit an FDN (GEQ attenuation + tone EQ) to simulated and measured RIRs by "
               "EDC + STFT loss (not by T60): per-target EDC and per-band T60 errors before/after")

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "rirs"


@dataclass
class Config:
    """Hyperparameters (defaults = full run)."""

    fs: int = 16000  # sample rate of every target and model [Hz]
    centres: tuple = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)  # octave bands [Hz]
    absorptions: tuple = (0.15, 0.3, 0.5)  # shoebox wall energy absorption
    max_orders: tuple = (60, 30, 18)  # image-source order per absorption
    room_dim: tuple = (7.0, 5.0, 3.2)  # [m]
    source: tuple = (2.1, 3.3, 1.6)  # [m]
    mic: tuple = (5.2, 1.7, 1.4)  # [m]
    random_rooms: int = 200  # shoeboxes with random dimensions, absorption, source and mic
    room_dims_range: tuple = ((3.0, 12.0), (3.0, 10.0), (2.4, 5.0))  # [m], uniform per axis
    absorption_range: tuple = (0.15, 0.6)  # wall energy absorption, uniform
    max_order_cap: int = 80  # image-source order at most
    wall_margin: float = 0.5  # source and mic at least this far from every wall [m]
    min_distance: float = 1.0  # source-mic distance at least [m]
    measured: tuple = ("*.wav", "otala-2024-05-10/*.wav")  # globs in data/rirs/, deduplicated
    featured_measured: tuple = ("otala_mic1_speaker1.wav", "arni_35_3541_4_2.wav")
    max_seconds: float = 1.0  # longest target used [s]
    n_lines: int = 8
    delay_range: tuple = (300, 900)  # [samples] at fs
    nfft: int = 2**14
    steps: int = 100
    lr: float = 0.01  # attenuation, matrix, gains
    eq_lr: float = 0.1  # tone GEQ command gains (dB)
    edc_weight: float = 0.02  # EDC loss is in dB^2
    stft_sizes: tuple = (256, 512, 1024)
    edc_floor_db: float = -40.0  # EDC error counted where the target EDC is above this [dB]
    wav_seconds: float = 1.0
    seed: int = 0

    @classmethod
    def quick(cls) -> "Config":
        return cls(absorptions=(0.3,), max_orders=(20,), random_rooms=2, max_order_cap=12,
                   measured=("arni_35_3541_4_2.wav",), featured_measured=("arni_35_3541_4_2.wav",),
                   nfft=2**13, steps=8, max_seconds=0.5, wav_seconds=0.5)

    def fit_settings(self) -> dict:
        """The settings every target's fit reads (a task's params hold them)."""
        keys = ("fs", "centres", "max_seconds", "n_lines", "delay_range", "nfft", "steps", "lr",
                "eq_lr", "edc_weight", "stft_sizes", "edc_floor_db", "wav_seconds", "seed")
        return {k: getattr(self, k) for k in keys}


# -- targets -----------------------------------------------------------------------------

def _order_for(absorption, cap):
    """Image-source order after which a reflection is 60 dB down: (1 - a)^k <= 1e-6."""
    return int(min(cap, math.ceil(math.log(1e-6) / math.log(1.0 - absorption))))


def _random_rooms(cfg):
    """``cfg.random_rooms`` shoeboxes drawn from ``cfg.seed``: dimensions, absorption, source
    and microphone (``wall_margin`` from the walls, ``min_distance`` apart); mm precision."""
    rng = np.random.default_rng([cfg.seed, 2024])
    rooms = []
    while len(rooms) < cfg.random_rooms:
        dims = [float(rng.uniform(lo, hi)) for lo, hi in cfg.room_dims_range]
        a = float(rng.uniform(*cfg.absorption_range))
        points = [[float(rng.uniform(cfg.wall_margin, d - cfg.wall_margin)) for d in dims] for _ in range(2)]
        if np.linalg.norm(np.subtract(*points)) < cfg.min_distance:
            continue
        rooms.append({"kind": "simulated", "dims": [round(d, 3) for d in dims], "absorption": round(a, 3),
                      "max_order": _order_for(round(a, 3), cfg.max_order_cap),
                      "source": [round(x, 3) for x in points[0]], "mic": [round(x, 3) for x in points[1]]})
    return rooms


def _measured_files(cfg):
    """{relative path: SHA-256} of the measured RIRs, files with the same content once."""
    out, seen = {}, set()
    for pattern in cfg.measured:
        for path in sorted(DATA_DIR.glob(pattern)):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                out[path.relative_to(DATA_DIR).as_posix()] = digest
    return out


def _measured_name(rel):
    """``otala-2024-05-10/mic1_speaker1.wav`` -> ``otala_mic1_speaker1``; top level: the stem."""
    parts = Path(rel).parts
    return Path(rel).stem if len(parts) == 1 else f"{parts[0].split('-')[0]}_{Path(rel).stem}"


def tasks(cfg: Config) -> list[Task]:
    """One task per target: the fixed and the random shoeboxes, then the measured RIRs."""
    fit = cfg.fit_settings()
    out = []
    for a, order in zip(cfg.absorptions, cfg.max_orders):
        room = {"kind": "simulated", "dims": list(cfg.room_dim), "absorption": a, "max_order": order,
                "source": list(cfg.source), "mic": list(cfg.mic)}
        out.append(Task(f"shoebox_a{a:g}", {"target": room, "fit": fit, "featured": True}))
    for i, room in enumerate(_random_rooms(cfg)):
        out.append(Task(f"room{i:03d}_a{room['absorption']:.2f}", {"target": room, "fit": fit, "featured": False}))
    files = _measured_files(cfg)
    missing = [f for f in cfg.featured_measured if f not in files]
    if missing:
        raise ValueError(f"featured_measured names {missing}, which are not among the measured RIRs "
                         f"{sorted(files)} (data/rirs/, globs {cfg.measured})")
    for rel, digest in files.items():
        out.append(Task(_measured_name(rel), {"target": {"kind": "measured", "file": rel, "sha256": digest},
                                              "fit": fit, "featured": rel in cfg.featured_measured}))
    return out


def _shoebox(room, fs):
    import pyroomacoustics as pra

    sim = pra.ShoeBox(list(room["dims"]), fs=fs, materials=pra.Material(float(room["absorption"])),
                      max_order=int(room["max_order"]), air_absorption=True)
    sim.add_source(list(room["source"]))
    sim.add_microphone(list(room["mic"]))
    sim.compute_rir()
    return np.asarray(sim.rir[0][0], dtype=np.float64)


def _measured(target, fs):
    path = DATA_DIR / target["file"]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != target["sha256"]:
        raise ValueError(f"{path} has other content than the task was made for (SHA-256 "
                         f"{target['sha256'][:12]}...): this checkout's data differs from the client's")
    h, rate = sf.read(path, dtype="float64", always_2d=True)
    g = math.gcd(int(rate), int(fs))
    return scipy.signal.resample_poly(h[:, 0], fs // g, int(rate) // g)


def _target_ir(target, cfg):
    """The target IR, from its onset to the noise floor or ``max_seconds``, peak 1."""
    h = _shoebox(target, cfg.fs) if target["kind"] == "simulated" else _measured(target, cfg.fs)
    h = h[onset_index(h):]
    h = h[:min(h.size, int(cfg.max_seconds * cfg.fs), cfg.nfft, _noise_onset(h, cfg.fs))]
    return h / np.abs(h).max()


def _noise_onset(h, fs):
    """First sample of a target's noise: where its 10 ms window energy comes within 3 dB of
    the noise floor (:func:`flamo.optim.noise_floor_cut`, floor = the last 10 % of the IR).

    A measured RIR's EDC flattens once the noise dominates; fitting that plateau would ask the
    FDN for a far too long decay, so the target is cut there. Returns h.size when the peak
    stands less than 20 dB above the floor (no decay above it) or the IR ends in zeros (no
    floor: a noise-free simulated IR).
    """
    if not np.any(h[-max(1, h.size // 10):]):
        return h.size
    cut, dynamic_range = noise_floor_cut(torch.as_tensor(h), fs, window_s=0.01, margin_db=3.0)
    return h.size if dynamic_range.item() < 20.0 else int(cut)


# -- measurements ------------------------------------------------------------------------

def _band_edcs(h, cfg):
    """(T, B) per-band EDCs in dB and band signals (time first, bands as channels), float64."""
    bands = octave_filterbank(torch.as_tensor(h, dtype=torch.float64), cfg.fs, cfg.centres)
    return schroeder_edc(bands, db=True), bands


def _decay_metrics(h, target_edc, cfg):
    """Per-band (B, T) EDCs in dB (numpy), T60 from the EDC and from pyroomacoustics (B,),
    and the mean EDC error (B,) against ``target_edc`` (B, T) where given."""
    import pyroomacoustics as pra

    edc_t, bands_t = _band_edcs(h, cfg)
    t60_edc = t60_from_edc(edc_t, cfg.fs).numpy()
    edc, bands = edc_t.T.numpy(), bands_t.T.numpy()  # (B, T) rows, one per band
    t60_pra = []
    for band in bands:
        try:
            t60_pra.append(float(pra.experimental.measure_rt60(band, cfg.fs, decay_db=30)))
        except Exception:  # the band never decays by 35 dB within the window
            t60_pra.append(float("nan"))
    edc_err = None
    if target_edc is not None:
        mask = target_edc >= cfg.edc_floor_db
        edc_err = np.array([np.abs(e[m] - t[m]).mean() for e, t, m in zip(edc, target_edc, mask)])
    return edc, t60_edc, np.array(t60_pra), edc_err


# -- model -------------------------------------------------------------------------------

def _model(cfg, h, t60_init, dtype, device):
    delays = coprime_delays(cfg.n_lines, *cfg.delay_range, seed=cfg.seed)
    bands = len(cfg.centres)
    system = build_fdn(
        delays=delays, seed=cfg.seed, direct_gain=float(h[0]),
        attenuation=lambda c: flamo.GEQAttenuation(c.delays, [t60_init] * bands,
                                                   centres=list(cfg.centres)),
        tone=lambda c: flamo.GEQ([0.0] * bands, centres=list(cfg.centres)),
        dtype=dtype)
    return system.to(device), delays


def _fit_one(cfg, name, h, ctx):
    dtype, device = ctx.dtype, ctx.device
    length = h.size
    target_edc, t60_t_edc, t60_t_pra, _ = _decay_metrics(h, None, cfg)
    broadband = float(t60_from_edc(schroeder_edc(torch.as_tensor(h), db=True), cfg.fs))
    t60_init = float(np.clip(broadband, 0.05, 20.0))
    system, delays = _model(cfg, h, t60_init, dtype, device)
    alias_db = flamo.recommend_alias_decay_db(cfg.nfft, max(np.nanmax(t60_t_edc), t60_init) * 1.5,
                                              cfg.fs, dtype)
    grid = flamo.Grid(cfg.nfft, fs=cfg.fs, alias_decay_db=alias_db, dtype=dtype, device=device)
    reverb = h[1:]
    normalize_energy(system, grid, float(np.sum(reverb**2)))
    target = torch.as_tensor(h, dtype=dtype, device=device)

    def forward(model, _):
        return model.impulse_response(grid)[:length, 0, 0]

    def ir():
        with torch.no_grad():
            return forward(system, None).double().cpu().numpy()

    criteria = {"edc": (EDCLoss(fs=cfg.fs, centers=list(cfg.centres)), cfg.edc_weight),
                "mrstft": (MultiResolutionSTFTLoss(cfg.stft_sizes), 1.0)}
    tone = [p for n, p in system.named_parameters() if "tone" in n]
    rest = [p for n, p in system.named_parameters() if "tone" not in n and p.requires_grad]
    optimizer = torch.optim.Adam([{"params": rest, "lr": cfg.lr}, {"params": tone, "lr": cfg.eq_lr}])
    h_init = ir()
    trainer = Trainer(system, criteria, data=(torch.zeros(()), target), forward=forward,
                      optimizer=optimizer, steps_per_epoch=max(1, cfg.steps), seed=cfg.seed,
                      progress=False)
    start = time.perf_counter()
    trainer.fit(max_steps=cfg.steps)
    fit_s = time.perf_counter() - start
    h_fit = ir()
    rows, curves = [], {"target": target_edc}
    for stage, hh in (("init", h_init), ("fit", h_fit)):
        edc, t60_edc, t60_pra, edc_err = _decay_metrics(hh, target_edc, cfg)
        curves[stage] = edc
        for b, fc in enumerate(cfg.centres):
            rows.append({"target": name, "stage": stage, "band_hz": fc,
                         "t60_target_edc_s": t60_t_edc[b], "t60_model_edc_s": t60_edc[b],
                         "t60_err_edc_pct": 100 * (t60_edc[b] - t60_t_edc[b]) / t60_t_edc[b],
                         "t60_target_pra_s": t60_t_pra[b], "t60_model_pra_s": t60_pra[b],
                         "t60_err_pra_pct": 100 * (t60_pra[b] - t60_t_pra[b]) / t60_t_pra[b],
                         "edc_err_db": edc_err[b], "steps": cfg.steps})
    history = pd.DataFrame(trainer.history).assign(target=name)
    return system, h_fit, rows, curves, history, fit_s, delays


def run_task(params: dict, tctx) -> dict:
    """Fit one target; its per-band metrics, and for a featured target what the outputs show."""
    cfg = SimpleNamespace(**params["fit"])
    kind = params["target"]["kind"]
    h = _target_ir(params["target"], cfg)
    system, h_fit, rows, curves, history, fit_s, delays = _fit_one(cfg, tctx.key, h, tctx)
    with tempfile.TemporaryDirectory() as tmp:  # the preset as save_preset writes it
        path = flamo.save_preset(system, Path(tmp) / "preset.json")
        preset = path.read_text(encoding="utf-8")
        reloaded = flamo.load_preset(path)
    with torch.no_grad():
        grid = flamo.Grid(cfg.nfft, fs=cfg.fs, alias_decay_db=0, dtype=tctx.dtype)
        a, b = reloaded.to(tctx.device).response(grid), system.response(grid)
        preset_err = float((a - b).abs().max() / b.abs().max())
    out = {"rows": [{**r, "kind": kind} for r in rows],
           "overview": {"target": tctx.key, "kind": kind, "seconds": h.size / cfg.fs, "fit_s": fit_s,
                        "delays": " ".join(map(str, delays)), "preset_rel_err": preset_err}}
    if params["featured"]:
        n = min(h.size, int(cfg.wav_seconds * cfg.fs))
        out.update(preset=preset, wav_target=h[:n], wav_fdn=h_fit[:n], curves=curves,
                   history=history.to_dict("records"))
    tctx.log(f"fit {fit_s:.1f} s")
    return out


def _describe(task_params):
    """One row of targets.csv: where the target comes from."""
    t = task_params["target"]
    if t["kind"] == "measured":
        return {"file": t["file"], "sha256": t["sha256"]}
    return {"dims_m": " ".join(f"{d:g}" for d in t["dims"]), "absorption": t["absorption"],
            "max_order": t["max_order"], "source_m": " ".join(f"{x:g}" for x in t["source"]),
            "mic_m": " ".join(f"{x:g}" for x in t["mic"])}


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Per-band metrics and distributions over every target; presets, WAVs and curves of the
    featured ones; headline."""
    params = {t.key: t.params for t in tasks(cfg)}
    rows, overview, curves, histories, featured = [], [], {}, [], []
    for name, r in results.items():
        rows += r["rows"]
        overview.append(r["overview"])
        if "preset" not in r:
            continue
        featured.append(name)
        curves[name] = r["curves"]
        histories.append(pd.DataFrame(r["history"]).assign(target=name))
        ctx.write_text(r["preset"], f"preset_{name}.json")
        peak = max(np.abs(r["wav_target"]).max(), np.abs(r["wav_fdn"]).max())
        for label in ("target", "fdn"):
            path = ctx.path(f"{name}_{label}.wav")
            sf.write(path, (0.9 * r[f"wav_{label}"] / peak).astype(np.float32), cfg.fs, subtype="PCM_16")
            ctx.record(path)
    described = pd.DataFrame([{"target": k, "kind": p["target"]["kind"], "featured": p["featured"],
                               **_describe(p)} for k, p in params.items()])
    if "max_order" in described:  # an integer column, blank for the measured targets
        described["max_order"] = described["max_order"].astype("Int64")
    ctx.write_csv(described, "targets.csv")
    bands = pd.DataFrame(rows)
    ctx.write_csv(bands, "per_band.csv")
    ctx.write_csv(pd.concat(histories, ignore_index=True), "training.csv")
    agg = bands.assign(abs_t60_err_edc_pct=bands.t60_err_edc_pct.abs(),
                       abs_t60_err_pra_pct=bands.t60_err_pra_pct.abs())
    summary = (agg.groupby(["target", "kind", "stage"], sort=False)
               [["abs_t60_err_edc_pct", "abs_t60_err_pra_pct", "edc_err_db"]].mean()
               .reset_index())
    summary = summary.merge(pd.DataFrame(overview)[["target", "seconds", "delays", "preset_rel_err"]],
                            on="target")
    ctx.write_csv(summary, "summary.csv")
    outcome = _outcome(bands)
    ctx.write_csv(outcome, "outcome.csv")
    shown = outcome[outcome.target.isin(featured)]
    ctx.save_figure(_t60_figure(cfg, bands[bands.target.isin(featured)], shown), "t60_per_band.png")
    ctx.save_figure(_edc_figure(cfg, curves), "edc.png")
    ctx.save_figure(_distribution_figure(cfg, bands, outcome), "distributions.png")
    fit = summary[summary.stage == "fit"]
    init = summary[summary.stage == "init"]
    per_target = {}
    for r in shown.itertuples():
        per_target.update({f"{r.target}_edc_err_db_init": r.edc_err_db_init,
                           f"{r.target}_edc_err_db_fit": r.edc_err_db_fit,
                           f"{r.target}_t60_err_pct_init": r.t60_err_pct_init,
                           f"{r.target}_t60_err_pct_fit": r.t60_err_pct_fit,
                           f"{r.target}_t60_bands_worse": r.t60_bands_worse})
    per_kind = {}
    for kind, sel in outcome.groupby("kind"):
        per_kind.update({f"{kind}_targets": len(sel),
                         f"{kind}_edc_err_db_median_init": float(sel.edc_err_db_init.median()),
                         f"{kind}_edc_err_db_median_fit": float(sel.edc_err_db_fit.median()),
                         f"{kind}_t60_err_pct_median_init": float(sel.t60_err_pct_init.median()),
                         f"{kind}_t60_err_pct_median_fit": float(sel.t60_err_pct_fit.median()),
                         f"{kind}_share_edc_better": float((sel.edc_err_db_fit < sel.edc_err_db_init).mean())})
    ctx.headline(t60_err_edc_pct_fit=float(fit.abs_t60_err_edc_pct.mean()),
                 t60_err_edc_pct_init=float(init.abs_t60_err_edc_pct.mean()),
                 t60_err_pra_pct_fit=float(fit.abs_t60_err_pra_pct.mean()),
                 edc_err_db_fit=float(fit.edc_err_db.mean()),
                 edc_err_db_init=float(init.edc_err_db.mean()),
                 targets_edc_worse=int((outcome.edc_err_db_fit > outcome.edc_err_db_init).sum()),
                 targets_t60_worse=int((outcome.t60_err_pct_fit > outcome.t60_err_pct_init).sum()),
                 fit_s_mean=float(np.mean([o["fit_s"] for o in overview])), targets=len(outcome),
                 steps=cfg.steps,
                 **per_kind, **per_target)


def _outcome(bands):
    """One row per target: mean |T60 error| (Schroeder line fit, %) and mean EDC error (dB)
    before and after the fit, and the bands whose |T60 error| grew."""
    rows = []
    for name, sel in bands.groupby("target", sort=False):
        init = sel[sel.stage == "init"].set_index("band_hz")
        fit = sel[sel.stage == "fit"].set_index("band_hz")
        worse = fit.t60_err_edc_pct.abs() > init.t60_err_edc_pct.abs()
        rows.append({"target": name, "kind": sel.kind.iloc[0],
                     "edc_err_db_init": float(init.edc_err_db.mean()),
                     "edc_err_db_fit": float(fit.edc_err_db.mean()),
                     "t60_err_pct_init": float(init.t60_err_edc_pct.abs().mean()),
                     "t60_err_pct_fit": float(fit.t60_err_edc_pct.abs().mean()),
                     "t60_bands_worse": int(worse.sum()), "bands": int(worse.size),
                     "t60_bands_worse_hz": " ".join(f"{b:g}" for b in worse.index[worse])})
    return pd.DataFrame(rows)


def _grid_axes(count, width=4.2, height=3.2):
    cols = min(3, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def _t60_figure(cfg, bands, outcome):
    """Per target (one column): T60 per band (top) and the signed T60 error of the initial
    and fitted model (bottom), bands whose |error| grew marked in red."""
    names = list(outcome.target)
    fig, axes = plt.subplots(2, len(names), figsize=(max(4.0 * len(names), 7.0), 7.5),
                             squeeze=False, sharex=True)
    centres = list(cfg.centres)
    x = np.log2(np.asarray(centres))  # octave bands equally spaced
    for j, r in enumerate(outcome.itertuples()):
        top, bottom = axes[0, j], axes[1, j]
        sel = bands[bands.target == r.target]
        init, fit = sel[sel.stage == "init"], sel[sel.stage == "fit"]
        top.plot(x, fit.t60_target_edc_s, "k-o", label="target")
        top.plot(x, init.t60_model_edc_s, "--", color="tab:gray", marker="s", label="FDN init")
        top.plot(x, fit.t60_model_edc_s, "-", color="tab:blue", marker="^", label="FDN fit")
        top.plot(x, fit.t60_model_pra_s, ":", color="tab:orange", marker="x",
                 label="FDN fit (pyroomacoustics)")
        verdict = "worse" if r.t60_err_pct_fit > r.t60_err_pct_init else "better"
        top.set_title(f"{r.target}\nEDC error {r.edc_err_db_init:.1f} -> {r.edc_err_db_fit:.1f} dB\n"
                      f"|T60 error| {r.t60_err_pct_init:.1f} -> {r.t60_err_pct_fit:.1f} % ({verdict}; "
                      f"{r.t60_bands_worse}/{r.bands} bands worse)", fontsize=9,
                      color="tab:red" if verdict == "worse" else "k")
        top.set_ylabel("T60 (s)")
        w = 0.35
        bottom.bar(x - w / 2, init.t60_err_edc_pct, w, color="tab:gray", label="FDN init")
        bottom.bar(x + w / 2, fit.t60_err_edc_pct, w, color="tab:blue", label="FDN fit")
        worse = fit.t60_err_edc_pct.abs().to_numpy() > init.t60_err_edc_pct.abs().to_numpy()
        for xi, yi in zip(x[worse], fit.t60_err_edc_pct.to_numpy()[worse]):
            bottom.bar(xi + w / 2, yi, w, color="none", edgecolor="tab:red", lw=2)
        bottom.axhline(0, color="k", lw=0.8)
        bottom.set_ylabel("T60 error (model - target) / target (%)")
        bottom.set_xlabel("octave band (Hz)")
        bottom.set_xticks(x, [f"{c:g}" for c in centres])
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    handles.append(plt.Rectangle((0, 0), 1, 1, fc="none", ec="tab:red", lw=2))
    labels.append("|error| grew")
    axes[1, 0].legend(handles, labels, fontsize=8)
    fig.suptitle(f"The fit minimizes the per-band EDC ({cfg.steps} Adam steps on EDC + STFT loss), "
                 f"not the T60;\nT60 measured after it (Schroeder, -5..-35 dB line fit)", fontsize=11)
    fig.tight_layout()
    return fig


def _edc_figure(cfg, curves):
    fig, axes = _grid_axes(len(curves))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(cfg.centres)))
    for ax, (name, c) in zip(axes, curves.items()):
        t = np.arange(c["target"].shape[-1]) / cfg.fs
        for b, fc in enumerate(cfg.centres):
            ax.plot(t, c["target"][b], color=colors[b], lw=1.2, label=f"{fc:g} Hz")
            ax.plot(t, c["fit"][b], color=colors[b], lw=1.0, ls="--")
        ax.set_ylim(-70, 3)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("EDC (dB)")
        ax.set_title(f"{name} (solid target, dashed fit)", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _distribution_figure(cfg, bands, outcome):
    """Spread over the dataset, simulated and measured apart: the signed per-band T60 error
    before and after the fit (top), the per-band EDC error (middle), and each target's mean
    EDC error after against before (bottom)."""
    kinds = [k for k in ("simulated", "measured") if (bands.kind == k).any()]
    fig, axes = plt.subplots(3, len(kinds), figsize=(7.0 * len(kinds), 11.0), squeeze=False)
    centres = list(cfg.centres)
    pos = np.arange(len(centres))
    for j, kind in enumerate(kinds):
        sel = bands[bands.kind == kind]
        count = sel.target.nunique()
        for ax, column, label in ((axes[0, j], "t60_err_edc_pct", "T60 error (model - target) / target (%)"),
                                  (axes[1, j], "edc_err_db", "mean |EDC error| (dB)")):
            for offset, stage, color in ((-0.18, "init", "tab:gray"), (0.18, "fit", "tab:blue")):
                data = [sel[(sel.stage == stage) & (sel.band_hz == c)][column].dropna().to_numpy()
                        for c in centres]
                box = ax.boxplot(data, positions=pos + offset, widths=0.32, patch_artist=True,
                                 showfliers=True, flierprops={"markersize": 2})
                for patch in box["boxes"]:
                    patch.set_facecolor(color)
                ax.plot([], [], "s", color=color, label=f"FDN {stage}")
            ax.set_xticks(pos, [f"{c:g}" for c in centres])
            ax.set_xlabel("octave band (Hz)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        axes[0, j].axhline(0, color="k", lw=0.8)
        axes[0, j].set_title(f"{kind} RIRs (n = {count}): per-band T60 error", fontsize=10)
        axes[1, j].set_title(f"{kind} RIRs: per-band EDC error (target EDC above {cfg.edc_floor_db:g} dB)",
                             fontsize=10)
        o = outcome[outcome.kind == kind]
        ax = axes[2, j]
        ax.plot(o.edc_err_db_init, o.edc_err_db_fit, "o", ms=3, alpha=0.7)
        lim = [0, max(o.edc_err_db_init.max(), o.edc_err_db_fit.max()) * 1.05]
        ax.plot(lim, lim, "k-", lw=0.8, label="no change")
        better = int((o.edc_err_db_fit < o.edc_err_db_init).sum())
        ax.set_title(f"{kind}: mean EDC error per target, {better} of {len(o)} better after the fit",
                     fontsize=10)
        ax.set_xlabel("before the fit (dB)")
        ax.set_ylabel("after the fit (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"RIR fitting over the dataset ({cfg.steps} Adam steps on EDC + STFT loss per target)",
                 fontsize=11)
    fig.tight_layout()
    return fig
