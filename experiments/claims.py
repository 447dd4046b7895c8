"""The claims table: published numbers next to the project's, with computed verdicts.

Every published claim the experiments reproduce is one :class:`Claim` in :data:`CLAIMS`:
the paper's value (or the inequality it states), where it comes from, the experiment and
headline key that holds the project's value, the settings the comparison needs, and the
tolerance. Tolerances are fixed here from the paper's own spread (or from an error bound)
before any project number is looked at; the comment next to each says how, and the
``tolerance_basis`` column repeats it. Never loosen a tolerance or drop a claim after
seeing a result: a claim that fails is reported failing.

:func:`write_claims` turns the registry and the result files of a results root into
``claims.csv`` (columns :data:`COLUMNS`); :func:`claims_section` renders the same rows as
the "Claims" section that opens ``summary.md``. Both read only files (``meta.json`` and
``headline.json`` of each experiment), so the table is regenerated, never typed.

Verdicts
--------
``pass``
    |project - paper| <= tolerance, or the stated inequality holds.
``fail``
    Otherwise (also a non-finite project value).
``not-comparable``
    The experiment has no full result (not run, or a quick run), its headline lacks the
    value, or a setting the claim depends on differs (``reason`` names it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from experiments import io

__all__ = ["Claim", "Requirement", "Fixed", "MeanOverTrials", "PooledOverTrials",
           "StdOverTrials", "OneRunOverTrials", "CLAIMS", "COLUMNS", "VERDICTS",
           "evaluate", "claims_table", "write_claims", "claims_section"]

CLAIMS_FILE = "claims.csv"
VERDICTS = ("pass", "fail", "not-comparable")
COLUMNS = ["claim", "experiment", "quantity", "paper", "project", "tolerance", "unit", "source",
           "verdict", "reason", "tolerance_basis"]
Z95 = 1.959964  # two-sided 95 % normal quantile


# -- settings a claim depends on ----------------------------------------------------------
@dataclass(frozen=True)
class Requirement:
    """A setting the comparison needs: ``field == value`` or ``field >= value``, where the
    field is one of the experiment's Config (``where="config"``, from meta.json) or a
    headline number (``where="headline"``, e.g. how many trials early stopping ended)."""

    field: str
    value: Any
    op: str = "=="
    where: str = "config"

    def problem(self, config: dict, headline: dict | None = None) -> str | None:
        """None when the run satisfies the requirement, else the reason."""
        source = config if self.where == "config" else (headline or {})
        if self.field not in source:
            return f"{self.where} {self.field} not recorded (claim needs {self.op} {self.value!r})"
        got = source[self.field]
        want = list(self.value) if isinstance(self.value, tuple) else self.value
        ok = got == want if self.op == "==" else (isinstance(got, (int, float)) and got >= want)
        return None if ok else f"setting differs: {self.field} = {got!r} (claim needs {self.op} {want!r})"


# -- tolerances -----------------------------------------------------------------------------
def _trials(headline: dict, key: str) -> int:
    n = headline.get(key)
    if not isinstance(n, (int, float)) or n < 1:
        raise KeyError(key)
    return int(n)


@dataclass(frozen=True)
class Fixed:
    """A tolerance that does not depend on the run (an error bound, a stated resolution)."""

    tol: float
    basis: str

    def value(self, headline: dict) -> float:
        return self.tol


@dataclass(frozen=True)
class MeanOverTrials:
    """Difference of two means of independent trials at 95 %: the paper's mean over
    ``n_paper`` trials and ours over ``n`` trials (``headline[trials_key]``), both with the
    paper's across-trial sigma: z sigma sqrt(1 / n_paper + 1 / n)."""

    sigma: float
    n_paper: int
    trials_key: str

    def value(self, headline: dict) -> float:
        n = _trials(headline, self.trials_key)
        return Z95 * self.sigma * math.sqrt(1 / self.n_paper + 1 / n)

    @property
    def basis(self) -> str:
        return (f"95 % interval of a difference of means: 1.96 x sigma {self.sigma:g} (paper, "
                f"across trials) x sqrt(1/{self.n_paper} + 1/n), n = our trial count")


