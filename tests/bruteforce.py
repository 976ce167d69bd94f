"""A deliberately naive convolution that counts its own multiplications.

It is the reference for the property tests: it computes real outputs (checked
against ``jax.lax.conv_general_dilated``) and counts one MAC per kernel tap of
every output value, separately for taps that land on padding.
"""

import numpy as np

from sepconv.cost import padding_amounts


def naive_conv(x, w, stride=(1, 1), padding="SAME", dilation=(1, 1), groups=1):
    """``x``: (H, W, C_in); ``w``: (K_h, K_w, C_in/groups, C_out). Returns (y, macs, macs_on_real_input)."""
    h, wd, c_in = x.shape
    kh, kw, cpg, c_out = w.shape
    assert cpg * groups == c_in
    out_per_group = c_out // groups
    pads = [padding_amounts(h, kh, stride[0], padding, dilation[0]),
            padding_amounts(wd, kw, stride[1], padding, dilation[1])]
    xp = np.pad(x, (pads[0], pads[1], (0, 0)))
    real = np.pad(np.ones((h, wd), bool), (pads[0], pads[1]))
    oh = (xp.shape[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((oh, ow, c_out), dtype=np.float64)
    macs = real_macs = 0
    for i in range(oh):
        for j in range(ow):
            for o in range(c_out):
                g = o // out_per_group
                acc = 0.0
                for a in range(kh):
                    for b in range(kw):
                        r, c = i * stride[0] + a * dilation[0], j * stride[1] + b * dilation[1]
                        for ci in range(cpg):
                            acc += xp[r, c, g * cpg + ci] * w[a, b, ci, o]
                            macs += 1
                            real_macs += int(real[r, c])
                y[i, j, o] = acc
    return y, macs, real_macs
