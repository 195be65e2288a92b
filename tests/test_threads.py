"""One Mailer shared by many threads."""

from __future__ import annotations

import threading
from collections import Counter

from flask_dmmail import Mailer
from flask_dmmail.sandbox import Sandbox


def test_sixteen_threads_send_exactly_the_expected_emails(mailer: Mailer, sandbox: Sandbox) -> None:
    per_thread = 15
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        barrier.wait()
        try:
            for n in range(per_thread):
                mailer.send(f"t{t}n{n}@example.gov.uk", "reset_password", {"url": f"u{t}-{n}"})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    outbox = sandbox.state.outbox()
    expected = {f"t{t}n{n}@example.gov.uk" for t in range(16) for n in range(per_thread)}
    assert {n.email_address for n in outbox} == expected
    assert len(outbox) == 16 * per_thread
    assert set(Counter(n.reference for n in outbox).values()) == {1}
