r"""Render systems built with ``flamo`` in the time domain, with the same parameters.

Every comparison between frequency sampling and the time-domain baselines must run the
*same* system.  This module reads the parameters out of a library-built system -- keeping
the autograd graph to the module parameters, so a time-domain loss back-propagates to the
library's own ``nn.Parameter`` s -- and hands them to :func:`baselines.fdn_block` or
:func:`baselines.sosfilt`.

Recognized structures
---------------------
FDN: the structure read by :func:`flamo.reverb.structure.fdn_parameters` (re-exported
here), whose transfer function is exactly that of :func:`baselines.fdn_block`.

SOS cascade: a ``flamo.SOS`` module, (K, 6) -> one channel, (N, K, 6) -> N channels.

Delays must be integer-valued (a fractional delay has no exact time-domain counterpart
here); their gradient is not propagated (integer lengths are not differentiable).
"""

from __future__ import annotations

import numbers
from typing import Optional

import torch

import flamo
from flamo.reverb.structure import FDNParameters, fdn_parameters

from .fdn import fdn_impulse_response
from .iir import sosfilt

__all__ = ["FDNParameters", "fdn_parameters", "render"]


def render(system, length: int, method: str = "block", backend: Optional[str] = None
           ) -> torch.Tensor:
    """Impulse response of a library-built system computed in the time domain.

    Parameters
    ----------
    system : flamo.DSPModule
        An FDN (see :func:`fdn_parameters`) or a ``flamo.SOS`` module.
    length : int
        Number of samples, >= 1.
    method : {"block", "naive"}
        FDN algorithm: :func:`baselines.fdn_block` (default) or the test reference
        :func:`baselines.fdn_naive`.  Ignored for SOS modules.
    backend : {"scipy", "torch"}, optional
        Backend of :func:`baselines.sosfilt` for SOS modules (default: scipy on CPU).
        Ignored for FDNs (the block FDN runs its filters in torch).

    Returns
    -------
    torch.Tensor
        ``h[n]``, n = 0 .. length - 1, dtype/device of the parameters: shape (length,) for
        an FDN or a (K, 6) SOS module, (length, N) for an (N, K, 6) SOS module (the
        diagonal of its N x N impulse response).  Differentiable w.r.t. the module
        parameters.
    """
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1:
        raise ValueError(f"render: length must be an int >= 1, got {length!r}")
    if isinstance(system, flamo.SOS):
        sos = system.sos
        if sos.ndim not in (2, 3):
            raise ValueError(f"render: SOS module with batch dims is not supported, got sos "
                             f"of shape {tuple(sos.shape)}")
        n_ch = sos.shape[0] if sos.ndim == 3 else 1
        x = torch.zeros(n_ch, int(length), dtype=sos.dtype, device=sos.device)
        x[:, 0] = 1.0
        h = sosfilt(sos, x, backend=backend)
        return h[0] if sos.ndim == 2 else h.T
    params = fdn_parameters(system)
    return fdn_impulse_response(int(length), method=method, **params.as_kwargs())
