# The exceptions the OCPP core raises and features catch. Small on purpose: every module of
# ocpp_client/ may import it, and it imports nothing.


class CallError(Exception):
    # The CSMS answered our CALL with a CALLERROR.
    def __init__(self, code, description="", details=None):
        super().__init__(code, description)
        self.code = code
        self.description = description
        self.details = details or {}


class CallTimeout(Exception):
    pass


class NotSent(CallTimeout):
    # The CALL never got its turn on the link within its time limit (another of ours held it):
    # not sent at all, so neither an attempt nor a sign the CSMS ignores it.
    pass


class Disconnected(Exception):
    pass


class Reject(Exception):
    # An incoming CALL answered with a CALLERROR of this OCPP-J code: raised by a handler, by a
    # feature that could not be loaded, or by the streaming reader for a malformed message.
    def __init__(self, code, description=""):
        super().__init__(code, description)
        self.code = code
        self.description = description
