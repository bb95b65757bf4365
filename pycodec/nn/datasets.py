from __future__ import annotations

CodecWindowDataset = collate = None
