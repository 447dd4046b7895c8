"""Aliasing error against alias_decay_db and nfft, in float32, float64 and mixed precision.

Systems with known ground truth:

- one-pole filters H(z) = 1 / (1 - p z^-1) (``flamo.SOS``), truth h[n] = p^n; the float64
  frequency-sampled IR must equal the closed form p^n / (1 - (gamma p)^nfft) to float64
  precision (checked and recorded in ``closed_form.csv``);
- FDNs with homogeneous decay (``experiments.fdn_common.homogeneous_fdn``), truth = the
  float64 time-domain block baseline on the same system over the same nfft samples.

Variants: ``float32`` and ``float64`` evaluate the whole system on a grid of that dtype;
``mixed`` evaluates the response in float32 and only the inverse FFT and the gamma^-n
compensation in float64 (no library option needed: ``flamo.signal.irfft`` on a float64 grid).

The rounding constant C of :mod:`flamo.aliasing` is refitted from the float32 points of the
training systems where rounding dominates (``rounding_fit.csv``), and
:func:`flamo.recommend_alias_decay_db` is validated on held-out FDNs (other delays, N, T60,
matrix) in ``validation.csv``.

Tasks (:mod:`experiments.tasks`): one per system, nfft, evaluation dtype and chunk of
``db_chunk`` alias_decay_db values (the ground truth is recomputed per task: a fraction of
a second), plus one per held-out system, nfft and dtype at the recommended setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import flamo
from flamo import aliasing
from experiments.fdn_common import ground_truth, homogeneous_fdn, relative_l2_db
from experiments.tasks import Task

DESCRIPTION = ("extension of FLAMO (ICASSP 2025) Fig. 2: aliasing error vs alias_decay_db and nfft "
               "(one-poles, FDNs; float32/64/mixed), bound, recommendation")

_N6 = (887, 911, 941, 1699, 1951, 2053)


@dataclass
class Config:
    """Hyperparameters of the sweep."""

    fs: float = 48000.0  # sample rate [Hz]
    log2_nfft: tuple[int, ...] = (12, 13, 14, 15, 16, 17, 18)  # FFT lengths 2^k [samples]
    db_float32: tuple[float, ...] = tuple(float(x) for x in range(0, 131))  # 1 dB steps [dB]
    db_float64: tuple[float, ...] = tuple(float(x) for x in range(0, 201))  # 1 dB steps [dB]
    db_chunk: int = 25  # alias_decay_db values per task
    heldout_log2_nfft: tuple[int, ...] = (13, 15, 17)  # sizes for the held-out FDNs [log2 samples]
    onepole_t60: tuple[float, ...] = (0.05, 0.5, 9.0)  # pole p = rho(T60) [s]
    negative_pole_t60: float = 0.0  # if > 0, one extra pole p = -rho(T60) [s]
    fdn_t60: tuple[float, ...] = (0.5, 2.0, 9.0)  # training FDNs (N = 6, delays _N6) [s]
    # held-out FDNs: (name, delays, T60 [s], matrix seed)
    heldout: tuple = field(default_factory=lambda: (
        ("N4_T3", (1499, 1889, 2381, 2999), 3.0, 1),
        ("N8_T1", (809, 877, 937, 1049, 1151, 1249, 1373, 1499), 1.0, 2),
        ("N6b_T6", (997, 1153, 1327, 1559, 1801, 2099), 6.0, 3),
    ))
    report_log2_nfft: tuple[int, ...] = (15, 17)  # nfft of the optimum table [log2 samples]
    rounding_dominated_margin_db: float = 12.0  # fit C where measured > alias bound + margin

    @classmethod
    def quick(cls) -> "Config":
        """CI variant: fewer sizes, settings and systems."""
        return cls(log2_nfft=(12, 15), db_float32=(0.0, 20.0, 40.0, 60.0, 80.0, 100.0),
                   db_float64=(0.0, 40.0, 80.0, 120.0, 160.0), onepole_t60=(0.5, 9.0), negative_pole_t60=0.5,
                   fdn_t60=(2.0, 9.0), heldout=(("N4_T3", (1499, 1889, 2381, 2999), 3.0, 1),),
                   report_log2_nfft=(15,), heldout_log2_nfft=(12, 15))


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _system(params):
    """(flamo system in float64, ground truth of length nfft) described by a task's params."""
    if params["kind"] == "onepole":
        p = params["pole"]
        # a float64 array: a Python list would be stored in the default float32 and move the pole
        system = flamo.SOS(np.array([[1.0, 0.0, 0.0, 1.0, -p, 0.0]]), learnable=False).double()
        return system, p ** np.arange(params["nfft"])
    system = homogeneous_fdn(params["delays"], params["t60"], seed=params["seed"])
    return system, ground_truth(system, params["nfft"], params["fs"])


