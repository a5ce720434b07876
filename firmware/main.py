# Thin entry point: choose the application slot, import it, run it, restart on a fatal error.
# On the charger the application lives in app_a/ or app_b/ next to this file, and boot_slot names
# the active one, so an over-the-air update can keep two versions and fall back to the old one
# (slotchoice.py: the boot record and the trial rules). With neither present, the application
# frozen into the firmware (or, under the unix port, the folder this file is in) runs. This file
# is never updated over the air and stays in the heap for the whole run: keep it small.
import sys

import slotchoice

if __name__ == "__main__" and not slotchoice.maintenance():
    slot, trial = slotchoice.choose()
    try:
        app = slotchoice.enter(slot)
        # The choice is made: its code leaves the heap while the application runs.
        del sys.modules["slotchoice"]
        slotchoice = None
        app.run()
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
        # The contactor opens first (Board() drives it open before anything else; the pins
        # keep the crashed program's state), then the report, the trial's verdict (a flash
        # write) and the restart. (unix_sim: the relay is the simulation's, whose coil drops
        # when the process ends.)
        b = None
        try:
            import board

            b = board.Board()
            b.set_relay(False)
        except Exception:
            pass
        sys.print_exception(e)
        if trial:
            try:
                import slotchoice

                slotchoice.give_up(slot, "crashed: %s: %s" % (type(e).__name__, e))
            except Exception:
                pass
        try:
            (b or board.Board()).reset(True)
        except Exception:
            pass
        raise
