# Feature "firmware" (features.py): UpdateFirmware and FirmwareStatusNotification; the work is in
# ota/ (ota/ocpp.py, ota/update.py). Lazy: it loads at the first UpdateFirmware, a signed update
# or a local upload (s.feature("firmware")), or at boot when `fwboot.py` finds an update with
# something left to do (a status to report after the reboot, a trial to prove).
import asyncio

# What features.unload() drops with this module once a job has ended (ota/ocpp.py _drop): the
# job's modules; ota/local.py (the hotspot's upload page) keeps it attached while loaded.
OWN = ("ota.ocpp", "ota.update", "ota.slots", "ota.bundle", "ota.keys", "ota.image", "ota.pss")

from ota.ocpp import Firmware


def attach(s):
    fw = Firmware(s)
    s.features["firmware"] = fw
    s.triggers["FirmwareStatusNotification"] = fw.trigger
    for t in fw.tasks():
        if s.tasks is not None:  # attached at boot: started with the session (client.run)
            s.tasks.append(t)
        elif isinstance(t, tuple):  # attached later: started now, (name, fn) supervised
            from supervisor import start

            start(*t)
        else:
            asyncio.create_task(t)
    return {"UpdateFirmware": fw.update}
