# On-target tests for ocpp_client.validate: each OCPP-J error code an incoming CALL's payload can
# earn, the RFC 3339 and URI checks, and the rule table's reach (every CSMS -> CP action).
# tests/test_validate_schemas.py cross-checks the same code against jsonschema on many payloads.
from ocpp_client import validate
from ocpp_client.rules import RULES

OCC = "OccurenceConstraintViolation"
TYP = "TypeConstraintViolation"
PROP = "PropertyConstraintViolation"
FORM = "FormationViolation"

PROFILE = {
    "chargingProfileId": 1,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.5}, {"startPeriod": 60, "limit": 8}],
    },
}


def code(action, payload):
    r = validate.check(action, payload)
    return None if r is None else r[0]


def desc(action, payload):
    return validate.check(action, payload)[1]


def test_valid_payloads_pass():
    ok = [
        ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}),
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
        ("ClearCache", {}),
        ("DataTransfer", {"vendorId": "v", "messageId": "m", "data": "{}"}),
        ("GetConfiguration", {}),
        ("GetConfiguration", {"key": ["A", "B"]}),
        ("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1,
                                    "chargingProfile": dict(PROFILE, chargingProfilePurpose="TxProfile")}),
        ("RemoteStopTransaction", {"transactionId": 7}),
        ("Reset", {"type": "Hard"}),
        ("UnlockConnector", {"connectorId": 1}),
        ("GetDiagnostics", {"location": "ftp://u@h/d", "retries": 1, "retryInterval": 5,
                            "startTime": "2026-01-01T00:00:00Z", "stopTime": "2026-01-02T00:00:00.5+02:00"}),
        ("UpdateFirmware", {"location": "https://h/fw.bin", "retrieveDate": "2026-01-01T00:00:00Z"}),
        ("GetLocalListVersion", {}),
        ("SendLocalList", {"listVersion": 3, "updateType": "Differential", "localAuthorizationList": [
            {"idTag": "A"}, {"idTag": "B", "idTagInfo": {"status": "Blocked", "expiryDate": "2030-01-01T00:00:00Z",
                                                           "parentIdTag": "P"}}]}),
        ("CancelReservation", {"reservationId": 4}),
        ("ReserveNow", {"connectorId": 1, "expiryDate": "2026-05-05T10:00:00Z", "idTag": "T", "reservationId": 1}),
        ("ClearChargingProfile", {"id": 1, "connectorId": 0, "chargingProfilePurpose": "TxProfile", "stackLevel": 2}),
        ("GetCompositeSchedule", {"connectorId": 1, "duration": 3600, "chargingRateUnit": "W"}),
        ("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": PROFILE}),
        ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}),
        # the security extension
        ("CertificateSigned", {"certificateChain": "-----BEGIN CERTIFICATE-----"}),
        ("DeleteCertificate", {"certificateHashData": {
            "hashAlgorithm": "SHA256", "issuerNameHash": "ab", "issuerKeyHash": "cd",
            "serialNumber": "01"}}),
        ("ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"}),
        ("GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"}),
        ("GetLog", {"logType": "SecurityLog", "requestId": 3, "retries": 1, "log": {
            "remoteLocation": "ftp://h/", "oldestTimestamp": "2026-01-01T00:00:00Z"}}),
        ("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                "certificate": "-----BEGIN CERTIFICATE-----"}),
        ("SignedUpdateFirmware", {"requestId": 1, "retries": 2, "firmware": {
            "location": "https://h/fw", "retrieveDateTime": "2026-01-01T00:00:00Z",
            "signingCertificate": "pem", "signature": "c2ln"}}),
    ]
    for action, payload in ok:
        assert validate.check(action, payload) is None, (action, validate.check(action, payload))
    from ocpp_client.rules_ext import RULES as EXT

    assert len(set(a for a, _ in ok)) == sum(p.count("\n") - 1 for p in RULES + EXT) == 26
    # no string of the rules is one large block for an .mpy load to find (gen_rules.PART_MAX)
    assert max(len(p) for p in RULES + EXT) <= 768


