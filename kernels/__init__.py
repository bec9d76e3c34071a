"""Hot-path kernels, each beside the plain-torch reference it is tested against (installed as workbench.kernels).

adamw8bit_cpu: the fused CPU pass of AdamW8bit (numba); its reference is AdamW8bit(fused=False).
"""