@dataclass(frozen=True)
class PooledOverTrials:
    """Spread pooled over trials, at 95 %. With equal mode counts, pooled^2 ~ mean of the
    per-trial s_i^2 (plus the variance of the per-trial mean levels, neglected: that makes
    the interval tighter, not looser). By the delta method sd(s^2) ~ 2 mean(s) sigma, so
    sd(pooled) over n trials ~ 2 mean(s) sigma / (2 pooled sqrt(n))."""

    sigma: float
    mean: float
    pooled: float
    n_paper: int
    trials_key: str

    def value(self, headline: dict) -> float:
        n = _trials(headline, self.trials_key)
        per_trial = 2 * self.mean * self.sigma / (2 * self.pooled)
        return Z95 * per_trial * math.sqrt(1 / self.n_paper + 1 / n)

    @property
    def basis(self) -> str:
        return (f"delta method on pooled^2 = mean of per-trial s^2: 1.96 x 2 x mean {self.mean:g} "
                f"x sigma {self.sigma:g} / (2 x pooled {self.pooled:g}) x sqrt(1/{self.n_paper} "
                f"+ 1/n), paper's values, n = our trial count")


@dataclass(frozen=True)
class StdOverTrials:
    """Difference of two across-trial standard deviations at 95 % (normal approximation of
    the sampling sd of a sample std, sigma / sqrt(2 (n - 1)))."""

    sigma: float
    n_paper: int
    trials_key: str

    def value(self, headline: dict) -> float:
        n = _trials(headline, self.trials_key)
        if n < 2:
            raise KeyError(self.trials_key)
        return Z95 * self.sigma * math.sqrt(1 / (2 * (self.n_paper - 1)) + 1 / (2 * (n - 1)))

    @property
    def basis(self) -> str:
        return (f"95 % interval of a difference of sample stds: 1.96 x sigma {self.sigma:g} x "
                f"sqrt(1/(2 x {self.n_paper - 1}) + 1/(2 (n - 1))), n = our trial count")


@dataclass(frozen=True)
class OneRunOverTrials:
    """A single published run against our mean over n trials, at 95 %: the published value
    is one draw, so the interval is a prediction interval z sigma sqrt(1 + 1/n). The sigma
    is a stated proxy when the paper gives none for this configuration."""

    sigma: float
    trials_key: str
    sigma_source: str

    def value(self, headline: dict) -> float:
        n = _trials(headline, self.trials_key)
        return Z95 * self.sigma * math.sqrt(1 + 1 / n)

    @property
    def basis(self) -> str:
        return (f"one published run vs our mean of n trials: 1.96 x sigma {self.sigma:g} x "
                f"sqrt(1 + 1/n), sigma from {self.sigma_source}")


