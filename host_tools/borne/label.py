"""`borne label`: the charger's label as SVG and PNG.

It carries the charger id, the hotspot SSID, the network password (the per-device WPA2 key),
the connection password, a QR code to join the hotspot (the standard Wi-Fi QR format,
`WIFI:T:WPA;S:<ssid>;P:<key>;;` with `\\ ; , : "` escaped) and a Scan & Charge QR code with the
charger id and connector. QR codes are made with `segno` (its PNG writer draws the codes
embedded in the SVG); the SVG layout is composed here, and drawn again as PNG with Pillow.

The files carry both secrets: they are written mode 0600, as `<out>.svg` and `<out>.png` (the
extension added to the whole name: `site.01` and `site.02` stay two labels).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import segno

ENV_KEY = "BORNE_HOTSPOT_KEY"  # the secrets, when neither a register nor a flash folder has them
ENV_PASSWORD = "BORNE_CONN_PASSWORD"
SCAN_AND_CHARGE = "borne:charge?cp={cp}&connector={connector}"
_SSID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def ssid_for(cp_id: str) -> str:
    """The hotspot SSID the firmware derives from the charger id (hotspot/claim.py)."""
    return ("borne-" + "".join(c for c in cp_id if c in _SSID_CHARS))[:32]


def wifi_escape(s: str) -> str:
    """Escape a value for the Wi-Fi QR format (backslash first)."""
    for ch in ("\\", ";", ",", ":", '"'):
        s = s.replace(ch, "\\" + ch)
    return s


def wifi_qr_text(ssid: str, key: str) -> str:
    return f"WIFI:T:WPA;S:{wifi_escape(ssid)};P:{wifi_escape(key)};;"


@dataclass
class Label:
    cp_id: str
    hotspot_key: str
    conn_password: str
    connector: int = 1

    @property
    def ssid(self) -> str:
        return ssid_for(self.cp_id)

    def wifi_qr(self) -> segno.QRCode:
        return segno.make_qr(wifi_qr_text(self.ssid, self.hotspot_key), error="m")

    def charge_qr(self) -> segno.QRCode:
        return segno.make_qr(SCAN_AND_CHARGE.format(cp=self.cp_id, connector=self.connector),
                             error="m")

    def svg(self) -> str:
        """The label, 90 x 55 mm (a business card), as a standalone SVG document."""
        w, h = 90, 55
        qr = 30

        def embed(code: segno.QRCode, x: float, y: float, size: float) -> str:
            buf = io.BytesIO()
            code.save(buf, kind="png", scale=10, border=1)  # segno's PNG writer
            data = base64.b64encode(buf.getvalue()).decode()
            return (f'<image x="{x}" y="{y}" width="{size}" height="{size}" '
                    f'href="data:image/png;base64,{data}" style="image-rendering:pixelated"/>')

        text = []
        y = 8.0
        for name, value in self.rows():
            text.append(f'<text x="4" y="{y}" font-size="2.4" fill="#52606d">{escape(name)}</text>')
            text.append(f'<text x="4" y="{y + 3.6}" font-size="3.4" font-family="monospace" '
                        f'font-weight="bold">{escape(value)}</text>')
            y += 9.5
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}mm" height="{h}mm" '
            f'viewBox="0 0 {w} {h}" font-family="sans-serif">'
            f'<rect width="{w}" height="{h}" rx="3" fill="#fff" stroke="#1d2733" '
            'stroke-width="0.4"/>'
            + "".join(text)
            + embed(self.wifi_qr(), 56, 3, qr)
            + '<text x="71" y="35.5" font-size="2.4" text-anchor="middle">Join the hotspot</text>'
            + f'<line x1="4" y1="{y - 3}" x2="52" y2="{y - 3}" stroke="#9aa5b1" '
            'stroke-width="0.2"/>'
            + f'<text x="4" y="{y + 1}" font-size="2.4">Scan &amp; Charge: connector '
            f"{self.connector}</text>"
            + embed(self.charge_qr(), 62.5, 37, 17)
            + "</svg>"
        )

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("Charger", self.cp_id),
            ("Wi-Fi (SSID)", self.ssid),
            ("Network password", self.hotspot_key),
            ("Connection password", self.conn_password),
        ]


def label_paths(out: Path) -> tuple[Path, Path]:
    """The SVG and PNG files of a label named ``out`` (without extension): the extension is
    added to the whole name, never in place of a dotted id's last part."""
    return out.with_name(out.name + ".svg"), out.with_name(out.name + ".png")


def _private(path: Path) -> io.BufferedWriter:
    # Mode 0600 from the start (the secrets are never readable by others, whatever the umask),
    # and again on a file that existed with a looser mode.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def write_label(label: Label, out: Path) -> tuple[Path, Path]:
    """Both label files, mode 0600 (they carry the secrets). OSError as the OS tells it."""
    svg, png = label_paths(out)
    with _private(svg) as f:
        f.write(label.svg().encode())
    with _private(png) as f:
        _png_label(label, f, 12)
    return svg, png


