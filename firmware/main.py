# Thin entry point: choose the application slot, import it, run it, restart on a fatal error.
# On the charger the application lives in app_a/ or app_b/ next to this file, and boot_slot names
# the active one, so an over-the-air update can keep two versions and fall back to the old one.
# With neither present, the application frozen into the firmware (or, under the unix port, the
# folder this file is in) runs. This file is never updated over the air: keep it small.
#
# Files next to it (the boot record; ota/slots.py writes them, always temp + rename):
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
    with open(p + ".tmp", "w") as f:
        f.write(text)
    try:
        os.rename(p + ".tmp", p)
    except OSError:  # FAT: rename cannot replace a file
        _remove(p)
        os.rename(p + ".tmp", p)


def _give_up(s, why):
    _write("boot_note", "slot %s: %s" % (s, why))
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
        _give_up(s, "bad trial record")
    elif not _exists("app_%s/.manifest" % s):
        _give_up(s, "incomplete")
    elif n >= TRIAL_BOOTS:
        _give_up(s, "not proven after %d boots (hang, watchdog or power loss)" % n)
    else:
        _write("boot_trial", "%s %d" % (s, n + 1))
        return s, True
    return cur, False


def _enter(d):
    if d:
        sys.path.insert(0, "app_" + d)
    import app

    return app


def _maintenance():
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


if __name__ == "__main__" and not _maintenance():
    slot, trial = choose()
    try:
        _enter(slot).run()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        # Ctrl-C on the serial line (mpremote, a technician): the program stops here and the
        # pins keep their state, so drive the outputs safe first (Board() opens the contactor).
        try:
            import board

            board.Board()
        except Exception:
            pass
        raise
    except Exception as e:
        sys.print_exception(e)
        if trial:
            try:
                _give_up(slot, "crashed: %s: %s" % (type(e).__name__, e))
            except Exception:
                pass
        try:
            import board

            board.Board().reset(True)
        except Exception:
            pass
        raise
