"""The README's run command, as a new user meets it: `rapidly demo` on an embedded database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import psutil

from tests.conftest import free_port

LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { ... on LoginSuccess { token } } }"


def test_demo_comes_up_prints_credentials_that_log_in_and_stops_cleanly(tmp_path):
    # given
    port, site_port = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RAPIDLY_DATA_DIR": str(tmp_path / "data")}
    log = (tmp_path / "demo.log").open("w")  # a file, so the server's log can never fill a pipe and stall it
    demo = subprocess.Popen(
        [sys.executable, "-m", "rapidly", "demo", "--port", str(port), "--site-port", str(site_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        banner = ""
        while "Stop with Ctrl-C." not in banner:  # the banner's last line
            line = demo.stdout.readline()
            assert line, f"demo exited early: {(tmp_path / 'demo.log').read_text()}"
            banner += line
        email, password = re.search(r"staff login:\s+(\S+) / (\S+)", banner).groups()
        url = f"http://127.0.0.1:{port}/graphql"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "demo did not become ready"
                time.sleep(0.2)

        # when
        login = httpx.post(url, json={"query": LOGIN, "variables": {"e": email, "p": password}}).json()
        token = login["data"]["login"]["token"]
        viewer = httpx.post(
            url, json={"query": "{ viewer { email tenant { slug } } }"}, headers={"Authorization": f"Bearer {token}"}
        ).json()
        console = httpx.get(f"http://127.0.0.1:{port}/console")
        home = httpx.get(f"http://127.0.0.1:{port}/", headers={"Accept-Language": "en"})
        # the printed end-user examples, pasted as they are
        start_example, save_example = (
            line.strip() for line in banner.splitlines() if "startContact(" in line or "saveField(" in line
        )
        session = httpx.post(url, json={"query": start_example}).json()["data"]["startContact"]
        saved = httpx.post(
            url, json={"query": save_example}, headers={"Authorization": f"Bearer {session['token']}"}
        ).json()["data"]["saveField"]
        listed = httpx.post(
            url,
            json={"query": "{ contacts { edges { node { displayName } } } }"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["data"]["contacts"]
        site = f"http://127.0.0.1:{site_port}"
        company_page = httpx.get(site)
        from_the_site = httpx.post(
            url, json={"query": '{ form(tenant: "demo") { tenantName } }'}, headers={"Origin": site}
        )
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)

    # then
    first_url, second_url = re.findall(r"https?://\S+", banner)[:2]
    assert first_url == site and "start here" in banner.splitlines()[2]
    assert second_url == f"http://127.0.0.1:{port}/console" and console.status_code == 200
    assert f'href="{site}"' in home.text and 'href="/console"' in home.text
    assert company_page.status_code == 200
    assert f'<script type="module" src="http://127.0.0.1:{port}/embed/form.js"></script>' in company_page.text
    assert '<rapidly-form tenant="demo"></rapidly-form>' in company_page.text
    assert "unsafe-inline" not in company_page.headers["content-security-policy"]
    assert from_the_site.headers["access-control-allow-origin"] == site
    assert from_the_site.json()["data"]["form"]["tenantName"] == "Demo Kattohuolto Oy"
    assert f"GraphQL at {url}" in banner
    assert "Finland (FI)" in banner
    assert 'startContact(tenant: "demo"' in banner
    assert viewer["data"]["viewer"] == {"email": email, "tenant": {"slug": "demo"}}
    assert session["selfServiceUrl"].endswith(session["token"])
    assert saved["__typename"] == "FieldSaved"
    assert listed["edges"] == [{"node": {"displayName": "Maija Meikäläinen"}}]
    assert demo.returncode == 0
    leftover = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftover == []


def test_serve_stops_its_embedded_database_on_sigterm(tmp_path):
    # given: `rapidly demo` as a service manager runs it, stopped with SIGTERM
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RAPIDLY_DATA_DIR": str(tmp_path / "data")}
    with (tmp_path / "demo.log").open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "demo", "--port", str(port), "--site-port", str(free_port())],
            env=env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                assert demo.poll() is None and time.monotonic() < deadline, "demo did not become ready"
                time.sleep(0.2)

        # when
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)

    # then
    leftover = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftover == []
