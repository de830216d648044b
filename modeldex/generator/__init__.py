"""Reproducing preview images the way AUTOMATIC1111 made them. torch and diffusers are imported lazily, inside functions."""
