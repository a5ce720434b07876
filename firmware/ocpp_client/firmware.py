# Feature "firmware" (features.py): UpdateFirmware and FirmwareStatusNotification. Eager: an
# update that installed (or rolled back) has a status to report after the reboot, and a trial
# version proves itself from boot. The work is in ota/ (ota/ocpp.py, ota/update.py).
from ota.ocpp import Firmware


def attach(s):
    fw = Firmware(s)
    s.features["firmware"] = fw
    s.triggers["FirmwareStatusNotification"] = fw.trigger
    s.tasks.extend(fw.tasks())
    return {"UpdateFirmware": fw.update}
