# The board contract: what the application may ask of a board, in code. Every board
# (boards/<name>/board.py) and every test double derives from BoardBase; the optional members
# have their real defaults here, the required ones must be overridden (Board() fails at once,
# naming what is missing). tests/test_board_contract.py checks that the firmware uses no board
# member this class lacks and that no board's member differs from it (name, arguments).
#
# Module level of board.py: NAME (the board's name) and Board (the class).
#
# The required members are written out below (names, arguments, meaning) under `if False:`:
# MicroPython compiles nothing of such a block (no function objects, names or code records in
# the heap), while the contract test reads them like the rest; Board() checks each is defined.
import asyncio

# The required members, one string (split when a board is built: no tuple kept in the heap)
_REQUIRED = const(("flash_root provisioning start pilot_mv pilot_low_mv set_pwm set_relay "
             "relay_feedback rcd_tripped led tone reset"))


class BoardBase:
    # Board-specific public members outside the contract (e.g. an RCD self-test input), named
    # by the board so the contract test can tell them from drift.
    EXTRAS = ()

    if False:  # -- required (not compiled: documentation the contract test reads) ----------
        # flash_root -> str: directory the store keeps its files in (a class attribute or
        # property)
        flash_root = None

        def provisioning(self):
            # -> dict: factory identity (cp_id, serial, model, vendor), per-device secrets
            # (hotspot_key: WPA2 key >= 64 bits, conn_password) and installation facts
            # (meter_model, rfid, ...); the simulation may add csms_url and the security
            # credentials.
            raise NotImplementedError

        async def start(self):
            # Opens buses and sockets, starts the board's own tasks. Builds nothing that blocks.
            raise NotImplementedError

        def pilot_mv(self):
            # -> int: control pilot high level in mV (+12000 A, +9000 B, +6000 C, +3000 D, 0 E,
            # -12000 F), sampled on the PWM's high phase
            raise NotImplementedError

        def pilot_low_mv(self):
            # -> int: pilot low level in mV (about -12000 while the PWM runs: the diode check)
            raise NotImplementedError

        def set_pwm(self, duty_pct):
            # Pilot PWM duty at 1 kHz; 100 = steady +12 V (no offer), 0 = steady -12 V.
            raise NotImplementedError

        def set_relay(self, on):
            # Drive the contactor coil (only the connector state machine calls it). A board may
            # refuse to close while its own safety inputs say no (RCD tripped, pilot lost).
            raise NotImplementedError

        def relay_feedback(self):
            # -> bool: the auxiliary contact, True when the main contacts are closed
            raise NotImplementedError

        def rcd_tripped(self):
            # -> bool: residual-current / DC-leakage monitor output
            raise NotImplementedError

        def led(self, r, g, b):
            # Set the status light to a colour (0-255 each, brightness applied).
            raise NotImplementedError

        def tone(self, freq_hz, ms):
            # Start a buzzer tone; returns at once.
            raise NotImplementedError

        def reset(self, hard):
            # Restart the charger, relay open first; never returns.
            raise NotImplementedError

    # -- optional, with their defaults ----------------------------------------------------
    def __init__(self):
        cls = type(self)
        missing = [n for n in _REQUIRED.split() if getattr(cls, n, None) is None]
        if missing:
            raise NotImplementedError(
                "board %s lacks %s (the contract in boardbase.py)"
                % (getattr(cls, "NAME", cls.__name__), ", ".join(missing)))
        # Set (from an IRQ or a reader task) whenever an input may have changed: pilot, relay
        # feedback, RCD.
        self.edge = asyncio.ThreadSafeFlag()
        # fn(ms): the hotspot's handler, called once per press of the setup button with its
        # length in ms, after the release.
        self.on_button = None
        self.diag = False  # heap sampling for the benchmarks
        self.stallwatch = False  # the loop's longest stall, for the benchmarks (stallwatch.py)

    def led_state(self, color, pattern, brightness):
        # What the LED means, for the simulation's `state`.
        pass

    def telemetry(self, key, value):
        # Agent facts (OCPP link, status, session) for whoever watches the board.
        pass

    def rfid_stream(self):
        # A raw non-blocking byte stream (machine.UART(timeout=0), or a socket) to a PN532 in
        # HSU mode (115200 8N1), or None. Used when rfid_driver() gives None.
        return None

    def rfid_driver(self):
        # A reader the board builds itself (rfid.mfrc522.Mfrc522 on SPI, rfid.pn532.Pn532 on
        # I2C), or None.
        return None

    def meter_stream(self, baud, parity):
        # The RS-485 Modbus line at `baud` with parity "N", "E" or "O" (8 data bits, 1 stop
        # bit): a raw non-blocking byte stream, or None.
        return None

    def meter_pulses(self):
        # For an S0 meter: an object with .count (pulses since boot, counted where none is lost:
        # the ESP32's pulse counter), or None.
        return None

    def wlan(self):
        # The Wi-Fi radio for the hotspot and the station, or None: ap_open(ssid, key) -> ip,
        # ap_close(), listen_addr("http"|"dns") -> (host, port), scan() -> [(ssid, rssi,
        # secure)], async join(ssid, password, timeout_ms) -> "ok" | "wrong_password" |
        # "not_found" | "failed", leave(), sta_up().
        return None

    def dns_server(self):
        # -> (ip, port) of the network's DNS resolver (net/dns.py asks it on a UDP socket,
        # without blocking), or None: names are then resolved by getaddrinfo, which blocks.
        return None

    def hotspot_options(self):
        # Test knobs: hotspot_idle_s, lockout_base_ms, close_grace_ms.
        return {}

    def route(self, host, port):
        # -> (host, port): where a TCP connection to host:port really goes.
        return host, port

    def heap_growth(self):
        # Bytes the GC heap can still add beyond gc.mem_free(), on a port that grows it by
        # areas (the ESP32's); 0 for a heap of fixed size (the unix port's -X heapsize).
        return 0

    def set_rtc(self, unix_seconds):
        # Set the hardware clock from network time (the clock module calls it).
        pass

    def app_partitions(self):
        # Interpreter (firmware image) updates, ota/image.py: -> (running, next) app
        # partitions with esp32.Partition's API (readblocks, writeblocks, ioctl, info(),
        # set_boot(), mark_app_valid_cancel_rollback()), or None on a board that cannot.
        return None

    def ntp_server(self):
        # -> (host name, port) of the SNTP server the clock is set from while it is not trusted
        # (before a TLS connection: net/sntp.py, resolved by net/dns.py, not blocking), or None.
        return None
