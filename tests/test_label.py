"""`borne label`: the Wi-Fi QR text format and the label files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from borne.cli import main
from borne.label import Label, ssid_for, wifi_qr_text


def test_wifi_qr_text_escapes_special_characters() -> None:
    assert wifi_qr_text("borne-CP1", "abcd-efgh") == "WIFI:T:WPA;S:borne-CP1;P:abcd-efgh;;"
    assert wifi_qr_text('a;b,c', 'k\\e:y"') == 'WIFI:T:WPA;S:a\\;b\\,c;P:k\\\\e\\:y\\";;'


def test_ssid_matches_the_firmware_rule() -> None:
    assert ssid_for("CP-TEST-1") == "borne-CP-TEST-1"
    assert ssid_for("a b/c<d>" + "x" * 40) == ("borne-abcd" + "x" * 40)[:32]


def test_label_files(tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "factory.json").write_text(
        '{"hotspot_key": "abcd-efgh-ijkm-npqr", "conn_password": "wxyz-2345-6789"}')
    out = tmp_path / "lbl"
    assert main(["label", "--flash", str(flash), "--id", "CP<1>", "--out", str(out)]) == 0
    svg = (tmp_path / "lbl.svg").read_text()
    for text in ("CP&lt;1&gt;", "borne-CP1", "abcd-efgh-ijkm-npqr", "wxyz-2345-6789",
                 "Scan &amp; Charge: connector 1"):
        assert text in svg
    assert "<1>" not in svg
    assert svg.count("data:image/png;base64,") == 2
    png = (tmp_path / "lbl.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # The raster label carries the texts too: ink where the four rows of text stand, and
    # the two QR codes where the SVG puts them (90 x 55 mm at 12 px/mm).
    from PIL import Image

    img = Image.open(tmp_path / "lbl.png").convert("L")
    assert img.size == (1080, 660)
    for row in range(4):
        y = round((8.0 + 9.5 * row + 3.6) * 12) - 10
        band = img.crop((48, y - 20, 600, y + 5))
        assert band.getextrema()[0] < 100, f"no text in row {row} of the PNG label"
    for box in ((672, 36, 1032, 396), (750, 444, 954, 648)):
        lo, hi = img.crop(box).getextrema()
        assert lo < 50 and hi > 200, f"no QR code at {box}"
    assert Label("CP1", "k" * 16, "p" * 12).charge_qr().designator


def test_label_needs_its_secrets(tmp_path: Path) -> None:
    assert main(["label", "--id", "CP1", "--out", str(tmp_path / "x")]) == 2


def test_label_files_are_private_and_named_after_the_whole_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The secrets from the environment, never from the command line; both files mode 0600
    # whatever the umask, and a dotted name keeps its last part (site.01 and site.02 are two).
    monkeypatch.setenv("BORNE_HOTSPOT_KEY", "abcd-efgh-ijkm-npqr")
    monkeypatch.setenv("BORNE_CONN_PASSWORD", "wxyz-2345-6789-abcd")
    old = os.umask(0o022)
    try:
        for name in ("site.01", "site.02"):
            assert main(["label", "--id", name, "--out", str(tmp_path / name)]) == 0
    finally:
        os.umask(old)
    for name in ("site.01", "site.02"):
        for ext in (".svg", ".png"):
            f = tmp_path / (name + ext)
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert not (tmp_path / "site.svg").exists()
    assert ">site.02<" in (tmp_path / "site.02.svg").read_text()
    assert "abcd-efgh-ijkm-npqr" in (tmp_path / "site.01.svg").read_text()
    capsys.readouterr()
    # The secrets are no options any more (argv ends up in the shell's history and `ps`).
    with pytest.raises(SystemExit):
        main(["label", "--id", "CP1", "--hotspot-key", "k", "--conn-password", "p"])
    capsys.readouterr()
    # A folder that does not exist: one line, no traceback.
    assert main(["label", "--id", "CP1", "--out", str(tmp_path / "nosuch" / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot write the label" in err and "\n" not in err and "Traceback" not in err


def test_label_from_an_esp32_simulations_flash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `borne sim --board esp32_wallbox` keeps its provisioning in the emulated NVS, not in
    # factory.json: `borne label --flash` reads it there (the id with it), and refuses an --id
    # that is another charger's, whose label these secrets would be wrong on.
    import json

    from borne.sim import esp32state

    flash = tmp_path / "flash"
    doc = {"cp_id": "CP9", "hotspot_key": "abcd-efgh-ijkm-npqr", "conn_password": "wxyz-2345"}
    esp32state.nvs_write(flash, "borne", "prov", json.dumps(doc).encode())
    out = tmp_path / "lbl"
    assert main(["label", "--flash", str(flash), "--out", str(out)]) == 0
    svg = (tmp_path / "lbl.svg").read_text()
    assert all(t in svg for t in (">CP9<", "borne-CP9", "abcd-efgh-ijkm-npqr", "wxyz-2345"))
    capsys.readouterr()
    assert main(["label", "--flash", str(flash), "--id", "CP1", "--out", str(out)]) == 2
    assert "is CP9, not CP1" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["label", "--flash", str(tmp_path / "empty"), "--id", "CP1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no simulated charger" in err and "Errno" not in err and "\n" not in err


def test_label_default_name_is_the_chargers_as_provision_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `borne provision` (and `borne flash`) write <id>-label.svg/.png; `borne label` wrote
    # label.svg, the same name for every charger: a reprint overwrote another charger's label.
    monkeypatch.setenv("BORNE_HOTSPOT_KEY", "abcd-efgh-ijkm-npqr")
    monkeypatch.setenv("BORNE_CONN_PASSWORD", "wxyz-2345-6789-abcd")
    monkeypatch.chdir(tmp_path)
    for cp_id in ("CP1", "CP2"):
        assert main(["label", "--id", cp_id]) == 0
    assert ">CP1<" in (tmp_path / "CP1-label.svg").read_text()
    assert ">CP2<" in (tmp_path / "CP2-label.svg").read_text()
    assert (tmp_path / "CP2-label.png").is_file() and not (tmp_path / "label.svg").exists()
    assert "CP2-label.svg" in capsys.readouterr().out
