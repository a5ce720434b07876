# The choice of the application slot at boot, for main.py: which version runs, the trial
# bookkeeping of an update, the maintenance boot. main.py imports it, uses it and drops it before
# the application runs: with the code in the heap (compiled from source, or a .mpy) it is out of
# the heap again (~1.9 KB that main.py held for the whole run when it carried this itself).
# Frozen into an image; beside main.py at the filesystem root otherwise (`borne build` and
# `borne deploy` put it there, outside both slots: it runs before a slot is chosen). Never updated
# over the air: keep it small, and keep its four names (maintenance, choose, enter, give_up)
# compatible, since a deploy cut between writing it and main.py leaves one new and one old.
#
# Files next to main.py (the boot record; ota/slots.py writes them, always temp + rename):
#   boot_slot    "a" | "b"   the committed slot (missing: the frozen / factory application)
#   boot_trial   "<s> <n>"   slot s (complete: app_<s>/.manifest exists) is on trial and was
#                            started n times; the app commits it (boot_slot = s, this file gone)
#                            once it proved itself
#   boot_note    one line    why a trial was given up, for the old version to report
# A trial slot that is incomplete, was started TRIAL_BOOTS times without committing (hang and
# watchdog, power cuts) or raised (import error, crash) is dropped: the committed slot runs.
import os
import sys

TRIAL_BOOTS = 3


def _read(p):
    try:
        with open(p) as f:
            return f.read(64).strip()
    except OSError:
        return None


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def _write(p, text):
    try:
        with open(p + ".tmp", "w") as f:
            f.write(text)
    except OSError:
        _remove(p + ".tmp")  # (flash full: its space back)
        raise
    try:
        os.rename(p + ".tmp", p)
    except OSError:  # FAT: rename cannot replace a file
        _remove(p)
        os.rename(p + ".tmp", p)


def give_up(s, why):
    try:
        _write("boot_note", "slot %s: %s" % (s, why))
    except OSError:  # flash full: no note, the trial ends all the same
        print("borne: slot %s given up: %s" % (s, why))
    _remove("boot_trial")


def choose():
    # -> (slot "a" | "b" | None, on trial?)
    cur = _read("boot_slot")
    if cur not in ("a", "b"):
        cur = None
    t = _read("boot_trial")
    if t is None:
        return cur, False
    parts = t.split()
    s = parts[0] if parts else ""
    try:
        n = int(parts[1])
    except (IndexError, ValueError):
        n = TRIAL_BOOTS
    if s == cur:
        _remove("boot_trial")  # committed, cut before the trial record went
    elif s not in ("a", "b"):
        give_up(s, "bad trial record")
    elif not _exists("app_%s/.manifest" % s):
        give_up(s, "incomplete")
    elif n >= TRIAL_BOOTS:
        give_up(s, "not proven after %d boots (hang, watchdog or power loss)" % n)
    else:
        try:
            _write("boot_trial", "%s %d" % (s, n + 1))
            return s, True
        except OSError:
            # Flash full: the boot cannot be counted, and a trial nothing counts could hang and
            # restart for ever; the committed slot runs (the update: InstallationFailed).
            give_up(s, "flash full: trial boot not counted")
    return cur, False


def enter(d):
    if d:
        sys.path.insert(0, "app_" + d)
    import app

    return app


def maintenance():
    # A one-shot marker left by the console's @safe (console.py): this boot does not start the
    # application (nor count as a trial), so the watchdog, which nothing stops once started, is
    # not running while a technician's tool works at the REPL. The board is still built: it
    # opens the contactor.
    if not _exists("maint"):
        return False
    _remove("maint")
    cur = _read("boot_slot")
    if cur in ("a", "b"):
        sys.path.insert(0, "app_" + cur)
    import board

    board.Board()
    print("borne: maintenance boot: application not started, contactor open; reset to run it")
    return True