# -- the claims ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """One published claim and where the project's value comes from.

    Attributes
    ----------
    claim : str
        Stable identifier, e.g. ``colorless.N4.modal_spread_optim``.
    experiment : str
        Experiment whose ``headline.json`` holds the project's value.
    key : str
        Headline key of the project's value.
    quantity : str
        What is compared, in words.
    paper : float
        The published value, or the bound of the stated inequality.
    unit : str
    source : str
        Paper and figure/table, or the released file the number comes from.
    relation : {"==", "<", ">"}
        "==": pass when |project - paper| <= tolerance; "<" / ">": the stated inequality.
    tolerance : Fixed, MeanOverTrials, ..., optional
        Required for "=="; None for an inequality.
    requires : tuple of Requirement
        Settings the comparison depends on.
    """

    claim: str
    experiment: str
    key: str
    quantity: str
    paper: float
    unit: str
    source: str
    relation: str = "=="
    tolerance: Any = None
    requires: tuple = ()

    def __post_init__(self):
        if self.relation not in ("==", "<", ">"):
            raise ValueError(f"Claim {self.claim}: relation must be '==', '<' or '>', got {self.relation!r}")
        if (self.relation == "==") != (self.tolerance is not None):
            raise ValueError(f"Claim {self.claim}: a tolerance is needed for '==' and only for it")


JOURNAL = ("Dal Santo et al., EURASIP JASMP 2025 (arXiv 2402.11216), loss test: the authors' "
           "released runs (gdalsanto/diff-fdn-colorless, 100 trials, 20 epochs)")
JOURNAL_FIG6 = "Dal Santo et al., EURASIP JASMP 2025 (arXiv 2402.11216), delay-set figure (Fig. 6)"
JOURNAL_ABLATION = ("Dal Santo et al., EURASIP JASMP 2025 (arXiv 2402.11216), sparsity-term "
                    "ablation (echo density with and without the term)")
DAFX23 = ("Dal Santo et al., DAFx 2023: released N = 8 run (gdalsanto/diff-fdn-colorless, "
          "branch dafx23, demo/pretrained)")
FLAMO = "Dal Santo et al., FLAMO, ICASSP 2025 (arXiv 2409.08723)"
GEQ = ("Valimaki & Liski, 'Accurate cascade graphic equalizer', IEEE SPL 24(2), 2017: accuracy "
       "comparable to the best parallel GEQ, max error below 1 dB")

# The journal protocol as published; a run with other settings is not comparable.
_JOURNAL_SETTINGS = (
    Requirement("points", 480000), Requirement("train_fraction", 0.8),
    Requirement("batch", 2000), Requirement("epochs", 20), Requirement("lr", 1e-3),
    Requirement("lr_step_epochs", 10), Requirement("lr_gamma", 0.1),
    Requirement("patience", 5), Requirement("min_delta", 1e-4),
    Requirement("gain_per_sample", 0.9999), Requirement("sparsity_weight", 1.0),
    Requirement("init", "journal"), Requirement("trials", 20, ">="),
)
# The delay-set figure: the journal protocol with up to 50 epochs.
_FIG6_SETTINGS = tuple(r for r in _JOURNAL_SETTINGS if r.field != "epochs") + (Requirement("epochs", 50),)
# The ablation varies the sparsity weight itself and counts its own trials.
_ABLATION_SETTINGS = tuple(r for r in _JOURNAL_SETTINGS if r.field not in ("sparsity_weight", "trials")) + (
    Requirement("ablation_set", "N8"), Requirement("ablation_alphas", (0.0, 1.0)),
    Requirement("ablation.trials", 20, ">=", where="headline"))
# Released N4 loss-test runs: per-trial mean 7.57 -> 4.16 dB, sigma 2.82 -> 1.54 dB over
# 100 trials; pooled over all modes of all trials 8.64 -> 4.66 dB.
_N4 = dict(n_paper=100, trials_key="N4.trials")
_DAFX_SETTINGS = (
    Requirement("grids", 256), Requirement("min_points", 384000),
    Requirement("max_points", 480000), Requirement("train_fraction", 0.8),
    Requirement("batch", 4), Requirement("epochs", 15), Requirement("lr", 1e-3),
    Requirement("gain_per_sample", 0.9999), Requirement("p_below", 2.0),
    Requirement("p_above", 4.0), Requirement("temporal_weight", 300.0),
    Requirement("trials", 1, ">="),
)
_DAFX_SIGMA = "the journal's N4 across-trial sigma (the DAFx release is one run, no spread)"

CLAIMS: tuple[Claim, ...] = (
    # -- colorless FDN, journal protocol, N4 [1499, 1889, 2381, 2999] ------------------------
    Claim("colorless.N4.modal_spread_init", "colorless_fdn", "N4.modal_spread_init_db",
          "modal-excitation spread std(20 log10 |residue|), initialized FDN, mean over trials",
          7.57, "dB", JOURNAL, tolerance=MeanOverTrials(2.82, **_N4), requires=_JOURNAL_SETTINGS),
    Claim("colorless.N4.modal_spread_optim", "colorless_fdn", "N4.modal_spread_optim_db",
          "modal-excitation spread, optimized FDN, mean over trials",
          4.16, "dB", JOURNAL, tolerance=MeanOverTrials(1.54, **_N4), requires=_JOURNAL_SETTINGS),
    Claim("colorless.N4.modal_spread_pooled_init", "colorless_fdn", "N4.modal_spread_pooled_init_db",
          "modal-excitation spread pooled over all modes of all trials, initialized",
          8.64, "dB", JOURNAL, tolerance=PooledOverTrials(2.82, 7.57, 8.64, **_N4),
          requires=_JOURNAL_SETTINGS),
    Claim("colorless.N4.modal_spread_pooled_optim", "colorless_fdn", "N4.modal_spread_pooled_optim_db",
          "modal-excitation spread pooled over all modes of all trials, optimized",
          4.66, "dB", JOURNAL, tolerance=PooledOverTrials(1.54, 4.16, 4.66, **_N4),
          requires=_JOURNAL_SETTINGS),
    Claim("colorless.N4.modal_spread_sigma_init", "colorless_fdn", "N4.modal_spread_sigma_init_db",
          "across-trial std of the per-trial modal spread, initialized",
          2.82, "dB", JOURNAL, tolerance=StdOverTrials(2.82, **_N4), requires=_JOURNAL_SETTINGS),
    Claim("colorless.N4.modal_spread_sigma_optim", "colorless_fdn", "N4.modal_spread_sigma_optim_db",
          "across-trial std of the per-trial modal spread, optimized",
          1.54, "dB", JOURNAL, tolerance=StdOverTrials(1.54, **_N4), requires=_JOURNAL_SETTINGS),
    # -- every delay set of the journal's delay-set figure: the optimization narrows the
    # residue distribution (stated as an inequality; the figure gives no number), on the
    # figure's protocol (up to 50 epochs; colorless_delay_sets runs all six sets).
    *(Claim(f"colorless.{s}.modal_spread_reduced", "colorless_delay_sets", f"{s}.modal_spread_reduction_db",
            f"per-trial mean of (initial - optimized) modal spread, delay set {s}",
            0.0, "dB", JOURNAL_FIG6, relation=">", requires=_FIG6_SETTINGS)
      for s in ("N4", "N6", "N8", "N4_second", "N6_second", "N8_second")),
    # -- sparsity ablation, N8 [809 ... 1499], alpha 0 and 1, the same trials ----------------
    Claim("colorless.ablation.echo_density_drops_without_sparsity", "colorless_ablation",
          "ablation.echo_density_change_alpha0",
          "mean over trials of echo density (2 s IR, 1024-sample window) after - before, alpha = 0",
          0.0, "1", JOURNAL_ABLATION, relation="<", requires=_ABLATION_SETTINGS),
    Claim("colorless.ablation.echo_density_kept_with_sparsity", "colorless_ablation",
          "ablation.echo_density_alpha1_minus_alpha0",
          "mean over trials of final echo density, alpha = 1 minus alpha = 0 (same trials)",
          0.0, "1", JOURNAL_ABLATION, relation=">", requires=_ABLATION_SETTINGS),
    # -- DAFx 2023 configuration, N8 [809 ... 1499] -----------------------------------------
    Claim("colorless.N8_dafx23.modal_spread_init", "colorless_dafx23", "N8.modal_spread_init_db",
          "modal-excitation spread, initialized FDN (DAFx 2023 initialization)",
          9.46, "dB", DAFX23, tolerance=OneRunOverTrials(2.82, "N8.trials", _DAFX_SIGMA),
          requires=_DAFX_SETTINGS),
    Claim("colorless.N8_dafx23.modal_spread_optim", "colorless_dafx23", "N8.modal_spread_optim_db",
          "modal-excitation spread, optimized FDN (DAFx 2023 configuration)",
          4.32, "dB", DAFX23, tolerance=OneRunOverTrials(1.54, "N8.trials", _DAFX_SIGMA),
          requires=_DAFX_SETTINGS),
    Claim("colorless.N8_dafx23.modal_spread_random_orthogonal", "colorless_dafx23",
          "N8.modal_spread_random_orthogonal_db",
          "modal-excitation spread, unoptimized Haar-random orthogonal matrix, same delays",
          7.26, "dB", DAFX23, tolerance=OneRunOverTrials(2.82, "N8.trials", _DAFX_SIGMA),
          requires=_DAFX_SETTINGS),
    # -- FLAMO Fig. 4: the optimization smooths the N = 6 FDN's response -------------------------
    Claim("flamo.fig4.magnitude_spread_reduced", "colorless_fig4", "magnitude_spread_reduction_db",
          "std of 20 log10 |H| (full band) before - after optimization",
          0.0, "dB", f"{FLAMO}, Fig. 4", relation=">",
          requires=(Requirement("nfft", 96000), Requirement("alias_decay_db", 30.0),
                    Requirement("steps", 2000), Requirement("sparsity_weight", 0.2))),
    Claim("flamo.fig4.modal_spread_reduced", "colorless_fig4", "modal_spread_reduction_db",
          "modal-excitation spread before - after optimization (journal Fig. 6 form)",
          0.0, "dB", f"{FLAMO}, Fig. 4; {JOURNAL_FIG6}", relation=">",
          requires=(Requirement("nfft", 96000), Requirement("alias_decay_db", 30.0),
                    Requirement("steps", 2000), Requirement("sparsity_weight", 0.2))),
    # -- FLAMO Fig. 2: anti-aliasing removes the wrapped tail --------------------------------
    # Before the first echo (n < 887) the true IR is 0: the aliased IR holds the wrapped tail
    # sum_k h[n + k nfft], the mitigated one sum_k gamma^(k nfft) h[n + k nfft]. The k = 1
    # terms differ by exactly alias_decay_db = 60 dB. The k = 2 wrap of the aliased IR lies
    # 60 nfft / (fs T60) = 13.3 dB below its k = 1 wrap and adds 10 log10(1 + 10^-1.33) =
    # 0.2 dB in power (uncorrelated parts of a dense IR); 0.5 dB covers that.
    Claim("flamo.fig2.pre_echo_suppression", "aliasing_fig2", "pre_echo_suppression_db",
          "RMS of the IR before the first echo, aliased over mitigated",
          60.0, "dB", f"{FLAMO}, Fig. 2 (T60 9 s, nfft 96000 at 48 kHz, alias decay 60 dB)",
          tolerance=Fixed(0.5, "exact 60 dB for the first wrap; the second wrap of the aliased "
                               "IR (13.3 dB lower) adds 0.2 dB"),
          requires=(Requirement("nfft", 96000), Requirement("alias_decay_db", 60.0),
                    Requirement("t60", 9.0), Requirement("fs", 48000.0))),
    # -- FLAMO Fig. 1: the composite system equals its transfer equation ---------------------
    # Bound: a few hundred floating-point operations per point (products of SOS factors,
    # delays, one N x N loop solve), each with relative error <= eps, amplified by the loop's
    # condition number (loop gain <= 0.9: cond <= (1 + 0.9) / (1 - 0.9) = 19):
    # 500 x 19 x eps. float64: 500 x 19 x 1.1e-16 = 1.1e-12; float32: 500 x 19 x 6e-8 = 5.7e-4.
    Claim("flamo.fig1.composite_float64", "chaining", "composite_float64_max_rel_error",
          "max |H_flamo - H_numpy| / max |H_numpy| of the Fig. 1 composite, float64",
          0.0, "1", f"{FLAMO}, Fig. 1 (transfer equations of series, parallel, recursion)",
          tolerance=Fixed(1.1e-12, "500 operations x loop condition number 19 x float64 eps 1.1e-16")),
    Claim("flamo.fig1.composite_float32", "chaining", "composite_float32_max_rel_error",
          "max |H_flamo - H_numpy| / max |H_numpy| of the Fig. 1 composite, float32",
          0.0, "1", f"{FLAMO}, Fig. 1 (transfer equations of series, parallel, recursion)",
          tolerance=Fixed(5.7e-4, "500 operations x loop condition number 19 x float32 eps 6e-8")),
    # -- accurate GEQ, 44.1 kHz, 10 octave bands, no broadband offset ------------------------------
    *(Claim(f"geq.{case}max_error_centres_db", "geq_accuracy", f"{case}max_error_centres_db",
            f"max |response - command| at the band centres, {what}", 1.0, "dB", GEQ, relation="<",
            requires=(Requirement("fs", 44100.0), Requirement("offset", False),
                      Requirement("command_db", 12.0), *extra))
      for case, what, extra in (
          ("", "500 random +-12 dB commands", (Requirement("random_commands", 500, ">="),)),
          ("all12.", "all commands +12 dB", ()),
          ("zigzag.", "zig-zag +-12 dB commands", ()))),
)


# -- evaluation -------------------------------------------------------------------------------
def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def evaluate(claim: Claim, meta: dict | None, headline: dict | None) -> dict:
    """One row of the table for ``claim`` given an experiment's meta.json and headline.json
    (None when missing)."""
    paper = _fmt(claim.paper) if claim.relation == "==" else f"{claim.relation} {_fmt(claim.paper)}"
    basis = claim.tolerance.basis if claim.tolerance is not None else "stated inequality"
    row = {"claim": claim.claim, "experiment": claim.experiment, "quantity": claim.quantity,
           "paper": paper, "project": "", "tolerance": "", "unit": claim.unit,
           "source": claim.source, "verdict": "not-comparable", "reason": "",
           "tolerance_basis": basis}
    headline = headline if isinstance(headline, dict) else {}
    value = headline.get(claim.key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        row["project"] = _fmt(float(value))
    tol, tol_problem = None, None
    if claim.tolerance is not None:
        try:
            tol = claim.tolerance.value(headline)
            row["tolerance"] = _fmt(tol)
        except KeyError as err:
            tol_problem = f"headline has no {err.args[0]} (needed by the tolerance)"
    if not isinstance(meta, dict):
        row["reason"] = f"no result: {claim.experiment} has not been run"
        return row
    if meta.get("quick") is not False:
        row["reason"] = "quick run"
        return row
    if row["project"] == "":
        row["reason"] = f"headline of {claim.experiment} has no number {claim.key}"
        return row
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    for req in claim.requires:
        problem = req.problem(config, headline)
        if problem is not None:
            row["reason"] = problem
            return row
    if tol_problem is not None:
        row["reason"] = tol_problem
        return row
    value = float(value)
    if not math.isfinite(value):
        row.update(verdict="fail", reason="the project's value is not finite")
    elif claim.relation == "==":
        row["verdict"] = "pass" if abs(value - claim.paper) <= tol else "fail"
    elif claim.relation == "<":
        row["verdict"] = "pass" if value < claim.paper else "fail"
    else:
        row["verdict"] = "pass" if value > claim.paper else "fail"
    return row


def claims_table(root: str | Path = "results") -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` evaluated against the results under ``root``."""
    root = Path(root)
    rows = []
    for claim in CLAIMS:
        exp = root / claim.experiment
        rows.append(evaluate(claim, _read_json(exp / "meta.json"), _read_json(exp / "headline.json")))
    return pd.DataFrame(rows, columns=COLUMNS)