def _systems(cfg):
    """list of dicts: name, kind, role (train/heldout), t60 and what builds it (pole or
    delays and matrix seed)."""
    out = []
    for t60 in cfg.onepole_t60:
        out.append(dict(name=f"onepole_T{t60:g}", kind="onepole", role="train", t60=t60,
                        pole=aliasing.decay_rate(t60, cfg.fs)))
    if cfg.negative_pole_t60:
        t60 = cfg.negative_pole_t60
        out.append(dict(name=f"onepole_neg_T{t60:g}", kind="onepole", role="train", t60=t60,
                        pole=-aliasing.decay_rate(t60, cfg.fs)))
    for t60 in cfg.fdn_t60:
        out.append(dict(name=f"fdn6_T{t60:g}", kind="fdn", role="train", t60=t60, delays=_N6, seed=0))
    for name, delays, t60, seed in cfg.heldout:
        out.append(dict(name=name, kind="fdn", role="heldout", t60=t60, delays=delays, seed=seed))
    return out


def tasks(cfg: Config) -> list[Task]:
    """The sweep in chunks of alias_decay_db values, and the held-out systems at the
    recommended setting."""
    if cfg.db_chunk < 1:
        raise ValueError(f"db_chunk must be >= 1, got {cfg.db_chunk}")
    out = []
    for s in _systems(cfg):
        sizes = cfg.heldout_log2_nfft if s["role"] == "heldout" else cfg.log2_nfft
        for k in sizes:
            for dt, dbs in (("float32", cfg.db_float32), ("float64", cfg.db_float64)):
                base = dict(s, fs=cfg.fs, nfft=2**k, dtype=dt)
                for c in range(0, len(dbs), cfg.db_chunk):
                    chunk = list(dbs[c:c + cfg.db_chunk])
                    out.append(Task(f"{s['name']}/nfft2^{k}/{dt}/dB{chunk[0]:g}-{chunk[-1]:g}",
                                    dict(base, db=chunk, purpose="sweep")))
                if s["role"] == "heldout":
                    rec = flamo.recommend_alias_decay_db(2**k, s["t60"], cfg.fs, _DTYPES[dt])
                    out.append(Task(f"{s['name']}/nfft2^{k}/{dt}/recommended",
                                    dict(base, db=[rec], purpose="validation")))
    return out


def _irs(system, nfft, db, fs, dtype_name):
    """{variant: IR (float64 numpy)} for one evaluation dtype (float32 also yields mixed)."""
    grid = flamo.Grid(nfft, fs, db, dtype=_DTYPES[dtype_name])
    with torch.no_grad():
        h = system.response(grid)[:, 0, 0]
    out = {dtype_name: flamo.signal.irfft(h, grid).double().numpy()}
    if dtype_name == "float32":
        grid64 = grid.replace(dtype=torch.float64)
        out["mixed"] = flamo.signal.irfft(h.to(torch.complex128), grid64).numpy()
    return out


def run_task(params: dict, tctx) -> dict:
    """Errors of one system at one nfft and dtype for each alias_decay_db value of the task;
    for a float64 one-pole also the deviation from the closed form."""
    system, truth = _system(params)
    nfft = params["nfft"]
    rows, closed = [], []
    for db in params["db"]:
        for variant, h in _irs(system, nfft, db, params["fs"], params["dtype"]).items():
            rows.append(dict(system=params["name"], kind=params["kind"], role=params["role"],
                             t60_s=params["t60"], nfft=nfft, alias_decay_db=db, variant=variant,
                             error_db=relative_l2_db(h, truth)))
            if params["kind"] == "onepole" and variant == "float64":
                pole = params["pole"]
                exact = aliasing.aliased_one_pole(pole, nfft, db)
                dev = float(np.abs(h - exact).max() / np.abs(exact).max())
                # float64 precision: eps times the gamma^-n amplification times the conditioning
                # 1 / (1 - |gamma p|) of the pole
                gamma = 10 ** (-db / (20 * nfft))
                scale = np.finfo(float).eps * 10 ** (db / 20) / (1 - abs(gamma * pole))
                closed.append(dict(system=params["name"], pole=pole, nfft=nfft, alias_decay_db=db,
                                   max_rel_deviation=dev, deviation_over_precision=dev / scale))
    return {"rows": rows, "closed": closed}


