# The charger's peripherals built from what the board offers: the RFID reader (PN532 on its
# UART), the energy meter (Modbus RTU on RS-485, or S0 pulses) and the buzzer. Each runs as its
# own task on the one loop; their events go to the connector (the only owner of sessions,
# status and the relay).
# The set-up (which reader, which meter, the RS-485 bus, the grid meter) runs once at boot: it is
# in periphsetup.py, loaded for it and out of the heap again after.


class Peripherals:
    def __init__(self, board, settings, connector, light=None):
        from supervisor import drop
        import periphsetup

        drop("periphsetup")
        self.light = light
        self.buzzer = None
        self.rfid = None
        self.meter = None
        self.supply = None
        self._tasks = []
        periphsetup.build(self, board, settings, connector, _callback)

    def tasks(self):
        # (name, async fn) of each task to run: app.py supervises them (restarted after a
        # failure), so a function, not a coroutine.
        return self._tasks

    # -- for the charging logic and the OCPP client -------------------------------------------
    def tag_feedback(self, accepted):
        # An authorisation's answer at the charger: LED flash and buzzer tune.
        if self.light:
            self.light.tag_feedback(accepted)
        if accepted:
            self.buzzer.accepted()
        else:
            self.buzzer.rejected()


def _callback(obj, name):
    # A callback a device keeps, made here: a closure made in periphsetup.py would keep that
    # module's globals (and so all of it) in the heap. "grid": the grid meter's telemetry
    # (obj the board); else obj.device_fault(name, on) (obj the connector).
    if name == "grid":
        return lambda k, v: obj.telemetry("grid", v)
    return lambda on: obj.device_fault(name, on)
