"""The enumerations `/api/v1/enums` answers and the parameter values the endpoints accept.

CivitAI tells clients to fetch these rather than hard-code them; this server answers its own copy (from CivitAI's
developer docs and base-model constants, 2026) plus every base model found in the database it serves.
"""

from __future__ import annotations

MODEL_TYPES = (
    "Checkpoint",
    "TextualInversion",
    "Hypernetwork",
    "AestheticGradient",
    "LORA",
    "LoCon",
    "DoRA",
    "Controlnet",
    "Upscaler",
    "MotionModule",
    "VAE",
    "Poses",
    "Wildcards",
    "Workflows",
    "Detection",
    "Other",
)

MODEL_FILE_TYPES = ("Model", "Text Encoder", "Pruned Model", "Negative", "Training Data", "VAE", "Config", "Archive")

BASE_MODEL_TYPES = ("Standard", "Inpainting", "Refiner", "Pix2Pix")

BASE_MODELS = (
    "SD 1.4",
    "SD 1.5",
    "SD 1.5 LCM",
    "SD 1.5 Hyper",
    "SD 2.0",
    "SD 2.0 768",
    "SD 2.1",
    "SD 2.1 768",
    "SD 2.1 Unclip",
    "SDXL 0.9",
    "SDXL 1.0",
    "SDXL 1.0 LCM",
    "SDXL Lightning",
    "SDXL Hyper",
    "SDXL Turbo",
    "SDXL Distilled",
    "Pony",
    "Pony V7",
    "Illustrious",
    "NoobAI",
    "SD 3",
    "SD 3.5",
    "SD 3.5 Large",
    "SD 3.5 Large Turbo",
    "SD 3.5 Medium",
    "Flux.1 S",
    "Flux.1 D",
    "Flux.1 Krea",
    "Flux.1 Kontext",
    "Flux.2 D",
    "AuraFlow",
    "Chroma",
    "HiDream",
    "Hunyuan 1",
    "Hunyuan Video",
    "Kolors",
    "Lumina",
    "PixArt a",
    "PixArt E",
    "Playground v2",
    "Stable Cascade",
    "SVD",
    "SVD XT",
    "Qwen",
    "ZImageTurbo",
    "LTXV",
    "Mochi",
    "CogVideoX",
    "Wan Video 1.3B t2v",
    "Wan Video 14B t2v",
    "Wan Video 14B i2v 480p",
    "Wan Video 14B i2v 720p",
    "Wan Video 2.2 TI2V-5B",
    "Wan Video 2.2 I2V-A14B",
    "Wan Video 2.2 T2V-A14B",
    "Other",
)

ACTIVE_BASE_MODELS = ("SD 1.5", "SDXL 1.0", "Pony", "Illustrious", "NoobAI", "Flux.1 D", "Flux.1 Krea", "Qwen")

MODEL_SORTS = (
    "Highest Rated",
    "Most Downloaded",
    "Most Liked",
    "Most Discussed",
    "Most Collected",
    "Most Images",
    "Newest",
    "Oldest",
)
DEFAULT_MODEL_SORT = "Highest Rated"

IMAGE_SORTS = ("Most Reactions", "Most Comments", "Most Collected", "Newest", "Oldest")
DEFAULT_IMAGE_SORT = "Most Reactions"

PERIODS = ("AllTime", "Year", "Month", "Week", "Day")

CHECKPOINT_TYPES = ("Standard", "Trained", "Merge")

MEDIA_TYPES = ("image", "video", "audio")

LEGACY_NSFW = ("None", "Soft", "Mature", "X", "Blocked")


def enums_answer(base_models_in_db: list[str]) -> dict[str, list[str]]:
    """The body of `/api/v1/enums`; base models of the served database that the built-in list lacks are added."""
    extra = sorted(set(base_models_in_db) - set(BASE_MODELS))
    return {
        "ModelType": list(MODEL_TYPES),
        "ModelFileType": list(MODEL_FILE_TYPES),
        "ActiveBaseModel": list(ACTIVE_BASE_MODELS),
        "BaseModel": [*BASE_MODELS, *extra],
        "BaseModelType": list(BASE_MODEL_TYPES),
    }