def _add_model(df, cfg, constant=None):
    """Columns: the aliasing bound and the predicted total error (dB) for each row."""
    alias, total = [], []
    for r in df.itertuples():
        a_db = aliasing.aliasing_error_db(int(r.nfft), r.t60_s, cfg.fs, r.alias_decay_db)
        dtype = torch.float64 if r.variant == "float64" else torch.float32
        alias.append(a_db)
        total.append(20 * np.log10(aliasing.predicted_error(int(r.nfft), r.t60_s, cfg.fs, r.alias_decay_db,
                                                           dtype, constant)))
    df = df.copy()
    df["bound_db"] = alias
    df["predicted_db"] = total
    return df


def _fit_constant(df, cfg):
    """Fit C and alpha of the rounding term, log(measured / unit) = log C + alpha log(nfft / 2^15),
    on the float32 points of the training FDNs where rounding dominates the aliasing bound;
    report the constant that would fit the one-pole filters too."""
    sel = df[(df.role == "train") & (df.variant == "float32")
             & (df.error_db > df.bound_db + cfg.rounding_dominated_margin_db)]
    rows = []
    fit = (None, None)
    for kind in ("fdn", "onepole"):
        part = sel[sel.kind == kind]
        if part.empty:
            rows.append(dict(kind=kind, points=0))
            continue
        unit = np.array([aliasing.rounding_error(int(r.nfft), r.t60_s, cfg.fs, r.alias_decay_db, torch.float32,
                                                 constant=1.0, nfft_exponent=0.0) for r in part.itertuples()])
        log_ratio = np.log(10 ** (part.error_db.to_numpy() / 20) / unit)
        x = np.log(part.nfft.to_numpy() / 2.0**15)
        if kind == "fdn" and np.ptp(x) > 0:
            alpha, log_c = np.polyfit(x, log_ratio, 1)
        else:
            alpha, log_c = 0.0, float(np.median(log_ratio))
        resid = log_ratio - (log_c + alpha * x)
        rows.append(dict(kind=kind, points=len(part), fitted_constant=float(np.exp(log_c)),
                         fitted_nfft_exponent=float(alpha), residual_rms_db=float(20 / np.log(10) * np.sqrt(np.mean(resid**2))),
                         library_constant=aliasing.ROUNDING_CONSTANT,
                         library_nfft_exponent=aliasing.ROUNDING_NFFT_EXPONENT))
        if kind == "fdn":
            fit = (float(np.exp(log_c)), float(alpha))
    return fit, pd.DataFrame(rows)


def _optima(df):
    """Measured optimum per system, nfft and variant."""
    idx = df.groupby(["system", "nfft", "variant"]).error_db.idxmin()
    cols = ["system", "kind", "role", "t60_s", "nfft", "variant", "alias_decay_db", "error_db"]
    return df.loc[idx, cols].rename(columns={"alias_decay_db": "optimum_alias_decay_db",
                                             "error_db": "optimum_error_db"}).reset_index(drop=True)


def _validate(cfg, validation_rows, optima):
    """Recommended setting vs measured optimum on the held-out systems."""
    rows = []
    for r in validation_rows:
        if r["variant"] == "mixed":  # the validation is of the float32 and float64 settings
            continue
        opt = optima[(optima.system == r["system"]) & (optima.nfft == r["nfft"])
                     & (optima.variant == r["variant"])].iloc[0]
        rec = r["alias_decay_db"]
        predicted = aliasing.predicted_error(r["nfft"], r["t60_s"], cfg.fs, rec, _DTYPES[r["variant"]])
        rows.append(dict(system=r["system"], t60_s=r["t60_s"], nfft=r["nfft"], dtype=r["variant"],
                         recommended_db=rec, error_at_recommended_db=r["error_db"],
                         predicted_error_db=float(20 * np.log10(predicted)),
                         measured_optimum_db=opt.optimum_alias_decay_db,
                         measured_optimum_error_db=opt.optimum_error_db,
                         loss_vs_measured_optimum_db=r["error_db"] - opt.optimum_error_db))
    return pd.DataFrame(rows)


