"""modeldex: identify, sort, index, download and reproduce Stable Diffusion model files.

The package root stays import-light: nothing here pulls torch, diffusers or Textual.
"""

__version__ = "0.1.0"
