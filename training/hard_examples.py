"""Hard-example mining: which training rows an earlier release gets wrong, or nearly wrong.

Doubling all clean chat (run 2026.11.25-11) cut false positives but also real QQ-group ads:
the model learnt to trust chat-like text in general. Repeating only the clean chat an earlier
release comes closest to flagging, and the positives it misses, puts the weight where the
errors are. The mining release is a committed folder, so a run stays reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.labels import TEXT_LABELS
from models.release import TextModel
from training.data import Example
from training.evaluate import score_texts


def threshold_ratios(model: TextModel, texts: Sequence[str]) -> np.ndarray:
    """Each text's served score over the release's threshold, per label (n x labels): 1 or
    more is flagged. Scores go through the same path as serving (pipeline, ONNX, fusion)."""
    thresholds = np.array([model.thresholds[label] for label in TEXT_LABELS])
    return score_texts(model, texts) / thresholds


def hard_multipliers(
    train: Sequence[Example],
    release: TextModel,
    *,
    negatives: int,
    negative_repeat: int,
    positive_repeat: int,
    negative_labels: Sequence[str] | None = None,
) -> tuple[list[int], str]:
    """Per training row, how many times more it is seen: the `negatives` LCCC clean-chat rows
    with the highest score-over-threshold on any of `negative_labels` (default: every label),
    flagged on none, get `negative_repeat`;
    positives whose score stays under a threshold of theirs get `positive_repeat`; every
    other row 1.
    Returns the multipliers and a line saying what was mined."""
    multipliers = [1] * len(train)
    chat = [i for i, e in enumerate(train) if e.source == "lccc"]
    positive = [i for i, e in enumerate(train) if e.labels and positive_repeat > 1]
    wanted = sorted(set(chat if negatives else []) | set(positive))
    if not wanted:
        return multipliers, "hard examples: none asked for"
    scored = threshold_ratios(release, [train[i].text for i in wanted])
    ratios = dict(zip(wanted, scored, strict=True))

    # Chat the release already flags is left alone: LCCC is crawled chat, and its top-scored
    # lines are often real 约吗 / 求票 messages that our corpus rightly labels, not hard negatives.
    columns = [TEXT_LABELS.index(label) for label in (negative_labels or TEXT_LABELS)]
    unflagged = [i for i in chat if ratios[i].max() < 1]
    hardest_chat = sorted(unflagged, key=lambda i: -ratios[i][columns].max())[:negatives]
    for i in hardest_chat:
        multipliers[i] = negative_repeat
    missed = [
        i
        for i in positive
        if any(ratios[i][TEXT_LABELS.index(label)] < 1 for label in train[i].labels)
    ]
    for i in missed:
        multipliers[i] = positive_repeat
    flagged = sum(ratios[i].max() >= 1 for i in chat)
    floor = ratios[hardest_chat[-1]][columns].max() if hardest_chat else float("nan")
    return multipliers, (
        f"hard examples mined with {release.version}: {len(hardest_chat)} of {len(chat)} LCCC "
        f"rows x{negative_repeat}"
        f"{'' if negative_labels is None else ' by ' + '/'.join(negative_labels)} "
        f"({flagged} flagged, left out; score/threshold of those "
        f"kept down to {floor:.3f}), "
        f"{len(missed)} of {len(positive)} missed positives x{positive_repeat}"
    )
