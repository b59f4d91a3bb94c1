"""Model code shared by training and serving, and the released model artefacts."""
