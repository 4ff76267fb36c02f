"""The browser code's own logic, unit by unit, in Chromium: the save queue (timing, order, retries),
DOM building without markup, the SVG rebuilder, the texts. Each test imports a module from Rapidly's
origin into a blank page and drives it with its injected dependencies."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

QUEUE = """
async ({ script }) => {
  const { SaveQueue } = await import('/lib/save-queue.js')
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  const retryable = (retryAfter = 0) => Object.assign(new Error('down'), { retryable: true, retryAfter })
  const log = { sent: [], states: [], inFlight: 0, maxInFlight: 0 }
  let behaviour = async () => ({})
  const queue = new SaveQueue(async (key, value) => {
    log.sent.push([key, value])
    log.inFlight += 1
    log.maxInFlight = Math.max(log.maxInFlight, log.inFlight)
    try { return await behaviour(key, value) } finally { log.inFlight -= 1 }
  }, { delay: 40, retryBase: 30, retryMax: 120, random: () => 1 })
  queue.addEventListener('state', (event) => log.states.push([event.detail.key, event.detail.state]))
  const until = async (condition, ms = 3000) => {
    const end = Date.now() + ms
    while (!condition()) { if (Date.now() > end) throw new Error('timed out'); await sleep(5) }
  }
  await eval(script)
  return { sent: log.sent, states: log.states, maxInFlight: log.maxInFlight, unsaved: queue.unsaved }
}
"""


@pytest.fixture
async def blank(browser, server):
    """A page of Rapidly's origin to import modules into."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{server.url}/healthz")
    yield page
    await context.close()


async def run_queue(page, script: str) -> dict:
    return await page.evaluate(QUEUE, {"script": f"(async () => {{ {script} }})()"})


async def test_a_burst_of_typing_is_one_save_of_the_last_value(blank):
    result = await run_queue(
        blank,
        """
        for (const value of ['M', 'Ma', 'Mai', 'Maij', 'Maija']) { queue.set('name', value); await sleep(5) }
        await until(() => log.states.some(([, s]) => s === 'saved'))
        """,
    )
    assert result["sent"] == [["name", "Maija"]]
    assert result["states"] == [["name", "waiting"], ["name", "saving"], ["name", "saved"]]
    assert result["unsaved"] is False


async def test_one_save_per_field_in_flight_and_the_last_write_wins(blank):
    result = await run_queue(
        blank,
        """
        behaviour = () => sleep(80).then(() => ({}))
        queue.set('name', 'A', { now: true })
        await sleep(20)                      // A is in flight
        queue.set('name', 'AB'); queue.set('name', 'ABC')
        queue.set('email', 'x@example.com', { now: true })
        await until(() => log.sent.length === 3 && !queue.unsaved)
        """,
    )
    assert result["sent"] == [["name", "A"], ["email", "x@example.com"], ["name", "ABC"]]
    assert result["maxInFlight"] == 2  # the two fields in parallel, never two saves of one field
    assert result["states"][-1][1] == "saved"


async def test_a_failing_save_is_retried_with_backoff_sending_what_was_typed_since(blank):
    result = await run_queue(
        blank,
        """
        let failures = 2
        behaviour = async () => { if (failures-- > 0) throw retryable(); return {} }
        queue.set('name', 'Ma', { now: true })
        await until(() => log.states.some(([, s]) => s === 'retrying'))
        queue.set('name', 'Maija')           // typed while it is failing
        await until(() => !queue.unsaved)
        """,
    )
    assert result["sent"] == [["name", "Ma"], ["name", "Maija"], ["name", "Maija"]]
    assert [s for _, s in result["states"]] == [
        "waiting",
        "saving",
        "retrying",
        "saving",
        "retrying",
        "saving",
        "saved",
    ]


async def test_retry_after_is_a_floor_for_the_backoff(blank):
    result = await run_queue(
        blank,
        """
        let first = true; const times = []
        behaviour = async () => { times.push(Date.now()); if (first) { first = false; throw retryable(0.3) } return {} }
        queue.set('name', 'M', { now: true })
        await until(() => !queue.unsaved)
        log.sent.push(['gap', times[1] - times[0]])
        """,
    )
    assert result["sent"][-1][1] >= 290


async def test_a_refused_value_is_not_retried_until_it_changes(blank):
    result = await run_queue(
        blank,
        """
        behaviour = async (key, value) => (value.endsWith('.com') ? {} : { invalid: [{ code: 'invalid_email' }] })
        queue.set('email', 'maija@', { now: true })
        await until(() => queue.state('email') === 'invalid')
        await sleep(150)
        queue.set('email', 'maija@', { now: true })   // the same again: nothing to send
        queue.set('email', 'maija@example.com', { now: true })
        await until(() => queue.state('email') === 'saved')
        """,
    )
    assert result["sent"] == [["email", "maija@"], ["email", "maija@example.com"]]


