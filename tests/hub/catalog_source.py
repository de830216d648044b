"""The source of the shipped fixture catalogue, modeldex/hub/fixtures/catalog.json.

Run `python tests/hub/catalog_source.py` to rewrite the JSON; a test checks that the file matches this source.

The catalogue is a `/api/v1/models` answer (`{"items": [...], "metadata": {}}`) with invented ids, names and hashes
in CivitAI's exact shapes: every ModelType, several base models, multi-version models, files of several types and
formats with all six hash types, images with full A1111 meta, ComfyUI meta, CivitAI-generator meta, null meta and
video previews, an archived model whose version has no files, a taken-down model, an early-access version, a version
without an `images` key, a model whose creator was deleted, NSFW models and images.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).resolve().parents[2] / "modeldex" / "hub" / "fixtures" / "catalog.json"
SITE = "https://civitai.com"
IMAGE_HOST = "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA"

J = dict[str, Any]


def _hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest().upper()[:length]


def hashes(file_id: int) -> J:
    """Six invented but well-formed hashes; AutoV2 is the SHA256 prefix, as on CivitAI."""
    sha = _hex(f"modeldex-fixture-file-{file_id}", 64)
    return {
        "AutoV1": _hex(f"autov1-{file_id}", 8),
        "AutoV2": sha[:10],
        "SHA256": sha,
        "CRC32": _hex(f"crc32-{file_id}", 8),
        "BLAKE3": _hex(f"blake3-{file_id}", 64),
        "AutoV3": _hex(f"autov3-{file_id}", 12),
    }


def file(
    file_id: int,
    version_id: int,
    name: str,
    size_kb: float,
    *,
    kind: str = "Model",
    fmt: str = "SafeTensor",
    fp: str | None = "fp16",
    size: str | None = "pruned",
    primary: bool = True,
) -> J:
    metadata: J = {"format": fmt}
    if fp is not None:
        metadata["fp"] = fp
    if size is not None:
        metadata["size"] = size
    url = f"{SITE}/api/download/models/{version_id}"
    if not primary:
        url += f"?type={kind.replace(' ', '%20')}&format={fmt}"
    return {
        "id": file_id,
        "sizeKB": size_kb,
        "name": name,
        "type": kind,
        "pickleScanResult": "Success",
        "pickleScanMessage": "No Pickle imports" if fmt == "SafeTensor" else "1 safe import",
        "virusScanResult": "Success",
        "virusScanMessage": None,
        "scannedAt": "2024-03-02T11:20:31.512Z",
        "metadata": metadata,
        "hashes": hashes(file_id),
        "primary": primary,
        "downloadUrl": url,
    }


def image(image_id: int, level: int, width: int, height: int, meta: J | None, *, video: bool = False) -> J:
    ext = "mp4" if video else "jpeg"
    uuid = _hex(f"image-{image_id}", 32).lower()
    uuid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
    return {
        "id": image_id,
        "url": f"{IMAGE_HOST}/{uuid}/width={width}/{image_id}.{ext}",
        "nsfwLevel": level,
        "width": width,
        "height": height,
        "hash": "U" + _hex(f"blurhash-{image_id}", 27).replace("0", "~").replace("1", "%"),
        "type": "video" if video else "image",
        "metadata": {"hash": "U7Fhp@~q?bIU00t7%MRj", "size": 98304 + image_id % 4096, "width": width, "height": height}
        | ({"duration": 4.2, "audio": False} if video else {}),
        "minor": False,
        "poi": False,
        "hasMeta": meta is not None,
        "hasPositivePrompt": bool(meta and meta.get("prompt")),
        "onSite": False,
        "remixOfId": None,
        "meta": meta,
    }


def a1111_meta(
    prompt: str,
    negative: str,
    *,
    sampler: str,
    cfg: float,
    steps: int,
    seed: int,
    size: tuple[int, int],
    model: str,
    model_hash: str,
    clip_skip: int | None = None,
    loras: dict[str, tuple[str, float]] | None = None,
    hires: J | None = None,
    extra: J | None = None,
) -> J:
    """Meta as CivitAI derives it from A1111 infotext: A1111 key spellings next to camelCase ones."""
    meta: J = {
        "prompt": prompt,
        "negativePrompt": negative,
        "sampler": sampler,
        "cfgScale": cfg,
        "steps": steps,
        "seed": seed,
        "Size": f"{size[0]}x{size[1]}",
        "Model": model,
        "Model hash": model_hash.lower(),
    }
    if clip_skip is not None:
        meta["Clip skip"] = str(clip_skip)
    resources: list[J] = [{"hash": model_hash.lower(), "name": model, "type": "model"}]
    meta_hashes: J = {"model": model_hash.lower()}
    for name, (lora_hash, weight) in (loras or {}).items():
        resources.append({"name": name, "type": "lora", "weight": weight})
        meta_hashes[f"lora:{name}"] = lora_hash.lower()
    if hires:
        meta.update(hires)
    meta["hashes"] = meta_hashes
    meta["resources"] = resources
    meta["Version"] = "v1.10.1"
    if extra:
        meta.update(extra)
    return meta


def civitai_generator_meta(prompt: str, negative: str, seed: int, resources: list[J], *, size: str) -> J:
    """Meta written by CivitAI's own generator: civitaiResources instead of hashes and <lora:> tags."""
    return {
        "prompt": prompt,
        "negativePrompt": negative,
        "cfgScale": 4,
        "steps": 30,
        "sampler": "Euler a",
        "seed": seed,
        "Size": size,
        "clipSkip": 2,
        "workflow": "txt2img",
        "civitaiResources": resources,
    }


def comfy_meta(prompt: str, seed: int) -> J:
    """Meta parsed from a ComfyUI PNG: a few flat keys and the whole graph under `comfy`."""
    graph = {
        "prompt": {
            "3": {
                "class_type": "KSampler",
                "inputs": {
                    "seed": seed,
                    "steps": 28,
                    "cfg": 3.5,
                    "sampler_name": "euler",
                    "scheduler": "simple",
                    "denoise": 1,
                    "model": ["4", 0],
                    "positive": ["6", 0],
                    "negative": ["7", 0],
                    "latent_image": ["5", 0],
                },
            },
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "fluxDemo_dev.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        },
        "workflow": {"last_node_id": 7, "last_link_id": 9, "nodes": [], "links": [], "version": 0.4},
    }
    return {"prompt": prompt, "seed": seed, "steps": 28, "cfgScale": 3.5, "sampler": "euler", "comfy": graph}


def version(
    version_id: int,
    name: str,
    base: str,
    published: str,
    files: list[J],
    images: list[J] | None,
    *,
    trained_words: list[str] | None = None,
    index: int = 0,
    level: int = 1,
    downloads: int = 100,
    early_access_ends: str | None = None,
    description: str | None = None,
) -> J:
    out: J = {
        "id": version_id,
        "index": index,
        "name": name,
        "baseModel": base,
        "baseModelType": "Standard",
        "createdAt": published.replace(":05:", ":00:"),
        "publishedAt": published,
        "availability": "EarlyAccess" if early_access_ends else "Public",
        "nsfwLevel": level,
        "description": description,
        "trainedWords": trained_words or [],
        "uploadType": "Created",
        "usageControl": "Download",
        "earlyAccessEndsAt": early_access_ends,
        "stats": {"downloadCount": downloads, "ratingCount": 0, "rating": 0, "thumbsUpCount": downloads // 7},
        "supportsGeneration": base in ("SD 1.5", "SDXL 1.0", "Pony", "Illustrious", "Flux.1 D"),
        "files": files,
    }
    if early_access_ends:
        out["earlyAccessConfig"] = {
            "timeframe": 7,
            "chargeForDownload": True,
            "downloadPrice": 500,
            "chargeForGeneration": False,
        }
    if images is not None:
        out["images"] = images
    out["downloadUrl"] = f"{SITE}/api/download/models/{version_id}" if files else None
    if not files:
        del out["downloadUrl"]
    return out


def model(
    model_id: int,
    name: str,
    kind: str,
    creator: J | None,
    tags: list[str],
    versions: list[J],
    *,
    nsfw: bool = False,
    level: int = 1,
    stats: tuple[int, int, int, int] = (1000, 100, 1, 10),
    mode: str | None = None,
    description: str = "",
) -> J:
    downloads, up, down, comments = stats
    out: J = {
        "id": model_id,
        "name": name,
        "description": description or f"<p>{name}: a fixture model for modeldex tests.</p>",
        "allowNoCredit": True,
        "allowCommercialUse": ["Image", "RentCivit"],
        "allowDerivatives": True,
        "allowDifferentLicense": True,
        "type": kind,
        "minor": False,
        "sfwOnly": False,
        "poi": False,
        "nsfw": nsfw,
        "nsfwLevel": level,
        "availability": "Public",
        "cosmetic": None,
        "supportsGeneration": any(v.get("supportsGeneration") for v in versions),
        "stats": {
            "downloadCount": downloads,
            "favoriteCount": 0,
            "thumbsUpCount": up,
            "thumbsDownCount": down,
            "commentCount": comments,
            "ratingCount": 0,
            "rating": 0,
            "tippedAmountCount": up // 3,
        },
    }
    if mode is not None:
        out["mode"] = mode
    if creator is not None:
        out["creator"] = creator
    out["tags"] = tags
    out["modelVersions"] = versions
    return out


def creator(username: str, avatar: bool = True) -> J:
    url = f"{IMAGE_HOST}/{_hex('avatar-' + username, 32).lower()}/width=96/{username}.jpeg" if avatar else None
    return {"username": username, "image": url}


NEG = "lowres, bad anatomy, bad hands, text, error, missing fingers, worst quality, low quality, jpeg artifacts"


def build_catalog() -> J:
    """The whole fixture catalogue."""
    pixel = creator("pixelsmith")
    luma = creator("luma_forge")
    noctis = creator("noctis_art", avatar=False)
    kiln = creator("kiln_labs")
    mist = creator("mistwalker")
    tiny = creator("tiny_tensor")
    h = hashes  # AutoV2 of the fixture files, for meta "Model hash" fields
    items: list[J] = []

    # 1. SD 1.5 checkpoint, two versions; images with full A1111 meta (hires fix, a LoRA), a null-meta image.
    items.append(
        model(
            4201,
            "Realistic Demo",
            "Checkpoint",
            pixel,
            ["base model", "photorealistic", "portraits"],
            [
                version(
                    130072,
                    "v5.1",
                    "SD 1.5",
                    "2023-07-25T10:05:00.000Z",
                    [
                        file(96417, 130072, "realisticDemo_v51.safetensors", 2082642.42),
                        file(
                            96418,
                            130072,
                            "realisticDemo_v51.ckpt",
                            4165284.8,
                            fmt="PickleTensor",
                            fp="fp32",
                            size="full",
                            primary=False,
                        ),
                    ],
                    [
                        image(
                            1716342,
                            1,
                            512,
                            768,
                            a1111_meta(
                                "rdemo style, portrait photo of an old fisherman, 85mm, <lora:detailTweak:0.6>",
                                "cartoon, lowres, blurry",
                                sampler="DPM++ 2M Karras",
                                cfg=7,
                                steps=25,
                                seed=3754869890,
                                size=(512, 768),
                                model="realisticDemo_v51",
                                model_hash=h(96417)["AutoV2"],
                                clip_skip=2,
                                loras={"detailTweak": (h(62001)["AutoV3"], 0.6)},
                                extra={
                                    "civitaiResources": [
                                        {"type": "checkpoint", "modelVersionId": 130072},
                                        {"type": "lora", "weight": 0.6, "modelVersionId": 62833},
                                    ]
                                },
                            ),
                        ),
                        image(
                            1716343,
                            1,
                            768,
                            512,
                            a1111_meta(
                                "rdemo style, a lighthouse at dawn, volumetric light",
                                NEG,
                                sampler="Euler a",
                                cfg=6.5,
                                steps=30,
                                seed=1180532,
                                size=(768, 512),
                                model="realisticDemo_v51",
                                model_hash=h(96417)["AutoV2"],
                                hires={
                                    "Denoising strength": "0.45",
                                    "Hires upscale": "2",
                                    "Hires steps": "12",
                                    "Hires upscaler": "4x-UltraSharp",
                                },
                            ),
                        ),
                        image(1716344, 2, 512, 768, None),
                    ],
                    trained_words=["rdemo style"],
                    downloads=9000,
                ),
                version(
                    110001,
                    "v5.0",
                    "SD 1.5",
                    "2023-05-02T09:05:00.000Z",
                    [file(84001, 110001, "realisticDemo_v50.safetensors", 2082630.11)],
                    [image(1400001, 1, 512, 512, None)],
                    trained_words=["rdemo style"],
                    index=1,
                    downloads=3000,
                ),
            ],
            stats=(12000, 3100, 12, 140),
        )
    )

    # 2. SDXL checkpoint with a baked VAE file beside the model, and an inpainting version.
    items.append(
        model(
            5301,
            "Juniper XL",
            "Checkpoint",
            luma,
            ["base model", "sdxl", "general"],
            [
                version(
                    240001,
                    "v9 Lightning",
                    "SDXL Lightning",
                    "2024-02-11T18:05:00.000Z",
                    [
                        file(190001, 240001, "juniperXL_v9Lightning.safetensors", 6775430.35),
                        file(
                            190002,
                            240001,
                            "juniperXL_v9Lightning_vae.safetensors",
                            326798.1,
                            kind="VAE",
                            size=None,
                            primary=False,
                        ),
                    ],
                    [
                        image(
                            2300001,
                            1,
                            832,
                            1216,
                            a1111_meta(
                                "cinematic still of a glass greenhouse in the rain, warm light",
                                "",
                                sampler="DPM++ SDE",
                                cfg=2,
                                steps=6,
                                seed=90210,
                                size=(832, 1216),
                                model="juniperXL_v9Lightning",
                                model_hash=h(190001)["AutoV2"],
                                extra={"Schedule type": "Karras"},
                            ),
                        )
                    ],
                    downloads=42000,
                ),
                version(
                    230010,
                    "v8 Inpainting",
                    "SDXL 1.0",
                    "2023-12-20T08:05:00.000Z",
                    [file(180010, 230010, "juniperXL_v8-inpainting.safetensors", 6775431.0)],
                    [],
                    index=1,
                    downloads=5000,
                ),
            ],
            stats=(47000, 8800, 40, 390),
        )
    )

    # 3. Pony checkpoint, NSFW model: mixed-level images.
    items.append(
        model(
            6101,
            "Velvet Pony",
            "Checkpoint",
            noctis,
            ["anime", "pony", "nsfw"],
            [
                version(
                    320001,
                    "v2.0",
                    "Pony",
                    "2024-05-30T21:05:00.000Z",
                    [file(280001, 320001, "velvetPony_v20.safetensors", 6938040.7)],
                    [
                        image(
                            3900001,
                            4,
                            832,
                            1216,
                            a1111_meta(
                                "score_9, score_8_up, 1girl, evening gown, city lights",
                                "score_4, score_5",
                                sampler="Euler a",
                                cfg=7,
                                steps=25,
                                seed=777,
                                size=(832, 1216),
                                model="velvetPony_v20",
                                model_hash=h(280001)["AutoV2"],
                                clip_skip=2,
                            ),
                        ),
                        image(3900002, 4, 832, 1216, None),
                        image(3900003, 16, 832, 1216, None),
                    ],
                    level=20,
                    downloads=18000,
                )
            ],
            nsfw=True,
            level=20,
            stats=(18000, 2500, 30, 210),
        )
    )

    # 4. Illustrious checkpoint, image made with CivitAI's generator (civitaiResources only).
    items.append(
        model(
            6402,
            "Ink Garden Illustrious",
            "Checkpoint",
            kiln,
            ["anime", "illustration"],
            [
                version(
                    351000,
                    "v1.0",
                    "Illustrious",
                    "2024-10-03T12:05:00.000Z",
                    [file(301000, 351000, "inkGardenIllustrious_v10.safetensors", 6775600.0)],
                    [
                        image(
                            4100001,
                            1,
                            1024,
                            1024,
                            civitai_generator_meta(
                                "masterpiece, best quality, 1girl, ink wash, koi pond",
                                "lowres, worst quality",
                                4242,
                                [
                                    {"type": "checkpoint", "modelVersionId": 351000},
                                    {"type": "lora", "weight": 0.8, "modelVersionId": 412000},
                                ],
                                size="1024x1024",
                            ),
                        )
                    ],
                    downloads=7000,
                )
            ],
            stats=(7000, 900, 3, 44),
        )
    )

    # 5. Flux.1 D checkpoint: a GGUF file and an fp8 SafeTensor; ComfyUI meta.
    items.append(
        model(
            7001,
            "Flux Demo",
            "Checkpoint",
            luma,
            ["base model", "flux"],
            [
                version(
                    401001,
                    "dev fp8",
                    "Flux.1 D",
                    "2024-08-20T15:05:00.000Z",
                    [
                        file(351001, 401001, "fluxDemo_devFp8.safetensors", 11625000.5, fp="fp8"),
                        file(
                            351002,
                            401001,
                            "fluxDemo_devQ8.gguf",
                            12420000.25,
                            fmt="GGUF",
                            fp=None,
                            size=None,
                            primary=False,
                        ),
                    ],
                    [image(4400001, 1, 1024, 1024, comfy_meta("a red fox reading a newspaper, studio photo", 5150))],
                    downloads=25000,
                )
            ],
            stats=(25000, 4100, 9, 260),
        )
    )

    # 6. Textual inversion with a Negative embedding file (TI names come from the trained word).
    items.append(
        model(
            7102,
            "EasyNeg Demo",
            "TextualInversion",
            tiny,
            ["embedding", "negative"],
            [
                version(
                    411002,
                    "v1",
                    "SD 1.5",
                    "2023-03-14T10:05:00.000Z",
                    [
                        file(361002, 411002, "easyneg_demo.safetensors", 24.3, fp=None, size=None),
                        file(
                            361003,
                            411002,
                            "easyneg_demo-neg.safetensors",
                            24.3,
                            kind="Negative",
                            fp=None,
                            size=None,
                            primary=False,
                        ),
                    ],
                    [image(4500001, 1, 512, 512, None)],
                    trained_words=["easyneg_demo"],
                    downloads=60000,
                )
            ],
            stats=(60000, 5200, 20, 300),
        )
    )

    # 7. Hypernetwork (.pt pickle).
    items.append(
        model(
            7203,
            "Watercolor Hypernet",
            "Hypernetwork",
            pixel,
            ["style", "watercolor"],
            [
                version(
                    421003,
                    "v1",
                    "SD 1.5",
                    "2023-01-09T10:05:00.000Z",
                    [
                        file(
                            371003,
                            421003,
                            "watercolorHypernet_v1.pt",
                            85235.1,
                            fmt="PickleTensor",
                            fp="fp32",
                            size="full",
                        )
                    ],
                    [image(4600001, 1, 512, 512, None)],
                    downloads=800,
                )
            ],
            stats=(800, 60, 2, 4),
        )
    )

    # 8. Aesthetic gradient.
    items.append(
        model(
            7304,
            "Soft Light Gradient",
            "AestheticGradient",
            pixel,
            ["style"],
            [
                version(
                    431004,
                    "v1",
                    "SD 1.4",
                    "2022-11-01T10:05:00.000Z",
                    [file(381004, 431004, "softLight.pt", 3.1, fmt="PickleTensor", fp="fp32", size="full")],
                    [],
                    downloads=90,
                )
            ],
            stats=(90, 4, 0, 0),
        )
    )

    # 9. SDXL LoRA with a video preview.
    items.append(
        model(
            8105,
            "Neon Drift XL",
            "LORA",
            mist,
            ["style", "neon", "cyberpunk"],
            [
                version(
                    501005,
                    "v1.0",
                    "SDXL 1.0",
                    "2024-01-22T20:05:00.000Z",
                    [file(451005, 501005, "neonDriftXL_v10.safetensors", 223104.8, size=None)],
                    [
                        image(5100001, 1, 512, 768, None, video=True),
                        image(
                            5100002,
                            1,
                            1024,
                            1024,
                            a1111_meta(
                                "neondrift, night street, rain, <lora:neonDriftXL_v10:0.8>",
                                NEG,
                                sampler="DPM++ 2M",
                                cfg=5,
                                steps=28,
                                seed=31337,
                                size=(1024, 1024),
                                model="juniperXL_v9Lightning",
                                model_hash=h(190001)["AutoV2"],
                                loras={"neonDriftXL_v10": (h(451005)["AutoV3"], 0.8)},
                            ),
                        ),
                    ],
                    trained_words=["neondrift"],
                    downloads=15000,
                )
            ],
            stats=(15000, 2000, 6, 90),
        )
    )

    # 10. Archived SD 1.5 LoRA: the version has no files and no downloadUrl.
    items.append(
        model(
            8206,
            "Retired Ink LoRA",
            "LORA",
            kiln,
            ["style", "ink"],
            [
                version(
                    511006,
                    "v3",
                    "SD 1.5",
                    "2023-06-01T10:05:00.000Z",
                    [],
                    [image(5200001, 1, 512, 512, None)],
                    trained_words=["inkstyle"],
                    downloads=4000,
                )
            ],
            mode="Archived",
            stats=(4000, 500, 5, 30),
        )
    )

    # 11. Flux LoRA whose newest version is in early access (and an older public one).
    items.append(
        model(
            8307,
            "Paper Cut Flux",
            "LORA",
            luma,
            ["style", "papercut", "flux"],
            [
                version(
                    521007,
                    "v2 (early access)",
                    "Flux.1 D",
                    "2026-10-15T10:05:00.000Z",
                    [file(471007, 521007, "paperCutFlux_v2.safetensors", 171970.4, size=None)],
                    [image(5300001, 1, 1024, 1024, None)],
                    trained_words=["papercut"],
                    early_access_ends="2099-01-01T00:00:00.000Z",
                    downloads=120,
                ),
                version(
                    521006,
                    "v1",
                    "Flux.1 D",
                    "2024-09-02T10:05:00.000Z",
                    [file(471006, 521006, "paperCutFlux_v1.safetensors", 171970.4, size=None)],
                    [image(5300002, 1, 1024, 1024, comfy_meta("papercut, a paper fox in a paper forest", 99))],
                    trained_words=["papercut"],
                    index=1,
                    downloads=6000,
                ),
            ],
            stats=(6120, 800, 4, 50),
        )
    )

    # 12. LyCORIS (LoCon) for SDXL.
    items.append(
        model(
            8408,
            "Brushwork LoCon",
            "LoCon",
            mist,
            ["style", "painting"],
            [
                version(
                    531008,
                    "v1",
                    "SDXL 1.0",
                    "2024-03-15T10:05:00.000Z",
                    [file(481008, 531008, "brushworkLoCon_v1.safetensors", 342011.2, size=None)],
                    [image(5400001, 1, 1024, 1024, None)],
                    trained_words=["brushwork"],
                    downloads=2100,
                )
            ],
            stats=(2100, 300, 1, 12),
        )
    )

    # 13. DoRA for Illustrious.
    items.append(
        model(
            8509,
            "Clean Lines DoRA",
            "DoRA",
            kiln,
            ["anime", "lineart"],
            [
                version(
                    541009,
                    "v1",
                    "Illustrious",
                    "2025-01-10T10:05:00.000Z",
                    [file(491009, 541009, "cleanLinesDoRA_v1.safetensors", 116003.9, size=None)],
                    [image(5500001, 1, 1024, 1024, None)],
                    trained_words=["clean lines"],
                    downloads=1300,
                )
            ],
            stats=(1300, 210, 0, 8),
        )
    )

    # 14. ControlNet for SD 1.5.
    items.append(
        model(
            9101,
            "Depth Guide ControlNet",
            "Controlnet",
            tiny,
            ["controlnet", "depth"],
            [
                version(
                    601010,
                    "v1.1",
                    "SD 1.5",
                    "2023-04-20T10:05:00.000Z",
                    [file(551010, 601010, "control_v11f1p_sd15_depth_demo.safetensors", 705661.3)],
                    [image(6100001, 1, 512, 512, None)],
                    downloads=33000,
                )
            ],
            stats=(33000, 1800, 3, 70),
        )
    )

    # 15. Upscaler (ESRGAN .pth), base model "Other".
    items.append(
        model(
            9202,
            "4x Crisp Upscaler",
            "Upscaler",
            tiny,
            ["upscaler"],
            [
                version(
                    611011,
                    "v1",
                    "Other",
                    "2023-02-10T10:05:00.000Z",
                    [
                        file(
                            561011,
                            611011,
                            "4x_Crisp.pth",
                            65536.0,
                            fmt="PickleTensor",
                            fp="fp32",
                            size="full",
                        )
                    ],
                    [image(6200001, 1, 1024, 1024, None)],
                    downloads=21000,
                )
            ],
            stats=(21000, 1500, 2, 60),
        )
    )

    # 16. Motion module (AnimateDiff) with video previews only.
    items.append(
        model(
            9303,
            "Drift Motion Module",
            "MotionModule",
            mist,
            ["animatediff", "motion"],
            [
                version(
                    621012,
                    "v3",
                    "SD 1.5",
                    "2023-12-01T10:05:00.000Z",
                    [
                        file(
                            571012,
                            621012,
                            "driftMotion_v3.ckpt",
                            1635021.7,
                            fmt="PickleTensor",
                            fp="fp16",
                            size="full",
                        )
                    ],
                    [image(6300001, 1, 512, 512, None, video=True), image(6300002, 1, 512, 512, None, video=True)],
                    downloads=9000,
                )
            ],
            stats=(9000, 700, 2, 20),
        )
    )

    # 17. Standalone SDXL VAE.
    items.append(
        model(
            9404,
            "Clear VAE XL",
            "VAE",
            luma,
            ["vae"],
            [
                version(
                    631013,
                    "v1",
                    "SDXL 1.0",
                    "2023-08-01T10:05:00.000Z",
                    [file(581013, 631013, "clearVAE_xl.safetensors", 326799.0, size=None)],
                    [image(6400001, 1, 1024, 1024, None)],
                    downloads=11000,
                )
            ],
            stats=(11000, 900, 1, 15),
        )
    )

    # 18. Poses pack (zip archive).
    items.append(
        model(
            9505,
            "Dynamic Poses Pack",
            "Poses",
            noctis,
            ["poses", "openpose"],
            [
                version(
                    641014,
                    "v1",
                    "SD 1.5",
                    "2023-05-20T10:05:00.000Z",
                    [
                        file(
                            591014,
                            641014,
                            "dynamicPoses_v1.zip",
                            2048.0,
                            kind="Archive",
                            fmt="Other",
                            fp=None,
                            size=None,
                        )
                    ],
                    [image(6500001, 1, 768, 768, None)],
                    downloads=2500,
                )
            ],
            stats=(2500, 200, 0, 9),
        )
    )

    # 19. Wildcards (a version that has no `images` key at all).
    items.append(
        model(
            9606,
            "Fantasy Wildcards",
            "Wildcards",
            noctis,
            ["wildcards", "fantasy"],
            [
                version(
                    651015,
                    "v2",
                    "Other",
                    "2024-04-01T10:05:00.000Z",
                    [
                        file(
                            601015,
                            651015,
                            "fantasyWildcards_v2.zip",
                            88.5,
                            kind="Archive",
                            fmt="Other",
                            fp=None,
                            size=None,
                        )
                    ],
                    None,
                    downloads=700,
                )
            ],
            stats=(700, 40, 0, 2),
        )
    )

    # 20. ComfyUI workflow.
    items.append(
        model(
            9707,
            "Two-Pass Flux Workflow",
            "Workflows",
            luma,
            ["workflow", "comfyui", "flux"],
            [
                version(
                    661016,
                    "v1",
                    "Flux.1 D",
                    "2024-10-20T10:05:00.000Z",
                    [
                        file(
                            611016, 661016, "twoPassFlux_v1.zip", 12.75, kind="Archive", fmt="Other", fp=None, size=None
                        )
                    ],
                    [image(6700001, 1, 1024, 1024, comfy_meta("two pass test, a castle on a cliff", 7))],
                    downloads=1900,
                )
            ],
            stats=(1900, 150, 1, 11),
        )
    )

    # 21. Detection model (YOLO .pt for ADetailer).
    items.append(
        model(
            9808,
            "Hand Detector YOLO",
            "Detection",
            tiny,
            ["adetailer", "detection"],
            [
                version(
                    671017,
                    "v8n",
                    "Other",
                    "2023-09-09T10:05:00.000Z",
                    [file(621017, 671017, "hand_yolov8n.pt", 6083.2, fmt="PickleTensor", fp="fp32", size="full")],
                    [image(6800001, 1, 512, 512, None)],
                    downloads=40000,
                )
            ],
            stats=(40000, 2600, 5, 80),
        )
    )

    # 22. "Other" type on SD 3.5, creator deleted (no creator key).
    items.append(
        model(
            9909,
            "Orphan SD3.5 Tool",
            "Other",
            None,
            ["tool"],
            [
                version(
                    681018,
                    "v1",
                    "SD 3.5 Large",
                    "2024-11-11T10:05:00.000Z",
                    [file(631018, 681018, "orphanTool_sd35.safetensors", 512.0, fp="bf16", size=None)],
                    [image(6900001, 2, 1024, 1024, None)],
                    downloads=50,
                )
            ],
            stats=(50, 2, 0, 0),
        )
    )

    # 23. Taken-down model: images are dropped.
    items.append(
        model(
            10010,
            "Taken Down Portrait LoRA",
            "LORA",
            noctis,
            ["portraits"],
            [
                version(
                    691019,
                    "v1",
                    "SD 1.5",
                    "2023-10-10T10:05:00.000Z",
                    [file(641019, 691019, "takenDownPortrait_v1.safetensors", 147500.0, size=None)],
                    [],
                    downloads=300,
                )
            ],
            mode="TakenDown",
            stats=(300, 20, 8, 3),
        )
    )

    # 24. Wan video LoRA with video previews and an NSFW version.
    items.append(
        model(
            10111,
            "Slow Pan Wan LoRA",
            "LORA",
            mist,
            ["video", "camera motion", "wan"],
            [
                version(
                    701020,
                    "v1 14B t2v",
                    "Wan Video 14B t2v",
                    "2025-03-03T10:05:00.000Z",
                    [file(651020, 701020, "slowPanWan_v1.safetensors", 306400.0, fp="bf16", size=None)],
                    [image(7100001, 1, 832, 480, None, video=True), image(7100002, 8, 832, 480, None, video=True)],
                    trained_words=["slow pan"],
                    level=9,
                    downloads=2200,
                )
            ],
            level=9,
            stats=(2200, 410, 2, 17),
        )
    )

    # 25. A detail LoRA the other images reference (version 62833 in civitaiResources).
    items.append(
        model(
            50001,
            "Detail Tweak",
            "LORA",
            pixel,
            ["detail", "tool"],
            [
                version(
                    62833,
                    "v1.0",
                    "SD 1.5",
                    "2023-04-01T10:05:00.000Z",
                    [file(62001, 62833, "detailTweak.safetensors", 36978.4, size=None)],
                    [image(1300001, 1, 512, 512, None)],
                    trained_words=[],
                    downloads=95000,
                )
            ],
            stats=(95000, 9800, 25, 700),
        )
    )

    return {"items": items, "metadata": {}}


def render() -> str:
    """The catalogue as written to disk: 1-space indented, key order kept, UTF-8, trailing newline."""
    return json.dumps(build_catalog(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    CATALOG_PATH.parent.mkdir(parents=True, exist_ok=True)
    CATALOG_PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {CATALOG_PATH}\n")
