"""Privacy: the device wrote nothing outside its state paths (outbox, audit log, watchlists,
reports, sealed clips), no plaintext image or video anywhere it wrote, no biometric figure
in its logs, and it sent nothing to anyone but the broker (counted by nftables in its
network namespace). With recording off (no activation of the rig asks for it) no frame
left the camera except inside the sealed clip of an alert: no segment was recorded, none
is on the device, every deployment report says recording was off.

The device's writable tree is snapshotted before the first start and compared after the
last stop; on the virtual rig the agent also runs with a private ``/tmp`` (a bind mount in
its own mount namespace) so any temporary file it made is caught, not lost among other
programs' files. Runs last: it stops the device to include what shutdown writes.
"""

from __future__ import annotations

import re

from hil.rig.scenarios.scenario_support import NotAvailable, RigDriver, ScenarioResult

TITLE = "Privacy"
# Words and shapes that would mean a score, an embedding or a face crop reached a log line.
LOG_PATTERNS = {
    "score word": re.compile(r"score|similarit|embedding|cosine", re.IGNORECASE),
    "base64 blob": re.compile(r"[A-Za-z0-9+/]{120,}={0,2}"),
    "vector of numbers": re.compile(r"\[\s*-?\d+\.\d+(\s*,\s*-?\d+\.\d+){7,}"),
}


def run(rig: RigDriver, result: ScenarioResult) -> None:
    code = rig.stop_device()
    result.check("device stopped cleanly", code == 0, f"exit code {code}")
    try:
        outside, tmp_files = rig.writable_changes()
    except NotAvailable as exc:
        result.not_run("no file outside the state paths", str(exc))
    else:
        result.figures["files_outside_state"] = len(outside)
        result.check(
            "no file outside the state paths",
            not outside,
            f"new files outside the state folder: {outside[:5] or 'none'}",
        )
        if tmp_files is None:
            result.not_run("nothing written to /tmp", "this rig cannot give the agent its own /tmp")
        else:
            result.figures["files_in_private_tmp"] = len(tmp_files)
            result.check(
                "nothing written to /tmp",
                not tmp_files,
                f"files the agent left in its private /tmp: {tmp_files[:5] or 'none'}",
            )
    try:
        scanned, images = rig.plaintext_images()
    except NotAvailable as exc:
        result.not_run("no plaintext image in any file the device wrote", str(exc))
    else:
        result.figures["device_files_scanned"] = scanned
        result.check(
            "no plaintext image in any file the device wrote",
            not images,
            f"{scanned} files scanned; with a plaintext image: {images[:5] or 'none'}",
        )
    try:
        packets, where = rig.unexpected_egress()
    except NotAvailable as exc:
        result.not_run("no traffic except to the broker", str(exc))
    else:
        result.figures["packets_not_to_broker"] = packets
        result.check(
            "no traffic except to the broker",
            packets == 0,
            f"{packets} packets from the device to anything but the broker: {where[:5] or 'none'}",
        )
    _check_recording_off(rig, result)
    log = rig.device_log_text()
    hits = {name: len(p.findall(log)) for name, p in LOG_PATTERNS.items()}
    found = {k: v for k, v in hits.items() if v}
    result.figures["log_lines"] = log.count("\n")
    result.check(
        "no match data in the agent log",
        bool(log) and not found,
        f"{log.count(chr(10))} log lines; findings: {found or 'none'}",
    )
    try:
        result.check("audit log chain intact", True, rig.audit_verified())
    except NotAvailable as exc:
        result.not_run("audit log chain intact", str(exc))
    except Exception as exc:  # a broken chain is a finding, reported as such
        result.check("audit log chain intact", False, str(exc)[:200])


def _check_recording_off(rig: RigDriver, result: ScenarioResult) -> None:
    events = rig.audit()
    sealed = [e for e in events if e.event == "recording.segment_sealed"]
    started = [e for e in events if e.event == "recording.started"]
    clips = [e for e in events if e.event == "clip.sealed"]
    reports = rig.reports()
    recorded = [r for r in reports if r.get("recording") or r.get("recording_segments")]
    result.figures["recording_segments_sealed"] = len(sealed)
    result.figures["alert_clips_sealed"] = len(clips)
    result.check(
        "recording off: no CCTV segment recorded, only alert clips",
        not sealed and not started and not recorded,
        f"{len(sealed)} segments sealed, {len(started)} recordings started, "
        f"{len(recorded)} of {len(reports)} reports with recording; {len(clips)} alert clips",
    )
