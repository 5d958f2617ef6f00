"""systemd's Manager over the D-Bus system bus, with dbus-fast (an asyncio D-Bus client: no libdbus,
no GLib main loop, signals delivered on the bot's own event loop; maintained for Home Assistant).

One connection per adapter, opened on first use and again after the bus drops it. On connect it
asks systemd to emit its signals (Manager.Subscribe) and matches JobRemoved, so a job's outcome
is known from the signal, not by polling: a caller starts a job with `start_job()`, which is
subscribed before the method is called, and reads its result from the returned `Job`. A job
removed before its method's reply was read (a no-op job finishes at once) is found in `_removed`,
the few most recent JobRemoved results kept while any job is being started. When the bus drops,
the jobs still pending fail at once with one sentence (their JobRemoved cannot come any more).

Every call is bounded by CALL_TIMEOUT and raises TargetError with one sentence, never a D-Bus error.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import AuthError, DBusError, InvalidAddressError

from bot.redaction import redact_cut
from bot.targets.base import TargetError

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
CALL_TIMEOUT = 10.0
KEEP_REMOVED = 256  # JobRemoved results kept for jobs whose start reply was not read yet
JOB_REMOVED_RULE = f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='JobRemoved',path='{MANAGER_PATH}'"
# What systemd's errors mean, in the words a user reads.
ERROR_SENTENCES = {
    "org.freedesktop.DBus.Error.AccessDenied": "systemd refused: the bot's user may not manage this unit (see deploy/systemd/50-opsbot.rules)",
    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired": "systemd refused: the bot's user may not manage this unit (see deploy/systemd/50-opsbot.rules)",
    "org.freedesktop.systemd1.NoSuchUnit": "systemd has no such unit",
    "org.freedesktop.systemd1.LoadFailed": "systemd could not load the unit",
    "org.freedesktop.systemd1.JobTypeNotApplicable": "systemd cannot do that to this unit",
}


@dataclass
class Job:
    """A job systemd queued: its object path, and its result once JobRemoved said it
    (done, failed, timeout, canceled, dependency, skipped)."""

    path: str
    unit: str
    done: asyncio.Future = field(repr=False)

    @property
    def number(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def result(self) -> str | None:
        return self.done.result() if self.done.done() else None


class SystemdBus:
    def __init__(self, address: str):
        self.address = address
        self._bus: MessageBus | None = None
        self._connecting = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future] = {}  # job path -> its result, for jobs started here
        self._removed: OrderedDict[str, str] = OrderedDict()  # job path -> result, recent, while starts are in flight
        self._starting = 0
        self._watcher: asyncio.Task | None = None

    @property
    def where(self) -> str:
        return f"the D-Bus system bus at {self.address.removeprefix('unix:path=')}"

    async def _connected(self) -> MessageBus:
        async with self._connecting:
            if self._bus is not None and self._bus.connected:
                return self._bus
            bus = MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM, auth_timeout=CALL_TIMEOUT)
            try:
                await asyncio.wait_for(bus.connect(), CALL_TIMEOUT)
            except (OSError, AuthError, InvalidAddressError, asyncio.TimeoutError, EOFError) as exc:
                bus.disconnect()
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or exc.__class__.__name__)
                raise TargetError(f"cannot reach {self.where} ({reason})") from None
            bus.add_message_handler(self._on_message)
            self._bus = bus
            self._watcher = asyncio.create_task(self._watch(bus))
            await self._call_on(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", [JOB_REMOVED_RULE])
            await self._call_on(bus, SYSTEMD, MANAGER_PATH, MANAGER, "Subscribe", "", [])
            return bus

    async def _watch(self, bus: MessageBus) -> None:
        """When the bus drops, every job still pending fails at once: its JobRemoved can no longer
        arrive, so waiting out the deadline would only hide what happened."""
        try:
            await bus.wait_for_disconnect()
        except Exception:  # noqa: BLE001 - how it dropped does not matter; that it did does
            pass
        waiting, self._waiting = self._waiting, {}
        for path, waiter in waiting.items():
            if not waiter.done():
                number = path.rsplit("/", 1)[-1]
                waiter.set_exception(TargetError(f"lost {self.where} while systemd's job {number} was pending, so its outcome is unknown"))

    def _on_message(self, message: Message) -> None:
        if message.message_type != MessageType.SIGNAL or message.member != "JobRemoved" or message.interface != MANAGER:
            return
        _, path, unit, result = message.body  # (id u, job o, unit s, result s)
        waiter = self._waiting.pop(path, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(str(result))
        elif self._starting:
            self._removed[path] = str(result)
            while len(self._removed) > KEEP_REMOVED:
                self._removed.popitem(last=False)

    async def _call_on(self, bus: MessageBus, destination: str, path: str, interface: str, member: str, signature: str, body: list) -> list:
        message = Message(destination=destination, path=path, interface=interface, member=member, signature=signature, body=body)
        try:
            reply = await asyncio.wait_for(bus.call(message), CALL_TIMEOUT)
        except asyncio.TimeoutError:
            raise TargetError(f"systemd did not answer {member} within {CALL_TIMEOUT:g} s") from None
        except (OSError, EOFError, DBusError) as exc:
            raise TargetError(f"lost {self.where} during {member} ({exc})") from None
        if reply is None:
            raise TargetError(f"lost {self.where} during {member}")
        if reply.message_type == MessageType.ERROR:
            detail = redact_cut(str(reply.body[0]), 300) if reply.body else reply.error_name
            raise TargetError(ERROR_SENTENCES.get(reply.error_name, "systemd refused") + f" ({detail})")
        return reply.body

    async def call(self, member: str, signature: str = "", body: list | None = None, *, path: str = MANAGER_PATH, interface: str = MANAGER) -> list:
        bus = await self._connected()
        return await self._call_on(bus, SYSTEMD, path, interface, member, signature, body or [])

    async def unit_properties(self, unit: str) -> dict:
        """The unit's and its service's properties (LoadUnit: a unit not in memory is loaded, not started)."""
        [path] = await self.call("LoadUnit", "s", [unit])
        props = {}
        for interface in ("org.freedesktop.systemd1.Unit", "org.freedesktop.systemd1.Service"):
            [values] = await self.call("GetAll", "s", [interface], path=path, interface="org.freedesktop.DBus.Properties")
            props.update({name: variant.value for name, variant in values.items()})
        return props

    async def start_job(self, method: str, unit: str) -> Job:
        """RestartUnit / ReloadUnit / StartUnit / StopUnit with mode "replace"; the JobRemoved
        match is in place before the call (it is made on connect), so the result cannot be missed."""
        bus = await self._connected()
        self._starting += 1
        try:
            [path] = await self._call_on(bus, SYSTEMD, MANAGER_PATH, MANAGER, method, "ss", [unit, "replace"])
            done = asyncio.get_running_loop().create_future()
            if path in self._removed:
                done.set_result(self._removed.pop(path))
            else:
                self._waiting[path] = done
        finally:
            self._starting -= 1
            if not self._starting:
                self._removed.clear()
        return Job(path, unit, done)

    def forget(self, job: Job) -> None:
        """Stop waiting for a job (its caller gave up)."""
        self._waiting.pop(job.path, None)

    async def close(self) -> None:
        for waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