def _png_label(label: Label, path: Path | io.BufferedWriter, k: int) -> None:
    # The same label as a raster PNG (90 x 55 mm at k px/mm), for printers and screens that take
    # no SVG: the texts, both passwords included, and both QR codes.
    # Drawn with Pillow's bundled font (FreeType): case-sensitive secrets print as they are.
    from PIL import Image, ImageDraw, ImageFont

    def mm(v: float) -> int:
        return round(v * k)

    img = Image.new("RGB", (mm(90), mm(55)), "white")
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, mm(90) - 1, mm(55) - 1), radius=mm(3), outline="#1d2733",
                        width=max(1, mm(0.4)))
    small = ImageFont.load_default(size=mm(2.4))
    big = ImageFont.load_default(size=mm(3.4))
    y = 8.0
    for name, value in label.rows():
        d.text((mm(4), mm(y)), name, fill="#52606d", font=small, anchor="ls")
        d.text((mm(4), mm(y + 3.6)), value, fill="black", font=big, anchor="ls")
        y += 9.5
    d.line((mm(4), mm(y - 3), mm(52), mm(y - 3)), fill="#9aa5b1", width=max(1, mm(0.2)))
    d.text((mm(4), mm(y + 1)), f"Scan & Charge: connector {label.connector}", fill="black",
           font=small, anchor="ls")
    for code, x, top, size in ((label.wifi_qr(), 56, 3, 30), (label.charge_qr(), 62.5, 37, 17)):
        buf = io.BytesIO()
        code.save(buf, kind="png", scale=10, border=1)
        buf.seek(0)
        qr = Image.open(buf).convert("RGB").resize((mm(size), mm(size)), Image.NEAREST)
        img.paste(qr, (mm(x), mm(top)))
    d.text((mm(71), mm(35.5)), "Join the hotspot", fill="black", font=small, anchor="ms")
    img.save(path, "PNG")


def flash_secrets(flash: Path) -> dict[str, Any]:
    """A simulated charger's factory data in its --flash folder: <flash>/factory.json (the
    unix_sim board: the secrets), else the emulated NVS's provisioning (`borne sim --board
    esp32_wallbox`: the id too). ValueError naming what is missing."""
    try:
        doc = json.loads((flash / "factory.json").read_text())
    except FileNotFoundError:
        from borne.sim import esp32state

        try:
            blob = esp32state.nvs_read(flash).get("borne", {}).get("prov")
            doc = json.loads(blob) if isinstance(blob, bytes) else None
        except (OSError, ValueError) as e:
            raise ValueError(f"{flash}/nvs.json: cannot read it ({e})") from None
        if doc is None:
            raise ValueError(f"{flash} holds no simulated charger (no factory.json, no NVS "
                             "provisioning): name the folder `borne sim --flash` ran on") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{flash}/factory.json: cannot read it ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{flash}: its factory data is not a JSON object")
    return doc


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("label", help="print the charger's label (SVG and PNG) with its QR codes",
                       description="The secrets come from the installer's register (--register), "
                       "the simulation's flash folder (--flash: its factory.json, or the emulated "
                       "NVS of --board esp32_wallbox, which gives the id too), or the "
                       f"environment ({ENV_KEY}, {ENV_PASSWORD}); never from the command line, "
                       "where the shell's history and `ps` would keep them. The files carry the "
                       "secrets: they are written mode 0600.")
    p.add_argument("--flash", help="a simulated charger's flash directory (its factory.json, "
                   "or its emulated NVS)")
    p.add_argument("--register", metavar="FILE",
                   help="the installer's register (`borne provision`): reprint the label of --id")
    p.add_argument("--id", dest="cp_id", help="charger id")
    p.add_argument("--connector", type=int, default=1,
                   help="the connector the Scan & Charge QR code names (default 1)")
    p.add_argument("--out", help="output path without extension (.svg and .png are added; "
                   "default <id>-label, as `borne provision` names it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cp_id = args.cp_id
    key, pw = os.environ.get(ENV_KEY) or None, os.environ.get(ENV_PASSWORD) or None
    if args.flash:
        try:
            d = flash_secrets(Path(args.flash))
        except ValueError as e:
            print(f"borne label: {e}", file=sys.stderr)
            return 2
        if cp_id and d.get("cp_id") not in (None, cp_id):
            print(f"borne label: the charger in {args.flash} is {d['cp_id']}, not {cp_id}: "
                  "its secrets would go on another charger's label", file=sys.stderr)
            return 2
        cp_id = cp_id or d.get("cp_id")
        key = d.get("hotspot_key") or key
        pw = d.get("conn_password") or pw
    if args.register and cp_id:
        from borne.provision import Register, RegisterError

        try:
            entry = Register.load(Path(args.register)).find(cp_id)
        except RegisterError as e:
            print(f"borne label: {e}", file=sys.stderr)
            return 2
        if entry is None:
            print(f"borne label: {cp_id} is not in the register {args.register}", file=sys.stderr)
            return 2
        key = entry.get("hotspot_key") or key
        pw = entry.get("conn_password") or pw
    if not (cp_id and key and pw):
        print(f"borne label: --id, and the secrets from --register, --flash or {ENV_KEY} and "
              f"{ENV_PASSWORD} are required", file=sys.stderr)
        return 2
    out = args.out or f"{cp_id}-label"
    try:
        svg, png = write_label(Label(cp_id, key, pw, args.connector), Path(out))
    except OSError as e:
        print(f"borne label: cannot write the label {out}.svg ({e.strerror}): check that "
              "its folder exists and is writable", file=sys.stderr)
        return 1
    print(f"wrote {svg} and {png} (they carry the secrets: print them, then delete them)")
    return 0