def reduce(cfg: Config, results: dict, ctx) -> None:
    """Check the closed form, fit and validate the error model, draw the figures."""
    sweep, held, closed = [], [], []
    for key, r in results.items():
        (held if key.endswith("/recommended") else sweep).extend(r["rows"])
        closed.extend(r["closed"])
    df = _add_model(pd.DataFrame(sweep), cfg)
    ctx.write_csv(df, "errors.csv")
    closed = pd.DataFrame(closed)
    ctx.write_csv(closed, "closed_form.csv")
    worst_closed = float(closed.deviation_over_precision.max())
    assert worst_closed < 10, f"one-pole IR deviates from the closed form by {worst_closed:.3g} x float64 precision"

    fit, fit_table = _fit_constant(df, cfg)
    ctx.write_csv(fit_table, "rounding_fit.csv")
    optima = _optima(df)
    ctx.write_csv(optima, "optima.csv")
    report = optima[optima.nfft.isin([2**k for k in cfg.report_log2_nfft]) & (optima.kind == "fdn")]
    ctx.write_csv(report, "optimum_report.csv")
    validation = _validate(cfg, held, optima)
    ctx.write_csv(validation, "validation.csv")

    _figures(cfg, ctx, df, closed, validation)

    main = report[(report.system == "fdn6_T9")]
    head = {"closed_form_worst_deviation_over_precision": worst_closed,
            "rounding_constant_fitted": fit[0] if fit[0] is not None else float("nan"),
            "rounding_nfft_exponent_fitted": fit[1] if fit[1] is not None else float("nan"),
            "rounding_constant_library": aliasing.ROUNDING_CONSTANT,
            "heldout_worst_loss_vs_optimum_db": float(validation.loss_vs_measured_optimum_db.max())}
    for r in main.itertuples():
        tag = f"fdn6_T9_nfft2^{int(np.log2(r.nfft))}_{r.variant}"
        head[f"{tag}_opt_db"] = float(r.optimum_alias_decay_db)
        head[f"{tag}_opt_error_db"] = float(r.optimum_error_db)
    ctx.headline(**head)


# -- figures ------------------------------------------------------------------------------
def _column_edges(values):
    """Cell edges of a heatmap with one column per measured value, each as wide as the
    smallest spacing and centred on its value, so that columns sit at their true positions;
    a wider gap becomes an empty (NaN) column. Returns (edges, index of each value's column)."""
    values = np.asarray(values, dtype=float)
    half = (np.diff(values).min() if values.size > 1 else 1.0) / 2
    edges, columns = [values[0] - half], []
    for i, v in enumerate(values):
        if v - half > edges[-1] + 1e-9:  # an unmeasured gap before v
            edges.append(v - half)
        columns.append(len(edges) - 1)
        edges.append(v + half)
    return np.array(edges), columns


def _heatmaps(df, systems, variants, title):
    fig, axes = plt.subplots(len(systems), len(variants), figsize=(5.2 * len(variants), 3.2 * len(systems)),
                             squeeze=False)
    for i, name in enumerate(systems):
        for j, variant in enumerate(variants):
            ax = axes[i, j]
            sub = df[(df.system == name) & (df.variant == variant)]
            table = sub.pivot(index="nfft", columns="alias_decay_db", values="error_db")
            x_edges, columns = _column_edges(table.columns)
            grid = np.full((table.shape[0], x_edges.size - 1), np.nan)
            grid[:, columns] = table.values
            k = np.log2(table.index.to_numpy()).astype(int)
            y_edges = np.append(k - 0.5, k[-1] + 0.5)
            im = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(grid), cmap="viridis_r",
                               vmin=-200, vmax=0)
            ax.set_xticks(table.columns)
            ax.set_xticklabels([f"{c:g}" for c in table.columns], rotation=90, fontsize=7)
            ax.set_yticks(k)
            ax.set_yticklabels([f"2^{v}" for v in k], fontsize=7)
            for r in range(table.shape[0]):
                ax.plot(table.columns[int(np.nanargmin(table.values[r]))], k[r], "r*", ms=6)
            ax.set_xlabel("alias_decay_db [dB] (columns at their values; blank: not measured)",
                          fontsize=8)
            ax.set_ylabel("nfft [samples]")
            ax.set_title(f"{name}, {variant} (red *: best per nfft; min {np.nanmin(table.values):.0f} dB)",
                         fontsize=8)
            fig.colorbar(im, ax=ax, label="relative L2 error [dB]", extend="min")
    fig.suptitle(title + " (colour scale clipped at -200 dB)")
    fig.tight_layout()
    return fig


