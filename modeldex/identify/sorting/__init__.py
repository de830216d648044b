"""Sorting identified files into a WebUI or ComfyUI library: plan first, then a journalled, undoable apply."""
