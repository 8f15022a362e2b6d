"""Editing a built firmware bundle in tests, as a builder would re-sign it: after a change the
bundle is intact by its hashes, so only the vector checks can catch what changed."""

from __future__ import annotations

import json
from pathlib import Path

from trigger_ml.firmware import verifier


def resign(root: Path, bundle_format: str | None = None) -> None:
    """Rewrite MANIFEST and BUILD_INFO.json of the bundle at ``root`` (and its format, if given)."""
    names = [name for name in verifier.bundle_files(root) if name not in verifier.UNLISTED]
    manifest = verifier.manifest_text({name: verifier.sha256_file(root / name) for name in names})
    (root / "MANIFEST").write_text(manifest)
    info = json.loads((root / "BUILD_INFO.json").read_text())
    info["firmware_id"] = verifier.sha256_bytes(manifest.encode())
    if bundle_format is not None:
        info["bundle_format"] = bundle_format
    info["checksum"] = verifier.build_info_checksum(info)
    (root / "BUILD_INFO.json").write_text(verifier.build_info_text(info))
