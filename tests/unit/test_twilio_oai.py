"""tools/twilio_oai.py: the pinned npm tarball is used only when its sha512 is the pinned one."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from tools import twilio_oai


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(twilio_oai, "CACHE", tmp_path / ".cache")
    monkeypatch.setattr(twilio_oai, "SPEC_DIR", tmp_path / ".cache" / "twilio-oai")
    monkeypatch.setattr(twilio_oai, "STAMP", tmp_path / ".cache" / "twilio-oai" / ".stamp")
    monkeypatch.setattr(twilio_oai, "FALLBACK", tmp_path / "shared" / "twilio-oai")
    (tmp_path / ".cache").mkdir()
    return tmp_path


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(twilio_oai.INNER + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_integrity_is_npm_s_format() -> None:
    assert twilio_oai.integrity(b"x") == "sha512-" + base64.b64encode(hashlib.sha512(b"x").digest()).decode()
    assert twilio_oai.INTEGRITY.startswith("sha512-") and len(twilio_oai.INTEGRITY) == 95


def test_a_tarball_with_the_pinned_checksum_is_extracted(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _tarball({name: b'{"openapi": "3.0.1"}' for name in twilio_oai.FILES})
    (cache / ".cache" / f"twilio-alpha-mcp-{twilio_oai.VERSION}.tgz").write_bytes(data)
    monkeypatch.setattr(twilio_oai, "INTEGRITY", twilio_oai.integrity(data))

    where = twilio_oai.ensure(say=None)

    assert sorted(p.name for p in where.glob("*.json")) == sorted(twilio_oai.FILES)
    assert twilio_oai.STAMP.is_file()


def test_a_tarball_with_another_checksum_is_refused_and_removed(cache: Path) -> None:
    tarball = cache / ".cache" / f"twilio-alpha-mcp-{twilio_oai.VERSION}.tgz"
    tarball.write_bytes(_tarball({name: b"{}" for name in twilio_oai.FILES}))

    with pytest.raises(twilio_oai.Unavailable, match="is not the pinned"):
        twilio_oai.ensure(say=None)
    assert not tarball.exists()


def test_the_shared_folder_is_only_a_fallback_and_is_tried_again_next_time(cache: Path) -> None:
    # Given a tampered tarball and the project machine's ../shared/twilio-oai
    (cache / ".cache" / f"twilio-alpha-mcp-{twilio_oai.VERSION}.tgz").write_bytes(b"not the package")
    twilio_oai.FALLBACK.mkdir(parents=True)
    for name in twilio_oai.FILES:
        (twilio_oai.FALLBACK / name).write_text("{}")
    said: list[str] = []

    where = twilio_oai.ensure(say=said.append)

    assert all((where / name).read_text() == "{}" for name in twilio_oai.FILES)
    assert said and "instead" in said[0]
    assert not twilio_oai.STAMP.exists()  # not the package: the next run tries npm again
