# A firmware update's hold on the connector (Connector.hold, ota/update.py): nothing starts while
# it installs, whatever the CSMS says meanwhile; a failed installation leaves the availability the
# CSMS asked for last; and the restart into the new version never cuts a session off.
import asyncio

from otafakes import Board, Conn, Events, Reset
from store import Store
from test_connector_props import World, _boot, _plugged_asking, _settle
from ota import bundle, update


async def test_a_change_availability_during_the_installation_starts_nothing():
    w = World()
    c, cfg = _boot(w, Store("hold"))
    cfg.set("BorneFreeCharging", "true")
    c.hold(True)
    assert c.status_of(1)[0] == "Unavailable"
    assert c.change_availability(True) == "Accepted"  # the CSMS: Operative, mid-install
    await _plugged_asking(w, c)
    assert c.session is None and not w.relay, "a session started during the installation"
    assert c.status_of(1)[0] == "Unavailable", c.status_of(1)
    assert c.remote_start("A-REMOTE") == "Rejected"
    c.on_tag("A-CARD")
    await _settle(c)
    assert c.session is None and c.pending is None and not w.relay
    # The installation failed: hold(False), the connector is the CSMS's Operative again.
    c.hold(False)
    w.ev = "A"
    await _settle(c)
    await _plugged_asking(w, c)
    assert c.session is not None and w.relay, "operative after the hold: charges"


async def test_a_failed_installation_keeps_an_inoperative_the_csms_sent_meanwhile():
    w = World()
    c, cfg = _boot(w, Store("inop"))
    c.hold(True)
    assert c.change_availability(False) == "Accepted"  # the CSMS: Inoperative, mid-install
    c.hold(False)
    assert not c.operative and c.status_of(1)[0] == "Unavailable", c.status_of(1)
    cfg.set("BorneFreeCharging", "true")
    await _plugged_asking(w, c)
    assert c.session is None and not w.relay


class _Bundle:
    version = "9.9.9"
    manifest = {"files": []}


async def test_the_restart_after_an_installation_waits_for_a_session():
    conn = Conn()
    u = update.Updater(Store("data"), Board(), {}, conn, Events(), "unix_sim")
    u.doc["version"] = "9.9.9"

    async def check():
        return _Bundle()

    async def install(b, d):
        conn.session = {"ref": "1"}  # a session slipped in during the installation

    u._check = check
    u.slots.start_trial = lambda s: None
    real = bundle.install
    bundle.install = install

    async def end_session():
        await asyncio.sleep_ms(1200)
        ended.append(1)
        conn.session = None

    ended = []
    t = asyncio.create_task(end_session())
    try:
        await u._install()
        raise AssertionError("no restart")
    except Reset:
        pass
    finally:
        bundle.install = real
        t.cancel()
    assert ended, "restarted with a session running"
    assert conn.held == [True]
