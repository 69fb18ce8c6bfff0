"""Masking, log paths, codecs and the public API surface."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import pytest

import lockgate
from lockgate import App, Settings
from lockgate.core.codec import decode, encode
from lockgate.core.masking import Masker
from lockgate.engine.logs import log_path, safe_name
from lockgate.errors import SettingsError, StepError


def test_public_api_is_sorted_and_importable() -> None:
    """``__all__`` is sorted and every name in it exists."""
    assert lockgate.__all__ == sorted(lockgate.__all__)
    for name in lockgate.__all__:
        assert hasattr(lockgate, name), name


def test_masker_hides_secrets_in_encoded_forms() -> None:
    """Raw, URL-encoded, JSON-escaped and base64 forms of a secret are all masked."""
    secret = 'p@ss "word"/x'
    mask = Masker([secret])
    text = " ".join(
        [
            secret,
            quote(secret, safe=""),
            json.dumps(secret),
            base64.b64encode(secret.encode()).decode(),
        ]
    )
    masked = mask(text)
    assert "p@ss" not in masked and "cEBzcy" not in masked
    assert masked.count("***") == 4


def test_masker_without_secrets_changes_nothing() -> None:
    """No secrets, no changes."""
    assert Masker()("anything") == "anything"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("build", "build"), ("../../etc/passwd", "_.._etc_passwd"), ("a b/c", "a_b_c"), ("..", "_")],
)
def test_safe_name(name: str, expected: str) -> None:
    """Step names become one safe path component."""
    assert safe_name(name) == expected


def test_log_path_stays_inside_log_dir(tmp_path: Path) -> None:
    """The mirrored log file is always under the log directory."""
    path = log_path(tmp_path, "run1", "../../x")
    assert tmp_path.resolve() in path.parents


def test_codec_round_trips_and_refuses_wrong_values() -> None:
    """Values are checked against the declared type on the way in and out."""
    assert encode(list[int], [1, 2], "here") == [1, 2]
    assert decode(list[int], [1, 2], "here") == [1, 2]
    with pytest.raises(StepError, match="cannot encode value as"):
        encode(list[int], ["x"], "here")
    with pytest.raises(StepError, match="does not decode as"):
        decode(list[int], {"a": 1}, "here")


SECRET = "s3cr3t/Value+42=="


@pytest.mark.parametrize(
    ("form", "text"),
    [
        ("raw", SECRET),
        ("URL-encoded", "s3cr3t%2FValue%2B42%3D%3D"),
        ("URL-encoded, lower-case hex", "s3cr3t%2fValue%2b42%3d%3d"),
        ("URL-encoded, path-safe", "s3cr3t/Value%2B42%3D%3D"),
        ("base64", base64.b64encode(SECRET.encode()).decode()),
        ("base64, URL-safe", base64.urlsafe_b64encode(SECRET.encode()).decode()),
        ("base64, unpadded", base64.b64encode(SECRET.encode()).decode().rstrip("=")),
        ("hex", SECRET.encode().hex()),
        ("hex, upper-case", SECRET.encode().hex().upper()),
        ("basic auth", "Basic " + base64.b64encode(f"deployer:{SECRET}".encode()).decode()),
        ("basic auth, other user", base64.b64encode(f"ab:{SECRET}".encode()).decode()),
    ],
)
def test_every_common_encoding_of_a_secret_is_masked(form: str, text: str) -> None:
    """Threat: a secret leaking through logs in an encoded form."""
    masked = Masker([SECRET])(f"before {text} after")
    assert "***" in masked, form
    leftover = masked.replace("***", "")
    for piece in ("s3cr3t", "czNjcjN0", "733363723374", "Value"):
        assert piece not in leftover, (form, masked)


def test_a_multi_line_secret_is_masked_line_by_line() -> None:
    """Threat: a PEM key printed by a command one line at a time."""
    key = (
        "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n"
        "-----END KEY-----"
    )
    mask = Masker([key])
    for line in key.splitlines()[1:3]:
        assert mask(f"out: {line}") == "out: ***"


def test_a_secret_too_short_to_mask_is_refused(tmp_path: Path) -> None:
    """A 3-character secret was silently never masked: now configuring it is an error."""
    with pytest.raises(ValueError, match="too short"):
        Masker(["abc"])
    with pytest.raises(SettingsError, match="PIN"):
        App(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", secrets={"PIN": "123"}))


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Threat: other local users reading runs, logs and token hashes from the file."""
    app = App(Settings(database_url=f"sqlite:///{tmp_path / 'private.db'}"))
    try:
        app.migrate()
        assert (tmp_path / "private.db").stat().st_mode & 0o777 == 0o600
        wal = tmp_path / "private.db-wal"
        assert not wal.exists() or wal.stat().st_mode & 0o077 == 0
    finally:
        app.close()


