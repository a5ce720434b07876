# Feature "firmware" (features.py): UpdateFirmware and FirmwareStatusNotification; the work is in
# ota/ (ota/ocpp.py, ota/update.py). Lazy: it loads at the first UpdateFirmware, a signed update
# or a local upload (s.feature("firmware")), or at boot when `fwboot.py` finds an update with
# something left to do (a status to report after the reboot, a trial to prove).
import asyncio

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
