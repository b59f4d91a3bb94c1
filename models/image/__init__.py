"""Image moderation: NSFW, QR codes, text in pictures (OCR), picture floods.

`ImageClassifier` (classify.py) is the entry point; `ImageError` and its subclasses
(decode.py) are the typed refusals, each with an HTTP `status` and a snake_case `code`.
"""

from models.image.classify import ImageClassifier, ImageEvidence, ImageResult, ImageSettings
from models.image.decode import (
    ImageError,
    ImageTooLargeError,
    InvalidBase64Error,
    InvalidImageError,
    UnsupportedImageFormatError,
)
from models.image.phash import FloodCounter, MemoryFloodCounter, SqlFloodCounter

__all__ = [
    "FloodCounter",
    "ImageClassifier",
    "ImageError",
    "ImageEvidence",
    "ImageResult",
    "ImageSettings",
    "ImageTooLargeError",
    "InvalidBase64Error",
    "InvalidImageError",
    "MemoryFloodCounter",
    "SqlFloodCounter",
    "UnsupportedImageFormatError",
]
