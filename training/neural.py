"""The neural text classifiers (torch), multi-label with sigmoid outputs.

Two architectures share one forward signature (models.release.INPUT_NAMES)
(input_ids, bigram_ids, trigram_ids, attention_mask, pinyin_bigram_ids, pinyin_trigram_ids)
-> scores; inputs a model does not read are left out of its ONNX graph:
- `cnn`, a wide-and-deep model. Deep: character and hashed-bigram embeddings, convolutions of
  several widths, masked max and mean pooling; it learns Chinese words from character pairs.
  Wide (`wide: true`): one weight per label for every character, bigram and trigram, summed
  over the message and scaled by 1/sqrt(length): a logistic regression over n-grams trained
  jointly with the deep part. On a few thousand hand-written examples per label the wide part
  learns fast and precisely (like a TF-IDF linear model), the deep part generalises to new
  wordings; their logits add. With a tokenizer that has `pinyin_buckets`, the hashed
  syllable pairs join the deep part's input and syllable pairs and triples the wide part, so
  a homophone or pinyin spelling reads like the characters it stands for.
- `transformer`: a BERT encoder built from a transformers config with our vocabulary, or
  fine-tuned from a local pretrained checkpoint (`--init-from`), whose embedding rows are copied
  into our vocabulary's order.
"""

from __future__ import annotations

from dataclasses import asdict, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass
from torch import nn

from models.release import INPUT_NAMES
from models.text.tokenizer import CLS, PAD, UNK, CharTokenizer

ARCHITECTURES = ("cnn", "transformer")


@dataclass(
    config=ConfigDict(strict=True, extra="forbid")
)  # pydantic checks the types a JSON config gives
class ModelConfig:
    """Architecture hyper-parameters; stored in the release manifest."""

    architecture: str = "cnn"
    wide: bool = True
    # With a pinyin vocabulary: also a wide weight per label for every syllable pair and
    # triple (False: the syllable pairs feed the deep part only).
    pinyin_wide: bool = True
    # With a pinyin vocabulary: the share of training messages read without their syllable
    # ids, so the character path stays strong on its own. Without it the channel let the loss
    # fall fast and dev peak at epoch 2 or 3 (runs 2026.11.25-22 and -24); at 0.5 (-26) the
    # loss kept the pace of a model without the channel, but dev still peaked at epoch 3.
    pinyin_drop: float = 0.0
    embed_dim: int = 128
    kernel_sizes: list[int] = field(default_factory=lambda: [1, 2, 3, 5])
    filters: int = 192
    hidden: int = 256
    dropout: float = 0.3
    # transformer only
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    max_len: int = 128
    # cnn only: CharCNNs trained side by side on the same batches, each from its own random
    # start; the exported graph scores with the mean of theirs (CharCNNEnsemble).
    members: int = 1

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, not {self.architecture!r}"
            )
        if self.members > 1 and self.architecture != "cnn":
            raise ValueError(f"members is for the cnn architecture, not {self.architecture!r}")
        sizes = (
            "embed_dim", "filters", "hidden", "layers", "heads", "intermediate", "max_len",
            "members",
        )  # fmt: skip
        for name in sizes:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be 1 or more, not {getattr(self, name)!r}")
        if not self.kernel_sizes or min(self.kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be widths of 1 or more, not {self.kernel_sizes!r}")
        for name in ("dropout", "pinyin_drop"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 0 and below 1, not {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ScoringModel(nn.Module):
    """forward() = sigmoid(logits()): training uses logits, the exported graph the scores."""

    def logits(
        self,
        input_ids: torch.Tensor,
        bigram_ids: torch.Tensor,
        trigram_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pinyin_bigram_ids: torch.Tensor,
        pinyin_trigram_ids: torch.Tensor,
    ) -> torch.Tensor:
        raise NotImplementedError

    def member_logits(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Logits of each member model (members x batch x labels): training's loss is the
        mean of the members' own losses, so each member learns to score alone."""
        return self.logits(*inputs).unsqueeze(0)

    def member_models(self) -> list[nn.Module]:
        """The models whose gradients are clipped each on its own."""
        return [self]

    def forward(
        self,
        input_ids: torch.Tensor,
        bigram_ids: torch.Tensor,
        trigram_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pinyin_bigram_ids: torch.Tensor,
        pinyin_trigram_ids: torch.Tensor,
    ) -> torch.Tensor:
        return torch.sigmoid(
            self.logits(
                input_ids,
                bigram_ids,
                trigram_ids,
                attention_mask,
                pinyin_bigram_ids,
                pinyin_trigram_ids,
            )
        )


class CharCNN(ScoringModel):
    def __init__(
        self,
        vocab_size: int,
        ngram_buckets: int,
        n_labels: int,
        cfg: ModelConfig,
        pinyin_buckets: int = 0,
    ):
        super().__init__()
        self.chars = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=0)
        self.bigrams = nn.Embedding(ngram_buckets, cfg.embed_dim, padding_idx=0)
        self.dropout = nn.Dropout(cfg.dropout)
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg.embed_dim, cfg.filters, k, padding=k // 2) for k in cfg.kernel_sizes
        )
        pooled = 2 * cfg.filters * len(cfg.kernel_sizes)
        self.head = nn.Sequential(
            nn.Linear(pooled, cfg.hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, n_labels),
        )
        self.wide_chars = nn.Embedding(vocab_size, n_labels, padding_idx=0) if cfg.wide else None
        self.wide_ngrams = (
            nn.Embedding(ngram_buckets, n_labels, padding_idx=0) if cfg.wide else None
        )
        self.sounds = (
            nn.Embedding(pinyin_buckets, cfg.embed_dim, padding_idx=0) if pinyin_buckets else None
        )
        self.wide_sounds = (
            nn.Embedding(pinyin_buckets, n_labels, padding_idx=0)
            if pinyin_buckets and cfg.wide and cfg.pinyin_wide
            else None
        )
        self.pinyin_drop = cfg.pinyin_drop
        for wide in (self.wide_chars, self.wide_ngrams, self.wide_sounds):
            if wide is not None:
                nn.init.zeros_(wide.weight)

    def logits(
        self,
        input_ids: torch.Tensor,
        bigram_ids: torch.Tensor,
        trigram_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pinyin_bigram_ids: torch.Tensor,
        pinyin_trigram_ids: torch.Tensor,
    ) -> torch.Tensor:
        if self.training and self.pinyin_drop > 0:
            # Id 0 is padding, whose embedding rows are zero: the message has no channel.
            keep = torch.rand(input_ids.shape[0], 1, device=input_ids.device) >= self.pinyin_drop
            pinyin_bigram_ids = pinyin_bigram_ids * keep
            pinyin_trigram_ids = pinyin_trigram_ids * keep
        x = self.chars(input_ids) + self.bigrams(bigram_ids)
        if self.sounds is not None:
            x = x + self.sounds(pinyin_bigram_ids)
        x = self.dropout(x).transpose(1, 2)
        length = input_ids.shape[1]
        mask = attention_mask.unsqueeze(1).to(x.dtype)  # (batch, 1, length)
        count = mask.sum(dim=2).clamp(min=1.0)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))[:, :, :length]  # even kernels pad one extra step
            pooled.append((h - (1.0 - mask) * 1e4).amax(dim=2))
            pooled.append((h * mask).sum(dim=2) / count)
        out = self.head(torch.cat(pooled, dim=1))
        if self.wide_chars is not None and self.wide_ngrams is not None:
            per_position = (
                self.wide_chars(input_ids)
                + self.wide_ngrams(bigram_ids)
                + self.wide_ngrams(trigram_ids)
            )  # (batch, length, labels); padding rows are zero
            if self.wide_sounds is not None:
                per_position = (
                    per_position
                    + self.wide_sounds(pinyin_bigram_ids)
                    + self.wide_sounds(pinyin_trigram_ids)
                )
            out = out + per_position.sum(dim=1) / count.sqrt()
        return out