def write_claims(root: str | Path = "results") -> Path:
    """Regenerate ``root/claims.csv`` atomically and return its path."""
    return io.write_csv(Path(root) / CLAIMS_FILE, claims_table(root))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_section(root: str | Path = "results", exp_dirs=None) -> str:
    """Markdown "Claims" section: counts, then one table row per claim (``exp_dirs`` is
    accepted for :data:`experiments.summary.SECTIONS` and unused: every claim names its
    experiment)."""
    table = claims_table(root)
    counts = table["verdict"].value_counts()
    lines = ["## Claims", "",
             "Published numbers next to the project's (`claims.csv`, regenerated from the "
             "experiments' outputs; tolerances are fixed in `experiments/claims.py` from the "
             "papers' own spread before any result is seen). "
             + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS) + ".", "",
             "| claim | paper | project | tolerance | unit | verdict | source / reason |",
             "|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        note = r.source if not r.reason else f"{r.source}; {r.reason}"
        tol = f"+-{r.tolerance}" if r.tolerance else ""
        lines.append(f"| {_cell(r.claim)} | {_cell(r.paper)} | {_cell(r.project)} | {tol} | "
                     f"{_cell(r.unit)} | **{r.verdict}** | {_cell(note)} |")
    lines.append("")
    return "\n".join(lines)