def test_a_pipelines_folder_cannot_shadow_a_standard_module(tmp_path: Path) -> None:
    """Threat: a file named ``json.py`` among the pipelines replacing the real module."""
    import sys

    from lockgate.specs.discover import load_definitions

    (tmp_path / "json.py").write_text("SHADOW = True\n")
    (tmp_path / "pipes.py").write_text("import json\nSHADOWED = hasattr(json, 'SHADOW')\n")
    load_definitions([str(tmp_path / "pipes.py")])
    loaded = next(m for m in list(sys.modules.values()) if getattr(m, "SHADOWED", None) is not None)
    assert loaded.SHADOWED is False


def test_masking_keeps_to_the_secret_and_its_encodings() -> None:
    """A lower-cased spelling of the secret is other text: masking it would hide what the
    log says (only the %XX escapes of an encoded form may differ in case)."""
    mask = Masker(["Tok/EN-42"])
    assert mask("Tok%2FEN-42 tok%2fen-42") == "*** tok%2fen-42"
    assert mask("Tok%2fEN-42") == "***"


def test_log_colours_become_classes_for_every_sgr_form() -> None:
    """256-colour and truecolour escapes were misread (``38;5;4`` as underline,
    ``38;2;1;2;3`` as bold, faint and italic): SGR is read in full and becomes classes,
    and every class used has its colour in the console's stylesheet."""
    from pathlib import Path

    from lockgate.console import ansi

    html = str(
        ansi.ansi_html(
            "\x1b[38;5;4mblue\x1b[0m \x1b[38;5;208morange\x1b[0m \x1b[38;2;1;2;3mnear black"
            "\x1b[0m \x1b[1;4;31;48;5;22mall\x1b[22;24m plain red\x1b[0m <b>\x1b]0;t\x07end\x07"
        )
    )
    assert '<span class="ansi-fg-34">blue</span>' in html
    assert '<span class="ansi-fg-256-208">orange</span>' in html
    assert '<span class="ansi-fg-256-16">near black</span>' in html
    assert '<span class="ansi-bg-256-22 ansi-bold ansi-fg-31 ansi-underline">all</span>' in html
    assert '<span class="ansi-bg-256-22 ansi-fg-31"> plain red</span>' in html
    assert "ansi-italic" not in html and "ansi-faint" not in html
    assert (
        "&lt;b&gt;end" in html and "\x1b" not in html and "\x07" not in html and "0;t" not in html
    )
    css = (Path(ansi.__file__).parent / "static" / "console.css").read_text()
    used = set(__import__("re").findall(r'class="([^"]+)"', html))
    for name in {c for group in used for c in group.split()}:
        assert f".{name} " in css or f".{name}," in css, name
    assert ".ansi-fg-256-196 { color: #ff0000; }" in css and ".ansi-bg-256-244 " in css


def test_a_flood_of_new_keys_does_not_reset_the_budgets_in_use() -> None:
    """Past its key limit the rate limiter wiped its whole table, giving every address a
    full budget again; now it forgets the keys unused longest."""
    from lockgate.core.buckets import Buckets

    budget = Buckets(rate=0.001, burst=2, max_keys=100)
    assert budget.take("attacker", now=0.0) == 0.0
    assert budget.take("attacker", now=0.0) == 0.0
    assert budget.take("attacker", now=0.0) > 0  # spent
    for n in range(150):  # new keys, and the attacker keeps trying (so stays in use)
        budget.take(f"forged-{n}", now=1.0 + n)
        if n % 50 == 0:
            assert budget.take("attacker", now=1.0 + n) > 0
    assert len(budget) == 100
    assert budget.take("attacker", now=200.0) > 0  # still spent: not wiped
    assert budget.take("forged-0", now=200.0) == 0.0  # forgotten, and starts full
