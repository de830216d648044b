"""Best-effort generation parameters from ComfyUI's PNG metadata.

ComfyUI stores the executed graph (`prompt`, API format: `{"id": {"class_type", "inputs"}}` where a linked input
is `[source_id, output_index]`) and the editor graph (`workflow`: nodes with `widgets_values`, plus a `links`
table). There is no infotext: the parameters are found by following links from a sampler node to its prompts
(CLIPTextEncode), model (CheckpointLoaderSimple, through LoRA loaders) and latent (EmptyLatentImage).
Sampler and scheduler names become A1111's (`dpmpp_2m` + `karras` -> `DPM++ 2M` + `Karras`); the ComfyUI names
stay in `other`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from modeldex.errors import GenerationError
from modeldex.generator.params import GenerationParams, NoParametersError, Resource

Graph = dict[str, dict[str, Any]]

SAMPLER_NAMES = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
    "lcm": "LCM",
    "restart": "Restart",
}
SCHEDULER_NAMES = {
    "normal": "Normal",
    "karras": "Karras",
    "exponential": "Exponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
    "ddim_uniform": "DDIM",
    "beta": "Beta",
    "kl_optimal": "KL Optimal",
}
_SAMPLER_TYPES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
# Widget order of the nodes read from an editor `workflow` (the API `prompt` names its inputs).
_WIDGETS: dict[str, list[str | None]] = {
    "KSampler": ["seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"],
    "KSamplerAdvanced": ["add_noise", "noise_seed", None, "steps", "cfg", "sampler_name", "scheduler"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "UNETLoader": ["unet_name"],
    "CLIPTextEncode": ["text"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "EmptySD3LatentImage": ["width", "height", "batch_size"],
    "LoraLoader": ["lora_name", "strength_model", "strength_clip"],
    "LoraLoaderModelOnly": ["lora_name", "strength_model"],
    "VAELoader": ["vae_name"],
    "KSamplerSelect": ["sampler_name"],
    "BasicScheduler": ["scheduler", "steps", "denoise"],
    "RandomNoise": ["noise_seed"],
    "CLIPSetLastLayer": ["stop_at_clip_layer"],
}
_MAX_HOPS = 64


def params_from_comfyui(prompt: object = None, workflow: object = None) -> GenerationParams:
    """Parameters from ComfyUI's `prompt` (preferred) or `workflow` JSON (str or parsed).

    Raises `NoParametersError` when neither holds a sampler node, `GenerationError` for text that is not JSON.
    """
    graph = _as_graph(_load(prompt, "prompt")) if prompt is not None else None
    if not graph and workflow is not None:
        graph = _graph_from_workflow(_load(workflow, "workflow"))
    if not graph:
        raise NoParametersError("the ComfyUI metadata holds no node graph")
    sampler_id = _main_sampler(graph)
    if sampler_id is None:
        raise NoParametersError("the ComfyUI graph has no sampler node (KSampler or SamplerCustom)")
    return _read_sampler(graph, sampler_id)


def _load(value: object, what: str) -> object:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise GenerationError(f"the ComfyUI {what} is not valid JSON ({exc})") from None
        except RecursionError:
            raise GenerationError(f"the ComfyUI {what} is nested too deeply to read") from None
    return value


def _as_graph(data: object) -> Graph:
    if not isinstance(data, Mapping):
        return {}
    return {
        str(node_id): dict(node)
        for node_id, node in data.items()
        if isinstance(node, Mapping) and isinstance(node.get("class_type"), str)
    }


def _graph_from_workflow(data: object) -> Graph:
    """Turn an editor workflow into API form: named inputs for links, known widgets by position."""
    if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), list):
        return {}
    links: dict[int, tuple[str, int]] = {}
    for link in data.get("links") or []:
        if isinstance(link, list) and len(link) >= 3 and isinstance(link[0], int) and isinstance(link[2], int):
            links[link[0]] = (str(link[1]), link[2])
    graph: Graph = {}
    for node in data["nodes"]:
        if not isinstance(node, Mapping) or not isinstance(node.get("type"), str):
            continue
        inputs: dict[str, Any] = {}
        widgets = node.get("widgets_values")
        if isinstance(widgets, list):
            for name, value in zip(_WIDGETS.get(node["type"], []), widgets, strict=False):
                if name is not None:
                    inputs[name] = value
        for slot in node.get("inputs") or []:
            if not isinstance(slot, Mapping) or not isinstance(slot.get("name"), str):
                continue
            link_id = slot.get("link")
            if isinstance(link_id, int) and link_id in links:
                inputs[slot["name"]] = list(links[link_id])
        graph[str(node.get("id"))] = {"class_type": node["type"], "inputs": inputs}
    return graph


def _main_sampler(graph: Graph) -> str | None:
    """The first-pass sampler: one fed by an empty latent if there is one, else the first by node id."""
    samplers = sorted((nid for nid, node in graph.items() if node["class_type"] in _SAMPLER_TYPES), key=_id_order)
    for node_id in samplers:
        latent = _follow(graph, node_id, ("latent_image",))
        if latent is not None and "width" in _inputs(graph, latent):
            return node_id
    return samplers[0] if samplers else None


def _id_order(node_id: str) -> tuple[int, int | str]:
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def _inputs(graph: Graph, node_id: str) -> dict[str, Any]:
    inputs = graph.get(node_id, {}).get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _link(value: object) -> str | None:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int):
        return str(value[0])
    return None


def _follow(graph: Graph, node_id: str, names: tuple[str, ...]) -> str | None:
    """The node linked to the first of these inputs that holds a link."""
    for name in names:
        target = _link(_inputs(graph, node_id).get(name))
        if target is not None and target in graph:
            return target
    return None


def _read_sampler(graph: Graph, sampler_id: str) -> GenerationParams:
    inputs = _inputs(graph, sampler_id)
    params = GenerationParams()
    comfy: dict[str, Any] = {"sampler_node": graph[sampler_id]["class_type"]}
    seed = inputs.get("seed", inputs.get("noise_seed"))
    steps, scheduler, sampler_name = inputs.get("steps"), inputs.get("scheduler"), inputs.get("sampler_name")
    denoise = inputs.get("denoise")
    # SamplerCustom: the sampler, the sigmas and (Advanced) the noise and guider are separate nodes.
    select = _follow(graph, sampler_id, ("sampler",))
    if select is not None:
        sampler_name = _inputs(graph, select).get("sampler_name", sampler_name)
    sigmas = _follow(graph, sampler_id, ("sigmas",))
    if sigmas is not None:
        sigma_inputs = _inputs(graph, sigmas)
        steps, scheduler = sigma_inputs.get("steps", steps), sigma_inputs.get("scheduler", scheduler)
        denoise = sigma_inputs.get("denoise", denoise)
    noise = _follow(graph, sampler_id, ("noise",))
    if noise is not None:
        seed = _inputs(graph, noise).get("noise_seed", seed)
    cfg = inputs.get("cfg")
    guider = _follow(graph, sampler_id, ("guider",))
    if guider is not None:
        cfg = _inputs(graph, guider).get("cfg", cfg)

    params.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    params.steps = steps if isinstance(steps, int) and not isinstance(steps, bool) else None
    params.cfg_scale = _finite(cfg)
    if isinstance(sampler_name, str):
        params.sampler = SAMPLER_NAMES.get(sampler_name, sampler_name)
        comfy["sampler_name"] = sampler_name
    if isinstance(scheduler, str):
        params.schedule_type = SCHEDULER_NAMES.get(scheduler, scheduler)
        comfy["scheduler"] = scheduler
    strength = _finite(denoise)
    if strength is not None and strength != 1:
        params.denoising_strength = strength

    holder = guider if guider is not None else sampler_id
    params.prompt = "\n".join(_texts(graph, _follow(graph, holder, ("positive", "conditioning")), "positive"))
    params.negative_prompt = "\n".join(_texts(graph, _follow(graph, holder, ("negative",)), "negative"))
    _read_model(graph, _follow(graph, holder, ("model",)), params)
    _read_latent(graph, _follow(graph, sampler_id, ("latent_image",)), params)
    params.other["comfyui"] = comfy
    return params


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _texts(graph: Graph, node_id: str | None, side: str) -> list[str]:
    """Prompt texts upstream of a conditioning input (through combine, concat, area and ControlNet nodes; a node
    with both `positive` and `negative` inputs is followed on `side`)."""
    found: list[str] = []
    seen: set[str] = set()
    stack = [node_id] if node_id is not None else []
    while stack and len(seen) < _MAX_HOPS:
        current = stack.pop()
        if current in seen or current not in graph:
            continue
        seen.add(current)
        inputs = _inputs(graph, current)
        text = _string_input(graph, inputs, ("text", "text_g", "prompt"))
        if text is not None:
            found.append(text)
            continue
        # Conditioning-carrying inputs, in reverse so the first one is read first.
        for name, value in reversed(list(inputs.items())):
            target = _link(value)
            if target is not None and ("conditioning" in name or name == side):
                stack.append(target)
    return found


def _string_input(graph: Graph, inputs: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = inputs.get(name)
        for _ in range(_MAX_HOPS):
            target = _link(value)
            if target is None:
                break
            # A text widget turned into an input: read it from the primitive or string node it links to.
            source = _inputs(graph, target)
            value = next((source[k] for k in ("text", "string", "value", "text_g") if k in source), None)
        if isinstance(value, str):
            return value
    return None


def _read_model(graph: Graph, node_id: str | None, params: GenerationParams) -> None:
    loras: list[Resource] = []
    for _ in range(_MAX_HOPS):
        if node_id is None:
            break
        node = graph[node_id]
        inputs = _inputs(graph, node_id)
        name = inputs.get("ckpt_name", inputs.get("unet_name"))
        if isinstance(name, str):
            params.model = PurePath(name.replace("\\", "/")).stem
            params.other.setdefault("comfyui_files", {})["checkpoint"] = name
            break
        lora = inputs.get("lora_name")
        if isinstance(lora, str):
            loras.append(
                Resource(
                    "lora",
                    PurePath(lora.replace("\\", "/")).stem,
                    weight=_finite(inputs.get("strength_model")),
                    extra={"file": lora, "class_type": node["class_type"]},
                )
            )
        node_id = _follow(graph, node_id, ("model",))
    params.resources.extend(reversed(loras))  # loaded nearest the checkpoint first


def _read_latent(graph: Graph, node_id: str | None, params: GenerationParams) -> None:
    for _ in range(_MAX_HOPS):
        if node_id is None:
            return
        inputs = _inputs(graph, node_id)
        width, height = inputs.get("width"), inputs.get("height")
        if isinstance(width, int) and isinstance(height, int):
            params.width, params.height = width, height
            return
        node_id = _follow(graph, node_id, ("samples", "latent", "latent_image", "pixels"))
