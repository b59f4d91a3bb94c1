"""The one text pipeline used by both training and serving."""
