"""SUPER.MONITOR and SUPER.PICKUP: a supervisor listens to, coaches or joins a call from
its own phone, or grabs a call ringing elsewhere or waiting in a queue; scoped to its
queues (``users[].queues``).

Most tests run the real daemon over the socket with the simulated phones in manual mode
(they only act on SIM.ANSWER / SIM.HANGUP). Who hears whom is checked from audio twice:
in the call's WAV recording written by the daemon (every simulated party says the same
frame-aligned test tone, so a second voice in a channel doubles its level exactly), and
in process, through the same verbs, from what each line hears in the real media plane
(``tests/test_who_hears_whom.py``'s rig: a tone of its own per party).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from switchd.control import CallInfo, UserInfo
from switchd.core.inputs import Answer
from switchd.cti.codec import parse_line
from switchd.cti.commands import Commands
from switchd.engine import Input
from switchd.events import Event
from switchd.exceptions import ProtocolError
from tests.daemon import FAST_HASH, Client, fields, make_config, running
from tests.test_who_hears_whom import AGENT, CALLER, SUPERVISOR, Rig, answered_call, make_rig

SALES, SUPPORT, BILLING = "6000", "6001", "6002"
SUP = "ext/208"          # super1's phone
#: The level (RMS) of one simulated party's test tone in a recording: the -20 dBm0 sine.
ONE_VOICE = 22_700.0 * 10 ** (-20 / 20) / np.sqrt(2)


def _config() -> dict[str, Any]:
    """Queues sales (agents a201, a202), support (a203) and billing (nobody: callers
    wait); DNIS 6000/6001/6002 queue the caller, 8200 rings extension 204. Users:
    super1 at 208 (every call), super2 at 206 scoped to support, super3 without a
    phone, admin at 207. Phones and callers wait for SIM.* commands and never hang up
    by themselves; every party says the test tone."""
    agents = [{"id": f"a{ext}", "extension": ext, "queues": {q: 0}, "login": True}
              for ext, q in ((201, "sales"), (202, "sales"), (203, "support"))]
    queue = {"strategy": "linear", "ring_timeout_s": 60, "music": False}
    cfg = make_config(
        queues={"sales": queue, "support": queue, "billing": queue}, agents=agents,
        queue_routes={SALES: "sales", SUPPORT: "support", BILLING: "billing"},
        **{"sim.bots.mode": "manual", "sim.caller_talk_s": [3600, 3600],
           "sim.caller_patience_s": 3600, "sim.audio.callers": "tone",
           "sim.audio.agents": "tone"})
    for user in cfg["users"]:
        if user["name"] in ("agent6", "agent7", "agent8"):
            del user["extension"]
    by_name = {u["name"]: u for u in cfg["users"]}
    by_name["super1"]["extension"] = 208
    by_name["admin"]["extension"] = 207
    for route in cfg["routes"]:
        if route.get("dnis") == "8200":
            route["to"] = "extension:204"    # a desk with no agent and no user
    cfg["users"] += [{"name": "super2", "role": "supervisor", "extension": 206,
                      "queues": ["support"], "secret": FAST_HASH["demo"]},
                     {"name": "super3", "role": "supervisor", "secret": FAST_HASH["demo"]}]
    return cfg


async def _login(port: int, user: str, events: str | None = None) -> Client:
    c = await Client.connect(port)
    await c.ok(f"AUTH user={user} secret={'demo-admin' if user == 'admin' else 'demo'}")
    if events is not None:
        await c.ok(f"SUB events={events}")
    return c


async def _answered(sim: Client, dnis: str, caller: str, ext: int) -> str:
    """A caller queued at ``dnis`` whose offer ``ext`` answers; returns the call id."""
    call = (await sim.ok(f"SIM.CALL caller={caller} dnis={dnis}"))["call"]
    await sim.wait_event("call.ringing", call=call, line=f"ext/{ext}")
    await sim.ok(f"SIM.ANSWER ext={ext}")
    await sim.wait_event("call.answered", call=call, line=f"ext/{ext}")
    return call


def _err(lines: list[str]) -> tuple[str, str]:
    f = fields(lines[-1])
    assert lines[-1].startswith("ERR"), lines
    return f["code"], f["msg"]


def _items(lines: list[str]) -> list[dict[str, str]]:
    assert lines[-1].startswith("END"), lines
    return [fields(x.replace("ITEM", "X", 1)) for x in lines[:-1]]


# ------------------------------------------------------------------- monitoring


async def test_monitor_rings_the_supervisor_switches_mode_live_and_ends_with_the_call(
        tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        sim = await _login(d.port, "admin", "call.*,monitor.*,line.state,bridge.changed")
        sup = await _login(d.port, "super1")
        call = (await sim.ok(f"SIM.CALL caller=13900000001 dnis={SALES}"))["call"]
        await sim.wait_event("call.ringing", call=call, line="ext/201")
        code, msg = _err(await sup.cmd(f"SUPER.MONITOR call={call}"))
        assert code == "wrong_state" and "only connected calls are monitored" in msg
        await sim.ok("SIM.ANSWER ext=201")
        await sim.wait_event("call.answered", call=call, line="ext/201")

        ok = await sup.ok(f"SUPER.MONITOR call={call}")
        assert ok == {"call": call, "line": SUP, "mode": "listen"}
        await sim.wait_event("call.ringing", call=call, line=SUP)
        # While the supervisor's phone rings, a new mode waits for the answer.
        ok = await sup.ok(f"SUPER.MONITOR call={call} mode=whisper")
        assert ok["mode"] == "whisper"
        assert not [e for e in sim.events if e["event"] == "monitor.started"]
        await sim.ok("SIM.ANSWER ext=208")
        started = await sim.wait_event("monitor.started", call=call, line=SUP)
        assert (started["mode"], started["agent"]) == ("whisper", "ext/201")
        await sim.wait_event("bridge.changed", call=call,
                             members=f"trunk/1:party,ext/201:party,{SUP}:whisper>ext/201")

        for mode in ("barge", "listen"):
            assert (await sup.ok(f"SUPER.MONITOR call={call} mode={mode}"))["mode"] == mode
            await sim.wait_event("monitor.started", call=call, line=SUP, mode=mode)
            await sim.wait_event("bridge.changed", call=call,
                                 members=f"trunk/1:party,ext/201:party,{SUP}:{mode}")
        code, msg = _err(await sup.cmd(f"SUPER.MONITOR call={call} mode=whisper agent=202"))
        assert code == "bad_arg" and "hang up and SUPER.MONITOR again" in msg

        # The phone monitors one call at a time: another call is refused, naming this one.
        other = await _answered(sim, SALES, "13900000002", 202)
        code, msg = _err(await sup.cmd(f"SUPER.MONITOR call={other}"))
        assert code == "wrong_state"
        assert f"your phone {SUP} is in call {call}; hang it up first" in msg
        calls = {c["call"]: c["lines"] for c in _items(await sup.cmd("CALLS"))}
        assert calls == {call: f"trunk/1,ext/201,{SUP}", other: "trunk/2,ext/202"}

        # The monitored call ends: the monitor ends with it and the phone is free.
        await sim.ok(f"SIM.HANGUP call={call}")
        await sim.wait_event("monitor.ended", call=call, line=SUP)
        await sim.wait_event("line.state", line=SUP, state="idle")
        await sim.wait_event("call.ended", call=call)
        code, _ = _err(await sup.cmd(f"SUPER.MONITOR call={call}"))
        assert code == "not_found"
        # Now free, the phone may monitor the other call; its supervisor hangs up first.
        await sup.ok(f"SUPER.MONITOR call={other} mode=barge")
        await sim.ok("SIM.ANSWER ext=208")
        await sim.wait_event("monitor.started", call=other, line=SUP, mode="barge")
        await sup.ok("CALL.HANGUP")
        await sim.wait_event("monitor.ended", call=other, line=SUP)
        calls = {c["call"]: c["lines"] for c in _items(await sup.cmd("CALLS"))}
        assert calls == {other: "trunk/2,ext/202"}
        for c in (sim, sup):
            await c.close()


def _levels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per 20 ms frame, the RMS of the left and right channels in units of one voice."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    frames = x.reshape(-1, 2).astype(np.float64)
    frames = frames[: len(frames) // 160 * 160].reshape(-1, 160, 2)
    rms = np.sqrt((frames ** 2).mean(axis=1)) / ONE_VOICE
    return rms[:, 0], rms[:, 1]


def _runs(levels: np.ndarray) -> list[tuple[int, int]]:
    """The levels as (voices, frames) runs, rounded to whole voices; runs shorter than
    3 frames (the crossfade of a change) are dropped and equal neighbours merged."""
    runs: list[tuple[int, int]] = []
    for v in (int(x) for x in np.rint(levels)):
        if runs and runs[-1][0] == v:
            runs[-1] = (v, runs[-1][1] + 1)
        else:
            runs.append((v, 1))
    merged: list[tuple[int, int]] = []
    for v, n in runs:
        if n < 3:
            continue
        if merged and merged[-1][0] == v:
            merged[-1] = (v, merged[-1][1] + n)
        else:
            merged.append((v, n))
    return merged


async def test_the_recording_has_the_supervisor_only_while_it_whispers_or_barges(
        tmp_path: Path) -> None:
    """Recorded (stereo): left = the customer, right = what the customer hears plus the
    switch-side voices. Agent and supervisor say the same frame-aligned tone, so the
    supervisor in the right channel doubles its level; the left never has it."""
    phase_s = 0.4  # how much audio each phase gets: the length of a recording, not a wait
    with running(tmp_path, _config()) as d:
        sim = await _login(d.port, "admin", "call.*,monitor.*,recording.*")
        sup = await _login(d.port, "super1")
        call = await _answered(sim, SALES, "13900000003", 201)
        await sup.ok(f"SUPER.MONITOR call={call} mode=listen")
        await sim.wait_event("call.ringing", call=call, line=SUP)
        await sim.ok("SIM.ANSWER ext=208")
        await sim.wait_event("monitor.started", call=call, line=SUP, mode="listen")
        await asyncio.sleep(phase_s)
        for mode in ("whisper", "listen", "barge"):
            await sup.ok(f"SUPER.MONITOR call={call} mode={mode}")
            await sim.wait_event("monitor.started", call=call, line=SUP, mode=mode)
            await asyncio.sleep(phase_s)
        await sim.ok(f"SIM.HANGUP call={call}")
        done = await sim.wait_event("recording.done", call=call)
        left, right = _levels(d.state_dir / "recordings" / done["file"])
        for c in (sim, sup):
            await c.close()
    # The customer's channel: its own voice alone, from start to end (never a whisper).
    assert [v for v, _ in _runs(left)] == [1], _runs(left)
    # Right: (silence while the agent's phone rang,) the agent alone, before and while
    # the supervisor listens; + the whisper; the agent alone again (listening); + the
    # barge: a listening supervisor is never heard, a whispering or barging one is.
    runs = _runs(right)
    if runs and runs[0][0] == 0:
        runs = runs[1:]
    assert [v for v, _ in runs] == [1, 2, 1, 2], runs
    # Steady: away from the changes every frame is one voice or two, nothing between.
    assert np.mean(np.abs(right - np.rint(right)) < 0.05) > 0.9
    assert all(n >= 0.5 * phase_s / 0.02 for _, n in runs[1:]), runs


# ------------------------------------------------------------------- pickup


async def test_pickup_of_a_call_ringing_at_an_agent_frees_the_agent_and_the_cdr_names_the_picker(
        tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        sim = await _login(d.port, "admin", "call.*,offer.*,queue.*,agent.state")
        sup = await _login(d.port, "super1")
        call = (await sim.ok(f"SIM.CALL caller=13900000004 dnis={SALES}"))["call"]
        await sim.wait_event("agent.state", agent="a201", state="reserved")
        await sim.wait_event("call.ringing", call=call, line="ext/201")

        assert await sup.ok(f"SUPER.PICKUP call={call}") == {"call": call, "line": SUP}
        picked = await sim.wait_event("call.picked_up", call=call)
        assert (picked["line"], picked["from_lines"]) == (SUP, "ext/201")
        await sim.wait_event("offer.withdrawn", call=call, line="ext/201", reason="picked_up")
        await sim.wait_event("call.answered", call=call, line=SUP)
        leave = await sim.wait_event("queue.leave", call=call, queue="sales")
        assert leave["reason"] == "answered" and "agent" not in leave
        ready = await sim.wait_event("agent.state", agent="a201", state="ready")
        assert ready["previous"] == "reserved"
        calls = {c["call"]: c["lines"] for c in _items(await sup.cmd("CALLS"))}
        assert calls == {call: f"trunk/1,{SUP}"}
        code, msg = _err(await sup.cmd(f"SUPER.PICKUP call={call}"))
        assert code == "wrong_state" and "already yours" in msg

        await sup.ok("CALL.HANGUP")
        await sim.wait_event("call.ended", call=call)
        (cdr,) = _items(await sim.cmd("CDR.QUERY caller=13900000004"))
        assert (cdr["extension"], cdr["disposition"], cdr["queue"]) == ("208", "ANSWERED",
                                                                        "sales")
        assert "agent" not in cdr
        for c in (sim, sup):
            await c.close()


async def test_pickup_of_a_caller_waiting_in_a_queue_takes_it_out_of_the_queue(
        tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        sim = await _login(d.port, "admin", "call.*,queue.*")
        sup = await _login(d.port, "super1")
        call = (await sim.ok(f"SIM.CALL caller=13900000005 dnis={BILLING}"))["call"]
        await sim.wait_event("queue.join", call=call, queue="billing")
        status = await sim.cmd("QUEUE.STATUS queue=billing")
        assert any(f"call={call}" in x for x in status), status

        await sup.ok(f"SUPER.PICKUP call={call}")
        picked = await sim.wait_event("call.picked_up", call=call)
        assert "from_lines" not in picked or picked["from_lines"] == ""
        await sim.wait_event("call.answered", call=call, line=SUP)
        leave = await sim.wait_event("queue.leave", call=call, queue="billing")
        assert leave["reason"] == "answered"
        status = await sim.cmd("QUEUE.STATUS queue=billing")
        assert not any(f"call={call}" in x for x in status), status
        calls = {c["call"]: c["lines"] for c in _items(await sup.cmd("CALLS"))}
        assert calls == {call: f"trunk/1,{SUP}"}
        for c in (sim, sup):
            await c.close()


async def test_pickup_of_a_caller_in_an_ivr_flow_ends_the_flow(tmp_path: Path) -> None:
    # The shipped demo flow at 8000, with the shipped queues and mailboxes it names.
    cfg = make_config(flows=True, **{"sim.bots.mode": "manual",
                                     "sim.caller_patience_s": 3600})
    for user in cfg["users"]:
        if user["name"] == "agent8":
            del user["extension"]
        if user["name"] == "super1":
            user["extension"] = 208
    with running(tmp_path, cfg) as d:
        sim = await _login(d.port, "admin", "call.*,ivr.*")
        sup = await _login(d.port, "super1")
        call = (await sim.ok("SIM.CALL caller=13900000010 dnis=8000"))["call"]
        await sim.wait_event("ivr.enter", call=call, node="welcome")
        await sup.ok(f"SUPER.PICKUP call={call}")
        await sim.wait_event("call.answered", call=call, line=SUP)
        # The welcome prompt lasts about 5 s: the flow must end at the pickup, not after it.
        await sim.wait_event("ivr.exit", call=call, timeout=2.0)
        for c in (sim, sup):
            await c.close()


# ------------------------------------------------------------------- scope and refusals


async def test_a_supervisor_with_queues_acts_only_on_calls_of_those_queues(
        tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        sim = await _login(d.port, "admin", "call.*,monitor.*")
        scoped = await _login(d.port, "super2")     # queues: [support], phone 206
        sales = await _answered(sim, SALES, "13900000006", 201)
        support = await _answered(sim, SUPPORT, "13900000007", 203)
        direct = (await sim.ok("SIM.CALL caller=13900000008 dnis=8200"))["call"]
        await sim.wait_event("call.ringing", call=direct, line="ext/204")
        for verb in ("SUPER.MONITOR", "SUPER.PICKUP"):
            code, msg = _err(await scoped.cmd(f"{verb} call={sales}"))
            assert code == "forbidden"
            assert msg.startswith(f"call {sales} is not in your queues (support); it is in "
                                  "queue sales")
        code, msg = _err(await scoped.cmd(f"SUPER.PICKUP call={direct}"))
        assert code == "forbidden" and "it reached no queue" in msg
        assert any("cti_forbidden" in x and "super2" in x for x in d.log_lines())

        assert (await scoped.ok(f"SUPER.MONITOR call={support}"))["line"] == "ext/206"
        await sim.ok("SIM.ANSWER ext=206")
        await sim.wait_event("monitor.started", call=support, line="ext/206", mode="listen")

        # Neither an unscoped supervisor nor an admin is limited to queues.
        unscoped = await _login(d.port, "super1")
        await unscoped.ok(f"SUPER.MONITOR call={sales}")
        await sim.wait_event("call.ringing", call=sales, line=SUP)
        ok = await sim.ok(f"SUPER.MONITOR call={sales} mode=barge")
        assert (ok["line"], ok["mode"]) == ("ext/207", "barge")
        for c in (sim, scoped, unscoped):
            await c.close()


async def test_other_roles_unknown_calls_and_bad_arguments_are_refused(tmp_path: Path) -> None:
    with running(tmp_path, _config()) as d:
        sim = await _login(d.port, "admin", "call.*")
        sup = await _login(d.port, "super1")
        call = await _answered(sim, SALES, "13900000009", 201)
        for user in ("agent1", "crm"):
            c = await _login(d.port, user)
            for verb in ("SUPER.MONITOR", "SUPER.PICKUP"):
                code, msg = _err(await c.cmd(f"{verb} call={call}"))
                assert (code, msg) == ("forbidden", f"{verb} is for admin, supervisor; you "
                                       f"are {user} ({'agent' if user == 'agent1' else 'crm'})")
            await c.close()
        cases = {
            "SUPER.MONITOR": ("missing_arg", "SUPER.MONITOR needs call="),
            "SUPER.PICKUP": ("missing_arg", "SUPER.PICKUP needs call="),
            "SUPER.MONITOR call=01KBZZZZZZZZZZZZZZZZZZZZZZ": (
                "not_found", "no active call 01KBZZZZZZZZZZZZZZZZZZZZZZ"),
            "SUPER.PICKUP call=01KBZZZZZZZZZZZZZZZZZZZZZZ": (
                "not_found", "no active call 01KBZZZZZZZZZZZZZZZZZZZZZZ"),
            f"SUPER.MONITOR call={call} mode=loud": (
                "bad_arg", "mode='loud': use listen, whisper or barge"),
            f"SUPER.MONITOR call={call} mode=party": (
                "bad_arg", "mode='party': use listen, whisper or barge"),
            f"SUPER.MONITOR call={call} agent=bob": ("bad_arg", "agent='bob': give the extension"),
            f"SUPER.MONITOR call={call} mode=whisper agent=202": (
                "bad_arg", "ext/202 is not an agent's phone in call"),
            f"SUPER.MONITOR call={call} volume=3": ("bad_arg", "takes no argument 'volume'"),
            f"SUPER.PICKUP call={call}": ("wrong_state", "cannot pick up call"),
        }
        for text, (code, start) in cases.items():
            got = _err(await sup.cmd(text))
            assert got[0] == code and start in got[1], (text, got)
        # Nothing reached the supervisor's phone: it never rang.
        assert not [e for e in sim.events if e["event"] == "call.ringing"
                    and e.get("line") == SUP]
        # A supervisor without a phone (users[].extension) has nothing to monitor from.
        nophone = await _login(d.port, "super3")
        for verb in ("SUPER.MONITOR", "SUPER.PICKUP"):
            code, msg = _err(await nophone.cmd(f"{verb} call={call}"))
            assert (code, msg) == ("forbidden", f"{verb} acts on your own phone, and user "
                                   "super3 has none (users[].extension in the config)")
        for c in (sim, sup, nophone):
            await c.close()


# ------------------------------------------------------------------- config


def test_switchd_check_allows_queues_only_on_supervisors_and_names_unknown_queues(
        tmp_path: Path) -> None:
    users = [("lead", "supervisor", "[sales, suport]"), ("ann", "agent", "[sales]"),
             ("root", "admin", "[sales]"), ("all", "supervisor", "[]")]
    text = "queues: {sales: {}, support: {}}\nusers:\n" + "".join(
        f"  - name: {name}\n    role: {role}\n    secret: \"{FAST_HASH['demo']}\"\n"
        f"    queues: {queues}\n" for name, role, queues in users)
    (tmp_path / "c.yaml").write_text(text)
    out = subprocess.run([sys.executable, "-m", "switchd", "check", "-c", "c.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    problems = [x for x in (out.stdout + out.stderr).splitlines() if x.startswith("c.yaml:")]
    not_supervisor = ("only a supervisor is scoped to queues; {!r} is {} (an agent sees its "
                      "own phone's calls, crm and admin every call); remove queues or make "
                      "the role supervisor")
    assert problems == [
        # users[i] starts on line 3 + 4 i; its queues are its 4th line.
        "c.yaml:6:21: users[0].queues: no queue 'suport'; did you mean 'support'? "
        "(queues: sales, support)",
        "c.yaml:10:5: users[1].queues: " + not_supervisor.format("ann", "agent"),
        "c.yaml:14:5: users[2].queues: " + not_supervisor.format("root", "admin"),
        "c.yaml:18:13: users[3].queues: needs at least 1 item(s)",
    ], out.stdout + out.stderr
    # A supervisor scoped to queues that exist passes.
    (tmp_path / "c.yaml").write_text(text.split("  - name: ann")[0].replace("suport", "support"))
    out = subprocess.run([sys.executable, "-m", "switchd", "check", "-c", "c.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# ------------------------------------------------------------------- who hears whom


class RigSwitch:
    """The verbs' :class:`~switchd.control.Control` over the who-hears-whom rig: the real
    core and media plane, one clock; each input is followed by media frames."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig

    def user(self, name: str) -> UserInfo | None:
        return UserInfo(name, "supervisor", "", int(SUPERVISOR.split("/")[1]))

    def submit(self, item: Input) -> list[Event]:
        events = self.rig.core.handle(self.rig.t, item)
        for ev in events:
            self.rig.media.on_event(ev)
        self.rig.run()
        return events

    def call_info(self, call_id: str) -> CallInfo:
        call = self.rig.core.get_call(call_id)
        return CallInfo(call.call_id, call.state.value, call.anchor, tuple(call.lines()),
                        call.answer_time is not None, queue=call.queue)

    def calls(self) -> list[dict[str, Any]]:
        return [{"call": c.call_id, "lines": ",".join(c.lines())}
                for c in self.rig.core.calls.values()]


async def test_who_hears_the_supervisor_through_the_verbs_from_the_mixed_samples() -> None:
    """Listen: caller and agent hear nothing of the supervisor; whisper: only the agent
    does; barge: both do. The supervisor hears both throughout."""
    rig = make_rig()
    commands = Commands(RigSwitch(rig))  # type: ignore[arg-type]
    session = SimpleNamespace(user="lead", role="supervisor", peer="test")

    async def verb(text: str) -> dict[str, Any]:
        req = parse_line(text)
        return (await commands(session, req)).fields  # type: ignore[arg-type]

    call_id = answered_call(rig)
    assert await verb(f"SUPER.MONITOR call={call_id}") == {
        "call": call_id, "line": SUPERVISOR, "mode": "listen"}
    rig.step(Answer(line=SUPERVISOR))
    who = {"listen": {CALLER: {AGENT}, AGENT: {CALLER}},
           "whisper": {CALLER: {AGENT}, AGENT: {CALLER, SUPERVISOR}},
           "barge": {CALLER: {AGENT, SUPERVISOR}, AGENT: {CALLER, SUPERVISOR}}}
    for mode in ("listen", "whisper", "barge", "listen"):
        main = rig.core.calls[call_id].main
        assert main is not None
        if main.members[SUPERVISOR] != mode:
            await verb(f"SUPER.MONITOR call={call_id} mode={mode}")   # live, no ringing
        heard = {line: rig.heard_by(line) for line in (CALLER, AGENT, SUPERVISOR)}
        assert heard == {**who[mode], SUPERVISOR: {CALLER, AGENT}}, mode
    with pytest.raises(ProtocolError) as info:
        await verb(f"SUPER.PICKUP call={call_id}")
    assert info.value.code == "wrong_state"
