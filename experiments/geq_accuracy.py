"""Reproduction of Valimaki & Liski, "Accurate cascade graphic equalizer" (IEEE SPL 24(2), 2017):
the accuracy of the published design.

The design (:class:`flamo.functional.AccurateGEQ`, default settings = the paper's): fs =
44.1 kHz, 10 octave bands 31.25 Hz .. 16 kHz, one Orfanidis band filter per band (c = 0.3,
bandwidth 1.5 omega_c, the three highest bands narrowed), interaction matrix sampled at
17 dB on the 19 design points (centres and geometric midpoints), least squares plus one
iteration, **no broadband offset**. Commands: all +12 dB, zig-zag +12/-12 dB, and random
commands uniform in [-12, 12] dB. The paper's claim is an accuracy comparable to the best
parallel graphic EQ, whose maximum error is below 1 dB.

The designed cascades are evaluated independently of the library's own evaluator, with
:func:`scipy.signal.sosfreqz` at the band centres (error against the command) and at the
geometric midpoints (error against the linear interpolation in dB of the two neighbouring
commands, the design's own targets there). Extension, labelled as such: the same commands
with the mean-command broadband offset (``offset=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.signal
import torch

from flamo.functional import AccurateGEQ, octave_bands

DESCRIPTION = ("reproduction of Valimaki & Liski (IEEE SPL 2017), accuracy claim: max error of "
               "the accurate cascade GEQ at band centres and midpoints (44.1 kHz, octave)")


@dataclass
class Config:
    """Hyperparameters of the GEQ accuracy test."""

    fs: float = 44100.0  # sample rate [Hz]
    command_db: float = 12.0  # command range +- [dB]
    random_commands: int = 500  # random command vectors, uniform in [-command_db, command_db]
    offset: bool = False  # broadband offset: False is the published design
    extension_offset: bool = True  # also measure the offset variant (an extension)
    plot_points: int = 2000  # log-spaced frequencies of the response figure

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: fewer random commands."""
        return cls(random_commands=50, plot_points=400)


def _commands(cfg, rng):
    """name -> (K, 10) command gains in dB."""
    g = cfg.command_db
    return {"all12": np.full((1, 10), g), "zigzag": g * np.array([[(-1.0) ** k for k in range(10)]]),
            "random": rng.uniform(-g, g, size=(cfg.random_commands, 10))}


def _scipy_sos(sections):
    """(K, B, 6) torch sections -> list of (B, 6) numpy arrays normalized to a0 = 1."""
    s = sections.detach().double().numpy()
    return [sec / sec[:, 3:4] for sec in s]


def _errors(design, commands, label):
    """Long table of target, response and error at every centre and midpoint."""
    centres = design.centres.numpy()
    mids = np.sqrt(centres[1:] * centres[:-1])
    sections = _scipy_sos(design.sections(torch.as_tensor(commands, dtype=torch.float64)))
    rows = []
    for k, (cmd, sos) in enumerate(zip(commands, sections)):
        _, h_c = scipy.signal.sosfreqz(sos, worN=centres, fs=design.fs)
        _, h_m = scipy.signal.sosfreqz(sos, worN=mids, fs=design.fs)
        for kind, freqs, target, h in (("centre", centres, cmd, h_c),
                                       ("midpoint", mids, 0.5 * (cmd[1:] + cmd[:-1]), h_m)):
            resp = 20 * np.log10(np.abs(h))
            for band, (f, t, r) in enumerate(zip(freqs, target, resp)):
                rows.append({"design": label, "command": k, "kind": kind, "band": band,
                             "freq_hz": f, "target_db": t, "response_db": r,
                             "error_db": abs(r - t)})
    return rows


