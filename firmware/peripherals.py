# The charger's peripherals built from what the board offers: the RFID reader (PN532 on its
# UART), the energy meter (Modbus RTU on RS-485, or S0 pulses) and the buzzer. Each runs as its
# own task on the one loop; their events go to the connector (the only owner of sessions,
# status and the relay).
# The set-up (which reader, which meter, the RS-485 bus, the grid meter) runs once at boot: it is
# in periphsetup.py, loaded for it and out of the heap again after, with the object it returns
# (nothing the devices keep refers to it). This module stays for the callbacks they keep.


def Peripherals(board, settings, connector, light=None):
    # -> the devices (periphsetup.Devices): .rfid, .meter, .buzzer, .supply (None when absent),
    # .tag_feedback(accepted) (an authorisation's answer at the charger: LED flash and buzzer
    # tune: the buzzer's, which flashes the light too) and .tasks(): (name, async fn) of each
    # task to run (app.py supervises them: restarted after a failure, so a function, not a
    # coroutine).
    from supervisor import drop
    import periphsetup

    drop("periphsetup")
    return periphsetup.build(board, settings, connector, light, _callback)


def _callback(obj, name):
    # A callback a device keeps, made here: a closure made in periphsetup.py would keep that
    # module's globals (and so all of it) in the heap. "grid": the grid meter's telemetry
    # (obj the board); else obj.device_fault(name, on) (obj the connector).
    if name == "grid":
        return lambda k, v: obj.telemetry("grid", v)
    return lambda on: obj.device_fault(name, on)
