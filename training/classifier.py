"""The neural classifier as an estimator: fit / predict_proba / predict, plain data in and out.

Texts go through the shared pipeline (`analyze` then `model_text`) before the tokenizer, exactly
as in serving.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from models.labels import TEXT_LABELS
from models.release import INPUT_NAMES, model_inputs
from models.text.pipeline import analyze, model_text
from models.text.tokenizer import CharTokenizer, Encoded
from training.data import AUDITED_SOURCE
from training.metrics import macro_best_f1, macro_f1, per_label
from training.neural import ModelConfig, ScoringModel, build_from_pretrained, build_model
from training.rewrite import Rewriter


@dataclass(
    config=ConfigDict(strict=True, extra="forbid")
)  # pydantic checks the types a JSON config gives
class TrainConfig:
    """Optimisation settings; stored in the release manifest with the model configuration."""

    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    corpus_repeat: int = 2  # our hand-written corpus is seen this many times per epoch
    # Moderators' reports, likewise (None: as the corpus). A report corrects a verdict the
    # model got wrong; seen as often as a corpus line, a reported clean line stayed flagged
    # after retraining (tests/test_reports_export.py), so our configurations set 8.
    report_repeat: int | None = None
    group_chat_repeat: int = 1  # real QQ group chat (mc_qq), likewise: the closest public data
    clean_chat_repeat: int = 1  # LCCC clean chat, likewise: what the clean-chat caps measure
    # Hard-example mining (training/hard_examples.py) with a committed release: the
    # `hard_negatives` LCCC rows it comes closest to flagging are seen `hard_negative_repeat`
    # times as often, the training positives it misses `hard_positive_repeat` times.
    hard_mining_release: str | None = None
    hard_negatives: int = 0
    hard_negative_repeat: int = 1
    hard_positive_repeat: int = 1
    # The labels whose scores rank the hard negatives (None: all). Leaving insult out did not
    # win back COLD (run 2026.11.25-20, README): the insult threshold rose instead.
    hard_negative_labels: list[str] | None = None
    # Shares of training texts rewritten, fresh each time seen, with homophones (沙比 for 傻逼)
    # and with two characters in pinyin (training/rewrite.py): evasions normalisation leaves.
    homophone_rate: float = 0.0
    pinyin_rate: float = 0.0
    char_drop: float = 0.0  # share of characters deleted at random from each training text
    # Exponential moving average of the weights (0: off): dev is scored, and the best epoch
    # kept, with the averaged weights. Dev macro-F1 swung by up to 0.05 from one epoch to the
    # next (2026.11.25-28's history); the average smooths the last steps' noise away.
    ema_decay: float = 0.0
    # What picks the kept epoch on dev: macro-F1 with every threshold at 0.5, or the mean of
    # each label's best F1 over thresholds. Thresholds are tuned after training, so 0.5 only
    # measures calibration: run 2026.11.25-31 kept epoch 3 of 8 by it.
    epoch_metric: Literal["f1_at_half", "best_f1"] = "f1_at_half"
    min_char_freq: int = 2
    max_vocab: int = 8000
    ngram_buckets: int = 60_000
    # Hashed syllable pair/triple buckets of the pinyin channel (models/text/tokenizer.py);
    # 0 leaves the channel out.
    pinyin_buckets: int = 0
    max_minutes: float = 50.0
    seed: int = 13
    threads: int = 2
    init_from: str | None = None
    progress: bool = True
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Ranges pydantic's types do not say: a zero batch or repeat would fail (or train on
        nothing) only after the data is loaded."""
        for name in (
            "epochs", "batch_size", "warmup_steps", "corpus_repeat", "group_chat_repeat",
            "clean_chat_repeat", "hard_negative_repeat", "hard_positive_repeat", "max_vocab",
            "ngram_buckets", "threads",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be a whole number of 1 or more, not {getattr(self, name)!r}"
                )
        for name in ("learning_rate", "max_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0, not {getattr(self, name)!r}")
        if self.report_repeat is not None and self.report_repeat < 1:
            raise ValueError(
                f"report_repeat must be a whole number of 1 or more, not {self.report_repeat!r}"
            )
        if self.pinyin_buckets < 0 or self.pinyin_buckets == 1:
            raise ValueError(
                f"pinyin_buckets must be 0 (off) or 2 or more, not {self.pinyin_buckets!r}"
            )
        if self.hard_negatives < 0:
            raise ValueError(f"hard_negatives must be 0 or more, not {self.hard_negatives!r}")
        mining = self.hard_negatives > 0 or self.hard_positive_repeat > 1
        if mining and not self.hard_mining_release:
            raise ValueError("hard_negatives and hard_positive_repeat need hard_mining_release")
        if self.hard_negative_labels is not None:
            unknown = sorted(set(self.hard_negative_labels) - set(TEXT_LABELS))
            if unknown or not self.hard_negative_labels:
                raise ValueError(
                    f"hard_negative_labels must name labels of {list(TEXT_LABELS)}, "
                    f"not {self.hard_negative_labels!r}"
                )
        for name in ("char_drop", "homophone_rate", "pinyin_rate", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 0 and below 1, not {getattr(self, name)!r}"
                )


