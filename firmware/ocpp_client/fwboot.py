# Feature "fwboot" (eager, no actions): at boot, attaches the firmware feature (ota/, ~8wK) only
# when an update left something to do: a job not idle or a final status not yet sent (the `ota`
# document), a trial boot record, a rollback note, a bundle on flash. Otherwise ota/ stays out
# of the heap until an update is asked for, and TriggerMessage answers Idle (remote.py).
import os

_FILES = ("boot_trial", "boot_note", "ota_bundle.fw")  # ota/slots.py, ota/update.py BUNDLE


def _left(s):
    d = s.store.load("ota", {"phase": "idle", "sent": True})
    if d.get("phase", "idle") != "idle" or not d.get("sent", True):
        return True
    for p in _FILES:
        try:
            os.stat(p)
            return True
        except OSError:
            pass
    return False


def attach(s):
    # Boot only: out of the heap again once it looked.
    from supervisor import drop

    drop("ocpp_client.fwboot")
    if _left(s):
        s.feature("firmware")
    return {}
