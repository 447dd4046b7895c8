r"""Render systems built with ``flamo`` in the time domain, with the same parameters.

Every comparison between frequency sampling and the time-domain baselines must run the
*same* system.  This module reads the parameters out of a library-built system -- keeping
the autograd graph to the module parameters, so a time-domain loss back-propagates to the
library's own ``nn.Parameter`` s -- and hands them to :func:`baselines.fdn_block` or
:func:`baselines.sosfilt`.

Recognized structures
---------------------
FDN: the layout read by :func:`flamo.reverb.fdn_structure` with one input and one output,
whose loop attenuation and tone module have gains and/or second-order sections
(:class:`flamo.reverb.FDNStructure`). The reverberant part runs in :func:`baselines.fdn_block`
(H(z) = c^T (I - D(z) A)^-1 D(z) b), the tone after it through :func:`baselines.sosfilt`,
and the direct gain is added at n = 0.

SOS cascade: a ``flamo.SOS`` module, (K, 6) -> one channel, (N, K, 6) -> N channels.

Delays must be integer-valued (a fractional delay has no exact time-domain counterpart
here); their gradient is not propagated (integer lengths are not differentiable).
"""

from __future__ import annotations

import numbers
from typing import Optional

import torch

import flamo
from flamo.reverb import fdn_structure

from .fdn import fdn_impulse_response
from .iir import sosfilt

__all__ = ["render"]


def render(system, length: int, fs: Optional[float] = None, method: str = "block",
           backend: Optional[str] = None) -> torch.Tensor:
    """Impulse response of a library-built system computed in the time domain.

    Parameters
    ----------
    system : flamo.DSPModule
        A single-input single-output FDN (see the module docstring) or a ``flamo.SOS``
        module.
    length : int
        Number of samples, >= 1.
    fs : float, optional
        Sample rate in Hz of the rendering, needed when the FDN has modules designed in Hz
        or seconds (attenuation from T60, filters): their sections are designed at ``fs``.
    method : {"block", "naive"}
        FDN algorithm: :func:`baselines.fdn_block` (default) or the test reference
        :func:`baselines.fdn_naive`.  Ignored for SOS modules.
    backend : {"scipy", "torch"}, optional
        Backend of :func:`baselines.sosfilt` for SOS modules and an FDN's tone filter
        (default: scipy on CPU). The block FDN runs its loop filters in torch.

    Returns
    -------
    torch.Tensor
        ``h[n]``, n = 0 .. length - 1, dtype/device of the parameters: shape (length,) for
        an FDN or a (K, 6) SOS module, (length, N) for an (N, K, 6) SOS module (the
        diagonal of its N x N impulse response).  Differentiable w.r.t. the module
        parameters.

    Raises
    ------
    ValueError
        For an FDN with more than one input or output, non-integer delays, or a loop
        attenuation or tone module without gain or section form (the message says which).
    """
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1:
        raise ValueError(f"render: length must be an int >= 1, got {length!r}")
    if isinstance(system, flamo.SOS):
        sos = system.sos
        if sos.ndim not in (2, 3):
            raise ValueError(f"render: SOS module with batch dims is not supported, got sos "
                             f"of shape {tuple(sos.shape)}")
        x = torch.zeros(int(length), dtype=sos.dtype, device=sos.device)
        x[0] = 1.0
        return sosfilt(sos, x, backend=backend)  # (length,) or (length, N), time first
    fdn = fdn_structure(system, fs=fs)
    if fdn.shape != (1, 1):
        raise ValueError(f"render: time-domain rendering supports an FDN with one input and one "
                         f"output, got shape {fdn.shape}")
    A = fdn.A
    h = fdn_impulse_response(int(length), fdn.m, A, fdn.b[:, 0], fdn.c[0], 0.0, g=fdn.gains,
                             sos=fdn.sections, method=method)
    if fdn.tone is not None:
        gains, sections = fdn.tone_gains, fdn.tone_sections
        if sections is not None:
            h = sosfilt(sections[0].to(A.dtype), h, backend=backend)
        if gains is not None:
            h = gains.to(A.dtype) * h
    impulse = torch.zeros_like(h)
    impulse[0] = 1.0
    return h + fdn.d[0, 0].to(A.dtype) * impulse