def run(cfg: Config, ctx) -> None:
    """Design every command set, measure the errors, draw responses against command points."""
    rng = np.random.default_rng(ctx.seed)
    commands = _commands(cfg, rng)
    designs = {"published": AccurateGEQ(octave_bands(), cfg.fs, offset=cfg.offset)}
    if cfg.extension_offset:
        designs["extension: mean-command offset"] = AccurateGEQ(octave_bands(), cfg.fs, offset=True)
    rows = []
    for label, design in designs.items():
        for case, cmd in commands.items():
            rows += [dict(r, case=case) for r in _errors(design, cmd, label)]
    errors = pd.DataFrame(rows)[["design", "case", "command", "kind", "band", "freq_hz",
                                 "target_db", "response_db", "error_db"]]
    ctx.write_csv(errors, "errors.csv")
    worst = (errors.groupby(["design", "case", "kind"], sort=False)["error_db"]
             .agg(["max", "mean"]).reset_index())
    ctx.write_csv(worst, "max_errors.csv")
    ctx.save_figure(_figure(cfg, designs["published"], commands, errors), "responses.png")

    def stat(design, case, kind, how="max"):
        sel = worst[(worst.design == design) & (worst.case == case) & (worst.kind == kind)]
        return float(sel[how].iloc[0])

    head = {"random_commands": cfg.random_commands,
            "max_error_centres_db": stat("published", "random", "centre"),
            "max_error_midpoints_db": stat("published", "random", "midpoint"),
            "mean_error_centres_db": stat("published", "random", "centre", "mean")}
    for case in ("all12", "zigzag"):
        head[f"{case}.max_error_centres_db"] = stat("published", case, "centre")
        head[f"{case}.max_error_midpoints_db"] = stat("published", case, "midpoint")
    if cfg.extension_offset:
        ext = "extension: mean-command offset"
        head["extension_offset.max_error_centres_db"] = stat(ext, "random", "centre")
        head["extension_offset.max_error_midpoints_db"] = stat(ext, "random", "midpoint")
    ctx.headline(**head)
    ctx.log(f"max error at centres {head['max_error_centres_db']:.3f} dB, at midpoints "
            f"{head['max_error_midpoints_db']:.3f} dB ({cfg.random_commands} random commands)")


def _figure(cfg, design, commands, errors):
    f = np.geomspace(10.0, cfg.fs / 2 * 0.999, cfg.plot_points)
    centres = design.centres.numpy()
    mids = np.sqrt(centres[1:] * centres[:-1])
    shown = [("all12", 0), ("zigzag", 0), ("random", 0), ("random", 1)]
    fig, axes = plt.subplots(3, 2, figsize=(11, 10))
    for ax, (case, k) in zip(axes.flat, shown):
        cmd = commands[case][k]
        sos = _scipy_sos(design.sections(torch.as_tensor(cmd[None], dtype=torch.float64)))[0]
        _, h = scipy.signal.sosfreqz(sos, worN=f, fs=cfg.fs)
        ax.semilogx(f, 20 * np.log10(np.abs(h)), color="tab:blue", lw=1.2, label="cascade response")
        ax.plot(centres, cmd, "o", color="k", ms=5, label="command (band centre)")
        ax.plot(mids, 0.5 * (cmd[1:] + cmd[:-1]), "x", color="tab:red", ms=5,
                label="interpolated target (midpoint)")
        sel = errors[(errors.design == "published") & (errors.case == case) & (errors.command == k)]
        ec = sel[sel.kind == "centre"].error_db.max()
        em = sel[sel.kind == "midpoint"].error_db.max()
        title = {"all12": "all +12 dB", "zigzag": "zig-zag +-12 dB"}.get(case, f"random #{k}")
        ax.set_title(f"{title}: max error {ec:.2f} dB (centres), {em:.2f} dB (midpoints)", fontsize=10)
        ax.set(
               xlabel="frequency [Hz]", ylabel="magnitude [dB]", xlim=(10, cfg.fs / 2),
               ylim=(-cfg.command_db - 4, cfg.command_db + 4))
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=8, loc="lower center")
    pub = errors[(errors.design == "published") & (errors.case == "random")]
    per_cmd = pub.groupby(["command", "kind"])["error_db"].max().unstack()
    ax = axes[2, 0]
    bins = np.linspace(0, max(1.5, float(per_cmd.values.max()) * 1.05), 40)
    for kind, color in (("centre", "k"), ("midpoint", "tab:red")):
        ax.hist(per_cmd[kind], bins=bins, color=color, alpha=0.5, label=f"{kind}s")
    ax.axvline(1.0, color="tab:green", ls="--", label="1 dB (paper's claim)")
    ax.set(title=f"max error per command, {cfg.random_commands} random +-{cfg.command_db:g} dB commands",
           xlabel="max |response - target| [dB]", ylabel="commands")
    ax.legend(fontsize=8)
    ax = axes[2, 1]
    for kind, color in (("centre", "k"), ("midpoint", "tab:red")):
        band_max = pub[pub.kind == kind].groupby("freq_hz")["error_db"].max()
        ax.semilogx(band_max.index, band_max.values, "o-", color=color, label=f"{kind}s")
    ax.axhline(1.0, color="tab:green", ls="--", label="1 dB")
    ax.set(title="max error over the random commands, per frequency", xlabel="frequency [Hz]",
           ylabel="max error [dB]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.suptitle(f"Accurate cascade GEQ (Valimaki & Liski 2017), published design (no offset), "
                 f"fs = {cfg.fs / 1000:g} kHz, 10 octave bands")
    fig.tight_layout()
    return fig
