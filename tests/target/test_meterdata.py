# On-target tests for ocpp_client/meterdata.py: the SampledValues of MeterValues and of a
# StopTransaction's transactionData, from the meter's latest reading and the connector's offer.
from ocpp_client import meterdata


class Meter:
    latest = {"energy_wh": 1234, "power_w": 7360.0, "current_a": [16.0, 16.0, 0.0],
              "voltage_v": [230.0, 229.5, None], "frequency_hz": 50.0, "ok": True, "ts": 0}


class Conn:
    offer_a = 16

    def energy_wh(self):
        return 1234

    def offering(self):
        return True


ALL = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage",
       "Frequency", "Current.Offered", "Power.Offered")


def test_each_measurand_has_its_unit_and_phases():
    got = meterdata.sampled(Meter(), Conn(), ALL, "Sample.Periodic")
    seen = [(v["measurand"], v.get("phase"), v.get("unit"), v["value"]) for v in got]
    assert seen == [
        ("Energy.Active.Import.Register", None, "Wh", "1234"),
        ("Power.Active.Import", None, "W", "7360"),
        ("Current.Import", "L1", "A", "16"), ("Current.Import", "L2", "A", "16"),
        ("Current.Import", "L3", "A", "0"),
        ("Voltage", "L1-N", "V", "230"), ("Voltage", "L2-N", "V", "229.5"),  # L3 unknown: left out
        ("Frequency", None, None, "50"),
        ("Current.Offered", None, "A", "16"),
        ("Power.Offered", None, "W", str(16 * 230 * 3)),
    ], seen
    assert all(v["context"] == "Sample.Periodic" for v in got)


def test_unknown_measurands_and_values_are_left_out_never_invented():
    assert meterdata.sampled(Meter(), Conn(), ("SoC", "Temperature"), "Trigger") == []
    got = meterdata.sampled(None, Conn(), ("Power.Active.Import", "Current.Offered"), "Trigger")
    assert [v["measurand"] for v in got] == ["Current.Offered"]


def test_a_measurand_with_a_phase_gives_that_phase_only():
    # OCPP 1.6 9.1 (MeterValuesSampledData): "Where applicable, the Measurand is combined with
    # the optional phase; for instance: Voltage.L1". The SampledValue names the measurand and
    # its phase apart, as the schema has them; a voltage is the meter's phase-to-neutral one.
    got = meterdata.sampled(Meter(), Conn(), ("Current.Import.L2", "Voltage.L1", "Voltage.L2-N",
                                              "Voltage.L3", "Energy.Active.Import.Register"),
                            "Sample.Periodic")
    seen = [(v["measurand"], v.get("phase"), v["value"]) for v in got]
    assert seen == [("Current.Import", "L2", "16"), ("Voltage", "L1-N", "230"),
                    ("Voltage", "L2-N", "229.5"),  # (L3 unknown: left out, never invented)
                    ("Energy.Active.Import.Register", None, "1234")], seen
