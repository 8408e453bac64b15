"""A second shell joins a running demo: ``source .run/env`` gives it the demo's Redis, zones
and token secret (a file only its owner can read), so ``polewatch token unit X`` mints a token
the demo's gateway accepts. The file goes when the demo stops."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp

from simulators.demo import ENV_FILE


def demo(run_dir: Path, redis_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLEWATCH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "polewatch.cli", "demo", "--run-dir", str(run_dir), "--port", "0",
         "--poles", "2000", "--units", "2", "--rate", "0.1", "--cameras", "0", "--doors", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**env, "REDIS_URL": redis_url},
    )  # fmt: skip


def running(proc: subprocess.Popen[str]) -> list[str]:
    """The demo's output up to its banner's last line (fails if it exits first)."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            return lines
    raise AssertionError("the demo ended before it was running:\n" + "".join(lines))


def in_a_second_shell(env_file: Path, command: str) -> str:
    """Run ``command`` in a fresh shell that only sourced ``env_file``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POLEWATCH_", "REDIS_"))}
    script = f"source {shlex.quote(str(env_file))} && {command}"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=clean,
                         timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_a_token_minted_in_a_second_shell_opens_the_demos_patrol_socket(
    tmp_path: Path, redis_url: str
) -> None:
    proc = demo(tmp_path, redis_url)
    try:
        banner = "".join(running(proc))
        env_file = tmp_path / ENV_FILE
        assert f"source {env_file}" in banner
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        secret = in_a_second_shell(env_file, 'echo "$POLEWATCH_SECRET"').strip()
        assert len(secret) >= 24 and secret not in banner  # never printed
        assert in_a_second_shell(env_file, 'echo "$REDIS_URL"').strip() == redis_url
        python = shlex.quote(sys.executable)
        token = in_a_second_shell(env_file, f"{python} -m polewatch.cli token unit PHONE-9")
        gateway = in_a_second_shell(env_file, 'echo "$POLEWATCH_GATEWAY"').strip()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{gateway}/api/patrol/ws", params={"token": token.strip()}) as ws,
        ):
            hello = json.loads((await ws.receive(timeout=30)).data)
        assert hello["unit"] == "PHONE-9", hello
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert not env_file.exists()  # the secret does not outlive the demo