def repeats_for(sources: Sequence[str], cfg: TrainConfig) -> list[int]:
    """How often each training row is seen per epoch, by its source: our hand-written corpus
    (`hand/`) `corpus_repeat` times, moderators' reports (`report/`) `report_repeat` times
    (default: `corpus_repeat`), real group chat (`mc_qq/`, and LCCC lines our audit found
    violating) `group_chat_repeat` times, LCCC clean chat `clean_chat_repeat` times, the other
    public sets once."""

    def repeat(source: str) -> int:
        if source.startswith("report/") and cfg.report_repeat is not None:
            return cfg.report_repeat
        if source.startswith(("hand/", "report/")):
            return cfg.corpus_repeat
        if source.startswith("mc_qq/") or source == AUDITED_SOURCE:
            return cfg.group_chat_repeat
        return cfg.clean_chat_repeat if source == "lccc" else 1

    return [repeat(source) for source in sources]


def as_tensors(batch: Encoded) -> tuple[torch.Tensor, ...]:
    """The model's inputs, in forward() order (models.release.INPUT_NAMES)."""
    arrays = model_inputs(batch)
    return tuple(torch.from_numpy(arrays[name]) for name in INPUT_NAMES)


def prepare(texts: Sequence[str]) -> list[str]:
    """What the model sees for each text (the serving path's `model_text`)."""
    return [model_text(analyze(text)) for text in texts]


def drop_chars(text: str, rate: float) -> str:
    """Delete each character with probability `rate` (a fresh draw every time it is seen).

    Augmentation against memorisation: the wide n-gram part and the convolutions can no
    longer learn a hand-written message by its exact character sequence, and the model
    sees the gaps and typos that real messages have. Texts of 3 characters or fewer are kept.
    """
    if len(text) <= 3:
        return text
    kept = "".join(c for c in text if random.random() >= rate)
    return kept or text