def test_missing_required_field_is_occurence():
    assert code("Reset", {}) == OCC
    assert desc("Reset", {}) == "type: required"
    assert code("SetChargingProfile", {"connectorId": 1}) == OCC
    p = dict(PROFILE)
    del p["chargingSchedule"]
    assert code("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": p}) == OCC
    r = validate.check("SendLocalList", {"listVersion": 1, "updateType": "Full",
                                         "localAuthorizationList": [{"idTag": "A"}, {"idTagInfo": {}}]})
    assert r[0] == OCC and r[1].startswith("localAuthorizationList[1].idTag"), r


def test_wrong_json_type_is_type_constraint():
    assert code("Reset", {"type": 5}) == TYP
    assert code("ChangeAvailability", {"connectorId": "1", "type": "Operative"}) == TYP
    assert code("ChangeAvailability", {"connectorId": 1.0, "type": "Operative"}) == TYP
    assert code("ChangeAvailability", {"connectorId": True, "type": "Operative"}) == TYP
    assert code("ChangeAvailability", {"connectorId": None, "type": "Operative"}) == TYP
    assert code("GetConfiguration", {"key": "HeartbeatInterval"}) == TYP
    assert code("GetConfiguration", {"key": [1]}) == TYP
    assert code("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": []}) == TYP
    sched = dict(PROFILE["chargingSchedule"], chargingSchedulePeriod=[{"startPeriod": 0, "limit": "16"}])
    r = validate.check("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": dict(PROFILE, chargingSchedule=sched)})
    assert r == (TYP, "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit: must be a number"), r


def test_bad_values_are_property_constraint():
    assert code("Reset", {"type": "Medium"}) == PROP
    assert code("ChangeConfiguration", {"key": "k" * 51, "value": "v"}) == PROP
    assert code("ChangeConfiguration", {"key": "k" * 50, "value": "v" * 500}) is None
    assert code("ChangeConfiguration", {"key": "k", "value": "v" * 501}) == PROP
    assert code("ChangeAvailability", {"connectorId": -1, "type": "Operative"}) == PROP
    assert code("ReserveNow", {"connectorId": 1, "expiryDate": "tomorrow", "idTag": "T", "reservationId": 1}) == PROP
    assert code("UpdateFirmware", {"location": "not a uri", "retrieveDate": "2026-01-01T00:00:00Z"}) == PROP
    sched = dict(PROFILE["chargingSchedule"], chargingSchedulePeriod=[{"startPeriod": 0, "limit": 16.55}])
    assert code("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": dict(PROFILE, chargingSchedule=sched)}) == PROP
    sched = dict(PROFILE["chargingSchedule"], chargingSchedulePeriod=[])
    assert code("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": dict(PROFILE, chargingSchedule=sched)}) is None
    assert code("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": dict(PROFILE, stackLevel=-1)}) == PROP
    assert code("TriggerMessage", {"requestedMessage": "Authorize"}) == PROP


def test_unknown_field_is_formation():
    assert code("Reset", {"type": "Soft", "extra": 1}) == FORM
    assert desc("Reset", {"type": "Soft", "extra": 1}) == "extra: not a field of this message"
    p = dict(PROFILE, colour="red")
    assert code("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": p}) == FORM
    assert code("Reset", []) == FORM  # not an object at all


def test_first_problem_wins_and_descriptions_are_bounded():
    assert code("ChangeAvailability", {"connectorId": "x"}) == TYP  # schema order: connectorId first
    r = validate.check("DataTransfer", {"vendorId": 1, "x" * 500: 1})
    assert r[0] == FORM and len(r[1]) <= 200


def test_actions_without_rules_pass_and_known_actions():
    assert validate.check("BootNotification", {"anything": 1}) is None
    assert validate.check("VendorThing", {}) is None
    for a in ("Reset", "BootNotification", "GetLog", "InstallCertificate", "Heartbeat"):
        assert validate.known(a), a
    assert not validate.known("FooBar")
    assert not validate.known("reset")


