"""Twilio's published OpenAPI descriptions, from a pinned npm package: ``python -m tools.twilio_oai``.

npm's ``@twilio-alpha/mcp`` ships Twilio's ``twilio-oai`` descriptions (``twilio-oai/spec/json/``).
``npm pack`` fetches that one tarball (none of its dependencies) into ``.cache/``; its sha512 must match
the integrity pinned below (the registry's ``dist.integrity``); then the three files the project uses
are extracted to ``.cache/twilio-oai/``, where the tests read them.

Only when the package cannot be fetched, and ``../shared/twilio-oai/`` exists beside the repository (a
project machine), are the files copied from there instead, with a warning; the next run tries npm again.
A tarball whose checksum differs is never used.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE = "@twilio-alpha/mcp"
VERSION = "0.7.0"
# npm view @twilio-alpha/mcp@0.7.0 dist.integrity
INTEGRITY = "sha512-YsUde1pMXwqHm8Cvq9JdtsyvclVCC/f/V+FmxTNN04u5Qt5aapkbQgcfqBYQ0xcmvATBNswgPDo3MPVaCtZK8Q=="
FILES = ("twilio_verify_v2.json", "twilio_lookups_v2.json", "twilio_taskrouter_v1.json")
INNER = "package/twilio-oai/spec/json/"

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
SPEC_DIR = CACHE / "twilio-oai"
STAMP = SPEC_DIR / f".from-twilio-alpha-mcp-{VERSION}"
FALLBACK = ROOT.parent / "shared" / "twilio-oai"


class Unavailable(RuntimeError):
    """The descriptions could not be had from the package nor from the fallback folder."""


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _tarball() -> Path:
    tarball = CACHE / f"twilio-alpha-mcp-{VERSION}.tgz"
    if not tarball.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(  # noqa: S603 - fixed arguments, no shell
                ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent", "--pack-destination", str(CACHE)],  # noqa: S607
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            stderr = detail.decode(errors="replace")[-500:]
            raise Unavailable(f"npm pack {PACKAGE}@{VERSION} failed: {exc} {stderr}") from exc
    return tarball


def _from_package() -> None:
    tarball = _tarball()
    data = tarball.read_bytes()
    if integrity(data) != INTEGRITY:
        tarball.unlink()
        raise Unavailable(f"{tarball.name}: checksum {integrity(data)} is not the pinned {INTEGRITY}; removed")
    SPEC_DIR.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for name in FILES:
            member = archive.extractfile(INNER + name)
            if member is None:
                raise Unavailable(f"{PACKAGE}@{VERSION} has no {INNER}{name}")
            (SPEC_DIR / name).write_bytes(member.read())
    for old in SPEC_DIR.glob(".from-*"):
        old.unlink()
    STAMP.write_text(f"{PACKAGE}@{VERSION} {INTEGRITY}\n")


def ensure(say: object = print) -> Path:
    """The folder holding the three descriptions, fetching them first if needed."""
    if STAMP.is_file() and all((SPEC_DIR / name).is_file() for name in FILES):
        return SPEC_DIR
    try:
        _from_package()
    except Unavailable as exc:
        if not all((FALLBACK / name).is_file() for name in FILES):
            raise Unavailable(f"{exc}; and no fallback at {FALLBACK}") from exc
        SPEC_DIR.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(FALLBACK / name, SPEC_DIR / name)
        if callable(say):
            say(f"twilio-oai: {exc}; copied the descriptions from {FALLBACK} instead")
    return SPEC_DIR


def main() -> int:
    try:
        where = ensure()
    except Unavailable as exc:
        print(f"twilio-oai: {exc}", file=sys.stderr)
        return 1
    print(f"twilio-oai: {', '.join(FILES)} in {where.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