class CharCNNEnsemble(ScoringModel):
    """Several CharCNNs that read the same inputs; the score is the mean of their scores.

    One graph with the usual inputs and output, so serving and the release format do not
    change. The members differ only by their random start and dropout: they share the
    batches, and so the Python batch preparation that is about half of a CPU training step.
    """

    def __init__(self, members: list[CharCNN]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def member_logits(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([member.logits(*inputs) for member in self.members])

    def member_models(self) -> list[nn.Module]:
        return list(self.members)

    def logits(self, *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The logit of the mean score, so that forward() is the mean of the members' scores."""
        return torch.logit(self.forward(*inputs), eps=1e-7)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sigmoid(self.member_logits(*inputs)).mean(dim=0)


class TransformerClassifier(ScoringModel):
    """A BERT encoder from a transformers config; [CLS] vector to the labels."""

    def __init__(self, encoder: nn.Module, hidden_size: int, n_labels: int, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, n_labels)

    def logits(
        self,
        input_ids: torch.Tensor,
        bigram_ids: torch.Tensor,
        trigram_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pinyin_bigram_ids: torch.Tensor,
        pinyin_trigram_ids: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.out(self.dropout(hidden[:, 0]))


def build_cnn(
    cfg: ModelConfig, vocab_size: int, ngram_buckets: int, n_labels: int, pinyin_buckets: int = 0
) -> ScoringModel:
    """One CharCNN, or an ensemble of `cfg.members` of them."""
    members = [
        CharCNN(vocab_size, ngram_buckets, n_labels, cfg, pinyin_buckets)
        for _ in range(cfg.members)
    ]
    return members[0] if cfg.members == 1 else CharCNNEnsemble(members)


def build_model(cfg: ModelConfig, tokenizer: CharTokenizer, n_labels: int) -> ScoringModel:
    if cfg.architecture == "cnn":
        return build_cnn(
            cfg, len(tokenizer), tokenizer.ngram_buckets, n_labels, tokenizer.pinyin_buckets
        )
    if cfg.architecture == "transformer":
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.embed_dim,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            intermediate_size=cfg.intermediate,
            max_position_embeddings=max(cfg.max_len, 512),
            pad_token_id=0,
        )
        encoder = BertModel(config, add_pooling_layer=False)
        return TransformerClassifier(encoder, cfg.embed_dim, n_labels, cfg.dropout)
    raise ValueError(f"unknown architecture {cfg.architecture!r}")


def build_from_pretrained(
    path: Path, tokenizer: CharTokenizer, n_labels: int, dropout: float
) -> ScoringModel:
    """Fine-tune a local Hugging Face checkpoint with our character vocabulary.

    The checkpoint's own tokenizer is not used: each of our characters takes the embedding row
    of the same token in the checkpoint's vocab.txt (most Chinese BERT vocabularies are
    per-character), our special tokens take [PAD]/[UNK]/[CLS], and characters the checkpoint
    lacks take its [UNK] row. Serving keeps one tokenizer for every model.
    """
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(str(path), add_pooling_layer=False)
    vocab_file = Path(path) / "vocab.txt"
    if not vocab_file.is_file():
        raise FileNotFoundError(f"{vocab_file} is needed to map the vocabulary")
    theirs = {tok: i for i, tok in enumerate(vocab_file.read_text("utf-8").splitlines())}
    aliases = {PAD: "[PAD]", UNK: "[UNK]", CLS: "[CLS]"}
    unk = theirs.get("[UNK]", 0)
    rows = [theirs.get(aliases.get(tok, tok), unk) for tok in tokenizer.tokens]
    old = encoder.get_input_embeddings().weight.data
    if len(theirs) > old.shape[0]:
        raise ValueError(f"{vocab_file} has {len(theirs)} tokens, the model {old.shape[0]} rows")
    new = nn.Embedding(len(tokenizer), old.shape[1], padding_idx=0)
    new.weight.data.copy_(old[torch.tensor(rows)])
    encoder.set_input_embeddings(new)
    encoder.config.vocab_size = len(tokenizer)
    return TransformerClassifier(encoder, encoder.config.hidden_size, n_labels, dropout)


def export_onnx(model: nn.Module, path: Path, max_len: int, opset: int = 17) -> None:
    """Export with dynamic batch and sequence axes; output `scores` (sigmoid probabilities)."""
    model.eval()
    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in INPUT_NAMES)
    axes = {0: "batch", 1: "length"}
    torch.onnx.export(
        model,
        example,
        str(path),
        input_names=list(INPUT_NAMES),
        output_names=["scores"],
        dynamic_axes={**dict.fromkeys(INPUT_NAMES, axes), "scores": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
