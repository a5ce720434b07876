# Thin entry point: choose the application slot, import it, run it, restart on a fatal error.
# On the charger the application lives in app_a/ or app_b/ next to this file, and boot_slot names
# the active one, so an over-the-air update can keep two versions and fall back to the old one.
# With neither present, the application frozen into the firmware (or, under the unix port, the
# folder this file is in) runs.
import sys


def _slot():
    try:
        with open("boot_slot") as f:
            s = f.read().strip()
    except OSError:
        return None
    return "app_" + s if s in ("a", "b") else None


def _maintenance():
    # A one-shot marker left by the console's @safe (console.py): this boot does not start the
    # application, so the watchdog (which nothing stops once started) is not running while a
    # technician's tool works at the REPL. The board is still built: it opens the contactor.
    try:
        import os

        os.remove("maint")
    except OSError:
        return False
    import board

    board.Board()
    print("borne: maintenance boot: application not started, contactor open; reset to run it")
    return True


def _enter():
    d = _slot()
    if d:
        sys.path.insert(0, d)
    if _maintenance():
        return None
    import app

    return app


try:
    a = _enter()
    if a:
        a.run()
except SystemExit:
    raise
except KeyboardInterrupt:
    # Ctrl-C on the serial line (mpremote, a technician): the program stops here and the pins keep
    # their state, so drive the outputs safe first (Board() opens the contactor before anything).
    try:
        import board

        board.Board()
    except Exception:
        pass
    raise
except Exception as e:
    sys.print_exception(e)
    try:
        import board

        board.Board().reset(True)
    except Exception:
        pass
    raise
