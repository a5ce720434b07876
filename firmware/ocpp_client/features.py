# The feature table and its loader: which module of ocpp_client/ answers which CALLs of the CSMS.
#
# A feature module defines one function, `attach(s)`: s is the session (client.OcppClient), the
# result a dict {action: async fn(payload) -> .conf payload}. In attach() a feature may keep its
# state object in s.features[name] (others get it with s.feature(name)), listen to the connector
# (s.connector.listen(obj)) or the configuration (s.config.listen(obj)), offer a TriggerMessage
# (s.triggers[message] = async fn(connector_id)), add to s.tasks a coroutine (run once) or a
# (name, async fn) (supervised: restarted after a failure, supervisor.py), eager features only:
# started with the session, and do work after a .conf with s.after(async fn, *args). The
# payload a handler gets is already checked against the 1.6 rules (validate.py); raising
# errors.Reject answers a CALLERROR. Adding a feature: its module and one row of TABLE.
# ARCHITECTURE.md ("OCPP client") shows the path of a new message.
#
# An eager feature is attached at boot (it listens to the connector from the start); a lazy one
# at the first CALL of one of its actions, or when another asks for it (s.feature(name)). A
# feature that cannot be loaded (file missing on a damaged filesystem, no memory) is logged
# once; its actions are answered NotSupported (missing) or InternalError (anything else) from
# then on, except for want of memory: that call is answered as any CALL that ran out of memory
# (rpc.py: InternalError, SendLocalList Failed) and the next one tries to load it again.
# Charging never depends on a feature: the connector runs the relay on its own.
import log

# (module in ocpp_client/, attached at boot, the CSMS's actions it answers)
TABLE = (
    ("transactions", True, ("RemoteStartTransaction", "RemoteStopTransaction")),
    ("metering", True, ()),
    ("authorization", False, ("ClearCache", "GetLocalListVersion", "SendLocalList")),
    ("smartcharging", False, ("SetChargingProfile", "ClearChargingProfile",
                              "GetCompositeSchedule")),
    ("reservations", False, ("ReserveNow", "CancelReservation")),
    ("remote", False, ("Reset", "TriggerMessage", "UnlockConnector", "ChangeAvailability")),
    ("configuration", False, ("GetConfiguration", "ChangeConfiguration")),
    ("vendor", False, ("DataTransfer",)),
    ("firmware", True, ("UpdateFirmware",)),
    ("security_ext", True, ("GetDiagnostics", "GetLog", "ExtendedTriggerMessage",
                            "InstallCertificate", "GetInstalledCertificateIds",
                            "DeleteCertificate", "CertificateSigned", "SignedUpdateFirmware")),
)
_TAG = "ocpp"


def handlers(s, table=TABLE, out=None):
    # -> the action -> handler dict of the session (`out`, filled): eager features attached,
    # lazy ones as stubs that attach their feature on first use.
    out = {} if out is None else out
    for name, eager, actions in table:
        if eager:
            load(s, out, name, actions)
        else:
            for a in actions:
                out[a] = _stub(s, out, name, actions, a)
    return out


def need(s, out, name, table=TABLE):
    # Feature `name` attached now if it never was (s.feature() asks for a lazy one it needs).
    if name not in s.features:
        for n, _, actions in table:
            if n == name:
                load(s, out, name, actions)


def load(s, out, name, actions):
    # Attaches feature `name`, its handlers into `out`; on failure its actions answer the error.
    # s.features gets an entry either way (None for a failed one or one that keeps no state).
    s.features.setdefault(name, None)
    for a in actions:
        out.pop(a, None)  # its stubs: an action attach() does not answer is NotSupported
    try:
        mod = __import__("ocpp_client." + name, None, None, ("attach",))
        out.update(mod.attach(s))
        return True
    except ImportError as e:
        code = "NotSupported"
        log.warn(_TAG, "feature %s missing (%s): its messages are answered %s", name, e, code)
    except MemoryError as e:
        # No memory now: this call is answered InternalError (logged once per feature), and
        # the next one (or the next s.feature()) tries again, so the feature comes back once
        # memory frees.
        s.features.pop(name, None)
        if name not in _NO_MEMORY:
            _NO_MEMORY.append(name)
            log.exc(_TAG, "feature %s failed to load: its messages are answered InternalError "
                    "until it loads" % name, e)
        for a in actions:
            out[a] = _stub(s, out, name, actions, a)
        return None
    except Exception as e:  # a damaged file: it may work after a reboot
        code = "InternalError"
        log.exc(_TAG, "feature %s failed to load: its messages are answered %s" % (name, code), e)
    for a in actions:
        out[a] = _failed(code, name)
    return False


_NO_MEMORY = []  # features that failed to load for want of memory (logged once)


def _stub(s, out, name, actions, action):
    async def first(p):
        # The first CALL of this feature: attach it, then answer with its own handler.
        if load(s, out, name, actions) is None:
            # No memory: the RPC layer answers as for any CALL that ran out of it (InternalError;
            # SendLocalList: Failed); the next call tries again.
            raise MemoryError("feature %s not loaded" % name)
        h = out.get(action)
        if h is None:
            from ocpp_client.errors import Reject

            raise Reject("NotSupported", "%s is not supported" % action)
        return await h(p)

    return first


def _failed(code, name):
    async def answer(p):
        from ocpp_client.errors import Reject

        raise Reject(code, "feature %s is not available" % name)

    return answer