async def test_a_refusal_for_good_stops_says_failed_and_keeps_the_value_unsaved(blank):
    result = await run_queue(
        blank,
        """
        let refuse = true
        const no = Object.assign(new Error('no'), { code: 'OriginNotAllowed' })
        behaviour = async () => { if (refuse) throw no; return {} }
        queue.set('name', 'M', { now: true })
        await until(() => queue.state('name') === 'failed')
        await sleep(150)
        log.sent.push(['unsaved after failing', queue.unsaved])
        refuse = false
        queue.set('name', 'M', { now: true })   // the same value again: sent, since it never was stored
        await until(() => queue.state('name') === 'saved')
        """,
    )
    assert result["sent"] == [["name", "M"], ["unsaved after failing", True], ["name", "M"]]
    assert ["name", "failed"] in result["states"] and result["unsaved"] is False


async def test_unsaved_while_waiting_in_flight_or_retrying_and_flush_and_retry_now(blank):
    result = await run_queue(
        blank,
        """
        const seen = []
        let down = true
        behaviour = async () => { if (down) throw retryable(); return {} }
        const slow = new (queue.constructor)(async () => ({}), { delay: 10_000 })
        slow.set('story', 'long text')
        seen.push(slow.unsaved)              // waiting for its pause
        slow.flush()
        await until(() => slow.state('story') === 'saved')
        seen.push(slow.unsaved)
        queue.set('name', 'M', { now: true })
        await until(() => queue.state('name') === 'retrying')
        seen.push(queue.unsaved)
        down = false
        queue.retryNow()
        await until(() => queue.state('name') === 'saved', 100)   // at once, not after the backoff
        seen.push(queue.unsaved)
        log.sent.push(['seen', seen])
        """,
    )
    assert result["sent"][-1] == ["seen", [True, False, True, False]]


async def test_clear_drops_everything_pending(blank):
    result = await run_queue(
        blank,
        """
        queue.set('name', 'Maija')
        queue.clear()
        await sleep(120)
        """,
    )
    assert result["sent"] == [] and result["unsaved"] is False


async def test_el_puts_text_in_text_nodes_only(blank):
    shown = await blank.evaluate(
        """async () => {
          const { el } = await import('/lib/dom.js')
          let clicked = 0
          const node = el('p', { class: 'x', title: '"><b>', hidden: false, onclick: () => clicked++ },
                          '<img src=x onerror=alert(1)>', null, ['<b>bold</b>'])
          node.click()
          return { title: node.getAttribute('title'), hidden: node.hasAttribute('hidden'),
                   children: node.children.length, clicked, text: node.textContent }
        }"""
    )
    assert shown["children"] == 0 and shown["clicked"] == 1
    assert shown["text"] == "<img src=x onerror=alert(1)><b>bold</b>"
    assert shown["title"] == '"><b>' and shown["hidden"] is False


async def test_safe_svg_keeps_shapes_and_drops_everything_else(blank):
    kept = await blank.evaluate(
        """async () => {
          const { safeSvg } = await import('/lib/dom.js')
          const hostile = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10" onload="window.__x=1">
            <title>t</title><script>window.__x=2</script>
            <path d="M0 0h1" stroke="#000" onclick="window.__x=3" style="x"/>
            <foreignObject><div xmlns="http://www.w3.org/1999/xhtml">hi</div></foreignObject>
            <a href="javascript:alert(1)"><rect x="1" y="1" width="2" height="2"/></a>
            <rect x="3" y="3" width="2" height="2" fill="#000"/></svg>`
          const svg = safeSvg(hostile, 'QR code')
          document.body.append(svg)
          return { html: svg.outerHTML, ran: window.__x ?? null,
                   broken: safeSvg('not xml <', 'x').outerHTML }
        }"""
    )
    assert kept["ran"] is None
    assert kept["html"] == (
        '<svg viewBox="0 0 10 10" role="img" aria-label="QR code"><path d="M0 0h1" stroke="#000"></path>'
        '<rect x="3" y="3" width="2" height="2" fill="#000"></rect></svg>'
    )
    assert kept["broken"].startswith("<svg")


