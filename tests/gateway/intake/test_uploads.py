"""Magic-byte sniffing and content-addressed storage of scans."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from gateway.intake import uploads
from gateway.privacy import FieldCipher, KeyRing

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 32
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32


@pytest.mark.parametrize(
    ("content", "expected"),
    [(PDF, "application/pdf"), (JPEG, "image/jpeg"), (PNG, "image/png")],
)
def test_sniff_accepts_by_content(content: bytes, expected: str) -> None:
    assert uploads.sniff(content[: uploads.SNIFF_BYTES]) == expected


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"%PDF",  # truncated signature
        b" %PDF-1.4",  # not at the start
        b"\x89PNG\r\n\x1a",  # truncated PNG signature
        b"GIF89a....",
        b"PK\x03\x04word.docx",
        b"<html><body>%PDF-</body></html>",
        b"MZ\x90\x00",  # an .exe named scan.pdf is still an .exe
    ],
)
def test_sniff_refuses_everything_else(content: bytes) -> None:
    assert uploads.sniff(content) is None


CIPHER = FieldCipher(KeyRing.generate())


def test_store_is_content_addressed_sealed_and_deduplicated(tmp_path: Path) -> None:
    digest, created = uploads.store(tmp_path, PDF, cipher=CIPHER)
    assert created and digest == hashlib.sha256(PDF).hexdigest()
    path = tmp_path / "uploads" / digest[:2] / digest[2:4] / digest
    on_disk = path.read_bytes()
    assert on_disk != PDF and PDF not in on_disk and b"%PDF" not in on_disk  # sealed: the scan is not readable
    assert uploads.read(tmp_path, digest, cipher=CIPHER) == PDF
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert uploads.store(tmp_path, PDF, cipher=CIPHER) == (digest, False)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".upload-")]


def test_read_opens_only_what_matches_its_hash(tmp_path: Path) -> None:
    digest, _ = uploads.store(tmp_path, PDF, cipher=CIPHER)
    path = uploads.upload_path(tmp_path, digest)
    # Another key ring (the keys lost or replaced) cannot open it.
    assert uploads.read(tmp_path, digest, cipher=FieldCipher(KeyRing.generate())) is None
    # Altered on disk: it no longer opens.
    sealed = path.read_bytes()
    path.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    assert uploads.read(tmp_path, digest, cipher=CIPHER) is None
    # A file from before scans were sealed (the plain scan) is read when its hash matches, and only then.
    path.write_bytes(PDF)
    assert uploads.read(tmp_path, digest, cipher=CIPHER) == PDF
    path.write_bytes(PDF + b"% changed")
    assert uploads.read(tmp_path, digest, cipher=CIPHER) is None
    path.unlink()
    assert uploads.read(tmp_path, digest, cipher=CIPHER) is None


def test_remove_spares_recent_files(tmp_path: Path) -> None:
    digest, _ = uploads.store(tmp_path, PNG, cipher=CIPHER)
    assert not uploads.remove(tmp_path, digest, older_than=3600)
    path = uploads.upload_path(tmp_path, digest)
    old = time.time() - 7200
    os.utime(path, (old, old))
    assert uploads.remove(tmp_path, digest, older_than=3600)
    assert not path.exists()
    assert not (tmp_path / "uploads" / digest[:2]).exists()
    assert not uploads.remove(tmp_path, digest)


def test_upload_path_refuses_non_digests(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        uploads.upload_path(tmp_path, "../../etc/passwd")


def test_a_storage_that_cannot_take_the_file_is_a_clear_answer(tmp_path: Path) -> None:
    import errno

    from gateway.intake.uploads import storage_problem
    from gateway.problems import InsufficientStorage, ServiceUnavailable

    full = storage_problem(OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(full, InsufficientStorage) and full.status == 507
    for code in (errno.EROFS, errno.EACCES, errno.EIO):
        unwritable = storage_problem(OSError(code, "x"))
        assert isinstance(unwritable, ServiceUnavailable) and unwritable.headers["Retry-After"].isdigit()
    assert storage_problem(OSError(errno.ENAMETOOLONG, "x")) is None

    (tmp_path / "uploads").write_text("a file where the upload directory should be")
    with pytest.raises(ServiceUnavailable, match="cannot be written"):
        uploads.store(tmp_path, b"%PDF-1.7 scan", cipher=CIPHER)