def _lines(df, cfg, log2_nfft, systems):
    fig, axes = plt.subplots(1, len(log2_nfft), figsize=(6.5 * len(log2_nfft), 4.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, k in zip(axes[0], log2_nfft):
        nfft = 2**k
        for ci, name in enumerate(systems):
            sub = df[(df.system == name) & (df.nfft == nfft)]
            if sub.empty:
                continue
            t60 = sub.t60_s.iloc[0]
            col = colors[ci % len(colors)]
            for variant, marker in (("float32", "o"), ("float64", "s"), ("mixed", "^")):
                v = sub[sub.variant == variant].sort_values("alias_decay_db")
                ax.plot(v.alias_decay_db, v.error_db, marker, color=col, ms=3.5, mfc="none" if variant == "mixed" else col,
                        label=f"{name} measured {variant}")
            db = np.linspace(0, max(cfg.db_float64), 300)
            ax.plot(db, aliasing.aliasing_error_db(nfft, t60, cfg.fs, db), "-", color=col, lw=1,
                    label=f"{name} bound q/(1-q)")
            for dtype, ls in ((torch.float32, "--"), (torch.float64, ":")):
                ax.plot(db, 20 * np.log10(aliasing.predicted_error(nfft, t60, cfg.fs, db, dtype)), ls, color=col,
                        lw=0.8)
        ax.set_ylim(-260, 10)
        ax.set_xlabel("alias_decay_db [dB]")
        ax.set_ylabel("relative L2 error [dB]")
        ax.set_title(f"nfft = 2^{k}: markers measured (o float32, s float64, ^ mixed);\n"
                     "solid: aliasing bound, dashed/dotted: predicted total float32/float64", fontsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    keep = [(h, l) for h, l in zip(handles, labels) if "float64" not in l and "mixed" not in l]
    axes[0, -1].legend(*zip(*keep), fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig


def _figures(cfg, ctx, df, closed, validation):
    fdn_train = [n for n in df[(df.kind == "fdn") & (df.role == "train")].system.unique()]
    ctx.save_figure(_heatmaps(df, fdn_train, ["float32", "mixed", "float64"],
                              "FDN (N = 6): measured relative L2 error of the frequency-sampled IR"),
                    "heatmaps_fdn.png")
    poles = list(df[df.kind == "onepole"].system.unique())
    ctx.save_figure(_heatmaps(df, poles, ["float32", "float64"], "One-pole filters: measured relative L2 error"),
                    "heatmaps_onepole.png")
    ks = [k for k in cfg.report_log2_nfft if k in cfg.log2_nfft]
    ctx.save_figure(_lines(df, cfg, ks, fdn_train), "fdn_measured_vs_bound.png")
    ctx.save_figure(_lines(df, cfg, ks, poles), "onepole_measured_vs_bound.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for dt, marker in (("float32", "o"), ("float64", "s")):
        v = validation[validation.dtype == dt]
        ax.plot(v.measured_optimum_error_db, v.error_at_recommended_db, marker, label=dt)
    lim = [validation[["measured_optimum_error_db", "error_at_recommended_db"]].min().min() - 5, 0]
    ax.plot(lim, lim, "k-", lw=0.8, label="equal")
    ax.set_xlabel("error at measured optimum (sweep grid) [dB]")
    ax.set_ylabel("error at recommended alias_decay_db [dB]")
    ax.set_title("Held-out FDNs: recommend_alias_decay_db vs measured optimum", fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    ctx.save_figure(fig, "validation.png")