def learning_rate_factor(
    step: int, total_steps: int, warmup_steps: int, budget_used: float
) -> float:
    """The learning rate's share of its peak at `step`: a linear warm-up, then a linear decay
    to 5% over the planned steps, or over the time budget when that runs out first
    (`budget_used`: the share of `max_minutes` gone). A run that a slow machine cuts at the
    budget so still ends at the low rate instead of mid-schedule. Time counts only after the
    warm-up (at step 0 any time gone is ahead of the steps), so a run that ends well inside
    its budget, where the share of steps stays ahead of the share of time, follows the
    planned schedule exactly and is repeatable with its seed."""
    done = step / max(total_steps, 1)
    if step >= warmup_steps:
        done = max(done, budget_used)
    return min(1.0, (step + 1) / warmup_steps) * max(0.05, 1.0 - done)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class NeuralTextClassifier:
    """Multi-label text classifier over TEXT_LABELS."""

    def __init__(
        self, model_config: ModelConfig | None = None, train_config: TrainConfig | None = None
    ):
        self.model_config = model_config or ModelConfig()
        self.train_config = train_config or TrainConfig()
        self.tokenizer: CharTokenizer | None = None
        self.model: ScoringModel | None = None
        self.history: list[dict[str, float]] = []

    # -- estimator API -------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        dev_texts: Sequence[str] = (),
        dev_targets: np.ndarray | None = None,
        repeats: Sequence[int] | None = None,
        masks: np.ndarray | None = None,
        dev_masks: np.ndarray | None = None,
    ) -> NeuralTextClassifier:
        """Train on `texts` with 0/1 `targets` (n x labels); keep the best epoch on dev.

        `masks` (n x labels, 1 = annotated) leave out the loss of labels a source did not
        annotate; `repeats` says how often each text is seen per epoch.
        """
        cfg, mcfg = self.train_config, self.model_config
        _seed_everything(cfg.seed)
        torch.set_num_threads(cfg.threads)
        prepared = prepare(texts)
        self.tokenizer = CharTokenizer.build(
            prepared,
            min_freq=cfg.min_char_freq,
            max_size=cfg.max_vocab,
            ngram_buckets=cfg.ngram_buckets,
            version=time.strftime("%Y%m%d"),
            pinyin_buckets=cfg.pinyin_buckets,
        )
        if cfg.init_from:
            self.model = build_from_pretrained(
                Path(cfg.init_from), self.tokenizer, len(TEXT_LABELS), mcfg.dropout
            )
            mcfg.architecture = "transformer"
        else:
            self.model = build_model(mcfg, self.tokenizer, len(TEXT_LABELS))
        order = [i for i, n in enumerate(repeats or [1] * len(prepared)) for _ in range(n)]
        targets_t = torch.tensor(np.asarray(targets), dtype=torch.float32)
        masks_t = (
            torch.ones_like(targets_t)
            if masks is None
            else torch.tensor(np.asarray(masks), dtype=torch.float32)
        )
        steps_per_epoch = math.ceil(len(order) / cfg.batch_size)
        total_steps = steps_per_epoch * cfg.epochs
        # fused: one kernel over all parameters instead of a loop of small ops per tensor.
        # AdamW updates the large embedding tables densely; unfused, that was about two thirds
        # of a CPU training step, fused a tenth (`python -m benchmarks.train_step`, figures in
        # the README). The update is the same, up to rounding.
        optimiser = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            fused=True,
        )
        budget_s = cfg.max_minutes * 60
        started = time.monotonic()
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser,
            lambda step: learning_rate_factor(
                step, total_steps, cfg.warmup_steps, (time.monotonic() - started) / budget_s
            ),
        )
        averaged = (
            AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
            )
            if cfg.ema_decay
            else None
        )
        rewriter = Rewriter(prepared, cfg.seed) if cfg.homophone_rate or cfg.pinyin_rate else None
        deadline = started + budget_s
        dev_prepared = prepare(dev_texts) if len(dev_texts) else []
        best_state, best_score = None, -1.0
        for epoch in range(cfg.epochs):
            self.model.train()
            batches = self._length_bucketed_batches(order, prepared, cfg.batch_size)
            losses = []
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress)
            for batch_index in bar:
                batch_texts = [prepared[i] for i in batch_index]
                if rewriter is not None:
                    batch_texts = [
                        rewriter.augment(t, cfg.homophone_rate, cfg.pinyin_rate)
                        for t in batch_texts
                    ]
                if cfg.char_drop > 0:
                    batch_texts = [drop_chars(t, cfg.char_drop) for t in batch_texts]
                enc = self.tokenizer.encode(batch_texts, mcfg.max_len)
                logits = self.model.member_logits(*as_tensors(enc))  # members x batch x labels
                mask = masks_t[batch_index].expand_as(logits)
                loss = (
                    torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, targets_t[batch_index].expand_as(logits), reduction="none"
                    )
                    * mask
                ).sum() / mask.sum().clamp(min=1.0)
                optimiser.zero_grad()
                loss.backward()
                for member in self.model.member_models():
                    torch.nn.utils.clip_grad_norm_(member.parameters(), 1.0)
                optimiser.step()
                schedule.step()
                if averaged is not None:
                    averaged.update_parameters(self.model)
                losses.append(loss.item())
                if len(losses) % 50 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
                if time.monotonic() > deadline:
                    break
            record = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
            scored = self.model if averaged is None else averaged.module
            if dev_prepared and dev_targets is not None:
                scores = self._scores(dev_prepared, scored)
                record["dev_macro_f1"] = macro_f1(
                    per_label(dev_targets, scores, [0.5] * len(TEXT_LABELS), TEXT_LABELS, dev_masks)
                )
                record["dev_best_f1"] = macro_best_f1(np.asarray(dev_targets), scores, dev_masks)
                chosen = record["dev_best_f1" if cfg.epoch_metric == "best_f1" else "dev_macro_f1"]
                if chosen > best_score:
                    best_score = chosen
                    best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
            self.history.append(record)
            cfg.log.append(str(record))
            if cfg.progress:
                print(record, flush=True)
            if time.monotonic() > deadline:
                cfg.log.append(f"stopped at the time budget of {cfg.max_minutes} minutes")
                break
        if best_state is None and averaged is not None:  # no dev split: the last average
            best_state = averaged.module.state_dict()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self._scores(prepare(texts))

    def predict(self, texts: Sequence[str], thresholds: Sequence[float]) -> np.ndarray:
        return self.predict_proba(texts) >= np.asarray(thresholds)[None, :]

    # -- helpers -------------------------------------------------------------------------
    def _scores(
        self, prepared: Sequence[str], model: torch.nn.Module | None = None, batch_size: int = 256
    ) -> np.ndarray:
        """Scores of `model` (default: the classifier's own; in training, the averaged copy)."""
        assert self.model is not None and self.tokenizer is not None, "fit first"
        model = self.model if model is None else model
        model.eval()
        out = np.zeros((len(prepared), len(TEXT_LABELS)), dtype=np.float32)
        index = sorted(range(len(prepared)), key=lambda i: len(prepared[i]))
        with torch.no_grad():
            for start in range(0, len(index), batch_size):
                chunk = index[start : start + batch_size]
                enc = self.tokenizer.encode([prepared[i] for i in chunk], self.model_config.max_len)
                out[chunk] = model(*as_tensors(enc)).numpy()
        return out

    @staticmethod
    def _length_bucketed_batches(
        order: list[int], prepared: list[str], size: int
    ) -> list[list[int]]:
        """Shuffle, sort within chunks of 50 batches by length, then shuffle the batches."""
        shuffled = order[:]
        random.shuffle(shuffled)
        chunk = size * 50
        batches = []
        for start in range(0, len(shuffled), chunk):
            part = sorted(shuffled[start : start + chunk], key=lambda i: len(prepared[i]))
            batches.extend(part[i : i + size] for i in range(0, len(part), size))
        random.shuffle(batches)
        return batches
