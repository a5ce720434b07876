"""`borne claim` / `borne unclaim`: the owner's app, from a terminal, against the charger's
provisioning API (README "Provisioning API").

Secrets can come from the environment instead of the command line (where `ps` shows them):
BORNE_CONN_PASSWORD, BORNE_WIFI_PASSWORD, BORNE_AUTH_KEY.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://192.168.4.1"  # the charger's address on its own hotspot


class ClaimError(Exception):
    def __init__(self, status: int, data: dict[str, Any]) -> None:
        self.status = status
        self.data = data
        msg = data.get("message") or data.get("error") or f"HTTP {status}"
        if data.get("field"):
            msg = f"{msg} (field {data['field']})"
        super().__init__(msg)

    @property
    def retry_after(self) -> int:
        v = self.data.get("retry_after", 0)
        return v if isinstance(v, int) else 0


class ProvisioningClient:
    """A client of the provisioning API; one bearer token after `login`."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.token: str | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, _json(r.read())
        except urllib.error.HTTPError as e:
            return e.code, _json(e.read())

    def _ok(self, method: str, path: str, body: Any = None, want: int = 200) -> dict[str, Any]:
        status, data = self.request(method, path, body)
        if status != want:
            raise ClaimError(status, data)
        return data

    def identity(self) -> dict[str, Any]:
        return self._ok("GET", "/api/identity")

    def login(self, password: str) -> str:
        data = self._ok("POST", "/api/login", {"password": password})
        self.token = str(data["token"])
        return self.token

    def networks(self) -> list[dict[str, Any]]:
        nets: list[dict[str, Any]] = self._ok("GET", "/api/networks")["networks"]
        return nets

    def claim(self, fields: dict[str, Any]) -> dict[str, Any]:
        return self._ok("POST", "/api/claim", fields, want=202)

    def status(self) -> dict[str, Any]:
        return self._ok("GET", "/api/claim")

    def wait(self, timeout: float = 60.0, on_state: Any = None) -> dict[str, Any]:
        """Poll the claim's progress until it is done or failed."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            st = self.status()
            if st["state"] != last and on_state:
                on_state(st)
            last = st["state"]
            if st["state"] in ("done", "failed"):
                return st
            time.sleep(0.3)
        raise TimeoutError(f"the claim did not finish within {timeout} s (last state {last})")

    def unclaim(self) -> dict[str, Any]:
        return self._ok("POST", "/api/unclaim", {"confirm": True}, want=202)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        d = json.loads(raw or b"{}")
    except ValueError:
        return {"error": "the charger's answer is not JSON"}
    return d if isinstance(d, dict) else {"error": "unexpected answer"}


def _secret(value: str | None, env: str) -> str | None:
    return value if value is not None else os.environ.get(env)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "claim",
        help="claim a charger over its hotspot (what the owner's app does)",
        description="Join the charger's hotspot first (SSID and key from its label). Then: log "
        "in with the connection password, send the name, home Wi-Fi and CSMS, and follow the "
        "charger until it reports success or the exact failure.",
    )
    _common(p)
    p.add_argument("--identity", action="store_true", help="only show the public identity")
    p.add_argument("--scan", action="store_true", help="only list the Wi-Fi networks it sees")
    p.add_argument("--name", help="the charger's name (1-32 characters)")
    p.add_argument("--wifi-ssid", help="home Wi-Fi network")
    p.add_argument("--wifi-password", help="home Wi-Fi password (or BORNE_WIFI_PASSWORD)")
    p.add_argument("--csms", help="CSMS URL, ws:// or wss://")
    p.add_argument("--cp-id", help="OCPP charge point id (default: the one in use)")
    p.add_argument("--profile", type=int, default=None, choices=(0, 1, 2),
                   help="OCPP security profile (default 2 for wss://, 0 for ws://)")
    p.add_argument("--auth-key", help="AuthorizationKey for profiles 1-2 (or BORNE_AUTH_KEY)")
    p.add_argument("--ca", metavar="PEM_FILE", help="the CSMS's CA certificate (profile 2)")
    p.add_argument("--wait", type=float, default=90.0, help="seconds to follow the claim")
    p.set_defaults(func=run_claim)
    u = sub.add_parser("unclaim", help="factory reset over the hotspot: wipe the owner's data")
    _common(u)
    u.set_defaults(func=run_unclaim)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=DEFAULT_URL, help=f"the charger (default {DEFAULT_URL})")
    p.add_argument("--password", help="connection password from the label "
                   "(or BORNE_CONN_PASSWORD)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")


def _login(c: ProvisioningClient, args: argparse.Namespace) -> None:
    pw = _secret(args.password, "BORNE_CONN_PASSWORD")
    if not pw:
        raise ClaimError(0, {"error": "--password (or BORNE_CONN_PASSWORD) is required"})
    c.login(pw)


def run_claim(args: argparse.Namespace) -> int:
    c = ProvisioningClient(args.url, args.timeout)
    try:
        ident = c.identity()
        if args.identity:
            print(json.dumps(ident, indent=2))
            return 0
        print(f"charger {ident.get('cp_id')} ({ident.get('model')}, firmware "
              f"{ident.get('firmware')}){' - already claimed' if ident.get('claimed') else ''}")
        _login(c, args)
        if args.scan:
            for n in c.networks():
                print(f"{n['rssi']:>5} dBm  {'WPA2' if n['secure'] else 'open'}  {n['ssid']}")
            return 0
        missing = [f"--{k.replace('_', '-')}" for k in ("name", "wifi_ssid", "csms")
                   if not getattr(args, k)]
        if missing:
            print(f"borne claim: {', '.join(missing)} required", file=sys.stderr)
            return 2
        profile = args.profile
        if profile is None:
            profile = 2 if args.csms.startswith("wss://") else 0
        fields: dict[str, Any] = {
            "name": args.name,
            "wifi_ssid": args.wifi_ssid,
            "wifi_password": _secret(args.wifi_password, "BORNE_WIFI_PASSWORD") or "",
            "csms_url": args.csms,
            "security_profile": profile,
        }
        if args.cp_id:
            fields["cp_id"] = args.cp_id
        key = _secret(args.auth_key, "BORNE_AUTH_KEY")
        if key:
            fields["auth_key"] = key
        if args.ca:
            fields["ca_pem"] = Path(args.ca).read_text()
        c.claim(fields)
        final = c.wait(args.wait, lambda st: print(f"  {st['state']}"))
    except ClaimError as e:
        print(f"borne claim: {e}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError) as e:
        print(f"borne claim: cannot reach the charger at {args.url}: {e}", file=sys.stderr)
        return 1
    if final["state"] == "failed":
        print(f"borne claim: failed: {final.get('message')} ({final.get('error')})",
              file=sys.stderr)
        return 1
    print(f"claimed as {final.get('cp_id')}; the hotspot closes now")
    return 0


def run_unclaim(args: argparse.Namespace) -> int:
    c = ProvisioningClient(args.url, args.timeout)
    try:
        _login(c, args)
        c.unclaim()
    except ClaimError as e:
        print(f"borne unclaim: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"borne unclaim: cannot reach the charger at {args.url}: {e}", file=sys.stderr)
        return 1
    print("unclaimed: the charger restarts in claim mode")
    return 0
