"""The sizes the SPD-root kernel takes, importable without Triton: read by its dispatch (`spd_sqrt`) and by the
kernel's launcher (`spd_sqrt_triton`)."""

MAX_N = 64  # the kernel's largest n (one program per matrix, padded to at most 64 x 64)