async def test_every_text_is_there_in_every_language(blank):
    checked = await blank.evaluate(
        """async () => {
          const { LOCALES, fill, pickLocale } = await import('/lib/i18n.js')
          const { textsFor } = await import('/embed/texts.js')
          const TEXTS = Object.fromEntries(await Promise.all(LOCALES.map(async (l) => [l, await textsFor(l)])))
          const names = (text) => (text.match(/\\{\\w+\\}/g) || []).join()
          const keys = (texts) => [...Object.keys(texts), ...Object.keys(texts.errors).map((k) => 'errors.' + k)].sort()
          return {
            missing: LOCALES.map((l) => [l, keys(TEXTS.en).filter((k) => !keys(TEXTS[l]).includes(k))]),
            extra: LOCALES.map((l) => [l, keys(TEXTS[l]).filter((k) => !keys(TEXTS.en).includes(k))]),
            placeholders: LOCALES.flatMap((l) => Object.entries(TEXTS[l])
              .filter(([k, v]) => typeof v === 'string' && names(v) !== names(TEXTS.en[k])).map(([k]) => l + ':' + k)),
            fill: fill('{a} and {b} and {c}', { a: 1, b: '<x>' }),
            picks: [pickLocale('sv', 'fi'), pickLocale(null, 'fi-FI'), pickLocale('de', 'EN-gb'), pickLocale('', 'de')],
            fallback: (await textsFor('de')) === TEXTS.en,
          }
        }"""
    )
    assert checked["missing"] == [["fi", []], ["sv", []], ["en", []]]
    assert checked["extra"] == [["fi", []], ["sv", []], ["en", []]]
    assert checked["placeholders"] == []
    assert checked["fill"] == "1 and <x> and {c}"
    assert checked["picks"] == ["sv", "fi", "en", None]
    assert checked["fallback"] is True


async def test_a_subscription_comes_back_after_the_server_ends_it_and_stops_when_refused(blank):
    # given: a graphql-transport-ws server on loopback that ends the first stream after one event
    # (as Rapidly's does when a client falls behind), drops the second (a restart), and refuses the third
    import json

    import websockets

    connections: list[str] = []

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        init = json.loads(await ws.recv())
        connections.append(init["payload"]["authorization"])
        if len(connections) == 3:
            await ws.close(4403, "Forbidden")
            return
        await ws.send(json.dumps({"type": "connection_ack"}))
        subscribe = json.loads(await ws.recv())
        await asyncio.sleep(0.4)  # the client says it is ready meanwhile
        await ws.send(json.dumps({"id": subscribe["id"], "type": "next", "payload": {"data": {"n": len(connections)}}}))
        if len(connections) == 1:
            await ws.send(json.dumps({"id": subscribe["id"], "type": "complete"}))
            await asyncio.sleep(0.5)
        else:
            await ws.close(1011)  # the server restarting

    async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=["graphql-transport-ws"]) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]

        # when
        seen = await blank.evaluate(
            """async (port) => {
              const { Api } = await import('/lib/graphql.js')
              const api = new Api(`http://127.0.0.1:${port}/graphql`)
              const seen = []
              await new Promise((resolve) => {
                api.subscribe('subscription { n }', 'rpc_x', {
                  onNext: (data) => seen.push(['next', data.n]),
                  onReady: () => seen.push(['ready']),
                  onEnd: (code) => { seen.push(['end', code]); resolve() },
                })
              })
              return seen
            }""",
            port,
        )

    # then: after each connection is taken, the caller may catch up; a refusal ends it all
    assert seen == [["ready"], ["next", 1], ["ready"], ["next", 2], ["end", 4403]]
    assert connections == ["Bearer rpc_x"] * 3


COALESCED = """
async ({ every, script }) => {
  const { Coalesced } = await import('/lib/coalesce.js')
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  const log = { reads: [], inFlight: 0, maxInFlight: 0 }
  const started = performance.now()
  const reads = new Coalesced(async (whats) => {
    log.reads.push({ at: performance.now() - started, whats: [...whats].sort() })
    log.inFlight += 1
    log.maxInFlight = Math.max(log.maxInFlight, log.inFlight)
    await sleep(20)
    log.inFlight -= 1
  }, { every })
  await eval(script)
  return log
}
"""


async def run_coalesced(page, every: int, script: str) -> dict:
    return await page.evaluate(COALESCED, {"every": every, "script": f"(async () => {{ {script} }})()"})


