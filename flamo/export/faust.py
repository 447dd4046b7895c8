"""FAUST export: the same graph as a FAUST program, with the trained effective parameters.

The program is written from the system's time-domain realization
(:mod:`flamo.timedomain.realization`), one FAUST definition per node, with FAUST's
primitives only (no library import): gains ``*(g)``, integer delays ``@(m)``, matrices as a
split ``<:`` into one row per output and a merge ``:>``, FIR filters as sums of delayed
taps, rational filters and second-order sections in direct form I (the numerator, then
``+ ~ feedback``), series ``:``, parallel sums ``<: ... :>`` and loops ``~``.

FAUST's ``A ~ B`` puts one sample of delay in the feedback path, so a loop
y = F(x + B y) is written with one sample taken out of the delay it holds: from B when B
has one (``(+ : F) ~ B'``, B = z^-1 B'), else from F with a unit delay after the loop
(``((+ : F') ~ B) : @(1)``, F = z^-1 F'; the output of the FAUST loop is y one sample
early). Every path through the part taken from has at least one sample of delay (the
loop's *horizon*), so the program is exact.

After Orlarey, Fober, Letz, "FAUST: an efficient functional approach to DSP
programming", New Computational Paradigms for Computer Music, 2009.
"""

from __future__ import annotations

import math

import torch

from ..atomic import atomic_write
from ..timedomain import realization as r
from ..timedomain.render import realize_system

__all__ = ["to_faust"]


def to_faust(system, fs=None, path=None, name: str = "flamo") -> str:
    """Write a FAUST program of a system with its current effective parameters.

    Parameters
    ----------
    system : flamo.DSPModule
        Any module or system with a time-domain realization (see :func:`flamo.render`).
    fs : float, optional
        Sample rate in Hz at which filters designed in Hz or seconds are realized (their
        sections are written as numbers: the program is exact at this rate only).
    path : str or os.PathLike, optional
        Where to write the program (atomically); the text is returned either way.
    name : str
        The program's ``declare name``.

    Returns
    -------
    str
        The FAUST source, ``process`` with the system's inputs and outputs in order.
        Compiled in double precision (``faust -double``) it computes what
        :func:`flamo.render` computes, up to rounding.

    Examples
    --------
    >>> import flamo
    >>> echo = flamo.Recursion(flamo.Delay([3.0]), flamo.Gain([[0.5]]))
    >>> print(flamo.export.to_faust(echo).splitlines()[-1])
    process = n0;
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"to_faust: name must be an identifier, got {name!r}")
    with torch.no_grad():
        root = realize_system(system, fs)
    writer = _Writer()
    top = writer.emit(root)
    n_out, n_in = root.shape
    lines = [f"// {type(system).__name__}: {n_in} input(s), {n_out} output(s), written by "
             f"flamo.export.to_faust" + (f" at fs = {float(fs):g} Hz" if fs is not None else ""),
             f'declare name "{name}";', ""]
    lines += [f"{key} = {expr};" for key, expr in writer.definitions]
    lines += ["", f"process = {top};"]
    text = "\n".join(lines) + "\n"
    if path is not None:
        atomic_write(path, lambda tmp: tmp.write_text(text))
    return text


def _num(v: float) -> str:
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"to_faust: a coefficient is {v}; only finite parameters can be exported")
    return repr(v)


def _values(t: torch.Tensor):
    return t.detach().to("cpu", torch.float64).numpy()


def _bus(n: int) -> str:
    return "_" if n == 1 else f"par(i, {n}, _)"


def _parallel(exprs) -> str:
    return exprs[0] if len(exprs) == 1 else "(" + ", ".join(exprs) + ")"


def _matrix(entries, n_in: int) -> str:
    """entries[i][j]: a one-in one-out expression from input j to output i."""
    rows = [e[0] if n_in == 1 else "(" + ", ".join(f"({x})" for x in e) + " :> _)"
            for e in entries]
    if len(rows) == 1 and n_in == 1:
        return rows[0]
    return f"({_bus(n_in)} <: {_parallel(rows)})"


def _fir(taps) -> str:
    terms = [f"*({_num(b)})" if k == 0 else f"(@({k}) : *({_num(b)}))" for k, b in enumerate(taps)]
    return terms[0] if len(terms) == 1 else "(_ <: " + ", ".join(terms) + " :> _)"


def _rational(b, a) -> str:
    """B(z)/A(z) with a[0] = 1 in direct form I: v = sum b_k x[n-k], y = v - sum a_k y[n-k]
    (in float32 it rounds far less than direct form II, whose state carries 1/A's gain)."""
    numerator = _fir(b)
    feedback = [(k, -ak) for k, ak in enumerate(a) if k >= 1 and ak != 0.0]
    if not feedback:
        return numerator
    # the input of the feedback path is y[n - 1] (the delay of ~): tap k reads @(k - 1)
    terms = [f"*({_num(c)})" if k == 1 else f"(@({k - 1}) : *({_num(c)}))" for k, c in feedback]
    fb = terms[0] if len(terms) == 1 else "(_ <: " + ", ".join(terms) + " :> _)"
    return f"({numerator} : (+ ~ {fb}))"


def _advance(node):
    """The node with one sample less delay on every path (its horizon is >= 1)."""
    if isinstance(node, r.Delays):
        return r.Delays(node.delays - 1)
    if isinstance(node, r.DelayGains):
        return r.DelayGains(node.delays - 1, node.params[0])
    if isinstance(node, r.Chain):
        key = [p.horizon for p in node.parts].index(node.horizon)
        return r.Chain([_advance(p) if i == key else p for i, p in enumerate(node.parts)])
    if isinstance(node, r.Sum):
        return r.Sum([_advance(p) for p in node.parts])
    if isinstance(node, r.Loop):
        # z^-1 y = z^-1 F (x + B y)  =>  y' = F' (x + (B z^-1) y')
        m = node.feedback.shape[0]
        unit = r.Delays(torch.ones(m, dtype=torch.int64))
        return r.Loop(_advance(node.forward), r.Chain([node.feedback, unit]), node.name)
    raise ValueError(f"to_faust: cannot take a sample of delay out of {type(node).__name__}")


class _Writer:
    def __init__(self):
        self.definitions = []

    def define(self, expr: str) -> str:
        key = f"n{len(self.definitions)}"
        self.definitions.append((key, expr))
        return key

    def emit(self, node) -> str:
        key = self.define("")  # reserve the name: parents are defined before their parts
        index = len(self.definitions) - 1
        self.definitions[index] = (key, self._expr(node))
        return key

    def _expr(self, node) -> str:
        n_out, n_in = node.shape
        if isinstance(node, r.Gains):
            return _parallel([f"*({_num(g)})" for g in _values(node.params[0])])
        if isinstance(node, r.MatrixGain):
            a = _values(node.params[0])
            return _matrix([[f"*({_num(v)})" for v in row] for row in a], n_in)
        if isinstance(node, r.Delays):
            return _parallel([f"@({int(m)})" if m else "_" for m in node.delays.tolist()])
        if isinstance(node, r.DelayGains):
            g, m = _values(node.params[0]), node.delays.tolist()
            return _matrix([[f"@({m[i][j]}) : *({_num(g[i, j])})" for j in range(n_in)]
                            for i in range(n_out)], n_in)
        if isinstance(node, r.FIRBank):
            taps = _values(node.params[0])
            if node.diagonal:
                return _parallel([_fir(t) for t in taps])
            return _matrix([[_fir(t) for t in row] for row in taps], n_in)
        if isinstance(node, r.SOSBank):
            sos = _values(node.params[0])
            return _parallel(["(" + " : ".join(_rational(s[:3], s[3:]) for s in line) + ")"
                              for line in sos])
        if isinstance(node, r.RationalBank):
            b, a = (_values(p) for p in node.params)
            return _parallel([_rational(bi, ai) for bi, ai in zip(b, a)])
        if isinstance(node, r.Chain):
            return "(" + " : ".join(self.emit(p) for p in node.parts) + ")"
        if isinstance(node, r.Sum):
            parts = ", ".join(self.emit(p) for p in node.parts)
            return f"({_bus(n_in)} <: ({parts}) :> {_bus(n_out)})"
        if isinstance(node, r.Loop):
            m = node.forward.shape[1]
            add = "+" if m == 1 else f"({_bus(2 * m)} :> {_bus(m)})"
            if node.feedback.horizon >= 1:
                return f"(({add} : {self.emit(node.forward)}) ~ {self.emit(_advance(node.feedback))})"
            loop = f"(({add} : {self.emit(_advance(node.forward))}) ~ {self.emit(node.feedback)})"
            return f"({loop} : {_parallel(['@(1)'] * n_out)})"
        raise TypeError(f"to_faust: unknown realization node {type(node).__name__}")
