"""The MQTT peers of the tests: a real mosquitto broker started per test on free loopback ports
(borne.mosquitto: username/password, a plain and a TLS listener), and a paho-mqtt subscriber
that records every message with its retained flag and QoS."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from borne.mosquitto import PASSWORD, USER, Broker, free_port

__all__ = ["PASSWORD", "USER", "Broker", "Msg", "Subscriber", "free_port"]

@dataclass
class Msg:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A paho-mqtt client on the plain listener, subscribed to `topics` (QoS 1)."""

    def __init__(self, broker: Broker, topics: list[str], user: str = USER,
                 password: str = PASSWORD, client_id: str = "test-sub") -> None:
        self.msgs: list[Msg] = []
        self._cond = threading.Condition()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.c.username_pw_set(user, password)
        self.c.on_message = self._on_message
        self._subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, qos=1) for t in topics]
        self.c.on_subscribe = lambda *a: self._subscribed.set()
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        assert self._subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        with self._cond:
            self.msgs.append(Msg(m.topic, bytes(m.payload), bool(m.retain), m.qos))

    def publish(self, topic: str, payload: str | bytes, qos: int = 0) -> None:
        self.c.publish(topic, payload, qos=qos).wait_for_publish(5)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()

    def latest(self, topic: str) -> Msg | None:
        with self._cond:
            for m in reversed(self.msgs):
                if m.topic == topic:
                    return m
        return None

    async def wait(self, pred: Callable[[Msg], bool], what: str, timeout: float = 20,
                   after: int = 0) -> Msg:
        """The first message (from index `after`) for which pred holds: a bounded wait."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                for m in self.msgs[after:]:
                    if pred(m):
                        return m
            await asyncio.sleep(0.05)
        with self._cond:
            tail = [(m.topic, m.payload[:80]) for m in self.msgs[-20:]]
        raise AssertionError(f"no MQTT message {what} within {timeout} s; last: {tail}")

    async def value(self, topic: str, want: str, timeout: float = 20, after: int = 0) -> Msg:
        return await self.wait(lambda m: m.topic == topic and m.text == want,
                               f"{topic} = {want!r}", timeout, after)