async def test_a_burst_of_events_is_read_at_once_then_at_most_once_per_interval_ending_with_a_read(blank):
    # when: an event every 10 ms for 500 ms, reads at most every 200 ms
    log = await run_coalesced(
        blank,
        200,
        """
        for (let n = 0; n < 50; n++) { reads.poke('FIELD_SAVED'); await sleep(10) }
        await sleep(450)
        """,
    )

    # then: the first at once, three or four more (not fifty), none closer than the interval, one at a time
    reads = log["reads"]
    assert reads[0]["at"] < 50
    assert 3 <= len(reads) <= 5, reads
    assert all(b["at"] - a["at"] >= 195 for a, b in itertools.pairwise(reads)), reads
    assert reads[-1]["at"] >= 500, "the burst's last event is answered by a read after it"
    assert log["maxInFlight"] == 1


async def test_a_read_gets_every_kind_poked_since_the_last_and_nothing_after_close(blank):
    log = await run_coalesced(
        blank,
        100,
        """
        reads.poke('FIELD_SAVED')
        await sleep(5)
        reads.poke('CHAT_MESSAGE'); reads.poke('MEDIA_ADDED'); reads.poke('CHAT_MESSAGE')
        await sleep(150)
        reads.poke('CHAT_MESSAGE')
        await sleep(5)
        reads.close()
        reads.poke('FIELD_SAVED')
        await sleep(250)
        """,
    )

    # then: the first at once, the three of the next burst in one read, and the one waiting for its
    # interval when the page closed never read
    kinds = [read["whats"] for read in log["reads"]]
    assert kinds == [["FIELD_SAVED"], ["CHAT_MESSAGE", "MEDIA_ADDED"]]


async def test_adding_a_passkey_sends_the_browsers_own_json_and_stops_at_a_refusal(blank):
    # given: the browser's WebAuthn calls answered by stand-ins that record what they were given
    result = await blank.evaluate(
        """async () => {
          const { addPasskey, passkeyProblem } = await import('/console/passkeys.js')
          const calls = []
          PublicKeyCredential.parseCreationOptionsFromJSON = (json) => ({ parsed: json })
          navigator.credentials.create = async (options) => ({ toJSON: () => ({ id: 'cred', made: options }) })
          const mutate = async (query, variables, success) => {
            calls.push([success, variables])
            if (success === 'PasskeyOptions') return { options: JSON.stringify({ challenge: 'c1' }) }
            return { passkey: { id: 'p1', name: variables.name } }
          }
          const added = await addPasskey(mutate, 'Työkannettava')
          const refused = await addPasskey(async () => ({ invalid: [{ code: 'too_many_passkeys' }] }), 'x')
          const t = { passkeyCancelled: 'cancelled', passkeyUnsupported: 'unsupported', errors: { taken: 'taken' } }
          const named = (name) => Object.assign(new Error('x'), { name })
          const words = ['NotAllowedError', 'AbortError', 'InvalidStateError', 'SecurityError', 'Other']
            .map((name) => passkeyProblem(t, named(name), () => 'explained'))
          return { calls, added, refused, words }
        }"""
    )

    # then: the options parsed by the browser, its credential's toJSON() sent as it is, under the name
    [(first, _), (second, sent)] = result["calls"]
    assert (first, second) == ("PasskeyOptions", "PasskeyAdded")
    assert sent["name"] == "Työkannettava"
    assert json.loads(sent["credential"]) == {"id": "cred", "made": {"publicKey": {"parsed": {"challenge": "c1"}}}}
    assert result["added"] == {"passkey": {"id": "p1", "name": "Työkannettava"}}
    assert result["refused"] == {"invalid": [{"code": "too_many_passkeys"}]}
    assert result["words"] == ["cancelled", "cancelled", "taken", "unsupported", "explained"]


async def test_the_code_of_a_text_message_is_offered_only_where_the_browser_reads_one(blank):
    # given: a browser without WebOTP, then one whose stand-in answers, refuses or is aborted
    result = await blank.evaluate(
        """async () => {
          const { codeFromTheMessage } = await import('/console/account.js')
          const without = await codeFromTheMessage(new AbortController().signal)
          const asked = []
          globalThis.OTPCredential = class {}
          navigator.credentials.get = async (options) => { asked.push(options.otp); return { code: '123456' } }
          const offered = await codeFromTheMessage(new AbortController().signal)
          navigator.credentials.get = async () => { throw Object.assign(new Error('x'), { name: 'AbortError' }) }
          const aborted = await codeFromTheMessage(AbortSignal.abort())
          navigator.credentials.get = async () => null
          const none = await codeFromTheMessage(new AbortController().signal)
          return { without, asked, offered, aborted, none }
        }"""
    )

    # then
    assert result == {
        "without": None,
        "asked": [{"transport": ["sms"]}],
        "offered": "123456",
        "aborted": None,
        "none": None,
    }