def test_rfc3339_date_times():
    good = ["2026-11-21T05:37:00Z", "2026-11-21t05:37:00z", "2026-11-21T05:37:00.1Z",
            "2026-11-21T05:37:00.123456+05:30", "2026-11-21T05:37:00-00:00", "2024-02-29T00:00:00Z",
            "2016-12-31T23:59:60Z"]
    bad = ["2026-11-21T05:37:00", "2026-11-21 05:37:00Z", "2026-11-21T05:37Z", "2026-13-01T00:00:00Z",
           "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T05:60:00Z",
           "2026-11-21T05:37:61Z", "2026-11-21T05:37:00.Z", "2026-11-21T05:37:00+0100",
           "2026-11-21T05:37:00+24:00", "26-11-21T05:37:00Z", "2026-1-21T05:37:00Z", "２026-11-21T05:37:00Z",
           "2026-11-21T05:37:00ZZ", ""]
    for s in good:
        assert validate.is_datetime(s), s
    for s in bad:
        assert not validate.is_datetime(s), s


def test_uris():
    for s in ("http://h/x", "ftp://u:p@h:21/d", "urn:isbn:1", "https://h/a%20b"):
        assert validate.is_uri(s), s
    for s in ("", "/path", "h/x", "1http://h", "ht tp://h", "http://h/a b", ":x", "http://h/\n"):
        assert not validate.is_uri(s), s


def _frame_in_buffer(text, junk=b'"\x01\\'):
    # A CALL as the WebSocket hands it up: a memoryview of the start of its receive buffer,
    # whose tail holds whatever an earlier, longer message left (junk, quotes, control bytes).
    b = text.encode()
    buf = bytearray(len(b) + 64)
    buf[: len(b)] = b
    for i in range(len(b), len(buf)):
        buf[i] = junk[i % len(junk)]
    return memoryview(buf)[: len(b)]


def test_syntax_checks_a_frame_in_place():
    # Every frame is looked at for what mend.py must mend (rpc._suspect) and every CALL checked
    # by validate.syntax(), both on the frame where the WebSocket left it (rpc.inplace): a 16 KB
    # one (the link's max_size) must not cost a 16 KB copy on the charger's heap, nor see the
    # stale bytes past the frame.
    import gc
    import time

    from ocpp_client import rpc

    ids = ",".join('"tag%05d"' % i for i in range(1440))
    text = '[2,"m1","DataTransfer",{"vendorId":"v","data":"x","ids":[%s]}]' % ids
    mv = _frame_in_buffer(text)
    assert 15800 < len(mv) <= 16384, len(mv)
    assert validate.syntax(rpc.inplace(mv)) is None
    for check in (lambda: validate.syntax(rpc.inplace(mv)), lambda: rpc._suspect(mv)):
        gc.collect()
        gc.disable()
        try:
            a0 = gc.mem_alloc()
            t0 = time.ticks_us()
            assert not check()
            dt = time.ticks_diff(time.ticks_us(), t0)
            used = gc.mem_alloc() - a0
        finally:
            gc.enable()
        print("a %d-byte frame: %d us, %d bytes allocated" % (len(mv), dt, used))
        assert used < 1024, used
    # the same verdicts as on the text itself
    for s in ('{"type":"Hard",}', "[1 2]", '{"a":}', '["\\x41"]', '["a\x01"]', '["a"'):
        assert validate.syntax(rpc.inplace(_frame_in_buffer(s))) is not None, s
        assert validate.syntax(_frame_in_buffer(s)) is not None, s
        assert validate.syntax(s) is not None, s
    for s in ('[2,"a","B",{}]', '["\\u0041\\"",1.5e3,true,null,[],{}]', "[]"):
        assert validate.syntax(rpc.inplace(_frame_in_buffer(s))) is None, s
        assert validate.syntax(s) is None, s
